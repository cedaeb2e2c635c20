package locator

import (
	"net/netip"
	"testing"
	"time"
)

// TestRebindingVerifiedBeforeMoving: the peer's NAT rebinds; its packets
// come from X. X becomes an UNVERIFIED candidate and is probed; the path
// stays on A until X answers, then moves (ReasonRebinding) and A must be
// verified again before any use (RFC 8046 §5.3, §5.4, §5.1).
func TestRebindingVerifiedBeforeMoving(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.traffic(10 * time.Millisecond)
	m.runFor(time.Second)

	// The rebinding: the peer's packets now come from X, and what we send
	// to A no longer arrives.
	m.alive[addrA], m.alive[addrX] = false, true
	m.replyFrom = func(netip.AddrPort) netip.AddrPort { return addrX }
	m.oneWay = true
	m.events = nil // nothing of the peer's in flight from A
	m.rtt = 40 * time.Millisecond
	mk := m.mark()
	ds := m.s.Received(m.now, addrX, 1200)
	if len(ds) != 1 || ds[0].Action != SendProbe || ds[0].To != addrX || ds[0].Purpose != ProbeVerify {
		t.Fatalf("decisions %v, want a verification probe to X", ds)
	}
	m.wantState(addrX, Unverified)
	if m.current() != addrA {
		t.Fatal("the path moved before verification")
	}
	if l, _ := m.s.Lookup(addrX); l.Origin != OriginPacket {
		t.Fatalf("origin %v", l.Origin)
	}
	m.take(ds)
	m.runFor(m.rtt - time.Millisecond)
	if m.current() != addrA {
		t.Fatal("the path moved before the answer")
	}
	m.runFor(time.Second)
	m.wantSwitch(mk, addrA, addrX, ReasonRebinding)
	m.wantState(addrX, Active)
	m.wantState(addrA, Failed)
}

// TestReplayFromThirdAddressNeverMoves: copies of the peer's packets sent
// from third addresses (they pass authentication once each, having
// raced the originals) make at most MaxCandidates addresses probed at a
// time; unanswered, they fail, and the path never moves. The probes are
// paid for by the copies (no amplification).
func TestReplayFromThirdAddressNeverMoves(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.traffic(10 * time.Millisecond)
	m.runFor(time.Second)
	mk := m.mark()
	third := []netip.AddrPort{addrX, addrY, addrZ}
	sent := map[netip.AddrPort]int{}
	recv := map[netip.AddrPort]int{}
	for end := m.now.Add(30 * time.Second); m.now.Before(end); {
		m.runFor(50 * time.Millisecond)
		for _, a := range third {
			ds := m.s.Received(m.now, a, 100)
			recv[a] += 100
			for _, d := range ds {
				if d.Action == SendProbe && m.s.AllowProbe(m.now, d.To, probeLen) {
					sent[d.To] += probeLen
				}
			}
			m.take(ds)
		}
		pending := 0
		for _, a := range third {
			if m.state(a) == Unverified {
				pending++
			}
		}
		if pending > MaxCandidates {
			t.Fatalf("%d candidates under verification", pending)
		}
	}
	m.wantNoSwitch(mk)
	if m.current() != addrA {
		t.Fatalf("current %v", m.current())
	}
	for _, a := range third {
		if st := m.state(a); st == Active {
			t.Fatalf("%v became %v", a, st)
		}
		if sent[a] > recv[a] {
			t.Fatalf("sent %d octets of probes to %v, received %d from it", sent[a], a, recv[a])
		}
	}
	// The rate of probes to the third addresses is bounded by the
	// back-off: checks of ProbeCount probes each, the first at once, the
	// next RecoveryMin after the failure, then 2, 4, 8 s and so on up to
	// RecoveryMax (15 s): five each in 30 s. Without the back-off, a
	// check per RecoveryMin: 171.
	n := 0
	for _, a := range third {
		n += len(m.probes(a, mk))
	}
	if max := 3 * DefaultProbeCount * 5; n > max {
		t.Fatalf("%d probes to third addresses in 30 s, bound %d", n, max)
	}
}

// TestReplayWithoutBudgetNotProbed: a copy too small to pay for a probe,
// with no credit, gets the address no probe at all.
func TestReplayWithoutBudgetNotProbed(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	ds := m.s.Received(m.now, addrX, 60)
	if len(ds) != 1 || ds[0].Action != SendProbe {
		t.Fatalf("decisions %v", ds)
	}
	if m.s.AllowProbe(m.now, addrX, probeLen) {
		t.Fatal("a 200-octet probe allowed for 60 octets received and no credit")
	}
}

// TestMultihomedSourceDoesNotMove: the peer sends from a second address X
// while still sending from A: X is verified and kept as a standby, the
// path stays on A.
func TestMultihomedSourceDoesNotMove(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.alive[addrX] = true
	m.traffic(10 * time.Millisecond)
	m.runFor(time.Second)
	mk := m.mark()
	m.take(m.s.Received(m.now, addrX, 1200))
	m.runFor(time.Second) // A keeps carrying the peer's packets meanwhile
	m.wantState(addrX, Active)
	m.wantNoSwitch(mk)
	m.wantState(addrA, Active)
}
