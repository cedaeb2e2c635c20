package nat

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// wait is how long a test waits for an event that should come much sooner.
const wait = 10 * time.Second

func waitSelected(t *testing.T, name string, r *result) netip.AddrPort {
	t.Helper()
	select {
	case a := <-r.selected:
		return a
	case <-r.failed:
		t.Fatalf("%s: onFailed, want onSelected", name)
	case <-time.After(wait):
		t.Fatalf("%s: no onSelected within %v", name, wait)
	}
	return netip.AddrPort{}
}

func waitFailed(t *testing.T, name string, r *result) {
	t.Helper()
	select {
	case <-r.failed:
	case a := <-r.selected:
		t.Fatalf("%s: onSelected(%v), want onFailed", name, a)
	case <-time.After(wait):
		t.Fatalf("%s: no onFailed within %v", name, wait)
	}
}

// pair runs a controlling session on a and a controlled one on b and
// returns them once both selected a pair.
func pair(t *testing.T, a, b *node, cfgA, cfgB SessionConfig) (*Session, *Session, time.Duration) {
	t.Helper()
	ra, rb := newResult(), newResult()
	start := time.Now()
	sa, err := a.mux.NewSession(cfgA, ra.onSelected, ra.onFailed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sa.Close() })
	sb, err := b.mux.NewSession(cfgB, rb.onSelected, rb.onFailed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Close() })
	gotA := waitSelected(t, "controlling", ra)
	gotB := waitSelected(t, "controlled", rb)
	took := time.Since(start)
	if gotA != b.addr {
		t.Errorf("controlling selected %v, want the controlled node's socket %v", gotA, b.addr)
	}
	if gotB != a.addr {
		t.Errorf("controlled selected %v, want the controlling node's socket %v", gotB, a.addr)
	}
	for name, s := range map[string]*Session{"controlling": sa, "controlled": sb} {
		got, ok := s.Selected()
		want := gotA
		if s == sb {
			want = gotB
		}
		if !ok || got != want {
			t.Errorf("%s: Selected() = %v, %v; want %v, true", name, got, ok, want)
		}
		if n := s.net.refused.Load(); n != 0 {
			t.Errorf("%s: pion tried to open %d sockets", name, n)
		}
	}
	return sa, sb, took
}

func TestSessionSelectsPair(t *testing.T) {
	a := newNode(t, "udp4", "127.0.0.1:0")
	b := newNode(t, "udp4", "127.0.0.1:0")
	// A candidate nobody listens on, before the working one.
	dead := newNode(t, "udp4", "127.0.0.1:0")
	deadAddr := dead.addr
	dead.close()
	cfgA := config(hitA, hitB, true, a, deadAddr, b.addr)
	cfgB := config(hitB, hitA, false, b, a.addr)
	sa, sb, took := pair(t, a, b, cfgA, cfgB)
	t.Logf("pair selected on both sides in %v", took)
	if took > DefaultTimeout/2 {
		t.Errorf("selection took %v, not well within the %v timeout", took, DefaultTimeout)
	}
	for name, s := range map[string]*Session{"controlling": sa, "controlled": sb} {
		st := s.Stats()
		if st.Sent == 0 || st.Delivered == 0 {
			t.Errorf("%s: stats %+v: nothing sent or delivered", name, st)
		}
		if st.DeliverDrops != 0 || st.SendDrops != 0 {
			t.Errorf("%s: stats %+v: drops", name, st)
		}
	}
}

// TestSessionDualStack: a session on a dual-stack socket ([::]) gets an
// IPv4 and an IPv6 host candidate and so checks IPv4 peers too (pion pairs
// only candidates of one family); the peer sees it at 127.0.0.1.
func TestSessionDualStack(t *testing.T) {
	d := newNode(t, "udp", "[::]:0")
	v4 := newNode(t, "udp4", "127.0.0.1:0")
	if d.addr.Addr() != netip.IPv6Unspecified() {
		t.Skipf("dual-stack socket is bound to %v", d.addr)
	}
	dLoop := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), d.addr.Port())
	unreachable := netip.AddrPortFrom(netip.IPv6Loopback(), v4.addr.Port()) // v4 listens on IPv4 only
	rd, r4 := newResult(), newResult()
	sd, err := d.mux.NewSession(config(hitA, hitB, false, d, unreachable, v4.addr), rd.onSelected, rd.onFailed)
	if err != nil {
		t.Fatal(err)
	}
	defer sd.Close()
	s4, err := v4.mux.NewSession(config(hitB, hitA, true, v4, dLoop), r4.onSelected, r4.onFailed)
	if err != nil {
		t.Fatal(err)
	}
	defer s4.Close()
	if got := waitSelected(t, "dual stack", rd); got != v4.addr {
		t.Errorf("dual-stack side selected %v, want %v", got, v4.addr)
	}
	if got := waitSelected(t, "IPv4", r4); got != dLoop {
		t.Errorf("IPv4 side selected %v, want %v", got, dLoop)
	}
	if sd.v4 == nil || sd.v6 == nil {
		t.Errorf("dual-stack side: IPv4 candidate %v, IPv6 candidate %v; want both", sd.v4 != nil, sd.v6 != nil)
	}
	if s4.v4 == nil || s4.v6 != nil {
		t.Errorf("IPv4 side: IPv4 candidate %v, IPv6 candidate %v; want IPv4 only", s4.v4 != nil, s4.v6 != nil)
	}
}

