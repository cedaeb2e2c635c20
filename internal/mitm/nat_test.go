package mitm

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// udp opens a plain UDP socket on ip, closed at the end of the test.
func udp(t *testing.T, ip netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort {
	return unmap(c.LocalAddr().(*net.UDPAddr).AddrPort())
}

func send(t *testing.T, c *net.UDPConn, to netip.AddrPort, m string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(m), to); err != nil {
		t.Fatal(err)
	}
}

// recv reads one datagram from c within d; ok is false if none came.
func recv(t *testing.T, c *net.UDPConn, d time.Duration) (m string, from netip.AddrPort, ok bool) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", netip.AddrPort{}, false
		}
		t.Fatal(err)
	}
	return string(buf[:n]), unmap(from), true
}

// expect reads one datagram and checks its payload and source.
func expect(t *testing.T, c *net.UDPConn, m string, from netip.AddrPort) {
	t.Helper()
	got, src, ok := recv(t, c, 2*time.Second)
	if !ok {
		t.Fatalf("%v: no datagram, want %q from %v", addrOf(c), m, from)
	}
	if got != m || src != from {
		t.Fatalf("%v: got %q from %v, want %q from %v", addrOf(c), got, src, m, from)
	}
}

// expectNone checks that nothing arrives at c for a while.
func expectNone(t *testing.T, c *net.UDPConn) {
	t.Helper()
	if got, src, ok := recv(t, c, 50*time.Millisecond); ok {
		t.Fatalf("%v: got %q from %v, want nothing", addrOf(c), got, src)
	}
}

func TestRebind(t *testing.T) {
	target, client := udp(t, lo), udp(t, lo)
	p := newProxy(t, addrOf(target))
	if p.TargetFacing() != p.Addr() {
		t.Fatalf("target-facing %v before a rebind, want %v", p.TargetFacing(), p.Addr())
	}
	send(t, client, p.Addr(), "one")
	expect(t, target, "one", p.Addr())
	send(t, target, p.Addr(), "one back")
	expect(t, client, "one back", p.Addr())

	// A held datagram is released from the mapping of the moment.
	p.SetHook(func(d *Datagram) Verdict {
		if string(d.Data) == "held" {
			return Hold
		}
		return Pass
	})
	send(t, client, p.Addr(), "held")
	eventually(t, "held", func() bool { return len(p.Held()) == 1 })

	na, err := p.Rebind()
	if err != nil {
		t.Fatal(err)
	}
	if na == p.Addr() || na.Addr() != lo || p.TargetFacing() != na {
		t.Fatalf("rebound to %v (target-facing %v), proxy at %v", na, p.TargetFacing(), p.Addr())
	}
	p.Release()
	expect(t, target, "held", na)

	// The target sees the client at the new address; the client sees no
	// change.
	send(t, client, p.Addr(), "two")
	expect(t, target, "two", na)
	send(t, target, na, "two back")
	expect(t, client, "two back", p.Addr())
	if err := p.Inject(ToTarget, []byte("injected")); err != nil {
		t.Fatal(err)
	}
	expect(t, target, "injected", na)
	if c, _ := p.Client(); c != addrOf(client) {
		t.Fatalf("client %v, want %v", c, addrOf(client))
	}

	// The old mapping is closed by default: what the target sends there
	// is dropped, and seen as such.
	send(t, target, p.Addr(), "to the old mapping")
	expectNone(t, client)
	eventually(t, "the drop counted", func() bool { return p.Counts(ToClient).Dropped == 1 })
	old := p.Select(func(d *Datagram) bool { return string(d.Data) == "to the old mapping" })
	if len(old) != 1 || old[0].Action != ActionDrop || old[0].Via != p.Addr() || old[0].Dir != ToClient {
		t.Fatalf("old-mapping record %v", old)
	}
	viaNew := p.Select(func(d *Datagram) bool { return string(d.Data) == "two back" })
	if len(viaNew) != 1 || viaNew[0].Via != na || viaNew[0].Src != addrOf(target) || viaNew[0].Dst != addrOf(client) {
		t.Fatalf("new-mapping record %v", viaNew)
	}
	inj := p.Select(func(d *Datagram) bool { return d.Injected })
	if len(inj) != 1 || inj[0].Src != na || inj[0].Via != na {
		t.Fatalf("injected record %v", inj)
	}

	// A second Rebind closes the first one's socket.
	nb, err := p.Rebind()
	if err != nil {
		t.Fatal(err)
	}
	if nb == na || nb == p.Addr() {
		t.Fatalf("second rebind to %v", nb)
	}
	send(t, client, p.Addr(), "three")
	expect(t, target, "three", nb)
	send(t, target, na, "to a closed socket")
	expectNone(t, client)
	send(t, target, nb, "three back")
	expect(t, client, "three back", p.Addr())
}

