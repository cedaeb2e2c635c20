package streams

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// testPort is the inner port of the stream endpoints in the tests.
const testPort = 7

// loopPC stands in for the overlay's stream endpoint: a real UDP socket on
// 127.0.0.1 whose peers are named by HIT. It maps each *overlay.Addr to
// the peer's socket and back, as the overlay maps HITs to associations.
type loopPC struct {
	c       *net.UDPConn
	self    *overlay.Addr
	blocked atomic.Bool // drop every datagram written, as a dead path does
	// divert, if set, sees every datagram written first and takes it
	// (true) or lets it go.
	divert atomic.Pointer[func(b []byte, to wire.HIT) bool]
	// path is what MaxDatagram reports (0: not known); largest is the
	// longest datagram written.
	path, largest atomic.Int64

	mu     sync.Mutex
	byHIT  map[wire.HIT]*net.UDPAddr
	byAddr map[string]wire.HIT
}

func newLoopPC(t testing.TB, self wire.HIT) *loopPC {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return &loopPC{
		c:      c,
		self:   &overlay.Addr{HIT: self, Port: testPort},
		byHIT:  make(map[wire.HIT]*net.UDPAddr),
		byAddr: make(map[string]wire.HIT),
	}
}

// admit makes the datagrams from ua come from hit, and those to hit go to
// ua, as an association with hit would.
func (p *loopPC) admit(hit wire.HIT, ua *net.UDPAddr) {
	p.mu.Lock()
	p.byHIT[hit] = ua
	p.byAddr[ua.String()] = hit
	p.mu.Unlock()
}

// connect lets a and b reach each other.
func connect(a, b *loopPC) {
	link := func(x, y *loopPC) {
		ua := y.c.LocalAddr().(*net.UDPAddr)
		x.mu.Lock()
		x.byHIT[y.self.HIT] = ua
		x.byAddr[ua.String()] = y.self.HIT
		x.mu.Unlock()
	}
	link(a, b)
	link(b, a)
}

func (p *loopPC) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, ua, err := p.c.ReadFromUDP(b)
		if err != nil {
			return 0, nil, err
		}
		p.mu.Lock()
		h, ok := p.byAddr[ua.String()]
		p.mu.Unlock()
		if ok { // anything else did not come through an association
			return n, &overlay.Addr{HIT: h, Port: testPort}, nil
		}
	}
}

func (p *loopPC) WriteTo(b []byte, addr net.Addr) (int, error) {
	a, ok := addr.(*overlay.Addr)
	if !ok {
		return 0, errors.New("loopPC: not an *overlay.Addr")
	}
	p.mu.Lock()
	ua := p.byHIT[a.HIT]
	p.mu.Unlock()
	if ua == nil {
		return 0, overlay.ErrUnknownPeer
	}
	if p.blocked.Load() {
		return len(b), nil
	}
	if f := p.divert.Load(); f != nil && (*f)(b, a.HIT) {
		return len(b), nil
	}
	for n := int64(len(b)); n > p.largest.Load(); {
		if p.largest.CompareAndSwap(p.largest.Load(), n) {
			break
		}
	}
	return p.c.WriteToUDP(b, ua)
}

// MaxDatagram answers as the overlay does when it knows the path (pmtu.go).
func (p *loopPC) MaxDatagram(wire.HIT) (int, bool) {
	n := int(p.path.Load())
	return n, n > 0
}

func (p *loopPC) Close() error                       { return p.c.Close() }
func (p *loopPC) LocalAddr() net.Addr                { return p.self }
func (p *loopPC) SetDeadline(t time.Time) error      { return p.c.SetDeadline(t) }
func (p *loopPC) SetReadDeadline(t time.Time) error  { return p.c.SetReadDeadline(t) }
func (p *loopPC) SetWriteDeadline(t time.Time) error { return p.c.SetWriteDeadline(t) }

// Test identities, generated once: ECDSA keys are cheap, RSA ones not.
var (
	idOnce sync.Once
	ids    []*hostid.PrivateKey
)

