package overlay

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// routeStub stands in for the kernel's route (Stack.routeMTU) and counts
// the questions.
type routeStub struct {
	mtu   atomic.Int64
	local atomic.Bool
	asked atomic.Int64
}

func (r *routeStub) ask(netip.AddrPort) (int, bool) {
	r.asked.Add(1)
	return int(r.mtu.Load()), r.local.Load()
}

// wireLen is the IPv4 packet that carries an n-octet inner datagram to
// b's peer a over its outbound SA.
func wireLen(t *testing.T, s *Stack, peer wire.HIT, n int) int {
	t.Helper()
	p := s.lookupPeer(peer)
	o := p.out.Load()
	if o == nil {
		t.Fatal("no outbound SA")
	}
	return 20 + udpHeaderLen + udpHeaderLen + n + o.Overhead(udpHeaderLen+n)
}

// TestMaxDatagram: the largest datagram MaxDatagram reports fits the path
// MTU in one IPv4 packet, one octet more does not, and it arrives whole
// over real sockets. A routed path is capped at routedMTU whatever its
// interface says; a local one is not.
func TestMaxDatagram(t *testing.T) {
	cases := []struct {
		name  string
		route int
		local bool
		mtu   int
	}{
		{"small link", 1400, false, 1400},
		{"jumbo through a router", 9000, false, routedMTU},
		{"this host", 9000, true, 9000},
		{"icmp-learnt", 1280, false, 1280},
	}
	a, b := connected(t, nil, nil)
	rb := listen(t, b, 7)
	ra := listen(t, a, 7)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stub := &routeStub{}
			stub.mtu.Store(int64(tc.route))
			stub.local.Store(tc.local)
			a.routeMTU = stub.ask
			a.pmtus = pmtuCache{}
			n, ok := a.MaxDatagram(b.HIT())
			if !ok {
				t.Fatal("MaxDatagram: unknown")
			}
			if got := wireLen(t, a, b.HIT(), n); got > tc.mtu {
				t.Errorf("a %d-octet datagram is a %d-octet packet, over the path MTU %d", n, got, tc.mtu)
			}
			if got := wireLen(t, a, b.HIT(), n+1); got <= tc.mtu {
				t.Errorf("MaxDatagram %d is not the largest: %d octets would be a %d-octet packet", n, n+1, got)
			}
			if _, err := ra.WriteToAddr(pattern(n, n), Addr{HIT: b.HIT(), Port: 7}); err != nil {
				t.Fatal(err)
			}
			if got, _ := readOne(t, rb, 2*time.Second); len(got) != n {
				t.Fatalf("received %d octets, sent %d", len(got), n)
			}
		})
	}
}

// TestMaxDatagramRoute: over the real loopback route, the peer is local
// and nothing but MaxPayload limits a datagram.
func TestMaxDatagramRoute(t *testing.T) {
	r := newRoutes(nil)
	defer r.close()
	mtu, local := r.ask(netip.MustParseAddrPort("127.0.0.1:9"))
	if mtu == 0 {
		t.Skip("routes cannot be asked on this platform")
	}
	if !local || mtu < 65535 {
		t.Errorf("loopback route: mtu %d, local %v; want ≥ 65535, true", mtu, local)
	}
	a, b := connected(t, nil, nil)
	if n, ok := a.MaxDatagram(b.HIT()); !ok || n != MaxPayload {
		t.Errorf("MaxDatagram over the loopback = %d, %v; want %d", n, ok, MaxPayload)
	}
}

// TestMaxDatagramBeforeSA: before an outbound SA the largest overhead of
// the supported suites counts; an unknown peer has no figure.
func TestMaxDatagramBeforeSA(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	if n, ok := a.MaxDatagram(b.HIT()); ok {
		t.Fatalf("MaxDatagram of an unknown peer = %d, true", n)
	}
	stub := &routeStub{}
	stub.mtu.Store(1400)
	a.routeMTU = stub.ask
	a.AddPeer(b.HIT(), b.LocalAddr())
	n, ok := a.MaxDatagram(b.HIT())
	want := fitDatagram(1400-20-udpHeaderLen, maxESPOverhead)
	if !ok || n != want {
		t.Fatalf("MaxDatagram before the SA = %d, %v; want %d", n, ok, want)
	}
	if n+udpHeaderLen+maxESPOverhead(n+udpHeaderLen) > 1400-28 {
		t.Fatalf("%d octets do not fit under the worst suite", n)
	}
}

// TestMaxDatagramCache: the route is asked once per locator and per
// pmtuTTL, not per call.
func TestMaxDatagramCache(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	stub := &routeStub{}
	stub.mtu.Store(1400)
	a.routeMTU = stub.ask
	a.AddPeer(b.HIT(), b.LocalAddr())
	// AddPeer's poke comes to the control goroutine on s.wake, not
	// through ctrlIn: it is taken when no poke is pending, and then the
	// barrier makes sure it has been served.
	waitFor(t, 5*time.Second, "AddPeer's poke taken", func() bool { return a.lookupPeer(b.HIT()).pokes.Load() == 0 })
	barrier(t, a)
	for range 3 {
		a.MaxDatagram(b.HIT())
	}
	if n := stub.asked.Load(); n != 1 {
		t.Fatalf("3 calls asked the route %d times; want 1", n)
	}
	p := a.lookupPeer(b.HIT())
	p.setLocator(netip.MustParseAddrPort("127.0.0.2:9"))
	stub.mtu.Store(1300)
	n1300, _ := a.MaxDatagram(b.HIT())
	if stub.asked.Load() != 2 {
		t.Fatal("a new locator did not ask the route")
	}
	dst := netip.MustParseAddr("127.0.0.2")
	a.pmtus.mu.Lock()
	c := a.pmtus.m[dst]
	a.pmtus.m[dst] = pathMTU{mtu: c.mtu, at: c.at - int64(pmtuTTL)}
	a.pmtus.mu.Unlock()
	stub.mtu.Store(1400)
	n1400, _ := a.MaxDatagram(b.HIT())
	if stub.asked.Load() != 3 || n1400 <= n1300 {
		t.Fatalf("an expired figure was kept: asked %d, %d then %d octets", stub.asked.Load(), n1300, n1400)
	}
}

// BenchmarkAskRoute: what a cache miss costs (about 7 µs on the
// loopback, December 2026).
func BenchmarkAskRoute(b *testing.B) {
	to := netip.MustParseAddrPort("127.0.0.1:9")
	r := newRoutes(nil)
	defer r.close()
	for b.Loop() {
		r.ask(to)
	}
}
