package streams

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
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
	live    map[wire.HIT]bool
	changed map[wire.HIT]chan struct{}
}

func newAssocPC(pc *loopPC) *assocPC {
	a := &assocPC{loopPC: pc, live: map[wire.HIT]bool{}, changed: map[wire.HIT]chan struct{}{}}
	a.autoConnect.Store(true)
	return a
}

func (a *assocPC) SetAutoConnect(on bool) { a.autoConnect.Store(on) }

func (a *assocPC) WatchAssociation(h wire.HIT) (bool, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := a.changed[h]
	if ch == nil {
		ch = make(chan struct{})
		a.changed[h] = ch
	}
	return a.live[h], ch
}

func (a *assocPC) set(h wire.HIT, live bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.live[h] = live
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
		a.mu.Lock()
		live := a.live[o.HIT]
		a.mu.Unlock()
		if !live {
			return 0, overlay.ErrUnknownPeer
		}
	}
	return a.loopPC.WriteTo(b, addr)
}

// TestAssociationEndClosesConnection: when the association with a peer
// ends, the Manager closes the peer's connection at once (its streams
// fail), not after the idle timeout; the next Dial associates again first.
func TestAssociationEndClosesConnection(t *testing.T) {
	ka, kb, _ := testIdentities(t)
	b := newNode(t, kb)
	ha := wire.HIT(ka.HIT())
	dir := &directory{}
	dir.set(b.hit, kb.Public())
	b.dir.set(ha, ka.Public())
	lpc := newLoopPC(t, ha)
	connect(lpc, b.pc)
	apc := newAssocPC(lpc)
	m, err := New(apc, ha, Config{Identity: ka, PeerIdentity: dir.lookup, Associate: apc.associate})
	if err != nil {
		lpc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
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
	start := time.Now()
	for m.ConnectionCount() > 0 {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("connection still open %v after the association ended", time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
