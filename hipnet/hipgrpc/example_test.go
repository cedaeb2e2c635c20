package hipgrpc_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"hipnet.dev/hipnet"
	"hipnet.dev/hipnet/hipgrpc"
)

// startNode starts a node on loopback with a fresh identity.
func startNode() *hipnet.Node {
	id, err := hipnet.GenerateIdentity()
	if err != nil {
		log.Fatal(err)
	}
	n, err := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	return n
}

// A gRPC server on one node lets only a client it knows by HIT call it.
func Example() {
	server, client := startNode(), startNode()
	defer server.Close()
	defer client.Close()
	client.AddPeer(server.HIT(), server.LocalAddr())

	// The server: a hipnet listener, hipgrpc's credentials, and an
	// interceptor that allows the client's HIT alone.
	ln, err := server.Listen("tcp", ":50051")
	if err != nil {
		log.Fatal(err)
	}
	allowed := func(h hipnet.HIT) bool { return h == client.HIT() }
	whoCalled := make(chan hipnet.HIT, 1)
	s := grpc.NewServer(grpc.Creds(hipgrpc.Credentials()), grpc.ChainUnaryInterceptor(
		hipgrpc.UnaryRequirePeer(allowed),
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			hit, _ := hipgrpc.PeerHIT(ctx)
			whoCalled <- hit
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(ln)
	defer s.Stop()

	// The client: dial the server's HIT through the client's node.
	cc, err := grpc.NewClient(hipgrpc.Target(server.HIT(), 50051),
		hipgrpc.Dialer(client), grpc.WithTransportCredentials(hipgrpc.Credentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Status, <-whoCalled == client.HIT())
	// Output: SERVING true
}

func ExampleTarget() {
	hit, _ := hipnet.ParseHIT("2001:2a:1b5f:9c1e:2f7b:3a4c:5d6e:7f80")
	fmt.Println(hipgrpc.Target(hit, 50051))
	// Output: passthrough:///[2001:2a:1b5f:9c1e:2f7b:3a4c:5d6e:7f80]:50051
}