func TestRebindKeepsOldMappings(t *testing.T) {
	target, client := udp(t, lo), udp(t, lo)
	p := newProxy(t, addrOf(target))
	p.SetOldMapping(-1) // until Close
	send(t, client, p.Addr(), "hello")
	expect(t, target, "hello", p.Addr())
	na, err := p.Rebind()
	if err != nil {
		t.Fatal(err)
	}
	p.SetOldMapping(150 * time.Millisecond)
	nb, err := p.Rebind()
	if err != nil {
		t.Fatal(err)
	}
	// All three mappings forward to the client for now.
	for _, a := range []netip.AddrPort{p.Addr(), na, nb} {
		send(t, target, a, "via "+a.String())
		expect(t, client, "via "+a.String(), p.Addr())
	}
	// na's time runs out; p.Addr() is kept until Close.
	time.Sleep(250 * time.Millisecond)
	send(t, target, na, "late")
	expectNone(t, client)
	send(t, target, p.Addr(), "still kept")
	expect(t, client, "still kept", p.Addr())
	eventually(t, "the expired mapping forgotten", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.old) == 1 && p.old[0] == p.front
	})
	if c := p.Counts(ToClient); c.Forwarded != 4 || c.Dropped != 0 {
		t.Fatalf("counts %+v", c)
	}
}

func TestRebindExpiresFront(t *testing.T) {
	target, client := udp(t, lo), udp(t, lo)
	p := newProxy(t, addrOf(target))
	p.SetOldMapping(100 * time.Millisecond)
	send(t, client, p.Addr(), "hello")
	expect(t, target, "hello", p.Addr())
	if _, err := p.Rebind(); err != nil {
		t.Fatal(err)
	}
	send(t, target, p.Addr(), "in time")
	expect(t, client, "in time", p.Addr())
	time.Sleep(150 * time.Millisecond)
	send(t, target, p.Addr(), "too late")
	expectNone(t, client)
	if c := p.Counts(ToClient); c.Forwarded != 1 || c.Dropped != 1 {
		t.Fatalf("counts %+v", c)
	}
	// The client's side is untouched by the expiry.
	send(t, client, p.Addr(), "again")
	expect(t, target, "again", p.TargetFacing())
}

func TestRebindTo(t *testing.T) {
	target, client := udp(t, lo), udp(t, lo)
	p := newProxy(t, addrOf(target))
	other := netip.MustParseAddr("127.0.0.5")
	na, err := p.RebindTo(other)
	if err != nil {
		t.Fatal(err)
	}
	if na.Addr() != other || p.TargetFacing() != na {
		t.Fatalf("rebound to %v, target-facing %v", na, p.TargetFacing())
	}
	send(t, client, p.Addr(), "from elsewhere")
	expect(t, target, "from elsewhere", na)
	send(t, target, na, "back")
	expect(t, client, "back", p.Addr())
	// Rebind stays on the address of the last RebindTo.
	nb, err := p.Rebind()
	if err != nil || nb.Addr() != other || nb == na {
		t.Fatalf("rebind: %v %v", nb, err)
	}
	if _, err := p.RebindTo(netip.MustParseAddr("192.0.2.1")); err == nil {
		t.Fatal("rebind to a non-loopback address")
	}
	if _, err := p.RebindTo(netip.IPv6Loopback()); err == nil {
		t.Fatal("rebind to ::1 in front of an IPv4 target")
	}
	if p.TargetFacing() != nb {
		t.Fatalf("a failed rebind moved the mapping to %v", p.TargetFacing())
	}
}

func TestOldMappingsAreBounded(t *testing.T) {
	target := udp(t, lo)
	p := newProxy(t, addrOf(target))
	p.SetOldMapping(-1)
	for range MaxOldMappings + 3 {
		if _, err := p.Rebind(); err != nil {
			t.Fatal(err)
		}
	}
	p.mu.Lock()
	n, front := len(p.old), len(p.old) > 0 && p.old[0] == p.front
	p.mu.Unlock()
	if n != MaxOldMappings || front {
		t.Fatalf("%d old mappings kept (the client-facing one first: %v), want %d", n, front, MaxOldMappings)
	}
	// The goroutines of the closed ones end: one for the client-facing
	// socket, one for the current mapping, one per old one kept.
	eventually(t, "evicted mappings to stop", func() bool {
		return goroutinesOf(p) == 2+MaxOldMappings
	})
}

// goroutinesOf counts the proxy's socket goroutines still running.
func goroutinesOf(p *Proxy) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "mitm.(*Proxy).loop(")
}

func TestCloseAfterRebind(t *testing.T) {
	base := runtime.NumGoroutine()
	target, err := Listen(lo)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	p, err := New(target.Addr())
	if err != nil {
		t.Fatal(err)
	}
	client, err := Listen(lo)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.Send(p.Addr(), []byte("x"))
	eventually(t, "forwarded", func() bool { return len(target.Received()) == 1 })
	p.SetOldMapping(-1)
	p.Rebind()
	p.SetOldMapping(time.Hour)
	p.Rebind()
	p.SetOldMapping(0)
	p.RebindTo(netip.MustParseAddr("127.0.0.6"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Rebind(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("rebind after Close: %v", err)
	}
	target.Close()
	client.Close()
	eventually(t, "goroutines to stop", func() bool { return runtime.NumGoroutine() <= base })
}
