package overlay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// TestDatagramsBothWays: Connect, datagrams of every size 1..1200 both ways
// in lockstep, Peers on both sides, CLOSE on Close, no goroutine left.
func TestDatagramsBothWays(t *testing.T) {
	base := runtime.NumGoroutine()
	var keylogA bytes.Buffer
	a := newTestStack(t, 0, func(c *Config) { c.KeyLog = &keylogA })
	b := newTestStack(t, 1, nil)
	introduce(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}
	ca, cb := listen(t, a, 0), listen(t, b, 7)
	aPort := ca.LocalAddr().(*Addr).Port
	if la := ca.LocalAddr().(*Addr); la.HIT != a.HIT() || aPort < ephemeralFirst {
		t.Fatalf("LocalAddr %v", la)
	}
	buf := make([]byte, 2048)
	for n := 1; n <= 1200; n++ {
		msg := pattern(n, n)
		if _, err := ca.WriteTo(msg, &Addr{HIT: b.HIT(), Port: 7}); err != nil {
			t.Fatalf("a→b %d: %v", n, err)
		}
		cb.SetReadDeadline(time.Now().Add(2 * time.Second))
		m, from, err := cb.ReadFrom(buf)
		if err != nil {
			t.Fatalf("b read %d: %v", n, err)
		}
		if got := from.(*Addr); got.HIT != a.HIT() || got.Port != aPort {
			t.Fatalf("b got from %v, want [%v]:%d", got, a.HIT(), aPort)
		}
		if !bytes.Equal(buf[:m], msg) {
			t.Fatalf("a→b %d octets: corrupted (%d octets)", n, m)
		}
		// Echo back.
		if _, err := cb.WriteTo(buf[:m], from); err != nil {
			t.Fatalf("b→a %d: %v", n, err)
		}
		ca.SetReadDeadline(time.Now().Add(2 * time.Second))
		m, from, err = ca.ReadFrom(buf)
		if err != nil {
			t.Fatalf("a read %d: %v", n, err)
		}
		if got := from.(*Addr); got.HIT != b.HIT() || got.Port != 7 {
			t.Fatalf("a got from %v", got)
		}
		if !bytes.Equal(buf[:m], msg) {
			t.Fatalf("b→a %d octets: corrupted", n)
		}
	}
	const total = 1200 * 1201 / 2

	pa, ok := peerInfo(a, b.HIT())
	if !ok {
		t.Fatal("a has no record of b")
	}
	barrier(t, b) // the data poke that ends R2-SENT
	waitFor(t, time.Second, "b's association ESTABLISHED", func() bool {
		p, ok := peerInfo(b, a.HIT())
		return ok && p.State == "ESTABLISHED"
	})
	pb, _ := peerInfo(b, a.HIT())
	for _, c := range []struct {
		name string
		p    PeerInfo
		loc  string
		init bool
	}{{"a", pa, b.LocalAddr().String(), true}, {"b", pb, a.LocalAddr().String(), false}} {
		p := c.p
		if p.State != "ESTABLISHED" || p.Path != "direct" || p.Initiator != c.init {
			t.Errorf("%s: state %q path %q initiator %v", c.name, p.State, p.Path, p.Initiator)
		}
		if p.Locator.String() != c.loc {
			t.Errorf("%s: locator %v, want %v", c.name, p.Locator, c.loc)
		}
		if p.ESPSuite == "" || p.DHGroup == "" || p.HIPCipher == "" || p.HITSuite == "" {
			t.Errorf("%s: suites missing: %+v", c.name, p)
		}
		if p.BytesIn != total || p.BytesOut != total || p.PacketsIn != 1200 || p.PacketsOut != 1200 {
			t.Errorf("%s: counters in %d/%d out %d/%d, want %d/1200 each", c.name, p.BytesIn, p.PacketsIn, p.BytesOut, p.PacketsOut, total)
		}
		if p.InSPI == 0 || p.OutSPI == 0 || p.Since.IsZero() {
			t.Errorf("%s: SPIs or Since missing: %+v", c.name, p)
		}
	}
	if pa.InSPI != pb.OutSPI || pa.OutSPI != pb.InSPI {
		t.Errorf("SPIs do not pair: a %x/%x b %x/%x", pa.InSPI, pa.OutSPI, pb.InSPI, pb.OutSPI)
	}
	if in := a.spis.lookup(pa.InSPI); in == nil || in.p.hit != b.HIT() {
		t.Errorf("spi table: %v", in)
	}
	if id, ok := a.PeerIdentity(b.HIT()); !ok || id.HIT() != b.HIT() {
		t.Error("a: PeerIdentity of b")
	}
	if lines := strings.Count(keylogA.String(), "\n"); lines != 2 || !strings.Contains(keylogA.String(), "IPv4") {
		t.Errorf("key log: %d lines:\n%s", lines, keylogA.String())
	}
	// The read loop counts a delivery after queuing it, so the reader can
	// be a hair ahead of the counter.
	waitFor(t, time.Second, "a's delivery counter", func() bool { return a.Stats().Delivered == 1200 })
	st := a.Stats()
	if st.ESPOut < 1200 || st.ESPIn < 1200 || st.ControlOut < 2 || st.Delivered != 1200 || st.Drops.Total() != 0 {
		t.Errorf("a stats: %+v", st)
	}

	// Close: CLOSE to b, whose record goes to CLOSED (or away).
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	barrier(t, b)
	if p, ok := peerInfo(b, a.HIT()); ok && p.State != "CLOSED" {
		t.Errorf("b after a's CLOSE: %q", p.State)
	}
	if a.Stats().ControlIn < 2 { // R2 and CLOSE_ACK
		t.Errorf("a did not get the CLOSE_ACK: %+v", a.Stats())
	}
	if _, err := ca.WriteTo([]byte("x"), &Addr{HIT: b.HIT(), Port: 7}); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	if _, _, err := ca.ReadFrom(buf); !errors.Is(err, ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
	if err := a.Connect(ctx, b.HIT()); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close: %v", err)
	}
	b.Close()
	waitFor(t, 2*time.Second, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base })
}

