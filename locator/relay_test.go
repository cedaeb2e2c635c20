package locator

import (
	"net/netip"
	"testing"
	"time"
)

// relayed is an association through relay R, as overlay's dialRelayed and
// tookRelayed set it up.
func relayed(t *testing.T) *sim {
	m := newSim(t, Config{})
	m.alive[relayA] = true
	m.take(m.s.RelayUp(m.now, relayH, relayA))
	m.wantSwitch(0, netip0, relayA, ReasonInitial)
	m.wantState(relayA, Active)
	m.take(m.s.Established(m.now, relayA))
	if l, _ := m.s.Lookup(relayA); l.Kind != Relayed || l.Relay != relayH || l.Preferred {
		t.Fatalf("relay locator %+v", l)
	}
	return m
}

// TestNominatedUpgrades: ICE's nominated pair is ACTIVE at once and,
// direct, replaces the relay (DESIGN.md: "upgrades to a direct path when
// ICE finds one").
func TestNominatedUpgrades(t *testing.T) {
	m := relayed(t)
	mk := m.mark()
	m.take(m.s.Nominated(m.now, addrA))
	m.wantSwitch(mk, relayA, addrA, ReasonBetter)
	m.wantState(addrA, Active)
	if l, _ := m.s.Lookup(addrA); l.Kind != ICE || l.Origin != OriginICE {
		t.Fatalf("%+v", l)
	}
}

// TestNominationLost: the ICE pair is gone: back to the relay
// (ReasonGone); a pair the Set knew before stays, as Direct and failed.
func TestNominationLost(t *testing.T) {
	m := relayed(t)
	m.take(m.s.Nominated(m.now, addrA))
	mk := m.mark()
	m.take(m.s.NominationLost(m.now, addrA))
	m.wantSwitch(mk, addrA, relayA, ReasonGone)
	if _, ok := m.s.Lookup(addrA); ok {
		t.Fatal("an ICE-only locator outlived its nomination")
	}

	m = relayed(t)
	m.announce(loc(addrB, 600, false))
	m.take(m.s.Nominated(m.now, addrB))
	mk = m.mark()
	m.take(m.s.NominationLost(m.now, addrB))
	m.wantSwitch(mk, addrB, relayA, ReasonFallback)
	if l, _ := m.s.Lookup(addrB); l.Kind != Direct || l.State != Failed {
		t.Fatalf("%+v", l)
	}
}

// TestRelayDown: the relay registration is lost; with no other path the
// caller is told that none is left.
func TestRelayDown(t *testing.T) {
	m := relayed(t)
	mk := m.mark()
	m.take(m.s.RelayDown(m.now, relayH))
	sw := m.switches(mk)
	if len(sw) != 1 || sw[0].d.From != relayA || sw[0].d.To.IsValid() || sw[0].d.Reason != ReasonGone {
		t.Fatalf("switches %v", sw)
	}
	if _, ok := m.s.Current(); ok {
		t.Fatal("a current locator with none left")
	}
	// It comes back.
	mk = m.mark()
	m.take(m.s.RelayUp(m.now, relayH, relayA))
	m.wantSwitch(mk, netip0, relayA, ReasonInitial)
}

// TestRelayMoved: a relay that registered again at another address
// replaces its old locator.
func TestRelayMoved(t *testing.T) {
	m := relayed(t)
	mk := m.mark()
	m.take(m.s.RelayUp(m.now, relayH, relayA2))
	m.wantSwitch(mk, relayA, relayA2, ReasonGone)
	if len(m.switches(mk)) != 1 {
		t.Fatalf("switches %v", m.switches(mk))
	}
	if _, ok := m.s.Lookup(relayA); ok {
		t.Fatal("old relay address kept")
	}
	// A second relay is a standby, not a switch.
	mk = m.mark()
	m.take(m.s.RelayUp(m.now, relayH2, relayA))
	m.wantNoSwitch(mk)
	if m.s.Len() != 2 {
		t.Fatalf("%d locators", m.s.Len())
	}
}

// TestRemove: removing a standby changes nothing; removing the current
// locator moves to the best remaining one.
func TestRemove(t *testing.T) {
	m := relayed(t)
	m.take(m.s.Nominated(m.now, addrA))
	mk := m.mark()
	m.take(m.s.Remove(m.now, relayA))
	m.wantNoSwitch(mk)
	m.take(m.s.RelayUp(m.now, relayH, relayA))
	m.take(m.s.Remove(m.now, addrA))
	m.wantSwitch(mk, addrA, relayA, ReasonGone)
}

// TestFull: the Set holds at most MaxLocators; a new locator takes the
// place of a deprecated or failed one, never of an ACTIVE one.
func TestFull(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	for i := range MaxLocators - 1 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)}), 10500)
		m.alive[a] = true
		m.take(m.s.Configure(m.now, a))
	}
	m.runFor(time.Second)
	if m.s.Len() != MaxLocators {
		t.Fatalf("%d locators", m.s.Len())
	}
	m.take(m.s.Configure(m.now, addrB))
	if _, ok := m.s.Lookup(addrB); ok {
		t.Fatal("an ACTIVE locator was evicted")
	}
	victim := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, 10}), 10500)
	m.take(m.s.VerifyFailed(m.now, victim))
	m.take(m.s.Configure(m.now, addrB))
	if _, ok := m.s.Lookup(addrB); !ok {
		t.Fatal("not added in place of a failed locator")
	}
	if _, ok := m.s.Lookup(victim); ok || m.s.Len() != MaxLocators {
		t.Fatalf("victim kept, or %d locators", m.s.Len())
	}
}

// TestIPv4Mapped: an IPv4-mapped address and the plain IPv4 address are
// one locator.
func TestIPv4Mapped(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(addrA.Addr().As16()), addrA.Port())
	mk := m.mark()
	m.take(m.s.Received(m.now, mapped, 100))
	if m.s.Len() != 1 || len(m.since(mk)) != 0 {
		t.Fatalf("mapped address taken for a new one: %v", m.s.Locators(nil))
	}
}
