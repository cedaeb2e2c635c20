package relay

import (
	"context"
	"flag"
	"net"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// The relay's two figures (helpers in benchhelpers_test.go):
//
//	BenchmarkRelayForward   ESP datagrams per second the relay forwards,
//	                        against a plain Go UDP forwarder measured in
//	                        the same run (goal: ratio >= 0.7)
//	TestRegistrationMemory  relay heap per registered host with 10 000
//	                        registered (goal <= 2 KiB); opt-in, see below
//
// Measured on 2 vCPUs shared with other work (Go 1.26, November 2026):
// relay 86 000 pkt/s, baseline 81 000 pkt/s, ratio 1.06 (1.04 to 1.11
// over runs; absolute rates vary with the machine's load, the ratio
// does not). Relay heap per registration with 10 000 hosts, in the
// steady state: 6 125 B then; 2 253 B early in December 2026, still over
// the goal (pprof breakdown, per host: go-memdb's radix nodes and their
// watch channels 384 B, the overlay peer 352 B, handshake.Association
// 320 B, ESP state 300 B, KEYMAT and HIP keys 300 B, peer identity
// 120 B); 1 910 B once the association table left go-memdb for a map
// (overlay store.go), against 2 215 B just before in the same session.
//
// Commands:
//
//	go test -run '^$' -bench BenchmarkRelayForward -benchtime 3s ./relay/
//	HIPNET_MEMTEST=1 go test -run TestRegistrationMemory -v ./relay/
//
// and, for the heap profile of what the relay holds (the relay is kept
// alive when -memprofile is given, so that the profile go test writes at
// the end shows it; -memprofilerate=512 samples finely enough for small
// objects; -o keeps the test binary out of the tree):
//
//	HIPNET_MEMTEST=1 go test -run TestRegistrationMemory -v -o /tmp/relay.test \
//		-memprofile /tmp/relay-heap.pprof -memprofilerate=512 ./relay/
//	go tool pprof -top -sample_index=inuse_space /tmp/relay.test /tmp/relay-heap.pprof

// Forwarding benchmark parameters: ESP-sized datagrams (a 1200-octet
// inner datagram is what QUIC and most tunnels send) and the flow window.
const (
	fwdPktSize = 1200
	fwdWindow  = 128
	fwdRound   = 2000
)

// BenchmarkRelayForward measures, in one run, two paths that do the same
// work per datagram: receive it on one socket, send it on to a fixed
// destination.
//
//   - baseline: udpForwarder, a goroutine doing ReadFromUDPAddrPort and
//     WriteToUDPAddrPort on a plain loopback socket, nothing else. It is
//     the floor any Go forwarder over the standard socket API pays.
//   - relay: a relay.Server forwarding ESP by (SPI, source address) for
//     two registered hosts whose base exchange ran through it (ICE off,
//     UDP encapsulation only, as in overlay's TestRelayESPForwarding), so
//     the forwarding entry is the one the relay learnt from the ESP_INFO
//     of the R2 it relayed. The flow is sent from the sending host's own
//     socket (the entry is keyed by it) with the SPI of the host's
//     outbound SA, and arrives at the receiving host's socket.
//
// Both paths have the same sender (benchFlow), the same receiver
// (benchSink: in the relay case it sits in the receiving host's read
// loop and swallows flow packets before its ESP path, so the receiver
// does no decryption in either case), the same packet size and the same
// window of fwdWindow packets in flight, so no socket buffer ever
// overflows and nothing is lost (fwdWindow 1200-octet datagrams take
// about 300 KiB of buffer, within even the 416 KiB an unprivileged
// process gets under the default net.core.rmem_max). The relay path's sockets are the
// stack's own (4 MiB buffers, recvmmsg batches of up to 8); the baseline's
// get the same buffer sizes but plain recvfrom.
//
// Raw ESP rather than InnerConn writes: sealing at the sender and opening
// at the receiver (AES-GCM, the inner UDP, the stacks' queues) would run
// on the same two cores as the relay and make the figure a measure of the
// endpoints. With raw packets only the relay's work differs between the
// two paths: the demultiplexing of the read loop, the SPI table miss,
// the forwarding lookup and its counters. The packets are not valid ESP;
// the relay holds no keys and cannot tell.
//
// The two paths run alternately, in rounds of fwdRound packets (the order
// swapped every round), so that drift and other load on the machine hit
// both alike. Reported: the medians over the rounds of relay-pkt/s, of
// baseline-pkt/s and of their ratio within a round (the median shrugs
// off the rounds another process's burst of work slowed down). ns/op is
// one packet through each path.
func BenchmarkRelayForward(b *testing.B) {
	base := newBaselineFlow(b)
	rel, r := newRelayFlow(b)
	for _, f := range []*benchFlow{base, rel} { // warm-up
		if _, err := f.run(2000); err != nil {
			b.Fatal(err)
		}
	}
	before := r.Stats().Relay.ESPForwarded
	var basePPS, relayPPS, ratios []float64
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		k := min(fwdRound, b.N-done)
		flows := []*benchFlow{base, rel}
		if round%2 == 1 {
			flows[0], flows[1] = rel, base
		}
		var pps [2]float64 // baseline, relay
		for _, f := range flows {
			d, err := f.run(k)
			if err != nil {
				b.Fatal(f.name, ": ", err)
			}
			if f == base {
				pps[0] = float64(k) / d.Seconds()
			} else {
				pps[1] = float64(k) / d.Seconds()
			}
		}
		basePPS, relayPPS, ratios = append(basePPS, pps[0]), append(relayPPS, pps[1]), append(ratios, pps[1]/pps[0])
		done += k
	}
	b.StopTimer()
	// The relay counts a packet after sending it: the last counts may
	// trail the arrivals by a moment.
	waitUntil(b, time.Second, "the relay to count every packet that arrived", func() bool {
		return r.Stats().Relay.ESPForwarded-before >= uint64(b.N)
	})
	b.ReportMetric(median(relayPPS), "relay-pkt/s")
	b.ReportMetric(median(basePPS), "baseline-pkt/s")
	b.ReportMetric(median(ratios), "ratio")
	if len(ratios) >= 10 && median(ratios) < 0.7 {
		b.Logf("goal missed: the relay forwards %.2f of the baseline's packets per second (goal 0.7)", median(ratios))
	}
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// newBaselineFlow: sender → udpForwarder → sink, all plain sockets.
func newBaselineFlow(tb testing.TB) *benchFlow {
	sink := newBenchSink(tb, fwdWindow)
	go sink.drain()
	fwd := benchUDP(tb)
	go udpForwarder(fwd, udpAddrPort(sink))
	return &benchFlow{name: "baseline", from: benchUDP(tb), to: udpAddrPort(fwd), sink: sink, pkt: benchPacket(0x8badf00d, fwdPktSize)}
}

// newRelayFlow: a relay and two hosts registered with it, b dialling a
// through it; the flow goes from b's socket through the relay to a's
// socket, with the SPI of b's outbound SA.
func newRelayFlow(tb testing.TB) (*benchFlow, *Server) {
	r, err := New(Config{Identity: benchKey(tb), ListenAddr: "127.0.0.1:0"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	host := func(pc net.PacketConn) *overlay.Stack {
		st, err := overlay.New(overlay.Config{
			Identity: benchKey(tb), PacketConn: pc,
			Relays: []overlay.RelayAddr{{HIT: r.HIT(), Addr: r.Addr()}},
			Handshake: handshake.Config{
				NATModes:          []uint16{wire.NATModeUDPEncapsulation}, // no ICE: ESP stays on the relay
				RetransmitTimeout: 100 * time.Millisecond,
			},
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { st.Close() })
		return st
	}
	sink := newBenchSink(tb, fwdWindow)
	sock := benchUDP(tb)
	a, b := host(sink), host(sock)
	waitUntil(tb, 10*time.Second, "two registrations", func() bool { return r.Stats().Registrations == 2 })

	la, err := a.ListenInner(7)
	if err != nil {
		tb.Fatal(err)
	}
	lb, err := b.ListenInner(8)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.HIT()); err != nil {
		tb.Fatal(err)
	}
	if _, err := lb.WriteTo([]byte("through the relay"), &overlay.Addr{HIT: a.HIT(), Port: 7}); err != nil {
		tb.Fatal(err)
	}
	_ = la.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, _, err := la.ReadFromAddr(buf); err != nil || string(buf[:n]) != "through the relay" {
		tb.Fatalf("first datagram: %q %v", buf[:n], err)
	}
	var spi uint32
	for _, p := range b.Peers() {
		if p.HIT == a.HIT() {
			if p.Path != "relayed" {
				tb.Fatalf("path %q, want relayed", p.Path)
			}
			spi = p.OutSPI
		}
	}
	if spi == 0 {
		tb.Fatal("no association with a")
	}
	// The relay counts a forwarded packet after sending it.
	waitUntil(tb, time.Second, "the relay to count the datagram it forwarded", func() bool {
		return r.Stats().Relay.ESPForwarded > 0
	})
	return &benchFlow{name: "relay", from: sock, to: r.Addr(), sink: sink, pkt: benchPacket(spi, fwdPktSize)}, r
}

// memtestRelay keeps TestRegistrationMemory's relay reachable when
// -memprofile is given: go test writes the profile after the tests end.
var memtestRelay *Server

// TestRegistrationMemory registers N hosts (HIPNET_MEMTEST_N, default
// 10 000) for RELAY_UDP_HIP with a real relay over a real UDP socket and
// reports the relay's heap per registration (goal <= 2 KiB): the live
// heap after the registrations, client side discarded, less the live heap
// before them, divided by N. It is measured twice: right after the last
// registration, with the relay's associations in R2-SENT (they keep the
// R2 for retransmitted I2s and the expanded KEYMAT), and in the steady
// state, once they all timed out into ESTABLISHED (R2-SENT ends on the
// host's first ESP or after 10 s; these hosts send none) and compacted.
// The goal applies to the steady state.
//
// Each host is a sans-I/O handshake.Endpoint with its own ECDSA P-256
// identity (registerMany); N overlay.Stacks would cost far more than the
// relay under test. About 10 s of base exchanges on 2 cores plus the 10 s
// R2-SENT timeout. Run with HIPNET_MEMTEST=1 and without -short.
func TestRegistrationMemory(t *testing.T) {
	if testing.Short() || os.Getenv("HIPNET_MEMTEST") != "1" {
		t.Skip("set HIPNET_MEMTEST=1 (not with -short) to run; HIPNET_MEMTEST_N sets the number of hosts")
	}
	n := 10_000
	if v := os.Getenv("HIPNET_MEMTEST_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("HIPNET_MEMTEST_N=%q", v)
		}
	}
	// The puzzle stays at its base difficulty: 10 000 hosts registering
	// as fast as two cores allow is the load that raises it (handshake
	// load.go), and this test measures memory, not that defence.
	r, err := New(Config{Identity: benchKey(t), ListenAddr: "127.0.0.1:0", Handshake: handshake.Config{LoadThreshold: -1}})
	if err != nil {
		t.Fatal(err)
	}
	if f := flag.Lookup("test.memprofile"); f != nil && f.Value.String() != "" {
		memtestRelay = r
	} else {
		t.Cleanup(func() { r.Close() })
	}
	before := settledHeap()
	start := time.Now()
	if err := registerMany(r.HIT(), r.Addr(), n, 32); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if got := r.Stats().Registrations; got != n {
		t.Fatalf("relay Stats().Registrations = %d, want %d", got, n)
	}
	if got := len(r.Registrations()); got != n {
		t.Fatalf("relay stack holds %d registrations, want %d", got, n)
	}
	afterBEX := settledHeap()

	established := func() int {
		k := 0
		for _, p := range r.Stack().Peers() {
			if p.State == handshake.Established.String() {
				k++
			}
		}
		return k
	}
	waitUntil(t, 60*time.Second, "the relay's associations to reach ESTABLISHED", func() bool { return established() == n })
	steady := settledHeap()
	if got := r.Stats().Registrations; got != n {
		t.Fatalf("relay Stats().Registrations = %d after the wait, want %d", got, n)
	}

	per := func(h uint64) float64 { return float64(int64(h)-int64(before)) / float64(n) }
	t.Logf("%d registrations in %v (%.0f µs each)", n, elapsed.Round(time.Millisecond), float64(elapsed.Microseconds())/float64(n))
	t.Logf("relay heap per registration: %.0f B in R2-SENT, %.0f B ESTABLISHED (goal <= 2048)", per(afterBEX), per(steady))
	if per(steady) > 2048 {
		t.Errorf("relay heap per registration %.0f B exceeds the 2 KiB goal", per(steady))
	}
}
