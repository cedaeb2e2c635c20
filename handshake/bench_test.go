package handshake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"syscall"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Benchmarks with same-run baselines:
//
//	BenchmarkBEX          one complete base exchange, Initiator plus
//	                      Responder CPU, in memory, ECDSA P-256 identities,
//	                      DH group 7, default puzzle difficulty
//	BenchmarkTLS13Mutual  one crypto/tls 1.3 handshake with mutual ECDSA
//	                      P-256 certificates over net.Pipe
//	BenchmarkBEXvsTLS     both in one run, reporting BEX/TLS (goal <= 1.0)
//	BenchmarkI1           an I1 answered with a pre-computed R1 (goal
//	                      <= 5 µs, no public-key operation)

func benchHosts(b *testing.B) (*host, *host) {
	a := newHost(b, "a", Config{Identity: testKey(b, hostid.ECDSAP256, 0)})
	r := newHost(b, "b", Config{Identity: testKey(b, hostid.ECDSAP256, 1)})
	return a, r
}

func runBEX(b *testing.B, a, r *host) {
	a.assoc, r.assoc = map[wire.HIT]*Association{}, map[wire.HIT]*Association{}
	a.events, r.events, a.errs, r.errs = nil, nil, nil, nil
	l := &link{}
	l.send(a, r, a.initiate(t0, r.e.HIT()))
	l.run(b, t0)
	if a.a(r).State() != Established {
		b.Fatalf("BEX failed: %v", a.errs)
	}
}

func BenchmarkBEX(b *testing.B) {
	a, r := benchHosts(b)
	b.ReportAllocs()
	for b.Loop() {
		runBEX(b, a, r)
	}
}

func BenchmarkTLS13Mutual(b *testing.B) {
	cli, srv := tlsConfigs(b)
	b.ReportAllocs()
	for b.Loop() {
		tlsHandshake(b, cli, srv)
	}
}

// BenchmarkBEXvsTLS interleaves the two handshakes so that both see the
// same machine state, and reports their ratio. (testing.Benchmark cannot
// be nested inside a benchmark: it would deadlock on the benchmark lock.)
func BenchmarkBEXvsTLS(b *testing.B) {
	a, r := benchHosts(b)
	cli, srv := tlsConfigs(b)
	// Wall time and process CPU time (both goroutines of the TLS pair
	// count), each interleaved.
	var tb, tt, cb, ct time.Duration
	n := 0
	for b.Loop() {
		s, c := time.Now(), cpuTime()
		runBEX(b, a, r)
		tb += time.Since(s)
		cb += cpuTime() - c
		s, c = time.Now(), cpuTime()
		tlsHandshake(b, cli, srv)
		tt += time.Since(s)
		ct += cpuTime() - c
		n++
	}
	b.ReportMetric(float64(tb.Microseconds())/float64(n), "bex-µs")
	b.ReportMetric(float64(tt.Microseconds())/float64(n), "tls-µs")
	b.ReportMetric(float64(tb)/float64(tt), "bex/tls")
	b.ReportMetric(float64(cb)/float64(ct), "cpu-bex/tls")
}

// cpuTime is the CPU time this process has used (user plus system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkI1(b *testing.B) {
	_, r := benchHosts(b)
	var bl wire.Builder
	bl.Reset(nil, wire.I1, testKey(b, hostid.ECDSAP256, 0).HIT(), r.e.HIT())
	bl.Add(wire.DHGroupList{Groups: []uint8{wire.DHGroupP256}})
	i1, _ := bl.Bytes()
	rot := r.e.Stats().R1Rotations
	b.ReportAllocs()
	for b.Loop() {
		res, err := r.e.Handle(t0, i1, nil)
		if err != nil || res.Reply == nil {
			b.Fatal(err)
		}
	}
	if r.e.Stats().R1Rotations != rot {
		b.Fatal("answering I1s signed")
	}
}

func tlsConfigs(b *testing.B) (cli, srv *tls.Config) {
	cert := func(name string) (tls.Certificate, *x509.Certificate) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			b.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: c}, c
	}
	cc, cx := cert("client")
	sc, sx := cert("server")
	cp, sp := x509.NewCertPool(), x509.NewCertPool()
	cp.AddCert(sx)
	sp.AddCert(cx)
	cli = &tls.Config{Certificates: []tls.Certificate{cc}, RootCAs: cp, ServerName: "server",
		MinVersion: tls.VersionTLS13, ClientSessionCache: nil}
	srv = &tls.Config{Certificates: []tls.Certificate{sc}, ClientCAs: sp, ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true}
	return cli, srv
}

func tlsHandshake(b *testing.B, cli, srv *tls.Config) {
	c1, c2 := net.Pipe()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(c2, srv)
		done <- s.Handshake()
	}()
	c := tls.Client(c1, cli)
	if err := c.Handshake(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	// Close the pipe, not the tls.Conns: their close_notify would block
	// on the synchronous pipe with nobody reading.
	c1.Close()
	c2.Close()
}
