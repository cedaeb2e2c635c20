package streams

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// warmPair is a pair with a connection from a to b, b echoing on port 80,
// a's log recorded.
func warmPair(t *testing.T) (a, b *node, log *records) {
	t.Helper()
	ka, kb, _ := testIdentities(t)
	log = &records{}
	a, b = newPair(t, ka, kb, func(c *Config) { c.Logger = slog.New(log) })
	echoOn(t, b, 80)
	if err := roundTrip(t, a.m, b.hit, 80, []byte("warm")); err != nil {
		t.Fatal(err)
	}
	return a, b, log
}

// closeAsIdle makes b close its connection with a as its idle timer would,
// and waits until a has seen it.
func closeAsIdle(t *testing.T, a, b *node) {
	t.Helper()
	a.m.mu.Lock()
	aqc := a.m.peers[b.hit].cur
	a.m.mu.Unlock()
	b.m.mu.Lock()
	qc := b.m.peers[a.hit].cur
	b.m.mu.Unlock()
	qc.c.CloseWithError(connCodeIdle, "idle")
	select {
	case <-aqc.c.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a did not see the connection close")
	}
}

// waitInHand waits until the first Write on c waits for the answer,
// holding its data.
func waitInHand(t *testing.T, c net.Conn) {
	t.Helper()
	waitAnswer(t, c, "the Write to wait for the answer", func(a *answer) bool { return a.inHand })
}

