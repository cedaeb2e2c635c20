package udpbatch

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// modes are the feature sets every round-trip test runs under: all that
// the kernel has, and each fallback.
var modes = []struct {
	name string
	o    options
}{
	{"all", options{}},
	{"noGSO", options{noGSO: true}},
	{"noGRO", options{noGRO: true}},
	{"noBatch", options{noBatch: true}},
	{"none", options{noBatch: true, noGSO: true, noGRO: true}},
}

// listen opens a loopback UDP socket that the test closes, with a receive
// buffer large enough that a whole batch waits in it.
func listen(t testing.TB, network, addr string) *net.UDPConn {
	t.Helper()
	u, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	rc, _ := u.SyscallConn()
	rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	})
	return u
}

// portOf is u's local port.
func portOf(u *net.UDPConn) uint16 {
	return u.LocalAddr().(*net.UDPAddr).AddrPort().Port()
}

// to is where a test sends to reach u: ip, and u's port.
func to(ip string, u *net.UDPConn) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(ip), portOf(u))
}

// datagram builds a datagram of n octets that says its sequence number
// and that no other datagram of the test matches.
func testDatagram(seq, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq*7 + i*13)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(b, uint32(seq))
	}
	return b
}

// batch makes k datagrams in runs: each run goes to one of dsts and has
// one size (from sizes), sometimes with a shorter last datagram, so that
// GSO has something to coalesce and something to refuse.
func testBatch(rng *rand.Rand, seq0, k int, dsts []netip.AddrPort, sizes []int) ([][]byte, []netip.AddrPort) {
	var pkts [][]byte
	var tos []netip.AddrPort
	for len(pkts) < k {
		run := min(1+rng.IntN(24), k-len(pkts))
		dst := dsts[rng.IntN(len(dsts))]
		size := sizes[rng.IntN(len(sizes))]
		for j := range run {
			n := size
			if j == run-1 && rng.IntN(2) == 0 {
				n = rng.IntN(size + 1)
			}
			pkts = append(pkts, testDatagram(seq0+len(pkts), n))
			tos = append(tos, dst)
		}
	}
	return pkts, tos
}

// expectDatagrams reads from r until it has got want, in order, each from
// src; it fails the test on anything else or after two seconds.
func expectDatagrams(t testing.TB, u *net.UDPConn, r *Reader, want [][]byte, src netip.AddrPort) {
	t.Helper()
	u.SetReadDeadline(time.Now().Add(2 * time.Second))
	got := 0
	for got < len(want) {
		n, err := r.Read()
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", got, len(want), err)
		}
		for i := range n {
			b, from := r.Datagram(i)
			if got == len(want) {
				t.Fatalf("datagram %d more than the %d sent (%d octets)", got, len(want), len(b))
			}
			if !bytes.Equal(b, want[got]) {
				t.Fatalf("datagram %d: got %d octets %x…, want %d octets %x…", got, len(b), head(b), len(want[got]), head(want[got]))
			}
			if from != src {
				t.Fatalf("datagram %d from %v, want %v", got, from, src)
			}
			got++
		}
	}
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }
