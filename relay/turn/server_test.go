package turn

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"

	"hipnet.dev/handshake/wire"
)

// A registered HIT with fresh credentials allocates a relayed address on
// RelayIP, and a datagram goes out through it to a plain UDP socket and
// the reply comes back.
func TestRelayRoundTrip(t *testing.T) {
	s, _ := newTestServer(t, nil)
	user, pass := s.Credentials(hitA, time.Hour)
	relayed, err := allocate(t, newClient(t, s, user, pass))
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	raddr := relayed.LocalAddr().(*net.UDPAddr)
	if !raddr.IP.Equal(net.IPv4(127, 0, 0, 1)) || raddr.Port == 0 {
		t.Fatalf("relayed address %v, want 127.0.0.1:<port>", raddr)
	}

	peer := listenLoopback(t)
	defer peer.Close()
	if _, err := relayed.WriteTo([]byte("ping"), peer.LocalAddr()); err != nil {
		t.Fatalf("WriteTo through the relay: %v", err)
	}
	got, from := readWithin(t, peer, 3*time.Second)
	if string(got) != "ping" || from.String() != raddr.String() {
		t.Fatalf("peer got %q from %v, want \"ping\" from the relayed address %v", got, from, raddr)
	}
	if _, err := peer.WriteTo([]byte("pong"), from); err != nil {
		t.Fatal(err)
	}
	got, from = readWithin(t, relayed, 3*time.Second)
	if string(got) != "pong" || from.String() != peer.LocalAddr().String() {
		t.Fatalf("client got %q from %v, want \"pong\" from %v", got, from, peer.LocalAddr())
	}

	st := s.Stats()
	if st.Allocations != 1 || st.AllocationsTotal != 1 || st.AuthOK < 2 || st.AuthRefused != 0 {
		t.Fatalf("stats after relaying: %+v", st)
	}
	relayed.Close() // Refresh with LIFETIME 0 (RFC 8656 §8)
	waitFor(t, 2*time.Second, "the allocation to end", func() bool { return s.Stats().Allocations == 0 })
}

// Every way of presenting bad credentials makes Allocate fail with 401 and
// is counted in exactly its own counter.
func TestRefusedCredentials(t *testing.T) {
	later := testNow.Add(time.Hour)
	laterText := strconv.FormatInt(later.Unix(), 10)
	// signed is a username the test server's secret signs, so that only
	// its shape is wrong.
	signed := func(username string) func() (string, string) {
		return func() (string, string) { return username, passwordFor(testSecret, username) }
	}
	made := func(secret []byte, hit wire.HIT, expires time.Time) func() (string, string) {
		return func() (string, string) { return Credentials(secret, hit, expires) }
	}
	badMAC := func(st Stats) uint64 { return st.RefusedBadMAC }
	expired := func(st Stats) uint64 { return st.RefusedExpired }
	notRegistered := func(st Stats) uint64 { return st.RefusedNotRegistered }
	malformed := func(st Stats) uint64 { return st.RefusedMalformed }
	for _, tc := range []struct {
		name    string
		creds   func() (username, password string)
		counter func(Stats) uint64
	}{
		{"no credentials", func() (string, string) { return "", "" }, malformed},
		{"wrong password", func() (string, string) {
			u, _ := Credentials(testSecret, hitA, later)
			return u, "not-the-password"
		}, badMAC},
		{"other secret", made(bytes.Repeat([]byte{1}, 32), hitA, later), badMAC},
		{"HIT not allowed", made(testSecret, hitB, later), notRegistered},
		{"expired", made(testSecret, hitA, testNow.Add(-time.Second)), expired},
		{"expires now", made(testSecret, hitA, testNow), expired},
		{"no colon", signed(laterText), malformed},
		{"bad HIT", signed(laterText + ":2001:db8::1"), malformed},
		{"not a HIT", signed(laterText + ":hipnet"), malformed},
		{"non-canonical HIT", signed(laterText + ":2001:0020::a"), malformed},
		{"bad number", signed("18e8:" + hitA.String()), malformed},
		{"negative number", signed("-1:" + hitA.String()), malformed},
		{"number overflows", signed("99999999999999999999:" + hitA.String()), malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, nil)
			user, pass := tc.creds()
			_, err := allocate(t, newClient(t, s, user, pass))
			if code := turnCode(err); code != stun.CodeUnauthorized {
				t.Fatalf("Allocate as %q: %v, want 401 Unauthorized", user, err)
			}
			st := s.Stats()
			if n := tc.counter(st); n == 0 || st.AuthRefused != n || st.AuthOK != 0 || st.AllocationsTotal != 0 {
				t.Fatalf("stats: %+v", st)
			}
		})
	}
}

