package streams

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// addrPC is a PacketConn with the allocation-free methods of
// *overlay.InnerConn: reads return from; writes record where they went.
type addrPC struct {
	from     overlay.Addr
	wrote    []overlay.Addr
	writeErr error
}

func (p *addrPC) ReadFromAddr(b []byte) (int, overlay.Addr, error) { return len(b), p.from, nil }
func (p *addrPC) WriteToAddr(b []byte, to overlay.Addr) (int, error) {
	if p.wrote != nil {
		p.wrote = append(p.wrote, to)
	}
	return len(b), p.writeErr
}
func (p *addrPC) ReadFrom(b []byte) (int, net.Addr, error) { return 0, nil, errors.New("not this one") }
func (p *addrPC) WriteTo(b []byte, a net.Addr) (int, error) {
	return 0, fmt.Errorf("WriteTo %T", a)
}
func (p *addrPC) Close() error                       { return nil }
func (p *addrPC) LocalAddr() net.Addr                { return &overlay.Addr{} }
func (p *addrPC) SetDeadline(t time.Time) error      { return nil }
func (p *addrPC) SetReadDeadline(t time.Time) error  { return nil }
func (p *addrPC) SetWriteDeadline(t time.Time) error { return nil }

// TestPacketConnAddrs: quic-go sees the sender as a *net.UDPAddr whose IP
// is the HIT the overlay reported, the same pointer for the same sender;
// what quic-go writes to it, or to an *overlay.Addr, reaches that HIT and
// port; anything else is not a HIP address.
func TestPacketConnAddrs(t *testing.T) {
	h := wire.HIT{0x20, 0x01, 0x00, 0x20, 15: 0x42}
	fake := &addrPC{from: overlay.Addr{HIT: h, Port: 7}, wrote: []overlay.Addr{}}
	pc := newPacketConn(fake)
	_, a1, _ := pc.ReadFrom(make([]byte, 4))
	u, ok := a1.(*net.UDPAddr)
	if !ok || !u.IP.Equal(net.IP(h[:])) || u.Port != 7 {
		t.Fatalf("ReadFrom address %#v", a1)
	}
	if _, a2, _ := pc.ReadFrom(make([]byte, 4)); a2 != a1 {
		t.Fatal("a second packet from the same sender got another address")
	}
	fake.from.Port = 8
	if _, a3, _ := pc.ReadFrom(make([]byte, 4)); a3 == a1 || a3.(*net.UDPAddr).Port != 8 {
		t.Fatalf("another port: %v (first %v)", a3, a1)
	}
	if got, ok := remoteHIT(a1); !ok || got != h {
		t.Fatalf("remoteHIT(%v) = %v, %v", a1, got, ok)
	}
	pc.WriteTo([]byte("x"), a1)
	pc.WriteTo([]byte("x"), &overlay.Addr{HIT: h, Port: 9})
	if want := []overlay.Addr{{HIT: h, Port: 7}, {HIT: h, Port: 9}}; fmt.Sprint(fake.wrote) != fmt.Sprint(want) {
		t.Fatalf("wrote to %v, want %v", fake.wrote, want)
	}
	v4 := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 7}
	if _, ok := remoteHIT(v4); ok {
		t.Fatal("an IPv4 address taken for a HIT")
	}
	if _, err := pc.WriteTo([]byte("x"), v4); err == nil || len(fake.wrote) != 2 {
		t.Fatalf("WriteTo an IPv4 address: %v, %d writes", err, len(fake.wrote))
	}
	fake.writeErr = overlay.ErrQueueFull
	if n, err := pc.WriteTo([]byte("xy"), a1); n != 2 || err != nil {
		t.Fatalf("queue full: %d, %v; want a datagram QUIC counts as lost", n, err)
	}
}

// TestPacketConnAllocs: with the overlay's allocation-free methods under
// it, a read and a write through packetConn allocate nothing.
func TestPacketConnAllocs(t *testing.T) {
	h := wire.HIT{0x20, 0x01, 0x00, 0x20, 15: 0x42}
	pc := newPacketConn(&addrPC{from: overlay.Addr{HIT: h, Port: 7}})
	buf := make([]byte, 1350)
	if n := testing.AllocsPerRun(1000, func() {
		_, from, _ := pc.ReadFrom(buf)
		pc.WriteTo(buf, from)
	}); n != 0 {
		t.Fatalf("%v allocations per read and write", n)
	}
}
