package netstack

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// assocLink is a fakeLink that reports on its associations (a peerLink),
// as the overlay does: each peer's association is live, with generation
// 1, until end or replace.
type assocLink struct {
	*fakeLink
	mu      sync.Mutex
	w       map[wire.HIT]overlay.AssocWatch
	gens    uint64
	changed chan struct{}
}

// The fake is a peerLink, and so is the overlay's Stack.
var (
	_ peerLink = (*assocLink)(nil)
	_ peerLink = (*overlay.Stack)(nil)
)

func newAssocLink(l *fakeLink) *assocLink {
	return &assocLink{fakeLink: l, w: make(map[wire.HIT]overlay.AssocWatch), gens: 1, changed: make(chan struct{})}
}

func (l *assocLink) WatchAssociation(hit wire.HIT) (overlay.AssocWatch, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lookLocked(hit), l.changed
}

func (l *assocLink) lookLocked(hit wire.HIT) overlay.AssocWatch {
	w, ok := l.w[hit]
	if !ok {
		w = overlay.AssocWatch{Live: true, Gen: 1}
	}
	return w
}

// end ends the association with hit, byPeer or not, and tells watchers.
func (l *assocLink) end(hit wire.HIT, byPeer bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLocked(hit, byPeer)
	l.fireLocked()
}

// replace ends the association with hit, byPeer or not, and brings up
// the next before the watchers wake.
func (l *assocLink) replace(hit wire.HIT, byPeer bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLocked(hit, byPeer)
	w := l.w[hit]
	l.gens++
	w.Live, w.Gen = true, l.gens
	l.w[hit] = w
	l.fireLocked()
}

func (l *assocLink) endLocked(hit wire.HIT, byPeer bool) {
	w := l.lookLocked(hit)
	w.Live = false
	if byPeer {
		w.LeftGen = w.Gen
	}
	l.w[hit] = w
}

