package udpbatch

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
)

// topology is a sender and the receivers it sends to, each reached at
// dst (the receiver's port is added).
type topology struct {
	name   string
	sender [2]string // network, address
	recv   []receiverSpec
}

type receiverSpec struct {
	network, addr, dst string
}

var topologies = []topology{
	{"ipv4", [2]string{"udp4", "127.0.0.1:0"}, []receiverSpec{
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
	}},
	{"ipv6", [2]string{"udp6", "[::1]:0"}, []receiverSpec{
		{"udp6", "[::1]:0", "::1"},
		{"udp6", "[::1]:0", "::1"},
	}},
	// A dual-stack sender reaches IPv4 peers by their plain addresses, by
	// their mapped ones, and IPv6 peers, all in one batch.
	{"dual-sender", [2]string{"udp", "[::]:0"}, []receiverSpec{
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
		{"udp4", "127.0.0.1:0", "::ffff:127.0.0.1"},
		{"udp6", "[::1]:0", "::1"},
	}},
	// Dual-stack receivers see the IPv4 sender unmapped.
	{"dual-receiver", [2]string{"udp4", "127.0.0.1:0"}, []receiverSpec{
		{"udp", "[::]:0", "127.0.0.1"},
		{"udp", "[::]:0", "127.0.0.1"},
	}},
}

// testSizes are the run sizes of testBatch: tiny, typical ESP, more than
// fit 64 to a GSO message, and more than a 1500-octet MTU.
var testSizes = []int{1, 64, 333, 1200, 1400, 9000}

// TestRoundTrip sends batches of 1 to 64 datagrams of mixed sizes and
// destinations under every topology and feature set, and checks that
// each receiver gets its datagrams intact, in order, from the sender.
func TestRoundTrip(t *testing.T) {
	for _, top := range topologies {
		for _, m := range modes {
			t.Run(top.name+"/"+m.name, func(t *testing.T) { roundTrip(t, top, m.o) })
		}
	}
}

func roundTrip(t *testing.T, top topology, o options) {
	su := listen(t, top.sender[0], top.sender[1])
	sc := newConn(su, o)
	var dsts []netip.AddrPort
	var conns []*net.UDPConn
	var readers []*Reader
	for _, rs := range top.recv {
		u := listen(t, rs.network, rs.addr)
		conns = append(conns, u)
		readers = append(readers, newConn(u, o).NewReader(64))
		dsts = append(dsts, to(rs.dst, u))
	}
	writers := []*Writer{sc.NewWriter(64), sc.NewWriter(5)}
	rng := rand.New(rand.NewPCG(1, uint64(len(top.name))))
	seq := 0
	for k := 1; k <= 64; k++ {
		w := writers[k%2]
		pkts, tos := testBatch(rng, seq, k, dsts, testSizes)
		seq += k
		var n int
		var err error
		if k%3 == 0 {
			for i := range tos {
				tos[i] = dsts[0]
			}
			n, err = w.WriteBatchTo(pkts, dsts[0])
		} else {
			n, err = w.WriteBatch(pkts, tos)
		}
		if n != k || err != nil {
			t.Fatalf("batch of %d: sent %d, %v", k, n, err)
		}
		for j, r := range readers {
			var want [][]byte
			for i, d := range tos {
				if d == dsts[j] {
					want = append(want, pkts[i])
				}
			}
			src := netip.AddrPortFrom(dsts[j].Addr().Unmap(), portOf(su))
			expectDatagrams(t, conns[j], r, want, src)
		}
	}
	checkCoalesced(t, sc, writers)
	var supers uint64
	for _, r := range readers {
		supers += r.superPackets
	}
	if want := !o.noGSO && !o.noGRO; want != (supers > 0) {
		t.Errorf("%d GRO super-packets split with GSO and GRO %v", supers, want)
	}
}

// checkCoalesced checks that GSO coalesced runs when it is on and that
// every message held one datagram when it is off.
func checkCoalesced(t *testing.T, c *Conn, ws []*Writer) {
	t.Helper()
	var msgs, dgrams uint64
	for _, w := range ws {
		msgs += w.messages
		dgrams += w.datagrams
	}
	t.Logf("caps %+v: %d datagrams in %d messages", c.Caps(), dgrams, msgs)
	if c.Caps().GSO != (msgs < dgrams) {
		t.Errorf("GSO %v, but %d datagrams in %d messages", c.Caps().GSO, dgrams, msgs)
	}
}

// TestWriterToPlainSocket checks the Writer against package net's reading.
func TestWriterToPlainSocket(t *testing.T) {
	su, ru := listen(t, "udp", "[::]:0"), listen(t, "udp4", "127.0.0.1:0")
	w := New(su).NewWriter(64)
	dst := to("127.0.0.1", ru)
	pkts, _ := testBatch(rand.New(rand.NewPCG(2, 2)), 0, 64, []netip.AddrPort{dst}, testSizes)
	if n, err := w.WriteBatchTo(pkts, dst); n != len(pkts) || err != nil {
		t.Fatalf("sent %d of %d: %v", n, len(pkts), err)
	}
	buf := make([]byte, BufferSize)
	for i, want := range pkts {
		n, from, err := ru.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != string(want) || from.Port() != portOf(su) {
			t.Fatalf("datagram %d: %d octets from %v, %v; want %d octets", i, n, from, err, len(want))
		}
	}
}

// TestReaderFromPlainSocket checks the Reader against package net's
// writing.
func TestReaderFromPlainSocket(t *testing.T) {
	su, ru := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp", "[::]:0")
	r := New(ru).NewReader(8)
	dst := to("127.0.0.1", ru)
	pkts, _ := testBatch(rand.New(rand.NewPCG(3, 3)), 0, 50, []netip.AddrPort{dst}, testSizes)
	for _, b := range pkts {
		if _, err := su.WriteToUDPAddrPort(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	expectDatagrams(t, ru, r, pkts, to("127.0.0.1", su))
}
