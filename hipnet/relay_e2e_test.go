package hipnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	pturn "github.com/pion/turn/v5"

	"hipnet.dev/internal/netns"
	"hipnet.dev/relay"
)

// End-to-end NAT traversal (issue 4): real network namespaces, real Linux
// NATs (iptables MASQUERADE, and --random-fully for address-and-port
// dependent mapping), a relay on the public segment, and nodes that know
// each other's HIT and nothing else. Run as root by `make e2e`.

// e2eKeepalive is the keepalive period of the nodes in these tests: short,
// so a relay restart is noticed in about a second.
const e2eKeepalive = 300 * time.Millisecond

type e2eNet struct {
	tp    *netns.Topology
	relay *relay.Server
	rid   *Identity
}

// newE2ENet builds the topology and starts a relay at 198.18.0.1:10500
// with a TURN service at :3478.
func newE2ENet(t *testing.T, peer bool, nats ...netns.NATType) *e2eNet {
	netns.Require(t)
	spec := netns.Spec{Peer: peer}
	for _, n := range nats {
		spec.Sites = append(spec.Sites, netns.SiteSpec{NAT: n})
	}
	en := &e2eNet{tp: netns.NewTopology(t, spec)}
	var err error
	if en.rid, err = GenerateIdentity(); err != nil {
		t.Fatal(err)
	}
	en.startRelay(t)
	return en
}

func (en *e2eNet) startRelay(t *testing.T) {
	t.Helper()
	pub := en.tp.Public()
	pc := listenIn(t, pub, pub.Addr().String()+":10500")
	tc := listenIn(t, pub, pub.Addr().String()+":3478")
	r, err := relay.New(relay.Config{
		Identity: en.rid.key, PacketConn: pc, Logger: e2eLog(t, "relay"),
		TURN: &relay.TURNConfig{PacketConn: tc, RelayIP: pub.Addr(), RelayListen: pub.ListenPacket},
	})
	if err != nil {
		t.Fatal(err)
	}
	en.relay = r
	t.Cleanup(func() { r.Close() })
}

