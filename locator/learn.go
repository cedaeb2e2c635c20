package locator

import (
	"net/netip"
	"time"

	"hipnet.dev/handshake/wire"
)

// How locators are learnt and lost: from the application, the base
// exchange, the peer's LOCATOR_SET, ICE and the relay client. (A packet
// source is learnt in failure.go, with the rest of what the data path
// reports.)

// Configure adds a locator the application gave (Config.Peers, AddPeer).
// Before the association exists it may carry the base exchange unverified
// (the first configured one becomes current); afterwards it is verified
// like any new address (RFC 8046 §5.4). A configured locator never
// expires.
func (s *Set) Configure(now time.Time, addr netip.AddrPort) []Decision {
	s.out = s.out[:0]
	a := norm(addr)
	if !unicast(a) {
		return s.out
	}
	i, added := s.findOrAdd(now, a, Direct, OriginConfig)
	if i < 0 {
		return s.out
	}
	if added {
		s.e[i].bootstrap = !s.assoc
	}
	e := &s.e[i]
	if e.Kind != Relayed {
		if e.Origin == OriginPacket {
			e.Origin = OriginConfig // the application vouches for it now
		}
		e.Expires = time.Time{}
		if !s.assoc && e.Origin == OriginConfig && e.State == Failed {
			// Configured again before the association: the dial may try
			// it again.
			e.State, e.bootstrap = Unverified, true
		}
		if e.State == Deprecated {
			// §5.1 "DEPRECATED to UNVERIFIED: The host receives a new
			// lifetime for the locator."
			e.State, e.wasActive = Unverified, false
			e.bootstrap = !s.assoc && e.Origin == OriginConfig
		}
	}
	s.verifyPending(now)
	s.reselect(now, 0)
	return s.out
}

// Established records that the base exchange completed over addr: the
// association exists, and "the locators used to establish the HIP
// association are by default assumed to be the initial preferred locators
// in ACTIVE state, with an unbounded lifetime" (RFC 8046 §5.1; RFC 8047
// §4.2.3). From now on a locator is verified before it becomes current,
// and the others the Set holds are verified now.
func (s *Set) Established(now time.Time, addr netip.AddrPort) []Decision {
	s.out = s.out[:0]
	a := norm(addr)
	s.assoc = true
	for j := range s.e {
		s.e[j].bootstrap = false
	}
	i := s.find(a)
	if i < 0 && unicast(a) {
		i = s.add(now, a, Direct, OriginConfig)
	}
	if i >= 0 {
		e := &s.e[i]
		if e.Kind != Relayed {
			e.Preferred = true
			e.Expires = time.Time{}
		}
		s.activate(now, i)
	}
	s.verifyPending(now)
	s.reselect(now, 0)
	return s.out
}

