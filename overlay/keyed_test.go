package overlay

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// holdAfter is a PacketConn over a real UDP socket that sends its first n
// datagrams and holds the rest until release: a Responder whose R1 goes
// out and whose R2 is late.
type holdAfter struct {
	net.PacketConn
	mu   sync.Mutex
	n    int
	held [][]byte
	to   []net.Addr
}

func newHoldAfter(t testing.TB, n int) *holdAfter {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &holdAfter{PacketConn: pc, n: n}
}

func (h *holdAfter) WriteTo(b []byte, to net.Addr) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n > 0 || h.held == nil && h.n < 0 {
		h.n--
		return h.PacketConn.WriteTo(b, to)
	}
	h.held, h.to = append(h.held, bytes.Clone(b)), append(h.to, to)
	return len(b), nil
}

// release sends what was held, and everything after it.
func (h *holdAfter) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, b := range h.held {
		h.PacketConn.WriteTo(b, h.to[i])
	}
	h.held, h.n = nil, -1
}

// keyedPair is a from ConnectKeyed on: its I2 sent, b's answer held
// (hb), an InnerConn on each side, a's with auto-connect off.
type keyedPair struct {
	a, b   *Stack
	hb     *holdAfter
	ca, cb *InnerConn
	ctx    context.Context
}

// startKeyed starts a and b (b configured by modB too), and returns once
// a.ConnectKeyed has: b's R1 goes out, whatever b sends next waits for
// hb.release.
func startKeyed(t *testing.T, modB func(*Config)) keyedPair {
	t.Helper()
	k := keyedPair{hb: newHoldAfter(t, 1)}
	k.a = newTestStack(t, 0, nil)
	k.b = newTestStack(t, 1, func(c *Config) {
		c.PacketConn = k.hb
		if modB != nil {
			modB(c)
		}
	})
	introduce(k.a, k.b)
	k.ca = listen(t, k.a, 9)
	k.ca.SetAutoConnect(false)
	k.cb = listen(t, k.b, 9)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	k.ctx = ctx
	if err := k.a.ConnectKeyed(ctx, k.b.HIT()); err != nil {
		t.Fatal(err)
	}
	return k
}

func pendingLen(s *Stack, h wire.HIT) int {
	p := s.lookupPeer(h)
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// TestConnectKeyed: ConnectKeyed returns once the Initiator has sent its
// I2, while the R2 is still held back. The secret it then exports is the
// Responder's; a datagram written through an InnerConn with auto-connect
// off waits in the queue, starts nothing, and leaves with the R2.
func TestConnectKeyed(t *testing.T) {
	k := startKeyed(t, nil)
	a, b, hb, ca, cb, ctx := k.a, k.b, k.hb, k.ca, k.cb, k.ctx
	if p, _ := peerInfo(a, b.HIT()); p.State != handshake.I2Sent.String() {
		t.Fatalf("state after ConnectKeyed %s, want I2-SENT (the R2 is held)", p.State)
	}
	if a.Live(b.HIT()) {
		t.Fatal("keyed association reported live")
	}
	sa, ok := a.AssociationSecret(b.HIT())
	if !ok {
		t.Fatal("no secret after ConnectKeyed")
	}
	// The Responder writes its record (live) before it exports the
	// secret, in the same step (control.go): wait for both.
	waitFor(t, 2*time.Second, "the Responder to establish", func() bool {
		_, keyed := b.AssociationSecret(a.HIT())
		return b.Live(a.HIT()) && keyed
	})
	if sb, _ := b.AssociationSecret(a.HIT()); !bytes.Equal(sa, sb) {
		t.Fatal("the Initiator's keyed secret is not the Responder's")
	}
	started := a.Stats().BEX.Started
	if _, err := ca.WriteTo([]byte("early"), &Addr{HIT: b.HIT(), Port: 9}); err != nil {
		t.Fatalf("write while keyed: %v", err)
	}
	if n := pendingLen(a, b.HIT()); n != 1 {
		t.Fatalf("%d datagrams queued, want 1", n)
	}
	// A second ConnectKeyed answers from the table.
	if err := a.ConnectKeyed(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}

	hb.release()
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}
	got, from := readOne(t, cb, 2*time.Second)
	if string(got) != "early" || from.HIT != a.HIT() {
		t.Fatalf("b got %q from %v", got, from.HIT)
	}
	if n := a.Stats().BEX.Started - started; n != 0 {
		t.Errorf("the queued write started %d base exchanges", n)
	}
}

