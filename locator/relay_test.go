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

// keepalives plays the peer's NAT keepalives on the pair at a for d: one
// every KeepaliveInterval, as both ends of an ICE pair send them.
func (m *sim) keepalives(a netip.AddrPort, d time.Duration) {
	m.t.Helper()
	ka := m.s.Config().KeepaliveInterval
	for end := m.now.Add(d); m.now.Before(end); {
		m.runFor(ka)
		m.take(m.s.ReceivedKeepalive(m.now, a, 60))
	}
}

// TestPairSilence: an idle association on ICE's pair is not probed while
// the peer's keepalives arrive on it; when they stop (the pair went dark),
// the pair is probed after PairSilence, though we send nothing, and the
// association falls back to the relay (ReasonFallback) before it is
// needed there.
func TestPairSilence(t *testing.T) {
	m := relayed(t)
	m.alive[addrA] = true
	m.take(m.s.Nominated(m.now, addrA))
	if m.current() != addrA {
		t.Fatalf("current %v", m.current())
	}
	mk := m.mark()
	m.keepalives(addrA, 2*time.Minute)
	for _, l := range m.since(mk) {
		if l.d.Action != SendKeepalive || l.d.To != addrA {
			t.Fatalf("%v on an idle pair that works, want only its keepalives", l.d)
		}
	}
	last, mk := m.now, m.mark()
	m.alive[addrA] = false
	cfg := m.s.Config()
	m.runFor(cfg.PairSilence + time.Duration(cfg.ProbeCount+1)*cfg.ProbeInterval)
	at := m.wantSwitch(mk, addrA, relayA, ReasonFallback)
	if p := m.probes(addrA, mk); len(p) != cfg.ProbeCount || p[0].d.Purpose != ProbeLiveness || p[0].at.Before(last.Add(cfg.PairSilence)) {
		t.Fatalf("probes %v, want %d liveness probes from %v on", p, cfg.ProbeCount, cfg.PairSilence)
	}
	if bound := cfg.PairSilence + time.Duration(cfg.ProbeCount)*cfg.ProbeInterval; at.Sub(last) > bound {
		t.Fatalf("fell back %v after the last keepalive, want within %v", at.Sub(last), bound)
	}
	// A direct path has no such rule: the peer may send nothing unasked
	// (TestIdleCostsOnlyKeepalives).
	if cfg.PairSilence != 3*DefaultKeepaliveInterval {
		t.Fatalf("PairSilence %v, want 3 × the keepalive interval", cfg.PairSilence)
	}
}

// TestPairKeepaliveAfterFallback: after the fallback, the failed pair
// gets the NAT keepalives while the association is idle (the relay gets
// none), and no checks. The peer's keepalive arriving on it starts one;
// unanswered, the path stays on the relay; answered, it moves back
// (ReasonRecovered). A packet never moves it by itself.
func TestPairKeepaliveAfterFallback(t *testing.T) {
	m := relayed(t)
	m.alive[addrA] = true
	m.take(m.s.Nominated(m.now, addrA))
	m.alive[addrA] = false
	m.runFor(2 * time.Minute)
	if m.current() != relayA || m.state(addrA) != Failed {
		t.Fatalf("current %v, pair %v", m.current(), m.state(addrA))
	}
	mk := m.mark()
	m.runFor(time.Minute)
	ka := 0
	for _, l := range m.since(mk) {
		switch {
		case l.d.Action == SendKeepalive && l.d.To == addrA && l.d.Kind == ICE:
			ka++
		default:
			t.Fatalf("%v on an idle relayed association, want only the pair's keepalives", l.d)
		}
	}
	if ka != 4 {
		t.Fatalf("%d keepalives to the failed pair in a minute, want 4", ka)
	}
	// A packet of the peer's from the pair while it is still dark one
	// way: a check, unanswered.
	mk = m.mark()
	m.take(m.s.ReceivedKeepalive(m.now, addrA, 60))
	if p := m.probes(addrA, mk); len(p) != 1 || p[0].d.Purpose != ProbeRecovery {
		t.Fatalf("probes %v, want a recovery check", p)
	}
	m.runFor(5 * time.Second)
	m.wantNoSwitch(mk)
	// It works again.
	m.alive[addrA] = true
	mk = m.mark()
	m.take(m.s.ReceivedKeepalive(m.now, addrA, 60))
	if m.current() != relayA {
		t.Fatal("a packet moved the path by itself")
	}
	m.runFor(time.Second)
	m.wantSwitch(mk, relayA, addrA, ReasonRecovered)
}

