package netstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// serveEcho accepts on l and echoes every connection; at the end of the
// test it closes l and the connections and waits for its goroutines.
func serveEcho(tb testing.TB, l net.Listener) {
	tb.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	tb.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
}

func dial(tb testing.TB, tr *Transport, peer wire.HIT, port int) net.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tr.Dial(ctx, peer, port)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func TestEcho(t *testing.T) {
	a, b := pair(t, nil)
	l, err := b.Listen(7)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Addr().(*overlay.Addr); got.HIT != b.local || got.Port != 7 {
		t.Fatalf("listener Addr %v", got)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	c := dial(t, a.Transport, b.local, 7)
	sc := <-accepted
	if sc == nil {
		t.FailNow()
	}
	defer sc.Close()

	la, ra := c.LocalAddr().(*overlay.Addr), c.RemoteAddr().(*overlay.Addr)
	if la.HIT != a.local || ra.HIT != b.local || ra.Port != 7 || la.Port == 0 {
		t.Fatalf("client addrs %v -> %v", la, ra)
	}
	sla, sra := sc.LocalAddr().(*overlay.Addr), sc.RemoteAddr().(*overlay.Addr)
	if sla.HIT != b.local || sla.Port != 7 || sra.HIT != a.local || sra.Port != la.Port {
		t.Fatalf("server addrs %v -> %v", sla, sra)
	}
	if c.RemoteAddr().Network() != "hip" {
		t.Fatalf("network %q", c.RemoteAddr().Network())
	}

	for _, cn := range []net.Conn{c, sc} {
		var idle tcpip.KeepaliveIdleOption
		ep := cn.(*conn).ep
		if terr := ep.GetSockOpt(&idle); terr != nil || !ep.SocketOptions().GetKeepAlive() || time.Duration(idle) != DefaultKeepAlive {
			t.Errorf("keep-alive %v, idle %v (%v)", ep.SocketOptions().GetKeepAlive(), time.Duration(idle), terr)
		}
	}

	go func() { _, _ = io.Copy(sc, sc) }()
	for _, msg := range []string{"hello", "over", "BEET"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if string(buf) != msg {
			t.Fatalf("echo %q, want %q", buf, msg)
		}
	}
	st := a.Stats()
	if st.SegmentsSent == 0 || st.SegmentsReceived == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// transfer sends size pseudo-random octets from a to a sink on b and
// checks their SHA-256.
func transfer(t *testing.T, a, b node, size int) {
	t.Helper()
	l, err := b.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		done <- r
	}()

	c := dial(t, a.Transport, b.local, l.Addr().(*overlay.Addr).Port)
	src := rand.NewChaCha8([32]byte{7})
	want := sha256.New()
	if _, err := io.Copy(io.MultiWriter(c, want), io.LimitReader(src, int64(size))); err != nil {
		t.Fatal(err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.n != int64(size) {
			t.Fatalf("received %d octets, err %v; want %d", r.n, r.err, size)
		}
		if !bytes.Equal(r.sum[:], want.Sum(nil)) {
			t.Fatal("SHA-256 differs")
		}
	case <-time.After(20 * time.Second):
		t.Logf("a %+v b %+v", a.Stats(), b.Stats())
		var info tcpip.TCPInfoOption
		c.(*conn).ep.GetSockOpt(&info)
		t.Logf("sender %+v", info)
		t.Fatal("transfer did not finish")
	}
}

func TestTransfer16MiB(t *testing.T) {
	a, b := pair(t, nil)
	// What reaches the Link must fit the interface's MTU, and a bulk
	// transfer fills it.
	var largest atomic.Int64
	a.link.setTap(func(_ wire.HIT, seg []byte) bool {
		for n := int64(len(seg)); n > largest.Load(); {
			if largest.CompareAndSwap(largest.Load(), n) {
				break
			}
		}
		return true
	})
	start := time.Now()
	transfer(t, a, b, 16<<20)
	t.Logf("16 MiB in %v; a %+v", time.Since(start), a.Stats())
	if max := int(largest.Load()); max > DefaultMTU-ipv6HeaderLen || max < DefaultMTU-ipv6HeaderLen-100 {
		t.Fatalf("largest segment to the Link %d octets; the MTU leaves %d", max, DefaultMTU-ipv6HeaderLen)
	}
}

// TestImpairedLink: netstack's TCP delivers intact data over a link that
// loses, duplicates and reorders segments, with and without coalescing
// (GRO) of each receive batch.
func TestImpairedLink(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			n := newFakeNet()
			n.drop, n.dup, n.reorder, n.batch = 0.02, 0.02, 0.05, batch
			a, b := pair(t, n)
			transfer(t, a, b, 2<<20)
			st := a.Stats()
			if st.Retransmits == 0 {
				t.Fatalf("no retransmission over a lossy link: %+v", st)
			}
			t.Logf("a %+v", st)
		})
	}
}

