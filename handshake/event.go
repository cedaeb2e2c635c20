package handshake

import (
	"hipnet.dev/esp"
)

// EventKind says what happened to an association.
type EventKind uint8

const (
	// EventInboundSA: the Initiator has sent I2 and can already decrypt
	// the Responder's ESP (Inbound is set); the outbound SA follows with
	// EventEstablished once R2 arrives.
	EventInboundSA EventKind = iota + 1
	// EventEstablished: both SAs are ready (Inbound and Outbound set).
	// For the Responder this happens on sending R2 (state R2-SENT).
	EventEstablished
	// EventRekeyed: an UPDATE exchange replaced both SAs.
	EventRekeyed
	// EventFailed: the base exchange failed (Err says why); the
	// association is in E-FAILED.
	EventFailed
	// EventClosed: the association was closed by either side or expired.
	EventClosed
	// EventNotify: the peer sent a NOTIFY (Err is a *NotifyError).
	EventNotify
	// EventRegistration: a registration answer (RFC 8003) was received
	// (requester) or sent (registrar); Registration says what.
	EventRegistration
	// EventRekeyInbound: a rekey the peer started is under way and its
	// new inbound SA (Inbound) can already receive: install it beside the
	// current one. EventRekeyed follows with the same inbound SA and the
	// new outbound SA.
	EventRekeyInbound
	// EventPuzzle: an R1's puzzle is too hard to solve inside the state
	// machine (#K above Config.InlinePuzzle). Puzzle says what to solve;
	// the caller runs Puzzle.Solve off its packet path and reports with
	// Association.PuzzleSolved. The association stays in I1-SENT meanwhile.
	EventPuzzle
	// EventLocatorSet: the peer announced its locators in an UPDATE with
	// a verified HIP_MAC and HIP_SIGNATURE (RFC 8046 §4.3, §5.3).
	// LocatorSet holds a copy of the LOCATOR_SET contents, which
	// wire.ParseLocatorSet reads; empty, it deprecates all the peer's
	// addresses (§4). It is reported once per SEQ: a retransmission is
	// acknowledged again, not reported again. The new set replaces the
	// previous one (§5.2); the caller verifies new addresses
	// (Association.AppendProbe) and ignores multicast and broadcast ones
	// (§5.3).
	EventLocatorSet
	// EventEchoRequest: the peer probed an address of ours with a SEQ-less
	// UPDATE carrying ECHO_REQUEST_SIGNED (RFC 8046 §5.4). Reply is the
	// signed answer, UPDATE(ECHO_RESPONSE_SIGNED): send it to the address
	// the probe came from, which is what the probe verifies. Probes are
	// answered at most 10 a second per association, 5 at once; beyond
	// that they are dropped. An ECHO_REQUEST_SIGNED in a SEQ UPDATE is
	// answered in its ACK instead (RFC 8046 §3.2.1), with no event.
	EventEchoRequest
	// EventEchoResponse: the peer answered a probe (RFC 7401 §5.2.22):
	// Echo is a copy of the ECHO_RESPONSE_SIGNED data, to be matched
	// against the nonces the caller sent (the association keeps none).
	EventEchoResponse
)

var eventNames = [...]string{"", "inbound-sa", "established", "rekeyed", "failed", "closed", "notify", "registration", "rekey-inbound", "puzzle",
	"locator-set", "echo-request", "echo-response"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "event(?)"
}

// Event is an output of the state machine for the caller to act on.
type Event struct {
	Kind     EventKind
	Inbound  esp.Config
	Outbound esp.Config
	Err      error
	// Registration is set for EventRegistration.
	Registration *Registration
	// Puzzle is set for EventPuzzle.
	Puzzle *Puzzle
	// LocatorSet is set for EventLocatorSet: LOCATOR_SET contents.
	LocatorSet []byte
	// Reply is set for EventEchoRequest: the packet answering the probe.
	Reply []byte
	// Echo is set for EventEchoResponse: the echoed opaque data.
	Echo []byte
}
