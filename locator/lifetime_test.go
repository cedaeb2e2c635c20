package locator

import (
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// TestActiveExpires: ACTIVE to DEPRECATED when the lifetime ends (RFC
// 8046 §4, §5.1); the deadline is the expiry.
func TestActiveExpires(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrB] = true
	m.announce(loc(addrB, 30, false))
	m.runFor(time.Second)
	m.wantState(addrB, Active)
	l, _ := m.s.Lookup(addrB)
	if !l.Expires.Equal(t0.Add(30 * time.Second)) {
		t.Fatalf("expires %v", l.Expires.Sub(t0))
	}
	m.runFor(29*time.Second - time.Millisecond)
	m.wantState(addrB, Active)
	m.runFor(time.Millisecond)
	m.wantState(addrB, Deprecated)
}

// TestUnverifiedExpires: UNVERIFIED to DEPRECATED when the lifetime ends
// during verification; the verification stops.
func TestUnverifiedExpires(t *testing.T) {
	m := newSim(t, Config{ProbeCount: 20}) // checks outlast the lifetime
	m.established(addrA)
	m.announce(loc(addrB, 1, false))
	m.runFor(999 * time.Millisecond)
	m.wantState(addrB, Unverified)
	m.runFor(time.Millisecond)
	m.wantState(addrB, Deprecated)
	n := len(m.probes(addrB, 0))
	m.runFor(10 * time.Second)
	if len(m.probes(addrB, 0)) != n {
		t.Fatal("a deprecated locator is still probed")
	}
	// An answer that comes now does not make it ACTIVE (§5.1).
	m.take(m.s.Verified(m.now, addrB))
	m.wantState(addrB, Deprecated)
}

// TestCurrentExpires: the current locator's lifetime ends; an ACTIVE
// alternative takes over (ReasonDeprecated). Without one the deprecated
// locator stays in use (§4: "SHOULD NOT be used ... if an alternate
// (non-deprecated) is available").
func TestCurrentExpires(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrB] = true
	m.announce(loc(addrA, 3600, false), loc(addrB, 60, true))
	m.runFor(time.Second)
	if m.current() != addrB {
		t.Fatalf("current %v", m.current())
	}
	mk := m.mark()
	m.runFor(time.Minute)
	m.wantSwitch(mk, addrB, addrA, ReasonDeprecated)

	// Alone: it stays.
	s := newSim(t, Config{})
	s.established(addrA)
	s.announce(loc(addrA, 60, true))
	mk = s.mark()
	s.runFor(2 * time.Minute)
	s.wantState(addrA, Deprecated)
	s.wantNoSwitch(mk)
	if s.current() != addrA {
		t.Fatalf("current %v", s.current())
	}
}

// TestRenewedDeprecated: DEPRECATED to UNVERIFIED when the peer announces
// the locator again with a new lifetime (§5.1, §5.3), then ACTIVE only
// after a new verification ("MUST NOT be changed to ACTIVE without first
// verifying").
func TestRenewedDeprecated(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrB] = true
	m.announce(loc(addrB, 10, false))
	m.runFor(11 * time.Second)
	m.wantState(addrB, Deprecated)
	mk := m.mark()
	m.announce(loc(addrB, 600, false))
	m.wantState(addrB, Unverified)
	if p := m.probes(addrB, mk); len(p) != 1 || p[0].d.Purpose != ProbeVerify {
		t.Fatalf("probes %v", p)
	}
	m.runFor(time.Second)
	m.wantState(addrB, Active)
}

// TestLocatorSetDeprecatesUnlisted: locators announced before and left
// out of a new LOCATOR_SET are deprecated (§5.3); configured ones and
// packet sources are not (behind a NAT the peer cannot list them); an
// empty set deprecates every announced address (§4).
func TestLocatorSetDeprecatesUnlisted(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrB], m.alive[addrC] = true, true
	m.announce(loc(addrB, 600, false), loc(addrC, 600, false))
	m.runFor(time.Second)
	m.announce(loc(addrC, 600, false))
	m.wantState(addrB, Deprecated)
	m.wantState(addrC, Active)
	m.wantState(addrA, Active)
	m.runFor(10 * time.Second) // past the duplicate window
	m.take(m.s.ApplyLocatorSet(m.now, locatorSet(t), 10500))
	m.wantState(addrC, Deprecated)
	m.wantState(addrA, Active)
	if m.current() != addrA {
		t.Fatalf("current %v", m.current())
	}
}

