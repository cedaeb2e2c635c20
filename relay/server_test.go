package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	pturn "github.com/pion/turn/v5"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

func key(t testing.TB) *hostid.PrivateKey {
	t.Helper()
	k, err := hostid.Generate(hostid.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRelay(t testing.TB, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{Identity: key(t), ListenAddr: "127.0.0.1:0",
		TURN: &TURNConfig{ListenAddr: "127.0.0.1:0", RelayIP: netip.MustParseAddr("127.0.0.1")}}
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

func newHost(t testing.TB, r *Server, register bool) *overlay.Stack {
	t.Helper()
	cfg := overlay.Config{Identity: key(t), ListenAddr: "127.0.0.1:0",
		Handshake: handshake.Config{RetransmitTimeout: 50 * time.Millisecond, Retries: 3}}
	if register {
		cfg.Relays = []overlay.RelayAddr{{HIT: r.HIT(), Addr: r.Addr()}}
	}
	st, err := overlay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !register {
		st.AddPeer(r.HIT(), r.Addr())
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestTURNOnlyForRegistered: a registered host gets TURN credentials over
// HIP and allocates with them; a host with an association but no
// registration is refused credentials; an allocation without valid
// credentials is refused.
func TestTURNOnlyForRegistered(t *testing.T) {
	r := newRelay(t, nil)
	reg := newHost(t, r, true)
	waitFor(t, 5*time.Second, "registration", func() bool { return r.Stats().Registrations == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	creds, err := RequestCredentials(ctx, reg, r.HIT())
	if err != nil {
		t.Fatal(err)
	}
	turnAddr := net.JoinHostPort("127.0.0.1", itoa(int(creds.Port)))
	if _, err := allocate(t, turnAddr, creds.Username, creds.Password); err != nil {
		t.Fatalf("registered host's allocation: %v", err)
	}

	other := newHost(t, r, false)
	if _, err := RequestCredentials(ctx, other, r.HIT()); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("unregistered host got credentials: %v", err)
	}
	if _, err := allocate(t, turnAddr, "1:2001:20::1", "guess"); err == nil {
		t.Fatal("allocation with made-up credentials succeeded")
	}
	if _, err := allocate(t, turnAddr, "", ""); err == nil {
		t.Fatal("unauthenticated allocation succeeded")
	}
	st := r.Stats()
	if st.CredsIssued != 1 || st.CredsRefused != 1 || st.TURN.AuthRefused == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAllowList: a host outside the allow-list is refused registration.
func TestAllowList(t *testing.T) {
	r := newRelay(t, func(c *Config) { c.Allow = func(wire.HIT) bool { return false }; c.TURN = nil })
	h := newHost(t, r, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.Register(ctx, r.HIT(), time.Hour, wire.RegTypeRelayUDPHIP)
	if !errors.Is(err, overlay.ErrRegistrationRefused) {
		t.Fatalf("register: %v", err)
	}
	if st := r.Stats(); st.Registrations != 0 || st.RefusedPolicy != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestMaxRegistrations: beyond the bound, registration fails with
// insufficient resources.
func TestMaxRegistrations(t *testing.T) {
	r := newRelay(t, func(c *Config) { c.MaxRegistrations = 1; c.TURN = nil })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, b := newHost(t, r, false), newHost(t, r, false)
	if _, err := a.Register(ctx, r.HIT(), time.Hour, wire.RegTypeRelayUDPHIP); err != nil {
		t.Fatal(err)
	}
	reg, err := b.Register(ctx, r.HIT(), time.Hour, wire.RegTypeRelayUDPHIP)
	if !errors.Is(err, overlay.ErrRegistrationRefused) || len(reg.Failed) == 0 || reg.Failed[0].FailureType != wire.RegFailureInsufficientResources {
		t.Fatalf("second registration: %+v %v", reg, err)
	}
	if st := r.Stats(); st.RefusedFull != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func allocate(t *testing.T, server, user, pass string) (net.PacketConn, error) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c, err := pturn.NewClient(&pturn.ClientConfig{TURNServerAddr: server, STUNServerAddr: server, Username: user, Password: pass, Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	relayed, err := c.Allocate()
	if err == nil {
		t.Cleanup(func() { relayed.Close() })
	}
	return relayed, err
}

func itoa(n int) string { return strconv.Itoa(n) }
