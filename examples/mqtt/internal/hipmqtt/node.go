package hipmqtt

import (
	"fmt"
	"io"
	"log/slog"
	"net"

	"hipnet.dev/hipnet"
)

// NodeOptions are what the broker and the device have in common: an
// identity file, a UDP address (or a socket, in tests), relays and the
// HITs they admit.
type NodeOptions struct {
	IdentityPath string
	Listen       string
	PacketConn   net.PacketConn // tests: a socket inside a network namespace; Listen is then ignored
	Relays       string         // "HIT@host:port[,...]" (ParseRelays)
	Allowed      map[hipnet.HIT]bool
	Logger       *slog.Logger
}

// StartNode loads (or creates, mode 0600) the identity and starts a node
// that registers with the relays and admits only Allowed (the relays are
// admitted by hipnet itself). It returns the relays as given.
func StartNode(o NodeOptions) (*hipnet.Node, []string, error) {
	relays, _, err := ParseRelays(o.Relays)
	if err != nil {
		return nil, nil, fmt.Errorf("-relay: %w", err)
	}
	id, err := hipnet.LoadOrCreateIdentity(o.IdentityPath)
	if err != nil {
		return nil, nil, err
	}
	node, err := hipnet.NewNode(hipnet.Config{
		Identity:   id,
		ListenAddr: o.Listen,
		PacketConn: o.PacketConn,
		Relays:     relays,
		Authorize:  func(peer hipnet.HIT) bool { return o.Allowed[peer] },
		Logger:     o.Logger.With("part", "hip"),
	})
	return node, relays, err
}

// NewLogger is the programs' text logger on w, at Debug when verbose.
func NewLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