// TestLocatorSetDuplicate: the same LOCATOR_SET again within a few
// seconds is not reprocessed (§5.3); after that it renews the lifetimes.
func TestLocatorSetDuplicate(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrB] = true
	m.announce(loc(addrB, 600, false))
	m.runFor(time.Second)
	first, _ := m.s.Lookup(addrB)
	m.announce(loc(addrB, 600, false))
	if l, _ := m.s.Lookup(addrB); !l.Expires.Equal(first.Expires) {
		t.Fatal("a duplicate renewed the lifetime")
	}
	m.runFor(setRepeatWindow)
	m.announce(loc(addrB, 600, false))
	if l, _ := m.s.Lookup(addrB); !l.Expires.Equal(m.now.Add(600 * time.Second)) {
		t.Fatalf("expires %v after a later announcement", l.Expires.Sub(t0))
	}
}

// TestLocatorSetScope: the P bit of a data-only locator wins over that of
// a locator for both (§4.1); transport locators (ICE candidates),
// signalling-only locators and multicast addresses are not taken; an
// unbounded lifetime never expires (§5.1).
func TestLocatorSetScope(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	mcast := netip.MustParseAddr("ff02::1")
	sig := netip.MustParseAddr("2001:db8::99")
	ice := netip.MustParseAddr("192.0.2.200")
	m.announce(
		wire.Locator{Traffic: wire.TrafficBoth, Type: wire.LocatorTypeAddr, Preferred: true, Lifetime: 600, Addr: addrB.Addr()},
		wire.Locator{Traffic: wire.TrafficData, Type: wire.LocatorTypeESP, Preferred: true, Lifetime: ^uint32(0), SPI: 9, Addr: addrC.Addr()},
		wire.Locator{Traffic: wire.TrafficSignaling, Type: wire.LocatorTypeAddr, Lifetime: 600, Addr: sig},
		wire.Locator{Traffic: wire.TrafficBoth, Type: wire.LocatorTypeAddr, Lifetime: 600, Addr: mcast},
		wire.Locator{Traffic: wire.TrafficBoth, Type: wire.LocatorTypeTransport, Lifetime: 600, Port: 4000,
			Protocol: wire.ProtocolUDP, Kind: wire.KindHost, Addr: ice},
	)
	b, _ := m.s.Lookup(addrB)
	c, _ := m.s.Lookup(addrC)
	if b.Preferred || !c.Preferred || c.SPI != 9 || c.Traffic != wire.TrafficData || !c.Expires.IsZero() {
		t.Fatalf("B %+v\nC %+v", b, c)
	}
	if a, _ := m.s.Lookup(addrA); a.Preferred {
		t.Fatal("the base exchange's address stays preferred after a new preferred locator")
	}
	if m.s.Len() != 3 {
		t.Fatalf("%d locators: %v", m.s.Len(), m.s.Locators(nil))
	}
}

// TestFailedExpires: a failed locator's lifetime still ends: Failed to
// DEPRECATED, and no more recovery checks.
func TestFailedExpires(t *testing.T) {
	m := newSim(t, Config{})
	m.alive[relayA] = true
	m.take(m.s.RelayUp(m.now, relayH, relayA))
	m.take(m.s.Established(m.now, relayA))
	m.traffic(10 * time.Millisecond)
	m.announce(loc(addrB, 10, false)) // B would rank above the relay
	m.runFor(time.Second)
	m.wantState(addrB, Failed)
	m.runFor(9 * time.Second)
	m.wantState(addrB, Deprecated)
	n := len(m.probes(addrB, 0))
	m.runFor(time.Minute)
	if len(m.probes(addrB, 0)) != n {
		t.Fatal("a deprecated locator is still checked")
	}
}
