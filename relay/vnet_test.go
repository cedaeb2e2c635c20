package relay

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/transport/v5/vnet"
	"hipnet.dev/overlay"
)

// The relay and NAT traversal logic on a virtual network (vnethelpers_test.go):
// pion's vnet routers and NATs in process, so no root, no namespaces and
// no real network. Every scenario has a relay on the WAN and nodes that
// register with it, dial one another by HIT alone, and carry test messages
// both ways byte for byte.

// vnetMsgs is how many test messages a transfer carries each way.
const vnetMsgs = 48

// vnetSeed seeds the WAN impairments; HIPNET_VNET_SEED overrides it to
// replay or vary a run.
func vnetSeed(t *testing.T) uint64 {
	if s := os.Getenv("HIPNET_VNET_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return 5770
}

// pairOn starts the relay (public) and nodes a (id 0) and b (id 1) on
// their hosts, and waits until the relay registered both.
func pairOn(t *testing.T, w *vnetWorld, an, bn *vnet.Net) (r *Server, a, b *vnode) {
	t.Helper()
	rn := w.public()
	w.start()
	r = w.relay(rn)
	a = w.node(0, an, r)
	b = w.node(1, bn, r)
	waitReady(t, r, a, b)
	return r, a, b
}

// both runs transfer from a to b and from b to a.
func both(t *testing.T, a, b *vnode, first int, lossy bool) int {
	t.Helper()
	n := transfer(t, a.Stack, b.HIT(), first, vnetMsgs, lossy)
	return n + transfer(t, b.Stack, a.HIT(), first+vnetMsgs, vnetMsgs, lossy)
}

// waitForwarded checks that relay r forwarded at least n ESP packets
// since its count was since. The relay counts a packet after sending it,
// so the last count may trail the echo the test read.
func waitForwarded(t *testing.T, r *Server, since uint64, n int) {
	t.Helper()
	end := time.Now().Add(time.Second)
	for {
		got := r.Stats().Relay.ESPForwarded - since
		if got >= uint64(n) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("relay forwarded %d ESP packets, want at least %d", got, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// directThenQuiet waits until a and b both use the direct path, then checks
// that a transfer on it takes nothing from the relay.
func directThenQuiet(t *testing.T, r *Server, a, b *vnode, first int) {
	t.Helper()
	waitFor(t, 10*time.Second, "direct path both ways", func() bool {
		pa, pb := paths(a, b)
		return pa == "direct" && pb == "direct"
	})
	esp := r.Stats().Relay.ESPForwarded
	both(t, a, b, first, false)
	if now := r.Stats().Relay.ESPForwarded; now != esp {
		t.Fatalf("relay forwarded %d ESP packets on a direct path", now-esp)
	}
	if pa, pb := paths(a, b); pa != "direct" || pb != "direct" {
		t.Fatalf("paths after the transfer: %q %q", pa, pb)
	}
}

// TestVNetNATToPublic: the initiator is behind a port-restricted cone
// NAT, the responder on the WAN (registered too); the dial by HIT runs
// through the relay, and ICE finds the direct path (the initiator's check
// opens its NAT for the responder's).
func TestVNetNATToPublic(t *testing.T) {
	t.Parallel()
	w := newVNet(t, nil)
	an := w.behindNAT(natPortRestricted)
	bn := w.public()
	r, a, b := pairOn(t, w, an, bn)
	echoAndDial(t, a, b)
	both(t, a, b, 0, false)
	directThenQuiet(t, r, a, b, 1000)
}

// TestVNetBothNATed: both ends behind NATs with endpoint-independent
// mapping: ICE punches through (the hosts' private candidates do not
// route; the server-reflexive ones do).
func TestVNetBothNATed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		nt   vnet.NATType
	}{
		{"full-cone", natCone},
		{"port-restricted", natPortRestricted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newVNet(t, nil)
			an := w.behindNAT(tc.nt)
			bn := w.behindNAT(tc.nt)
			r, a, b := pairOn(t, w, an, bn)
			echoAndDial(t, a, b)
			both(t, a, b, 0, false)
			directThenQuiet(t, r, a, b, 1000)
		})
	}
}

// TestVNetOneSymmetric: one end behind a symmetric NAT (its mapping
// towards the peer is not the one the relay saw). Against a full cone ICE
// succeeds through the peer-reflexive candidate the cone learns from the
// symmetric end's check, and the relay then carries no ESP; against a
// port-restricted cone no check gets through (the cone's NAT drops the
// symmetric end's checks from an unknown port), so the path must stay on
// the relay, which forwards all of it.
func TestVNetOneSymmetric(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		nt     vnet.NATType
		direct bool
	}{
		{"vs-full-cone", natCone, true},
		{"vs-port-restricted", natPortRestricted, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newVNet(t, nil)
			an := w.behindNAT(natSymmetric)
			bn := w.behindNAT(tc.nt)
			r, a, b := pairOn(t, w, an, bn)
			echoAndDial(t, a, b)
			if tc.direct {
				both(t, a, b, 0, false)
				directThenQuiet(t, r, a, b, 1000)
				return
			}
			staysRelayed(t, r, a, b)
		})
	}
}