func TestConnectIdempotentAndSimultaneous(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	introduce(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- a.Connect(ctx, b.HIT()) }()
	go func() { errs <- b.Connect(ctx, a.HIT()) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Again: nothing to do.
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}
	ca, cb := listen(t, a, 1000), listen(t, b, 1000)
	for i := range 5 {
		if _, err := ca.WriteTo(pattern(i, 100), &Addr{HIT: b.HIT(), Port: 1000}); err != nil {
			t.Fatal(err)
		}
		if got, _ := readOne(t, cb, 2*time.Second); !bytes.Equal(got, pattern(i, 100)) {
			t.Fatal("corrupted")
		}
		if _, err := cb.WriteTo(pattern(i, 50), &Addr{HIT: a.HIT(), Port: 1000}); err != nil {
			t.Fatal(err)
		}
		if got, _ := readOne(t, ca, 2*time.Second); !bytes.Equal(got, pattern(i, 50)) {
			t.Fatal("corrupted")
		}
	}
	if n := len(a.Peers()); n != 1 {
		t.Fatalf("a has %d associations", n)
	}
}

// TestUnauthorizedInitiator: the Responder refuses the Initiator's HIT.
func TestUnauthorizedInitiator(t *testing.T) {
	a := newTestStack(t, 0, nil)
	var asked []wire.HIT
	b := newTestStack(t, 1, func(c *Config) {
		c.Authorize = func(h wire.HIT) bool { asked = append(asked, h); return false }
	})
	introduce(a, b)
	cb := listen(t, b, 9)
	ca := listen(t, a, 9)
	// A write before the BEX: queued, then discarded when it fails.
	if _, err := ca.WriteTo([]byte("secret"), &Addr{HIT: b.HIT(), Port: 9}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err := a.Connect(ctx, b.HIT())
	if !errors.Is(err, ErrHandshakeFailed) && !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("Connect: %v", err)
	}
	if !strings.Contains(err.Error(), "BLOCKED_BY_POLICY") {
		t.Errorf("error does not name the NOTIFY: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("refusal took %v: the NOTIFY should end the BEX at once", d)
	}
	if _, err := ca.WriteTo([]byte("secret 2"), &Addr{HIT: b.HIT(), Port: 9}); err != nil {
		t.Fatal(err)
	}
	cb.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := cb.ReadFrom(make([]byte, 100)); !isTimeout(err) {
		t.Fatalf("b received something from a refused peer: %v", err)
	}
	barrier(t, b)
	if len(b.Peers()) != 0 || b.spis.len() != 0 {
		t.Errorf("b keeps state for a refused peer: %v, %d SAs", b.Peers(), b.spis.len())
	}
	if b.Stats().Drops.Unauthorized == 0 || len(asked) == 0 || asked[0] != a.HIT() {
		t.Errorf("unauthorized not counted: %+v (asked %v)", b.Stats().Drops, asked)
	}
}

// TestUnauthorizedResponder: the Initiator refuses the Responder's HIT,
// before the I1 and (when Authorize changes its mind) at R1.
func TestUnauthorizedResponder(t *testing.T) {
	var calls atomic.Int32
	a := newTestStack(t, 0, func(c *Config) {
		c.Authorize = func(wire.HIT) bool { return calls.Add(1) == 1 }
	})
	b := newTestStack(t, 1, nil)
	introduce(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// First call (before the I1) says yes, the second (R1) no.
	if err := a.Connect(ctx, b.HIT()); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("Connect refused at R1: %v", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("Authorize called %d times", n)
	}
	barrier(t, a)
	if len(a.Peers()) != 0 || a.spis.len() != 0 {
		t.Errorf("a keeps state: %v", a.Peers())
	}
	// From now on refused before anything is sent.
	sent := a.Stats().ControlOut
	if err := a.Connect(ctx, b.HIT()); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("Connect: %v", err)
	}
	ca := listen(t, a, 0)
	if _, err := ca.WriteTo([]byte("x"), &Addr{HIT: b.HIT(), Port: 1}); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("WriteTo: %v", err)
	}
	if a.Stats().ControlOut != sent {
		t.Error("packets sent to a refused peer")
	}
	if len(b.Peers()) != 0 {
		t.Errorf("b has an association: %v", b.Peers())
	}
}

