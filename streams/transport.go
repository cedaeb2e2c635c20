package streams

import (
	"context"
	"log/slog"
	"net"

	"hipnet.dev/handshake/wire"
)

// Transport carries a node's streams between HITs: the Manager (QUIC over
// inner UDP, this package, the default) or a userspace TCP/IP stack over
// ESP in BEET mode (package streams/netstack). A stream's peer is always
// the HIT of the ESP security association its packets came in.
type Transport interface {
	// Dial opens a stream to port on peer. It is called without an
	// association first, and runs the base exchange (Env.Associate,
	// Config.Associate) as it needs to: the Manager before its QUIC
	// handshake, whose first packet needs the association's secret;
	// netstack beside its SYN.
	Dial(ctx context.Context, peer wire.HIT, port int) (net.Conn, error)
	// Listen accepts the streams to port (0: an ephemeral one).
	Listen(port int) (net.Listener, error)
	// Close ends every stream and listener.
	Close() error
}

var _ Transport = (*Manager)(nil)

// Link is what a transport with its own segments needs from the HIP
// stack below (overlay.Stack, adapted by package hipnet): BEET transport
// segments whose inner addresses are the two HITs, sealed in and opened
// from the ESP SAs.
type Link interface {
	LocalHIT() wire.HIT
	// WriteSegment seals seg, of IP protocol proto, in the SA with dst
	// and sends it (queued while a base exchange runs). It does not keep
	// seg.
	WriteSegment(dst wire.HIT, proto uint8, seg []byte) error
	// HandleSegments registers fn for inbound segments of proto; src is
	// the HIT the SA authenticated, seg valid during the call. A nil fn
	// removes it.
	HandleSegments(proto uint8, fn func(src wire.HIT, seg []byte))
}

// Env is what a Factory gets to build a node's Transport.
type Env struct {
	Link Link
	// Associate runs (or waits for) the base exchange with hit.
	Associate func(ctx context.Context, hit wire.HIT) error
	Logger    *slog.Logger
}

// Factory builds the stream transport of a node: hipnet.Config.Streams.
// netstack.Streams is one; nil means the Manager.
type Factory func(Env) (Transport, error)
