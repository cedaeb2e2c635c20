package streams

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// assocPC is a loopPC that reports on associations, as *overlay.InnerConn
// does: a peer's association is live until end, and a write to a peer
// without one fails (auto-connect off) instead of starting a base
// exchange.
type assocPC struct {
	*loopPC
	autoConnect atomic.Bool
	associates  atomic.Int32 // calls of associate

	mu      sync.Mutex
	w       map[wire.HIT]overlay.AssocWatch
	gens    uint64
	byPeer  map[wire.HIT]bool // ClosedByPeer
	changed map[wire.HIT]chan struct{}
}

// The fakes are what the Manager takes them for.
var (
	_ associations = (*assocPC)(nil)
	_ peerCloses   = (*assocPC)(nil)
	_ associations = (*overlay.InnerConn)(nil)
	_ peerCloses   = (*overlay.InnerConn)(nil)
)

func newAssocPC(pc *loopPC) *assocPC {
	a := &assocPC{loopPC: pc, w: map[wire.HIT]overlay.AssocWatch{}, byPeer: map[wire.HIT]bool{}, changed: map[wire.HIT]chan struct{}{}}
	a.autoConnect.Store(true)
	return a
}

func (a *assocPC) SetAutoConnect(on bool) { a.autoConnect.Store(on) }

func (a *assocPC) WatchAssociation(h wire.HIT) (overlay.AssocWatch, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.changed[h]
	if ch == nil {
		ch = make(chan struct{})
		a.changed[h] = ch
	}
	return a.w[h], ch
}

func (a *assocPC) Live(h wire.HIT) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.w[h].Live
}

func (a *assocPC) ClosedByPeer(h wire.HIT) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byPeer[h]
}

func (a *assocPC) set(h wire.HIT, live bool) { a.end(h, live, false) }

// end sets h's association live or not; byPeer: ended by the peer's CLOSE.
func (a *assocPC) end(h wire.HIT, live, byPeer bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.byPeer[h] = byPeer
	a.setLocked(h, live, byPeer)
	a.fireLocked(h)
}

// replace ends h's association, byPeer or not, and brings up the next at
// once: a watcher wakes only after both.
func (a *assocPC) replace(h wire.HIT, byPeer bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.setLocked(h, false, byPeer)
	a.setLocked(h, true, false)
	a.fireLocked(h)
}

// setLocked gives h's association its state as the overlay's record does
// (AssocWatch); a.mu is held.
func (a *assocPC) setLocked(h wire.HIT, live, byPeer bool) {
	w := a.w[h]
	if live && !w.Live {
		a.gens++
		w.Gen = a.gens
	}
	if !live && byPeer {
		w.LeftGen = w.Gen
	}
	w.Live = live
	a.w[h] = w
}

func (a *assocPC) fireLocked(h wire.HIT) {
	if ch := a.changed[h]; ch != nil {
		close(ch)
		delete(a.changed, h)
	}
}

// associate is Config.Associate: a base exchange that always succeeds.
func (a *assocPC) associate(_ context.Context, h wire.HIT) error {
	a.associates.Add(1)
	a.set(h, true)
	return nil
}

func (a *assocPC) WriteTo(b []byte, addr net.Addr) (int, error) {
	if o, ok := addr.(*overlay.Addr); ok && !a.autoConnect.Load() {
		if !a.Live(o.HIT) {
			return 0, overlay.ErrUnknownPeer
		}
	}
	return a.loopPC.WriteTo(b, addr)
}

