package locator

import (
	"testing"
	"time"
)

// TestCreditEarnAndSpend: packets on verified locators earn credit;
// data to an unverified locator spends it and is refused beyond it; data
// to an ACTIVE locator is free (RFC 8046 §5.6.1, Figures 8 and 9).
func TestCreditEarnAndSpend(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.announce(loc(addrA, 600, true), loc(addrB, 600, false)) // B unverified
	m.s.Received(m.now, addrA, 1000)
	if c := m.s.Credit(); c != 1000 {
		t.Fatalf("credit %d", c)
	}
	if !m.s.Allow(m.now, addrB, 600) || m.s.Credit() != 400 {
		t.Fatalf("600 to B: credit %d", m.s.Credit())
	}
	if m.s.Allow(m.now, addrB, 401) {
		t.Fatal("401 octets allowed with 400 of credit")
	}
	if !m.s.Allow(m.now, addrB, 400) || m.s.Credit() != 0 {
		t.Fatalf("exactly the credit refused, or not spent: %d", m.s.Credit())
	}
	if !m.s.Allow(m.now, addrA, 1<<20) || m.s.Credit() != 0 {
		t.Fatal("data to the ACTIVE current locator was charged or refused")
	}
	if m.s.Allow(m.now, addrX, 1) {
		t.Fatal("an unknown address allowed")
	}
	// The credit does not change when sending to an ACTIVE locator, and
	// once B is verified it is free.
	m.s.Received(m.now, addrA, 100)
	m.s.Verified(m.now, addrB)
	if !m.s.Allow(m.now, addrB, 5000) || m.s.Credit() != 100 {
		t.Fatalf("verified B: credit %d", m.s.Credit())
	}
}

// TestCreditOnlyFromVerified: packets from an unverified source earn no
// credit, so an attacker's copies buy nothing.
func TestCreditOnlyFromVerified(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.take(m.s.Received(m.now, addrX, 5000))
	m.take(m.s.Received(m.now, addrX, 5000))
	if c := m.s.Credit(); c != 0 {
		t.Fatalf("credit %d from an unverified source", c)
	}
	if m.s.Allow(m.now, addrX, 1) {
		t.Fatal("data to an unverified source allowed without credit")
	}
}

// TestCreditAging: the counter is multiplied by 7/8 every 5 s (RFC 8046
// §5.6.2), and a long silence empties it.
func TestCreditAging(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.announce(loc(addrA, 3600, true), loc(addrB, 3600, false))
	m.s.Received(m.now, addrA, 8000)
	for i, want := range []int64{8000, 7000, 6125} {
		at := m.now.Add(time.Duration(i)*creditAgingInterval + time.Millisecond)
		m.s.Allow(at, addrB, 0)
		if c := m.s.Credit(); c != want {
			t.Fatalf("after %d intervals: %d, want %d", i, c, want)
		}
	}
	m.s.Received(m.now.Add(10*time.Second), addrA, maxCredit)
	m.s.Allow(m.now.Add(time.Hour), addrB, 0)
	if c := m.s.Credit(); c != 0 {
		t.Fatalf("after an hour: %d", c)
	}
	if m.s.Allow(m.now.Add(time.Hour), addrB, 1) {
		t.Fatal("allowed with no credit")
	}
}

// TestAllowProbeBudget: a probe to an unverified packet source is paid
// for by what came from it, then by the credit; probes to announced or
// verified locators are free.
func TestAllowProbeBudget(t *testing.T) {
	m := newSim(t, Config{})
	m.established(addrA)
	m.s.Received(m.now, addrX, 300) // a candidate with 300 octets; its probe not yet sent
	if !m.s.AllowProbe(m.now, addrX, 200) {
		t.Fatal("probe within what came from X refused")
	}
	if m.s.AllowProbe(m.now, addrX, 200) {
		t.Fatal("probe beyond what came from X allowed without credit")
	}
	m.s.Received(m.now, addrA, 150)
	if !m.s.AllowProbe(m.now, addrX, 200) || m.s.Credit() != 50 {
		t.Fatalf("100 from X and 100 of credit: credit %d", m.s.Credit())
	}
	m.announce(loc(addrB, 600, false))
	if !m.s.AllowProbe(m.now, addrB, 10000) || !m.s.AllowProbe(m.now, addrA, 10000) {
		t.Fatal("probe to an announced or verified locator refused")
	}
	if m.s.AllowProbe(m.now, addrZ, 1) {
		t.Fatal("probe to an unknown address allowed")
	}
}
