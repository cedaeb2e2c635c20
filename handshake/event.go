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
)

var eventNames = [...]string{"", "inbound-sa", "established", "rekeyed", "failed", "closed", "notify", "registration", "rekey-inbound", "puzzle"}

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
}
