package relay

import (
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// TestRelayI1Rate: one source exhausting its I1 allowance for a host does
// not cut the host off from other sources; the host's total is bounded.
func TestRelayI1Rate(t *testing.T) {
	r := newForwarder(fwdConfig{i1Rate: 5}, nil, nil)
	h := wire.HIT{0x20, 0x01, 15: 1}
	now := time.Unix(1000, 0)
	a, b := netip.MustParseAddr("198.18.0.7"), netip.MustParseAddr("198.18.0.8")
	for i := 0; i < 5; i++ {
		if !r.allow(h, a, now) {
			t.Fatalf("I1 %d from a refused", i)
		}
	}
	if r.allow(h, a, now) {
		t.Fatal("a's sixth I1 within a second allowed")
	}
	if !r.allow(h, b, now) {
		t.Fatal("b refused because of a")
	}
	if !r.allow(h, a, now.Add(time.Second)) {
		t.Fatal("a's bucket did not refill")
	}
	// The host's total: 10 × the rate, whatever the sources.
	n := 0
	for i := 0; i < 100; i++ {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if r.allow(h, src, now.Add(time.Second)) {
			n++
		}
	}
	if n >= 50 {
		t.Fatalf("%d I1s from 100 sources in an instant; the host's bucket holds 50", n)
	}
}
