package hipnet

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"hipnet.dev/streams"

	"hipnet.dev/handshake"
	"hipnet.dev/internal/mitm"
	"hipnet.dev/internal/streamcheck"
)

// Mobility, multihoming and failover between real nodes on loopback
// (RFC 8046, RFC 8047): each test puts mitm proxies between the two nodes
// as the paths between them, runs a continuous stream echo that checks
// every octet (internal/streamcheck), changes a path mid-stream and
// reports the longest gap.

const mobilityPort = 7

// mobilityRig is a server behind one or two proxies (its paths) and a
// client that knows it at the proxies' addresses.
type mobilityRig struct {
	client, server *Node
	paths          []*mitm.Proxy
}

func newMobilityRig(t *testing.T, paths int, ccfg Config) *mobilityRig {
	t.Helper()
	r := &mobilityRig{server: newTestNode(t, Config{})}
	echoServer(t, r.server, mobilityPort)
	var addrs []netip.AddrPort
	for i := 0; i < paths; i++ {
		p := newMITM(t, r.server)
		r.paths = append(r.paths, p)
		addrs = append(addrs, p.Addr())
	}
	ccfg.Peers = map[HIT][]netip.AddrPort{r.server.HIT(): addrs}
	r.client = newTestNode(t, ccfg)
	for _, p := range r.paths {
		p.SetClient(r.client.LocalAddr())
	}
	return r
}

