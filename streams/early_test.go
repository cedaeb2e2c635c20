package streams

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/wire"
)

// newKeyedPSKPair is newKeyedPair with the association's secret on both
// sides, as the overlay gives it once the Initiator's keys exist: a Dial
// from the returned Manager runs the QUIC handshake with the PSK during
// the test's base exchange (keyedPC.finish ends it). opts change b's
// Config.
func newKeyedPSKPair(t *testing.T, opts ...func(*Config)) (*Manager, *keyedPC, *node) {
	t.Helper()
	secret := make([]byte, SecretSize)
	rand.Read(secret)
	return newKeyedPairWith(t, func(b *node, cfg *Config) {
		b.dir.setSecret(wire.HIT(cfg.Identity.HIT()), secret)
		cfg.Secret = func(h wire.HIT) ([]byte, bool) { return secret, h == b.hit }
	}, opts...)
}

// keyedDial dials port 7 of b from m during the base exchange of kpc,
// waits until held packets were written meanwhile, ends the exchange, and
// returns the Dial's conn and how many packets waited for the exchange.
func keyedDial(t *testing.T, m *Manager, kpc *keyedPC, b *node, held int) (net.Conn, int) {
	t.Helper()
	res := make(chan dialResult, 1)
	go func() {
		c, err := m.Dial(dialCtx(t), b.hit, 7)
		res <- dialResult{c, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for kpc.heldCount() < held {
		if time.Now().After(deadline) {
			t.Fatalf("%d packets written during the base exchange, want %d", kpc.heldCount(), held)
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // anything else the dial would write
	n := kpc.heldCount()
	kpc.finish(nil)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c, n
}

// echoOnce writes data on c and reads it back. It writes on its own
// goroutine: data beyond the flow-control windows comes back while the
// Write still runs.
func echoOnce(t *testing.T, c net.Conn, data []byte) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		done <- err
	}()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("echo of %d octets: %v", len(data), err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// quicState returns the QUIC state of m's connection with peer.
func quicState(t *testing.T, m *Manager, peer wire.HIT) quic.ConnectionState {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.peers[peer]
	if p == nil || p.cur == nil {
		t.Fatal("no connection")
	}
	return p.cur.c.ConnectionState()
}

// First contact with the association's PSK: the ClientHello and, in
// 0-RTT, the stream's header are written during the base exchange and
// leave when it completes; the server accepts the early data, so the
// stream's answer does not wait for the handshake's round trip.
func TestEarlyData(t *testing.T) {
	m, kpc, b := newKeyedPSKPair(t)
	c, held := keyedDial(t, m, kpc, b, 2)
	echoOnce(t, c, []byte("early"))
	cs := quicState(t, m, b.hit)
	ss := quicState(t, b.m, m.local)
	if !cs.Used0RTT || !ss.Used0RTT || !cs.TLS.DidResume {
		t.Errorf("Used0RTT: client %v, server %v (resumed %v), want true", cs.Used0RTT, ss.Used0RTT, cs.TLS.DidResume)
	}
	if held < 2 {
		t.Errorf("%d packets waited for the base exchange, want the ClientHello and the 0-RTT stream", held)
	}
	// A second Dial shares the connection, after its handshake.
	c2, err := m.Dial(dialCtx(t), b.hit, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	echoOnce(t, c2, []byte("second"))
	if n := m.ConnectionCount(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// A Dial that opens a new connection over an association that already
// exists (the first after an idle one closed) uses 0-RTT too.
func TestEarlyDataOnExistingAssociation(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	a, b := newPair(t, ka, kb)
	echoOn(t, b, 80)
	if err := roundTrip(t, a.m, b.hit, 80, []byte("again")); err != nil {
		t.Fatal(err)
	}
	cs, ss := quicState(t, a.m, b.hit), quicState(t, b.m, a.hit)
	if !cs.Used0RTT || !ss.Used0RTT {
		t.Errorf("Used0RTT: client %v, server %v, want true on both", cs.Used0RTT, ss.Used0RTT)
	}
}

// A server that refuses early data (an older hipnet, or one whose QUIC
// limits are below earlyLimits): the stream, and the first Write that
// waited for its answer, go again in 1-RTT on the same connection, and
// the data arrives once.
func TestEarlyDataRejected(t *testing.T) {
	m, kpc, b := newKeyedPSKPair(t, func(c *Config) {
		// A stream window below earlyLimits': the server refuses 0-RTT.
		c.QUIC = &quic.Config{InitialStreamReceiveWindow: 8 << 10, MaxIncomingStreams: 16}
	})
	c, _ := keyedDial(t, m, kpc, b, 2)
	echoOnce(t, c, bytes.Repeat([]byte("0123456789"), 1000))
	cs := quicState(t, m, b.hit)
	if cs.Used0RTT || !cs.TLS.DidResume {
		t.Errorf("Used0RTT %v, resumed %v: want 1-RTT with the PSK", cs.Used0RTT, cs.TLS.DidResume)
	}
	if n := m.ConnectionCount(); n != 1 {
		t.Errorf("%d connections after the rejection, want the one", n)
	}
}

// A Dial that gives up while its dial runs does not leave the first
// stream the dial opened for it: the stream is reset.
func TestEarlyFirstStreamOfAbandonedDial(t *testing.T) {
	m, kpc, b := newKeyedPSKPair(t)
	accepted := acceptFirst(t, b.m, 8)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := m.Dial(ctx, b.hit, 8)
		res <- err
	}()
	for kpc.heldCount() < 2 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-res; err == nil {
		t.Fatal("Dial succeeded after its context ended")
	}
	kpc.finish(nil)
	// Aborted, its header never reaches the listener, or reaches it
	// reset; left open, it would wait there for data forever.
	select {
	case c := <-accepted:
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := c.Read(make([]byte, 1))
		var se *quic.StreamError
		if !errors.As(err, &se) {
			t.Errorf("the abandoned stream reads %v, want a reset", err)
		}
	case <-time.After(500 * time.Millisecond):
	}
}

// A first Write larger than the 0-RTT limits (earlyLimits: 16 KiB) sends
// what they allow early and the rest once the handshake raised them.
func TestEarlyDataBeyondLimits(t *testing.T) {
	m, kpc, b := newKeyedPSKPair(t)
	c, _ := keyedDial(t, m, kpc, b, 2)
	data := make([]byte, 256<<10)
	rand.Read(data)
	echoOnce(t, c, data)
	if cs := quicState(t, m, b.hit); !cs.Used0RTT {
		t.Error("no 0-RTT")
	}
}

// A Dial without a secret uses no 0-RTT, and holds no gate: the
// certificate handshake needs the peer's packets before there can be a
// stream. Held by mistake, the gate would stall every such first contact
// for gateWait, lengthened here past the Dial's deadline.
func TestCertificateDialHoldsNoGate(t *testing.T) {
	d := gateWait
	t.Cleanup(func() { gateWait = d }) // last: after the Managers closed
	gateWait = time.Minute
	ka, kb, _ := testIdentities(t)
	a, b := newCertPair(t, ka, kb)
	echoOn(t, b, 80)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.m.Dial(ctx, b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, []byte("no early data"))
	if cs, _ := tlsStates(t, a, b); cs.DidResume {
		t.Error("resumed without a secret")
	}
}

// TestEarlyDataOvertakesInitial: on a path that reorders, the client's
// 0-RTT packets may arrive before its Initial. They are not dropped as
// naming an unknown connection (the first of them binds the client's
// chosen ID to its sender, as the Initial would, cids.go), so the early
// stream is served without waiting for a retransmission. Before, the
// connection-ID check dropped them, and first contact across a 10 ms
// round trip took 11.6 round trips instead of 3.6.
func TestEarlyDataOvertakesInitial(t *testing.T) {
	m, kpc, b := newKeyedPSKPair(t)
	res := make(chan dialResult, 1)
	go func() {
		c, err := m.Dial(dialCtx(t), b.hit, 7)
		res <- dialResult{c, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for kpc.heldCount() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the ClientHello and the 0-RTT stream were not written")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	kpc.kmu.Lock()
	if kpc.held[0][0]&0xf0 != 0xc0 {
		kpc.kmu.Unlock()
		t.Fatal("the first packet held is not the Initial")
	}
	kpc.held = append(kpc.held[1:], kpc.held[0]) // the Initial last
	kpc.to = append(kpc.to[1:], kpc.to[0])
	kpc.kmu.Unlock()
	kpc.finish(nil)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	echoOnce(t, r.c, []byte("early"))
	if n := b.m.pc.cids.dropped.Load(); n != 0 {
		t.Errorf("the server dropped %d datagrams of the client's first flight", n)
	}
	if ss := quicState(t, b.m, m.local); !ss.Used0RTT {
		t.Error("the server did not take the early data")
	}
}
