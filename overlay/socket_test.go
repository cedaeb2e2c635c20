package overlay

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestWriteBatch: the sender goroutine's writer (sendmmsg and GSO on Linux) from an IPv4, an IPv6 and a
// dual-stack socket (to an IPv4 peer), and the plain path of a wrapped
// PacketConn, all deliver every datagram.
func TestWriteBatch(t *testing.T) {
	for _, c := range []struct {
		from, to string
		wrap     bool
	}{
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{"[::1]:0", "[::1]:0", false},
		{"[::]:0", "127.0.0.1:0", false},
		{"127.0.0.1:0", "127.0.0.1:0", true},
	} {
		t.Run(fmt.Sprintf("%s→%s wrap=%v", c.from, c.to, c.wrap), func(t *testing.T) {
			pc, err := net.ListenPacket("udp", c.from)
			if err != nil {
				t.Skip(err)
			}
			var cfg Config
			if c.wrap {
				cfg.PacketConn = struct{ net.PacketConn }{pc}
			} else {
				cfg.PacketConn = pc
			}
			s, err := newSocket(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			if (s.batch != nil) != (!c.wrap && batchingPlatform) {
				t.Errorf("batching %v", s.batch != nil)
			}
			dst, err := net.ListenPacket("udp", c.to)
			if err != nil {
				t.Skip(err)
			}
			defer dst.Close()
			to := addrPortOf(dst.LocalAddr())
			pkts := make([][]byte, 10)
			for i := range pkts {
				pkts[i] = pattern(i, 100+i)
			}
			batch := make([]txPacket, len(pkts))
			for i, b := range pkts {
				batch[i] = txPacket{buf: &b, n: len(b), to: to}
			}
			if n, err := s.newWriter(len(batch)).write(batch); n != len(pkts) || err != nil {
				t.Fatalf("write: %d, %v", n, err)
			}
			buf := make([]byte, 2000)
			for i := range pkts {
				dst.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := dst.ReadFrom(buf)
				if err != nil {
					t.Fatalf("datagram %d: %v", i, err)
				}
				if n != 100+i || addrPortOf(from).Port() != s.local.Port() {
					t.Fatalf("datagram %d: %d octets from %v", i, n, from)
				}
			}
			// And the reader side: one read returns what was sent.
			r := s.newReader()
			if _, err := dst.WriteTo([]byte("back"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(to.Addr(), s.local.Port()))); err != nil {
				t.Fatal(err)
			}
			n, err := r.read()
			if err != nil || n != 1 {
				t.Fatalf("read: %d, %v", n, err)
			}
			if b, from := r.datagram(0); string(b) != "back" || from != to {
				t.Fatalf("read %q from %v, want %v", b, from, to)
			}
		})
	}
}
