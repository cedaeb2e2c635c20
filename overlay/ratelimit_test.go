package overlay

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// TestR1LimiterSource: a flood from one socket gets its burst and then the
// refill rate, whatever it sends; an honest Initiator's I1 and its
// retransmissions after 1 and 2 s (RFC 9028 §4.2 back-off) are all
// answered; another source is unaffected by the flood.
func TestR1LimiterSource(t *testing.T) {
	l := newR1Limiter()
	now := time.Unix(1000, 0)
	flood := netip.MustParseAddrPort("192.0.2.1:4000")
	answered := 0
	for i := range 10000 { // 10 000 I1s in one second
		if l.allow(flood, now.Add(time.Duration(i)*100*time.Microsecond)) {
			answered++
		}
	}
	if max := r1SourceBurst + r1SourceRate + 1; answered > max {
		t.Fatalf("flood from one source: %d R1s in a second, want at most %d", answered, max)
	}
	honest := netip.MustParseAddrPort("192.0.2.1:5000") // same address, another port
	for _, at := range []time.Duration{0, time.Second, 3 * time.Second} {
		if !l.allow(honest, now.Add(at)) {
			t.Fatalf("honest I1 at +%v refused during a flood from its own address", at)
		}
	}
	if !l.allow(netip.MustParseAddrPort("198.51.100.7:10500"), now) {
		t.Fatal("unrelated source refused")
	}
}

// TestR1LimiterAddress: a flood from one address over many ports is bounded
// by the address's bucket; the total bounds a flood from many addresses.
func TestR1LimiterAddress(t *testing.T) {
	l := newR1Limiter()
	now := time.Unix(1000, 0)
	answered := 0
	for port := range 2 * r1AddrBurst {
		if l.allow(netip.AddrPortFrom(netip.MustParseAddr("192.0.2.9"), uint16(1024+port)), now) {
			answered++
		}
	}
	if answered != r1AddrBurst {
		t.Fatalf("one address, %d ports: %d R1s, want the address burst %d", 2*r1AddrBurst, answered, r1AddrBurst)
	}
	answered = 0
	for i := range 2 * r1TotalBurst {
		a := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		if l.allow(netip.AddrPortFrom(a, 10500), now) {
			answered++
		}
	}
	if answered != r1TotalBurst-r1AddrBurst {
		t.Fatalf("%d addresses at once: %d R1s, want what is left of the total burst, %d", 2*r1TotalBurst, answered, r1TotalBurst-r1AddrBurst)
	}
}

