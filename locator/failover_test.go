package locator

import (
	"testing"
	"time"
)

// failoverBound is DESIGN.md's goal for the gap between the death of the
// current path and the switch.
const failoverBound = time.Second

// withStandby is an association over A with B verified as a standby and a
// relay, and traffic both ways every 10 ms.
func withStandby(t *testing.T) *sim {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrB] = true
	m.announce(loc(addrA, 3600, true), loc(addrB, 3600, false))
	m.alive[relayA] = true
	m.take(m.s.RelayUp(m.now, relayH, relayA))
	m.runFor(time.Second)
	m.wantState(addrB, Active)
	if m.current() != addrA {
		t.Fatalf("current %v", m.current())
	}
	m.traffic(10 * time.Millisecond)
	m.runFor(5 * time.Second)
	return m
}

// TestFailoverToStandby: the current path dies; within the bound the
// path is on the verified standby, after ProbeCount liveness probes (RFC
// 8047 §4.2.2-3). ACTIVE to Failed.
func TestFailoverToStandby(t *testing.T) {
	m := withStandby(t)
	if sw := m.switches(0); len(sw) != 1 {
		t.Fatalf("switches before the failure: %v", sw) // only the initial one
	}
	died, mk := m.now, m.mark()
	m.alive[addrA] = false
	m.runFor(3 * time.Second)
	at := m.wantSwitch(mk, addrA, addrB, ReasonFailed)
	if gap := at.Sub(died); gap > failoverBound {
		t.Fatalf("failover after %v, want under %v", gap, failoverBound)
	} else {
		t.Logf("failover gap %v", gap)
	}
	m.wantState(addrA, Failed)
	live := 0
	for _, p := range m.probes(addrA, mk) {
		if p.d.Purpose == ProbeLiveness && !p.at.After(at) {
			live++
		}
	}
	if live != DefaultProbeCount {
		t.Fatalf("%d liveness probes before the switch, want %d", live, DefaultProbeCount)
	}
	if len(m.switches(mk)) != 1 {
		t.Fatalf("switches %v", m.switches(mk))
	}
}

// TestFallbackToRelay: with no direct standby, the relay takes over
// within the bound (DESIGN.md: "falls back to the relay when the direct
// path goes dark").
func TestFallbackToRelay(t *testing.T) {
	m := newSim(t, Config{})
	m.alive[relayA] = true
	m.take(m.s.RelayUp(m.now, relayH, relayA))
	m.take(m.s.Established(m.now, relayA))
	m.alive[addrA] = true
	mk := m.mark()
	m.take(m.s.Nominated(m.now, addrA))
	m.wantSwitch(mk, relayA, addrA, ReasonBetter)
	m.traffic(10 * time.Millisecond)
	m.runFor(5 * time.Second)

	died, mk := m.now, m.mark()
	m.alive[addrA] = false
	m.runFor(3 * time.Second)
	at := m.wantSwitch(mk, addrA, relayA, ReasonFallback)
	if gap := at.Sub(died); gap > failoverBound {
		t.Fatalf("fallback after %v, want under %v", gap, failoverBound)
	}
	if sw := m.switches(mk)[0]; sw.d.Kind != Relayed || sw.d.Relay != relayH {
		t.Fatalf("switch %+v", sw.d)
	}
}

// TestSwitchBack: after a fallback, the preferred path is checked with
// back-off and the traffic moves back when it answers (Failed to ACTIVE,
// ReasonRecovered).
func TestSwitchBack(t *testing.T) {
	m := newSim(t, Config{})
	m.alive[relayA] = true
	m.take(m.s.RelayUp(m.now, relayH, relayA))
	m.take(m.s.Established(m.now, relayA))
	m.alive[addrA] = true
	m.take(m.s.Nominated(m.now, addrA))
	m.traffic(10 * time.Millisecond)
	m.runFor(time.Second)
	m.alive[addrA] = false
	m.runFor(10 * time.Second) // failed: recovery checks at +1, +2 (then +4, ...) s
	if m.current() != relayA {
		t.Fatalf("current %v", m.current())
	}
	rec := 0
	for _, p := range m.probes(addrA, 0) {
		if p.d.Purpose == ProbeRecovery && p.d.Attempt == 1 {
			rec++
		}
	}
	if rec < 2 || rec > 4 {
		t.Fatalf("%d recovery checks in 10 s, want 2..4 (back-off 1, 2, 4 s)", rec)
	}
	back, mk := m.now, m.mark()
	m.alive[addrA] = true
	m.runFor(20 * time.Second)
	at := m.wantSwitch(mk, relayA, addrA, ReasonRecovered)
	// Back-off is at most RecoveryMax; one check and a round trip more.
	if gap := at.Sub(back); gap > DefaultKeepaliveInterval+time.Second {
		t.Fatalf("moved back after %v", gap)
	}
	m.wantState(addrA, Active)
}

