package hipnet

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/streams"
)

// Benchmarks of the public API against the baselines an application would
// otherwise use, all over loopback (127.0.0.1). Every benchmark measures
// hipnet and its baselines in the same run, interleaved iteration by
// iteration (the order alternates), and reports each figure, the
// baseline's and their ratio with b.ReportMetric; the figures are the
// medians over the iterations, so that an iteration slowed by another
// process on the machine does not move them. ns/op is the timed span of
// one iteration, hipnet and baselines together: read the metrics, not it.
//
//	BenchmarkFirstContact  DialContext to a peer never met (base exchange,
//	                       QUIC handshake, stream open) and a one-octet
//	                       echo, vs tls.Dial (TLS 1.3, mutual ECDSA P-256
//	                       certificates, no resumption) and the same echo
//	                                                       (goal hip/tls <= 1.0)
//	                       Breakdown, on a second fresh node per iteration:
//	                       bex-µs (Connect alone), quic+open-µs (the rest
//	                       of DialContext), echo-µs; tls-hs-µs is tls.Dial
//	                       alone.
//	BenchmarkSecondDial    DialContext when the association and the QUIC
//	                       connection exist, echo, Close, vs a new TLS
//	                       connection, echo, Close, eight of a kind back
//	                       to back per iteration          (goal hip/tls <= 0.1)
//	                       Breakdown: open-µs (DialContext), echo-µs;
//	                       quic-go's own stream open, echo, Close on an
//	                       existing connection (quic-µs). After the loop,
//	                       on connections idle for 1 ms: the same second
//	                       dial (hip-idle-µs) and the one-octet round trip
//	                       on connections that stay open (hip-rtt-µs,
//	                       tls-rtt-µs, quic-rtt-µs).
//	BenchmarkThroughput    32 MiB client → server on one stream, then a
//	                       one-octet acknowledgement, vs TLS over TCP and
//	                       quic-go over UDP sockets       (goals hip/tls >= 0.5,
//	                                                       hip/quic >= 0.8)
//	                       CPU seconds per GB, both ends together (the
//	                       process's user+system time): hip-cpu-s/GB,
//	                       tls-cpu-s/GB.
//	                       Diagnostic: quicpc-MB/s, quic-go on UDP
//	                       sockets it sees as plain PacketConns with
//	                       streams.PacketSize packets, as streams runs it
//	                       (so hip/quicpc is the overlay's own cost).
//	BenchmarkDatagrams     1200-octet datagrams in acknowledged bursts of
//	                       32, ListenPacket vs UDP sockets written one
//	                       datagram per call (goal hip/udp >= 1.0), and
//	                       vs UDP sockets batched with sendmmsg/recvmmsg
//	                       (x/net; stretch goal hip/mmsg >= 0.8)
//	BenchmarkBEXRate       base exchanges one responder completes per
//	                       second (128 initiators, 8 at a time) vs TLS
//	                       handshakes one server completes (goal bex/tls >= 1.0)
//
// Suggested run (about two minutes on two cores):
//
//	go test -run '^$' -bench . -count 3 -benchtime 20x ./hipnet/
//
// -args -hipnet.streams netstack measures the streams over netstack's TCP
// instead of QUIC; `make benchtable` runs both and prints the table of
// figures, baselines and ratios.
//
// -benchtime Nx bounds every benchmark; with a time-based -benchtime the
// untimed setup (fresh nodes for every first contact and base exchange)
// makes the wall time several times the timed span.

const benchTimeout = 30 * time.Second

// benchOnly restricts every benchmark to one of its paths, for profiling
// that path alone: "hip", or a baseline ("tls", "quic", "quicpc",
// "udp"). The figures of the paths left out, and the ratios, are then
// reported as 0. For example:
//
//	go test -run '^$' -bench Throughput -benchtime 10x -cpuprofile hip.prof ./hipnet/ -args -hipnet.benchonly hip
var benchOnly = flag.String("hipnet.benchonly", "", "run only this path of each benchmark (hip, tls, quic, quicpc, udp), for profiling")

