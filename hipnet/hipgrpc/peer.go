package hipgrpc

import (
	"context"

	"google.golang.org/grpc/peer"

	"hipnet.dev/hipnet"
)

// PeerHIT returns the HIT of the peer of the RPC whose context ctx is: in
// a server handler, the client. It reads the AuthInfo that Credentials
// made; failing that (a server with other credentials, or none, on a
// hipnet listener), the peer's address if it is a *hipnet.Addr, which
// only a Node's connection reports and whose HIT the base exchange
// authenticated. It returns false for a peer over anything else.
func PeerHIT(ctx context.Context) (hipnet.HIT, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p == nil {
		return hipnet.HIT{}, false
	}
	switch ai := p.AuthInfo.(type) {
	case AuthInfo:
		return ai.HIT, true
	case *AuthInfo:
		if ai != nil {
			return ai.HIT, true
		}
	}
	if a, ok := p.Addr.(*hipnet.Addr); ok && a != nil && !a.HIT.IsZero() {
		return a.HIT, true
	}
	return hipnet.HIT{}, false
}
