package overlay

import (
	"io"
	"log/slog"
	"net"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/locator"
)

// Config configures a Stack. Identity is required; every other field has a
// documented zero value.
type Config struct {
	// Identity is the node's host identity; its HIT names the node.
	Identity *hostid.PrivateKey

	// ListenAddr is the UDP address of the node's one socket, e.g.
	// ":10500" or "127.0.0.1:0". Empty means ":10500" (DESIGN.md). It is
	// ignored when PacketConn is set.
	ListenAddr string

	// PacketConn, when set, is used instead of opening a socket (tests wrap
	// a UDP socket in a lossy link). The Stack owns it from New on and
	// closes it in Close. Reads and writes are batched (recvmmsg/sendmmsg)
	// only when it is a *net.UDPConn.
	PacketConn net.PacketConn

	// Authorize decides which authenticated peers may hold an association.
	// Nil admits every authenticated peer. The relays of Relays are
	// admitted without asking it. It is called when an I2
	// authenticates an Initiator and when an R1 authenticates a Responder
	// (on the control goroutine), and, since a HIT names one identity, also
	// before a base exchange is started by Connect or by a WriteTo that
	// queues, so that nothing is sent to a refused peer. It must be fast
	// and safe for concurrent use. A refused Initiator gets no association
	// (its I2 is answered with a signed NOTIFY BLOCKED_BY_POLICY); a refused
	// Responder fails Connect with ErrNotAuthorized. Either way none of the
	// peer's data reaches the application.
	Authorize func(peer wire.HIT) bool

	// Logger receives the stack's structured logs (stable messages such as
	// "bex established", "bex failed", "peer closed", "drop"; drops at
	// Debug). Nil discards.
	Logger *slog.Logger

	// KeyLog, when set, receives one line of Wireshark's esp_sa file per
	// installed SA, both directions (esp.AppendWiresharkSA). It holds key
	// material: for debugging only.
	KeyLog io.Writer

	// Handshake overrides the HIP parameters (timeouts, retries, puzzle,
	// suites). Its Identity is filled from Identity; AllocateSPI, when nil,
	// is the stack's allocator, which keeps inbound SPIs unique.
	Handshake handshake.Config

	// STUNServer makes the node a STUN binding server on its UDP port (RFC
	// 8489; the relay's service for server-reflexive candidates, RFC 5770
	// §4.2): a Binding Request arriving on the socket is answered from the
	// read loop, statelessly and without allocating, with a Binding Success
	// Response carrying the request's source address as XOR-MAPPED-ADDRESS
	// and a FINGERPRINT (RFC 5770 §5.3), or a 420 error response if it
	// holds a comprehension-required attribute the server does not know.
	// False: requests are counted in Drops.STUN and dropped.
	// Stack.STUNBinding, the client, works either way.
	STUNServer bool

	// QueueLimit bounds the datagrams queued per peer while its base
	// exchange runs. Zero means 64. Beyond it WriteTo returns ErrQueueFull:
	// a write is never dropped silently.
	QueueLimit int

	// Forwarder, when set, makes the stack a relay server: it is handed
	// the packets that reach the socket but are not addressed to us
	// (forwarder.go; package relay implements it, with
	// Handshake.Registrar deciding who is served). Nil: a plain node.
	Forwarder Forwarder

	// Relays are the relays this node registers with at start (RFC 8003,
	// RFC 5770 §4.1), refreshes and keeps alive (relayclient.go), and
	// through which it reaches peers without a known locator.
	Relays []RelayAddr

	// RekeyAfter is how many ESP packets one outbound SA seals before the
	// stack rekeys it by UPDATE (RFC 7402 §3.3.2, §6.8; esp.Config.RekeyAfter):
	// a lower value bounds what one key protects. Zero means
	// esp.DefaultRekeyAfter, which keeps every sequence number unique.
	RekeyAfter uint64

	// RekeyInterval and RekeyBytes rekey an association's SAs, by UPDATE
	// with a new Diffie-Hellman exchange, when its outbound SA is that old
	// or has carried that many payload octets (rekeying.go). Zero means
	// DefaultRekeyInterval (1 h) and DefaultRekeyBytes (64 GiB); a
	// negative value disables the rule.
	RekeyInterval time.Duration
	RekeyBytes    int64

	// KeepaliveInterval is how often a node sends NAT keepalives (RFC
	// 5770 §4.7: 15 s, the default): STUN requests to its relays, which
	// also tell it whether they restarted, and ESP dummy packets on the
	// idle direct paths and ICE pairs of its associations (locators.go).
	KeepaliveInterval time.Duration

	// IdleTimeout closes, with CLOSE and CLOSE_ACK, an association that
	// carried no application data in either direction for this long (RFC
	// 7401 §4.4.1, the Unused Association Lifetime; idle.go). Keepalives,
	// probes and rekeys are not data. Zero means DefaultIdleTimeout (15
	// min); a negative value disables it. Associations with relays, and
	// those of a relay server, never idle out.
	IdleTimeout time.Duration

	// Locator sets the timing of path-failure detection and failover for
	// the associations, direct or through a relay (package locator; zero
	// fields: its defaults, a failover within a second). Its
	// KeepaliveInterval defaults to KeepaliveInterval above.
	Locator locator.Config

	// WatchAddrs, when set, reports this host's usable addresses and
	// when they change (a Wi-Fi to LTE move, a renumbering): the stack
	// announces them to its peers in an UPDATE with LOCATOR_SET (RFC 8046
	// §5.2; mobility.go). Nil: no watching, no announcements (package
	// hipnet sets it to a netlink or polling monitor).
	WatchAddrs AddrWatcher
}

const (
	defaultListenAddr = ":10500"
	defaultQueueLimit = 64

	// closeWait bounds how long Close waits for CLOSE_ACKs.
	closeWait = time.Second
	// inboxLen is the receive queue of an InnerConn, in datagrams.
	inboxLen = 256
	// controlBacklog is how many control packets may wait for the control
	// goroutine before the read loop drops more.
	controlBacklog = 256
	// readBatch is how many datagrams one recvmmsg may return.
	readBatch = 8

	// maxDatagram is the largest UDP payload the socket reads.
	maxDatagram = 65535
	// MaxPayload is the largest inner datagram WriteTo accepts: the outer
	// IPv4 UDP payload limit (65507) less the inner UDP header and the
	// largest ESP overhead of the supported suites (header, IV, padding,
	// trailer, ICV: at most 58 octets).
	MaxPayload = 65507 - 8 - 58
	// MaxSegment is the largest transport segment WriteSegment accepts: it
	// takes the place of the inner UDP header and datagram.
	MaxSegment = MaxPayload + 8
)

func (c *Config) queueLimit() int {
	if c.QueueLimit > 0 {
		return c.QueueLimit
	}
	return defaultQueueLimit
}

func (c *Config) listenAddr() string {
	if c.ListenAddr == "" {
		return defaultListenAddr
	}
	return c.ListenAddr
}