// TestNominatedPacketSource: the peer's packets on the pair arrive before
// ICE tells us of it (its side of the checks finished first): a
// candidate, which the nomination makes ICE's; it goes with the
// nomination.
func TestNominatedPacketSource(t *testing.T) {
	m := relayed(t)
	m.alive[addrA] = true
	m.take(m.s.Received(m.now, addrA, 100))
	if l, _ := m.s.Lookup(addrA); l.Origin != OriginPacket || m.current() != relayA {
		t.Fatalf("%+v, current %v", l, m.current())
	}
	mk := m.mark()
	m.take(m.s.Nominated(m.now, addrA))
	m.wantSwitch(mk, relayA, addrA, ReasonBetter)
	if l, _ := m.s.Lookup(addrA); l.Origin != OriginICE || l.Kind != ICE || l.State != Active {
		t.Fatalf("%+v", l)
	}
	mk = m.mark()
	m.take(m.s.NominationLost(m.now, addrA))
	m.wantSwitch(mk, addrA, relayA, ReasonGone)
	if _, ok := m.s.Lookup(addrA); ok {
		t.Fatal("the pair outlived its nomination")
	}
}

// peerFlow plays the peer for d: every step, a keepalive of its on the
// pair at pair (the NAT keepalives it keeps sending there after failing
// it) and, unless relayKA, a packet of its through the relay at relay
// (relayKA: a keepalive).
func (m *sim) peerFlow(pair, relay netip.AddrPort, d, step time.Duration, relayKA bool) {
	m.t.Helper()
	for end := m.now.Add(d); m.now.Before(end); {
		m.runFor(step)
		m.take(m.s.ReceivedKeepalive(m.now, pair, 60))
		if relayKA {
			m.take(m.s.ReceivedKeepalive(m.now, relay, 60))
		} else {
			m.take(m.s.Received(m.now, relay, 200))
		}
	}
}

// TestPeerOnRelay: the pair went dark from us to the peer only. The peer
// failed it and sends through the relay; its keepalives still reach us on
// the pair, so the pair is never silent. Its packets through the relay
// start a check of the pair, which those keepalives do not end, and the
// association falls back to the relay, where the peer is.
func TestPeerOnRelay(t *testing.T) {
	m := relayed(t)
	m.alive[addrA] = true
	m.take(m.s.Nominated(m.now, addrA))
	m.runFor(10 * time.Second)
	m.alive[addrA] = false // our probes to the pair go unanswered
	mk := m.mark()
	cfg := m.s.Config()
	m.peerFlow(addrA, relayA, time.Second, 50*time.Millisecond, false)
	at := m.wantSwitch(mk, addrA, relayA, ReasonFallback)
	p := m.probes(addrA, mk)
	if len(p) != cfg.ProbeCount || p[0].d.Purpose != ProbeLiveness || p[0].at.Sub(m.log[mk].at) > 50*time.Millisecond {
		t.Fatalf("probes %v, want %d liveness probes from the peer's first packet through the relay on", p, cfg.ProbeCount)
	}
	if bound := 50*time.Millisecond + time.Duration(cfg.ProbeCount)*cfg.ProbeInterval; at.Sub(t0.Add(10*time.Second)) > bound {
		t.Fatalf("fell back %v after the peer moved to the relay, want within %v", at.Sub(t0.Add(10*time.Second)), bound)
	}
}

// TestPeerOnRelayPairWorks: the peer stays on the relay while the pair
// works: its packets there check the pair at most once per RecoveryMin,
// and the path stays. Its keepalives through the relay check nothing.
func TestPeerOnRelayPairWorks(t *testing.T) {
	m := relayed(t)
	m.alive[addrA] = true
	m.take(m.s.Nominated(m.now, addrA))
	m.runFor(10 * time.Second)
	mk := m.mark()
	m.peerFlow(addrA, relayA, 10*time.Second, 50*time.Millisecond, true)
	if p := m.probes(addrA, mk); len(p) != 0 {
		t.Fatalf("probes %v for the peer's keepalives through the relay, want none", p)
	}
	cfg := m.s.Config()
	mk = m.mark()
	m.peerFlow(addrA, relayA, 10*time.Second, 50*time.Millisecond, false)
	m.wantNoSwitch(mk)
	p := m.probes(addrA, mk)
	if n := int(10*time.Second/cfg.RecoveryMin) + 1; len(p) == 0 || len(p) > n {
		t.Fatalf("%d probes of a pair that works in 10 s of the peer's packets through the relay, want 1 to %d", len(p), n)
	}
	for i := 1; i < len(p); i++ {
		if gap := p[i].at.Sub(p[i-1].at); gap < cfg.RecoveryMin {
			t.Fatalf("probes %v apart, want at least %v", gap, cfg.RecoveryMin)
		}
	}
}
