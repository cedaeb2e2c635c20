package hipgrpc

import (
	"context"
	"net"

	"google.golang.org/grpc"

	"hipnet.dev/hipnet"
)

// Dialer returns a dial option that opens every connection of a client
// as a stream through n: the address gRPC resolved, "[HIT]:port", goes to
// n.DialContext, which runs the base exchange first if needed. Any other
// address fails to dial; there is no fallback to plain TCP.
func Dialer(n *hipnet.Node) grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		return n.DialContext(ctx, "tcp", addr)
	})
}

// Target returns the target for grpc.NewClient that names port on the
// host hit: "passthrough:///[HIT]:port". The passthrough resolver hands
// the address to the dialer as written (see the package documentation).
func Target(hit hipnet.HIT, port int) string {
	return "passthrough:///" + (&hipnet.Addr{HIT: hit, Port: port}).String()
}
