package hipgrpc_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"hipnet.dev/hipnet"
	"hipnet.dev/hipnet/hipgrpc"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// Both handshakes refuse a plain TCP connection.
func TestCredentialsRefuseTCP(t *testing.T) {
	c, s := tcpPair(t)
	creds := hipgrpc.Credentials()
	if _, _, err := creds.ClientHandshake(ctxT(t, time.Second), c.RemoteAddr().String(), c); !errors.Is(err, hipgrpc.ErrNotHIP) {
		t.Fatalf("ClientHandshake: %v, want ErrNotHIP", err)
	}
	if _, _, err := creds.ServerHandshake(s); !errors.Is(err, hipgrpc.ErrNotHIP) {
		t.Fatalf("ServerHandshake: %v, want ErrNotHIP", err)
	}
}

// The same, end to end: a server with hipgrpc's credentials on a TCP
// listener serves no RPC, whether the client dials plain TCP with
// hipgrpc's credentials (its handshake refuses) or with insecure ones
// (the server's refuses).
func TestCredentialsRefuseTCPEndToEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{}, 1)
	s := grpc.NewServer(grpc.Creds(hipgrpc.Credentials()), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			served <- struct{}{}
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(ln)
	defer s.Stop()

	for name, creds := range map[string]grpc.DialOption{
		"hip":      grpc.WithTransportCredentials(hipgrpc.Credentials()),
		"insecure": grpc.WithTransportCredentials(insecure.NewCredentials()),
	} {
		t.Run(name, func(t *testing.T) {
			cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), creds)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			_, err = healthpb.NewHealthClient(cc).Check(ctxT(t, 5*time.Second), &healthpb.HealthCheckRequest{})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("%v, want Unavailable", err)
			}
		})
	}
	select {
	case <-served:
		t.Fatal("an RPC over plain TCP reached the handler")
	default:
	}
}

// The client's handshake checks the authority against the HIT the
// connection authenticated; names that are not HITs are not checked.
func TestClientHandshakeAuthority(t *testing.T) {
	server, client, other := newNode(t), newNode(t), newNode(t)
	knows(client, server)
	ln, err := server.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	addr := (&hipnet.Addr{HIT: server.HIT(), Port: 7}).String()
	conn, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	select {
	case c := <-accepted:
		defer c.Close()
		// The server's side reports the client.
		_, ai, err := hipgrpc.Credentials().ServerHandshake(c)
		if err != nil || ai.(hipgrpc.AuthInfo).HIT != client.HIT() {
			t.Fatalf("ServerHandshake: %v, %+v", err, ai)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no stream accepted")
	}

	creds := hipgrpc.Credentials()
	for _, tc := range []struct {
		authority string
		err       error
	}{
		{addr, nil},
		{server.HIT().String(), nil},
		{"[" + server.HIT().String() + "]", nil},
		{"my-service", nil},
		{(&hipnet.Addr{HIT: other.HIT(), Port: 7}).String(), hipgrpc.ErrWrongPeer},
		{other.HIT().String(), hipgrpc.ErrWrongPeer},
	} {
		got, ai, err := creds.ClientHandshake(ctxT(t, time.Second), tc.authority, conn)
		if !errors.Is(err, tc.err) {
			t.Errorf("authority %q: %v, want %v", tc.authority, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if got != conn {
			t.Errorf("authority %q: handshake returned another conn", tc.authority)
		}
		if a := ai.(hipgrpc.AuthInfo); a.HIT != server.HIT() || a.ValidateAuthority(tc.authority) != nil {
			t.Errorf("authority %q: AuthInfo %+v", tc.authority, a)
		}
	}
}

// Info names the protocol "hip", in a clone too.
func TestCredentialsInfo(t *testing.T) {
	for _, c := range []credentials.TransportCredentials{hipgrpc.Credentials(), hipgrpc.Credentials().Clone()} {
		if p := c.Info().SecurityProtocol; p != "hip" {
			t.Fatalf("SecurityProtocol %q", p)
		}
	}
}
