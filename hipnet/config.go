package hipnet

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"hipnet.dev/hipnet/resolve"
	"hipnet.dev/streams"
)

// Config configures a Node. Only Identity is required.
type Config struct {
	// Identity is the node's key pair; its HIT names the node.
	Identity *Identity

	// ListenAddr is the UDP address of the node's one socket, for HIP
	// control and ESP alike. Default ":10500" (RFC 5770 §5.1); use ":0"
	// for an ephemeral port.
	ListenAddr string

	// Peers are static locators: the UDP addresses where peers' HITs can
	// be reached. More can be added with Node.AddPeer.
	Peers map[HIT][]netip.AddrPort

	// PeerHosts are static locators written "host:port", as HIPNET_PEERS
	// and the CLI's -peer take them: a host name is resolved by NewNode
	// with the system resolver into one locator per address (a dial tries
	// them in turn), an IP address is taken as it is. NewNode fails on one
	// it cannot resolve. They add to Peers.
	PeerHosts map[HIT][]string

	// Authorize decides which authenticated peers may associate. It runs
	// once per base exchange, after the peer proved its identity and
	// before any of its data reaches the application. nil admits every
	// authenticated peer. The Relays are admitted without asking it. A
	// peer that refuses us makes DialContext fail with ErrNotAuthorized.
	Authorize func(peer HIT) bool

	// Logger receives the node's structured logs; nil discards them.
	Logger *slog.Logger

	// KeyLog, if set, receives one line per ESP security association in
	// the format of Wireshark's esp_sa file, so captures can be decrypted
	// for debugging. It exposes every key: never set it in production.
	KeyLog io.Writer

	// STUNServer makes the node answer STUN Binding Requests (RFC 8489) on
	// its UDP port, as a relay does, so that peers behind NATs learn the
	// public address their HIP socket is mapped to.
	STUNServer bool

	// PacketConn, if set, is used instead of opening ListenAddr: a socket
	// the application prepared, or a wrapper for testing. The Node closes
	// it on Close.
	PacketConn net.PacketConn

	// Relays are the HIP relays (cmd/hip-relay) the node registers with,
	// each "HIT@host:port" or "host:port" as ParseRelay reads it (and
	// Relay.String writes it); NewNode fails on one it cannot parse or
	// resolve. With the HIT the relay is authenticated; without it the
	// relay's HIT is learnt from its R1 (the opportunistic mode of RFC
	// 7401 §4.1.8, which trusts whoever answers at that address) and
	// logged. The node registers at start, refreshes before expiry,
	// registers again after a relay restart and sends NAT keepalives; a
	// peer that registered with the same relay can then dial this node by
	// its HIT alone, and this node dials HITs with no known locator
	// through the relay. Traffic starts on the relay and moves to a direct
	// path when ICE finds one (Node.Peers shows which; Node.Status shows
	// the registrations).
	Relays []string

	// KeepaliveInterval is the period of NAT keepalives (RFC 5770 §4.7):
	// STUN requests to the relays, and ESP dummy packets on associations
	// that sent nothing for that long, so that a peer behind a NAT stays
	// reachable by the peer it dialled. Default 15 s; shorter behind NATs
	// that forget mappings sooner.
	KeepaliveInterval time.Duration

	// IdleTimeout closes an association that carried no application data
	// in either direction for this long, with CLOSE and CLOSE_ACK (RFC
	// 7401 §4.4.1, the Unused Association Lifetime); the next dial makes
	// a new one. Keepalives are not data. Zero means 15 minutes; a
	// negative value disables it.
	IdleTimeout time.Duration

	// DisableAddrWatch turns off the watching of this host's addresses:
	// by default a node whose ListenAddr is unspecified (":10500") follows
	// its own addresses (netlink on Linux, polling elsewhere) and, when
	// they change, announces them to its peers in an UPDATE (RFC 8046
	// §5.2), so that a move from one network to another keeps its
	// connections. A node bound to one address (ListenAddr, or a
	// PacketConn bound to one) has nothing to watch. On Linux the watch
	// follows the network namespace of the thread that called NewNode.
	DisableAddrWatch bool

	// Streams chooses the transport of the node's streams (Dial "tcp",
	// Listen). Nil: QUIC over the association (package streams), whose
	// connections are keyed from the association (no second public-key
	// handshake) and multiplex every stream to a peer without
	// head-of-line blocking. netstack.Streams (package streams/netstack)
	// runs TCP in a userspace TCP/IP stack (gVisor) over ESP in BEET mode,
	// the HITs as its IPv6 addresses: no cryptographic handshake at all,
	// TCP's semantics, and gVisor linked only into binaries that name it.
	// Both ends of a stream must use the same transport.
	Streams streams.Factory

	// Resolver turns the names of Dial addresses ("device42:8883",
	// "device42.example.com:8883") into HITs and locators: a hosts file,
	// DNS HIP records (RFC 8005), or a resolve.Chain of them (package
	// hipnet/resolve). Nil: addresses must hold a HIT. A name is a claim,
	// not a proof: the base exchange then authenticates the peer by the
	// HIT the name gave, and RemoteAddr shows that HIT, never the name.
	Resolver resolve.Resolver
}

// DefaultPort is the UDP port of HIP over UDP (RFC 5770 §5.1).
const DefaultPort = 10500