// TestSwitchBackOnPeerPackets: the peer's authenticated packets on a
// failed preferred path start its check at once (not after the back-off):
// the move back follows in a round trip. The packets alone do not move it.
func TestSwitchBackOnPeerPackets(t *testing.T) {
	m := newSim(t, Config{})
	m.alive[relayA] = true
	m.take(m.s.RelayUp(m.now, relayH, relayA))
	m.take(m.s.Established(m.now, relayA))
	m.alive[addrA] = true
	m.take(m.s.Nominated(m.now, addrA))
	m.traffic(10 * time.Millisecond)
	m.runFor(time.Second)
	m.alive[addrA] = false
	m.runFor(30 * time.Second) // back-off grown to its maximum
	m.alive[addrA] = true
	mk := m.mark()
	ds := m.s.Received(m.now, addrA, 100)
	if len(ds) != 1 || ds[0].Action != SendProbe || ds[0].Purpose != ProbeRecovery {
		t.Fatalf("decisions %v, want a recovery probe", ds)
	}
	if m.current() != relayA {
		t.Fatal("a packet moved the path by itself")
	}
	m.take(ds)
	at := m.now
	m.runFor(time.Second)
	if end := m.wantSwitch(mk, relayA, addrA, ReasonRecovered); end.Sub(at) > 2*m.rtt {
		t.Fatalf("moved back after %v", end.Sub(at))
	}
}

// TestSlowPathNotFailed: a path with a 300 ms round trip, longer than the
// silence and probe bounds, is probed but never declared dead.
func TestSlowPathNotFailed(t *testing.T) {
	m := newSim(t, Config{})
	m.rtt = 300 * time.Millisecond
	m.established(addrA)
	m.alive[addrB] = true
	m.announce(loc(addrA, 3600, true), loc(addrB, 3600, false))
	mk := m.mark()
	m.traffic(10 * time.Millisecond)
	m.runFor(30 * time.Second)
	m.wantNoSwitch(mk)
	m.wantState(addrA, Active)
}

// TestOneLostProbeAnswer: one unanswered probe does not fail a path.
func TestOneLostProbeAnswer(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.traffic(10 * time.Millisecond)
	m.oneWay = true // the peer never answers our traffic: the probes decide
	mk := m.mark()
	m.alive[addrA] = false
	m.runFor(DefaultSilenceTimeout + 10*time.Millisecond) // the first probe is lost
	m.alive[addrA] = true
	m.runFor(5 * time.Second)
	m.wantNoSwitch(mk)
	m.wantState(addrA, Active)
	if n := len(m.probes(addrA, mk)); n < 2 {
		t.Fatalf("%d probes", n)
	}
}

// TestAllDeadKeepsSearching: with no standby the current locator stays
// (there is nowhere else to send), failed, and is checked again until it
// answers.
func TestAllDeadKeepsSearching(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.traffic(10 * time.Millisecond)
	m.runFor(time.Second)
	mk := m.mark()
	m.alive[addrA] = false
	m.runFor(5 * time.Second)
	m.wantState(addrA, Failed)
	if m.current() != addrA {
		t.Fatalf("current %v", m.current())
	}
	m.wantNoSwitch(mk)
	if n := len(m.probes(addrA, mk)); n <= DefaultProbeCount {
		t.Fatalf("%d probes: no recovery checks", n)
	}
	m.alive[addrA] = true
	m.runFor(10 * time.Second)
	m.wantState(addrA, Active)
	m.wantNoSwitch(mk)
}

// TestIdleCostsOnlyKeepalives: an idle association sends one keepalive
// per KeepaliveInterval (RFC 5770 §4.7) and no probe.
func TestIdleCostsOnlyKeepalives(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	mk := m.mark()
	m.runFor(time.Minute)
	ka := 0
	for _, l := range m.since(mk) {
		switch l.d.Action {
		case SendKeepalive:
			ka++
			if l.d.To != addrA {
				t.Fatalf("keepalive to %v", l.d.To)
			}
		default:
			t.Fatalf("idle: %v at %v", l.d, l.at.Sub(t0))
		}
	}
	if ka != 4 {
		t.Fatalf("%d keepalives in a minute, want 4", ka)
	}
}

// TestRelayedPathNoNATKeepalive: the relay client keeps the mapping to
// the relay; a relayed path gets no NAT keepalive from the Set.
func TestRelayedPathNoNATKeepalive(t *testing.T) {
	m := newSim(t, Config{})
	m.alive[relayA] = true
	m.take(m.s.RelayUp(m.now, relayH, relayA))
	m.take(m.s.Established(m.now, relayA))
	mk := m.mark()
	m.runFor(time.Minute)
	if l := m.since(mk); len(l) != 0 {
		t.Fatalf("decisions on an idle relayed path: %v", l)
	}
}

