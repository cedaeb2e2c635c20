package streams

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// BenchmarkStreamDial: a Dial on an existing connection (the stream header,
// no round trip: the answer comes back with the echo) plus a one-octet
// round trip and Close.
func BenchmarkStreamDial(b *testing.B) {
	ka, kb, _ := testIdentities(b)
	x, y := newPair(b, ka, kb)
	l, err := y.m.Listen(80)
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var p [1]byte
				if _, err := io.ReadFull(c, p[:]); err == nil {
					c.Write(p[:])
				}
			}()
		}
	}()
	ctx := context.Background()
	pingPong := func() {
		c, err := x.m.Dial(ctx, y.hit, 80)
		if err != nil {
			b.Fatal(err)
		}
		var p [1]byte
		if _, err := c.Write(p[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, p[:]); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	pingPong() // the connection
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pingPong()
	}
}

// BenchmarkStreamThroughput: one stream, 64 KiB writes, the reader
// discarding; the time includes the last byte's arrival.
func BenchmarkStreamThroughput(b *testing.B) {
	ka, kb, _ := testIdentities(b)
	x, y := newPair(b, ka, kb)
	l, err := y.m.Listen(80)
	if err != nil {
		b.Fatal(err)
	}
	c, err := x.m.Dial(context.Background(), y.hit, 80)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchThroughput(b, c, s)
}