// ApplyLocatorSet processes the peer's LOCATOR_SET (RFC 8046 §5.3, RFC
// 8047 §5.2), from an authenticated packet, once the association exists.
// Locators of types 0 and 1 carry no port; port is the UDP port the peer's
// HIP runs on. Each data-capable locator listed is added as Unverified, or
// has its lifetime renewed (a Deprecated one becomes Unverified again); new
// ones are verified. Locators announced before and missing now are
// Deprecated. Transport locators (type 2, RFC 5770 §5.7) are ICE
// candidates: they belong to nat/, and the pair ICE nominates comes back
// through Nominated. Signalling-only locators (Traffic Type 1) cannot
// carry ESP and are left out.
//
// Only locators learnt from LOCATOR_SET are deprecated by their absence:
// behind a NAT the peer does not know the address we reach it at, so a
// configured address, a packet source, the ICE pair and relays stay.
//
// The P bit is scoped by Traffic Type and the more specific type wins
// (§4.1); a set with a preferred locator supersedes the default preference
// of the base exchange's address.
func (s *Set) ApplyLocatorSet(now time.Time, v wire.LocatorSetView, port uint16) []Decision {
	s.out = s.out[:0]
	sum := fnv1a(v.Bytes(), port)
	if sum == s.setSum && !s.setAt.IsZero() && now.Sub(s.setAt) < setRepeatWindow && !now.Before(s.setAt) {
		return s.out
	}
	s.setSum, s.setAt = sum, now

	dataP := false // a locator is preferred for data specifically
	for k := 0; k < v.Len(); k++ {
		if l := v.At(k); l.Preferred && l.Traffic == wire.TrafficData && l.Type != wire.LocatorTypeTransport {
			dataP = true
		}
	}
	var listed uint32
	anyP := false
	for k := 0; k < v.Len(); k++ {
		l := v.At(k)
		if l.Type == wire.LocatorTypeTransport || (l.Traffic != wire.TrafficBoth && l.Traffic != wire.TrafficData) {
			continue
		}
		a := norm(netip.AddrPortFrom(l.Addr, port))
		if !unicast(a) {
			continue
		}
		i, _ := s.findOrAdd(now, a, Direct, OriginLocatorSet)
		if i < 0 {
			continue
		}
		e := &s.e[i]
		if e.Kind == Relayed {
			continue // a relay's address, not the peer's
		}
		if e.Origin == OriginPacket {
			e.Origin = OriginLocatorSet // now announced, signed: §5.3 prefers it
		}
		e.Preferred = l.Preferred && (l.Traffic == wire.TrafficData || !dataP)
		anyP = anyP || e.Preferred
		e.Traffic, e.SPI = l.Traffic, l.SPI
		e.Expires = lifetime(now, l.Lifetime)
		if e.State == Deprecated {
			e.State, e.wasActive = Unverified, false // §5.1: a new lifetime
		}
		listed |= 1 << i
	}
	for i := range s.e {
		e := &s.e[i]
		if e.Kind == 0 || e.Kind == Relayed || listed&(1<<i) != 0 {
			continue
		}
		if anyP {
			e.Preferred = false
		}
		if e.Origin == OriginLocatorSet && e.State != Deprecated {
			s.deprecate(i) // §5.3: "addresses ... NOT listed ... DEPRECATED"
		}
	}
	s.verifyPending(now)
	s.reselect(now, 0)
	return s.out
}

// fnv1a is the 64-bit FNV-1a hash of b and port, to recognise a repeated
// LOCATOR_SET without keeping a copy.
func fnv1a(b []byte, port uint16) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	h = (h ^ uint64(port>>8)) * 1099511628211
	return (h ^ uint64(port&0xff)) * 1099511628211
}

// Nominated records that ICE nominated the pair whose peer side is addr
// (RFC 5770 §4.6). ICE's connectivity checks, authenticated with the key
// from KEYMAT, verified it, so it is Active at once; it is preferred, and
// being direct it ranks above any relay.
func (s *Set) Nominated(now time.Time, addr netip.AddrPort) []Decision {
	s.out = s.out[:0]
	a := norm(addr)
	if !unicast(a) {
		return s.out
	}
	i, _ := s.findOrAdd(now, a, ICE, OriginICE)
	if i < 0 {
		return s.out
	}
	e := &s.e[i]
	if e.Kind == Relayed {
		return s.out
	}
	hint := ReasonBetter
	if e.State == Failed {
		hint = ReasonRecovered
	}
	if e.Origin == OriginPacket {
		// Its packets came before ICE told us (the peer's side of the
		// checks finished first): the pair is ICE's, and goes with its
		// nomination (NominationLost).
		e.Origin = OriginICE
	}
	e.Kind, e.Preferred, e.Expires = ICE, true, time.Time{}
	s.activate(now, i)
	s.reselect(now, hint)
	return s.out
}