// TestBatchGRO: on a Link that says where its receive batches end, the
// Transport coalesces each batch's segments before TCP sees them: 16 MiB
// arrive intact, in fewer segments than the Link delivered, and nothing
// is held past a flush (an echo of one octet still comes back).
func TestBatchGRO(t *testing.T) {
	n := newFakeNet()
	n.batch = true
	a, b := pair(t, n)
	transfer(t, a, b, 16<<20)
	tcpIn := b.stack.Stats().TCP.ValidSegmentsReceived.Value()
	linkIn := b.Stats().SegmentsReceived
	if tcpIn >= linkIn {
		t.Fatalf("TCP saw %d segments of the Link's %d: nothing coalesced", tcpIn, linkIn)
	}
	t.Logf("the Link delivered %d segments, TCP processed %d", linkIn, tcpIn)
	l, err := b.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	c := dial(t, a.Transport, b.local, l.Addr().(*overlay.Addr).Port)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{42}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 42 {
		t.Fatalf("echo %v, %v", buf, err)
	}
}

func TestDialRefused(t *testing.T) {
	a, b := pair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, b.local, 9)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a port with no listener succeeded")
	}
	if !errors.Is(err, overlay.ErrRefused) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err %v does not match ErrRefused and ECONNREFUSED", err)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" || op.Net != "hip" {
		t.Fatalf("err %#v is not a dial OpError", err)
	}
	if addr, ok := op.Addr.(*overlay.Addr); !ok || addr.HIT != b.local || addr.Port != 9 {
		t.Fatalf("OpError.Addr %v", op.Addr)
	}
}

func TestAcceptManyDials(t *testing.T) {
	const dials = 50
	a, b := pair(t, nil)
	l, err := b.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	var wg sync.WaitGroup
	errs := make(chan error, dials)
	for i := range dials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := a.Dial(ctx, b.local, 80)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := []byte{byte(i), 'x', byte(i)}
			if _, err := c.Write(msg); err != nil {
				errs <- err
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- errors.New("echo differs")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestListenPorts(t *testing.T) {
	a, _ := pair(t, nil)
	l, err := a.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*overlay.Addr).Port
	if port == 0 {
		t.Fatal("Listen(0) kept port 0")
	}
	if _, err := a.Listen(port); !errors.Is(err, overlay.ErrPortInUse) {
		t.Fatalf("second Listen(%d): %v, want ErrPortInUse", port, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	l2, err := a.Listen(port)
	if err != nil {
		t.Fatalf("Listen on a freed port: %v", err)
	}
	l2.Close()
	if _, err := a.Listen(70000); err == nil {
		t.Fatal("Listen(70000) succeeded")
	}
}

func TestDeadlines(t *testing.T) {
	a, b := pair(t, nil)
	l, err := b.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c := dial(t, a.Transport, b.local, l.Addr().(*overlay.Addr).Port)
	sc := <-accepted
	defer sc.Close()

	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
	}

	// A deadline that passes while Read is blocked.
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("Read: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Read timed out after %v", d)
	}
	// Still passed: Read fails at once, even with data waiting.
	sc.Write([]byte("x"))
	time.Sleep(20 * time.Millisecond)
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("Read after the deadline: %v", err)
	}
	// Cleared: the data is there.
	c.SetReadDeadline(time.Time{})
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	// Moved into the past by another goroutine: a blocked Read ends.
	go func() {
		time.Sleep(30 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(-time.Second))
	}()
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("Read: %v, want a timeout", err)
	}
	// Extended while blocked: the later time applies.
	c.SetReadDeadline(time.Now().Add(40 * time.Millisecond))
	go func() {
		time.Sleep(10 * time.Millisecond)
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	}()
	start = time.Now()
	if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
		t.Fatalf("Read: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("extended deadline ended Read after %v", d)
	}

	// Write: the peer does not read, the buffers fill, Write times out
	// having written part.
	big := make([]byte, 64<<20)
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := c.Write(big)
	if !isTimeout(err) {
		t.Fatalf("Write: %v, want a timeout", err)
	}
	if n == 0 || n == len(big) {
		t.Fatalf("Write wrote %d octets before its deadline", n)
	}
	c.SetWriteDeadline(time.Time{})
}

func TestHalfClose(t *testing.T) {
	a, b := pair(t, nil)
	l, err := b.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		sc, err := l.Accept()
		if err != nil {
			return
		}
		defer sc.Close()
		req, _ := io.ReadAll(sc) // until the client's FIN
		sc.Write(append([]byte("got "), req...))
	}()
	c := dial(t, a.Transport, b.local, l.Addr().(*overlay.Addr).Port)
	c.Write([]byte("request"))
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		t.Fatal("conn has no CloseWrite")
	}
	if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("more")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write after CloseWrite: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := io.ReadAll(c)
	if err != nil || string(resp) != "got request" {
		t.Fatalf("response %q, %v", resp, err)
	}
}