// benchStreams is the stream transport of every node the tests and
// benchmarks start without one of their own: "quic" (the default) or
// "netstack". The table of internal/tools/benchtable runs the benchmarks
// once with each.
var benchStreams = flag.String("hipnet.streams", "quic", "stream transport of the test nodes: quic or netstack")

// benchStreamsFactory is Config.Streams for -hipnet.streams.
func benchStreamsFactory(t testing.TB) streams.Factory {
	for _, tr := range streamTransports {
		if tr.name == *benchStreams {
			return tr.f
		}
	}
	t.Fatalf("-hipnet.streams %q: want quic or netstack", *benchStreams)
	return nil
}

// path returns f, or a no-op if -hipnet.benchonly leaves name out.
func path(name string, f func()) func() {
	if *benchOnly != "" && *benchOnly != name {
		return func() {}
	}
	return f
}

func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), benchTimeout)
	b.Cleanup(cancel)
	return ctx
}

// freshClient starts a node with a new identity that knows server's
// locator.
func freshClient(b *testing.B, server *Node) *Node { return freshClientAt(b, server, "127.0.0.1:0") }

// freshClientAt is freshClient listening on listen.
func freshClientAt(b *testing.B, server *Node, listen string) *Node {
	return freshClientFrom(b, server, Config{ListenAddr: listen})
}

// freshClientFrom is freshClient with cfg's socket: a node with a new
// identity and the benchmark's stream transport.
func freshClientFrom(b *testing.B, server *Node, cfg Config) *Node {
	b.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	cfg.Identity, cfg.Streams = id, benchStreamsFactory(b)
	n, err := NewNode(cfg)
	if err != nil {
		b.Fatal(err)
	}
	n.AddPeer(server.HIT(), server.LocalAddr())
	return n
}

// inOrder runs fs in an order that depends on the iteration i: two
// paths alternate; more are shuffled (seeded by i, so runs repeat), so
// that no path always goes first or always follows the same other path
// (and its teardown).
func inOrder(i int, fs ...func()) {
	if len(fs) == 2 {
		fs[i%2]()
		fs[(i+1)%2]()
		return
	}
	r := mrand.New(mrand.NewPCG(uint64(i), 0x9e3779b97f4a7c15))
	for _, k := range r.Perm(len(fs)) {
		fs[k]()
	}
}

// interleaved runs the paths once unrecorded (warm-up: first use of
// every code path, flow-control windows grown), then once per iteration
// of b in inOrder's order, recorded. paths(record) builds them.
func interleaved(b *testing.B, paths func(record bool) []func()) {
	inOrder(0, paths(false)...)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		inOrder(i, paths(true)...)
		i++
	}
}

// firstContactServers starts what the first-contact benchmarks dial: a
// hipnet node echoing on port 7 (its address is dst) and a TLS echo
// server at tlsAddr, with the client config tconf.
func firstContactServers(b *testing.B) (server *Node, dst, tlsAddr string, tconf *tls.Config) {
	server = newTestNode(b, Config{})
	echoServer(b, server, 7)
	pki := getPKI(b)
	tlsAddr = serveTLS(b, pki.serverTLS(), func(c *tls.Conn) { echo(c) })
	return server, addrOf(server, 7), tlsAddr, pki.clientTLS()
}