// BenchmarkQUICThroughputBaseline is the same transfer with quic-go alone,
// at the same packet size, over loopback UDP sockets seen as plain
// net.PacketConns (no GSO or batched reads, as for the Manager): the
// ratio is the cost of the stream layer and the HIT-addressed adapter.
func BenchmarkQUICThroughputBaseline(b *testing.B) {
	ka, _, _ := testIdentities(b)
	cert, err := newCertificate(ka)
	if err != nil {
		b.Fatal(err)
	}
	conf := (&Config{}).quicConfig()
	udp := func() net.PacketConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		return newPacketConn(c)
	}
	st, ct := &quic.Transport{Conn: udp()}, &quic.Transport{Conn: udp()}
	defer st.Close()
	defer ct.Close()
	ln, err := st.Listen(&tls.Config{
		Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn},
	}, conf)
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cc, err := ct.Dial(context.Background(), st.Conn.LocalAddr(), &tls.Config{
		ServerName: wire.HIT(ka.HIT()).String(), NextProtos: []string{alpn},
		RootCAs: rootPool(b, ka),
	}, conf)
	if err != nil {
		b.Skipf("baseline dial: %v", err)
	}
	defer cc.CloseWithError(0, "")
	sc, err := ln.Accept(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	cs, err := cc.OpenStreamSync(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	cs.Write([]byte{0}) // the peer sees the stream once data flows
	ss, err := sc.AcceptStream(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	ss.Read(make([]byte, 1))
	benchThroughput(b, cs, ss)
}

type halfCloser interface {
	io.ReadWriter
	Close() error
}

func benchThroughput(b *testing.B, w io.Writer, r io.ReadWriter) {
	done := make(chan int64)
	buf := make([]byte, 64<<10)
	go func() {
		n, _ := io.Copy(io.Discard, r)
		done <- n
	}()
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	var sent int64
	for b.Loop() {
		n, err := w.Write(buf)
		if err != nil {
			b.Fatal(err)
		}
		sent += int64(n)
	}
	switch c := w.(type) {
	case interface{ CloseWrite() error }:
		c.CloseWrite()
	case halfCloser:
		c.Close()
	}
	if got := <-done; got != sent {
		b.Fatalf("received %d of %d bytes", got, sent)
	}
}

// rootPool holds the synthetic root for k, as a client of k would.
func rootPool(b *testing.B, k *hostid.PrivateKey) *x509.CertPool {
	root, err := syntheticRoot(wire.HIT(k.HIT()), k.Public().CryptoPublicKey())
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pool
}

// pairs are the two kinds of QUIC handshake, for the benchmarks.
var pairs = []struct {
	name string
	new  func(testing.TB, *hostid.PrivateKey, *hostid.PrivateKey, ...func(*Config)) (*node, *node)
}{
	{"psk", newPair},
	{"certificates", newCertPair},
}

// BenchmarkFirstContact: a Dial to a peer with no QUIC connection (the
// QUIC handshake and the stream) plus a one-octet round trip and Close.
// The HIP base exchange is not included. Between iterations both sides
// forget the connection, untimed; in the -cold runs they also forget the
// synthetic certificates, as for a peer never met.
func BenchmarkFirstContact(b *testing.B) {
	for _, p := range pairs {
		for _, cold := range []bool{false, true} {
			name := p.name
			if cold {
				name += "-cold"
			}
			b.Run(name, func(b *testing.B) {
				ka, kb, _ := testIdentities(b)
				x, y := p.new(b, ka, kb)
				echoOn(b, y, 80)
				b.ReportAllocs()
				for b.Loop() {
					pingPong(b, x.m, y.hit)
					b.StopTimer()
					dropConns(b, x, y)
					if cold {
						x.m.certs = certCache{}
						y.m.certs = certCache{}
					}
					b.StartTimer()
				}
			})
		}
	}
}

// pingPong dials port 80 on peer, sends one octet, reads it back, and
// closes.
func pingPong(b *testing.B, m *Manager, peer wire.HIT) {
	c, err := m.Dial(context.Background(), peer, 80)
	if err != nil {
		b.Fatal(err)
	}
	var p [1]byte
	if _, err := c.Write(p[:]); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, p[:]); err != nil {
		b.Fatal(err)
	}
	c.Close()
}

// BenchmarkHandshake: one QUIC handshake with the peer (the client's view:
// until its handshake completes), no stream.
func BenchmarkHandshake(b *testing.B) {
	for _, p := range pairs {
		b.Run(p.name, func(b *testing.B) {
			ka, kb, _ := testIdentities(b)
			x, y := p.new(b, ka, kb)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c, err := x.m.handshake(ctx, y.hit, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				c.CloseWithError(connCodeClosed, "benchmark")
				dropConns(b, x, y)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkKeyShare: the PSK handshake of BenchmarkHandshake with the
// client's key share on each group the server accepts (clientCurvesFor),
// alternated, and the medians' ratio, measured in the same run.
func BenchmarkKeyShare(b *testing.B) {
	ka, kb, _ := testIdentities(b)
	x, y := newPair(b, ka, kb)
	ctx := context.Background()
	defer func(c []tls.CurveID) { clientCurves = c }(clientCurves)
	groups := []tls.CurveID{tls.X25519, tls.CurveP256}
	spent := make([][]float64, len(groups))
	for i := 0; b.Loop(); i++ {
		g := i % len(groups)
		clientCurves = groups[g : g+1]
		t0 := time.Now()
		c, err := x.m.handshake(ctx, y.hit, nil)
		if err != nil {
			b.Fatal(err)
		}
		spent[g] = append(spent[g], float64(time.Since(t0).Microseconds()))
		b.StopTimer()
		c.CloseWithError(connCodeClosed, "benchmark")
		dropConns(b, x, y)
		b.StartTimer()
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	x25519, p256 := med(spent[0]), med(spent[1])
	b.ReportMetric(x25519, "x25519-µs")
	b.ReportMetric(p256, "p256-µs")
	if x25519 > 0 {
		b.ReportMetric(p256/x25519, "p256/x25519")
	}
}

// BenchmarkSyntheticCert: what a peer identity not met before costs the
// certificate cache.
func BenchmarkSyntheticCert(b *testing.B) {
	ka, _, _ := testIdentities(b)
	hit := wire.HIT(ka.HIT())
	for b.Loop() {
		var c certCache
		if _, err := c.get(hit, ka.Public()); err != nil {
			b.Fatal(err)
		}
	}
}

// dropConns closes x's connections and waits until neither side has one.
func dropConns(b testing.TB, x, y *node) {
	x.m.mu.Lock()
	for qc := range x.m.conns {
		qc.c.CloseWithError(connCodeClosed, "benchmark")
	}
	x.m.mu.Unlock()
	for x.m.ConnectionCount() != 0 || y.m.ConnectionCount() != 0 {
		time.Sleep(100 * time.Microsecond)
	}
}

// BenchmarkClientTLSAfterGC: the client's TLS config for a first contact
// (its synthetic PSK session) right after a garbage collection, as on a
// node that has been running a while; the certificates are pinned
// (pinSession). Every iteration collects garbage first, and ns/op counts
// that too (with the timer stopped around it, b.N would grow until the
// untimed collections took minutes); config-µs is the config alone.
func BenchmarkClientTLSAfterGC(b *testing.B) {
	ka, kb, _ := testIdentities(b)
	x, y := newPair(b, ka, kb)
	secret := make([]byte, SecretSize)
	var spent time.Duration
	n := 0
	for b.Loop() {
		runtime.GC()
		t0 := time.Now()
		if _, err := x.m.clientTLS(y.hit, kb.Public(), secret); err != nil {
			b.Fatal(err)
		}
		spent += time.Since(t0)
		n++
	}
	b.ReportMetric(float64(spent.Microseconds())/float64(n), "config-µs")
}