// TestVNetBothSymmetric: with symmetric NATs at both ends no check gets
// through; ESP stays on the relay, which forwards all of it.
func TestVNetBothSymmetric(t *testing.T) {
	t.Parallel()
	w := newVNet(t, nil)
	an := w.behindNAT(natSymmetric)
	bn := w.behindNAT(natSymmetric)
	r, a, b := pairOn(t, w, an, bn)
	echoAndDial(t, a, b)
	staysRelayed(t, r, a, b)
}

// staysRelayed checks that a and b, between which no ICE check can get
// through, keep their ESP on the relay r for longer than ICE takes on the
// cone pairs, that r forwards all of it, and that no direct path is ever
// chosen.
func staysRelayed(t *testing.T, r *Server, a, b *vnode) {
	t.Helper()
	esp := r.Stats().Relay.ESPForwarded
	both(t, a, b, 0, false)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if pa, pb := paths(a, b); pa != "relayed" || pb != "relayed" {
			t.Fatalf("paths %q %q where no check can get through", pa, pb)
		}
	}
	both(t, a, b, 1000, false)
	if pa, pb := paths(a, b); pa != "relayed" || pb != "relayed" {
		t.Fatalf("paths %q %q where no check can get through", pa, pb)
	}
	// Each message crosses the relay twice (there and back), in each of
	// the four transfers.
	waitForwarded(t, r, esp, 8*vnetMsgs)
	if a.ev.has("path direct") || b.ev.has("path direct") {
		t.Fatalf("a direct path was chosen: a=%v b=%v", a.ev.list(), b.ev.list())
	}
}

// TestVNetRelayRestart: the relay goes away mid-session and comes back
// with the same identity on the same address but none of its state. The
// nodes register again; the session that went direct keeps working, and
// a new dial through the new relay works.
func TestVNetRelayRestart(t *testing.T) {
	t.Parallel()
	w := newVNet(t, nil)
	an := w.behindNAT(natPortRestricted)
	bn := w.behindNAT(natPortRestricted)
	cn := w.behindNAT(natCone)
	rn := w.public()
	w.start()
	r := w.relay(rn)
	a := w.node(0, an, r)
	b := w.node(1, bn, r)
	c := w.node(2, cn, r)
	waitReady(t, r, a, b, c)
	echo(t, a.Stack)
	echo(t, b.Stack)
	echo(t, c.Stack)
	connectVia(t, a, b)
	both(t, a, b, 0, false)
	waitFor(t, 10*time.Second, "direct path both ways", func() bool {
		pa, pb := paths(a, b)
		return pa == "direct" && pb == "direct"
	})

	start := time.Now()
	r.Close()
	r2 := w.relay(rn)
	waitRegistered2 := func() bool {
		for _, h := range []*vnode{a, b, c} {
			if !r2.registered(h.HIT()) {
				return false
			}
		}
		return true
	}
	waitFor(t, 15*time.Second, "registrations with the restarted relay", waitRegistered2)
	t.Logf("registered again %v after the restart", time.Since(start).Round(time.Millisecond))

	// The direct session did not need the relay.
	both(t, a, b, 1000, false)
	// c never dialled anyone: a fresh base exchange through the new relay.
	connectVia(t, c, a)
	both(t, c, a, 2000, false)
	if st := r2.Stats().Relay; st.ControlForwarded < 4 {
		t.Fatalf("new relay forwarded %d control packets, want the 4 of c's BEX", st.ControlForwarded)
	}
}