// TestR1LimiterBounded: the tables never exceed r1MaxBuckets however many
// sources there are; idle buckets are swept and new sources answered again.
func TestR1LimiterBounded(t *testing.T) {
	l := newR1Limiter()
	now := time.Unix(1000, 0)
	for i := range 3 * r1MaxBuckets {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(netip.AddrPortFrom(a, 1), now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := l.source.Len(); n > r1MaxBuckets {
		t.Fatalf("%d source buckets, bound %d", n, r1MaxBuckets)
	}
	if n := l.addr.Len(); n > r1MaxBuckets {
		t.Fatalf("%d address buckets, bound %d", n, r1MaxBuckets)
	}
	later := now.Add(time.Hour)
	if !l.allow(netip.MustParseAddrPort("203.0.113.5:1"), later) {
		t.Fatal("a new source is refused after the tables filled and went idle")
	}
}

// TestR1LimiterForgetsIdle: a table that meets many sources once each (a
// relay's registering hosts) holds the buckets of the last few seconds,
// not of every source ever seen, and a source that has just spent its
// burst is still refused: only buckets full again are forgotten.
func TestR1LimiterForgetsIdle(t *testing.T) {
	l := newR1Limiter()
	now := time.Unix(1000, 0)
	const n, every = 10_000, time.Millisecond // 10 s of 1000 new sources a second
	flood := netip.MustParseAddrPort("198.51.100.7:9")
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		now = now.Add(every)
		l.allow(netip.AddrPortFrom(a, 1), now)
		if i >= n-r1SourceBurst {
			l.allow(flood, now) // spends its burst at the end
		}
	}
	// A bucket is full again r1SourceBurst/r1SourceRate (2 s) after its
	// use; sweeps come once a second: about 3 s of sources remain.
	if got, limit := l.source.Len(), 3*int(time.Second/every)+100; got > limit {
		t.Errorf("%d source buckets after %d sources, want at most %d (the last seconds')", got, n, limit)
	}
	if l.allow(flood, now) {
		t.Error("a source that just spent its burst was forgotten by a sweep and answered again")
	}
}

// TestR1LimiterRendezvous: I1s that a rendezvous server forwarded all
// come from the server's address; the read loop does not limit them by
// it (the control goroutine limits them by their FROM address, after
// RVS_HMAC), while direct I1s from one address are limited.
func TestR1LimiterRendezvous(t *testing.T) {
	a := newTestStack(t, 0, nil)
	i1 := func(rvs bool) wire.Packet {
		var b wire.Builder
		b.Reset(nil, wire.I1, wire.HIT(testKey(t, 1).Public().HIT()), a.HIT())
		if rvs {
			b.AddRaw(wire.ParamFrom, make([]byte, 16))
			b.AddRaw(wire.ParamRVSHMAC, make([]byte, 32))
		}
		pkt, err := b.Packet()
		if err != nil {
			t.Fatal(err)
		}
		return pkt
	}
	server := netip.MustParseAddrPort("198.51.100.1:10500")
	admitted := func(pkt wire.Packet) (n int) {
		for range 20 {
			if a.admitI1(pkt, server) {
				n++
			}
		}
		return n
	}
	if n := admitted(i1(true)); n != 20 {
		t.Errorf("%d of 20 rendezvous I1s from the server admitted, want all", n)
	}
	if n := admitted(i1(false)); n == 20 {
		t.Error("20 of 20 direct I1s from one address admitted: not limited")
	}
}

// forgedNotify is a NOTIFY claiming from, with a signature of random
// octets: what anyone can send in a known peer's name.
func forgedNotify(t *testing.T, from, to wire.HIT) []byte {
	return forged(t, wire.NOTIFY, from, to, func(b *wire.Builder) {
		b.Add(wire.Notification{Type: 16385, Data: []byte{1, 2, 3, 4}})
	})
}

// forged is a control packet of type typ claiming from, with what params
// adds and a HIP_SIGNATURE of random octets, framed for UDP.
func forged(t *testing.T, typ wire.PacketType, from, to wire.HIT, params func(*wire.Builder)) []byte {
	t.Helper()
	var b wire.Builder
	b.Reset(nil, typ, from, to)
	params(&b)
	sig := make([]byte, 2+64)
	binary.BigEndian.PutUint16(sig, wire.AlgECDSA)
	rand.Read(sig[2:])
	b.AddRaw(wire.ParamHIPSignature, sig)
	p, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return wire.AppendUDPControl(nil, p)
}

// TestNotifyFlood: forged NOTIFYs in a known peer's name, which cost a
// signature check each, are shed by the read loop beyond a small budget,
// before they reach the control goroutine, and the association with the
// peer carries on.
func TestNotifyFlood(t *testing.T) {
	a, b := connected(t, nil, nil)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := net.UDPAddrFromAddrPort(a.LocalAddr())
	before := a.Stats()
	const n = 2000
	for range n {
		if _, err := conn.WriteTo(forgedNotify(t, b.HIT(), a.HIT()), to); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the flood read", func() bool {
		st := a.Stats()
		return st.Drops.RateLimited+st.Drops.ControlRejected+st.Drops.ControlBacklog-
			before.Drops.RateLimited-before.Drops.ControlRejected-before.Drops.ControlBacklog >= n-100
	})
	barrier(t, a)
	st := a.Stats()
	checked := st.Drops.ControlRejected - before.Drops.ControlRejected
	limited := st.Drops.RateLimited - before.Drops.RateLimited
	// The burst, and what the rate refills while the flood is read.
	if checked > notifyBurst+notifyRate*5 || limited < n-100-checked {
		t.Errorf("of %d forged NOTIFYs %d were checked and %d shed by the read loop; want at most %d checked",
			n, checked, limited, notifyBurst+notifyRate*5)
	}
	if !a.Live(b.HIT()) {
		t.Fatal("the association did not survive the flood")
	}
	// And the peer's own packets still get through: a round trip.
	ca, cb := listen(t, a, 9), listen(t, b, 9)
	if _, err := cb.WriteToAddr([]byte("ping"), Addr{HIT: a.HIT(), Port: 9}); err != nil {
		t.Fatal(err)
	}
	ca.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := ca.ReadFromAddr(make([]byte, 16)); err != nil {
		t.Fatal(err)
	}
}

// TestNotifyLimiter: per claimed sender, then in total.
func TestNotifyLimiter(t *testing.T) {
	l := newNotifyLimiter()
	now := time.Now()
	x, y := wire.HIT(testKey(t, 1).Public().HIT()), wire.HIT(testKey(t, 2).Public().HIT())
	n := 0
	for range 100 {
		if l.allow(x, now) {
			n++
		}
	}
	if n != notifyBurst {
		t.Errorf("%d of 100 NOTIFYs from one sender allowed at once, want %d", n, notifyBurst)
	}
	if !l.allow(y, now) {
		t.Error("another sender's NOTIFY refused")
	}
	if !l.allow(x, now.Add(time.Second)) {
		t.Error("a NOTIFY a second later refused")
	}
	total := 0
	for i := range 1000 {
		var h wire.HIT
		h[15], h[14] = byte(i), byte(i>>8)
		if l.allow(h, now.Add(time.Second)) {
			total++
		}
	}
	if total > notifyTotalBurst {
		t.Errorf("%d NOTIFYs from 1000 senders allowed at once, want at most %d", total, notifyTotalBurst)
	}
}

