package overlay

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// movingConn is a host whose address changes: two UDP sockets on the same
// port of two loopback addresses, read together, written from the one
// that is current. Its LocalAddr is the unspecified address, as a node
// listening on ":port" has.
type movingConn struct {
	socks [2]*net.UDPConn
	cur   atomic.Int32
	gone  atomic.Int32 // 1 + the index of the address that hears nothing (leave)
	in    chan pkt
	done  chan struct{}
	once  sync.Once
}

type pkt struct {
	b    []byte
	from net.Addr
}

func newMovingConn(t *testing.T) *movingConn {
	t.Helper()
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := a.LocalAddr().(*net.UDPAddr).Port
	b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: port})
	if err != nil {
		a.Close()
		t.Skipf("127.0.0.2:%d: %v", port, err)
	}
	m := &movingConn{socks: [2]*net.UDPConn{a, b}, in: make(chan pkt, 256), done: make(chan struct{})}
	for i, s := range m.socks {
		go m.read(s, int32(i))
	}
	return m
}

func (m *movingConn) read(s *net.UDPConn, i int32) {
	for {
		buf := make([]byte, 65536)
		n, from, err := s.ReadFrom(buf)
		if err != nil {
			return
		}
		if m.gone.Load() == i+1 {
			continue
		}
		select {
		case m.in <- pkt{buf[:n], from}:
		case <-m.done:
			return
		}
	}
}

// move makes the host send from its other address from now on.
func (m *movingConn) move() { m.cur.Store(1 - m.cur.Load()) }

// leave makes the address the host sent from before its move hear
// nothing more, as a NAT mapping that is gone.
func (m *movingConn) leave() { m.gone.Store(2 - m.cur.Load()) }

func (m *movingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-m.in:
		return copy(b, p.b), p.from, nil
	case <-m.done:
		return 0, nil, net.ErrClosed
	}
}

func (m *movingConn) WriteTo(b []byte, to net.Addr) (int, error) {
	return m.socks[m.cur.Load()].WriteTo(b, to)
}

func (m *movingConn) Close() error {
	m.once.Do(func() { close(m.done) })
	return errors.Join(m.socks[0].Close(), m.socks[1].Close())
}

func (m *movingConn) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4zero, Port: m.socks[0].LocalAddr().(*net.UDPAddr).Port}
}
func (m *movingConn) SetDeadline(time.Time) error      { return nil }
func (m *movingConn) SetReadDeadline(time.Time) error  { return nil }
func (m *movingConn) SetWriteDeadline(time.Time) error { return nil }

// fakeWatcher is Config.WatchAddrs with addresses the test sets.
type fakeWatcher struct {
	mu    sync.Mutex
	addrs []netip.Addr
	ch    chan struct{}
}

func (w *fakeWatcher) Addrs() []netip.Addr {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]netip.Addr(nil), w.addrs...)
}

func (w *fakeWatcher) Changes() <-chan struct{} { return w.ch }

