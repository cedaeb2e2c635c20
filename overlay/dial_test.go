package overlay

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// i1Log is a stack's UDP socket that notes where each I1 it sends goes.
type i1Log struct {
	net.PacketConn
	mu sync.Mutex
	to []netip.AddrPort
}

func newI1Log(t *testing.T) *i1Log {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &i1Log{PacketConn: pc}
}

func (l *i1Log) WriteTo(b []byte, to net.Addr) (int, error) {
	// A control packet: the non-ESP marker, then the HIP header.
	if len(b) > 8 && b[0]|b[1]|b[2]|b[3] == 0 && wire.PacketType(b[6]&0x7f) == wire.I1 {
		l.mu.Lock()
		l.to = append(l.to, addrPortOf(to))
		l.mu.Unlock()
	}
	return l.PacketConn.WriteTo(b, to)
}

// mark returns how many I1s were sent so far; since(mark) those after.
func (l *i1Log) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.to)
}

func (l *i1Log) since(mark int) []netip.AddrPort {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]netip.AddrPort(nil), l.to[mark:]...)
}

// silentAddr is a UDP socket's address where nothing answers.
func silentAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return addrPortOf(c.LocalAddr())
}

// firstI1 checks that the first I1 sent after mark went to want.
func firstI1(t *testing.T, l *i1Log, mark int, want netip.AddrPort) {
	t.Helper()
	got := l.since(mark)
	if len(got) == 0 || got[0] != want {
		t.Fatalf("I1s after AddPeer went to %v; want the first to %v", got, want)
	}
}

// connectAsync runs a.Connect(h), with 5 s to complete, in the
// background; its result arrives on the channel.
func connectAsync(a *Stack, h wire.HIT) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- a.Connect(ctx, h)
	}()
	return done
}

// TestAddPeerDuringDial: a locator given while the dial waits in I1-SENT on
// one where nothing answers gets the I1 at once, and the dial completes
// there, within the retransmissions that would otherwise all go to the
// silent one.
func TestAddPeerDuringDial(t *testing.T) {
	a, b := newTestStack(t, 0, nil), newTestStack(t, 1, nil)
	a.AddPeer(b.HIT(), silentAddr(t))
	done := connectAsync(a, b.HIT())
	time.Sleep(30 * time.Millisecond) // the first I1 has gone to the silent address
	a.AddPeer(b.HIT(), b.LocalAddr())
	if err := <-done; err != nil {
		t.Fatalf("Connect: %v", err)
	}
}

// TestAddPeerAfterFailedDial: after a dial to a silent locator failed,
// AddPeer's new first locator is where the next dial starts.
func TestAddPeerAfterFailedDial(t *testing.T) {
	log := newI1Log(t)
	a := newTestStack(t, 0, func(c *Config) { c.PacketConn = log })
	b := newTestStack(t, 1, nil)
	a.AddPeer(b.HIT(), silentAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.HIT()); err == nil {
		t.Fatal("a dial to a silent locator succeeded")
	}
	m := log.mark()
	a.AddPeer(b.HIT(), b.LocalAddr())
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}
	firstI1(t, log, m, b.LocalAddr())
}

// TestAddPeerThenWrite: AddPeer and, at once, a write that starts the base
// exchange (pokeConnect, served before AddPeer's poke): the exchange
// starts at the new first locator.
func TestAddPeerThenWrite(t *testing.T) {
	log := newI1Log(t)
	a := newTestStack(t, 0, func(c *Config) { c.PacketConn = log })
	b := newTestStack(t, 1, nil)
	a.AddPeer(b.HIT(), silentAddr(t))
	barrier(t, a)
	la, lb := listen(t, a, 7), listen(t, b, 8)
	m := log.mark()
	a.AddPeer(b.HIT(), b.LocalAddr())
	if _, err := la.WriteTo([]byte("hi"), &Addr{HIT: b.HIT(), Port: 8}); err != nil {
		t.Fatal(err)
	}
	if got, _ := readOne(t, lb, 5*time.Second); string(got) != "hi" {
		t.Fatalf("b read %q", got)
	}
	firstI1(t, log, m, b.LocalAddr())
}

// TestAddPeerTwoDuringDial: of two locators given during a dial, the
// first gets the I1 at once and the second dialAttemptDelay later, though
// the dial began with a single locator and had no next one planned.
func TestAddPeerTwoDuringDial(t *testing.T) {
	a, b := newTestStack(t, 0, nil), newTestStack(t, 1, nil)
	a.AddPeer(b.HIT(), silentAddr(t))
	done := connectAsync(a, b.HIT())
	time.Sleep(30 * time.Millisecond)
	a.AddPeer(b.HIT(), silentAddr(t), b.LocalAddr())
	if err := <-done; err != nil {
		t.Fatalf("Connect: %v", err)
	}
}

// TestAddPeerDuringAssociation: an AddPeer while an association is up
// gives standby locators; the address the association learnt (here from
// the peer's I2, as from a NAT mapping) stays where the next dial starts
// once it has ended. Before, the stale configured address replaced it and
// the redial failed.
func TestAddPeerDuringAssociation(t *testing.T) {
	a := newTestStack(t, 0, func(c *Config) { c.IdleTimeout = 400 * time.Millisecond })
	b := newTestStack(t, 1, nil)
	b.AddPeer(a.HIT(), a.LocalAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.HIT()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a established", func() bool { return a.Live(b.HIT()) })
	a.AddPeer(b.HIT(), silentAddr(t))
	barrier(t, a)
	waitFor(t, 5*time.Second, "idle close", func() bool { return !a.Live(b.HIT()) })
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatalf("redial: %v", err)
	}
}