// NominationLost records that the ICE pair at addr is gone (the ICE
// session failed or closed). A locator ICE alone gave is removed; one the
// Set knew before goes back to Direct and is checked again before use.
func (s *Set) NominationLost(now time.Time, addr netip.AddrPort) []Decision {
	s.out = s.out[:0]
	i := s.find(norm(addr))
	if i < 0 || s.e[i].Kind != ICE {
		return s.out
	}
	if s.e[i].Origin == OriginICE {
		s.removeAt(now, i)
		return s.out
	}
	s.e[i].Kind = Direct
	s.fail(now, i)
	s.reselect(now, 0)
	return s.out
}

// RelayUp records a registration with relay hit at addr through which the
// peer can be reached (RFC 5770 §4.1, RFC 8003). The registration is an
// authenticated association with the relay, which stands for verification:
// the relay locator is Active. A relay that registered again at another
// address keeps its place with the new address (a Switch, ReasonGone, if
// it is current).
func (s *Set) RelayUp(now time.Time, hit wire.HIT, addr netip.AddrPort) []Decision {
	s.out = s.out[:0]
	a := norm(addr)
	if !unicast(a) {
		return s.out
	}
	i := s.findRelay(hit)
	if j := s.find(a); j >= 0 && j != i {
		s.removeAt(now, j) // the address was known as another locator: it is this relay's
	}
	if i < 0 {
		if i = s.add(now, a, Relayed, OriginRelay); i < 0 {
			return s.out
		}
	} else if old := s.e[i].Addr; old != a {
		// The relay moved: same path, new address.
		s.e[i].Addr = a
		if i == s.cur {
			s.switchTo(now, i, ReasonGone, old)
		}
	}
	e := &s.e[i]
	e.Relay, e.Expires, e.Preferred = hit, time.Time{}, false
	s.activate(now, i)
	s.reselect(now, 0)
	return s.out
}

// RelayDown records that the registration with relay hit is gone; the
// relay locator is removed.
func (s *Set) RelayDown(now time.Time, hit wire.HIT) []Decision {
	s.out = s.out[:0]
	if i := s.findRelay(hit); i >= 0 {
		s.removeAt(now, i)
	}
	return s.out
}

func (s *Set) findRelay(hit wire.HIT) int {
	for i := range s.e {
		if s.e[i].Kind == Relayed && s.e[i].Relay == hit {
			return i
		}
	}
	return -1
}

// Remove forgets the locator at addr.
func (s *Set) Remove(now time.Time, addr netip.AddrPort) []Decision {
	s.out = s.out[:0]
	if i := s.find(norm(addr)); i >= 0 {
		s.removeAt(now, i)
	}
	return s.out
}

// activate makes locator i Active: its reachability is proven now.
func (s *Set) activate(now time.Time, i int) {
	e := &s.e[i]
	e.State, e.verified, e.wasActive, e.bootstrap = Active, true, false, false
	e.probe = probe{}
	e.lastOK = now
	e.inBytes = 0
	e.backoff, e.retryAt = 0, time.Time{}
	if i == s.cur {
		e.waiting = time.Time{} // our packets arrive: nothing is outstanding
	}
}

// deprecate marks locator i Deprecated (RFC 8046 §5.1) and stops its
// checks.
func (s *Set) deprecate(i int) {
	e := &s.e[i]
	e.wasActive = e.State == Active
	e.State, e.bootstrap = Deprecated, false
	e.probe = probe{}
}

// verifyPending starts the verification of every Unverified locator that
// is not being checked, once the association can carry it.
func (s *Set) verifyPending(now time.Time) {
	if !s.assoc {
		return
	}
	for i := range s.e {
		if e := &s.e[i]; e.Kind != 0 && e.State == Unverified && !e.bootstrap {
			s.startProbe(now, i, ProbeVerify)
		}
	}
}

// findOrAdd returns the index of the locator at a, adding it (of kind k,
// learnt from o) when there is none; -1 when the set is full. added says
// it is new.
func (s *Set) findOrAdd(now time.Time, a netip.AddrPort, k Kind, o Origin) (i int, added bool) {
	if i = s.find(a); i >= 0 {
		return i, false
	}
	i = s.add(now, a, k, o)
	return i, i >= 0
}