// TestAssociationEndClosesConnection: when the association with a peer
// ends, the Manager closes the peer's connection at once (its streams
// fail), not after the idle timeout; the next Dial associates again first.
func TestAssociationEndClosesConnection(t *testing.T) {
	var apc *assocPC
	m, b := assocManager(t, func(a *assocPC, _ *node, cfg *Config) net.PacketConn {
		apc, cfg.Associate = a, a.associate
		return a
	})
	if apc.autoConnect.Load() {
		t.Fatal("New left the PacketConn's auto-connect on")
	}
	echoOn(t, b, 7)

	c, err := m.Dial(dialCtx(t), b.hit, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := apc.associates.Load(); n != 1 {
		t.Fatalf("Dial without an association associated %d times, want 1", n)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}

	// Let the acknowledgements go out: a quiet connection has nothing to
	// send that would find the association gone until its keep-alive.
	time.Sleep(200 * time.Millisecond)
	apc.set(b.hit, false) // CLOSE
	waitGone(t, m)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, io.EOF) || isTimeout(err) {
		t.Fatalf("read on a stream whose association ended: %v, want the connection's error", err)
	}

	c2, err := m.Dial(dialCtx(t), b.hit, 7)
	if err != nil {
		t.Fatalf("dial after the association ended: %v", err)
	}
	defer c2.Close()
	if n := apc.associates.Load(); n != 2 {
		t.Fatalf("associated %d times, want 2", n)
	}
	if _, err := c2.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c2, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
}

// TestAssociationReplacedClosesConnection: a connection also ends when
// its association ends and the next one with the peer comes up before the
// watch could look (the peer closed and came back at once): its keys came
// from the secret of the one that ended, and the peer's end of it is
// gone. Its streams fail as the peer's leaving says.
func TestAssociationReplacedClosesConnection(t *testing.T) {
	var apc *assocPC
	m, b := assocManager(t, func(a *assocPC, _ *node, cfg *Config) net.PacketConn {
		apc, cfg.Associate = a, a.associate
		return a
	})
	echoOn(t, b, 7)
	c, err := m.Dial(dialCtx(t), b.hit, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the ACKs go out (as above)
	apc.replace(b.hit, true)
	waitGone(t, m)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, overlay.ErrPeerLeft) {
		t.Fatalf("read on a stream whose association the peer ended: %v, want ErrPeerLeft", err)
	}
}

