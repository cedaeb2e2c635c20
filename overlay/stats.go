package overlay

import (
	"errors"
	"sync/atomic"

	"hipnet.dev/handshake"
)

// Stats are the stack's counters since New. Every datagram that reaches
// the socket is counted in PacketsIn and then either handled or counted in
// exactly one Drops field.
type Stats struct {
	PacketsIn, PacketsOut uint64 // UDP datagrams received and sent
	BytesIn, BytesOut     uint64 // their UDP payload octets
	ControlIn, ControlOut uint64 // HIP control packets received (well formed) and sent
	ESPIn, ESPOut         uint64 // ESP packets authenticated and sent
	Delivered             uint64 // inner datagrams queued to an InnerConn
	STUNAnswered          uint64 // STUN Binding Requests answered (Config.STUNServer)
	STUNMatched           uint64 // STUN Binding responses handed to a waiting STUNBinding
	ICEChecks             uint64 // ICE connectivity checks and answers handed to a session
	KeepalivesIn          uint64 // NAT keepalives received: ESP dummy packets (authenticated), STUN Binding Indications
	KeepalivesOut         uint64 // keepalives sent (ESP dummy packets): NAT keepalives on idle direct paths and ICE pairs, passive ones (locators.go)
	Drops                 Drops
	BEX                   BEXStats
	Relay                 RelayStats // on a relay server: its forwarding and drops (ForwarderReport)
	Paths                 PathStats  // locators of the associations, direct or relayed: switches, probes, announcements
	// IO is which batching features the socket uses (socket.go): the
	// kernel's, detected when the stack started.
	IO IOStats

	// Gauges, read when Stats is called.
	Associations     map[string]int // associations by RFC 7401 state ("ESTABLISHED", "I1-SENT", ...)
	RelaysRegistered int            // Config.Relays that hold our registration now
	Registrations    int            // on a relay server: hosts registered with it now (ForwarderReport)
}

// IOStats says how the stack's socket moves datagrams.
type IOStats struct {
	Batch     bool   // sendmmsg and recvmmsg
	GSO       bool   // UDP generic segmentation offload on send (UDP_SEGMENT, Linux 4.18)
	GRO       bool   // UDP generic receive offload (UDP_GRO, Linux 5.0)
	GSOErrors uint64 // GSO sends the kernel refused (then sent without it)

	// How sealed packets left (tx.go): written at once by their writer,
	// or queued and written by the sender goroutine in Batches (one
	// sendmmsg, or one GSO send per run to a destination, each).
	SentInline, SentQueued, Batches uint64
}

// PathStats counts what the locators of the associations did
// (locators.go, mobility.go, idle.go).
type PathStats struct {
	// Switches: the path of an association moved to another locator
	// ("path switch" in the log; "path" for an association through a
	// relay, between the relay and the ICE pair).
	Switches uint64
	// LostInSwitch counts the data packets sent into a path that had
	// failed, between its last authenticated packet and the switch away
	// from it: the datagrams a failover may have lost (stream data is
	// retransmitted).
	LostInSwitch   uint64
	ProbesSent     uint64 // UPDATEs with ECHO_REQUEST_SIGNED (RFC 8046 §5.4)
	ProbesAnswered uint64 // their signed ECHO_RESPONSEs, matched by nonce
	ProbesRefused  uint64 // probes not sent: over the credit of an unverified address (RFC 8046 §5.6)
	EchoAnswered   uint64 // the peer's probes answered
	Announcements  uint64 // UPDATEs with our LOCATOR_SET (RFC 8046 §5.2)
	Resent         uint64 // ESP packets sent during a failed check, sent again on the new path (inflight.go)
	IdleClosed     uint64 // associations closed for Config.IdleTimeout
}

// BEXStats counts base exchanges.
type BEXStats struct {
	Started   uint64 // as Initiator (I1 sent) or Responder (an I2 accepted)
	Completed uint64 // ESTABLISHED (or R2-SENT, the Responder's end)
	// Failed, by reason.
	FailedTimeout uint64 // the peer did not answer (retransmissions exhausted)
	FailedRefused uint64 // the peer refused (an authenticated NOTIFY), or Authorize refused the peer
	FailedOther   uint64 // anything else: bad signature, no common suite, ...
	// PuzzleDifficulty is the #K our R1s ask for now: it rises under I2
	// load (handshake Config.LoadThreshold) and falls back after.
	PuzzleDifficulty uint8
}