func TestConnClose(t *testing.T) {
	a, b := pair(t, nil)
	l, err := b.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	c := dial(t, a.Transport, b.local, l.Addr().(*overlay.Addr).Port)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Read after Close: %v", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) || !errors.Is(err, overlay.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// TestTransportClose: Close ends blocked Reads and Accepts on this side
// and resets the peer's connections.
func TestTransportClose(t *testing.T) {
	a, b := pair(t, nil)
	l, err := a.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	bc := dial(t, b.Transport, a.local, l.Addr().(*overlay.Addr).Port)
	ac := <-accepted

	acceptErr := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		acceptErr <- err
	}()
	readErr := make(chan error, 1)
	go func() {
		_, err := ac.Read(make([]byte, 1))
		readErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); !errors.Is(err, overlay.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	for name, ch := range map[string]chan error{"Accept": acceptErr, "Read": readErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%s after Transport.Close: %v", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s still blocked after Transport.Close", name)
		}
	}
	bc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bc.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("peer Read after Transport.Close: %v, want ECONNRESET", err)
	}
	ctx := context.Background()
	if _, err := a.Dial(ctx, b.local, 1); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Dial after Close: %v", err)
	}
	if _, err := a.Listen(0); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Listen after Close: %v", err)
	}
}

// TestDialLinkError: a Link that reports the peer unreachable fails the
// Dial at once instead of after TCP's SYN retries.
func TestDialLinkError(t *testing.T) {
	a, _ := pair(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := a.Dial(ctx, testHIT(99), 80)
	if !errors.Is(err, overlay.ErrUnknownPeer) {
		t.Fatalf("Dial to an unknown HIT: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Dial failed after %v", d)
	}
}

func TestDialContext(t *testing.T) {
	a, b := pair(t, nil)
	a.link.setTap(func(wire.HIT, []byte) bool { return false }) // a black hole
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := a.Dial(ctx, b.local, 80)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial: %v, want the context's deadline", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Dial error %v is not a timeout", err)
	}
}

func TestDialAssociate(t *testing.T) {
	n := newFakeNet()
	var asked []wire.HIT
	cfg := Config{Associate: func(ctx context.Context, hit wire.HIT) error {
		asked = append(asked, hit)
		if hit == testHIT(2) {
			return nil
		}
		return overlay.ErrHandshakeTimeout
	}}
	nodes := newNodes(t, n, 2, cfg)
	a, b := nodes[0], nodes[1]
	l, err := b.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	dial(t, a.Transport, b.local, l.Addr().(*overlay.Addr).Port)
	if _, err := a.Dial(context.Background(), testHIT(9), 1); !errors.Is(err, overlay.ErrHandshakeTimeout) {
		t.Fatalf("Dial: %v", err)
	}
	if len(asked) != 2 {
		t.Fatalf("Associate called for %v", asked)
	}
}

// TestSelfDial: a Dial to the local HIT stays inside the stack.
func TestSelfDial(t *testing.T) {
	a, _ := pair(t, nil)
	l, err := a.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, l)
	sent := a.Stats().SegmentsSent
	c := dial(t, a.Transport, a.local, l.Addr().(*overlay.Addr).Port)
	c.Write([]byte("me"))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "me" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	if got := a.Stats().SegmentsSent; got != sent {
		t.Fatalf("%d segments went to the Link", got-sent)
	}
}

func TestConfig(t *testing.T) {
	n := newFakeNet()
	defer n.close()
	l := n.add(testHIT(1))
	for _, cfg := range []Config{
		{MTU: 1279},
		{MTU: 70000},
		{SendBufferSize: 100},
		{ReceiveBufferSize: 2 << 20, MaxReceiveBufferSize: 1 << 20},
		{Backlog: -1},
	} {
		if tr, err := New(l, cfg); err == nil {
			tr.Close()
			t.Errorf("New accepted %+v", cfg)
		}
	}
	if _, err := New(&fakeLink{n: n}, Config{}); err == nil {
		t.Error("New accepted a Link with no HIT")
	}
}

// TestSyncLink: a Link that calls the receiving handler inside
// WriteSegment (so that netstack's inline answers, such as a RST to a
// closed port, re-enter the other stack on the same goroutine) works.
func TestSyncLink(t *testing.T) {
	n := newFakeNet()
	n.sync = true
	a, b := pair(t, n)
	if _, err := a.Dial(context.Background(), b.local, 9); !errors.Is(err, overlay.ErrRefused) {
		t.Fatalf("Dial to a closed port: %v", err)
	}
	transfer(t, a, b, 4<<20)
	transfer(t, b, a, 4<<20)
}

// TestAcceptDeadline: the listener has *net.TCPListener's SetDeadline: a
// blocked Accept returns a timeout when it passes, later ones at once,
// and a cleared deadline lets Accept take the next connection.
func TestAcceptDeadline(t *testing.T) {
	a, b := pair(t, nil)
	ln, err := b.Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l := ln.(interface{ SetDeadline(time.Time) error })
	l.SetDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	var ne net.Error
	if _, err := ln.Accept(); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Accept: %v, want a timeout", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Accept timed out after %v", d)
	}
	if _, err := ln.Accept(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Accept after the deadline: %v, want a timeout at once", err)
	}
	l.SetDeadline(time.Time{})
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c := dial(t, a.Transport, b.local, ln.Addr().(*overlay.Addr).Port)
	defer c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("Accept with the deadline cleared: %v", err)
	}
	ln.Close()
	if err := l.SetDeadline(time.Now()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SetDeadline after Close: %v, want net.ErrClosed", err)
	}
}
