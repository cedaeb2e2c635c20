package hipgrpc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"hipnet.dev/hipnet"
	"hipnet.dev/hipnet/hipgrpc"
)

// A unary RPC over hipnet reaches the server, which sees the client's
// HIT, for each form of target the package documentation promises.
func TestUnary(t *testing.T) {
	server, client := newNode(t), newNode(t)
	knows(client, server)
	s := newSeen()
	serveHealth(t, server, grpc.Creds(hipgrpc.Credentials()), grpc.UnaryInterceptor(s.unary()))

	addr := (&hipnet.Addr{HIT: server.HIT(), Port: port}).String()
	for _, target := range []string{
		hipgrpc.Target(server.HIT(), port),
		addr,             // grpc.NewClient's default, dns, passes an IP literal through
		"dns:///" + addr, // the same, spelt out
	} {
		t.Run(target, func(t *testing.T) {
			hc := dial(t, client, target)
			var p peer.Peer
			resp, err := hc.Check(ctxT(t, 10*time.Second), &healthpb.HealthCheckRequest{Service: "svc"}, grpc.Peer(&p))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("status %v", resp.Status)
			}
			if got := s.next(t); got != client.HIT() {
				t.Fatalf("server saw %v, want the client %v", got, client.HIT())
			}
			// The client's side: the server's HIT, authenticated.
			ai, ok := p.AuthInfo.(hipgrpc.AuthInfo)
			if !ok || ai.HIT != server.HIT() || ai.Addr.Port != port || ai.AuthType() != "hip" {
				t.Fatalf("client's AuthInfo %#v", p.AuthInfo)
			}
			if ai.SecurityLevel != credentials.PrivacyAndIntegrity {
				t.Fatalf("security level %v", ai.SecurityLevel)
			}
		})
	}
}

// A server-streaming RPC (Watch) delivers updates, and its handler sees
// the client's HIT too.
func TestStreaming(t *testing.T) {
	server, client := newNode(t), newNode(t)
	knows(client, server)
	s := newSeen()
	hs := serveHealth(t, server, grpc.Creds(hipgrpc.Credentials()), grpc.StreamInterceptor(s.stream()))

	hc := dial(t, client, hipgrpc.Target(server.HIT(), port))
	w, err := hc.Watch(ctxT(t, 10*time.Second), &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	want := func(st healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		resp, err := w.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != st {
			t.Fatalf("status %v, want %v", resp.Status, st)
		}
	}
	want(healthpb.HealthCheckResponse_SERVING)
	if got := s.next(t); got != client.HIT() {
		t.Fatalf("server saw %v, want the client %v", got, client.HIT())
	}
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	want(healthpb.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	want(healthpb.HealthCheckResponse_SERVING)
}

// The interceptors let the allowed HIT through and refuse another node,
// which the base exchange authenticated but the application did not
// allow.
func TestRequirePeer(t *testing.T) {
	server, client, stranger := newNode(t), newNode(t), newNode(t)
	knows(client, server)
	knows(stranger, server)
	allowed := func(h hipnet.HIT) bool { return h == client.HIT() }
	serveHealth(t, server, grpc.Creds(hipgrpc.Credentials()),
		grpc.UnaryInterceptor(hipgrpc.UnaryRequirePeer(allowed)),
		grpc.StreamInterceptor(hipgrpc.StreamRequirePeer(allowed)))
	target := hipgrpc.Target(server.HIT(), port)
	req := &healthpb.HealthCheckRequest{Service: "svc"}

	ok := dial(t, client, target)
	if _, err := ok.Check(ctxT(t, 10*time.Second), req); err != nil {
		t.Fatalf("allowed client: %v", err)
	}
	w, err := ok.Watch(ctxT(t, 10*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); err != nil {
		t.Fatalf("allowed client's stream: %v", err)
	}

	bad := dial(t, stranger, target)
	_, err = bad.Check(ctxT(t, 10*time.Second), req)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stranger's unary RPC: %v, want PermissionDenied", err)
	}
	w, err = bad.Watch(ctxT(t, 10*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stranger's stream: %v, want PermissionDenied", err)
	}
}

// A nil allow function lets nobody through.
func TestRequirePeerNil(t *testing.T) {
	server, client := newNode(t), newNode(t)
	knows(client, server)
	serveHealth(t, server, grpc.Creds(hipgrpc.Credentials()), grpc.UnaryInterceptor(hipgrpc.UnaryRequirePeer(nil)))
	hc := dial(t, client, hipgrpc.Target(server.HIT(), port))
	_, err := hc.Check(ctxT(t, 10*time.Second), &healthpb.HealthCheckRequest{Service: "svc"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("%v, want PermissionDenied", err)
	}
}

// bearer is a per-RPC credential that, like grpc's oauth ones, needs a
// transport that gives privacy and integrity.
type bearer struct{ serverHIT chan hipnet.HIT }

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	ri, _ := credentials.RequestInfoFromContext(ctx)
	if err := credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity); err != nil {
		return nil, err
	}
	if ai, ok := ri.AuthInfo.(hipgrpc.AuthInfo); ok {
		select {
		case b.serverHIT <- ai.HIT:
		default:
		}
	}
	return map[string]string{"authorization": "Bearer s3cret"}, nil
}

func (bearer) RequireTransportSecurity() bool { return true }

// A per-RPC credential that requires transport security is accepted
// over hipnet, and reaches the server; with insecure credentials gRPC
// refuses it.
func TestPerRPCCredentials(t *testing.T) {
	server, client := newNode(t), newNode(t)
	knows(client, server)
	checkToken := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get("authorization"); len(v) != 1 || v[0] != "Bearer s3cret" {
			return nil, status.Error(codes.Unauthenticated, "no token")
		}
		return h(ctx, req)
	}
	serveHealth(t, server, grpc.Creds(hipgrpc.Credentials()), grpc.UnaryInterceptor(checkToken))

	b := bearer{serverHIT: make(chan hipnet.HIT, 1)}
	hc := dial(t, client, hipgrpc.Target(server.HIT(), port), grpc.WithPerRPCCredentials(b))
	if _, err := hc.Check(ctxT(t, 10*time.Second), &healthpb.HealthCheckRequest{Service: "svc"}); err != nil {
		t.Fatal(err)
	}
	if got := <-b.serverHIT; got != server.HIT() {
		t.Fatalf("RequestInfo's AuthInfo names %v, want the server %v", got, server.HIT())
	}

	_, err := grpc.NewClient(hipgrpc.Target(server.HIT(), port), hipgrpc.Dialer(client),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(b))
	if err == nil {
		t.Fatal("grpc accepted a secure per-RPC credential on insecure credentials")
	}
}

// A client whose authority names one HIT refuses a server that is
// another, as TLS refuses a certificate for another name.
func TestAuthorityMismatch(t *testing.T) {
	server, client, other := newNode(t), newNode(t), newNode(t)
	knows(client, server)
	serveHealth(t, server, grpc.Creds(hipgrpc.Credentials()))
	hc := dial(t, client, hipgrpc.Target(server.HIT(), port),
		grpc.WithAuthority((&hipnet.Addr{HIT: other.HIT(), Port: port}).String()))
	_, err := hc.Check(ctxT(t, 10*time.Second), &healthpb.HealthCheckRequest{Service: "svc"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "authority names another HIT") {
		t.Fatalf("%v, want Unavailable for the wrong HIT", err)
	}
}
