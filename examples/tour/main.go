// Command tour runs the tour of the README in one process, on loopback:
// every Go snippet of the README's "A tour" is copied from this file, and
// `go test ./examples/tour` runs it and checks both.
//
//	go run ./examples/tour
//
// Two nodes meet by HIT and exchange a stream and a datagram; an HTTP
// server and a gRPC server learn their client's HIT; the client dials
// the server by a name from a hosts file; a relay lets an app reach a
// device by its HIT alone; the client shows the server's locators and
// its path counters; and the errors of failed dials are tested with
// errors.Is and errors.As. Every socket is on 127.0.0.1 with a port the
// system picks, the key files go to a temporary directory, and everything
// is closed before it exits, with status 0 if every step worked.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/hipnet"
	"hipnet.dev/hipnet/hipgrpc"
	"hipnet.dev/hipnet/hiphttp"
	"hipnet.dev/hipnet/resolve"
	"hipnet.dev/relay"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tour:", err)
		stop()
		cancel()
		os.Exit(1)
	}
}

// run is the whole tour: it starts the two nodes, runs each step in turn
// and closes everything it started before it returns.
func run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "hipnet-tour-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	server, client, err := startNodes(dir)
	if err != nil {
		return err
	}
	defer server.Close()
	defer client.Close()
	fmt.Fprintf(out, "server %v at %v\nclient %v at %v\n", server.HIT(), server.LocalAddr(), client.HIT(), client.LocalAddr())

	steps := []struct {
		name string
		run  func() error
	}{
		{"stream", func() error { return stream(ctx, server, client, out) }},
		{"datagram", func() error { return datagram(ctx, server, client, out) }},
		{"http", func() error { return serveHTTP(ctx, server, client, out) }},
		{"grpc", func() error { return serveGRPC(ctx, server, client, out) }},
		{"names", func() error { return dialByName(ctx, server, client, out) }},
		{"relay", func() error { return throughRelay(ctx, dir, out) }},
		{"paths", func() error { showPaths(client, out); return nil }},
		{"errors", func() error { return dialErrors(ctx, server, client, out) }},
	}
	for _, s := range steps {
		fmt.Fprintf(out, "== %s\n", s.name)
		if err := s.run(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	fmt.Fprintln(out, "== done")
	return nil
}

// startNodes starts two nodes on loopback: a server that admits the
// client alone, and a client that knows where the server is, by its HIT
// (Config.Peers) and by a name (a hosts file in Config.Resolver).
func startNodes(dir string) (server, client *hipnet.Node, err error) {
	serverID, err := hipnet.LoadOrCreateIdentity(filepath.Join(dir, "server.key")) // PEM, mode 0600
	if err != nil {
		return nil, nil, err
	}
	clientID, err := hipnet.GenerateIdentity() // in memory only
	if err != nil {
		return nil, nil, err
	}
	allowed := map[hipnet.HIT]bool{clientID.HIT(): true}
	server, err = hipnet.NewNode(hipnet.Config{
		Identity:   serverID,
		ListenAddr: "127.0.0.1:0",                                       // the node's one UDP socket; default ":10500"
		Authorize:  func(peer hipnet.HIT) bool { return allowed[peer] }, // nil: any authenticated peer
	})
	if err != nil {
		return nil, nil, err
	}
	hosts, err := writeHosts(filepath.Join(dir, "hosts"), "device42", server)
	if err != nil {
		server.Close()
		return nil, nil, err
	}
	client, err = hipnet.NewNode(hipnet.Config{
		Identity:   clientID,
		ListenAddr: "127.0.0.1:0",
		Peers:      map[hipnet.HIT][]netip.AddrPort{server.HIT(): {server.LocalAddr()}}, // or Relays, or a Resolver
		Resolver:   hosts,                                                               // "device42:8883"
	})
	if err != nil {
		server.Close()
		return nil, nil, err
	}
	return server, client, nil
}

// stream echoes a stream that the client dials by the server's HIT.
func stream(ctx context.Context, server, client *hipnet.Node, out io.Writer) error {
	ln, err := server.Listen("tcp", ":8883")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(out, "server: stream from %v\n", c.RemoteAddr().(*hipnet.Addr).HIT) // authenticated
		io.Copy(c, c)                                                                   // echo
	}()

	c, err := client.DialContext(ctx, "tcp", "["+server.HIT().String()+"]:8883") // a stream, by HIT
	if err != nil {
		return err
	}
	defer c.Close()
	io.WriteString(c, "hello over ESP")
	c.(interface{ CloseWrite() error }).CloseWrite() // half-close, as on a *net.TCPConn
	echo, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "client: echo %q\n", echo)
	return nil
}