func testIdentities(t testing.TB) (a, b, other *hostid.PrivateKey) {
	t.Helper()
	idOnce.Do(func() {
		for range 3 {
			k, err := hostid.Generate(hostid.ECDSAP256, nil)
			if err != nil {
				panic(err)
			}
			ids = append(ids, k)
		}
	})
	return ids[0], ids[1], ids[2]
}

// directory answers PeerIdentity from a fixed table, like the
// association table after base exchanges.
type directory struct {
	mu      sync.Mutex
	keys    map[wire.HIT]*hostid.PublicKey
	secrets map[wire.HIT][]byte
}

func (d *directory) set(h wire.HIT, k *hostid.PublicKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.keys == nil {
		d.keys = make(map[wire.HIT]*hostid.PublicKey)
	}
	d.keys[h] = k
}

func (d *directory) lookup(h wire.HIT) (*hostid.PublicKey, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k, ok := d.keys[h]
	return k, ok
}

// setSecret sets (nil: removes) the association secret with h.
func (d *directory) setSecret(h wire.HIT, s []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.secrets == nil {
		d.secrets = make(map[wire.HIT][]byte)
	}
	if s == nil {
		delete(d.secrets, h)
		return
	}
	d.secrets[h] = s
}

// secret is Config.Secret.
func (d *directory) secret(h wire.HIT) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.secrets[h]
	return s, ok
}

// node is one side of a test pair.
type node struct {
	m   *Manager
	hit wire.HIT
	pc  *loopPC
	dir *directory
}

// newPair starts two Managers with identities ka and kb over loopback
// UDP; each one's PeerIdentity knows the other's public key, and both
// have the same association secret (their QUIC handshakes use the PSK).
// opts change both Configs. Both are closed when the test ends.
func newPair(t testing.TB, ka, kb *hostid.PrivateKey, opts ...func(*Config)) (a, b *node) {
	t.Helper()
	a = newNode(t, ka, opts...)
	b = newNode(t, kb, opts...)
	connect(a.pc, b.pc)
	a.dir.set(b.hit, kb.Public())
	b.dir.set(a.hit, ka.Public())
	secret := make([]byte, SecretSize)
	rand.Read(secret)
	a.dir.setSecret(b.hit, secret)
	b.dir.setSecret(a.hit, secret)
	return a, b
}

// newCertPair is newPair without secrets: the QUIC handshakes use
// certificates.
func newCertPair(t testing.TB, ka, kb *hostid.PrivateKey, opts ...func(*Config)) (a, b *node) {
	t.Helper()
	a, b = newPair(t, ka, kb, opts...)
	a.dir.setSecret(b.hit, nil)
	b.dir.setSecret(a.hit, nil)
	return a, b
}

// acceptFirst listens on port of m and delivers the first stream its
// listener accepts.
func acceptFirst(t testing.TB, m *Manager, port int) <-chan net.Conn {
	t.Helper()
	l, err := m.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	return accepted
}

// newNode starts a Manager with identity k; opts may change its Config.
func newNode(t testing.TB, k *hostid.PrivateKey, opts ...func(*Config)) *node {
	t.Helper()
	n := &node{hit: wire.HIT(k.HIT()), dir: &directory{}}
	n.pc = newLoopPC(t, n.hit)
	cfg := Config{Identity: k, PeerIdentity: n.dir.lookup, Secret: n.dir.secret}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := New(n.pc, n.hit, cfg)
	if err != nil {
		n.pc.Close()
		t.Fatal(err)
	}
	n.m = m
	t.Cleanup(func() { m.Close() })
	return n
}

// echo serves l: every stream gets back what it sends, then EOF.
// echoOn listens on port of n and echoes every stream.
func echoOn(t testing.TB, n *node, port int) net.Listener {
	t.Helper()
	l, err := n.m.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, l)
	return l
}

func echo(t testing.TB, l net.Listener) {
	t.Helper()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						c.(interface{ CloseWrite() error }).CloseWrite()
						return
					}
				}
			}()
		}
	}()
}

func dialCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// settleGoroutines waits until the number of goroutines is at most n.
func settleGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= n {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", got, n, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