// TestConnectKeyedRefused: the Responder refuses the I2 after the
// Initiator keyed. ConnectKeyed has answered; Connect gets the refusal, the
// queued datagram is discarded (counted) and never sent, the secret is
// gone, and later writes fail without starting an exchange.
func TestConnectKeyedRefused(t *testing.T) {
	k := startKeyed(t, func(c *Config) { c.Authorize = func(wire.HIT) bool { return false } }) // the NOTIFY waits
	a, b, hb, ca, cb, ctx := k.a, k.b, k.hb, k.ca, k.cb, k.ctx
	if _, err := ca.WriteTo([]byte("never"), &Addr{HIT: b.HIT(), Port: 9}); err != nil {
		t.Fatalf("write while keyed: %v", err)
	}
	if n := pendingLen(a, b.HIT()); n != 1 {
		t.Fatalf("%d datagrams queued, want 1", n)
	}
	hb.release()
	if err := a.Connect(ctx, b.HIT()); !errors.Is(err, ErrNotAuthorized) && !errors.Is(err, ErrHandshakeFailed) {
		t.Fatalf("Connect after a refused I2: %v", err)
	}
	barrier(t, a)
	if d := a.Stats().Drops.QueueDiscarded; d != 1 {
		t.Errorf("queued datagram: %d discarded, want 1", d)
	}
	if n := pendingLen(a, b.HIT()); n != 0 {
		t.Errorf("%d datagrams still queued", n)
	}
	if _, ok := a.AssociationSecret(b.HIT()); ok {
		t.Error("the secret of a refused exchange is still exported")
	}
	started := a.Stats().BEX.Started
	if _, err := ca.WriteTo([]byte("late"), &Addr{HIT: b.HIT(), Port: 9}); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("write after the refusal: %v, want ErrUnknownPeer", err)
	}
	barrier(t, a)
	if n := a.Stats().BEX.Started - started; n != 0 {
		t.Errorf("a write after the refusal started %d base exchanges", n)
	}
	cb.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, _, err := cb.ReadFrom(make([]byte, 100)); !isTimeout(err) {
		t.Fatalf("b received something from a refused exchange: %v", err)
	}
}

// TestConnectKeyedUnknown: ConnectKeyed fails as Connect does for a peer
// with no locator, and for one Authorize refuses, without a round trip.
func TestConnectKeyedUnknown(t *testing.T) {
	a := newTestStack(t, 0, func(c *Config) {
		c.Authorize = func(h wire.HIT) bool { return h != testKey(t, 2).HIT() }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.ConnectKeyed(ctx, testKey(t, 1).HIT()); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("no locator: %v, want ErrUnknownPeer", err)
	}
	a.AddPeer(testKey(t, 2).HIT(), a.LocalAddr())
	if err := a.ConnectKeyed(ctx, testKey(t, 2).HIT()); !errors.Is(err, ErrNotAuthorized) {
		t.Errorf("refused peer: %v, want ErrNotAuthorized", err)
	}
}

// TestConnectKeyedForwarder: a relay server's stack exports no secret, so
// its ConnectKeyed waits for the R2, as Connect does.
func TestConnectKeyedForwarder(t *testing.T) {
	hb := newHoldAfter(t, 1)
	a := newTestStack(t, 0, func(c *Config) { c.Forwarder = &endedForwarder{ended: make(chan wire.HIT, 4)} })
	b := newTestStack(t, 1, func(c *Config) { c.PacketConn = hb })
	introduce(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.ConnectKeyed(ctx, b.HIT()) }()
	waitFor(t, 2*time.Second, "the Responder to establish", func() bool { return b.Live(a.HIT()) })
	barrier(t, a)
	select {
	case err := <-done:
		t.Fatalf("ConnectKeyed returned (%v) before the R2, with no secret to give", err)
	case <-time.After(50 * time.Millisecond):
	}
	hb.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !a.Live(b.HIT()) {
		t.Error("ConnectKeyed returned before the association was live")
	}
}
