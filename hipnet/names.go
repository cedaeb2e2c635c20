package hipnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"hipnet.dev/hipnet/resolve"
	"hipnet.dev/overlay"
)

// resolveAddr parses a Dial address: `[HIT]:port`, or `name:port` when
// Config.Resolver knows the name. The name's locators, and then its
// rendezvous servers', are added to the peer's (AddPeer), so that the
// dial can reach it; its HIT is what the base exchange then
// authenticates.
func (n *Node) resolveAddr(ctx context.Context, address string) (*overlay.Addr, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if h, err := ParseHIT(host); err == nil {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("bad port %q", port)
		}
		return &overlay.Addr{HIT: h, Port: int(p)}, nil
	}
	if n.names == nil {
		return nil, &hitError{fmt.Errorf("%w: %q (and no Config.Resolver for names)", ErrBadHIT, host)}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", port)
	}
	rec, err := n.names.Resolve(ctx, host)
	if err != nil {
		if errors.Is(err, resolve.ErrNotFound) {
			return nil, fmt.Errorf("%w: %w", ErrUnknownPeer, err)
		}
		return nil, err
	}
	// The host's own locators first, then its rendezvous servers': an I1
	// to an RVS is forwarded to the host, which answers directly (RFC
	// 8004 §4; overlay rendezvous.go).
	if locs := append(rec.Locators, rec.RVSLocators...); len(locs) > 0 {
		n.stack.AddPeer(rec.HIT, locs...)
	}
	return &overlay.Addr{HIT: rec.HIT, Port: int(p)}, nil
}