func (w *fakeWatcher) set(as ...string) {
	w.mu.Lock()
	w.addrs = w.addrs[:0]
	for _, a := range as {
		w.addrs = append(w.addrs, netip.MustParseAddr(a))
	}
	w.mu.Unlock()
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

// TestOwnAddressChange: a host's own address changes mid-flow (its
// socket now sends from 127.0.0.2). It announces the new address in an
// UPDATE with LOCATOR_SET (RFC 8046 §5.2); the peer, which also sees the
// host's packets arrive from the new address, verifies it with a signed
// echo (§5.4), moves its traffic there, and forgets the address the host
// withdrew (§5.3). Datagrams keep flowing both ways.
func TestOwnAddressChange(t *testing.T) {
	mc := newMovingConn(t)
	w := &fakeWatcher{ch: make(chan struct{}, 1)}
	w.set("127.0.0.1")
	a := newTestStack(t, 0, func(c *Config) { c.PacketConn, c.ListenAddr, c.WatchAddrs = mc, "", w })
	b := newTestStack(t, 1, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	a.AddPeer(b.HIT(), b.LocalAddr())
	ca, cb := listen(t, a, 50), listen(t, b, 51)
	ping := func(i int) {
		t.Helper()
		msg := pattern(i, 200)
		if _, err := ca.WriteTo(msg, &Addr{HIT: b.HIT(), Port: 51}); err != nil {
			t.Fatal(err)
		}
		got, from := readOne(t, cb, 5*time.Second)
		if string(got) != string(msg) {
			t.Fatalf("datagram %d corrupted", i)
		}
		if _, err := cb.WriteTo(got, from); err != nil {
			t.Fatal(err)
		}
		if back, _ := readOne(t, ca, 5*time.Second); string(back) != string(msg) {
			t.Fatalf("answer %d corrupted", i)
		}
	}
	for i := 0; i < 5; i++ {
		ping(i)
	}
	oldAt := netip.MustParseAddrPort("127.0.0.1:" + itoaPort(mc))
	newAt := netip.MustParseAddrPort("127.0.0.2:" + itoaPort(mc))
	if p, _ := peerInfo(b, a.HIT()); p.Locator != oldAt {
		t.Fatalf("b sends to %v, want %v", p.Locator, oldAt)
	}
	mc.move()
	w.set("127.0.0.2")
	for i := 5; i < 25; i++ {
		ping(i)
		time.Sleep(20 * time.Millisecond)
	}
	defer func() {
		p, _ := peerInfo(b, a.HIT())
		t.Logf("b's locators for a: %+v; b paths %+v", p.Locators, b.Stats().Paths)
	}()
	waitFor(t, 5*time.Second, "b to follow a to its new address", func() bool {
		p, _ := peerInfo(b, a.HIT())
		if p.Locator != newAt || len(p.Locators) == 0 || p.Locators[0].State != "active" {
			return false
		}
		for _, l := range p.Locators {
			if l.Addr == oldAt {
				return false // withdrawn by the LOCATOR_SET (locators.go withdrawn)
			}
		}
		return true
	})
	ping(99)
	st := a.Stats().Paths
	p, _ := peerInfo(b, a.HIT())
	t.Logf("a announced %d time(s); b's locators for a: %+v", st.Announcements, p.Locators)
	if st.Announcements == 0 {
		t.Error("no LOCATOR_SET announcement")
	}
	if n := b.Stats().Paths.Switches; n != 1 {
		t.Errorf("b switched %d times, want 1", n)
	}
}

func itoaPort(m *movingConn) string {
	return strconv.Itoa(m.socks[0].LocalAddr().(*net.UDPAddr).Port)
}

// TestUnansweredProbeExpires: a probe that is never answered (a standby
// address the peer does not answer at) keeps the peer's path watched
// while an answer may still come, and not for the association's
// lifetime: after probeKeep its nonce is forgotten, and the quiet path
// goes idle (its Set and copies released, no more polling).
func TestUnansweredProbeExpires(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	dead := netip.MustParseAddrPort("127.0.0.1:9")
	a.AddPeer(b.HIT(), b.LocalAddr(), dead)
	exchange(t, a, b, 3, 100)
	p := a.lookupPeer(b.HIT())
	onControl := func(f func(c *control, now time.Time)) {
		done := make(chan struct{})
		a.cmds <- funcCmd(func(c *control, now time.Time) { f(c, now); close(done) })
		<-done
	}
	waitFor(t, 5*time.Second, "a probe to the dead standby", func() bool {
		var n int
		onControl(func(c *control, _ time.Time) {
			if p.path != nil {
				for _, r := range p.path.probes {
					if r.to == dead {
						n++
					}
				}
			}
		})
		return n > 0
	})
	// An answer that comes after probeKeep (an attacker held it back)
	// verifies nothing.
	var late bool
	onControl(func(c *control, now time.Time) {
		n, answered := len(p.path.probes), a.ctr.probesAnswered.Load()
		c.echoAnswered(p, now.Add(probeKeep+time.Second), p.path.probes[0].nonce[:], nil)
		late = len(p.path.probes) != n || a.ctr.probesAnswered.Load() != answered
	})
	if late {
		t.Fatal("an answer after probeKeep was taken")
	}
	var idle, kept bool
	onControl(func(c *control, now time.Time) {
		later := now.Add(probeKeep)
		c.feedPath(p, later) // what the data path did until now
		if p.path != nil {
			c.feedPath(p, later.Add(pathIdleAfter)) // then quiet
		}
		kept = p.path != nil && len(p.path.probes) > 0
		idle = p.pathIdle.Load()
	})
	if kept || !idle {
		t.Fatalf("after %v of quiet: probes kept %v, idle %v; want none kept, idle", probeKeep+pathIdleAfter, kept, idle)
	}
}