// A request without MESSAGE-INTEGRITY gets the 401 challenge with REALM and
// NONCE (RFC 8489 §9.2.4), allocates nothing and is not counted as a
// refusal.
func TestChallengeWithoutCredentials(t *testing.T) {
	s, _ := newTestServer(t, nil)
	conn := listenLoopback(t)
	defer conn.Close()
	req := stun.MustBuild(stun.TransactionID,
		stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}},
		stun.Fingerprint)
	if _, err := conn.WriteTo(req.Raw, s.Addr()); err != nil {
		t.Fatal(err)
	}
	raw, _ := readWithin(t, conn, 3*time.Second)
	res := &stun.Message{Raw: raw}
	if err := res.Decode(); err != nil {
		t.Fatal(err)
	}
	var code stun.ErrorCodeAttribute
	var realm stun.Realm
	var nonce stun.Nonce
	if res.Type != stun.NewType(stun.MethodAllocate, stun.ClassErrorResponse) ||
		code.GetFrom(res) != nil || code.Code != stun.CodeUnauthorized ||
		realm.GetFrom(res) != nil || realm.String() != s.Realm() || nonce.GetFrom(res) != nil {
		t.Fatalf("answer %v %v realm %q, want 401 with REALM %q and a NONCE", res, code, realm, s.Realm())
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("stats after a challenge: %+v", st)
	}
}