func TestUnknownPeer(t *testing.T) {
	a := newTestStack(t, 0, nil)
	stranger := wire.HIT(testKey(t, 3).HIT())
	start := time.Now()
	if err := a.Connect(context.Background(), stranger); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("Connect: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("took %v", d)
	}
	c := listen(t, a, 0)
	if _, err := c.WriteTo([]byte("x"), &Addr{HIT: stranger, Port: 1}); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("WriteTo: %v", err)
	}
}

// TestWrongLocator: the locator belongs to a third node with another HIT,
// which drops the I1s as not for it.
func TestWrongLocator(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	c := newTestStack(t, 2, nil)
	a.AddPeer(b.HIT(), c.LocalAddr())
	start := time.Now()
	err := a.Connect(context.Background(), b.HIT())
	if !errors.Is(err, ErrHandshakeTimeout) {
		t.Fatalf("Connect: %v", err)
	}
	// 50+100+200+400 ms of retransmissions.
	if d := time.Since(start); d < 700*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %v", d)
	}
	barrier(t, c)
	if got := c.Stats().Drops.NotForUs; got != 4 {
		t.Errorf("c counted %d I1s not for it, want 4", got)
	}
	if p, ok := peerInfo(a, b.HIT()); !ok || p.State != "E-FAILED" {
		t.Errorf("a's record: %+v", p)
	}
	// With a context deadline shorter than the budget.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = a.Connect(ctx, b.HIT())
	if !errors.Is(err, ErrHandshakeTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect with deadline: %v", err)
	}
}