// assocManager starts a Manager for a fresh identity over an assocPC
// linked to a new node b, which it returns with the Manager. wrap gives
// the PacketConn the Manager gets and sets the Config's association
// hooks.
func assocManager(t *testing.T, wrap func(apc *assocPC, b *node, cfg *Config) net.PacketConn, bOpts ...func(*Config)) (*Manager, *node) {
	ka, kb, _ := testIdentities(t)
	b := newNode(t, kb, bOpts...)
	ha := wire.HIT(ka.HIT())
	dir := &directory{}
	dir.set(b.hit, kb.Public())
	b.dir.set(ha, ka.Public())
	lpc := newLoopPC(t, ha)
	connect(lpc, b.pc)
	cfg := Config{Identity: ka, PeerIdentity: dir.lookup}
	m, err := New(wrap(newAssocPC(lpc), b, &cfg), ha, cfg)
	if err != nil {
		lpc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// keyedPC is an assocPC whose base exchange the test ends (finish):
// AssociateKeyed answers at once, as the overlay's does once the I2 is
// sent, and until the outcome the writes to the peer are held, as the
// overlay queues them; success sends them, failure drops them.
type keyedPC struct {
	*assocPC
	peer wire.HIT

	kmu   sync.Mutex
	keyed bool
	held  [][]byte
	to    []net.Addr
	done  chan struct{}
	err   error
}

func (k *keyedPC) associateKeyed(context.Context, wire.HIT) error {
	k.kmu.Lock()
	k.keyed = true
	k.kmu.Unlock()
	return nil
}

func (k *keyedPC) associate(ctx context.Context, _ wire.HIT) error {
	select {
	case <-k.done:
		return k.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (k *keyedPC) WriteTo(b []byte, addr net.Addr) (int, error) {
	k.kmu.Lock()
	if k.keyed {
		k.held, k.to = append(k.held, append([]byte(nil), b...)), append(k.to, addr)
		k.kmu.Unlock()
		return len(b), nil
	}
	k.kmu.Unlock()
	return k.assocPC.WriteTo(b, addr)
}

func (k *keyedPC) heldCount() int {
	k.kmu.Lock()
	defer k.kmu.Unlock()
	return len(k.held)
}

// finish ends the base exchange with err.
func (k *keyedPC) finish(err error) {
	k.kmu.Lock()
	k.keyed, k.err = false, err
	held, to := k.held, k.to
	k.held, k.to = nil, nil
	k.kmu.Unlock()
	if err == nil {
		k.set(k.peer, true)
		for i, b := range held {
			k.assocPC.WriteTo(b, to[i])
		}
	}
	close(k.done)
}

func newKeyedPair(t *testing.T) (*Manager, *keyedPC, *node) {
	return newKeyedPairWith(t, nil)
}

// newKeyedPairWith is newKeyedPair; with, if not nil, also sets up b and
// the Manager's Config, and bOpts change b's Config.
func newKeyedPairWith(t *testing.T, with func(b *node, cfg *Config), bOpts ...func(*Config)) (*Manager, *keyedPC, *node) {
	var kpc *keyedPC
	m, b := assocManager(t, func(a *assocPC, b *node, cfg *Config) net.PacketConn {
		kpc = &keyedPC{assocPC: a, peer: b.hit, done: make(chan struct{})}
		cfg.Associate, cfg.AssociateKeyed = kpc.associate, kpc.associateKeyed
		if with != nil {
			with(b, cfg)
		}
		return kpc
	}, bOpts...)
	echoOn(t, b, 7)
	return m, kpc, b
}

type dialResult struct {
	c   net.Conn
	err error
}

// dialKeyed starts a Dial with ctx over a newKeyedPair and returns once
// the Dial has written its first QUIC packet, held while the base
// exchange runs; res gets the Dial's result.
func dialKeyed(t *testing.T, ctx context.Context) (m *Manager, kpc *keyedPC, res chan dialResult) {
	m, kpc, b := newKeyedPair(t)
	res = make(chan dialResult, 1)
	go func() {
		c, err := m.Dial(ctx, b.hit, 7)
		res <- dialResult{c, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for kpc.heldCount() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no QUIC packet written during the base exchange")
		}
		time.Sleep(time.Millisecond)
	}
	return m, kpc, res
}

// TestDialKeyed: with AssociateKeyed, the QUIC handshake's first packet
// is written during the base exchange and leaves when it completes; the
// Dial then succeeds.
func TestDialKeyed(t *testing.T) {
	_, kpc, res := dialKeyed(t, dialCtx(t))
	select {
	case r := <-res:
		t.Fatalf("Dial returned before the base exchange completed: %v", r.err)
	case <-time.After(50 * time.Millisecond):
	}
	kpc.finish(nil)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.c.Close()
	if _, err := r.c.Write([]byte("keyed")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(r.c, got); err != nil || string(got) != "keyed" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

// TestDialKeyedFails: a base exchange that fails after AssociateKeyed
// fails the Dial with its error at once, not after the handshake's
// timeout, and leaves no connection behind. (That the packets written
// meanwhile never leave is the overlay's part: TestConnectKeyedRefused.)
func TestDialKeyedFails(t *testing.T) {
	m, kpc, res := dialKeyed(t, context.Background())
	errBEX := errors.New("base exchange failed")
	kpc.finish(errBEX)
	select {
	case r := <-res:
		if !errors.Is(r.err, errBEX) {
			t.Fatalf("Dial: %v, want the base exchange's error", r.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Dial still waiting 3 s after its base exchange failed")
	}
	if n := m.ConnectionCount(); n != 0 {
		t.Errorf("%d connections after a failed dial", n)
	}
}

// TestConnectionBeforeAssociationLive: a connection the peer opens while
// our association is still finishing (keyed but not live: the Initiator
// between its I2 and the R2, when the Responder, in R2-SENT, dials at
// once) stays open and carries its streams; once the association has
// been live, its end closes the connection, and an exchange that fails
// before it was ever live (its secret dropped) closes it too.
func TestConnectionBeforeAssociationLive(t *testing.T) {
	for _, completes := range []bool{true, false} {
		name := map[bool]string{true: "completes", false: "fails"}[completes]
		t.Run(name, func(t *testing.T) {
			var apc *assocPC
			var keyed atomic.Bool
			keyed.Store(true)
			secret := make([]byte, SecretSize)
			m, b := assocManager(t, func(a *assocPC, _ *node, cfg *Config) net.PacketConn {
				apc = a
				cfg.Secret = func(wire.HIT) ([]byte, bool) { return secret, keyed.Load() }
				return keyedWrites{a, &keyed}
			})
			l, err := m.Listen(7)
			if err != nil {
				t.Fatal(err)
			}
			echo(t, l)

			c, err := b.m.Dial(dialCtx(t), m.local, 7) // the peer dials us: not live here
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			echoOnce(t, c, []byte("early"))
			time.Sleep(100 * time.Millisecond)
			if n := m.ConnectionCount(); n != 1 {
				t.Fatalf("%d connections while the association finishes, want 1", n)
			}

			if completes {
				apc.set(b.hit, true) // R2: live
				echoOnce(t, c, []byte("live"))
				if n := m.ConnectionCount(); n != 1 {
					t.Fatalf("%d connections once live, want 1", n)
				}
			}
			// The association ends (CLOSE), or the exchange fails: either
			// way the overlay's removeSAs drops the secret with the SAs.
			keyed.Store(false)
			apc.set(b.hit, false)
			start := time.Now()
			for m.ConnectionCount() > 0 {
				if time.Since(start) > 2*time.Second {
					t.Fatalf("connection still open %v after the association ended", time.Since(start))
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// keyedWrites is an assocPC whose writes to a peer also go out while the
// association is keyed but not live, as the overlay's do (they wait in
// the association's queue for the R2; here they leave at once).
type keyedWrites struct {
	*assocPC
	keyed *atomic.Bool
}

func (k keyedWrites) WriteTo(b []byte, addr net.Addr) (int, error) {
	if k.keyed.Load() {
		return k.loopPC.WriteTo(b, addr)
	}
	return k.assocPC.WriteTo(b, addr)
}

// A stream waiting for its answer when the peer ends the association with
// CLOSE fails at once with connCodeLeft and is not retried (the peer is
// gone); when the association is lost without CLOSE, the stream is
// retried on a new association, as before.
func TestNoRetryAfterPeerClose(t *testing.T) {
	for _, byPeer := range []bool{true, false} {
		name := map[bool]string{true: "closed by peer", false: "lost"}[byPeer]
		t.Run(name, func(t *testing.T) {
			var apc *assocPC
			m, b := assocManager(t, func(a *assocPC, _ *node, cfg *Config) net.PacketConn {
				apc, cfg.Associate = a, a.associate
				return a
			})
			echoOn(t, b, 7)
			if err := roundTrip(t, m, b.hit, 7, []byte("warm")); err != nil {
				t.Fatal(err)
			}
			apc.blocked.Store(true) // the header never reaches b
			c, err := m.Dial(dialCtx(t), b.hit, 7)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			apc.end(b.hit, false, byPeer)
			waitGone(t, m)
			apc.blocked.Store(false)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Write([]byte("ping"))
			if !byPeer {
				if err != nil {
					t.Fatalf("Write after the association was lost: %v, want a retry", err)
				}
				if n := apc.associates.Load(); n != 2 {
					t.Errorf("associated %d times, want 2", n)
				}
				return
			}
			// The connection's close (connCodeLeft) or a packet that
			// found the association gone, whichever came first: either
			// way the peer left, and the stream says so.
			if !errors.Is(err, syscall.EPIPE) || !strings.Contains(err.Error(), "peer closed the association") {
				t.Errorf("Write: %v, want EPIPE: peer closed the association", err)
			}
			if n := apc.associates.Load(); n != 1 {
				t.Errorf("associated %d times, want 1 (no retry)", n)
			}
		})
	}
}

// waitGone waits until m has no connection left.
func waitGone(t *testing.T, m *Manager) {
	t.Helper()
	start := time.Now()
	for m.ConnectionCount() > 0 {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("connection still open %v after the association ended", time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
}