// datagram sends one datagram to an endpoint of ListenPacket and reads
// the echo.
func datagram(ctx context.Context, server, client *hipnet.Node, out io.Writer) error {
	pc, err := server.ListenPacket("udp", ":5683")
	if err != nil {
		return err
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		n, from, err := pc.ReadFrom(buf) // from is a *hipnet.Addr
		if err == nil {
			pc.WriteTo(buf[:n], from)
		}
	}()

	c, err := client.DialContext(ctx, "udp", "["+server.HIT().String()+"]:5683") // inner UDP in ESP
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "client: datagram %q from %v\n", buf[:n], c.RemoteAddr())
	return nil
}

// serveHTTP serves HTTP on the server node; the handler learns the
// client's HIT, and the client fetches http://[HIT]/.
func serveHTTP(ctx context.Context, server, client *hipnet.Node, out io.Writer) error {
	ln, err := server.Listen("tcp", ":80")
	if err != nil {
		return err
	}
	srv := hiphttp.Server(server, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit, _ := hiphttp.PeerHIT(r) // from ConnContext: authenticated, no certificate
		fmt.Fprintf(out, "http server: %s %s from %v\n", r.Method, r.URL.Path, hit)
		fmt.Fprintf(w, "hello %v", hit)
	}))
	go srv.Serve(ln)
	defer srv.Close()

	tr := hiphttp.Transport(client) // dials through the node, never plain TCP
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://["+server.HIT().String()+"]/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "http client: %s %q\n", resp.Status, body)
	return nil
}

// serveGRPC serves gRPC's health service on the server node to the
// client alone; each end learns the other's HIT.
func serveGRPC(ctx context.Context, server, client *hipnet.Node, out io.Writer) error {
	ln, err := server.Listen("tcp", ":50051")
	if err != nil {
		return err
	}
	allowed := func(h hipnet.HIT) bool { return h == client.HIT() }
	logPeer := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		hit, _ := hipgrpc.PeerHIT(ctx)
		fmt.Fprintf(out, "grpc server: %s from %v\n", info.FullMethod, hit)
		return h(ctx, req)
	}
	s := grpc.NewServer(grpc.Creds(hipgrpc.Credentials()),
		grpc.ChainUnaryInterceptor(hipgrpc.UnaryRequirePeer(allowed), logPeer),
		grpc.ChainStreamInterceptor(hipgrpc.StreamRequirePeer(allowed)))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go s.Serve(ln)
	defer s.Stop()

	cc, err := grpc.NewClient(hipgrpc.Target(server.HIT(), 50051), // "passthrough:///[HIT]:50051"
		hipgrpc.Dialer(client), grpc.WithTransportCredentials(hipgrpc.Credentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	var p peer.Peer
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "grpc client: %v from %v\n", resp.Status, p.AuthInfo.(hipgrpc.AuthInfo).HIT)
	return nil
}

// writeHosts writes a hosts file that gives name to n's HIT and UDP
// address, and loads it.
func writeHosts(path, name string, n *hipnet.Node) (*resolve.HostsFile, error) {
	line := fmt.Sprintf("%s %v %v\n", name, n.HIT(), n.LocalAddr()) // name  HIT  [locator ...]
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		return nil, err
	}
	return resolve.LoadHosts(path)
}

// dialByName dials the server by the name the client's hosts file gives
// it: the name gives the HIT, and the base exchange authenticates it.
func dialByName(ctx context.Context, server, client *hipnet.Node, out io.Writer) error {
	ln, err := server.Listen("tcp", ":8883")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()

	c, err := client.DialContext(ctx, "tcp", "device42:8883") // Config.Resolver turns the name into a HIT
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(out, "client: device42:8883 is %v\n", c.RemoteAddr()) // the HIT, never the name
	return nil
}