// stream dials the echo and starts checking it.
func (r *mobilityRig) stream(t *testing.T) *streamcheck.Checker {
	t.Helper()
	c, err := r.client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(r.server, mobilityPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return streamcheck.Start(c, streamcheck.Config{})
}

// current returns n's locator for peer h and whether it is verified.
func currentLocator(n *Node, h HIT) (LocatorInfo, bool) {
	p, ok := peerOf(n, h)
	if !ok || len(p.Locators) == 0 || !p.Locators[0].Current {
		return LocatorInfo{}, false
	}
	return p.Locators[0], true
}

// verified waits until n holds an active locator at a for h.
func verified(t *testing.T, n *Node, h HIT, a netip.AddrPort, within time.Duration) {
	t.Helper()
	if !waitUntil(within, func() bool {
		p, _ := peerOf(n, h)
		for _, l := range p.Locators {
			if l.Addr == a && l.State == "active" {
				return true
			}
		}
		return false
	}) {
		p, _ := peerOf(n, h)
		t.Fatalf("%v never verified: %+v; paths %+v", a, p.Locators, n.Stats().Paths)
	}
}

// movedTo waits until n's traffic to h goes to a, or fails with what.
func movedTo(t *testing.T, n *Node, h HIT, a netip.AddrPort, within time.Duration, what string) {
	t.Helper()
	if !waitUntil(within, func() bool {
		l, ok := currentLocator(n, h)
		return ok && l.Addr == a
	}) {
		p, _ := peerOf(n, h)
		t.Fatalf("%s: %+v", what, p.Locators)
	}
}

// flows waits for the stream to move on by n octets after a change.
func flows(t *testing.T, k *streamcheck.Checker, n int64, within time.Duration) {
	t.Helper()
	start := k.Snapshot().Echoed
	if !waitUntil(within, func() bool { return k.Snapshot().Echoed >= start+n }) {
		t.Fatalf("stream stalled: %v", k.Snapshot())
	}
}

// finish stops the stream and checks that no octet was lost or changed;
// it returns the report.
func finish(t *testing.T, k *streamcheck.Checker) streamcheck.Report {
	t.Helper()
	rep := k.Stop()
	if rep.Err != nil || rep.Mismatch >= 0 || rep.Lost() != 0 {
		t.Fatalf("stream: %v", rep)
	}
	return rep
}

// TestMobilityFailover: the active path is black-holed mid-stream; the
// client fails over to its verified standby (RFC 8047 §4.2.2, §4.2.3),
// the server follows the client's packets there once it has verified the
// address (RFC 8046 §5.4), and the stream loses nothing. When the first
// path comes back, the client moves back to it (its preferred locator).
func TestMobilityFailover(t *testing.T) {
	r := newMobilityRig(t, 2, Config{})
	k := r.stream(t)
	sh := r.server.HIT()
	verified(t, r.client, sh, r.paths[1].Addr(), 5*time.Second) // the standby
	flows(t, k, 64<<10, 5*time.Second)

	r.paths[0].Blackhole(true)
	movedTo(t, r.client, sh, r.paths[1].Addr(), 3*time.Second, "no failover")
	flows(t, k, 64<<10, 5*time.Second)
	gap := k.Snapshot().LongestGap

	r.paths[0].Blackhole(false)
	movedTo(t, r.client, sh, r.paths[0].Addr(), 20*time.Second, "never moved back")
	flows(t, k, 64<<10, 5*time.Second)
	rep := finish(t, k)
	st := r.client.Stats().Paths
	t.Logf("failover: longest gap %v (whole run %v), %d octets echoed, 0 lost; client switches %d, datagrams into the dead path %d, probes %d/%d",
		gap, rep.LongestGap, rep.Echoed, st.Switches, st.LostInSwitch, st.ProbesAnswered, st.ProbesSent)
	if st.Switches < 2 {
		t.Errorf("client switches = %d, want at least 2 (away and back)", st.Switches)
	}
}

// TestMobilityRebinding: the client's NAT changes its mapping mid-stream
// (the server sees the client's packets from a new source port). The
// server verifies the new address before it moves its traffic there
// (RFC 8046 §5.3, §5.4), and the stream loses nothing.
func TestMobilityRebinding(t *testing.T) {
	r := newMobilityRig(t, 1, Config{})
	k := r.stream(t)
	ch := r.client.HIT()
	flows(t, k, 64<<10, 5*time.Second)
	old := r.paths[0].TargetFacing()
	na, err := r.paths[0].Rebind()
	if err != nil {
		t.Fatal(err)
	}
	if na == old {
		t.Fatalf("rebinding kept %v", old)
	}
	if !waitUntil(5*time.Second, func() bool {
		l, ok := currentLocator(r.server, ch)
		return ok && l.Addr == na && l.State == "active"
	}) {
		p, _ := peerOf(r.server, ch)
		t.Fatalf("server did not follow the rebinding to %v: %+v", na, p.Locators)
	}
	flows(t, k, 64<<10, 5*time.Second)
	rep := finish(t, k)
	t.Logf("rebinding %v -> %v: longest gap %v, %d octets echoed, 0 lost; server switches %d",
		old, na, rep.LongestGap, rep.Echoed, r.server.Stats().Paths.Switches)
}

// TestMobilityOneWayLoss: the path loses everything from the server to
// the client, nothing the other way. The client, which hears nothing back
// while it sends, fails over to the standby.
func TestMobilityOneWayLoss(t *testing.T) {
	r := newMobilityRig(t, 2, Config{})
	k := r.stream(t)
	sh := r.server.HIT()
	verified(t, r.client, sh, r.paths[1].Addr(), 5*time.Second)
	flows(t, k, 64<<10, 5*time.Second)
	r.paths[0].DropDirection(mitm.ToClient, true)
	movedTo(t, r.client, sh, r.paths[1].Addr(), 3*time.Second, "no failover")
	flows(t, k, 64<<10, 5*time.Second)
	rep := finish(t, k)
	t.Logf("one-way loss: longest gap %v, %d octets echoed, 0 lost", rep.LongestGap, rep.Echoed)
}

// TestMobilityReplayFromThirdAddress: an attacker on the path takes the
// client's ESP and delivers it from a third address, or replays it from
// there. Replays die in the anti-replay window; a packet that is new to
// the server makes the third address a candidate at most: the server
// probes it (within the credit that address earned), gets no signed
// answer, and never moves the path (return routability, RFC 8046 §5.4).
func TestMobilityReplayFromThirdAddress(t *testing.T) {
	r := newMobilityRig(t, 1, Config{})
	k := r.stream(t)
	ch := r.client.HIT()
	flows(t, k, 32<<10, 5*time.Second)
	before, _ := currentLocator(r.server, ch)
	third, err := mitm.Listen(thirdAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetRecord(true)
	// Divert every tenth ESP packet of the client: dropped on the path,
	// delivered from the third address instead (fresh to the server).
	var n int
	r.paths[0].SetHook(func(d *mitm.Datagram) mitm.Verdict {
		if d.Dir != mitm.ToTarget || !isESP(d) {
			return mitm.Verdict{}
		}
		if n++; n%10 != 0 {
			return mitm.Verdict{}
		}
		third.Send(r.server.LocalAddr(), d.Data)
		return mitm.Verdict{Action: mitm.ActionDrop}
	})
	time.Sleep(2 * time.Second)
	r.paths[0].SetHook(nil)
	// And replay what the client sent, from the third address.
	for _, d := range r.paths[0].Select(func(d *mitm.Datagram) bool { return d.Dir == mitm.ToTarget && isESP(d) }) {
		third.Send(r.server.LocalAddr(), d.Data)
	}
	flows(t, k, 32<<10, 5*time.Second)
	after, _ := currentLocator(r.server, ch)
	if after.Addr != before.Addr {
		t.Fatalf("the path moved to %v", after.Addr)
	}
	sent, recv := third.Counts()
	if recv.Octets > sent.Octets {
		t.Errorf("the server sent %d octets to the third address, which sent it %d", recv.Octets, sent.Octets)
	}
	rep := finish(t, k)
	st := r.server.Stats()
	t.Logf("third address: sent %d datagrams (%d octets), got %d (%d octets) back; server switches %d, replays dropped %d; stream gap %v",
		sent.Datagrams, sent.Octets, recv.Datagrams, recv.Octets, st.Paths.Switches, st.Drops.Replay, rep.LongestGap)
	if st.Paths.Switches != 0 {
		t.Errorf("server switches = %d, want 0", st.Paths.Switches)
	}
}

// TestDialSecondLocator: the first configured locator is dead; the dial
// tries the second dialAttemptDelay later (Happy Eyeballs) and completes
// there.
func TestDialSecondLocator(t *testing.T) {
	server := newTestNode(t, Config{})
	echoServer(t, server, mobilityPort)
	dead := deadAddr(t)
	client := newTestNode(t, Config{Peers: map[HIT][]netip.AddrPort{server.HIT(): {dead, server.LocalAddr()}}})
	start := time.Now()
	c, err := client.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(server, mobilityPort))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	took := time.Since(start)
	l, ok := currentLocator(client, server.HIT())
	if !ok || l.Addr != server.LocalAddr() {
		t.Fatalf("current locator %+v, want %v", l, server.LocalAddr())
	}
	t.Logf("dial with a dead first locator: %v", took)
	if took > 3*time.Second {
		t.Errorf("dial took %v: the second locator was not tried early", took)
	}
}

// TestDialDeadLocator: a dial to a locator where nothing answers fails
// at the context's deadline with a net.Error whose Timeout is true and
// whose message says that nothing answered there.
func TestDialDeadLocator(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.name, func(t *testing.T) { dialDeadLocator(t, tr.f) })
	}
}

