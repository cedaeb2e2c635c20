package relay

import (
	"log/slog"
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

// testForwarder is a forwarder whose registrar grants RELAY_UDP_HIP to
// hosts; hosts are registered with grant.
func testForwarder(t *testing.T) *forwarder {
	reg := testRegistrar(func(c *Config) { c.MaxRegistrations = 100 })
	return newForwarder(fwdConfig{}, reg, slog.New(slog.DiscardHandler))
}

func grantRelay(t *testing.T, r *forwarder, h wire.HIT) {
	t.Helper()
	resp, _ := r.reg.decide(h, wire.RegRequest{Lifetime: wire.DurationToLifetime(time.Hour), Types: []uint8{wire.RegTypeRelayUDPHIP}})
	if len(resp.Types) != 1 {
		t.Fatalf("%v not registered", h)
	}
}

// espInfoPacket is a packet of type typ from sender to receiver that
// announces spi in ESP_INFO.
func espInfoPacket(t *testing.T, typ wire.PacketType, sender, receiver wire.HIT, spi uint32) wire.Packet {
	t.Helper()
	var b wire.Builder
	b.Reset(nil, typ, sender, receiver)
	b.Add(wire.ESPInfo{NewSPI: spi})
	pkt, err := b.Packet()
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// relayed sets up ESP forwarding between registered host h (at hAt, its
// SPI sH) and peer p (at pAt, its SPI sP), as p's I2 and h's R2 through
// the relay do.
func relayed(t *testing.T, r *forwarder, h, p wire.HIT, hAt, pAt netip.AddrPort, sH, sP uint32, now time.Time) {
	t.Helper()
	r.hold(h, espInfoPacket(t, wire.I2, p, h, sP), pAt, now)
	r.activate(h, espInfoPacket(t, wire.R2, h, p, sH), hAt, pAt, now)
}

func lookupNow(r *forwarder, spi uint32, from netip.AddrPort) (netip.AddrPort, bool) {
	return r.lookup(spi, from, time.Now().UnixNano())
}

// TestForwardEndsWithRegistration: ESP is forwarded for a registered
// host, both ways, and not after its grant ends (its association ended,
// or it cancelled); prune then forgets the entries.
func TestForwardEndsWithRegistration(t *testing.T) {
	for _, end := range []string{"association ended", "cancelled"} {
		r := testForwarder(t)
		h, p := hitN(1), hitN(2)
		hAt, pAt := netip.MustParseAddrPort("198.18.0.1:1000"), netip.MustParseAddrPort("198.18.0.2:2000")
		grantRelay(t, r, h)
		relayed(t, r, h, p, hAt, pAt, 0x1111, 0x2222, time.Now())
		if to, ok := lookupNow(r, 0x1111, pAt); !ok || to != hAt {
			t.Fatalf("p's ESP to h: %v %v", to, ok)
		}
		if to, ok := lookupNow(r, 0x2222, hAt); !ok || to != pAt {
			t.Fatalf("h's ESP to p: %v %v", to, ok)
		}
		switch end {
		case "association ended":
			r.Ended(h)
		case "cancelled":
			r.reg.decide(h, wire.RegRequest{Lifetime: 0, Types: []uint8{wire.RegTypeRelayUDPHIP}})
		}
		if _, ok := lookupNow(r, 0x1111, pAt); ok {
			t.Errorf("%s: p's ESP still forwarded to h", end)
		}
		if _, ok := lookupNow(r, 0x2222, hAt); ok {
			t.Errorf("%s: h's ESP still forwarded to p", end)
		}
		r.prune(time.Now())
		if n := r.stats().Forwards; n != 0 {
			t.Errorf("%s: %d entries after prune", end, n)
		}
	}
}

// TestForwardNotRedirectedByAnother: the entries of h's flow with p
// cannot be pointed elsewhere by another registered host m naming h's SPI
// (a), nor by a host x that makes an association with h and announces
// the SPI h uses toward p (b); h and p themselves still can (a move).
func TestForwardNotRedirectedByAnother(t *testing.T) {
	r := testForwarder(t)
	h, p, m, x := hitN(1), hitN(2), hitN(3), hitN(4)
	hAt, pAt := netip.MustParseAddrPort("198.18.0.1:1000"), netip.MustParseAddrPort("198.18.0.2:2000")
	mAt, xAt := netip.MustParseAddrPort("198.18.0.3:3000"), netip.MustParseAddrPort("198.18.0.4:4000")
	grantRelay(t, r, h)
	grantRelay(t, r, m)
	now := time.Now()
	relayed(t, r, h, p, hAt, pAt, 0x1111, 0x2222, now)
	// (a) m announces h's SPI to p's address.
	r.activate(m, espInfoPacket(t, wire.R2, m, p, 0x1111), mAt, pAt, now)
	if to, _ := lookupNow(r, 0x1111, pAt); to != hAt {
		t.Errorf("p's ESP to h now goes to %v", to)
	}
	// (b) x, through the relay with h, announces the SPI h uses toward p.
	relayed(t, r, h, x, hAt, xAt, 0x3333, 0x2222, now)
	if to, _ := lookupNow(r, 0x2222, hAt); to != pAt {
		t.Errorf("h's ESP to p now goes to %v", to)
	}
	// h moves: its own answer to p redirects p's ESP to it.
	hAt2 := netip.MustParseAddrPort("198.18.0.9:1001")
	r.activate(h, espInfoPacket(t, wire.UPDATE, h, p, 0x1111), hAt2, pAt, now)
	if to, _ := lookupNow(r, 0x1111, pAt); to != hAt2 {
		t.Errorf("after h moved, p's ESP to h goes to %v", to)
	}
	// p, registered too, moves: its own announcement of the SPI h sends
	// to it redirects h's ESP to p (each side sets the same entries).
	grantRelay(t, r, p)
	pAt2 := netip.MustParseAddrPort("198.18.0.8:2002")
	r.activate(p, espInfoPacket(t, wire.UPDATE, p, h, 0x2222), pAt2, hAt, now)
	if to, _ := lookupNow(r, 0x2222, hAt); to != pAt2 {
		t.Errorf("after p moved, h's ESP to p goes to %v", to)
	}
	if r.forged.Load() != 2 {
		t.Errorf("%d refused redirections counted, want 2", r.forged.Load())
	}
}

// TestPendingNotCrowdedOut: forged announcements to h from many
// addresses, which anyone can send and repeat, do not keep an honest
// peer's SPI from being held and activated by h's answer. (A flood that
// sends more than pendingPerHost announcements to h within the round trip
// of h's answer can still evict it; the peer's retransmission is then
// held anew.)
func TestPendingNotCrowdedOut(t *testing.T) {
	r := testForwarder(t)
	h, p := hitN(1), hitN(2)
	hAt, pAt := netip.MustParseAddrPort("198.18.0.1:1000"), netip.MustParseAddrPort("198.18.0.2:2000")
	grantRelay(t, r, h)
	now := time.Now()
	for round := range 3 { // repeated: a copy must not renew a forged hold
		for i := range pendingPerHost {
			from := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.9"), uint16(5000+i))
			r.hold(h, espInfoPacket(t, wire.UPDATE, hitN(9), h, uint32(0x9000+i)), from, now.Add(time.Duration(round)*time.Second))
		}
	}
	at := now.Add(3 * time.Second)
	r.hold(h, espInfoPacket(t, wire.I2, p, h, 0x2222), pAt, at)
	r.activate(h, espInfoPacket(t, wire.R2, h, p, 0x1111), hAt, pAt, at.Add(time.Millisecond))
	if to, ok := lookupNow(r, 0x2222, hAt); !ok || to != pAt {
		t.Fatalf("h's ESP to p: %v %v; the honest SPI was not held", to, ok)
	}
}

// TestRelayI1TableFull: sources spoofed to fill the I1 rate table do not
// shut out a new Initiator of another host; an IPv6 /64 is one source.
func TestRelayI1TableFull(t *testing.T) {
	r := newForwarder(fwdConfig{i1Rate: 5}, nil, nil)
	h, other := hitN(1), hitN(2)
	now := time.Unix(1000, 0)
	for i := 0; r.srcBuckets < maxBuckets; i++ {
		r.allow(h, netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
	if !r.allow(other, netip.MustParseAddr("198.18.0.7"), now) {
		t.Fatal("an I1 to another host refused once the table was full")
	}
	r2 := newForwarder(fwdConfig{i1Rate: 5}, nil, nil)
	n := 0
	for i := range 100 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
		if r2.allow(h, a, now) {
			n++
		}
	}
	if n != 5 || r2.srcBuckets != 1 {
		t.Fatalf("one /64: %d I1s allowed from %d buckets, want 5 from 1", n, r2.srcBuckets)
	}
}
