package relay

import (
	"log/slog"
	"net"
	"net/netip"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Config configures a relay. Identity is required; every other field has a
// documented zero value.
type Config struct {
	// Identity is the relay's host identity; clients name the relay by
	// its HIT ("HIT@host:port").
	Identity *hostid.PrivateKey

	// ListenAddr is the UDP address of HIP, ESP and STUN. Zero: ":10500".
	ListenAddr string

	// PacketConn, when set, replaces ListenAddr (tests).
	PacketConn net.PacketConn

	// Allow decides which authenticated hosts may register. Nil: any.
	Allow func(wire.HIT) bool

	// MaxRegistrations bounds the hosts registered at once. Zero: 100000.
	MaxRegistrations int

	// MinLifetime and MaxLifetime bound the registration lifetimes granted
	// (RFC 8003 §4.1; requests are clamped). Zero: 30 s and 1 hour.
	MinLifetime, MaxLifetime time.Duration

	// I1Rate bounds the I1s per second forwarded to one registered host.
	// Zero: 20.
	I1Rate float64

	// TURN, when set, also runs a TURN service (relay/turn) whose
	// credentials only registered hosts obtain.
	TURN *TURNConfig

	// Handshake overrides the HIP parameters (timeouts, retries, puzzle,
	// suites), as overlay.Config.Handshake; its Registrar is the relay's.
	Handshake handshake.Config

	// Logger receives the relay's logs. Nil discards.
	Logger *slog.Logger
}

// TURNConfig configures the TURN service.
type TURNConfig struct {
	// ListenAddr is its UDP address, e.g. ":3478".
	ListenAddr string
	// PacketConn, when set, replaces ListenAddr (tests).
	PacketConn net.PacketConn
	// RelayIP is the address put in XOR-RELAYED-ADDRESS: the relay's
	// public address. Required.
	RelayIP netip.Addr
	// CredentialLifetime is how long handed-out credentials stay valid.
	// Zero: 10 minutes.
	CredentialLifetime time.Duration
	// RelayListen opens the relayed sockets (turn.Config.RelayListen).
	// Nil: net.ListenPacket.
	RelayListen func(network, addr string) (net.PacketConn, error)
}

const (
	defaultListen           = ":10500"
	defaultMaxRegistrations = 100000
	defaultMinLifetime      = 30 * time.Second
	defaultMaxLifetime      = time.Hour
	defaultCredLifetime     = 10 * time.Minute
)
