package overlay

import (
	"testing"
	"time"
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