func TestSessionTimeout(t *testing.T) {
	a := newNode(t, "udp4", "127.0.0.1:0")
	silent := newNode(t, "udp4", "127.0.0.1:0") // reads and drops everything
	r := newResult()
	cfg := config(hitA, hitB, true, a, silent.addr)
	cfg.Timeout = 300 * time.Millisecond
	start := time.Now()
	s, err := a.mux.NewSession(cfg, r.onSelected, r.onFailed)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	waitFailed(t, "unanswered", r)
	if took := time.Since(start); took < cfg.Timeout {
		t.Errorf("onFailed after %v, before the %v timeout", took, cfg.Timeout)
	}
	if a, ok := s.Selected(); ok {
		t.Errorf("Selected() = %v after failure", a)
	}
	if s.Stats().Sent == 0 {
		t.Error("no check sent")
	}
}

// TestSessionWrongPassword: the peer's key differs, so every message
// fails MESSAGE-INTEGRITY on the other side and neither selects.
func TestSessionWrongPassword(t *testing.T) {
	a := newNode(t, "udp4", "127.0.0.1:0")
	b := newNode(t, "udp4", "127.0.0.1:0")
	ra, rb := newResult(), newResult()
	cfgA := config(hitA, hitB, true, a, b.addr)
	cfgB := config(hitB, hitA, false, b, a.addr)
	cfgB.Key = []byte("fedcba9876543210")
	cfgA.Timeout, cfgB.Timeout = time.Second, time.Second
	sa, err := a.mux.NewSession(cfgA, ra.onSelected, ra.onFailed)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := b.mux.NewSession(cfgB, rb.onSelected, rb.onFailed)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	waitFailed(t, "controlling", ra)
	waitFailed(t, "controlled", rb)
	if sa.Stats().Delivered == 0 || sb.Stats().Delivered == 0 {
		t.Errorf("the checks did not reach the sessions: %+v %+v", sa.Stats(), sb.Stats())
	}
}

func TestSessionConfigErrors(t *testing.T) {
	n := newNode(t, "udp4", "127.0.0.1:0")
	good := config(hitA, hitB, true, n)
	for name, mod := range map[string]func(*SessionConfig){
		"short key":      func(c *SessionConfig) { c.Key = c.Key[:15] },
		"no send":        func(c *SessionConfig) { c.Send = nil },
		"negative pace":  func(c *SessionConfig) { c.Pacing = -1 },
		"same HIT":       func(c *SessionConfig) { c.PeerHIT = c.LocalHIT },
		"negative limit": func(c *SessionConfig) { c.Timeout = -time.Second },
	} {
		cfg := good
		mod(&cfg)
		if s, err := NewSession(cfg, nil, nil); !errors.Is(err, ErrConfig) {
			if s != nil {
				s.Close()
			}
			t.Errorf("%s: err %v, want ErrConfig", name, err)
		}
	}
}

// settleGoroutines waits until no more goroutines run than before.
func settleGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sockets counts this process's open sockets (Linux), -1 if unknown.
func sockets() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// TestSessionCloseStops: sessions, connected or still checking, leave no
// goroutine behind after Close, and open no socket on the way.
func TestSessionCloseStops(t *testing.T) {
	a := newNode(t, "udp4", "127.0.0.1:0")
	b := newNode(t, "udp4", "127.0.0.1:0")
	silent := newNode(t, "udp4", "127.0.0.1:0")
	before, socks := runtime.NumGoroutine(), sockets()

	sa, sb, _ := pair(t, a, b, config(hitA, hitB, true, a, b.addr), config(hitB, hitA, false, b, a.addr))
	hitC := wire.MustParseHIT("2001:20::a:b:c:3")
	checking, err := a.mux.NewSession(config(hitA, hitC, true, a, silent.addr), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := sockets(); n != socks {
		t.Errorf("%d sockets open with sessions running, %d before", n, socks)
	}
	for _, s := range []*Session{sa, sb, checking} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil { // idempotent
			t.Fatal(err)
		}
	}
	settleGoroutines(t, before)
	if n := sockets(); n != socks {
		t.Errorf("%d sockets open after Close, %d before", n, socks)
	}
	// A closed session takes nothing, and its Mux forgot it.
	if sa.deliver(Keepalive(nil), b.addr) {
		t.Error("closed session took a packet")
	}
	if len(a.mux.sessions) != 0 {
		t.Errorf("mux still holds %d sessions", len(a.mux.sessions))
	}
}

// TestSessionNoCallbackAfterClose closes sessions around the moment they
// fail and checks that no callback starts once Close has returned.
func TestSessionNoCallbackAfterClose(t *testing.T) {
	a := newNode(t, "udp4", "127.0.0.1:0")
	silent := newNode(t, "udp4", "127.0.0.1:0")
	var late atomic.Int32
	for i := range 20 {
		var closed atomic.Bool
		cb := func() {
			if closed.Load() {
				late.Add(1)
			}
		}
		cfg := config(hitA, hitB, true, a, silent.addr)
		cfg.Timeout = 20 * time.Millisecond
		s, err := a.mux.NewSession(cfg, func(netip.AddrPort) { cb() }, cb)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i) * 2 * time.Millisecond) // spread Close around the timeout
		_ = s.Close()
		closed.Store(true)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("%d callbacks after Close returned", n)
	}
}
