package turn

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
	"unicode/utf8"

	"hipnet.dev/handshake/wire"
)

// Config configures a Server. Conn and RelayIP are required; every other
// field has a documented zero value.
type Config struct {
	// Conn is the UDP socket the server answers TURN on (e.g. :3478).
	// NewServer takes it over: Close closes it. If NewServer fails, Conn
	// is left open and stays the caller's.
	Conn net.PacketConn

	// Secret is the HMAC key of the credentials. Nil or empty: 32 random
	// bytes, so that only this process can issue credentials for it.
	// Otherwise it must be at least 32 bytes (the HMAC-SHA256 output
	// length, RFC 2104 §3); the Server keeps a copy.
	Secret []byte

	// Realm is the REALM of the long-term credentials (RFC 8489 §14.9:
	// fewer than 128 characters). Zero: "hipnet".
	Realm string

	// RelayIP is the address put in XOR-RELAYED-ADDRESS: the relay's
	// public address. Relayed sockets are opened on it (see RelayListen),
	// in its address family only. Required; it must be a unicast address
	// (not unspecified, not multicast). An IPv4-mapped IPv6 address is
	// taken as IPv4.
	RelayIP netip.Addr

	// Allowed reports whether hit is currently registered with the relay.
	// It is asked for every authenticated request (Allocate, Refresh,
	// CreatePermission, ChannelBind), from the server's read goroutine,
	// so it must be fast and safe for concurrent use. Nil: refuse all
	// (fail closed).
	Allowed func(hit wire.HIT) bool

	// PeerAllowed reports whether a client may install a permission (or
	// bind a channel) towards peer (RFC 8656 §10.2: 403 Forbidden
	// otherwise). Unspecified, multicast and IPv4 broadcast peers are
	// refused before it is asked. Nil: every other peer, except, unless
	// RelayIP is a loopback address, loopback peers and RelayIP itself, so
	// that the relay cannot be used to reach its own host.
	PeerAllowed func(peer netip.Addr) bool

	// Now is the clock credentials are checked and issued against. Nil:
	// time.Now.
	Now func() time.Time

	// Logger receives the server's events and pion/turn's own log lines
	// (pion's Trace, Debug and Info at slog.LevelDebug). Nil: discard.
	Logger *slog.Logger

	// MaxAllocations bounds the allocations (relayed sockets) open at
	// once; beyond it an Allocate is refused with 508 Insufficient
	// Capacity (RFC 8656 §7.2). Zero: 10000. Negative is an error.
	MaxAllocations int

	// RelayListen opens a relayed socket; it is called with network
	// "udp4" or "udp6" and addr RelayIP:port (port 0 unless the client
	// holds a RESERVATION-TOKEN or asked for EVEN-PORT). The port of the
	// returned socket's LocalAddr is put in XOR-RELAYED-ADDRESS, with
	// RelayIP. Nil: net.ListenPacket. Tests use it to open sockets inside
	// a network namespace.
	RelayListen func(network, addr string) (net.PacketConn, error)
}

// Defaults of Config.
const (
	DefaultRealm          = "hipnet"
	DefaultMaxAllocations = 10000
	minSecretLen          = 32
	maxRealmChars         = 127
)

// settings is a validated Config with its defaults filled in.
type settings struct {
	conn           net.PacketConn
	secret         []byte
	realm          string
	relayIP        netip.Addr
	allowed        func(wire.HIT) bool
	peerAllowed    func(netip.Addr) bool
	now            func() time.Time
	log            *slog.Logger
	maxAllocations int
	relayListen    func(network, addr string) (net.PacketConn, error)
}

func (c *Config) settings() (settings, error) {
	s := settings{
		conn:           c.Conn,
		realm:          c.Realm,
		relayIP:        c.RelayIP.Unmap(),
		allowed:        c.Allowed,
		peerAllowed:    c.PeerAllowed,
		now:            c.Now,
		log:            c.Logger,
		maxAllocations: c.MaxAllocations,
		relayListen:    c.RelayListen,
	}
	if s.conn == nil {
		return settings{}, fmt.Errorf("%w: Conn is nil", ErrConfig)
	}
	switch ip := s.relayIP; {
	case !ip.IsValid():
		return settings{}, fmt.Errorf("%w: RelayIP is required", ErrConfig)
	case ip.IsUnspecified(), ip.IsMulticast(), ip == broadcast4:
		return settings{}, fmt.Errorf("%w: RelayIP %v is not a unicast address", ErrConfig, ip)
	}
	switch n := len(c.Secret); {
	case n == 0:
		s.secret = make([]byte, minSecretLen)
		rand.Read(s.secret) // never fails (crypto/rand, Go 1.24)
	case n < minSecretLen:
		return settings{}, fmt.Errorf("%w: Secret has %d bytes, want at least %d", ErrConfig, n, minSecretLen)
	default:
		s.secret = append([]byte(nil), c.Secret...)
	}
	if s.realm == "" {
		s.realm = DefaultRealm
	}
	if !utf8.ValidString(s.realm) || utf8.RuneCountInString(s.realm) > maxRealmChars {
		return settings{}, fmt.Errorf("%w: Realm must be UTF-8 of at most %d characters", ErrConfig, maxRealmChars)
	}
	if s.allowed == nil {
		s.allowed = func(wire.HIT) bool { return false }
	}
	if s.peerAllowed == nil {
		s.peerAllowed = defaultPeerAllowed(s.relayIP)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case s.maxAllocations < 0:
		return settings{}, fmt.Errorf("%w: MaxAllocations %d is negative", ErrConfig, s.maxAllocations)
	case s.maxAllocations == 0:
		s.maxAllocations = DefaultMaxAllocations
	}
	if s.relayListen == nil {
		s.relayListen = net.ListenPacket
	}
	return s, nil
}