// TestQueueDuringBEX: writes before the association exists are delivered
// after the BEX, in order; the one beyond QueueLimit is refused.
func TestQueueDuringBEX(t *testing.T) {
	const limit = 8
	la := newLink(t, 1, 0, 0, 0)
	la.setGate(true) // nothing leaves a until the queue is full
	a := newTestStack(t, 0, func(c *Config) { c.PacketConn = la; c.QueueLimit = limit })
	b := newTestStack(t, 1, nil)
	introduce(a, b)
	ca, cb := listen(t, a, 0), listen(t, b, 53)
	to := &Addr{HIT: b.HIT(), Port: 53}
	for i := range limit {
		if _, err := ca.WriteTo(pattern(i, 10+i), to); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if _, err := ca.WriteTo([]byte("one too many"), to); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("write %d: %v, want ErrQueueFull", limit, err)
	}
	if a.Stats().Drops.QueueFull != 1 {
		t.Errorf("queue full not counted: %+v", a.Stats().Drops)
	}
	la.setGate(false) // the I1 retransmission gets through
	for i := range limit {
		got, from := readOne(t, cb, 3*time.Second)
		if !bytes.Equal(got, pattern(i, 10+i)) || from.HIT != a.HIT() {
			t.Fatalf("datagram %d: %d octets from %v (out of order or corrupted)", i, len(got), from)
		}
	}
	// After the BEX, writes go straight out.
	if _, err := ca.WriteTo([]byte("after"), to); err != nil {
		t.Fatal(err)
	}
	if got, _ := readOne(t, cb, 2*time.Second); string(got) != "after" {
		t.Fatalf("got %q", got)
	}
}

func TestReadDeadline(t *testing.T) {
	a := newTestStack(t, 0, nil)
	c := listen(t, a, 0)
	buf := make([]byte, 10)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, _, err := c.ReadFrom(buf)
	if !isTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom: %v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > time.Second {
		t.Errorf("returned after %v", d)
	}
	// A deadline in the past fails at once; clearing it blocks again.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, _, err := c.ReadFrom(buf); !isTimeout(err) {
		t.Fatalf("past deadline: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, _, err := c.ReadFrom(buf); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("read returned without deadline: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	// Extending the deadline of a blocked read.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := <-done; !isTimeout(err) {
		t.Fatalf("blocked read: %v", err)
	}
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := c.WriteTo([]byte("x"), &Addr{HIT: a.HIT(), Port: 1}); !isTimeout(err) {
		t.Fatalf("write past deadline: %v", err)
	}
	// Close unblocks a reader.
	c.SetDeadline(time.Time{})
	go func() { _, _, err := c.ReadFrom(buf); done <- err }()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
}

func TestListenInner(t *testing.T) {
	a := newTestStack(t, 0, nil)
	c := listen(t, a, 5683)
	if _, err := a.ListenInner(5683); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("second bind: %v", err)
	}
	if _, err := a.ListenInner(70000); err == nil {
		t.Fatal("port 70000 accepted")
	}
	c.Close()
	c2 := listen(t, a, 5683) // free again
	if c2.LocalAddr().String() != "["+a.HIT().String()+"]:5683" {
		t.Errorf("LocalAddr %v", c2.LocalAddr())
	}
	seen := map[int]bool{}
	for range 20 {
		e := listen(t, a, 0)
		p := e.LocalAddr().(*Addr).Port
		if p < ephemeralFirst || p > ephemeralLast || seen[p] {
			t.Fatalf("ephemeral port %d", p)
		}
		seen[p] = true
	}
}

// TestNoListener: a datagram to an unbound inner port is counted, and the
// association carries on.
func TestNoListener(t *testing.T) {
	a, b := connected(t, nil, nil)
	ca := listen(t, a, 0)
	if _, err := ca.WriteTo([]byte("nobody"), &Addr{HIT: b.HIT(), Port: 4}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "no-listener drop", func() bool { return b.Stats().Drops.NoListener == 1 })
	cb := listen(t, b, 4)
	if _, err := ca.WriteTo([]byte("somebody"), &Addr{HIT: b.HIT(), Port: 4}); err != nil {
		t.Fatal(err)
	}
	if got, _ := readOne(t, cb, 2*time.Second); string(got) != "somebody" {
		t.Fatalf("got %q", got)
	}
}