// throughRelay starts a relay, a device that registers with it, and an
// app that reaches the device by its HIT alone, through the relay.
func throughRelay(ctx context.Context, dir string, out io.Writer) error {
	key, _, err := hostid.LoadOrCreate(filepath.Join(dir, "relay.key"), hostid.ECDSAP256, nil)
	if err != nil {
		return err
	}
	r, err := relay.New(relay.Config{Identity: key, ListenAddr: "127.0.0.1:0"}) // what cmd/hip-relay runs
	if err != nil {
		return err
	}
	defer r.Close()
	relays := []string{fmt.Sprintf("%v@%v", r.HIT(), r.Addr())} // "HIT@host:port"

	deviceID, err := hipnet.GenerateIdentity()
	if err != nil {
		return err
	}
	device, err := hipnet.NewNode(hipnet.Config{Identity: deviceID, ListenAddr: "127.0.0.1:0", Relays: relays})
	if err != nil {
		return err
	}
	defer device.Close()
	if err := device.Up(ctx); err != nil { // registered: reachable by its HIT alone
		return err
	}
	fmt.Fprintf(out, "device %v registered with relay %v\n", device.HIT(), r.HIT())
	ln, err := device.Listen("tcp", ":8883")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			io.WriteString(c, "hello from the device")
			c.Close()
		}
	}()

	appID, err := hipnet.GenerateIdentity()
	if err != nil {
		return err
	}
	app, err := hipnet.NewNode(hipnet.Config{Identity: appID, ListenAddr: "127.0.0.1:0", Relays: relays})
	if err != nil {
		return err
	}
	defer app.Close()
	c, err := app.DialContext(ctx, "tcp", "["+device.HIT().String()+"]:8883") // no locator needed
	if err != nil {
		return err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "app: read %q\n", b)
	rtt, err := app.Ping(ctx, device.HIT(), 1, 56, 2*time.Second) // as `hip ping` does
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "app: ping %v\n", rtt.Round(10*time.Microsecond))
	for _, p := range app.Peers() {
		fmt.Fprintln(out, "app:", p.HIT, p.Path, p.Locator) // "relayed" first, "direct" once ICE finds a pair
	}
	return nil
}

// showPaths prints the client's associations with the locators it knows
// for each peer (RFC 8046), and what mobility and failover did (RFC 8047).
func showPaths(client *hipnet.Node, out io.Writer) {
	for _, p := range client.Peers() {
		fmt.Fprintln(out, p.HIT, p.State, p.Path, p.Locator)
		for _, l := range p.Locators { // the one in use first
			fmt.Fprintf(out, "  locator %v %s, from %s, current %v\n", l.Addr, l.State, l.Origin, l.Current)
		}
	}
	st := client.Stats().Paths
	fmt.Fprintf(out, "paths: %d switches, %d of %d probes answered, %d idle closed\n",
		st.Switches, st.ProbesAnswered, st.ProbesSent, st.IdleClosed)
}

// dialErrors shows what failed dials return: a refusal by the server's
// Authorize, a HIT with no locator, and a deadline.
func dialErrors(ctx context.Context, server, client *hipnet.Node, out io.Writer) error {
	strangerID, err := hipnet.GenerateIdentity()
	if err != nil {
		return err
	}
	stranger, err := hipnet.NewNode(hipnet.Config{Identity: strangerID, ListenAddr: "127.0.0.1:0",
		Peers: map[hipnet.HIT][]netip.AddrPort{server.HIT(): {server.LocalAddr()}}})
	if err != nil {
		return err
	}
	defer stranger.Close()
	_, err = stranger.DialContext(ctx, "tcp", "["+server.HIT().String()+"]:8883")
	fmt.Fprintln(out, "stranger: not authorized:", errors.Is(err, hipnet.ErrNotAuthorized))

	_, err = client.DialContext(ctx, "tcp", "["+stranger.HIT().String()+"]:8883")
	fmt.Fprintln(out, "client: unknown peer:", errors.Is(err, hipnet.ErrUnknownPeer))

	silent, err := net.ListenPacket("udp", "127.0.0.1:0") // a locator where nobody answers
	if err != nil {
		return err
	}
	defer silent.Close()
	client.AddPeer(stranger.HIT(), netip.MustParseAddrPort(silent.LocalAddr().String()))
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = client.DialContext(dctx, "tcp", "["+stranger.HIT().String()+"]:8883")
	var ne net.Error
	fmt.Fprintln(out, "client: timeout:", errors.As(err, &ne) && ne.Timeout(), errors.Is(err, hipnet.ErrHandshakeTimeout))
	var de *hipnet.DialError
	if errors.As(err, &de) {
		fmt.Fprintln(out, "client: tried", de.Tried) // the locators the I1 went to
	}
	return nil
}