// dialPingPong dials dst from client and makes one echo round trip on the
// stream, which the caller closes.
func dialPingPong(b *testing.B, ctx context.Context, client *Node, dst string) net.Conn {
	c, err := client.DialContext(ctx, "tcp", dst)
	if err != nil {
		b.Fatal(err)
	}
	if err := pingPong(c); err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkFirstContact(b *testing.B) {
	ctx := benchCtx(b)
	server, dst, tlsAddr, tconf := firstContactServers(b)

	var hip, tlsTotal, tlsHS, bex, qs, rtt samples
	// Each fresh node is created before the timed span and closed after
	// it (Close waits for the server's CLOSE_ACK).
	hipTotal := func(record bool) {
		client := freshClient(b, server)
		defer client.Close()
		b.StartTimer()
		t0 := time.Now()
		c := dialPingPong(b, ctx, client, dst)
		d := time.Since(t0)
		b.StopTimer()
		if record {
			hip.addDur(d)
		}
		c.Close()
	}
	hipSplit := func(record bool) {
		client := freshClient(b, server)
		defer client.Close()
		b.StartTimer()
		t0 := time.Now()
		if err := client.stack.Connect(ctx, server.HIT()); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		c, err := client.DialContext(ctx, "tcp", dst)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := pingPong(c); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		b.StopTimer()
		if record {
			bex.addDur(t1.Sub(t0))
			qs.addDur(t2.Sub(t1))
			rtt.addDur(t3.Sub(t2))
		}
		c.Close()
	}
	tlsFirst := func(record bool) {
		b.StartTimer()
		t0 := time.Now()
		c, err := tls.Dial("tcp", tlsAddr, tconf)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := pingPong(c); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		b.StopTimer()
		c.Close()
		if record {
			tlsTotal.addDur(t2.Sub(t0))
			tlsHS.addDur(t1.Sub(t0))
		}
	}
	iteration := func(i int, record bool) {
		b.StopTimer()
		inOrder(i,
			path("hip", func() { hipTotal(record) }),
			path("tls", func() { tlsFirst(record) }),
			path("hip", func() { hipSplit(record) }),
		)
		b.StartTimer()
	}
	iteration(0, false) // warm-up: first use of every code path
	b.ResetTimer()
	i := 0
	for b.Loop() {
		iteration(i, true)
		i++
	}
	h, t := hip.median(), tlsTotal.median()
	b.ReportMetric(h, "hip-µs")
	b.ReportMetric(t, "tls-µs")
	b.ReportMetric(ratio(h, t), "hip/tls")
	b.ReportMetric(bex.median(), "bex-µs")
	b.ReportMetric(qs.median(), "quic+open-µs")
	b.ReportMetric(rtt.median(), "echo-µs")
	b.ReportMetric(tlsHS.median(), "tls-hs-µs")
}

// dialBlock is how many dials of one path BenchmarkSecondDial runs back to
// back in an iteration.
const dialBlock = 8

func BenchmarkSecondDial(b *testing.B) {
	ctx := benchCtx(b)
	client, server := pairNodes(b, Config{}, Config{})
	echoServer(b, server, 7)
	dst := addrOf(server, 7)
	pki := getPKI(b)
	tlsAddr := serveTLS(b, pki.serverTLS(), func(c *tls.Conn) { echo(c) })
	tconf := pki.clientTLS()

	// For the breakdown: the one-octet round trip on connections that
	// stay open, a hipnet stream and a TLS connection over TCP.
	hlong, err := client.DialContext(ctx, "tcp", dst)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hlong.Close() })
	tlong, err := tls.Dial("tcp", tlsAddr, tconf)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tlong.Close() })
	// And quic-go on its own: a stream opened on a QUIC connection that
	// exists, one-octet echo, Close (no stream header and answer); and
	// the round trip on a stream that stays open.
	qc := quicPair(b, pki, false, func(s *quic.Stream) { echo(s) })
	qlong, err := qc.OpenStreamSync(ctx)
	if err != nil {
		b.Fatal(err)
	}

	var hip, hipOpen, hipEcho, hipRTT, tlsT, tcpRTT, quicT, quicRTT samples
	hipDial := func(record bool) {
		t0 := time.Now()
		c, err := client.DialContext(ctx, "tcp", dst)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := pingPong(c); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		c.Close()
		t3 := time.Now()
		if record {
			hip.addDur(t3.Sub(t0))
			hipOpen.addDur(t1.Sub(t0))
			hipEcho.addDur(t2.Sub(t1))
		}
	}
	tlsDial := func(record bool) {
		t0 := time.Now()
		c, err := tls.Dial("tcp", tlsAddr, tconf)
		if err != nil {
			b.Fatal(err)
		}
		if err := pingPong(c); err != nil {
			b.Fatal(err)
		}
		c.Close()
		if record {
			tlsT.addDur(time.Since(t0))
		}
	}
	quicDial := func(record bool) {
		t0 := time.Now()
		st, err := qc.OpenStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := pingPong(st); err != nil {
			b.Fatal(err)
		}
		st.Close()
		if record {
			quicT.addDur(time.Since(t0))
		}
	}
	// Each path runs dialBlock dials back to back per iteration, so
	// that most follow one of their own kind, as in a loop of dials.
	block := func(f func(bool)) func() {
		return func() {
			for range dialBlock {
				f(true)
			}
		}
	}
	hipDial(false) // the association and the QUIC connection
	tlsDial(false)
	quicDial(false)
	b.ResetTimer()
	i := 0
	for b.Loop() {
		inOrder(i,
			path("hip", block(hipDial)),
			path("tls", block(tlsDial)),
			path("quic", block(quicDial)))
		i++
	}

	// Diagnostics, after the timed loop and as many times: the same
	// second dial, and the one-octet round trip on the connections that
	// stay open, each after 1 ms of idleness. Back to back (above) the
	// goroutines on the way are still running; after a pause they are
	// parked and every hand-off between them waits for a thread to wake.
	var hipIdle samples
	idle := func(f func()) func() {
		return func() {
			time.Sleep(time.Millisecond)
			f()
		}
	}
	rtt := func(c io.ReadWriter, s *samples) func() {
		return idle(func() {
			t0 := time.Now()
			if err := pingPong(c); err != nil {
				b.Fatal(err)
			}
			s.addDur(time.Since(t0))
		})
	}
	for k := range i {
		inOrder(k,
			path("hip", idle(func() {
				t0 := time.Now()
				c, err := client.DialContext(ctx, "tcp", dst)
				if err != nil {
					b.Fatal(err)
				}
				if err := pingPong(c); err != nil {
					b.Fatal(err)
				}
				c.Close()
				hipIdle.addDur(time.Since(t0))
			})),
			path("hip", rtt(hlong, &hipRTT)),
			path("tls", rtt(tlong, &tcpRTT)),
			path("quic", rtt(qlong, &quicRTT)))
	}
	h, t := hip.median(), tlsT.median()
	b.ReportMetric(h, "hip-µs")
	b.ReportMetric(t, "tls-µs")
	b.ReportMetric(ratio(h, t), "hip/tls")
	b.ReportMetric(hipOpen.median(), "open-µs")
	b.ReportMetric(hipEcho.median(), "echo-µs")
	b.ReportMetric(hipRTT.median(), "hip-rtt-µs")
	b.ReportMetric(tcpRTT.median(), "tls-rtt-µs")
	b.ReportMetric(quicT.median(), "quic-µs")
	b.ReportMetric(hipIdle.median(), "hip-idle-µs")
	b.ReportMetric(quicRTT.median(), "quic-rtt-µs")
}

