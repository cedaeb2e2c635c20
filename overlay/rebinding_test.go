package overlay

import (
	"testing"
	"time"
)

// TestRebindingSmallMessages: a client that sends only small messages (a
// sensor) has its NAT mapping changed. The server verifies the new source
// before it answers there (RFC 8046 §5.4), and the probe is paid for by
// credit (§5.6): the few small messages on the old path bought too little,
// so the authenticated ESP arriving from the new address must pay for it,
// or the server never follows and the association stalls until the idle
// close (the client, whose own probes are answered, never notices).
func TestRebindingSmallMessages(t *testing.T) {
	a, b, px := proxiedPair(t)
	ca, cb := listen(t, a, 0), listen(t, b, 7)
	go func() { // echo server
		buf := make([]byte, 2048)
		for {
			n, from, err := cb.ReadFrom(buf)
			if err != nil {
				return
			}
			cb.WriteTo(buf[:n], from)
		}
	}()
	ask := func(within time.Duration) bool {
		buf := make([]byte, 2048)
		for end := time.Now().Add(within); time.Now().Before(end); {
			ca.WriteTo([]byte("temperature=21.5C"), &Addr{HIT: b.HIT(), Port: 7})
			ca.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := ca.ReadFrom(buf); err == nil {
				return true
			}
		}
		return false
	}
	for range 5 {
		if !ask(2 * time.Second) {
			t.Fatal("no echo before the rebinding")
		}
	}
	na, err := px.Rebind()
	if err != nil {
		t.Fatal(err)
	}
	if !ask(6 * time.Second) {
		pi, _ := peerInfo(b, a.HIT())
		t.Fatalf("no echo for 6 s after the client's NAT mapping moved to %v; server's locators: %+v", na, pi.Locators)
	}
}