// Allowed is asked on every authenticated request: once the HIT leaves the
// registration, its allocation gets no new permission.
func TestAllowedOnEveryRequest(t *testing.T) {
	s, reg := newTestServer(t, nil)
	user, pass := s.Credentials(hitA, time.Hour)
	c := newClient(t, s, user, pass)
	if _, err := allocate(t, c); err != nil {
		t.Fatal(err)
	}
	reg.remove(hitA)
	peer := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	if err := c.CreatePermission(peer); err == nil {
		t.Fatal("CreatePermission for a HIT no longer registered succeeded")
	}
	if st := s.Stats(); st.RefusedNotRegistered == 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// Revoke ends a HIT's allocations at once.
func TestRevoke(t *testing.T) {
	s, _ := newTestServer(t, nil)
	user, pass := s.Credentials(hitA, time.Hour)
	if _, err := allocate(t, newClient(t, s, user, pass)); err != nil {
		t.Fatal(err)
	}
	if n := s.Revoke(hitB); n != 0 {
		t.Fatalf("Revoke(hitB) = %d, want 0", n)
	}
	if n := s.Revoke(hitA); n != 1 {
		t.Fatalf("Revoke(hitA) = %d, want 1", n)
	}
	if st := s.Stats(); st.Allocations != 0 || st.AllocationsTotal != 1 {
		t.Fatalf("stats after Revoke: %+v", st)
	}
	waitFor(t, 2*time.Second, "pion to delete the allocation", func() bool { return s.pion.AllocationCount() == 0 })
}

// MaxAllocations bounds the open allocations: with 1, a second client is
// refused with 508, and gets one once the first is released.
func TestMaxAllocations(t *testing.T) {
	s, _ := newTestServer(t, func(c *Config) { c.MaxAllocations = 1 })
	user, pass := s.Credentials(hitA, time.Hour)
	first, err := allocate(t, newClient(t, s, user, pass))
	if err != nil {
		t.Fatal(err)
	}
	_, err = allocate(t, newClient(t, s, user, pass))
	if code := turnCode(err); code != stun.CodeInsufficientCapacity {
		t.Fatalf("second Allocate: %v, want 508 Insufficient Capacity", err)
	}
	if st := s.Stats(); st.RefusedCapacity != 1 || st.Allocations != 1 {
		t.Fatalf("stats: %+v", st)
	}
	first.Close()
	waitFor(t, 2*time.Second, "the first allocation to end", func() bool { return s.Stats().Allocations == 0 })
	if _, err := allocate(t, newClient(t, s, user, pass)); err != nil {
		t.Fatalf("Allocate after the first was released: %v", err)
	}
}

// Only UDP in RelayIP's family is relayed: an IPv4 relay answers an Allocate
// for an IPv6 relayed address with 508.
func TestOtherFamilyRefused(t *testing.T) {
	s, _ := newTestServer(t, nil)
	user, pass := s.Credentials(hitA, time.Hour)
	_, err := allocate(t, newClientFamily(t, s, user, pass, pturn.RequestedAddressFamilyIPv6))
	if code := turnCode(err); code != stun.CodeInsufficientCapacity {
		t.Fatalf("Allocate for IPv6: %v, want 508 Insufficient Capacity", err)
	}
	if st := s.Stats(); st.RelayFailed != 1 || st.AllocationsTotal != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// A CreatePermission for a peer that PeerAllowed refuses gets 403.
func TestPeerAllowed(t *testing.T) {
	banned := netip.MustParseAddr("127.0.0.3")
	s, _ := newTestServer(t, func(c *Config) { c.PeerAllowed = func(p netip.Addr) bool { return p != banned } })
	user, pass := s.Credentials(hitA, time.Hour)
	c := newClient(t, s, user, pass)
	if _, err := allocate(t, c); err != nil {
		t.Fatal(err)
	}
	if err := c.CreatePermission(&net.UDPAddr{IP: banned.AsSlice(), Port: 9}); err == nil {
		t.Fatal("CreatePermission to a refused peer succeeded")
	}
	if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9}); err != nil {
		t.Fatalf("CreatePermission to an allowed peer: %v", err)
	}
	if st := s.Stats(); st.RefusedPeer != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestDefaultPeerPolicy(t *testing.T) {
	public := defaultPeerAllowed(netip.MustParseAddr("192.0.2.1"))
	for _, tc := range []struct {
		peer string
		want bool
	}{
		{"198.51.100.7", true},
		{"10.1.2.3", true},
		{"192.0.2.1", false}, // the relay itself
		{"127.0.0.1", false},
		{"::1", false},
	} {
		if got := public(netip.MustParseAddr(tc.peer)); got != tc.want {
			t.Errorf("relay 192.0.2.1, peer %s: %v, want %v", tc.peer, got, tc.want)
		}
	}
	if !defaultPeerAllowed(netip.MustParseAddr("127.0.0.1"))(netip.MustParseAddr("127.0.0.1")) {
		t.Error("a loopback relay refuses loopback peers")
	}

	s, _ := newTestServer(t, func(c *Config) { c.PeerAllowed = func(netip.Addr) bool { return true } })
	for _, ip := range []string{"0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"} {
		if s.permit(nil, net.ParseIP(ip)) {
			t.Errorf("peer %s permitted", ip)
		}
	}
	if !s.permit(nil, net.ParseIP("::ffff:198.51.100.7")) {
		t.Error("IPv4-mapped unicast peer refused")
	}
}

// Close closes the sockets of live allocations, is idempotent, and leaves
// no goroutine behind.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Run("serve", func(t *testing.T) {
		s, _ := newTestServer(t, nil)
		user, pass := s.Credentials(hitA, time.Hour)
		relayed, err := allocate(t, newClient(t, s, user, pass))
		if err != nil {
			t.Fatal(err)
		}
		peer := listenLoopback(t)
		defer peer.Close()
		if _, err := relayed.WriteTo([]byte("ping"), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		readWithin(t, peer, 3*time.Second)

		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if st := s.Stats(); st.Allocations != 0 {
			t.Fatalf("allocations after Close: %+v", st)
		}
		if _, ok := s.Addr().(*net.UDPAddr); !ok {
			t.Fatalf("Addr after Close: %v", s.Addr())
		}
	})
	settleGoroutines(t, base)
}