// bulkSize is what one transfer of BenchmarkThroughput moves.
const bulkSize = 32 << 20

func BenchmarkThroughput(b *testing.B) {
	ctx := benchCtx(b)
	pki := getPKI(b)

	// hipnet: one stream between two nodes.
	client, server := pairNodes(b, Config{}, Config{})
	hc := bulkStream(b, ctx, client, server)

	// TLS 1.3 over TCP.
	tlsAddr := serveTLS(b, pki.serverTLS(), func(c *tls.Conn) { bulkSink(c, bulkSize) })
	tc, err := tls.Dial("tcp", tlsAddr, pki.clientTLS())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tc.Close() })

	// quic-go on its own UDP sockets, and quic-go on UDP sockets shown
	// to it as plain PacketConns with streams.PacketSize packets (what
	// streams gives it): see quicPair.
	sink := func(s *quic.Stream) { bulkSink(s, bulkSize) }
	qs, err := quicPair(b, pki, false, sink).OpenStreamSync(ctx)
	if err != nil {
		b.Fatal(err)
	}
	ps, err := quicPair(b, pki, true, sink).OpenStreamSync(ctx)
	if err != nil {
		b.Fatal(err)
	}

	var hip, tlsT, quicT, plainT, hipCPU, tlsCPU samples
	run := bulkRunner(b)
	// Warm-up: flow-control windows grow during the first transfer.
	all := func(record bool) []func() {
		return []func(){
			run("hip", hc, &hip, &hipCPU, record), run("tls", tc, &tlsT, &tlsCPU, record),
			run("quic", qs, &quicT, nil, record), run("quicpc", ps, &plainT, nil, record),
		}
	}
	b.SetBytes(4 * bulkSize) // per op: one transfer on each of the four paths
	interleaved(b, all)
	h, t, q, p := hip.median(), tlsT.median(), quicT.median(), plainT.median()
	b.ReportMetric(h, "hip-MB/s")
	b.ReportMetric(t, "tls-MB/s")
	b.ReportMetric(q, "quic-MB/s")
	b.ReportMetric(ratio(h, t), "hip/tls")
	b.ReportMetric(ratio(h, q), "hip/quic")
	b.ReportMetric(p, "quicpc-MB/s")
	b.ReportMetric(ratio(h, p), "hip/quicpc")
	// CPU seconds per GB moved, both ends together (one process).
	b.ReportMetric(hipCPU.median(), "hip-cpu-s/GB")
	b.ReportMetric(tlsCPU.median(), "tls-cpu-s/GB")
}

