package hipgrpc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"hipnet.dev/hipnet"
	"hipnet.dev/hipnet/hipgrpc"
)

const port = 50051

// newNode starts a node with a fresh identity on an ephemeral loopback
// UDP port, closed at the end of the test.
func newNode(t *testing.T) *hipnet.Node {
	t.Helper()
	id, err := hipnet.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	n, err := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// knows makes client know server's locator.
func knows(client, server *hipnet.Node) { client.AddPeer(server.HIT(), server.LocalAddr()) }

// serveHealth serves grpc's health service on n's stream port, with the
// service "svc" SERVING.
func serveHealth(t *testing.T, n *hipnet.Node, opts ...grpc.ServerOption) *health.Server {
	t.Helper()
	ln, err := n.Listen("tcp", ":50051")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(opts...)
	hs := health.NewServer()
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return hs
}

// dial returns a health client to target through n with hipgrpc's
// credentials.
func dial(t *testing.T, n *hipnet.Node, target string, opts ...grpc.DialOption) healthpb.HealthClient {
	t.Helper()
	opts = append([]grpc.DialOption{hipgrpc.Dialer(n), grpc.WithTransportCredentials(hipgrpc.Credentials())}, opts...)
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// seen records the HIT PeerHIT gives each RPC on the server.
type seen struct{ hits chan hipnet.HIT }

func newSeen() *seen { return &seen{hits: make(chan hipnet.HIT, 16)} }

func (s *seen) record(ctx context.Context) {
	h, ok := hipgrpc.PeerHIT(ctx)
	if !ok {
		h = hipnet.HIT{}
	}
	s.hits <- h
}

func (s *seen) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		s.record(ctx)
		return h(ctx, req)
	}
}

func (s *seen) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		s.record(ss.Context())
		return h(srv, ss)
	}
}

func (s *seen) next(t *testing.T) hipnet.HIT {
	t.Helper()
	select {
	case h := <-s.hits:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("no RPC reached the server")
		return hipnet.HIT{}
	}
}
