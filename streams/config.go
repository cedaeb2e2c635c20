package streams

import (
	"context"
	"log/slog"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// PacketSize is the size of the QUIC packets of a connection whose path the
// PacketConn cannot size (pmtu.go): the payload of every inner UDP
// datagram it writes. Over an *overlay.InnerConn on Linux a connection
// takes its path's size instead, from 1200 to 1452 octets. QUIC needs at
// least 1200 octets for an Initial packet (RFC 9000 §14.1).
//
// What a packet costs on the wire (RFC 4303 §2, RFC 3948 §2.1, RFC 7402
// App. B), worst case over the ESP suites hipnet offers:
//
//	QUIC packet                                   1350
//	inner UDP header                           +     8   = 1358
//	ESP trailer (pad length, next header)      +     2   = 1360
//	padding: AES-CBC to 16 octets (GCM: to 4)  +     0   = 1360
//	ESP header (SPI, sequence number)          +     8
//	IV: AES-CBC 16 (GCM 8)                     +    16
//	ICV: HMAC-SHA-256-128 or GCM tag           +    16   = 1400
//	outer UDP (RFC 3948 encapsulation)         +     8   = 1408
//	outer IPv6 header (IPv4: 20)               +    40   = 1448
//
// It assumes an Ethernet-class underlay (1500) and leaves 52 octets of it
// for whatever else wraps the packet: a TURN Send indication (36 octets
// for an IPv6 peer address), PPPoE (8), or both. (No QUIC packet fits the
// 1280-octet IPv6 minimum MTU under ESP: the smallest QUIC allows, 1200
// octets, becomes 1292 on the wire with AES-GCM.)
//
// Measured (hipnet BenchmarkThroughput, three runs each, December 2026):
// bulk over one stream went from 0.66× quic-go on its own sockets at 1280
// octets to 0.73× at 1350; the per-packet costs (QUIC's and ESP's AEAD
// calls, the inner UDP, the hand-offs) dominate, so fewer packets pay. On
// loopback 1452 octets (quic-go's largest, which its own path MTU
// discovery reaches there) gave 0.83–0.84× against 0.73–0.78× at 1350 in
// the same runs: the size a connection to a peer on this host now takes.
const PacketSize = 1350

// Defaults for a nil Config.QUIC.
const (
	DefaultKeepAlivePeriod    = 10 * time.Second
	DefaultMaxIdleTimeout     = 30 * time.Second
	DefaultMaxIncomingStreams = 1024
)

// DefaultPort is the inner UDP port the stream endpoint of a node is bound
// to when the PacketConn given to New does not say (its LocalAddr is not an
// *overlay.Addr with a port) and Config.PeerPort is zero. Every node binds
// its stream endpoint to the same reserved port, so a Manager dials the
// port it is bound to itself.
const DefaultPort = 0xFFFE

// Config configures a Manager. Identity and PeerIdentity are required.
type Config struct {
	// Identity is this node's host identity. Its key is the key of the
	// QUIC TLS certificate (see doc.go).
	Identity *hostid.PrivateKey

	// PeerIdentity returns the Host Identity the HIP base exchange
	// authenticated for the association with hit, and false when there is
	// no such association (yet). It is called on every QUIC handshake, on
	// both sides, and must be safe for concurrent use.
	PeerIdentity func(hit wire.HIT) (*hostid.PublicKey, bool)

	// Secret, if set, returns a secret of SecretSize octets that both
	// ends of the current HIP association with hit compute identically
	// and only they know (the overlay's Stack.AssociationSecret, exported
	// from the association's Diffie-Hellman keying material), and false
	// when there is none. With it, the QUIC handshake with hit
	// authenticates by that secret as a TLS 1.3 pre-shared key instead of
	// by certificates (psk.go): no certificate, no signature, one ephemeral
	// Diffie-Hellman exchange. When either end has no secret (or one of
	// another size), or the two secrets differ, the handshake uses
	// certificates, as without Secret. It is called on every QUIC
	// handshake, on both sides, and must be safe for concurrent use. The
	// Manager does not modify the slice, and keeps it only for the
	// handshake.
	Secret func(hit wire.HIT) ([]byte, bool)

	// Associate, if set, is called by Dial when PeerIdentity does not know
	// the peer, or when the PacketConn reports that the association with
	// it cannot carry data (it closed; see New): it runs (or waits for) the
	// base exchange with hit and returns when the association is
	// established or has failed. Without it, Dial to a peer with no
	// association fails with an error wrapping overlay.ErrUnknownPeer. The
	// client needs the peer's key before its QUIC handshake starts, to
	// build the root its TLS verifier trusts.
	Associate func(ctx context.Context, hit wire.HIT) error

	// AssociateKeyed, if set with Associate, lets a Dial start its QUIC
	// handshake during the base exchange: it returns as soon as the
	// association's keys exist (Secret and PeerIdentity answer for hit,
	// and the PacketConn queues writes to hit until the association can
	// carry them; the overlay's Stack.ConnectKeyed), or with the error.
	// The handshake's first packets are then ready when the exchange
	// completes, instead of being built after it. Associate still runs
	// beside the handshake, and its error fails the Dial.
	AssociateKeyed func(ctx context.Context, hit wire.HIT) error

	// PeerPort is the inner UDP port of the peers' stream endpoints. Zero
	// means the port of the PacketConn's LocalAddr, or DefaultPort.
	PeerPort int

	// QUIC is the quic-go configuration. Nil means the package defaults:
	// DefaultKeepAlivePeriod, DefaultMaxIdleTimeout,
	// DefaultMaxIncomingStreams, no unidirectional streams, PacketSize.
	// A non-nil Config is cloned and used as it is, except that path MTU
	// discovery is turned off, 0-RTT on (early.go: a server whose stream
	// limits are below earlyLimits refuses it, which costs its clients the
	// round trip it saves) and GetConfigForClient is ignored. A zero
	// InitialPacketSize lets each connection take its path's size
	// (pmtu.go); a non-zero one fixes every connection's.
	QUIC *quic.Config

	// Logger receives connection events (up, down, failed dials,
	// retries) at Debug level. Nil discards them.
	Logger *slog.Logger
}

// quicConfig returns the quic.Config of every connection of the Manager.
func (c *Config) quicConfig() *quic.Config {
	var q *quic.Config
	if c.QUIC == nil {
		q = &quic.Config{
			KeepAlivePeriod:       DefaultKeepAlivePeriod,
			MaxIdleTimeout:        DefaultMaxIdleTimeout,
			MaxIncomingStreams:    DefaultMaxIncomingStreams,
			MaxIncomingUniStreams: -1,
		}
	} else {
		q = c.QUIC.Clone()
	}
	if q.InitialPacketSize == 0 {
		q.InitialPacketSize = PacketSize
	}
	q.DisablePathMTUDiscovery = true
	q.Allow0RTT = true // early.go
	q.GetConfigForClient = nil
	return q
}