// dialDeadLocator is TestDialDeadLocator on one stream transport: the
// error is the overlay's, whether the base exchange runs before the
// transport's dial (QUIC) or beside it (netstack).
func dialDeadLocator(t *testing.T, f streams.Factory) {
	dead := deadAddr(t)
	other := newTestNode(t, Config{})
	client := newTestNode(t, Config{Peers: map[HIT][]netip.AddrPort{other.HIT(): {dead}}, Streams: f})
	start := time.Now()
	_, err := client.DialContext(ctxT(t, 1500*time.Millisecond), "tcp", addrOf(other, mobilityPort))
	took := time.Since(start)
	if err == nil {
		t.Fatal("dial succeeded")
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("error %v (%T) is not a net.Error with Timeout", err, err)
	}
	if !errors.Is(err, ErrHandshakeTimeout) {
		t.Errorf("error %v is not ErrHandshakeTimeout", err)
	}
	if !strings.Contains(err.Error(), "no answer from "+dead.String()) {
		t.Errorf("error %q does not name the locator that did not answer", err)
	}
	t.Logf("dial to a dead locator failed after %v: %v", took, err)
	if took > 2500*time.Millisecond {
		t.Errorf("took %v for a 1.5 s deadline", took)
	}
}

// TestDialDeadLocatorNoDeadline: without a deadline, the dial fails
// when the I1 retransmissions run out, and the error names the locators
// that did not answer.
func TestDialDeadLocatorNoDeadline(t *testing.T) {
	for _, tr := range streamTransports {
		t.Run(tr.name, func(t *testing.T) {
			dead := deadAddr(t)
			other := newTestNode(t, Config{})
			client := newTunedNode(t, Config{Peers: map[HIT][]netip.AddrPort{other.HIT(): {dead}}, Streams: tr.f},
				shortRetries())
			_, err := client.DialContext(ctxT(t, 30*time.Second), "tcp", addrOf(other, mobilityPort))
			if err == nil || !strings.Contains(err.Error(), "no answer from "+dead.String()) {
				t.Fatalf("error %v does not say that %v did not answer", err, dead)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("error %v (%T) is not a net.Error with Timeout", err, err)
			}
		})
	}
}

// TestIdleTimeout: an association that carries no data for IdleTimeout
// is closed (CLOSE, CLOSE_ACK), keepalives notwithstanding, and a new dial
// makes a new one.
func TestIdleTimeout(t *testing.T) {
	client, server := pairNodes(t, Config{IdleTimeout: 800 * time.Millisecond, KeepaliveInterval: 100 * time.Millisecond}, Config{})
	echoServer(t, server, mobilityPort)
	echoOnce := func() {
		c, err := client.DialContext(ctxT(t, 5*time.Second), "tcp", addrOf(server, mobilityPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	echoOnce()
	if !waitUntil(5*time.Second, func() bool {
		p, ok := peerOf(client, server.HIT())
		return !ok || p.State == "CLOSED" || p.State == "UNASSOCIATED"
	}) {
		p, _ := peerOf(client, server.HIT())
		t.Fatalf("association still %s after the idle timeout", p.State)
	}
	if n := client.Stats().Paths.IdleClosed; n == 0 {
		t.Error("IdleClosed = 0")
	}
	echoOnce()
}

// deadAddr returns a loopback address and port where nothing answers: a
// socket that stays bound until the test ends and never reads. Closing it
// at once would free the port for the next socket the kernel hands out,
// which may be the test's own peer node (CI once met that: a "dead"
// locator that answered).
func deadAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// shortRetries makes a dial give up after about a second.
func shortRetries() handshake.Config {
	return handshake.Config{RetransmitTimeout: 100 * time.Millisecond, MaxRetransmitTimeout: 200 * time.Millisecond, Retries: 3}
}
