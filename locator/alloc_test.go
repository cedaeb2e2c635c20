package locator

import (
	"testing"
	"time"
)

// TestSteadyStateAllocs: what the data path reports for every packet
// (Received, Sent, Allow on the current locator), the timer's look at the
// Set (Deadline) and a keepalive (HandleTimeout) allocate nothing once the
// Set has taken its first decisions.
func TestSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	s := New(Config{})
	now := t0
	s.Configure(now, addrA)
	s.Established(now, addrA)
	s.ApplyLocatorSet(now, locatorSet(t, loc(addrB, 3600, false)), 10500)
	s.Verified(now, addrB)
	s.RelayUp(now, relayH, relayA)
	tick := func() {
		now = now.Add(time.Millisecond)
		s.Sent(now, addrA)
		if ds := s.Received(now, addrA, 1200); len(ds) != 0 {
			t.Fatalf("decisions %v", ds)
		}
		if !s.Allow(now, addrA, 1200) {
			t.Fatal("refused")
		}
		_ = s.Deadline()
	}
	tick()
	if n := testing.AllocsPerRun(1000, tick); n != 0 {
		t.Fatalf("%v allocations per packet", n)
	}
	// A keepalive from the timer: the decision slice is reused.
	now = now.Add(time.Hour)
	s.HandleTimeout(now)
	idle := func() {
		now = now.Add(DefaultKeepaliveInterval)
		if ds := s.HandleTimeout(now); len(ds) == 0 {
			t.Fatal("no keepalive")
		}
	}
	if n := testing.AllocsPerRun(100, idle); n != 0 {
		t.Fatalf("%v allocations per keepalive", n)
	}
}

func BenchmarkReceived(b *testing.B) {
	s := New(Config{})
	now := t0
	s.Configure(now, addrA)
	s.Established(now, addrA)
	s.RelayUp(now, relayH, relayA)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		s.Received(now, addrA, 1200)
	}
}

func BenchmarkSent(b *testing.B) {
	s := New(Config{})
	now := t0
	s.Configure(now, addrA)
	s.Established(now, addrA)
	s.RelayUp(now, relayH, relayA)
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		s.Sent(now, addrA)
	}
}
