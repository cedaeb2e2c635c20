package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestAPI runs the exported API alone, on every platform: a dual-stack
// socket sends a batch to an IPv4 one, which reads it back from the
// sender's unmapped address, and both learn of Close.
func TestAPI(t *testing.T) {
	a, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv6unspecified})
	if err != nil {
		t.Skip("no dual-stack socket:", err)
	}
	defer a.Close()
	b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	loop := netip.MustParseAddr("127.0.0.1")
	dst := netip.AddrPortFrom(loop, b.LocalAddr().(*net.UDPAddr).AddrPort().Port())
	src := netip.AddrPortFrom(loop, a.LocalAddr().(*net.UDPAddr).AddrPort().Port())

	pkts := [][]byte{[]byte("one"), []byte("two"), []byte("three")}
	if n, err := New(a).NewWriter(8).WriteBatch(pkts, []netip.AddrPort{dst, dst, dst}); n != 3 || err != nil {
		t.Fatalf("sent %d of 3: %v", n, err)
	}
	r := New(b).NewReader(8)
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	for got := 0; got < len(pkts); {
		n, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			d, from := r.Datagram(i)
			if string(d) != string(pkts[got]) || from != src {
				t.Fatalf("datagram %d: %q from %v, want %q from %v", got, d, from, pkts[got], src)
			}
			got++
		}
	}
	b.Close()
	if _, err := r.Read(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
}