func TestNewServerConfig(t *testing.T) {
	conn := listenLoopback(t)
	defer conn.Close()
	relayIP := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no conn", Config{RelayIP: relayIP}},
		{"no relay IP", Config{Conn: conn}},
		{"unspecified relay IP", Config{Conn: conn, RelayIP: netip.IPv4Unspecified()}},
		{"multicast relay IP", Config{Conn: conn, RelayIP: netip.MustParseAddr("ff02::1")}},
		{"short secret", Config{Conn: conn, RelayIP: relayIP, Secret: []byte("hunter2")}},
		{"negative bound", Config{Conn: conn, RelayIP: relayIP, MaxAllocations: -1}},
		{"long realm", Config{Conn: conn, RelayIP: relayIP, Realm: string(bytes.Repeat([]byte("r"), 128))}},
	} {
		if _, err := NewServer(tc.cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: NewServer error %v, want ErrConfig", tc.name, err)
		}
	}

	// Zero values: random secret, default realm and bound, Allowed fails
	// closed.
	s, err := NewServer(Config{Conn: conn, RelayIP: relayIP})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Realm() != DefaultRealm || s.cfg.maxAllocations != DefaultMaxAllocations || len(s.cfg.secret) != 32 || bytes.Equal(s.cfg.secret, make([]byte, 32)) {
		t.Fatalf("defaults: realm %q, bound %d, secret %x", s.Realm(), s.cfg.maxAllocations, s.cfg.secret)
	}
	user, pass := s.Credentials(hitA, time.Hour)
	if _, err := allocate(t, newClient(t, s, user, pass)); err == nil {
		t.Fatal("Allocate succeeded with Allowed nil")
	}
	if st := s.Stats(); st.RefusedNotRegistered == 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// RelayListen opens the relayed sockets, on RelayIP in its family; when it
// fails, the Allocate gets 508.
func TestRelayListen(t *testing.T) {
	var (
		mu    sync.Mutex
		asked []string
		fail  bool
	)
	s, _ := newTestServer(t, func(c *Config) {
		c.RelayListen = func(network, addr string) (net.PacketConn, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, network+" "+addr)
			if fail {
				return nil, errors.New("no sockets today")
			}
			return net.ListenPacket(network, addr)
		}
	})
	user, pass := s.Credentials(hitA, time.Hour)
	if _, err := allocate(t, newClient(t, s, user, pass)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	_, err := allocate(t, newClient(t, s, user, pass))
	if code := turnCode(err); code != stun.CodeInsufficientCapacity {
		t.Fatalf("Allocate with RelayListen failing: %v, want 508", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || asked[0] != "udp4 127.0.0.1:0" || asked[1] != asked[0] {
		t.Fatalf("RelayListen calls %q, want two of \"udp4 127.0.0.1:0\"", asked)
	}
	if st := s.Stats(); st.RelayFailed != 1 || st.Allocations != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

// An IPv6 relay relays over IPv6.
func TestRelayIPv6(t *testing.T) {
	conn, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	s, _ := newTestServer(t, func(c *Config) {
		c.Conn.Close()
		c.Conn = conn
		c.RelayIP = netip.IPv6Loopback()
	})
	user, pass := s.Credentials(hitA, time.Hour)
	cconn, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cconn.Close()
	c, err := pturn.NewClient(&pturn.ClientConfig{
		TURNServerAddr: s.Addr().String(), Username: user, Password: pass, Conn: cconn,
		LoggerFactory: pionLoggers{testLogger(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := allocate(t, c)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	peer, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relayed.WriteTo([]byte("ping6"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got, from := readWithin(t, peer, 3*time.Second); string(got) != "ping6" || from.String() != relayed.LocalAddr().String() {
		t.Fatalf("peer got %q from %v, want \"ping6\" from %v", got, from, relayed.LocalAddr())
	}
}