// forgedCheck is an UPDATE with ECHO_REQUEST_SIGNED, a HIP_MAC and a
// signature of random octets, claiming from: a check of the path, as a
// host that lost nothing sends it, in anyone's name.
func forgedCheck(t *testing.T, from, to wire.HIT) []byte {
	return forged(t, wire.UPDATE, from, to, func(b *wire.Builder) {
		b.AddRaw(wire.ParamEchoRequestSigned, []byte{1, 2, 3, 4, 5, 6, 7, 8})
		mac := make([]byte, 32)
		rand.Read(mac)
		b.AddRaw(wire.ParamHIPMAC, mac)
	})
}

// TestLostStateNoReflector: an UPDATE from a host we have no association
// with draws one I1 to its source (lostState), which asks whether that
// host lost nothing. Forged ones, claiming a new HIT each, from 64 ports
// of one address: a bare UPDATE draws nothing; one with HIP_MAC and a
// signature draws at most one I1, smaller than it and not retransmitted,
// for lostBurst and then lostRate a second of them in all; none creates
// an association, for nobody answers as the claimed HIT.
func TestLostStateNoReflector(t *testing.T) {
	a := newTestStack(t, 0, nil)
	to := net.UDPAddrFromAddrPort(a.LocalAddr())
	base := wire.HIT(testKey(t, 5).HIT())
	var conns []*net.UDPConn
	sent, k := 0, 0
	for range 64 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		for _, pkt := range [][]byte{bareUpdate(t, base, a.HIT()), forgedCheck(t, base, a.HIT())} {
			k++
			h := base
			h[14], h[15] = byte(k>>8), byte(k)
			copy(pkt[wire.NonESPMarkerLen+8:], h[:]) // the sender HIT
			if _, err := c.WriteTo(pkt, to); err != nil {
				t.Fatal(err)
			}
			sent += len(pkt)
		}
	}
	time.Sleep(1500 * time.Millisecond) // what comes, comes by then
	got, i1s, busiest := 0, 0, 0
	buf := make([]byte, 4096)
	for _, c := range conns {
		n := 0
		for {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			m, _, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			got += m
			n += m
			if pkt, err := wire.ParsePacket(buf[wire.NonESPMarkerLen:m]); err == nil && pkt.Type() == wire.I1 {
				i1s++
			}
		}
		busiest = max(busiest, n)
	}
	t.Logf("128 forged UPDATEs, %d octets: %d I1s, %d octets back (at most %d to one port); %d exchanges", sent, i1s, got, busiest, a.Stats().BEX.Started)
	if i1s == 0 {
		t.Error("no I1 asks the claimed host whether it holds an association we lost")
	}
	if limit := lostBurst + 2*lostRate; i1s > limit {
		t.Errorf("%d I1s for forged UPDATEs, want at most %d", i1s, limit)
	}
	if per := sent / 64; busiest > per {
		t.Errorf("a port that sent %d octets got %d back", per, busiest)
	}
	if n := a.Stats().BEX.Started; n != 0 {
		t.Errorf("forged UPDATEs started %d base exchanges", n)
	}
}

// bareUpdate is an UPDATE with no parameter: what anyone can send in a
// HIT's name without even a fake MAC.
func bareUpdate(t *testing.T, from, to wire.HIT) []byte {
	var b wire.Builder
	b.Reset(nil, wire.UPDATE, from, to)
	p, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return wire.AppendUDPControl(nil, p)
}

// TestLostStateBlindR1: a spoofer that cannot receive sends a forged check
// in a HIT's name and then, blindly, a junk R1 in that name "from" the
// same address: the R1 is checked as any R1 is before anything is kept,
// so no exchange starts and the address gets the one I1 and nothing more.
func TestLostStateBlindR1(t *testing.T) {
	a := newTestStack(t, 0, nil)
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to := net.UDPAddrFromAddrPort(a.LocalAddr())
	claimed := wire.HIT(testKey(t, 5).HIT())
	c.WriteTo(forgedCheck(t, claimed, a.HIT()), to)
	c.WriteTo(forged(t, wire.R1, claimed, a.HIT(), func(b *wire.Builder) {
		b.Add(wire.R1Counter{Counter: 1})
		b.Add(wire.Puzzle{K: 0, I: make([]byte, 8)})
	}), to)
	barrier(t, a)
	n := 0
	buf := make([]byte, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, _, err := c.ReadFrom(buf); err != nil {
			break
		}
		n++
	}
	if n != 1 {
		t.Errorf("the spoofed address got %d packets, want the one I1", n)
	}
	if st := a.Stats(); st.BEX.Started != 0 {
		t.Errorf("a junk R1 started %d base exchanges", st.BEX.Started)
	}
}
