package hipnet

import (
	"context"
	"fmt"
)

// Up waits until the node is reachable as configured: every relay of
// Config.Relays holds its registration, so that peers can dial the node
// by its HIT alone. With no relays it returns nil at once (the socket has
// been open since NewNode). When ctx ends first it returns an error that
// wraps ctx.Err() (a deadline is a net.Error whose Timeout is true) and
// says, relay by relay, why the node is not reachable: the registration
// failed (and how), the relay was lost, or no answer came yet. It returns
// ErrClosed if the node is closed or closes meanwhile. Registration goes on in the
// background whatever Up returns.
func (n *Node) Up(ctx context.Context) error {
	if err := n.stack.WaitReachable(ctx); err != nil {
		return fmt.Errorf("hipnet: not reachable: %w", err)
	}
	return nil
}
