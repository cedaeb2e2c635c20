package streams

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// roundTrip sends data on a fresh stream to port on peer, half-closes,
// and checks that exactly data comes back.
func roundTrip(t testing.TB, m *Manager, peer wire.HIT, port int, data []byte) error {
	c, err := m.Dial(dialCtx(t), peer, port)
	if err != nil {
		return err
	}
	defer c.Close()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return errors.New("echo differs from what was sent")
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestEcho8MiB(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	echoOn(t, b, 80)
	if err := roundTrip(t, a.m, b.hit, 80, randomBytes(8<<20)); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentStreamsOneConnection(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	echoOn(t, b, 80)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			if err := roundTrip(t, a.m, b.hit, 80, randomBytes(64<<10)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := a.m.ConnectionCount(); n != 1 {
		t.Errorf("client has %d connections, want 1", n)
	}
	if n := b.m.ConnectionCount(); n != 1 {
		t.Errorf("server has %d connections, want 1", n)
	}
}

func TestAddrs(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	l, err := b.m.Listen(443)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got, want := l.Addr().String(), (&overlay.Addr{HIT: b.hit, Port: 443}).String(); got != want || l.Addr().Network() != "hip" {
		t.Errorf("listener Addr %s (%s), want %s (hip)", got, l.Addr().Network(), want)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := a.m.Dial(dialCtx(t), b.hit, 443)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	defer s.Close()

	la, ra := c.LocalAddr().(*overlay.Addr), c.RemoteAddr().(*overlay.Addr)
	sl, sr := s.LocalAddr().(*overlay.Addr), s.RemoteAddr().(*overlay.Addr)
	if la.HIT != a.hit || ra.HIT != b.hit || ra.Port != 443 {
		t.Errorf("dialed stream: local %s remote %s", la, ra)
	}
	if sl.HIT != b.hit || sl.Port != 443 || sr.HIT != a.hit || sr.Port != la.Port {
		t.Errorf("accepted stream: local %s remote %s; dialer's local %s", sl, sr, la)
	}
	if la.Port < ephemeralLow || la.Port > ephemeralHigh {
		t.Errorf("source port %d is not ephemeral", la.Port)
	}
}

// An accepted connection carries the Dials of the side that accepted it.
func TestAcceptedConnectionIsReused(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	for _, n := range []*node{a, b} {
		echoOn(t, n, 9)
	}
	if err := roundTrip(t, a.m, b.hit, 9, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(t, b.m, a.hit, 9, []byte("pong")); err != nil {
		t.Fatal(err)
	}
	if na, nb := a.m.ConnectionCount(), b.m.ConnectionCount(); na != 1 || nb != 1 {
		t.Errorf("connections: %d and %d, want 1 and 1", na, nb)
	}
}

// Both sides dial each other at once: two connections come up, both sides
// retire the same one, and one is left when the streams are done.
func TestSimultaneousOpen(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	for _, n := range []*node{a, b} {
		echoOn(t, n, 9)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := roundTrip(t, a.m, b.hit, 9, []byte("from a")); err != nil {
				t.Error(err)
			}
		})
		wg.Go(func() {
			if err := roundTrip(t, b.m, a.hit, 9, []byte("from b")); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for a.m.ConnectionCount() != 1 || b.m.ConnectionCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("connections: %d and %d, want 1 and 1", a.m.ConnectionCount(), b.m.ConnectionCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := roundTrip(t, a.m, b.hit, 9, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(t, b.m, a.hit, 9, []byte("after")); err != nil {
		t.Fatal(err)
	}
}

// dialRead dials port on peer and reads: the Dial's error, or else the
// first Read's, which is where the server's answer (a refusal) or a
// rejection of our certificate shows.
func dialRead(t testing.TB, m *Manager, peer wire.HIT, port int) error {
	c, err := m.Dial(dialCtx(t), peer, port)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

// holds returns the streams (and Dials) on m's connection with peer.
func holds(m *Manager, peer wire.HIT) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.peers[peer]; p != nil && p.cur != nil {
		return p.cur.active
	}
	return 0
}

// A port with no listener: Dial succeeds (it does not wait for the
// answer), and the first Read or the first Write reports ErrRefused, as
// does every later one.
func TestRefused(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	for i, warm := range []bool{false, true} { // without, then with a connection
		start := time.Now()
		if err := dialRead(t, a.m, b.hit, 81); !errors.Is(err, overlay.ErrRefused) {
			t.Fatalf("dial %d: %v, want ErrRefused", i, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("dial %d (warm %v) took %v to be refused", i, warm, d)
		}
	}
	// The first Write reports it, and later Reads and Writes do too.
	c, err := a.m.Dial(dialCtx(t), b.hit, 81)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Write([]byte("hello")); !errors.Is(err, overlay.ErrRefused) || n != 0 {
		t.Fatalf("first Write: %d, %v, want 0 and ErrRefused", n, err)
	}
	if _, err := c.Write([]byte("again")); !errors.Is(err, overlay.ErrRefused) {
		t.Errorf("second Write: %v, want ErrRefused", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, overlay.ErrRefused) {
		t.Errorf("Read after the refusal: %v, want ErrRefused", err)
	}
	var oe *net.OpError
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &oe) || oe.Op != "read" {
		t.Errorf("Read error %v is not a *net.OpError of read", err)
	}
	// The refusal let go of the connection (the application may never
	// Close the stream): nothing holds it open.
	deadline := time.Now().Add(2 * time.Second)
	for holds(a.m, b.hit) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d holds on the connection after the refusals", holds(a.m, b.hit))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after the refusal: %v", err)
	}
	if n := holds(a.m, b.hit); n != 0 {
		t.Errorf("%d holds on the connection after Close", n)
	}
	// A closed listener refuses too, and its port can be taken again.
	l, err := b.m.Listen(81)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := dialRead(t, a.m, b.hit, 81); !errors.Is(err, overlay.ErrRefused) {
		t.Fatalf("dial to a closed listener: %v, want ErrRefused", err)
	}
	if l, err = b.m.Listen(81); err != nil {
		t.Fatal(err)
	}
	l.Close()
}

func TestListen(t *testing.T) {
	ka, _, _ := testIdentities(t)
	n := newNode(t, ka)
	l, err := n.m.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.m.Listen(80); !errors.Is(err, overlay.ErrPortInUse) {
		t.Errorf("second Listen(80): %v, want ErrPortInUse", err)
	}
	e, err := n.m.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	if p := e.Addr().(*overlay.Addr).Port; p < ephemeralLow || p > ephemeralHigh {
		t.Errorf("Listen(0) got port %d", p)
	}
	for _, p := range []int{-1, 65536} {
		if _, err := n.m.Listen(p); err == nil {
			t.Errorf("Listen(%d) succeeded", p)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) || !errors.Is(err, overlay.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed and overlay.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// The client's PeerIdentity returns a key that is not the server's: the
// server's certificate does not chain to the synthetic root and the
// handshake fails on the client.
func TestClientRejectsWrongServerIdentity(t *testing.T) {
	ka, kb, other := testIdentities(t)
	a, b := newPair(t, ka, kb)
	a.dir.set(b.hit, other.Public())
	echoOn(t, b, 80)
	_, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err == nil {
		t.Fatal("Dial succeeded with the wrong identity for the server")
	}
	// PeerIdentity's key for b.hit is not b's identity: refused before any
	// packet is sent.
	if !errors.Is(err, ErrPeerCertificate) {
		t.Errorf("Dial: %v, want ErrPeerCertificate", err)
	}
	if n := b.m.ConnectionCount(); n != 0 {
		t.Errorf("server has %d connections", n)
	}
}

// Here the client's table is consistent (the key's HIT is the HIT dialed)
// but the server holds another key for that HIT: the TLS verifier
// itself must reject the server's certificate.
func TestClientVerifierRejectsOtherKey(t *testing.T) {
	ka, kb, other := testIdentities(t)
	a := newNode(t, ka)
	imp := newNode(t, other) // impersonates b: listens at b's HIT with another key
	bh := wire.HIT(kb.HIT())
	imp.pc.self.HIT = bh
	connect(a.pc, imp.pc)
	a.dir.set(bh, kb.Public())
	imp.dir.set(a.hit, ka.Public())
	// a has b's association secret, which the impostor lacks: a offers
	// the PSK, the impostor cannot resume it, and the certificate
	// handshake is left.
	// With the PSK, Dial returns once the ClientHello and the 0-RTT
	// stream are out (early.go), so the verdict comes with the first
	// Write; the 0-RTT data is sealed with the PSK, which the impostor
	// cannot open, and nothing is sent again to a server that failed.
	secret := make([]byte, SecretSize)
	rand.Read(secret)
	a.dir.setSecret(bh, secret)
	accepted := acceptFirst(t, imp.m, 80)
	c, err := a.m.Dial(dialCtx(t), bh, 80)
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Write([]byte("for b only"))
		c.Close()
	}
	if err == nil {
		t.Fatal("Dial and Write succeeded to a server with another key")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Dial or Write: %v, want a certificate error", err)
	}
	select {
	case c := <-accepted:
		t.Errorf("the impostor accepted a stream from %v", c.RemoteAddr())
	case <-time.After(100 * time.Millisecond):
	}
	deadline := time.Now().Add(5 * time.Second)
	for imp.m.ConnectionCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("impostor has %d connections", imp.m.ConnectionCount())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The server's PeerIdentity returns another key for the client: the
// server does not resume the client's PSK session (it cannot make the
// session's client certificate), rejects the client's certificate, and
// the stream fails.
func TestServerRejectsWrongClientIdentity(t *testing.T) {
	ka, kb, other := testIdentities(t)
	a, b := newPair(t, ka, kb)
	b.dir.set(a.hit, other.Public())
	echoOn(t, b, 80)
	// The client's handshake completes before the server has checked its
	// certificate: the rejection shows on the first Read.
	err := dialRead(t, a.m, b.hit, 80)
	if err == nil {
		t.Fatal("stream works although the server holds another key for the client")
	}
	var te *quic.TransportError
	if !errors.As(err, &te) {
		t.Logf("Dial: %v (not a TransportError)", err)
	}
	if n := b.m.ConnectionCount(); n != 0 {
		t.Errorf("server has %d connections", n)
	}
	t.Log(err)
}

// The same as above, with the client's key checked directly: the
// server's verification names the HIT from the packet's address, so a
// client at another HIT (here: the third identity's) cannot present its
// own certificate for it.
func TestServerRejectsCertificateOfAnotherHIT(t *testing.T) {
	ka, kb, other := testIdentities(t)
	a, b := newCertPair(t, ka, kb)
	// b maps a's address to a's HIT, but a presents other's certificate.
	cert, err := newCertificate(other)
	if err != nil {
		t.Fatal(err)
	}
	a.m.cert = cert
	echoOn(t, b, 80)
	if err := dialRead(t, a.m, b.hit, 80); err == nil {
		t.Fatal("stream works with another host's certificate")
	}
	if n := b.m.ConnectionCount(); n != 0 {
		t.Errorf("server has %d connections", n)
	}
}

func TestRSAIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA key generation")
	}
	kr, err := hostid.Generate(hostid.RSA2048, nil)
	if err != nil {
		t.Fatal(err)
	}
	ka, _, _ := testIdentities(t)
	for name, pair := range map[string]func(testing.TB, *hostid.PrivateKey, *hostid.PrivateKey, ...func(*Config)) (*node, *node){
		"psk":          newPair,
		"certificates": newCertPair,
	} {
		a, b := pair(t, ka, kr)
		for _, n := range []*node{a, b} {
			echoOn(t, n, 9)
		}
		if err := roundTrip(t, a.m, b.hit, 9, []byte("to rsa")); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b.m.Close()
		a.m.Close()
		// Fresh pair, the RSA side dialing.
		a, b = pair(t, ka, kr)
		echoOn(t, a, 9)
		if err := roundTrip(t, b.m, a.hit, 9, []byte("from rsa")); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cs, _ := tlsStates(t, b, a); cs.DidResume != (name == "psk") {
			t.Errorf("%s: DidResume %v", name, cs.DidResume)
		}
	}
}

func TestUnknownPeer(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	a.dir.mu.Lock()
	delete(a.dir.keys, b.hit)
	a.dir.mu.Unlock()
	if _, err := a.m.Dial(dialCtx(t), b.hit, 80); !errors.Is(err, overlay.ErrUnknownPeer) {
		t.Fatalf("Dial: %v, want ErrUnknownPeer", err)
	}
	// With Associate, Dial runs it and retries the lookup.
	var calls int
	a.m.cfg.Associate = func(ctx context.Context, h wire.HIT) error {
		calls++
		a.dir.set(h, kb.Public())
		return nil
	}
	echoOn(t, b, 80)
	if err := roundTrip(t, a.m, b.hit, 80, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("Associate called %d times", calls)
	}
}

func TestDeadlines(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	accepted := acceptFirst(t, b.m, 80)
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	defer s.Close()

	checkTimeout := func(what string, err error) {
		t.Helper()
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s: %v, want a net.Error with Timeout()", what, err)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: %v does not wrap os.ErrDeadlineExceeded", what, err)
		}
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	checkTimeout("Read", err)
	if d := time.Since(start); d < 40*time.Millisecond || d > time.Second {
		t.Errorf("Read returned after %v", d)
	}
	// The deadline can be lifted, and the stream still works.
	c.SetReadDeadline(time.Time{})
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	// A Write blocked on flow control (nobody reads on s) times out too.
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	big := make([]byte, 1<<20)
	for {
		if _, err = c.Write(big); err != nil {
			break
		}
	}
	checkTimeout("Write", err)

	// A deadline in the past fails at once; SetDeadline sets both.
	s.SetDeadline(time.Unix(1, 0))
	_, err = s.Read(make([]byte, 1))
	checkTimeout("Read, past deadline", err)
}

// streamPair dials port on b from a and returns the dialed stream and
// b's accepted end, both closed at the test's end.
func streamPair(t *testing.T, a, b *node, port int) (c, s net.Conn) {
	t.Helper()
	acc := acceptFirst(t, b.m, port)
	c, err := a.m.Dial(dialCtx(t), b.hit, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte("x")); err != nil { // the header and the answer: the stream is accepted
		t.Fatal(err)
	}
	s = <-acc
	t.Cleanup(func() { s.Close() })
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return c, s
}

// TestReadAfterCloseAfterEOF: a Read after Close fails with
// net.ErrClosed, as package net's does, also on a stream whose FIN was
// read already (it gave io.EOF).
func TestReadAfterCloseAfterEOF(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	c, s := streamPair(t, a, b, 80)
	c.Write([]byte("abc"))
	c.(interface{ CloseWrite() error }).CloseWrite()
	if got, err := io.ReadAll(s); err != nil || string(got) != "abc" {
		t.Fatalf("read %q, %v", got, err)
	}
	s.Close()
	if _, err := s.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
}

// TestIdleCloseWaitsForPeer: a server writes an answer and closes its
// stream while the client still reads it slowly. The server's end of the
// connection then has no open stream, but it is not closed as idle until
// the client has finished with the stream (drain.go): the client reads
// all of the answer and io.EOF.
func TestIdleCloseWaitsForPeer(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	b.m.idle = 200 * time.Millisecond
	c, s := streamPair(t, a, b, 80) // the request read
	const size = 1 << 20
	go func() {
		s.Write(make([]byte, size))
		s.Close()
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf, n := make([]byte, 64<<10), 0
	for {
		k, err := c.Read(buf)
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %d of %d octets, then %v", n, size, err)
		}
		time.Sleep(40 * time.Millisecond)
	}
	if n != size {
		t.Fatalf("read %d of %d octets", n, size)
	}
}

func TestStreamClose(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	l, err := b.m.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()

	// Close unblocks a Read on the same stream and reports net.ErrClosed.
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	rerr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		rerr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-rerr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read during Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	// The peer reads EOF (Close sent FIN) and its writes fail
	// (STOP_SENDING).
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer Read: %v, want EOF", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := s.Write([]byte("x")); err != nil {
			var se *quic.StreamError
			if !errors.As(err, &se) || se.ErrorCode != streamCodeClosed {
				t.Errorf("peer Write: %v, want a StreamError", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("peer Write still succeeds")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()

	// Close unblocks a Write blocked on flow control.
	c, err = a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	s = <-accepted
	defer s.Close()
	werr := make(chan error, 1)
	go func() {
		big := make([]byte, 1<<20)
		for {
			if _, err := c.Write(big); err != nil {
				werr <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	c.Close()
	select {
	case err := <-werr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Write: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Write")
	}
}

func TestHalfClose(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	l, err := b.m.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	// The server reads to EOF, then answers: possible only if CloseWrite
	// left the other direction open.
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		got, _ := io.ReadAll(c)
		c.Write(append([]byte("got "), got...))
	}()
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("question"))
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got question" {
		t.Fatalf("read %q, %v", got, err)
	}
}

// TestCloseWriteDuringBlockedWrite: CloseWrite while a Write is blocked
// on flow control (the peer reads nothing yet) returns at once, as
// shutdown(SHUT_WR) does on a TCP socket; the Write then returns what it
// queued with EPIPE, and the peer reads exactly that, then io.EOF.
func TestCloseWriteDuringBlockedWrite(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	c, s := streamPair(t, a, b, 80) // the answer is in: the next Write blocks on flow control only
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		n, err := c.Write(make([]byte, 64<<20))
		wrote <- result{n, err}
	}()
	// The Write has begun to send (the peer gets its first octet), and
	// then fills the window and blocks: the peer reads nothing more.
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatalf("the peer read nothing of the Write: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.(interface{ CloseWrite() error }).CloseWrite() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("CloseWrite waited for the blocked Write")
	}
	w := <-wrote
	if !errors.Is(w.err, syscall.EPIPE) || w.n <= 0 || w.n >= 64<<20 {
		t.Fatalf("the blocked Write returned %d, %v; want part of it and EPIPE", w.n, w.err)
	}
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.Copy(io.Discard, s)
	if got++; err != nil || got != int64(w.n) { // with the first octet
		t.Fatalf("the peer read %d octets, %v; want %d, then io.EOF", got, err, w.n)
	}
	if _, err := c.Write([]byte("y")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write after CloseWrite: %v, want EPIPE", err)
	}
}

func TestDialContext(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.m.Dial(ctx, b.hit, 80); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context: %v", err)
	}
	for _, p := range []int{0, -1, 65536} {
		if _, err := a.m.Dial(dialCtx(t), b.hit, p); err == nil {
			t.Errorf("Dial to port %d succeeded", p)
		}
	}
	// A peer that never answers: the context ends the Dial.
	_, _, other := testIdentities(t)
	silent := wire.HIT(other.HIT())
	a.dir.set(silent, other.Public())
	a.pc.mu.Lock()
	a.pc.byHIT[silent] = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9} // discard
	a.pc.mu.Unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := a.m.Dial(ctx, silent, 80); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial to a silent peer: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Dial returned after %v", d)
	}
}

// A stream with an unknown header version is reset, not delivered.
func TestBadHeaderVersion(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	echoOn(t, b, 80)
	qc, _, err := a.m.conn(dialCtx(t), b.hit, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.m.release(qc)
	st, err := qc.c.OpenStreamSync(dialCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte{2, 0, 80, 0xC0, 0})
	st.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = st.Read(make([]byte, 1))
	var se *quic.StreamError
	if !errors.As(err, &se) || se.ErrorCode != streamCodeBadHeader {
		t.Errorf("Read: %v, want a reset with streamCodeBadHeader", err)
	}
}

func TestManagerClose(t *testing.T) {
	base := runtime.NumGoroutine()
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	echoOn(t, b, 80)
	if err := roundTrip(t, a.m, b.hit, 80, randomBytes(1<<10)); err != nil {
		t.Fatal(err)
	}
	// A stream left open, an Accept and a Read blocked across Close.
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	rerr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		rerr <- err
	}()
	la, err := a.m.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	aerr := make(chan error, 1)
	go func() {
		_, err := la.Accept()
		aerr <- err
	}()

	if err := a.m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := b.m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-rerr; err == nil {
		t.Error("Read on a stream of a closed Manager succeeded")
	}
	if err := <-aerr; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept: %v, want net.ErrClosed", err)
	}
	c.Close()
	if _, err := a.m.Dial(dialCtx(t), b.hit, 80); !errors.Is(err, overlay.ErrClosed) {
		t.Errorf("Dial after Close: %v, want overlay.ErrClosed", err)
	}
	if _, err := a.m.Listen(81); !errors.Is(err, overlay.ErrClosed) {
		t.Errorf("Listen after Close: %v, want overlay.ErrClosed", err)
	}
	if err := a.m.Close(); !errors.Is(err, overlay.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if n := a.m.ConnectionCount(); n != 0 {
		t.Errorf("%d connections after Close", n)
	}
	settleGoroutines(t, base)
}

func TestNewValidates(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	pc := newLoopPC(t, wire.HIT(ka.HIT()))
	defer pc.Close()
	lookup := func(wire.HIT) (*hostid.PublicKey, bool) { return nil, false }
	for name, tc := range map[string]struct {
		hit wire.HIT
		cfg Config
	}{
		"no identity":      {wire.HIT(ka.HIT()), Config{PeerIdentity: lookup}},
		"no PeerIdentity":  {wire.HIT(ka.HIT()), Config{Identity: ka}},
		"HIT not identity": {wire.HIT(kb.HIT()), Config{Identity: ka, PeerIdentity: lookup}},
		"bad PeerPort":     {wire.HIT(ka.HIT()), Config{Identity: ka, PeerIdentity: lookup, PeerPort: 70000}},
	} {
		if m, err := New(pc, tc.hit, tc.cfg); err == nil {
			m.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// A connection without streams closes after the idle timeout, and the
// next Dial brings up a new one.
func TestIdleConnectionCloses(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	for _, n := range []*node{a, b} {
		n.m.mu.Lock()
		n.m.idle = 100 * time.Millisecond
		n.m.mu.Unlock()
	}
	echoOn(t, b, 80)
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // an open stream holds the connection
	if na, nb := a.m.ConnectionCount(), b.m.ConnectionCount(); na != 1 || nb != 1 {
		t.Fatalf("with a stream open: %d and %d connections, want 1 and 1", na, nb)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	deadline := time.Now().Add(3 * time.Second)
	for a.m.ConnectionCount() != 0 || b.m.ConnectionCount() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("idle: %d and %d connections, want 0 and 0", a.m.ConnectionCount(), b.m.ConnectionCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := roundTrip(t, a.m, b.hit, 80, []byte("again")); err != nil {
		t.Fatal(err)
	}
}

// TestRetiredConnectionClosesAfterLateStream: the peer dials a second
// connection, which retires the first, and then, within the retired
// connection's grace, opens a stream on it. Once that stream ends the
// retired connection closes. Before, it never did: the grace's timer found
// the stream and left the connection marked closing, which the idle timer
// spares, so a peer could keep any number of them open.
func TestRetiredConnectionClosesAfterLateStream(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	echoOn(t, a, 80)
	ctx := dialCtx(t)
	c1, err := b.m.quicDial(ctx, a.hit, ka.Public(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.CloseWithError(0, "")
	waitConns := func(n int) {
		t.Helper()
		for i := 0; a.m.ConnectionCount() != n; i++ {
			if i == 500 {
				t.Fatalf("a holds %d connections, want %d", a.m.ConnectionCount(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitConns(1)
	c2, err := b.m.quicDial(ctx, a.hit, ka.Public(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseWithError(0, "")
	waitConns(2) // c1 retired, closing after retiredGrace
	st, err := c1.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeHeader(st, 80, 80); err != nil {
		t.Fatal(err)
	}
	time.Sleep(retiredGrace + 500*time.Millisecond) // the stream holds c1 past the grace
	st.Close()
	st.CancelRead(0)
	select {
	case <-c1.Context().Done():
	case <-time.After(retiredGrace + 3*time.Second):
		t.Fatalf("the retired connection is still open %v after its last stream ended", retiredGrace+3*time.Second)
	}
	waitConns(1)
}

// TestAcceptDeadline: the listener has *net.TCPListener's SetDeadline: a
// blocked Accept returns a timeout when it passes, later ones at once; a
// deadline moved later keeps a blocked Accept waiting, and one cleared
// lets Accept take the next stream.
func TestAcceptDeadline(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	ln, err := b.m.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := ln.(interface{ SetDeadline(time.Time) error })
	timeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
	}
	l.SetDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if _, err := ln.Accept(); !timeout(err) {
		t.Fatalf("Accept: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Accept timed out after %v", d)
	}
	if _, err := ln.Accept(); !timeout(err) {
		t.Fatalf("Accept after the deadline: %v, want a timeout at once", err)
	}
	l.SetDeadline(time.Now().Add(50 * time.Millisecond))
	time.AfterFunc(10*time.Millisecond, func() { l.SetDeadline(time.Time{}) })
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	time.Sleep(100 * time.Millisecond) // past the deadline that was lifted
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("x"))
	if err := <-accepted; err != nil {
		t.Fatalf("Accept with the deadline lifted: %v", err)
	}
	ln.Close()
	if err := l.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SetDeadline after Close: %v, want net.ErrClosed", err)
	}
}
