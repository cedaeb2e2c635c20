package turn

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"

	"hipnet.dev/handshake/wire"
)

// testSecret is the Config.Secret of the test servers, so that tests can
// make credentials with the package-level Credentials too.
var testSecret = bytes.Repeat([]byte{0x5a}, 32)

// testNow is the clock of the test servers: a whole second, so that the
// expiry boundary is exact.
var testNow = time.Unix(1_800_000_000, 0)

var (
	hitA = wire.MustParseHIT("2001:20::a")
	hitB = wire.MustParseHIT("2001:2a:1234::b")
)

// registry is a concurrency-safe Config.Allowed.
type registry struct {
	mu   sync.Mutex
	hits map[wire.HIT]bool
}

func newRegistry(hits ...wire.HIT) *registry {
	r := &registry{hits: make(map[wire.HIT]bool)}
	for _, h := range hits {
		r.hits[h] = true
	}
	return r
}

func (r *registry) allowed(h wire.HIT) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[h]
}

func (r *registry) remove(h wire.HIT) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.hits, h)
}

// testLogger logs to the test with TURN_TEST_LOG=1, and discards otherwise.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TURN_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func listenLoopback(t testing.TB) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newTestServer starts a Server on loopback with testSecret, testNow and
// hitA registered; edit may change the Config first.
func newTestServer(t testing.TB, edit func(*Config)) (*Server, *registry) {
	t.Helper()
	reg := newRegistry(hitA)
	cfg := Config{
		Conn:    listenLoopback(t),
		Secret:  testSecret,
		RelayIP: netip.MustParseAddr("127.0.0.1"),
		Allowed: reg.allowed,
		Now:     func() time.Time { return testNow },
		Logger:  testLogger(t),
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		cfg.Conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, reg
}

// newClient returns a listening pion TURN client of s on its own loopback
// socket, closed at the end of the test.
func newClient(t testing.TB, s *Server, username, password string) *pturn.Client {
	t.Helper()
	return newClientFamily(t, s, username, password, 0)
}

// newClientFamily is newClient asking for a relayed address in family
// (zero: the family of the client's socket, IPv4).
func newClientFamily(t testing.TB, s *Server, username, password string, family pturn.RequestedAddressFamily) *pturn.Client {
	t.Helper()
	conn := listenLoopback(t)
	c, err := pturn.NewClient(&pturn.ClientConfig{
		TURNServerAddr:         s.Addr().String(),
		STUNServerAddr:         s.Addr().String(),
		Username:               username,
		Password:               password,
		Conn:                   conn,
		RequestedAddressFamily: family,
		LoggerFactory:          pionLoggers{testLogger(t).With("side", "client")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		conn.Close()
	})
	return c
}

// allocate allocates with c and closes the relayed conn at the end of the
// test (before the client, cleanups run last-in first-out).
func allocate(t testing.TB, c *pturn.Client) (net.PacketConn, error) {
	t.Helper()
	relayed, err := c.Allocate()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { relayed.Close() })
	return relayed, nil
}

// turnCode returns the ERROR-CODE of a TURN error response, or 0.
func turnCode(err error) stun.ErrorCode {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return te.ErrorCodeAttr.Code
	}
	return 0
}

// readWithin reads one datagram from c within d.
func readWithin(t testing.TB, c net.PacketConn, d time.Duration) ([]byte, net.Addr) {
	t.Helper()
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(d))
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read on %v: %v", c.LocalAddr(), err)
	}
	return buf[:n], from
}

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// settleGoroutines waits until at most base goroutines run, and fails with
// their stacks otherwise.
func settleGoroutines(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
