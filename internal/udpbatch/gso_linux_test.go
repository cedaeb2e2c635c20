package udpbatch

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestGSOCmsgLayout(t *testing.T) {
	var g gsoCmsg
	if got, want := int(unsafe.Sizeof(g)), unix.CmsgSpace(2); got != want {
		t.Errorf("gsoCmsg is %d octets, CMSG_SPACE(2) is %d", got, want)
	}
	if got, want := int(unsafe.Offsetof(g.size)), unix.CmsgLen(0); got != want {
		t.Errorf("segment size at %d, CMSG_DATA at %d", got, want)
	}
	if got, want := int(unsafe.Sizeof(mmsghdr{})), unix.SizeofMsghdr+int(unsafe.Sizeof(uintptr(0))); got != want {
		t.Errorf("mmsghdr is %d octets, want %d", got, want)
	}
}

func TestGSORun(t *testing.T) {
	a := netip.MustParseAddrPort("192.0.2.1:1")
	b := netip.MustParseAddrPort("192.0.2.2:1")
	sized := func(ns ...int) [][]byte {
		var p [][]byte
		for _, n := range ns {
			p = append(p, make([]byte, n))
		}
		return p
	}
	for _, tc := range []struct {
		name  string
		pkts  [][]byte
		to    dests
		limit int
		want  int
	}{
		{"equal", sized(100, 100, 100), dests{one: a}, gsoMaxBytes, 3},
		{"short last", sized(100, 100, 40, 100), dests{one: a}, gsoMaxBytes, 3},
		{"longer second", sized(100, 101), dests{one: a}, gsoMaxBytes, 1},
		{"other peer", sized(100, 100, 100), dests{many: []netip.AddrPort{a, a, b}}, gsoMaxBytes, 2},
		{"empty first", sized(0, 0), dests{one: a}, gsoMaxBytes, 1},
		{"empty second", sized(10, 0), dests{one: a}, gsoMaxBytes, 1},
		{"64 segments", sized(repeat(70, 10)...), dests{one: a}, gsoMaxBytes, 64},
		{"65000 octets", sized(repeat(70, 1200)...), dests{one: a}, gsoMaxBytes, 54},
		{"over limit", sized(1400, 1400), dests{one: a}, 1399, 1},
		{"at limit", sized(1399, 1399), dests{one: a}, 1399, 2},
	} {
		if got := gsoRun(tc.pkts, tc.to, tc.limit); got != tc.want {
			t.Errorf("%s: run of %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestGSOCoalesces checks the number of messages a batch takes: one per
// GSO run, each at most 64 datagrams or 65000 octets.
func TestGSOCoalesces(t *testing.T) {
	su, ru := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
	c := New(su)
	if !c.Caps().GSO {
		t.Skip("no UDP_SEGMENT")
	}
	r := newConn(ru, options{noGRO: true}).NewReader(64)
	dst, other := to("127.0.0.1", ru), netip.MustParseAddrPort("127.0.0.1:9")
	for _, tc := range []struct {
		name  string
		sizes []int
		alt   bool // every other datagram to another peer
		msgs  uint64
	}{
		{"64 of 1000", repeat(64, 1000), false, 1},
		{"64 of 1200", repeat(64, 1200), false, 2}, // 54 fit 65000 octets
		{"40 and a short one", append(repeat(40, 1200), 500), false, 1},
		{"alternating peers", repeat(64, 1000), true, 64},
	} {
		w := c.NewWriter(64)
		var pkts [][]byte
		var tos []netip.AddrPort
		var want [][]byte
		for i, n := range tc.sizes {
			pkts = append(pkts, testDatagram(i, n))
			tos = append(tos, dst)
			if tc.alt && i%2 == 1 {
				tos[i] = other
			} else {
				want = append(want, pkts[i])
			}
		}
		if n, err := w.WriteBatch(pkts, tos); n != len(pkts) || err != nil {
			t.Fatalf("%s: sent %d of %d: %v", tc.name, n, len(pkts), err)
		}
		if w.messages != tc.msgs || w.datagrams != uint64(len(pkts)) {
			t.Errorf("%s: %d datagrams in %d messages, want %d in %d", tc.name, w.datagrams, w.messages, len(pkts), tc.msgs)
		}
		expectDatagrams(t, ru, r, want, to("127.0.0.1", su))
	}
}

func repeat(k, n int) []int {
	s := make([]int, k)
	for i := range s {
		s[i] = n
	}
	return s
}

// TestGSORefused plays a NIC without checksum offload (EIO) and a segment
// over the path MTU (EINVAL or EMSGSIZE): the datagrams still arrive, resent
// unsegmented, and GSO turns off, or down to smaller segments.
func TestGSORefused(t *testing.T) {
	su, ru := listen(t, "udp", "[::]:0"), listen(t, "udp4", "127.0.0.1:0")
	r := newConn(ru, options{noGRO: true}).NewReader(64)
	dst, src := to("127.0.0.1", ru), to("127.0.0.1", su)
	send := func(c *Conn, k, size int) {
		t.Helper()
		w := c.NewWriter(64)
		pkts := make([][]byte, k)
		for i := range pkts {
			pkts[i] = testDatagram(i, size)
		}
		if n, err := w.WriteBatchTo(pkts, dst); n != k || err != nil {
			t.Fatalf("sent %d of %d: %v", n, k, err)
		}
		expectDatagrams(t, ru, r, pkts, src)
	}

	c := New(su)
	if !c.Caps().GSO {
		t.Skip("no UDP_SEGMENT")
	}
	c.fault = unix.EIO
	send(c, 40, 1200)
	if caps := c.Caps(); caps.GSO || caps.GSOErrors != 1 {
		t.Errorf("after EIO: %+v, want GSO off and 1 error", caps)
	}

	c = New(su)
	c.fault = unix.EMSGSIZE // newer kernels' word for it
	send(c, 10, 1400)
	if caps := c.Caps(); !caps.GSO || caps.GSOErrors != 1 || c.gso.limit.Load() != 1399 {
		t.Errorf("after EMSGSIZE at 1400: %+v, limit %d; want GSO on below 1400", caps, c.gso.limit.Load())
	}

	c = New(su)
	c.fault = unix.EINVAL
	send(c, 10, 1400)
	if caps := c.Caps(); !caps.GSO || caps.GSOErrors != 1 || c.gso.limit.Load() != 1399 {
		t.Errorf("after EINVAL at 1400: %+v, limit %d; want GSO on below 1400", caps, c.gso.limit.Load())
	}
	send(c, 10, 1400) // not coalesced: no refusal
	send(c, 10, 1000) // coalesced and refused at a size every path takes
	if caps := c.Caps(); caps.GSO || caps.GSOErrors != 2 {
		t.Errorf("after EINVAL at 1000: %+v, want GSO off and 2 errors", caps)
	}
}

// TestPartialWrite checks that a refused datagram stops the batch: the
// count says what went, GSO stays on when the refusal was not its fault.
func TestPartialWrite(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			su, ru := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
			c := newConn(su, m.o)
			w := c.NewWriter(64)
			dst, port0 := to("127.0.0.1", ru), netip.MustParseAddrPort("127.0.0.1:0")
			v6 := netip.MustParseAddrPort("[::1]:9")
			pkts := make([][]byte, 6)
			for i := range pkts {
				pkts[i] = testDatagram(i, 100)
			}
			// Port 0 is refused by the kernel (EINVAL), in a GSO run.
			n, err := w.WriteBatch(pkts, []netip.AddrPort{dst, dst, port0, port0, dst, dst})
			if n != 2 || !errors.Is(err, unix.EINVAL) {
				t.Errorf("to port 0: sent %d, %v; want 2, EINVAL", n, err)
			}
			// An IPv6 peer cannot be written on an IPv4 socket.
			n, err = w.WriteBatch(pkts[:3], []netip.AddrPort{dst, v6, dst})
			if n != 1 || !errors.Is(err, errDestination) {
				t.Errorf("to IPv6: sent %d, %v; want 1, errDestination", n, err)
			}
			n, err = w.WriteBatch(pkts[:1], []netip.AddrPort{{}})
			if n != 0 || !errors.Is(err, errDestination) {
				t.Errorf("to nowhere: sent %d, %v; want 0, errDestination", n, err)
			}
			if c.Caps().GSO == m.o.noGSO || c.Caps().GSOErrors != 0 {
				t.Errorf("caps %+v after refusals that were not GSO's", c.Caps())
			}
			r := newConn(ru, m.o).NewReader(8)
			expectDatagrams(t, ru, r, [][]byte{pkts[0], pkts[1], pkts[0]}, to("127.0.0.1", su))
		})
	}
}

// TestManyChunks sends more datagrams than the Writer's batch, to many
// peers, in one call.
func TestManyChunks(t *testing.T) {
	su, ru := listen(t, "udp6", "[::1]:0"), listen(t, "udp6", "[::1]:0")
	w := New(su).NewWriter(7)
	r := New(ru).NewReader(64)
	dst := to("::1", ru)
	pkts, tos := testBatch(rand.New(rand.NewPCG(4, 4)), 0, 500, []netip.AddrPort{dst}, []int{10, 1200})
	if n, err := w.WriteBatch(pkts, tos); n != len(pkts) || err != nil {
		t.Fatalf("sent %d of %d: %v", n, len(pkts), err)
	}
	expectDatagrams(t, ru, r, pkts, to("::1", su))
}
