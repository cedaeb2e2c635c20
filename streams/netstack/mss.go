package netstack

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	csum "gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"hipnet.dev/handshake/wire"
)

// Segment size by path: MSS clamping.
//
// netstack has one interface for every peer, and the paths to the peers
// differ: a peer on this host is reached over the loopback (64 KiB), one
// across the Internet over 1500 octets or less. So the interface MTU is
// the largest an IPv6 packet may be (unless Config.MTU fixes it), and
// each connection's segments are sized by its own path: the MSS option of
// every SYN and SYN-ACK that crosses the endpoint, in either direction, is
// lowered to what the path to that peer carries in one outer IP packet
// (RFC 9293 §3.7.1: a sender never sends a segment longer than the MSS
// its peer announced; RFC 6691 §2: the MSS counts the TCP payload after
// the fixed headers). Ours tells the peer; the peer's, lowered on the way
// in, tells netstack. This is what a router's MSS clamping does for a
// tunnel (Linux's TCPMSS --clamp-mss-to-pmtu), here at both ends.

// pathLink is a Link that knows how long a segment the path to a peer
// carries without fragmentation, as hipnet's adapter of the overlay does
// (overlay.Stack.MaxDatagram, less nothing: a segment takes the place of
// an inner UDP header and datagram).
type pathLink interface {
	MaxSegment(peer wire.HIT) (int, bool)
}

// minMSS is the least MSS a clamp leaves: TCP's default MSS (RFC 9293
// §3.7.1), what a peer may send when no MSS option is given. A path that
// carries less gets its segments fragmented by the outer IP layer.
const minMSS = 536

const (
	tcpFlagSYN   = 0x02
	tcpOptEnd    = 0
	tcpOptNOP    = 1
	tcpOptMSS    = 2
	tcpOptMSSLen = 4
	tcpOptSACK   = 5 // RFC 2018 §3
)

// pathMSS is the MSS for connections with peer: by its path when the Link
// knows it, otherwise that of Config.MTU or DefaultMTU (e.fallbackMSS).
// The interface MTU caps it too: netstack announces no more.
func (e *endpoint) pathMSS(peer wire.HIT) int {
	if pl, ok := e.link.(pathLink); ok {
		if n, ok := pl.MaxSegment(peer); ok {
			return max(n-tcpMinHeaderLen, minMSS)
		}
	}
	return e.fallbackMSS
}

// clampSYN lowers the MSS option of seg, a TCP segment from src to dst, to
// the path's MSS for peer if seg is a SYN announcing more, and then
// recomputes its checksum. Anything else passes untouched.
func (e *endpoint) clampSYN(seg []byte, src, dst, peer wire.HIT) {
	if len(seg) < tcpMinHeaderLen || seg[13]&tcpFlagSYN == 0 {
		return
	}
	if clampMSS(seg, e.pathMSS(peer)) {
		putTCPChecksum(seg, src, dst)
	}
}

// clampMSS sets the MSS option of the TCP segment seg to mss if it
// announces more, and reports whether it did. Options it cannot parse
// are left as they are (RFC 9293 §3.1).
func clampMSS(seg []byte, mss int) bool {
	i, l, ok := tcpOption(seg, tcpOptMSS)
	if !ok || l != tcpOptMSSLen || int(binary.BigEndian.Uint16(seg[i+2:])) <= mss {
		return false
	}
	binary.BigEndian.PutUint16(seg[i+2:], uint16(mss))
	return true
}

// tcpOption finds the first option of kind in the header of the TCP
// segment seg (RFC 9293 §3.1): its offset and length. ok is false when
// there is none, or when the options cannot be parsed (a length that
// overruns the header): such options are left as they are.
func tcpOption(seg []byte, kind byte) (off, n int, ok bool) {
	if len(seg) < tcpMinHeaderLen {
		return 0, 0, false
	}
	end := int(seg[12]>>4) * 4
	if end < tcpMinHeaderLen || end > len(seg) {
		return 0, 0, false
	}
	for i := tcpMinHeaderLen; i < end; {
		switch seg[i] {
		case tcpOptEnd:
			return 0, 0, false
		case tcpOptNOP:
			i++
			continue
		}
		if i+1 >= end {
			return 0, 0, false
		}
		l := int(seg[i+1])
		if l < 2 || i+l > end {
			return 0, 0, false
		}
		if seg[i] == kind {
			return i, l, true
		}
		i += l
	}
	return 0, 0, false
}

// putTCPChecksum computes the checksum of the TCP segment seg over the
// IPv6 pseudo-header with the HITs (RFC 7401 §4.5.1, RFC 8200 §8.1).
func putTCPChecksum(seg []byte, src, dst wire.HIT) {
	t := header.TCP(seg)
	t.SetChecksum(0)
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber,
		tcpip.AddrFrom16(src), tcpip.AddrFrom16(dst), uint16(len(seg)))
	t.SetChecksum(^csum.Checksum(seg, sum))
}