// TestRekeyOnDataPath: the outbound SA asks for a rekey after a few packets;
// the UPDATE exchange replaces the SAs while datagrams keep flowing.
func TestRekeyOnDataPath(t *testing.T) {
	rekey20 := func(c *Config) { c.RekeyAfter = 20 }
	a := newTestStack(t, 0, rekey20)
	b := newTestStack(t, 1, rekey20)
	introduce(a, b)
	if err := a.Connect(context.Background(), b.HIT()); err != nil {
		t.Fatal(err)
	}
	ca, cb := listen(t, a, 0), listen(t, b, 11)
	first, _ := peerInfo(a, b.HIT())
	to := &Addr{HIT: b.HIT(), Port: 11}
	defer func() {
		if t.Failed() {
			t.Logf("a drops %+v\nb drops %+v", a.Stats().Drops, b.Stats().Drops)
		}
	}()
	for i := range 200 {
		if _, err := ca.WriteTo(pattern(i, 64), to); err != nil {
			t.Fatal(err)
		}
		got, from := readOne(t, cb, 2*time.Second)
		if !bytes.Equal(got, pattern(i, 64)) {
			t.Fatalf("datagram %d corrupted", i)
		}
		if i%2 == 0 { // and back, on every other one
			if _, err := cb.WriteTo(got, from); err != nil {
				t.Fatal(err)
			}
			if back, _ := readOne(t, ca, 2*time.Second); !bytes.Equal(back, got) {
				t.Fatalf("echo %d corrupted", i)
			}
		}
	}
	barrier(t, a)
	now, _ := peerInfo(a, b.HIT())
	if now.InSPI == first.InSPI || now.OutSPI == first.OutSPI {
		t.Fatalf("no rekey: SPIs %x/%x before and after", first.InSPI, first.OutSPI)
	}
	if now.State != "ESTABLISHED" {
		t.Fatalf("state %s", now.State)
	}
	// Current, previous and at most one retired (sas.go retire), which
	// ends after twice the switch grace.
	if n := a.spis.len(); n > 3 {
		t.Errorf("a keeps %d inbound SAs (current, previous and one retired expected)", n)
	}
	waitFor(t, 5*time.Second, "the retired SA to end", func() bool { return a.spis.len() <= 2 })
}

// TestResponderLearnsLocator: b knows nothing of a; a's I2 teaches b where
// a is, and b can answer without AddPeer.
func TestResponderLearnsLocator(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	a.AddPeer(b.HIT(), b.LocalAddr())
	if err := a.Connect(context.Background(), b.HIT()); err != nil {
		t.Fatal(err)
	}
	p, ok := peerInfo(b, a.HIT())
	if !ok || p.Locator != a.LocalAddr() || p.Initiator {
		t.Fatalf("b's record of a: %+v", p)
	}
	// b may Connect (R2-SENT counts) and write first.
	if err := b.Connect(context.Background(), a.HIT()); err != nil {
		t.Fatal(err)
	}
	ca, cb := listen(t, a, 77), listen(t, b, 0)
	if _, err := cb.WriteTo([]byte("hello a"), &Addr{HIT: a.HIT(), Port: 77}); err != nil {
		t.Fatal(err)
	}
	if got, from := readOne(t, ca, 2*time.Second); string(got) != "hello a" || from.HIT != b.HIT() {
		t.Fatalf("got %q from %v", got, from)
	}
}