// dgBursts is how many bursts one iteration of BenchmarkDatagrams sends on
// each path: 2048 datagrams.
const dgBursts = 64

func BenchmarkDatagrams(b *testing.B) {
	ctx := benchCtx(b)
	client, server := pairNodes(b, Config{}, Config{})
	spc := listenPacket(b, server, ":5683")
	go dgReceiver(spc)
	cpc := listenPacket(b, client, ":0")
	if err := client.stack.Connect(ctx, server.HIT()); err != nil {
		b.Fatal(err)
	}
	hdst := &Addr{HIT: server.HIT(), Port: 5683}

	udp := func() net.PacketConn {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	urecv, usend := udp(), udp()
	go dgReceiver(urecv)
	mrecv, msend := udp(), udp()
	go dgReceiverMMsg(mrecv)

	var hip, plain, mmsg samples
	var hipLost, udpLost, mmsgLost, unacked int
	var seq uint32
	type sender func(net.PacketConn, net.Addr, *uint32, int) (int, int, error)
	// A warm-up of 8 bursts a path, then dgBursts a path, recorded.
	run := func(name string, send sender, pc net.PacketConn, dst net.Addr, s *samples, lost *int, record bool) func() {
		bursts := 8
		if record {
			bursts = dgBursts
		}
		return path(name, func() {
			t0 := time.Now()
			n, l, err := send(pc, dst, &seq, bursts)
			d := time.Since(t0)
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			if record {
				s.add(float64(n) / d.Seconds())
				*lost += bursts*dgBurst - n
				unacked += l
			}
		})
	}
	b.SetBytes(3 * dgBursts * dgBurst * dgSize) // per op: the bursts on the three paths
	interleaved(b, func(record bool) []func() {
		return []func(){
			run("hip", dgSend, cpc, hdst, &hip, &hipLost, record),
			run("udp", dgSend, usend, urecv.LocalAddr(), &plain, &udpLost, record),
			run("mmsg", dgSendMMsg, msend, mrecv.LocalAddr(), &mmsg, &mmsgLost, record),
		}
	})
	h, u, m := hip.median(), plain.median(), mmsg.median()
	b.ReportMetric(h, "hip-dgram/s")
	b.ReportMetric(u, "udp-dgram/s")
	b.ReportMetric(m, "mmsg-dgram/s")
	b.ReportMetric(ratio(h, u), "hip/udp")
	b.ReportMetric(ratio(h, m), "hip/mmsg")
	// Totals over the run: datagrams not acknowledged as received, and
	// bursts whose acknowledgement did not come within dgAckTimeout.
	b.ReportMetric(float64(hipLost), "hip-lost")
	b.ReportMetric(float64(udpLost), "udp-lost")
	b.ReportMetric(float64(mmsgLost), "mmsg-lost")
	b.ReportMetric(float64(unacked), "unacked-bursts")
}

// BEX rate: bexClients initiators, bexWorkers at a time.
const (
	bexClients = 128
	bexWorkers = 8
)

// parallel calls f(0..n-1) from workers goroutines and returns the first
// error.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func BenchmarkBEXRate(b *testing.B) {
	ctx := benchCtx(b)
	server := newTestNode(b, Config{})
	pki := getPKI(b)
	// The TLS server reports every handshake it completes (or fails).
	done := make(chan error, 4*bexClients)
	tlsAddr := serveTLS(b, pki.serverTLS(), func(c *tls.Conn) { done <- c.HandshakeContext(ctx) })
	tconf := pki.clientTLS()

	var bexRate, tlsRate samples
	bexBatch := func(k int, record bool) func() {
		return path("hip", func() {
			clients := make([]*Node, k)
			for i := range clients {
				// Each on an address of its own, as many clients are:
				// the responder's R1 limit per address (overlay
				// ratelimit.go) would otherwise pace them, and it is
				// the responder's capacity that is measured here.
				clients[i] = freshClientAt(b, server, ownLoopback(i))
			}
			b.StartTimer()
			t0 := time.Now()
			err := parallel(k, bexWorkers, func(i int) error { return clients[i].stack.Connect(ctx, server.HIT()) })
			d := time.Since(t0)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if record {
				bexRate.add(float64(k) / d.Seconds())
			}
			var wg sync.WaitGroup
			for _, c := range clients {
				wg.Add(1)
				go func() { defer wg.Done(); c.Close() }()
			}
			wg.Wait()
		})
	}
	tlsBatch := func(k int, record bool) func() {
		return path("tls", func() {
			b.StartTimer()
			t0 := time.Now()
			err := parallel(k, bexWorkers, func(int) error {
				c, err := tls.Dial("tcp", tlsAddr, tconf)
				if err != nil {
					return err
				}
				return c.Close()
			})
			if err != nil {
				b.Fatal(err)
			}
			for range k { // the server's side of every handshake
				if err := <-done; err != nil {
					b.Fatal(fmt.Errorf("tls server: %w", err))
				}
			}
			d := time.Since(t0)
			b.StopTimer()
			if record {
				tlsRate.add(float64(k) / d.Seconds())
			}
		})
	}
	b.StopTimer()
	inOrder(0, bexBatch(bexWorkers, false), tlsBatch(bexWorkers, false)) // warm-up
	// b.Loop wants the timer running.
	b.StartTimer()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		b.StopTimer()
		inOrder(i, bexBatch(bexClients, true), tlsBatch(bexClients, true))
		b.StartTimer()
		i++
	}
	x, t := bexRate.median(), tlsRate.median()
	b.ReportMetric(x, "bex/s")
	b.ReportMetric(t, "tls/s")
	b.ReportMetric(ratio(x, t), "bex/tls")
}

