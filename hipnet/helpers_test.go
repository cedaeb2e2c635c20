package hipnet

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"hipnet.dev/streams"
	"hipnet.dev/streams/netstack"
)

// newTestNode starts a node on an ephemeral loopback port.
func newTestNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	if cfg.Identity == nil {
		id, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		cfg.Identity = id
	}
	if cfg.ListenAddr == "" && cfg.PacketConn == nil {
		cfg.ListenAddr = "127.0.0.1:0"
	}
	if cfg.Streams == nil {
		cfg.Streams = benchStreamsFactory(t) // -hipnet.streams (bench_test.go)
	}
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// pairNodes returns a client that knows the server's locator.
func pairNodes(t testing.TB, ccfg, scfg Config) (client, server *Node) {
	server = newTestNode(t, scfg)
	client = newTestNode(t, ccfg)
	client.AddPeer(server.HIT(), server.LocalAddr())
	return client, server
}

func addrOf(n *Node, port int) string { return (&Addr{HIT: n.HIT(), Port: port}).String() }

// echoServer accepts streams on port and echoes them.
func echoServer(t testing.TB, n *Node, port int) net.Listener {
	t.Helper()
	ln, err := n.Listen("tcp", ":"+itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

func itoa(i int) string { return strconv.Itoa(i) }

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// randomBytes returns n deterministic pseudo-random octets.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// settleGoroutines waits for the goroutine count to fall to at most base.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	buf = buf[:runtime.Stack(buf, true)]
	t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf)
}

// lossyConn is a net.PacketConn over a real UDP socket that drops,
// duplicates and reorders datagrams it sends, with a seeded RNG.
type lossyConn struct {
	net.PacketConn
	mu      sync.Mutex
	rng     *rand.Rand
	loss    float64
	dup     float64
	reorder float64
	held    []heldPkt
}

type heldPkt struct {
	b    []byte
	addr net.Addr
}

func newLossy(t testing.TB, seed uint64, loss, dup, reorder float64) *lossyConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &lossyConn{PacketConn: pc, rng: rand.New(rand.NewPCG(seed, 1)), loss: loss, dup: dup, reorder: reorder}
}

func (l *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	l.mu.Lock()
	drop := l.rng.Float64() < l.loss
	dup := l.rng.Float64() < l.dup
	hold := l.rng.Float64() < l.reorder
	var release []heldPkt
	if hold && len(l.held) < 8 {
		l.held = append(l.held, heldPkt{append([]byte(nil), b...), addr})
		drop = true
	} else if len(l.held) > 0 {
		release, l.held = l.held, nil
	}
	l.mu.Unlock()
	if !drop {
		l.PacketConn.WriteTo(b, addr)
		if dup {
			l.PacketConn.WriteTo(b, addr)
		}
	}
	// Held packets go out after this one: reordered.
	for _, h := range release {
		l.PacketConn.WriteTo(h.b, h.addr)
	}
	return len(b), nil
}

// ownLoopback returns a UDP listen address of its own in 127/8 for the
// i-th of many nodes, where the system has them (Linux routes all of
// 127/8 to loopback), else 127.0.0.1:0: so that the many look like many
// hosts to a responder's limits per address.
func ownLoopback(i int) string {
	a := fmt.Sprintf("127.0.%d.%d:0", 1+i/250, 2+i%250)
	if pc, err := net.ListenPacket("udp", a); err == nil {
		pc.Close()
		return a
	}
	return "127.0.0.1:0"
}

// streamTransports are the stream transports tests run on: QUIC (the
// default, Config.Streams nil) and netstack's TCP.
var streamTransports = []struct {
	name string
	f    streams.Factory
}{{"quic", nil}, {"netstack", netstack.Streams}}

// listenPacket is n.ListenPacket("udp", addr) for a test: it fails tb on
// an error and closes the PacketConn when tb ends.
func listenPacket(tb testing.TB, n *Node, addr string) net.PacketConn {
	tb.Helper()
	pc, err := n.ListenPacket("udp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { pc.Close() })
	return pc
}
