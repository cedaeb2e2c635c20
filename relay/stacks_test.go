package relay

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/internal/testkey"
	"hipnet.dev/overlay"
)

// Helpers for the tests of the relay with its clients: plain overlay
// stacks, as a node runs them, around a Server.

// testKey returns the n-th cached ECDSA P-256 identity.
func testKey(t testing.TB, n int) *hostid.PrivateKey { return testkey.Key(t, n) }

// fastHandshake is a retransmission budget for tests: 50 ms doubling, 3
// retries (about 750 ms before giving up).
func fastHandshake() handshake.Config {
	return handshake.Config{RetransmitTimeout: 50 * time.Millisecond, Retries: 3, PuzzleDifficulty: 1}
}

// newTestStack starts a stack on 127.0.0.1:0 with identity n; mod may
// adjust the configuration. It is closed at the end of the test.
func newTestStack(t testing.TB, n int, mod func(*overlay.Config)) *overlay.Stack {
	t.Helper()
	cfg := overlay.Config{Identity: testKey(t, n), ListenAddr: "127.0.0.1:0", Handshake: fastHandshake()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := overlay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func listen(t testing.TB, s *overlay.Stack, port int) *overlay.InnerConn {
	t.Helper()
	c, err := s.ListenInner(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond for up to d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readOne reads one datagram with a timeout.
func readOne(t testing.TB, c *overlay.InnerConn, d time.Duration) ([]byte, *overlay.Addr) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, overlay.MaxPayload)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n], from.(*overlay.Addr)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// testRelay starts a relay with identity 9 on loopback, without TURN; mod
// may adjust the configuration. It is closed at the end of the test.
func testRelay(t testing.TB, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{Identity: testKey(t, 9), ListenAddr: "127.0.0.1:0", Handshake: fastHandshake()}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func peerInfo(s *overlay.Stack, h [16]byte) (overlay.PeerInfo, bool) {
	for _, p := range s.Peers() {
		if p.HIT == h {
			return p, true
		}
	}
	return overlay.PeerInfo{}, false
}

// reflexive returns the server-reflexive addresses s learnt from its
// relays' STUN service.
func reflexive(s *overlay.Stack) []netip.AddrPort {
	var out []netip.AddrPort
	for _, r := range s.Status().Relays {
		if r.Reflexive.IsValid() {
			out = append(out, r.Reflexive)
		}
	}
	return out
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return netip.AddrPortFrom(u.AddrPort().Addr().Unmap(), u.AddrPort().Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// pattern returns n octets that depend on seed.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7)
	}
	return b
}
