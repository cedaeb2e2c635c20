package overlay

import (
	"context"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// TestKeepalives: an idle direct association gets RFC 5770 §4.7 NAT
// keepalives from both ends every interval, which the other end counts
// (never as drops); one that carries data needs none from its sender.
func TestKeepalives(t *testing.T) {
	ka := func(c *Config) { c.KeepaliveInterval = 100 * time.Millisecond }
	a, b := connected(t, ka, ka)
	lb := listen(t, b, 7)
	la := listen(t, a, 0)
	waitFor(t, 3*time.Second, "keepalives both ways", func() bool {
		return a.Stats().KeepalivesIn >= 3 && b.Stats().KeepalivesIn >= 3
	})
	if d := a.Stats().Drops.Total() + b.Stats().Drops.Total(); d != 0 {
		t.Fatalf("%d drops", d)
	}
	// a sends every 20 ms: it has no reason to send keepalives meanwhile.
	before := a.Stats().KeepalivesOut
	for i := 0; i < 25; i++ {
		if _, err := la.WriteTo([]byte{byte(i)}, &Addr{HIT: b.HIT(), Port: 7}); err != nil {
			t.Fatal(err)
		}
		readOne(t, lb, time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	if n := a.Stats().KeepalivesOut - before; n > 1 {
		t.Fatalf("%d keepalives sent while data flowed", n)
	}
}

// TestNoKeepaliveAtFirstUse: the first data of a new association wakes
// each end's locator Set, whose first choice is the address the exchange
// ran over. That is no path switch: neither end may send a keepalive for
// it, an extra packet (and wake-up of the peer) in the first round trips
// of every association. Before, both did.
func TestNoKeepaliveAtFirstUse(t *testing.T) {
	// As a client meets a server: only a knows where b is, and b learns a
	// from its I2.
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	a.AddPeer(b.HIT(), b.LocalAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}
	lb := listen(t, b, 7)
	la := listen(t, a, 0)
	for i := 0; i < 3; i++ {
		if _, err := la.WriteTo([]byte{byte(i)}, &Addr{HIT: b.HIT(), Port: 7}); err != nil {
			t.Fatal(err)
		}
		_, from := readOne(t, lb, time.Second)
		if _, err := lb.WriteTo([]byte{byte(i)}, from); err != nil {
			t.Fatal(err)
		}
		readOne(t, la, time.Second)
	}
	// Both Sets exist now (the first use made them) and chose their path.
	waitFor(t, 2*time.Second, "locator Sets on both ends", func() bool {
		return a.hasSet(b.HIT()) && b.hasSet(a.HIT())
	})
	barrier(t, a)
	barrier(t, b)
	if ka, kb := a.Stats().KeepalivesOut, b.Stats().KeepalivesOut; ka+kb != 0 {
		t.Fatalf("keepalives at first use: a sent %d, b sent %d", ka, kb)
	}
}

// hasSet reports whether the peer h has a locator Set (pathSet made one).
func (s *Stack) hasSet(h wire.HIT) bool {
	p := s.lookupPeer(h)
	return p != nil && p.located.Load()
}
