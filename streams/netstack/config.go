package netstack

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"hipnet.dev/handshake/wire"
)

// DefaultMTU is the MTU that sizes the segments to a peer whose path the
// Link cannot size (mss.go), and the interface MTU a Config may fix
// instead: the largest inner IPv6 packet, counting the 40-octet header
// that is stripped before the segment enters ESP. It leaves a TCP segment
// of 1288 octets, the size of the inner UDP datagram the QUIC transport
// sends at streams.PacketSize (its UDP header included), so both stream
// transports fit the same wire budget (streams/config.go has the
// arithmetic). netstack then advertises an MSS of 1268 and, keeping room
// for the largest TCP options (timestamps and SACK blocks), sends at most
// 1228 data octets in a segment of 1260.
const DefaultMTU = ipv6HeaderLen + 1288

// minMTU is the IPv6 minimum link MTU (RFC 8200 §5); netstack refuses an
// interface below it.
const minMTU = 1280

// Defaults for zero Config fields.
const (
	// DefaultSendBufferSize is each connection's send buffer. It bounds
	// what a Write may queue ahead of the peer's acknowledgements, so it
	// should cover the bandwidth-delay product of the path.
	DefaultSendBufferSize = 4 << 20
	// DefaultReceiveBufferSize is each connection's initial receive
	// buffer (its advertised window); netstack grows it with the
	// application's read rate (receive-buffer moderation, as Linux's
	// tcp_moderate_rcvbuf) up to MaxReceiveBufferSize.
	DefaultReceiveBufferSize = 1 << 20
	// DefaultMaxReceiveBufferSize is the ceiling of that growth.
	DefaultMaxReceiveBufferSize = 8 << 20
	// DefaultBacklog is the accept queue of each Listener (connections
	// that finished their handshake and wait for Accept), as Linux's
	// somaxconn.
	DefaultBacklog = 4096
	// DefaultCongestionControl is Reno, with SACK loss recovery
	// (transport.go, setTCPOptions, says why not RACK), and not CUBIC: in the gVisor version hipnet builds with
	// (go.mod), a CUBIC ACK can lower cwnd below one segment with no
	// congestion signal, and once cwnd is 0 with nothing in flight the
	// connection never sends again (no RTO is armed). A 2 % loss rate
	// triggers it within a megabyte (TestCongestionControl). gVisor fixed
	// it upstream ("tcp: prevent CUBIC ACKs from reducing cwnd", google/
	// gvisor#13958, RFC 9438 §4.2); once go.mod has that fix, make this
	// "cubic".
	DefaultCongestionControl = "reno"
	// DefaultKeepAlive is the idle time before TCP keep-alive probes, and
	// their interval, as in package net's Dialer and ListenConfig.
	DefaultKeepAlive = 15 * time.Second
)

// bufferMin is the smallest buffer netstack accepts.
const bufferMin = 4 << 10

// Config configures a Transport. The zero value is ready to use.
type Config struct {
	// Logger receives debug records (dropped packets, link errors). Nil
	// means slog.Default().
	Logger *slog.Logger

	// MTU of the interface, IPv6 header included: at least 1280, at most
	// 65535, and every segment fits it. Zero sizes each connection's
	// segments by its path instead, when the Link can say how long a
	// segment the path carries (hipnet's can: mss.go); DefaultMTU
	// otherwise. Raise it only when every path's outer MTU has room for
	// it after ESP, UDP and IP.
	MTU int

	// SendBufferSize, ReceiveBufferSize and MaxReceiveBufferSize are per
	// connection, in octets; zero means the default above. At least 4096.
	SendBufferSize       int
	ReceiveBufferSize    int
	MaxReceiveBufferSize int

	// CongestionControl is "reno" or "cubic"; empty means
	// DefaultCongestionControl (read its comment before choosing cubic).
	CongestionControl string

	// Backlog is each Listener's accept queue; zero means DefaultBacklog.
	Backlog int

	// KeepAlive is the TCP keep-alive idle time and probe interval of
	// every connection; zero means DefaultKeepAlive and a negative value
	// turns keep-alives off. Nine unanswered probes end the connection.
	// Probes are ESP traffic, so they keep the HIP association in use.
	KeepAlive time.Duration

	// AckDelay is how long the bare ACK of a small segment (a request)
	// may wait for a segment of the same connection to carry it (the
	// answer), as a kernel's delayed ACK (delack.go); zero means
	// DefaultAckDelay, a negative value sends every ACK at once.
	AckDelay time.Duration

	// Associate, if set, is called by Dial, on a goroutine of its own,
	// beside its SYN (which the Link queues while the base exchange
	// runs), unless the Link reports the association up (a Link with a
	// method Live(wire.HIT) bool, as hipnet's has). It runs (or waits
	// for) the base exchange with hit and returns when the association is
	// established or has failed, so that a Dial to an unknown or
	// unreachable peer fails with the overlay's error rather than after
	// TCP's SYN retries. Without it the first SYN goes to
	// Link.WriteSegment, which may start the exchange itself.
	Associate func(ctx context.Context, hit wire.HIT) error
}

// interfaceMTU is the MTU of netstack's interface: Config.MTU, or the
// largest IPv6 packet when each connection's path sizes its segments.
func (cfg Config) interfaceMTU() int {
	if cfg.MTU != 0 {
		return cfg.MTU
	}
	return maxSegment
}

// fallbackMSS is the MSS of a connection whose path the Link cannot size:
// Config.MTU's, or DefaultMTU's, less the IPv6 and TCP headers.
func (cfg Config) fallbackMSS() int {
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	return mtu - ipv6HeaderLen - tcpMinHeaderLen
}

// withDefaults returns cfg with its zero fields set, or an error for a
// value netstack would refuse.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MTU != 0 && (cfg.MTU < minMTU || cfg.MTU > maxSegment) {
		return cfg, fmt.Errorf("netstack: MTU %d outside %d..%d", cfg.MTU, minMTU, maxSegment)
	}
	defaults := []struct {
		v   *int
		def int
	}{
		{&cfg.SendBufferSize, DefaultSendBufferSize},
		{&cfg.ReceiveBufferSize, DefaultReceiveBufferSize},
		{&cfg.MaxReceiveBufferSize, max(DefaultMaxReceiveBufferSize, cfg.ReceiveBufferSize)},
		{&cfg.Backlog, DefaultBacklog},
	}
	for _, d := range defaults {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	for _, v := range []int{cfg.SendBufferSize, cfg.ReceiveBufferSize, cfg.MaxReceiveBufferSize} {
		if v < bufferMin {
			return cfg, fmt.Errorf("netstack: buffer size %d below %d", v, bufferMin)
		}
	}
	if cfg.MaxReceiveBufferSize < cfg.ReceiveBufferSize {
		return cfg, fmt.Errorf("netstack: MaxReceiveBufferSize %d below ReceiveBufferSize %d",
			cfg.MaxReceiveBufferSize, cfg.ReceiveBufferSize)
	}
	if cfg.Backlog < 1 {
		return cfg, fmt.Errorf("netstack: backlog %d", cfg.Backlog)
	}
	switch cfg.CongestionControl {
	case "":
		cfg.CongestionControl = DefaultCongestionControl
	case "reno", "cubic":
	default:
		return cfg, fmt.Errorf("netstack: unknown congestion control %q", cfg.CongestionControl)
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.AckDelay == 0 {
		cfg.AckDelay = DefaultAckDelay
	}
	return cfg, nil
}
