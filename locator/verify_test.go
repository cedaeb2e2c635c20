package locator

import (
	"testing"
	"time"
)

// TestBootstrapThenEstablished: a configured locator carries the base
// exchange unverified (the only unverified current locator there is);
// Established makes it ACTIVE and preferred with an unbounded lifetime
// (RFC 8046 §5.1 last paragraph).
func TestBootstrapThenEstablished(t *testing.T) {
	m := newSim(t, Config{})
	m.take(m.s.Configure(m.now, addrA))
	m.wantSwitch(0, netip0, addrA, ReasonInitial)
	m.wantState(addrA, Unverified)
	if d := m.s.Deadline(); !d.IsZero() {
		t.Fatalf("deadline %v before the association", d)
	}
	m.take(m.s.Established(m.now, addrA))
	m.wantState(addrA, Active)
	l, _ := m.s.Lookup(addrA)
	if !l.Preferred || !l.Expires.IsZero() || l.Origin != OriginConfig {
		t.Fatalf("after Established: %+v", l)
	}
	if len(m.switches(0)) != 1 {
		t.Fatalf("switches %v", m.switches(0))
	}
}

// TestDialTriesNextConfigured: a base exchange that gives up on one
// configured locator (VerifyFailed) moves the dial to the next.
func TestDialTriesNextConfigured(t *testing.T) {
	m := newSim(t, Config{})
	m.take(m.s.Configure(m.now, addrA))
	m.take(m.s.Configure(m.now, addrB))
	if m.current() != addrA {
		t.Fatalf("current %v, want the first configured", m.current())
	}
	m.take(m.s.VerifyFailed(m.now, addrA))
	m.wantState(addrA, Failed)
	m.wantSwitch(0, addrA, addrB, ReasonFailed)
	// Configured again before the association: A may be tried again, but
	// B, current and equal, stays.
	m.take(m.s.Configure(m.now, addrA))
	m.wantState(addrA, Unverified)
	if m.current() != addrB {
		t.Fatalf("current %v", m.current())
	}
}

// TestNoProbesBeforeAssociation: verification needs an UPDATE, so
// nothing is probed until the association exists; then everything
// unverified is.
func TestNoProbesBeforeAssociation(t *testing.T) {
	m := newSim(t, Config{})
	m.take(m.s.Configure(m.now, addrA))
	m.take(m.s.Configure(m.now, addrB))
	m.take(m.s.Received(m.now, addrX, 100)) // no association: not a candidate
	for _, l := range m.log {
		if l.d.Action == SendProbe {
			t.Fatalf("probe before the association: %v", l.d)
		}
	}
	if _, ok := m.s.Lookup(addrX); ok {
		t.Fatal("packet source learnt before the association")
	}
	m.alive[addrA] = true
	m.take(m.s.Established(m.now, addrA))
	if p := m.probes(addrB, 0); len(p) != 1 || p[0].d.Purpose != ProbeVerify || p[0].d.Attempt != 1 {
		t.Fatalf("probes to B: %v", p)
	}
	m.wantState(addrB, Unverified) // no longer a bootstrap: never current unverified
}

// TestVerification: UNVERIFIED to ACTIVE when the probe is answered (RFC
// 8046 §5.4, §5.1), with the round trip measured.
func TestVerification(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrB] = true
	m.rtt = 30 * time.Millisecond
	m.announce(loc(addrA, 600, false), loc(addrB, 600, false))
	m.wantState(addrB, Unverified)
	p := m.probes(addrB, 0)
	if len(p) != 1 || p[0].d.Purpose != ProbeVerify {
		t.Fatalf("probes %v", p)
	}
	m.runFor(100 * time.Millisecond)
	m.wantState(addrB, Active)
	l, _ := m.s.Lookup(addrB)
	if l.RTT != 30*time.Millisecond {
		t.Fatalf("rtt %v", l.RTT)
	}
	if m.current() != addrA {
		t.Fatalf("current %v: B is not preferred", m.current())
	}
}

// TestVerificationFails: UNVERIFIED to Failed after ProbeCount unanswered
// probes, ProbeInterval apart.
func TestVerificationFails(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.announce(loc(addrA, 600, false), loc(addrB, 600, false))
	m.runFor(2 * time.Second)
	m.wantState(addrB, Failed)
	p := m.probes(addrB, 0)
	if len(p) != DefaultProbeCount {
		t.Fatalf("%d probes, want %d", len(p), DefaultProbeCount)
	}
	for i, l := range p {
		if l.d.Attempt != uint8(i+1) || l.at != t0.Add(time.Duration(i)*DefaultProbeInterval) {
			t.Fatalf("probe %d: %v at %v", i, l.d, l.at.Sub(t0))
		}
	}
	// Not preferred over A: no recovery checks on a timer.
	m.runFor(time.Minute)
	if p := m.probes(addrB, 0); len(p) != DefaultProbeCount {
		t.Fatalf("%d probes after a minute", len(p))
	}
}

// TestVerifyFailedAtOnce: an explicit failure fails the locator without
// waiting for its probes.
func TestVerifyFailedAtOnce(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.announce(loc(addrA, 600, false), loc(addrB, 600, false))
	m.take(m.s.VerifyFailed(m.now, addrB))
	m.wantState(addrB, Failed)
	if d := m.s.Deadline(); !d.IsZero() && d.Before(m.now.Add(time.Second)) {
		t.Fatalf("a timer at %v for a failed locator", d.Sub(t0))
	}
}

// TestPreferredMovesOnlyWhenVerified: a new preferred locator is used
// only once verified; meanwhile the ACTIVE one carries the traffic (RFC
// 8046 §5.5 step 2).
func TestPreferredMovesOnlyWhenVerified(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrB] = true
	mk := m.mark()
	m.announce(loc(addrA, 600, false), loc(addrB, 600, true))
	m.wantNoSwitch(mk)
	if m.current() != addrA {
		t.Fatalf("current %v before verification", m.current())
	}
	m.runFor(time.Second)
	m.wantSwitch(mk, addrA, addrB, ReasonBetter)
	// The P bit moves back: A is ACTIVE, so the change is immediate (step 1).
	mk = m.mark()
	m.announce(loc(addrA, 600, true), loc(addrB, 600, false))
	m.wantSwitch(mk, addrB, addrA, ReasonBetter)
}

// TestLateAnswerStillVerifies: an answer that comes after a
// retransmission counts (no RTT sample: Karn).
func TestLateAnswerStillVerifies(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrB] = true
	m.rtt = 350 * time.Millisecond // longer than ProbeInterval
	m.announce(loc(addrB, 600, false))
	m.runFor(time.Second)
	m.wantState(addrB, Active)
	if l, _ := m.s.Lookup(addrB); l.RTT != 0 {
		t.Fatalf("rtt %v sampled from an ambiguous answer", l.RTT)
	}
}