// TestVNetUnregistered: a node that holds no registration cannot be
// reached through the relay by its HIT, and the relay counts the drops.
func TestVNetUnregistered(t *testing.T) {
	t.Parallel()
	w := newVNet(t, nil)
	bn := w.behindNAT(natPortRestricted)
	sn := w.public()
	rn := w.public()
	w.start()
	r := w.relay(rn)
	b := w.node(1, bn, r)
	stranger := w.node(2, sn, nil) // registered nowhere
	waitReady(t, r, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.Connect(ctx, stranger.HIT())
	if !errors.Is(err, overlay.ErrHandshakeTimeout) {
		t.Fatalf("dial of an unregistered HIT: %v", err)
	}
	if r.Stats().Relay.Unregistered == 0 {
		t.Fatal("relay did not count the unregistered drops")
	}
	if st := stranger.Stats(); st.ControlIn != 0 {
		t.Fatalf("the stranger received %d control packets", st.ControlIn)
	}
}

// TestVNetLossyWAN: TestVNetBothNATed's port-restricted pair over a WAN
// that loses 5% of the datagrams and holds back 10% by up to 30 ms
// (reordering them). Registration, the BEX through the relay and ICE
// retransmit their way through; messages are resent until echoed and
// must arrive intact. The path may end direct or relayed.
func TestVNetLossyWAN(t *testing.T) {
	t.Parallel()
	seed := vnetSeed(t)
	w := newVNet(t, &impair{seed: seed, loss: 0.05, reorder: 0.10, maxDelay: 30 * time.Millisecond})
	an := w.behindNAT(natPortRestricted)
	bn := w.behindNAT(natPortRestricted)
	_, a, b := pairOn(t, w, an, bn)
	echoAndDial(t, a, b)
	resent := both(t, a, b, 0, true)
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		if pa, pb := paths(a, b); pa == "direct" && pb == "direct" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	resent += both(t, a, b, 1000, true)
	pa, pb := paths(a, b)
	for _, p := range []string{pa, pb} {
		if p != "direct" && p != "relayed" {
			t.Fatalf("path %q", p)
		}
	}
	passed, lost, delayed := w.imp.counts()
	t.Logf("seed %d: paths %s/%s; WAN passed %d, lost %d, delayed %d; %d messages resent; events a=%v b=%v",
		seed, pa, pb, passed, lost, delayed, resent, a.ev.list(), b.ev.list())
	if lost == 0 || delayed == 0 {
		t.Fatal("the WAN impaired nothing")
	}
}

// TestVNetDirectPathFallback: the direct path between two NATed nodes
// breaks (the WAN drops everything between their NATs); each side's
// locator Set notices its peer's packets stopped coming on the pair
// (locator PairSilence and the liveness check) and sends ESP to the relay
// again, which still forwards it. When the path heals, the
// keepalives on it bring ESP back.
func TestVNetDirectPathFallback(t *testing.T) {
	t.Parallel()
	w := newVNet(t, nil)
	w.cuts = true
	var cut atomic.Bool
	w.drop(func(c vnet.Chunk) bool {
		src, dst := chunkIPs(c)
		return cut.Load() && (src == natIP(1) && dst == natIP(2) || src == natIP(2) && dst == natIP(1))
	})
	an := w.behindNAT(natPortRestricted)
	bn := w.behindNAT(natPortRestricted)
	r, a, b := pairOn(t, w, an, bn)
	echoAndDial(t, a, b)
	waitFor(t, 10*time.Second, "direct path both ways", func() bool {
		pa, pb := paths(a, b)
		return pa == "direct" && pb == "direct"
	})
	both(t, a, b, 0, false)

	cut.Store(true)
	cutAt := time.Now()
	// The pair's silence and check take about 1.65 s; 7 s is a margin for
	// a loaded machine. On a timeout, say what each side holds, so that a
	// failure in CI can be read without a rerun.
	for end := time.Now().Add(7 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if pa, pb := paths(a, b); pa == "relayed" && pb == "relayed" {
			break
		}
		if time.Now().After(end) {
			ia, _ := peerInfo(a.Stack, b.HIT())
			ib, _ := peerInfo(b.Stack, a.HIT())
			t.Fatalf("no fallback to the relay %v after the cut:\na: %+v\nb: %+v\nevents a=%v b=%v",
				time.Since(cutAt).Round(time.Millisecond), ia, ib, a.ev.list(), b.ev.list())
		}
	}
	t.Logf("relayed %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	esp := r.Stats().Relay.ESPForwarded
	both(t, a, b, 1000, false)
	waitForwarded(t, r, esp, 4*vnetMsgs)

	cut.Store(false)
	healAt := time.Now()
	directThenQuiet(t, r, a, b, 2000)
	t.Logf("direct %v after the path healed; events a=%v b=%v", time.Since(healAt).Round(time.Millisecond), a.ev.list(), b.ev.list())
}

// TestVNetSrflxWindow: a node is dialled as soon as the relay granted its
// registration, with the relay's STUN answers 1 s late. The node asks for
// its reflexive address before it registers, so its base exchange already
// carries it as an ICE candidate, and behind two port-restricted NATs the
// pair goes direct as in TestVNetBothNATed. (It used to register first,
// and stay relayed.)
func TestVNetSrflxWindow(t *testing.T) {
	t.Parallel()
	w := newVNet(t, nil)
	an := w.behindNAT(natPortRestricted)
	bn := w.behindNAT(natPortRestricted)
	rn := w.public()
	w.delay(func(c vnet.Chunk) bool {
		src, _ := chunkIPs(c)
		return src == natIP(2) && isSTUNRequest(c) && c.DestinationAddr().String() == w.ips[rn]+":"+strconv.Itoa(vnetPort)
	}, time.Second)
	w.start()
	r := w.relay(rn)
	a := w.node(0, an, r)
	b := w.node(1, bn, r)
	waitReady(t, r, a)
	waitRegistered(t, r, b.HIT())
	t.Logf("b's reflexive addresses when dialled: %v", reflexive(b.Stack))
	echoAndDial(t, a, b)
	both(t, a, b, 0, false)
	waitFor(t, 5*time.Second, "direct path both ways", func() bool {
		pa, pb := paths(a, b)
		return pa == "direct" && pb == "direct"
	})
}

// TestVNetRelayedSessionRestart: TestVNetRelayRestart with a session that
// stays relayed (two symmetric NATs). The new relay has the registrations
// back but not the ESP forwarding entries, which only control packets of a
// base exchange or UPDATE teach it; the nodes rekey their relayed
// associations through it once they registered again (overlay relayBack), and the
// session's ESP flows again.
func TestVNetRelayedSessionRestart(t *testing.T) {
	t.Parallel()
	w := newVNet(t, nil)
	an := w.behindNAT(natSymmetric)
	bn := w.behindNAT(natSymmetric)
	rn := w.public()
	w.start()
	r := w.relay(rn)
	a := w.node(0, an, r)
	b := w.node(1, bn, r)
	waitReady(t, r, a, b)
	echoAndDial(t, a, b)
	both(t, a, b, 0, false)
	r.Close()
	r2 := w.relay(rn)
	waitFor(t, 15*time.Second, "registrations with the restarted relay", func() bool {
		return r2.registered(a.HIT()) && r2.registered(b.HIT())
	})
	defer func() {
		st := r2.Stats()
		pa, pb := paths(a, b)
		t.Logf("new relay: %+v, UnknownSPI %d; paths %s/%s", st.Relay, st.Stack.Drops.UnknownSPI, pa, pb)
	}()
	both(t, a, b, 1000, true)
}
