package hipgrpc

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"hipnet.dev/hipnet"
)

// UnaryRequirePeer returns a server interceptor that lets a unary RPC
// through only if PeerHIT names its client and allowed accepts that HIT.
// It fails the RPC with codes.Unauthenticated when the peer has no HIT
// (not a hipnet connection) and codes.PermissionDenied when allowed
// refuses it, or is nil.
func UnaryRequirePeer(allowed func(hipnet.HIT) bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := authorize(ctx, allowed); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamRequirePeer is UnaryRequirePeer for streaming RPCs: it decides
// before the handler reads or writes a message.
func StreamRequirePeer(allowed func(hipnet.HIT) bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := authorize(ss.Context(), allowed); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func authorize(ctx context.Context, allowed func(hipnet.HIT) bool) error {
	hit, ok := PeerHIT(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "hipgrpc: the peer has no authenticated HIT")
	}
	if allowed == nil || !allowed(hit) {
		return status.Errorf(codes.PermissionDenied, "hipgrpc: peer %v is not allowed", hit)
	}
	return nil
}
