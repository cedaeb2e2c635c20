package overlay

import (
	"bytes"
	"context"
	"errors"
	"hipnet.dev/internal/mitm"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/internal/testkey"
)

// testKey returns the n-th cached ECDSA P-256 identity.
func testKey(t testing.TB, n int) *hostid.PrivateKey { return testkey.Key(t, n) }

// fastHandshake is a retransmission budget for tests: 50 ms doubling, 3
// retries (about 750 ms before giving up).
func fastHandshake() handshake.Config {
	return handshake.Config{RetransmitTimeout: 50 * time.Millisecond, Retries: 3, PuzzleDifficulty: 1}
}

// newTestStack starts a stack on 127.0.0.1:0 with identity n; mod may
// adjust the configuration. It is closed at the end of the test.
func newTestStack(t testing.TB, n int, mod func(*Config)) *Stack {
	t.Helper()
	cfg := Config{Identity: testKey(t, n), ListenAddr: "127.0.0.1:0", Handshake: fastHandshake()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// introduce gives each stack the other's locator.
func introduce(a, b *Stack) {
	a.AddPeer(b.HIT(), b.LocalAddr())
	b.AddPeer(a.HIT(), a.LocalAddr())
}

// connected returns two stacks with an association from a to b.
func connected(t testing.TB, modA, modB func(*Config)) (*Stack, *Stack) {
	t.Helper()
	a := newTestStack(t, 0, modA)
	b := newTestStack(t, 1, modB)
	introduce(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// proxiedPair returns two stacks with an association from a to b whose
// every packet crosses px, a proxy in front of b that knows a as its
// client (it may rebind a's side).
func proxiedPair(t testing.TB) (a, b *Stack, px *mitm.Proxy) {
	t.Helper()
	a = newTestStack(t, 0, nil)
	b = newTestStack(t, 1, nil)
	px, err := mitm.New(b.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	px.SetClient(a.LocalAddr())
	a.AddPeer(b.HIT(), px.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}
	return a, b, px
}

func listen(t testing.TB, s *Stack, port int) *InnerConn {
	t.Helper()
	c, err := s.ListenInner(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// barrier waits until the control goroutine handled everything queued
// before it on the control channel.
func barrier(t testing.TB, s *Stack) {
	t.Helper()
	ch := make(chan struct{})
	select {
	case s.ctrlIn <- ctrlPacket{barrier: ch}:
	case <-time.After(5 * time.Second):
		t.Fatal("control goroutine stuck")
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("control goroutine stuck")
	}
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readOne reads one datagram with a timeout.
func readOne(t testing.TB, c *InnerConn, d time.Duration) ([]byte, *Addr) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, MaxPayload)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n], from.(*Addr)
}

func peerInfo(s *Stack, h [16]byte) (PeerInfo, bool) {
	for _, p := range s.Peers() {
		if p.HIT == h {
			return p, true
		}
	}
	return PeerInfo{}, false
}

// pattern returns n octets that depend on seed.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7)
	}
	return b
}

// link is a net.PacketConn over a real UDP socket that loses, duplicates,
// reorders and (optionally) withholds outgoing datagrams, deterministically
// from a seed.
type link struct {
	net.PacketConn
	mu               sync.Mutex
	rng              *rand.Rand
	loss, dup, reord float64
	held             []byte
	heldTo           net.Addr
	gate             bool // closed gate: drop everything
	sent, dropped    int
}

func newLink(t testing.TB, seed uint64, loss, dup, reord float64) *link {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &link{PacketConn: pc, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), loss: loss, dup: dup, reord: reord}
}

func (l *link) setGate(closed bool) {
	l.mu.Lock()
	l.gate = closed
	l.mu.Unlock()
}

func (l *link) WriteTo(b []byte, to net.Addr) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gate || l.rng.Float64() < l.loss {
		l.dropped++
		return len(b), nil
	}
	if l.held == nil && l.rng.Float64() < l.reord {
		// Hold this one back until after the next datagram.
		l.held, l.heldTo = bytes.Clone(b), to
		return len(b), nil
	}
	if _, err := l.PacketConn.WriteTo(b, to); err != nil {
		return 0, err
	}
	l.sent++
	if l.rng.Float64() < l.dup {
		l.PacketConn.WriteTo(b, to)
	}
	if l.held != nil {
		l.PacketConn.WriteTo(l.held, l.heldTo)
		l.held = nil
	}
	return len(b), nil
}

func (l *link) counts() (sent, dropped int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent, l.dropped
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