// bulkStream opens the hipnet stream of a bulk benchmark: from client to
// a listener on server's port 9 whose every connection is a bulkSink.
func bulkStream(b *testing.B, ctx context.Context, client, server *Node) net.Conn {
	b.Helper()
	ln, err := server.Listen("tcp", ":9")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		bulkSink(c, bulkSize)
	}()
	hc, err := client.DialContext(ctx, "tcp", addrOf(server, 9))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { hc.Close() })
	return hc
}

// bulkRunner returns run: run(name, c, s, cpu, record) is one bulkSize
// transfer on c (a path of the benchmark, skipped unless
// -hipnet.benchonly names it or is empty) that, when record, adds its
// MB/s to s and its CPU seconds per GB to cpu (unless nil).
func bulkRunner(b *testing.B) func(name string, c io.ReadWriter, s, cpu *samples, record bool) func() {
	buf := make([]byte, bulkChunk)
	rand.Read(buf)
	return func(name string, c io.ReadWriter, s, cpu *samples, record bool) func() {
		return path(name, func() {
			c0, t0 := cpuTime(), time.Now()
			if err := bulkSend(c, buf, bulkSize); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			if record {
				s.add(float64(bulkSize) / time.Since(t0).Seconds() / 1e6)
				if cpu != nil {
					cpu.add((cpuTime() - c0).Seconds() / (float64(bulkSize) / 1e9))
				}
			}
		})
	}
}
