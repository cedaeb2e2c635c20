package locator

import (
	"fmt"
	"net/netip"

	"hipnet.dev/handshake/wire"
)

// Action is what a Decision asks of the caller.
type Action uint8

const (
	// SendProbe: ask the peer to answer at To. For Purpose ProbeVerify
	// that is an UPDATE with ECHO_REQUEST_SIGNED sent to To (RFC 8046
	// §5.4); for the other purposes the address was verified before and
	// any authenticated request and answer will do (§5.4: "A host MAY
	// also use other message exchanges"), such as an echo over ESP. Ask
	// AllowProbe first. Report the answer with Set.Verified, whatever
	// address it comes from: it proves the request reached To. Attempt 1
	// is a new request; higher attempts are retransmissions.
	SendProbe Action = iota + 1
	// SendKeepalive: send an authenticated keepalive, an ESP dummy packet
	// (RFC 4303 §2.6), to To: the NAT keepalive of RFC 5770 §4.7 on an idle
	// path or on an ICE pair that is not the current one, or the passive
	// keepalive that tells a peer sending one way that its path works
	// (doc.go).
	SendKeepalive
	// Switch: the current locator changes from From (invalid: there was
	// none) to To (invalid: none is left). Send ESP and control packets
	// to To from now on.
	Switch
)

var actionNames = [...]string{"", "probe", "keepalive", "switch"}

func (a Action) String() string { return enumName(actionNames[:], uint8(a), "action") }

// Reason says why a Switch happened.
type Reason uint8

const (
	// ReasonInitial: the first current locator.
	ReasonInitial Reason = iota + 1
	// ReasonFailed: the current locator failed its liveness check and To
	// is the best verified standby (RFC 8047 §4.2.2, fault tolerance).
	ReasonFailed
	// ReasonFallback: as ReasonFailed, and the standby is a relay
	// (DESIGN.md: "falls back to the relay when the direct path goes
	// dark").
	ReasonFallback
	// ReasonBetter: a locator that ranks above the current one became
	// usable: verified, nominated by ICE, or made preferred by the peer
	// (RFC 8046 §5.5).
	ReasonBetter
	// ReasonRecovered: a locator that ranks above the current one, and
	// had failed, answered again: the path moves back.
	ReasonRecovered
	// ReasonRebinding: the peer's packets now come from a new source
	// address, which was verified first (RFC 8046 §5.3, §5.4).
	ReasonRebinding
	// ReasonDeprecated: the current locator's lifetime ended or the peer
	// withdrew it, and a usable alternative exists (RFC 8046 §4, §5.5
	// step 4).
	ReasonDeprecated
	// ReasonGone: the current locator was removed (relay registration
	// lost, ICE pair lost, Set.Remove).
	ReasonGone
)

var reasonNames = [...]string{"", "initial", "failed", "fallback", "better", "recovered", "rebinding", "deprecated", "gone"}

func (r Reason) String() string { return enumName(reasonNames[:], uint8(r), "reason") }

// Purpose says why a probe is sent.
type Purpose uint8

const (
	// ProbeVerify: the address has never been verified (RFC 8046 §5.4).
	ProbeVerify Purpose = iota + 1
	// ProbeLiveness: the current path carried no authenticated packet
	// for a while we sent (RFC 8047 §4.2.2 "reachability checks").
	ProbeLiveness
	// ProbeStandby: the best standby is checked so that a failover lands
	// on a path that works.
	ProbeStandby
	// ProbeRecovery: a failed locator is tried again, with back-off.
	ProbeRecovery
)

var purposeNames = [...]string{"", "verify", "liveness", "standby", "recovery"}

func (p Purpose) String() string { return enumName(purposeNames[:], uint8(p), "purpose") }

// Decision is one thing the caller must do. It is one plain struct rather
// than a type per action so that returning decisions never boxes a value
// in an interface (no allocation).
type Decision struct {
	Action Action
	// To is where to send (SendProbe, SendKeepalive) or the new current
	// locator (Switch; invalid when none is left).
	To netip.AddrPort
	// Kind and Relay say how to reach To: through relay Relay when Kind
	// is Relayed.
	Kind  Kind
	Relay wire.HIT
	// From is the previous current locator (Switch; invalid: none).
	From    netip.AddrPort
	Reason  Reason  // Switch
	Purpose Purpose // SendProbe
	Attempt uint8   // SendProbe: 1 for a new request, 2.. for retransmissions
}

func (d Decision) String() string {
	switch d.Action {
	case SendProbe:
		return fmt.Sprintf("probe %s %s #%d (%s)", d.To, d.Purpose, d.Attempt, d.Kind)
	case SendKeepalive:
		return fmt.Sprintf("keepalive %s (%s)", d.To, d.Kind)
	case Switch:
		return fmt.Sprintf("switch %s -> %s (%s, %s)", d.From, d.To, d.Kind, d.Reason)
	}
	return d.Action.String()
}
