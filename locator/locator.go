package locator

import (
	"fmt"
	"net/netip"
	"time"

	"hipnet.dev/handshake/wire"
)

// State is a locator's status: the three of RFC 8046 §5.1 and Failed.
type State uint8

const (
	// Unverified: the peer's reachability at the address has not been
	// verified (RFC 8046 §5.1). Nothing but probes goes there, and data
	// only within the credit of §5.6 (Set.Allow). It is never chosen as
	// the current locator, except a configured one before the association
	// exists: the base exchange must be sent somewhere, and its completion
	// is the verification (§5.1, last paragraph). A current locator that
	// the peer renews after its lifetime ended stays current, unverified,
	// while nothing else is usable, as a failed one does (§5.6.1 Figure 9:
	// data within the credit).
	Unverified State = iota + 1
	// Active: the address was verified and is not deprecated (§5.1). Only
	// an Active locator becomes the current path once the association
	// exists.
	Active
	// Deprecated: the locator's lifetime ended or the peer left it out of
	// a later LOCATOR_SET (§4, §5.3). It "SHOULD NOT be used as a
	// destination address if an alternate (non-deprecated) is available"
	// (§4), and returns to Unverified, never straight to Active, when the
	// peer announces it with a new lifetime (§5.1).
	Deprecated
	// Failed: a verification or a liveness check of the address went
	// unanswered. For RFC 8046 it is UNVERIFIED (§5.1 "ACTIVE to
	// UNVERIFIED ... reachability needs to be verified again"); the
	// separate name carries the history that paces its retries (back-off)
	// and keeps an address an attacker named from being probed on demand.
	Failed
)

var stateNames = [...]string{"", "unverified", "active", "deprecated", "failed"}

func (s State) String() string { return enumName(stateNames[:], uint8(s), "state") }

// Kind says how packets to a locator travel.
type Kind uint8

const (
	// Direct: straight to the peer's address (configured, announced in
	// LOCATOR_SET, or the source of its packets).
	Direct Kind = iota + 1
	// ICE: the peer's side of the candidate pair ICE nominated (RFC 5770
	// §4.6); direct too, but found by connectivity checks.
	ICE
	// Relayed: through a relay (RFC 5770 §4.5, §4.10): the address is the
	// relay's, Relay its HIT.
	Relayed
)

var kindNames = [...]string{"", "direct", "ice", "relayed"}

func (k Kind) String() string { return enumName(kindNames[:], uint8(k), "kind") }

// Origin says where a locator was first learnt. It decides what may be
// done with it: only an announced locator is deprecated by the peer's next
// LOCATOR_SET, and only a packet source needs its probes paid for by what
// came from it (Set.AllowProbe).
type Origin uint8

const (
	// OriginConfig: given by the application (static peers, AddPeer) or
	// the address the base exchange ran over.
	OriginConfig Origin = iota + 1
	// OriginLocatorSet: announced by the peer in LOCATOR_SET (RFC 8046
	// §5.3, RFC 8047 §5.2).
	OriginLocatorSet
	// OriginPacket: the source address of an authenticated packet that
	// matched no locator, a NAT rebinding candidate (RFC 8046 §5.3: "MAY
	// add the source IP address of a received HIP packet as a candidate
	// locator").
	OriginPacket
	// OriginICE: the pair ICE nominated.
	OriginICE
	// OriginRelay: a relay we are registered with.
	OriginRelay
)

var originNames = [...]string{"", "config", "locator-set", "packet", "ice", "relay"}

func (o Origin) String() string { return enumName(originNames[:], uint8(o), "origin") }

// Locator is a snapshot of one of a peer's locators (RFC 8046 §5.1: the
// address, its lifetime, status, Traffic Type and preference).
type Locator struct {
	Addr   netip.AddrPort // IPv4 unmapped
	Kind   Kind
	Origin Origin
	State  State
	Relay  wire.HIT // Kind Relayed: the relay's HIT

	// Preferred is the local decision that this is a preferred locator:
	// the P bit of the peer's LOCATOR_SET scoped by Traffic Type (RFC 8046
	// §4.1), the base exchange's address by default, ICE's nominated pair.
	Preferred bool
	Priority  uint32 // tie-break among equally preferred locators; higher wins
	Traffic   uint8  // wire.TrafficBoth or wire.TrafficData
	SPI       uint32 // from a LOCATOR_SET locator of type 1: the SPI it is bound to

	Expires      time.Time     // when it becomes Deprecated; zero: never (RFC 8046 §5.1)
	LastReceived time.Time     // the last authenticated packet from this address
	RTT          time.Duration // smoothed probe round-trip time; zero: not measured
}

func (l Locator) String() string {
	s := fmt.Sprintf("%s %s %s", l.Addr, l.Kind, l.State)
	if l.Kind == Relayed {
		s += " via " + l.Relay.String()
	}
	if l.Preferred {
		s += " preferred"
	}
	return s
}

// norm unmaps an IPv4-mapped IPv6 address, so that one peer address has
// one key whatever the socket reported.
func norm(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}

// unicast reports whether a may be a peer locator: a valid unicast address
// and a port. RFC 8046 §5.3: the address "MUST NOT be a broadcast or
// multicast address".
func unicast(a netip.AddrPort) bool {
	ip := a.Addr()
	return a.IsValid() && a.Port() != 0 && !ip.IsUnspecified() && !ip.IsMulticast() &&
		ip != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// lifetime turns a Locator Lifetime in seconds into an expiry time. The
// maximum value is "unbounded (does not expire)" (RFC 8046 §5.1).
func lifetime(now time.Time, sec uint32) time.Time {
	if sec == ^uint32(0) {
		return time.Time{}
	}
	return now.Add(time.Duration(sec) * time.Second)
}

// enumName is the name of value v of an enumeration whose names, indexed
// by value, are names (0 unused), or kind(v) for a value without one.
func enumName(names []string, v uint8, kind string) string {
	if int(v) < len(names) && v != 0 {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", kind, v)
}