// waitAnswer waits, up to 5 s, until cond holds of c's answer state.
func waitAnswer(t *testing.T, c net.Conn, what string, cond func(*answer) bool) {
	t.Helper()
	cc := c.(*conn)
	for i := 0; ; i++ {
		cc.mu.Lock()
		ok := cond(cc.ans)
		cc.mu.Unlock()
		if ok {
			return
		}
		if i == 1000 {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type result struct {
	n   int
	err error
}

// On a connection that exists, Dial sends nothing it must wait for: with
// every packet from a dropped, it still returns at once. The first Write
// waits for the answer, and returns once it is in.
func TestDialDoesNotWaitForAnswer(t *testing.T) {
	a, b, _ := warmPair(t)
	a.pc.blocked.Store(true)
	start := time.Now()
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A Dial that waited for an answer would wait for dialCtx's end: with
	// the path dead none comes. The bound leaves room for -race and load.
	if d := time.Since(start); d > time.Second {
		t.Errorf("Dial took %v with the path dead", d)
	}
	done := make(chan result, 1)
	go func() {
		n, err := c.Write([]byte("ping"))
		done <- result{n, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("Write returned before the answer: %d, %v", r.n, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	a.pc.blocked.Store(false)
	if r := <-done; r.n != 4 || r.err != nil {
		t.Fatalf("Write: %d, %v", r.n, r.err)
	}
	got := make([]byte, 4)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

// The peer closes the connection as idle while our header and the first
// Write's data are on their way: it never gave the stream to a listener,
// so the stream moves to a new connection and the Write sends its data
// again there, unseen by the application.
func TestRetryFirstWriteAfterIdleClose(t *testing.T) {
	a, b, log := warmPair(t)
	a.pc.blocked.Store(true)
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan result, 1)
	go func() {
		n, err := c.Write([]byte("ping"))
		done <- result{n, err}
	}()
	waitInHand(t, c) // the Write waits, holding its data
	closeAsIdle(t, a, b)
	a.pc.blocked.Store(false)
	if r := <-done; r.n != 4 || r.err != nil {
		t.Fatalf("Write: %d, %v", r.n, r.err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Fatalf("echo %q, %v", got, err)
	}
	if n := log.count("retrying dial"); n != 1 {
		t.Errorf("%d retries logged, want 1:\n%s", n, log)
	}
}

// The same before anything was written: the first Read waits out the
// retry.
func TestRetryBeforeWriteAfterIdleClose(t *testing.T) {
	a, b, log := warmPair(t)
	a.pc.blocked.Store(true)
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closeAsIdle(t, a, b)
	a.pc.blocked.Store(false)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("pong")); err != nil {
		t.Fatalf("%v\n%s", err, log)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "pong" {
		t.Fatalf("echo %q, %v", got, err)
	}
	if n := log.count("retrying dial"); n != 1 {
		t.Errorf("%d retries logged, want 1:\n%s", n, log)
	}
}

// Data that a Write left on the stream when it returned at its deadline,
// before the answer, cannot be sent again: the peer's close is reported.
func TestNoRetryOnceDataLeft(t *testing.T) {
	a, b, log := warmPair(t)
	a.pc.blocked.Store(true)
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := c.Write([]byte("lost")); n != 4 || !isTimeout(err) {
		t.Fatalf("Write: %d, %v, want 4 and a timeout", n, err)
	}
	closeAsIdle(t, a, b)
	a.pc.blocked.Store(false)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var appErr *quic.ApplicationError
	if !errors.As(err, &appErr) || appErr.ErrorCode != connCodeIdle {
		t.Errorf("Read: %v, want the peer's idle close", err)
	}
	if _, err := c.Write([]byte("x")); !errors.As(err, &appErr) {
		t.Errorf("Write after: %v, want the peer's idle close", err)
	}
	if n := log.count("retrying dial"); n != 0 {
		t.Errorf("%d retries logged, want 0", n)
	}
}

// Deadlines and Close work while the answer is pending.
func TestPendingAnswerDeadlinesAndClose(t *testing.T) {
	a, b, _ := warmPair(t)
	a.pc.blocked.Store(true)
	defer a.pc.blocked.Store(false)
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Errorf("Read: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > time.Second {
		t.Errorf("Read returned after %v", d)
	}
	// A deadline moved while a Read waits applies to it.
	c.SetReadDeadline(time.Time{})
	rerr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		rerr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.SetReadDeadline(time.Now())
	select {
	case err := <-rerr:
		if !isTimeout(err) {
			t.Errorf("Read after the deadline moved: %v, want a timeout", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("moving the deadline did not wake the Read")
	}
	// Close wakes a Read and a Write waiting for the answer.
	c.SetReadDeadline(time.Time{})
	go func() {
		_, err := c.Read(make([]byte, 1))
		rerr <- err
	}()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("x"))
		werr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	for _, ch := range []chan error{rerr, werr} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%v, want net.ErrClosed", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Close did not wake a waiter")
		}
	}
}

// CloseRead before the answer takes effect after it: the Write goes
// through, the Read fails.
func TestCloseReadBeforeAnswer(t *testing.T) {
	a, b, _ := warmPair(t)
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.(interface{ CloseRead() error }).CloseRead(); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("Read after CloseRead: %v, want an error", err)
	}
}

// A stream still waiting for its answer when the peer's Manager closes
// (its node is shutting down) fails at once, with the peer's close, and
// is not retried: the retry would dial a host that is going away. Before
// this rule the retry waited for a handshake that never came.
func TestNoRetryWhenPeerCloses(t *testing.T) {
	a, b, log := warmPair(t)
	a.pc.blocked.Store(true) // the header never reaches b
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a.m.mu.Lock()
	aqc := a.m.peers[b.hit].cur
	a.m.mu.Unlock()
	b.m.Close()
	select {
	case <-aqc.c.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a did not see b's connection close")
	}
	a.pc.blocked.Store(false)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	var appErr *quic.ApplicationError
	if !errors.As(err, &appErr) || !appErr.Remote || appErr.ErrorCode != connCodeClosed {
		t.Errorf("Read: %v, want the peer's close", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Read took %v", d)
	}
	if n := log.count("retrying dial"); n != 0 {
		t.Errorf("%d retries logged, want 0:\n%s", n, log)
	}
}

// TestCloseWriteDuringRetry: CloseWrite while the first Write waits for
// the answer and the stream is being retried on a new connection (the
// peer closed the old one as idle): the Write is not cut short on the
// stream the retry replaces, CloseWrite succeeds once the retry is done,
// and the peer echoes what was written, then sees the FIN.
func TestCloseWriteDuringRetry(t *testing.T) {
	a, b, _ := warmPair(t)
	a.pc.blocked.Store(true)
	c, err := a.m.Dial(dialCtx(t), b.hit, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan result, 1)
	go func() {
		n, err := c.Write([]byte("ping"))
		done <- result{n, err}
	}()
	waitInHand(t, c)
	closeAsIdle(t, a, b)
	waitAnswer(t, c, "the retry", func(a *answer) bool { return a.redialing })
	cc := c.(*conn)
	cw := make(chan error, 1)
	go func() { cw <- cc.CloseWrite() }()
	time.Sleep(200 * time.Millisecond)
	a.pc.blocked.Store(false)
	cwErr := <-cw
	w := <-done
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if cwErr != nil {
		t.Errorf("CloseWrite failed: %v (no FIN will ever be sent)", cwErr)
	}
	if err != nil || string(got) != "ping"[:w.n] {
		t.Errorf("peer echoed %q then %v; want %q then EOF", got, err, "ping"[:w.n])
	}
}
