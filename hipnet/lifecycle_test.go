package hipnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/relay"
)

// TestUpRelayDownThenUp: Up fails while the node's relay is down, with a
// timeout error that names the relay, and returns nil once the relay has
// come up and registered the node.
func TestUpRelayDownThenUp(t *testing.T) {
	rid, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	at := pc.LocalAddr().String()
	pc.Close() // the relay is down: nothing answers at its address
	n := newTestNode(t, Config{Relays: []string{fmt.Sprintf("%v@%s", rid.HIT(), at)}})

	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	err = n.Up(ctx)
	cancel()
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() || !strings.Contains(err.Error(), at) {
		t.Fatalf("Up with the relay down = %v; want a timeout naming %s", err, at)
	}
	t.Logf("relay down: %v", err)

	pc, err = net.ListenPacket("udp4", at)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Identity: rid.key, PacketConn: pc})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	if err := n.Up(ctxT(t, 30*time.Second)); err != nil {
		t.Fatalf("Up after the relay came up: %v", err)
	}
	t.Logf("up %v after the relay started", time.Since(start).Round(time.Millisecond))

	alone := newTestNode(t, Config{})
	if err := alone.Up(context.Background()); err != nil {
		t.Fatalf("Up without relays: %v", err)
	}
}

// TestWhoIs: a server asks who is at the other end of an accepted stream.
func TestWhoIs(t *testing.T) {
	client, server := pairNodes(t, Config{}, Config{})
	ln, err := server.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := client.DialContext(ctxT(t, 5*time.Second), "tcp", addrOf(server, 80))
		if err == nil {
			c.Write([]byte("x"))
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, ok := server.WhoIs(c.RemoteAddr().(*Addr).HIT)
	if !ok || p.HIT != client.HIT() || p.State != "ESTABLISHED" && p.State != "R2-SENT" {
		t.Fatalf("WhoIs = %+v, %v", p, ok)
	}
	if _, ok := server.WhoIs(server.HIT()); ok {
		t.Error("WhoIs knows a HIT with no association")
	}
}

// TestParsePeersNames: a locator may be given by host name; each of its
// addresses becomes a locator.
func TestParsePeersNames(t *testing.T) {
	h := "2001:20::1"
	ps, err := ParsePeers(h + "@localhost:10500, " + h + "@192.0.2.1:10500")
	if err != nil {
		t.Fatal(err)
	}
	locs := ps[wire.MustParseHIT(h)]
	if len(locs) < 2 || locs[len(locs)-1].String() != "192.0.2.1:10500" || !locs[0].Addr().IsLoopback() || locs[0].Port() != 10500 {
		t.Fatalf("locators %v", locs)
	}
	if _, err := ParsePeers(h + "@no-such-host.invalid:10500"); err == nil {
		t.Fatal("an unknown host name was accepted")
	}
}