// TestIPv6 runs a BEX and datagrams over an IPv6 loopback socket and a
// dual-stack wildcard socket reached over IPv4.
func TestIPv6(t *testing.T) {
	if c, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback:", err)
	} else {
		c.Close()
	}
	var kl bytes.Buffer
	a := newTestStack(t, 0, func(c *Config) { c.ListenAddr = "[::1]:0"; c.KeyLog = &kl })
	b := newTestStack(t, 1, func(c *Config) { c.ListenAddr = "[::]:0" })
	a.AddPeer(b.HIT(), netip.AddrPortFrom(netip.IPv6Loopback(), b.LocalAddr().Port()))
	c := newTestStack(t, 2, func(c *Config) { c.ListenAddr = "127.0.0.1:0" })
	c.AddPeer(b.HIT(), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalAddr().Port()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, x := range []*Stack{a, c} {
		if err := x.Connect(ctx, b.HIT()); err != nil {
			t.Fatal(err)
		}
	}
	cb := listen(t, b, 66)
	for _, x := range []*Stack{a, c} {
		cx := listen(t, x, 0)
		if _, err := cx.WriteTo([]byte("v6"), &Addr{HIT: b.HIT(), Port: 66}); err != nil {
			t.Fatal(err)
		}
		if got, from := readOne(t, cb, 2*time.Second); string(got) != "v6" || from.HIT != x.HIT() {
			t.Fatalf("got %q from %v", got, from)
		}
		// And back, over the locator b learnt (IPv4 unmapped for c).
		if _, err := cb.WriteTo([]byte("back"), &Addr{HIT: x.HIT(), Port: cx.LocalAddr().(*Addr).Port}); err != nil {
			t.Fatal(err)
		}
		if got, _ := readOne(t, cx, 2*time.Second); string(got) != "back" {
			t.Fatalf("got %q", got)
		}
	}
	if p, _ := peerInfo(b, c.HIT()); !p.Locator.Addr().Is4() {
		t.Errorf("b's locator for c is %v, want an unmapped IPv4 address", p.Locator)
	}
	if !strings.Contains(kl.String(), "IPv6") {
		t.Errorf("key log: %s", kl.String())
	}
}

// TestCloseWakesConnect: a Connect waiting for a BEX returns ErrClosed when
// the stack closes, and Close does not wait for CLOSE_ACKs that cannot come.
func TestCloseWakesConnect(t *testing.T) {
	a := newTestStack(t, 0, func(c *Config) {
		c.Handshake.RetransmitTimeout, c.Handshake.Retries = time.Second, 5
	})
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	peer := wire.HIT(testKey(t, 1).HIT())
	a.AddPeer(peer, addrPortOf(sink.LocalAddr()))
	errc := make(chan error, 1)
	go func() { errc <- a.Connect(context.Background(), peer) }()
	waitFor(t, time.Second, "I1 sent", func() bool { return a.Stats().ControlOut > 0 })
	start := time.Now()
	a.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Connect: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Close took %v with no association to close", d)
	}
	if _, err := a.ListenInner(0); !errors.Is(err, ErrClosed) {
		t.Errorf("ListenInner after Close: %v", err)
	}
}

// TestR1Rotation: R1 generations rotate on the control goroutine's timer and
// base exchanges keep working across them.
func TestR1Rotation(t *testing.T) {
	mod := func(c *Config) { c.Handshake.R1Lifetime = 30 * time.Millisecond }
	a := newTestStack(t, 0, mod)
	b := newTestStack(t, 1, mod)
	introduce(a, b)
	time.Sleep(100 * time.Millisecond) // a few rotations
	if err := a.Connect(context.Background(), b.HIT()); err != nil {
		t.Fatal(err)
	}
	b.Close() // the Endpoint is the control goroutine's until it returns
	if r := b.ctl.ep.Stats().R1Rotations; r < 3 {
		t.Errorf("%d R1 generations", r)
	}
}