// Drops counts datagrams and writes dropped, by reason.
type Drops struct {
	Short           uint64 // shorter than 8 octets: no demux kind
	STUN            uint64 // STUN neither answered nor matched: indications, other methods, unmatched responses, requests with Config.STUNServer off, bad FINGERPRINT, malformed
	Malformed       uint64 // control packet that does not parse (or non-zero checksum); ESP or inner UDP that is malformed
	UnknownSPI      uint64 // ESP for no installed inbound SA
	Replay          uint64 // ESP replayed or left of the anti-replay window
	AuthFailure     uint64 // ESP whose ICV did not verify
	NotForUs        uint64 // HIP packet for another receiver HIT
	Unauthorized    uint64 // peer refused by Config.Authorize
	ControlRejected uint64 // HIP packet the state machine refused (unexpected, bad MAC or signature, ...)
	ControlReplay   uint64 // HIP packet refused as a replay: a spent I2 solution, an old UPDATE SEQ, a stale R1
	RateLimited     uint64 // I1 not answered: its source, address or the node is over its R1 rate; or NOTIFY not checked: its claimed sender or all are over the NOTIFY rate (ratelimit.go)
	ControlBacklog  uint64 // control goroutine behind: packet dropped by the read loop
	NotUDP          uint64 // ESP payload that is neither inner UDP nor a protocol with a segment handler (segment.go)
	NoListener      uint64 // inner UDP to a port with no InnerConn
	InboxFull       uint64 // InnerConn's receive queue full (reader too slow)
	QueueFull       uint64 // WriteTo refused with ErrQueueFull while a BEX ran
	QueueDiscarded  uint64 // queued writes discarded because their BEX failed
	SendErrors      uint64 // socket write errors
}

// counters are the atomics behind Stats.
type counters struct {
	packetsIn, packetsOut atomic.Uint64
	bytesIn, bytesOut     atomic.Uint64
	controlIn, controlOut atomic.Uint64
	espIn, espOut         atomic.Uint64
	delivered             atomic.Uint64
	stunAnswered          atomic.Uint64
	stunMatched           atomic.Uint64
	iceChecks             atomic.Uint64
	keepalivesIn          atomic.Uint64
	keepalivesOut         atomic.Uint64

	pathSwitches, pathLost     atomic.Uint64
	probesOut, probesAnswered  atomic.Uint64
	probesRefused, echoAnswers atomic.Uint64
	announcements, idleClosed  atomic.Uint64
	pathResent                 atomic.Uint64

	short, stun, malformed, unknownSPI, replay, authFailure, notForUs,
	unauthorized, controlRejected, controlBacklog, notUDP, noListener,
	inboxFull, queueFull, queueDiscarded, sendErrors, controlReplay, rateLimited atomic.Uint64

	bexStarted, bexCompleted, bexTimeout, bexRefused, bexOther atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		PacketsIn: c.packetsIn.Load(), PacketsOut: c.packetsOut.Load(),
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		ControlIn: c.controlIn.Load(), ControlOut: c.controlOut.Load(),
		ESPIn: c.espIn.Load(), ESPOut: c.espOut.Load(),
		Delivered: c.delivered.Load(), ICEChecks: c.iceChecks.Load(),
		KeepalivesIn: c.keepalivesIn.Load(), KeepalivesOut: c.keepalivesOut.Load(),
		Paths: PathStats{
			Switches: c.pathSwitches.Load(), LostInSwitch: c.pathLost.Load(),
			ProbesSent: c.probesOut.Load(), ProbesAnswered: c.probesAnswered.Load(),
			ProbesRefused: c.probesRefused.Load(), EchoAnswered: c.echoAnswers.Load(),
			Announcements: c.announcements.Load(), IdleClosed: c.idleClosed.Load(),
			Resent: c.pathResent.Load(),
		},
		STUNAnswered: c.stunAnswered.Load(), STUNMatched: c.stunMatched.Load(),
		Drops: Drops{
			Short: c.short.Load(), STUN: c.stun.Load(), Malformed: c.malformed.Load(),
			UnknownSPI: c.unknownSPI.Load(), Replay: c.replay.Load(), AuthFailure: c.authFailure.Load(),
			NotForUs: c.notForUs.Load(), Unauthorized: c.unauthorized.Load(),
			ControlRejected: c.controlRejected.Load(), ControlBacklog: c.controlBacklog.Load(),
			NotUDP: c.notUDP.Load(), NoListener: c.noListener.Load(), InboxFull: c.inboxFull.Load(),
			QueueFull: c.queueFull.Load(), QueueDiscarded: c.queueDiscarded.Load(),
			SendErrors: c.sendErrors.Load(), ControlReplay: c.controlReplay.Load(), RateLimited: c.rateLimited.Load(),
		},
		BEX: BEXStats{
			Started: c.bexStarted.Load(), Completed: c.bexCompleted.Load(),
			FailedTimeout: c.bexTimeout.Load(), FailedRefused: c.bexRefused.Load(), FailedOther: c.bexOther.Load(),
		},
	}
}

// countFailure counts a failed base exchange by its reason.
func (c *counters) countFailure(err error) {
	var ne *handshake.NotifyError
	switch {
	case errors.Is(err, handshake.ErrTimeout):
		c.bexTimeout.Add(1)
	case errors.As(err, &ne), errors.Is(err, ErrNotAuthorized):
		c.bexRefused.Add(1)
	default:
		c.bexOther.Add(1)
	}
}

// Total returns the sum of all drop counters.
func (d Drops) Total() uint64 {
	return d.Short + d.STUN + d.Malformed + d.UnknownSPI + d.Replay + d.AuthFailure +
		d.NotForUs + d.Unauthorized + d.ControlRejected + d.ControlBacklog + d.NotUDP +
		d.NoListener + d.InboxFull + d.QueueFull + d.QueueDiscarded + d.SendErrors + d.ControlReplay + d.RateLimited
}
