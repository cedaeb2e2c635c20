package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/internal/netns"
	"hipnet.dev/relay"
)

// TestE2EChatThroughRelay: two chats behind real NATs (network
// namespaces, iptables MASQUERADE; see internal/netns) that know nothing
// of each other but the HIT, and a relay on the public segment whose HIT
// and address both know. They register, dial each other by HIT alone
// through the relay, and lines arrive both ways. Run as root by `make e2e`.
func TestE2EChatThroughRelay(t *testing.T) {
	netns.Require(t)
	tp := netns.NewTopology(t, netns.Spec{Sites: []netns.SiteSpec{
		{NAT: netns.EndpointIndependent}, {NAT: netns.EndpointIndependent},
	}})
	pub := tp.Public()
	rpc := listenIn(t, pub, pub.Addr().String()+":10500")
	rkey, err := hostid.Generate(hostid.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Identity: rkey, PacketConn: rpc})
	if err != nil {
		rpc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	relayArg := fmt.Sprintf("%v@%v", r.HIT(), r.Addr())

	dir := t.TempDir()
	aliceKey, aliceHIT := newIdentity(t, dir, "alice")
	bobKey, bobHIT := newIdentity(t, dir, "bob")
	book := filepath.Join(dir, "contacts")
	if err := os.WriteFile(book, []byte("bob "+bobHIT.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h0, h1 := tp.Host(0), tp.Host(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := start(t, ctx, "alice", aliceHIT, options{packetConn: listenIn(t, h0, h0.Addr().String()+":10500")},
		"-identity", aliceKey, "-relay", relayArg, "-contacts", book, "-peer", "bob")
	bob := start(t, ctx, "bob", bobHIT, options{packetConn: listenIn(t, h1, h1.Addr().String()+":10500")},
		"-identity", bobKey, "-relay", relayArg, "-peer", aliceHIT.String())

	began := time.Now()
	alice.send("hello from behind a NAT")
	bob.expect(aliceHIT.String() + ": hello from behind a NAT")
	t.Logf("first line across after %v", time.Since(began))
	bob.send("hello from behind another")
	alice.expect("bob: hello from behind another")

	alice.send("/peers")
	alice.send("/help")
	peers := alice.expect("commands:")
	t.Logf("alice's /peers:\n%s", strings.Join(peers, "\n"))
	var sawBob, sawRelay, registered bool
	for _, p := range peers {
		sawBob = sawBob || strings.HasPrefix(p, "peer "+bobHIT.String()+" ") && strings.HasSuffix(p, " ESTABLISHED bob")
		sawRelay = sawRelay || strings.HasPrefix(p, "peer "+r.HIT().String()+" direct "+r.Addr().String()+" ") && strings.HasSuffix(p, " relay")
		// The relay sees alice at her NAT's public address.
		registered = registered || strings.HasPrefix(p, fmt.Sprintf("relay %v %v registered %v:", r.HIT(), r.Addr(), tp.Router(0).Addr()))
	}
	if !sawBob || !sawRelay || !registered {
		t.Fatalf("/peers lacks bob, the relay's association or the registration: %q", peers)
	}
	alice.waitStderr("registered with relay " + r.HIT().String())
	if st := r.Stats().Relay; st.ControlForwarded == 0 {
		t.Fatalf("the relay forwarded no base exchange: %+v", st)
	}

	alice.send("bye")
	if err := alice.quit(); err != nil {
		t.Fatalf("alice: %v; stderr:\n%s", err, alice.stderr)
	}
	bob.expect(aliceHIT.String() + ": bye")
	if err := bob.quit(); err != nil {
		t.Fatalf("bob: %v; stderr:\n%s", err, bob.stderr)
	}
	t.Logf("alice's stderr:\n%s", alice.stderr)
	t.Logf("bob's stderr:\n%s", bob.stderr)
	r.Close()
	checkNoLeaks(t)
}

// listenIn opens a UDP socket in a namespace.
func listenIn(t *testing.T, ns *netns.Namespace, addr string) net.PacketConn {
	t.Helper()
	pc, err := ns.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}