// TestLogs: the stable messages, with the peer's HIT as text.
func TestLogs(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, b := connected(t, func(c *Config) { c.Logger = log }, nil)
	a.Close()
	b.Close()
	out := buf.String()
	for _, want := range []string{
		`"msg":"bex established","peer":"` + b.HIT().String() + `"`,
		`"msg":"peer closed","peer":"` + b.HIT().String() + `"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRelayedNotAHIT: with relays configured, a peer with no locator is
// reached through them, but only a HIT can be: writing or dialing to the
// zero HIT (a zero Addr), an IPv6 address that is no ORCHIDv2, or our own
// HIT fails at once and leaves no peer behind. Before, each started a
// base exchange through the relay that could never finish, and left a
// peer record (I1-SENT) for every value written to.
func TestRelayedNotAHIT(t *testing.T) {
	s := newTestStack(t, 0, func(c *Config) {
		c.Relays = []RelayAddr{{HIT: testKey(t, 1).HIT(), Addr: netip.MustParseAddrPort("127.0.0.1:9")}}
	})
	pc, err := s.ListenInner(0)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, tc := range []struct {
		hit  wire.HIT
		want error
	}{
		{wire.HIT{}, wire.ErrBadHIT},
		{wire.HIT(netip.MustParseAddr("fe80::1").As16()), wire.ErrBadHIT},
		{s.HIT(), ErrUnknownPeer},
	} {
		if _, err := pc.WriteTo([]byte("x"), &Addr{HIT: tc.hit, Port: 9}); !errors.Is(err, tc.want) {
			t.Errorf("write to %v: %v, want %v", tc.hit, err, tc.want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := s.Connect(ctx, tc.hit)
		cancel()
		if !errors.Is(err, tc.want) {
			t.Errorf("connect to %v: %v, want %v", tc.hit, err, tc.want)
		}
	}
	for _, p := range s.Peers() {
		if p.HIT != testKey(t, 1).HIT() {
			t.Errorf("a peer record for %v (%s), besides the relay's", p.HIT, p.State)
		}
	}
}

// TestPingCanceled: a Ping waiting for its answer returns when its
// context is canceled, not at its timeout; one that times out is a
// net.Error whose Timeout is true, and ErrNoEcho.
func TestPingCanceled(t *testing.T) {
	s := newTestStack(t, 0, nil)
	peer := testKey(t, 1).HIT()
	s.AddPeer(peer, silentAddr(t)) // the exchange never finishes: no answer
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := s.Ping(ctx, peer, 1, 0, 5*time.Second)
	if took := time.Since(start); !errors.Is(err, context.Canceled) || took > 2*time.Second {
		t.Fatalf("canceled after 100ms: %v after %v, want context.Canceled at once", err, took)
	}
	_, err = s.Ping(context.Background(), peer, 2, 0, 100*time.Millisecond)
	var ne net.Error
	if !errors.Is(err, ErrNoEcho) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("timed out: %v, want ErrNoEcho and a net.Error with Timeout", err)
	}
}

// TestClosedErrors: after Close, every call fails with an error that
// matches both ErrClosed and net.ErrClosed, as package net's do, so that
// code written for net stops on it; WaitReachable says closed at once.
func TestClosedErrors(t *testing.T) {
	s := newTestStack(t, 0, nil)
	pc, err := s.ListenInner(0)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed and net.ErrClosed", what, err)
		}
	}
	_, err = s.ListenInner(0)
	check("ListenInner", err)
	check("Connect", s.Connect(context.Background(), testKey(t, 1).HIT()))
	check("SetDeadline", pc.SetDeadline(time.Now()))
	check("SetReadDeadline", pc.SetReadDeadline(time.Now()))
	check("SetWriteDeadline", pc.SetWriteDeadline(time.Now()))
	_, _, err = pc.ReadFromAddr(make([]byte, 8))
	check("ReadFrom", err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	check("WaitReachable", s.WaitReachable(ctx))
}

// TestPingContextDeadline: a context deadline before the Ping's timeout
// ends it with context.DeadlineExceeded, however its timer and the read's
// race.
func TestPingContextDeadline(t *testing.T) {
	s := newTestStack(t, 0, nil)
	peer := testKey(t, 1).HIT()
	s.AddPeer(peer, silentAddr(t))
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		_, err := s.Ping(ctx, peer, uint64(i), 0, 5*time.Second)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run %d: %v, want context.DeadlineExceeded", i, err)
		}
	}
}