func listenIn(t *testing.T, ns *netns.Namespace, addr string) net.PacketConn {
	t.Helper()
	for range 50 { // a restarted relay may find its port still closing
		pc, err := ns.ListenPacket("udp4", addr)
		if err == nil {
			return pc
		}
		time.Sleep(20 * time.Millisecond)
	}
	pc, err := ns.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// node starts a node in ns, registered with the relay by its HIT. Its
// socket is bound to the namespace's address, which makes that address
// its ICE host candidate.
func (en *e2eNet) node(t *testing.T, ns *netns.Namespace, name string, register bool) *Node {
	t.Helper()
	cfg := Config{PacketConn: listenIn(t, ns, ns.Addr().String()+":10500"), KeepaliveInterval: e2eKeepalive, Logger: e2eLog(t, name)}
	if register {
		cfg.Relays = []string{fmt.Sprintf("%v@%v", en.relay.HIT(), en.relay.Addr())}
	}
	return newTestNode(t, cfg)
}

func (en *e2eNet) waitRegistered(t *testing.T, nodes ...*Node) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, n := range nodes {
		for !en.registered(n.HIT()) {
			if time.Now().After(deadline) {
				t.Fatalf("%v did not register with the relay", n.HIT())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (en *e2eNet) registered(h HIT) bool {
	for _, r := range en.relay.Registrations() {
		if r.Peer == h {
			return true
		}
	}
	return false
}

// e2eLog logs to stderr with HIPNET_TEST_LOG=1, and discards otherwise.
func e2eLog(_ *testing.T, name string) *slog.Logger {
	if os.Getenv("HIPNET_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}

// serve starts a stream echo on port 7 and a datagram echo on port 9.
func serve(t *testing.T, server *Node) {
	t.Helper()
	echoServer(t, server, 7)
	spc := listenPacket(t, server, ":9")
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := spc.ReadFrom(buf)
			if err != nil {
				return
			}
			spc.WriteTo(buf[:n], from)
		}
	}()
}

// exercise dials server (serving) from client by HIT alone, measures the
// time from DialContext to the first echoed byte, moves a 1 MiB stream
// byte-exact and 50 datagrams each way, and returns the time to first
// byte.
func exercise(t *testing.T, client, server *Node) time.Duration {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	start := time.Now()
	c, err := client.DialContext(ctx, "tcp", addrOf(server, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte{42}); err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(c, one); err != nil || one[0] != 42 {
		t.Fatalf("first byte: %v %v", one, err)
	}
	ttfb := time.Since(start)

	data := randomBytes(7, 1<<20)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := make([]byte, len(data))
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("stream not byte-exact")
	}

	dc, err := client.DialContext(ctx, "udp", addrOf(server, 9))
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	buf := make([]byte, 2048)
	for i := range 50 {
		msg := randomBytes(uint64(100+i), 1000)
		var n int
		for try := 0; ; try++ { // datagrams may be lost when the path changes
			dc.Write(msg)
			dc.SetReadDeadline(time.Now().Add(time.Second))
			if n, err = dc.Read(buf); err == nil || try == 5 {
				break
			}
		}
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
	return ttfb
}

func pathOf(n *Node, peer HIT) (PeerInfo, bool) {
	for _, p := range n.Peers() {
		if p.HIT == peer {
			return p, true
		}
	}
	return PeerInfo{}, false
}

// waitPath waits for both ends to report want, and fails otherwise.
func waitPath(t *testing.T, a, b *Node, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		pa, ok1 := pathOf(a, b.HIT())
		pb, ok2 := pathOf(b, a.HIT())
		if ok1 && ok2 && pa.Path == want && pb.Path == want {
			t.Logf("path %s: %v sees %v, %v sees %v", want, a.HIT(), pa.Locator, b.HIT(), pb.Locator)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("path: %q/%q at %v/%v, want %q", pa.Path, pb.Path, pa.Locator, pb.Locator, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestE2ERelayInitiatorBehindNAT: scenario 1. The responder is public
// (198.18.0.2) and registered; the initiator is behind an
// endpoint-independent NAT and knows only the responder's HIT.
func TestE2ERelayInitiatorBehindNAT(t *testing.T) {
	en := newE2ENet(t, true, netns.EndpointIndependent)
	resp := en.node(t, en.tp.Peer(), "responder", true)
	init := en.node(t, en.tp.Host(0), "initiator", true)
	en.waitRegistered(t, resp, init)
	serve(t, resp)
	ttfb := exercise(t, init, resp)
	waitPath(t, init, resp, "direct", 10*time.Second)
	t.Logf("FIGURE scenario=1 ttfb=%v", ttfb)
}

// relayPair runs one scenario between two NAT sites: both nodes register,
// a dials b by HIT alone, the exchange is checked byte-exact, the path
// must become (or, for "relayed", stay, after ICE had its chance) want on
// both ends, and the exchange is checked again on that path.
func relayPair(t *testing.T, scenario int, nat0, nat1 netns.NATType, want string) {
	en := newE2ENet(t, false, nat0, nat1)
	a := en.node(t, en.tp.Host(0), "a", true)
	b := en.node(t, en.tp.Host(1), "b", true)
	en.waitRegistered(t, a, b)
	serve(t, b)
	ttfb := exercise(t, a, b)
	if want == "relayed" {
		time.Sleep(3 * time.Second) // ICE finds its pairs well within this on a LAN
	}
	waitPath(t, a, b, want, 10*time.Second)
	esp := en.relay.Stats().Relay.ESPForwarded
	exercise(t, a, b)
	if moved := en.relay.Stats().Relay.ESPForwarded - esp; (want == "relayed") != (moved > 0) {
		t.Fatalf("path %s, yet the relay forwarded %d ESP packets meanwhile", want, moved)
	}
	t.Logf("FIGURE scenario=%d ttfb=%v path=%s", scenario, ttfb, want)
}

// TestE2ERelayBothEndpointIndependent: scenario 2: both behind
// endpoint-independent NATs; ICE punches through to a direct path.
func TestE2ERelayBothEndpointIndependent(t *testing.T) {
	relayPair(t, 2, netns.EndpointIndependent, netns.EndpointIndependent, "direct")
}

// TestE2ERelayOneSymmetric: scenario 3: one side behind --random-fully.
// Linux MASQUERADE filters by address and port: the symmetric side's
// mapping towards the peer gets a port the peer never sent to, so the
// peer's NAT refuses it, and the peer's checks go to a port that is mapped
// only towards the relay. No pair works; traffic stays relayed, and works.
func TestE2ERelayOneSymmetric(t *testing.T) {
	relayPair(t, 3, netns.EndpointIndependent, netns.RandomFully, "relayed")
}

// TestE2ERelayBothSymmetric: scenario 4: both behind --random-fully: no
// direct pair exists; ESP stays on the relay and everything works.
func TestE2ERelayBothSymmetric(t *testing.T) {
	relayPair(t, 4, netns.RandomFully, netns.RandomFully, "relayed")
}

// TestE2ERelayRestart: scenario 5: the relay restarts mid-session (same
// identity and address). The direct session carries on, the nodes
// register again, and a new dial by HIT works.
func TestE2ERelayRestart(t *testing.T) {
	en := newE2ENet(t, true, netns.EndpointIndependent, netns.EndpointIndependent)
	a := en.node(t, en.tp.Host(0), "a", true)
	b := en.node(t, en.tp.Host(1), "b", true)
	c := en.node(t, en.tp.Peer(), "c", true)
	en.waitRegistered(t, a, b, c)
	serve(t, a)
	serve(t, b)
	exercise(t, a, b)
	waitPath(t, a, b, "direct", 10*time.Second)

	en.relay.Close()
	en.startRelay(t)
	en.waitRegistered(t, a, b, c)
	ttfb := exercise(t, c, a) // a new association through the new relay
	exercise(t, a, b)         // the old one still works
	t.Logf("FIGURE scenario=5 ttfb=%v", ttfb)
}

// TestE2ERelayRefuses: scenario 6: a node that is not registered cannot
// be reached through the relay, and the TURN service refuses an
// allocation without credentials from a registered host.
func TestE2ERelayRefuses(t *testing.T) {
	en := newE2ENet(t, false, netns.EndpointIndependent, netns.EndpointIndependent)
	a := en.node(t, en.tp.Host(0), "a", true)
	hidden := en.node(t, en.tp.Host(1), "hidden", false)
	en.waitRegistered(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	start := time.Now()
	_, err := a.DialContext(ctx, "tcp", addrOf(hidden, 7))
	if !errors.Is(err, ErrHandshakeTimeout) {
		t.Fatalf("dial of an unregistered node: %v", err)
	}
	if st := en.relay.Stats().Relay; st.Unregistered == 0 || st.ControlForwarded != 0 {
		t.Fatalf("relay stats %+v", st)
	}
	t.Logf("unregistered dial failed after %v: %v", time.Since(start), err)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	turnAddr := netip.AddrPortFrom(en.tp.Public().Addr(), 3478).String()
	allocate := func(user, pass string) error {
		conn := listenIn(t, en.tp.Host(1), ":0")
		defer conn.Close()
		cl, err := pturn.NewClient(&pturn.ClientConfig{TURNServerAddr: turnAddr, STUNServerAddr: turnAddr, Username: user, Password: pass, Conn: conn})
		if err != nil {
			return err
		}
		defer cl.Close()
		if err := cl.Listen(); err != nil {
			return err
		}
		relayed, err := cl.Allocate()
		if err == nil {
			relayed.Close()
		}
		return err
	}
	if err := allocate("", ""); err == nil {
		t.Fatal("TURN allocation without credentials succeeded")
	}
	if err := allocate("4102444800:"+hidden.HIT().String(), "made-up"); err == nil {
		t.Fatal("TURN allocation with forged credentials succeeded")
	}
	// The registered node gets credentials over HIP, and they work.
	creds, err := relay.RequestCredentials(ctx, a.stack, en.relay.HIT())
	if err != nil {
		t.Fatal(err)
	}
	if err := allocate(creds.Username, creds.Password); err != nil {
		t.Fatalf("registered node's TURN allocation: %v", err)
	}
	// The unregistered node is refused credentials.
	hidden.AddPeer(en.relay.HIT(), en.relay.Addr())
	if _, err := relay.RequestCredentials(ctx, hidden.stack, en.relay.HIT()); !errors.Is(err, relay.ErrNotRegistered) {
		t.Fatalf("unregistered node asked for credentials: %v", err)
	}
}