func (l *assocLink) fireLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// peerLeftPair is a Transport on an assocLink (a, with cfg) and a plain
// one (b) listening on port 7, with n connections from a to b, each
// having carried one octet; accepted are b's ends.
func peerLeftPair(t *testing.T, n int, cfg Config) (a *Transport, la *assocLink, b *Transport, dialed, accepted []net.Conn) {
	t.Helper()
	fn := newFakeNet()
	t.Cleanup(fn.close)
	la = newAssocLink(fn.add(testHIT(1)))
	a, err := New(la, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = New(fn.add(testHIT(2)), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	l, err := b.Listen(7)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		c := dial(t, a, b.local, 7)
		sc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(sc, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		dialed, accepted = append(dialed, c), append(accepted, sc)
	}
	return a, la, b, dialed, accepted
}

// cut makes every segment between a and b lost from here on, as after
// the peer's CLOSE: b's RSTs, were it to send any, never arrive.
func cut(la *assocLink, b *Transport) {
	la.setTap(func(wire.HIT, []byte) bool { return false })
	b.link.(*fakeLink).setTap(func(wire.HIT, []byte) bool { return false })
}

// TestPeerLeftResets: when the peer ends the association with CLOSE,
//   - a connection that waits for its data fails at once with
//     errPeerLeft (ECONNRESET), and later with it again;
//   - one holding data it has not read yet reads it first, then fails
//     the same way (an RST does not throw received data away);
//   - one whose peer had sent its FIN reads what came, up to io.EOF;
//   - on all three, a Write fails at once with EPIPE;
//
// all of them overlay.ErrPeerLeft. The segments between the two are cut,
// so nothing but the watch can end the connections.
func TestPeerLeftResets(t *testing.T) {
	_, la, b, dialed, accepted := peerLeftPair(t, 3, Config{})
	waiting, unread, finished := dialed[0], dialed[1], dialed[2]
	accepted[1].Write([]byte("response"))
	accepted[2].Write([]byte("last words"))
	accepted[2].Close()
	finished.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(finished, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	ok := waitFor(func() bool {
		n, _ := unread.(*conn).ep.GetSockOptInt(tcpip.ReceiveQueueSizeOption)
		return n == len("response") && tcp.EndpointState(finished.(*conn).ep.State()) == tcp.StateCloseWait
	})
	if !ok {
		t.Fatal("the response or the peer's FIN did not come")
	}
	cut(la, b)

	read := make(chan error, 1)
	go func() {
		waiting.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := waiting.Read(make([]byte, 1))
		read <- err
	}()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	la.end(b.local, true)
	err := <-read
	var oe *net.OpError
	if !errors.Is(err, overlay.ErrPeerLeft) || !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Errorf("Read: %v, want a read *net.OpError, ErrPeerLeft and ECONNRESET", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the Read failed %v after the CLOSE", d)
	}
	if _, err := waiting.Read(make([]byte, 1)); !errors.Is(err, overlay.ErrPeerLeft) {
		t.Errorf("second Read: %v, want ErrPeerLeft", err)
	}

	for _, c := range []net.Conn{waiting, unread, finished} {
		if _, err := c.Write([]byte("y")); !errors.Is(err, overlay.ErrPeerLeft) || !errors.Is(err, syscall.EPIPE) {
			t.Errorf("Write: %v, want ErrPeerLeft and EPIPE", err)
		}
	}

	unread.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(unread)
	if string(got) != "response" || !errors.Is(err, overlay.ErrPeerLeft) || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the connection with unread data read %q, %v; want \"response\" and ErrPeerLeft", got, err)
	}
	rest, err := io.ReadAll(finished)
	if err != nil || string(rest) != " words" {
		t.Errorf("the finished connection read %q, %v; want \" words\", nil", rest, err)
	}
}

// TestPeerLeftAndBack: the peer's CLOSE resets the connections over the
// association it ended even when the next association with the peer is
// up before the watch looks (the peer closed and came straight back, or
// dialled us again); a connection made over the next one carries on.
func TestPeerLeftAndBack(t *testing.T) {
	a, la, b, dialed, _ := peerLeftPair(t, 1, Config{})
	old := dialed[0]
	cut(la, b)
	la.replace(b.local, true)
	if !waitFor(func() bool { return old.(*conn).left.Load() != leftNot }) {
		t.Fatal("the connection over the association the peer ended was not reset")
	}
	if _, err := old.Write([]byte("y")); !errors.Is(err, overlay.ErrPeerLeft) {
		t.Errorf("Write: %v, want ErrPeerLeft", err)
	}

	la.setTap(nil)
	b.link.(*fakeLink).setTap(nil)
	l, err := b.Listen(8)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fresh := dial(t, a, b.local, 8)
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	la.end(wire.HIT{}, true) // another peer's CLOSE wakes the watch
	time.Sleep(50 * time.Millisecond)
	if _, err := fresh.Write([]byte("z")); err != nil {
		t.Fatalf("a connection over the next association: %v", err)
	}
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(sc, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

// TestPeerLeftKeepAliveOff: with keep-alive off, a connection may idle
// longer than the overlay's idle timeout, whose CLOSE then does not
// mean that the peer left: nothing is reset.
func TestPeerLeftKeepAliveOff(t *testing.T) {
	a, la, b, dialed, accepted := peerLeftPair(t, 1, Config{KeepAlive: -1})
	if got := watches(a); got != 0 {
		t.Errorf("%d watches with keep-alive off, want 0", got)
	}
	la.end(b.local, true)
	time.Sleep(50 * time.Millisecond)
	if dialed[0].(*conn).left.Load() != leftNot {
		t.Fatal("reset with keep-alive off")
	}
	if _, err := dialed[0].Write([]byte("z")); err != nil {
		t.Fatal(err)
	}
	accepted[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(accepted[0], make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

// TestPeerLeftNotOurClose: an association that ends otherwise (our own
// close of it, a loss) leaves the connections alone: TCP carries on over
// the next one.
func TestPeerLeftNotOurClose(t *testing.T) {
	_, la, b, dialed, accepted := peerLeftPair(t, 1, Config{})
	la.end(b.local, false)
	time.Sleep(50 * time.Millisecond)
	if dialed[0].(*conn).left.Load() != leftNot {
		t.Fatal("reset after an association ended by us")
	}
	if _, err := dialed[0].Write([]byte("z")); err != nil {
		t.Fatal(err)
	}
	accepted[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(accepted[0], make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
}

// TestPeerLeftGoroutines: one watch per peer with open connections,
// whatever their number; it ends with the last of them, and with Close.
func TestPeerLeftGoroutines(t *testing.T) {
	before := baseline()
	t.Run("watches", func(t *testing.T) {
		a, _, _, dialed, _ := peerLeftPair(t, 3, Config{})
		if got := watches(a); got != 1 {
			t.Errorf("%d watches for one peer, want 1", got)
		}
		for _, c := range dialed {
			c.Close()
		}
		if got := watches(a); got != 0 {
			t.Errorf("%d watches after the last connection closed, want 0", got)
		}
		a.wg.Wait() // the watch has ended
		dial(t, a, testHIT(2), 7)
		if got := watches(a); got != 1 {
			t.Errorf("%d watches for a new connection, want 1", got)
		}
		// The cleanups close the Transports with this watch running.
	})
	if got := settle(before); got > before {
		t.Errorf("%d goroutines leaked:\n%s", got-before, stacks())
	}
}

func watches(t *Transport) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.peers)
}

func waitFor(f func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if f() {
			return true
		}
	}
	return false
}