// TestPassiveKeepalive: a packet from the peer that we do not answer is
// answered by one keepalive after AckDelay; a keepalive is never answered.
func TestPassiveKeepalive(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.runFor(time.Second)
	mk := m.mark()
	m.take(m.s.Received(m.now, addrA, 500))
	m.take(m.s.Received(m.now.Add(time.Millisecond), addrA, 500))
	want := m.now.Add(DefaultAckDelay)
	if d := m.s.Deadline(); !d.Equal(want) {
		t.Fatalf("deadline %v, want %v", d.Sub(t0), want.Sub(t0))
	}
	m.runFor(time.Second)
	l := m.since(mk)
	if len(l) != 1 || l[0].d.Action != SendKeepalive || !l[0].at.Equal(want) {
		t.Fatalf("decisions %v", l)
	}
	// A keepalive from the peer: not answered.
	mk = m.mark()
	m.take(m.s.ReceivedKeepalive(m.now, addrA, 60))
	m.runFor(time.Second)
	if l := m.since(mk); len(l) != 0 {
		t.Fatalf("a keepalive was answered: %v", l)
	}
	// A packet we answer in time: no keepalive.
	mk = m.mark()
	m.take(m.s.Received(m.now, addrA, 500))
	m.s.Sent(m.now.Add(10*time.Millisecond), addrA)
	m.runFor(time.Second)
	for _, l := range m.since(mk) {
		if l.d.Action == SendKeepalive {
			t.Fatalf("keepalive although we answered: %v", l)
		}
	}
}

// TestOneWayToCooperativePeer: a stream we send one way to a peer that
// runs this package (its passive keepalives come back) is never probed.
func TestOneWayToCooperativePeer(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	peer := New(Config{})
	peer.Configure(m.now, addrB)
	peer.Established(m.now, addrB)
	mk := m.mark()
	for end := m.now.Add(10 * time.Second); m.now.Before(end); {
		m.now = m.now.Add(10 * time.Millisecond)
		m.take(m.s.HandleTimeout(m.now))
		m.s.Sent(m.now, addrA)
		// The peer gets it a half round trip later and answers with
		// what its Set asks for; the answer arrives another half later.
		pt := m.now.Add(m.rtt / 2)
		peer.Received(pt, addrB, 1200)
		for _, d := range peer.HandleTimeout(pt) {
			if d.Action == SendKeepalive {
				m.push(simEvent{pt.Add(m.rtt / 2), evReceived, addrA})
			}
		}
		for len(m.events) > 0 && !m.events[0].at.After(m.now) {
			m.s.ReceivedKeepalive(m.now, m.events[0].addr, 60)
			m.events = m.events[1:]
		}
	}
	for _, l := range m.since(mk) {
		if l.d.Action == SendProbe {
			t.Fatalf("probe %v at %v", l.d, l.at.Sub(t0))
		}
	}
}

// TestStandbyChecked: while the association is used, the best standby is
// probed when its last answer is StandbyInterval old, and fails if it does
// not answer; an idle association checks nothing.
func TestStandbyChecked(t *testing.T) {
	m := withStandby(t) // B verified at about 0 s; traffic since 1 s
	mk := m.mark()
	m.alive[addrB] = false
	m.runFor(DefaultKeepaliveInterval + time.Second)
	p := m.probes(addrB, mk)
	if len(p) == 0 || p[0].d.Purpose != ProbeStandby {
		t.Fatalf("standby probes %v", p)
	}
	m.wantState(addrB, Failed)
	if m.current() != addrA {
		t.Fatalf("current %v", m.current())
	}

	// Idle: no standby checks.
	i := newSim(t, Config{})
	i.established(addrA)
	i.alive[addrB] = true
	i.announce(loc(addrB, 3600, false))
	i.runFor(time.Second)
	mk = i.mark()
	i.runFor(2 * time.Minute)
	if p := i.probes(addrB, mk); len(p) != 0 {
		t.Fatalf("idle association probed its standby: %v", p)
	}
}

// TestFailoverSkipsDeadStandby: a standby that died unnoticed is
// found out by its check; the failover of the current path then goes to
// the relay, not to the dead standby.
func TestFailoverSkipsDeadStandby(t *testing.T) {
	m := withStandby(t)
	m.alive[addrB] = false
	m.runFor(DefaultKeepaliveInterval + time.Second)
	m.wantState(addrB, Failed)
	mk := m.mark()
	m.alive[addrA] = false
	m.runFor(3 * time.Second)
	m.wantSwitch(mk, addrA, relayA, ReasonFallback)
}
