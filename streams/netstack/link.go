package netstack

import "hipnet.dev/handshake/wire"

// Link is what the transport needs from the HIP stack: the ESP security
// associations of the node, seen as a pipe of BEET transport segments
// between HITs. The overlay implements it.
type Link interface {
	// LocalHIT is this node's HIT: the inner source address of every
	// segment the transport writes and the inner destination of every
	// segment it receives.
	LocalHIT() wire.HIT

	// WriteSegment seals seg — a transport segment of IP protocol proto
	// (6 = TCP), whose inner IPv6 source is LocalHIT and destination dst
	// — in the ESP SA with dst and sends it. If there is no association
	// yet it may queue it and start a base exchange. seg is not retained.
	//
	// It is called from whichever goroutine netstack sends on (an
	// application's Write, a TCP processor handling an ACK, a timer), often
	// concurrently, and it should not block: TCP retransmits what is lost,
	// so a full queue is better answered by dropping the segment (and
	// returning an error) than by waiting. An error that wraps
	// overlay.ErrUnknownPeer, ErrNotAuthorized, ErrHandshakeFailed,
	// ErrHandshakeTimeout or ErrClosed fails a Dial to dst that is waiting
	// for its SYN to be answered; any other error just counts a lost
	// segment.
	WriteSegment(dst wire.HIT, proto uint8, seg []byte) error

	// HandleSegments registers fn for inbound ESP payloads whose next
	// header is proto; src is the HIT the SA authenticated, seg is valid
	// only during the call. fn must not block long. A nil fn unregisters:
	// Transport.Close calls HandleSegments(6, nil).
	HandleSegments(proto uint8, fn func(src wire.HIT, seg []byte))
}
