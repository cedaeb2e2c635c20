package overlay_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/mitm"
	"hipnet.dev/internal/testkey"
	"hipnet.dev/locator"
	"hipnet.dev/nat"
	"hipnet.dev/overlay"
	"hipnet.dev/relay"
)

// The path of an association through a relay, decided by its locator Set
// like a direct one's (locators.go, path.go): two nodes behind a real
// relay (package relay) on loopback, whose ICE checks find the direct
// pair. These tests live outside package overlay because package relay
// imports it.

// TestRelayedPairFallback: the ICE pair goes dark while the association
// is idle. The Set notices the peer's keepalives stopped (locator
// Config.PairSilence), probes the pair, and falls back to the relay
// (ReasonFallback), with a rekey through the relay so that it learns the
// SPIs in use; data flows through the relay. Packets from the pair's
// address do not bring the path back by themselves: a forged one fails
// authentication, and a genuine one that an attacker held back and
// releases later is authenticated, but only starts a check of the pair,
// which the dark pair does not answer. When the pair works again, the
// peer's keepalives arrive on it, the check is answered, and traffic
// moves back (ReasonRecovered). Each switch is logged ("path") and
// counted (Stats.Paths.Switches).
func TestRelayedPairFallback(t *testing.T) {
	r := startRelay(t)
	ga := newGate(t)
	logA := &pathLog{}
	a := relayedNode(t, 0, r, func(c *overlay.Config) {
		c.PacketConn = ga
		c.Logger = slog.New(logA)
	})
	b := relayedNode(t, 1, r, nil)
	la, lb := connectRelayed(t, a, b)
	exchange(t, a, b, la, lb, 0)

	// ICE nominates the pair; the Set moves the association there.
	waitFor(t, 10*time.Second, "the direct pair both ways", func() bool {
		return pathOf(a, b) == "direct" && pathOf(b, a) == "direct"
	})
	pa := info(t, a, b)
	pair := pa.Locator
	if !hasLocator(pa, "ice", "active", true) || !hasLocator(pa, "relay", "active", false) {
		t.Fatalf("a's locators for b %+v: want the ICE pair current and the relay standby, both active", pa.Locators)
	}
	if !logA.has("path=direct reason=better") {
		t.Fatalf("no switch to the pair in a's log: %v", logA.list())
	}
	exchange(t, a, b, la, lb, 10)

	// An attacker on the pair holds back one of b's data packets to a.
	ga.holdFrom(pair)
	for i := 0; ga.held() == nil; i++ {
		if i == 50 {
			t.Fatal("no ESP from the pair to hold back")
		}
		lb.WriteTo(bytes.Repeat([]byte{0xee}, 120), &overlay.Addr{HIT: a.HIT(), Port: 7})
		time.Sleep(10 * time.Millisecond)
	}
	drain(la)

	// The pair goes dark, both ways, while nothing is sent.
	switches, outSPI := a.Stats().Paths.Switches, pa.OutSPI
	ctlRelayed := r.Stats().Relay.ControlForwarded
	mark := logA.mark()
	cutAt := time.Now()
	ga.cut(pair)
	waitFor(t, 10*time.Second, "the fallback to the relay both ways", func() bool {
		return pathOf(a, b) == "relayed" && pathOf(b, a) == "relayed"
	})
	t.Logf("relayed %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	if !logA.hasSince(mark, "path=relayed reason=fallback") {
		t.Fatalf("no fallback in a's log: %v", logA.list())
	}
	if n := a.Stats().Paths.Switches; n <= switches {
		t.Fatalf("switches %d after the fallback, %d before", n, switches)
	}
	// The rekey through the relay: new SPIs, and the UPDATEs went through
	// the relay, the only path left.
	waitFor(t, 5*time.Second, "a rekey through the relay", func() bool {
		p := info(t, a, b)
		return p.OutSPI != outSPI && p.State == "ESTABLISHED" && r.Stats().Relay.ControlForwarded >= ctlRelayed+2
	})
	esp := r.Stats().Relay.ESPForwarded
	exchange(t, a, b, la, lb, 20)
	if r.Stats().Relay.ESPForwarded == esp {
		t.Fatal("the relay forwarded no ESP after the fallback")
	}
	if pa := info(t, a, b); !hasLocator(pa, "relay", "active", true) || !hasLocator(pa, "ice", "failed", false) {
		t.Fatalf("a's locators for b after the fallback %+v: want the relay current, the pair failed", pa.Locators)
	}

	// The attacks, from the pair's address while it is dark.
	switches = a.Stats().Paths.Switches
	mark = logA.mark()
	auth := a.Stats().Drops.AuthFailure
	forged := make([]byte, 120)
	rand.Read(forged)
	binary.BigEndian.PutUint32(forged, info(t, a, b).InSPI)
	binary.BigEndian.PutUint32(forged[4:], 1<<20)
	ga.spoof(t, forged, pair)
	waitFor(t, 2*time.Second, "the forged packet refused", func() bool { return a.Stats().Drops.AuthFailure > auth })
	// The held-back packet is released once a check may follow a packet
	// (locator Config.RecoveryMin after the failure): it starts one, which
	// the dark pair does not answer.
	time.Sleep(locator.DefaultRecoveryMin)
	before := a.Stats()
	ga.spoof(t, ga.held(), pair)
	time.Sleep(1500 * time.Millisecond) // the check: 3 probes 200 ms apart
	after := a.Stats()
	t.Logf("the held-back packet: ESP in %d, replays %d, unknown SPI %d, probes sent %d",
		after.ESPIn-before.ESPIn, after.Drops.Replay-before.Drops.Replay, after.Drops.UnknownSPI-before.Drops.UnknownSPI,
		after.Paths.ProbesSent-before.Paths.ProbesSent)
	drain(la)
	if after.ESPIn > before.ESPIn && after.Paths.ProbesSent == before.Paths.ProbesSent {
		t.Fatal("an authenticated packet from the failed pair started no check of it")
	}
	if p := pathOf(a, b); p != "relayed" || a.Stats().Paths.Switches != switches || logA.hasSince(mark, "path=direct") {
		t.Fatalf("packets from the dark pair's address moved the path: %s, %d switches (%d before); log %v",
			p, a.Stats().Paths.Switches, switches, logA.list())
	}

	// The pair works again: traffic returns to it.
	mark = logA.mark()
	healAt := time.Now()
	ga.cut(netip.AddrPort{})
	waitFor(t, 10*time.Second, "the direct pair again, both ways", func() bool {
		return pathOf(a, b) == "direct" && pathOf(b, a) == "direct"
	})
	t.Logf("direct %v after the pair healed", time.Since(healAt).Round(time.Millisecond))
	if !logA.hasSince(mark, "path=direct reason=recovered") {
		t.Fatalf("no recovery in a's log: %v", logA.list())
	}
	esp = r.Stats().Relay.ESPForwarded
	exchange(t, a, b, la, lb, 30)
	if n := r.Stats().Relay.ESPForwarded - esp; n != 0 {
		t.Fatalf("the relay forwarded %d ESP packets on the direct pair", n)
	}
	t.Logf("a's path log: %v; switches %d", logA.list(), a.Stats().Paths.Switches)
}

// TestRelayedLocators: PeerInfo.Locators of an association through a
// relay that ICE cannot take direct (no ICE-STUN-UDP) holds the relay,
// current and active, once the association is used, and its path is
// "relayed"; the Set's first choice is no switch. Idle, the Set is
// dropped (it holds nothing the next one cannot be built from), and the
// next use builds it again, on the relay, still without a switch.
func TestRelayedLocators(t *testing.T) {
	r := startRelay(t)
	noICE := func(c *overlay.Config) { c.Handshake.NATModes = []uint16{wire.NATModeUDPEncapsulation} }
	a := relayedNode(t, 0, r, noICE)
	b := relayedNode(t, 1, r, noICE)
	la, lb := connectRelayed(t, a, b)
	check := func(when string) {
		t.Helper()
		for _, s := range [][2]*overlay.Stack{{a, b}, {b, a}} {
			// The data path's use pokes the control goroutine, which
			// builds the Set: a moment after the exchange, not during it.
			var p overlay.PeerInfo
			built := func() bool {
				p = info(t, s[0], s[1])
				return len(p.Locators) > 0
			}
			for end := time.Now().Add(2 * time.Second); !built() && time.Now().Before(end); {
				time.Sleep(2 * time.Millisecond)
			}
			if p.Path != "relayed" || p.Locator != r.Addr() || len(p.Locators) != 1 || !hasLocator(p, "relay", "active", true) {
				t.Fatalf("%s: %v's view of %v: path %s at %v, locators %+v; want relayed through %v",
					when, s[0].HIT(), s[1].HIT(), p.Path, p.Locator, p.Locators, r.Addr())
			}
			if n := s[0].Stats().Paths.Switches; n != 0 {
				t.Fatalf("%s: %d switches on a path that never changed", when, n)
			}
		}
	}
	exchange(t, a, b, la, lb, 0)
	check("in use")
	defer func() {
		if t.Failed() { // a Set kept: a check under way, or left suspect?
			t.Logf("a: locators %+v, %+v", info(t, a, b).Locators, a.Stats().Paths)
			t.Logf("b: locators %+v, %+v", info(t, b, a).Locators, b.Stats().Paths)
		}
	}()
	waitFor(t, 5*time.Second, "the idle association's Set dropped", func() bool {
		return len(info(t, a, b).Locators) == 0 && len(info(t, b, a).Locators) == 0
	})
	if p := info(t, a, b); p.Path != "relayed" || p.Locator != r.Addr() {
		t.Fatalf("idle: path %s at %v", p.Path, p.Locator)
	}
	exchange(t, a, b, la, lb, 1)
	check("in use again")
}

// TestRelayedProbeThroughRelay: the relay locator is checked through the
// relay. a sends to b, and b's answers stop reaching a (ESP from the
// relay is lost on a's side): a's Set finds the relay path silent and
// probes it, and the probe, an UPDATE with ECHO_REQUEST_SIGNED, goes
// through the relay with RELAY_TO (a is the registered end b dialled),
// reaches b, and b's signed answer comes back the same way: the relay
// locator stays, with no switch, as it would on a direct path that only
// lost a direction.
func TestRelayedProbeThroughRelay(t *testing.T) {
	r := startRelay(t)
	noICE := func(c *overlay.Config) { c.Handshake.NATModes = []uint16{wire.NATModeUDPEncapsulation} }
	ga := newGate(t)
	a := relayedNode(t, 0, r, func(c *overlay.Config) { noICE(c); c.PacketConn = ga })
	b := relayedNode(t, 1, r, noICE)
	la, lb := connectRelayed(t, a, b)
	exchange(t, a, b, la, lb, 0)
	before, ctl := a.Stats().Paths, r.Stats().Relay.ControlForwarded
	ga.dropESPFrom(r.Addr())
	for i := range 60 {
		la.WriteTo([]byte{byte(i)}, &overlay.Addr{HIT: b.HIT(), Port: 8})
		time.Sleep(20 * time.Millisecond)
	}
	ga.dropESPFrom(netip.AddrPort{})
	after := a.Stats().Paths
	t.Logf("probes sent %d, answered %d; the relay forwarded %d control packets",
		after.ProbesSent-before.ProbesSent, after.ProbesAnswered-before.ProbesAnswered, r.Stats().Relay.ControlForwarded-ctl)
	if after.ProbesSent == before.ProbesSent || after.ProbesAnswered == before.ProbesAnswered {
		t.Fatal("the silent relay path was not probed, or the probe not answered")
	}
	if r.Stats().Relay.ControlForwarded < ctl+2 {
		t.Fatal("the probe and its answer did not go through the relay")
	}
	if p := info(t, a, b); p.Path != "relayed" || !hasLocator(p, "relay", "active", true) || after.Switches != 0 {
		t.Fatalf("path %s, locators %+v, %d switches", p.Path, p.Locators, after.Switches)
	}
	// The check is over on both sides (a's probe answered, b's doubts
	// expired) though neither has received ESP since: idle, both drop
	// their Sets, which a path still under suspicion would keep.
	waitFor(t, 6*time.Second, "both Sets dropped after the check, idle", func() bool {
		return len(info(t, a, b).Locators) == 0 && len(info(t, b, a).Locators) == 0
	})
	exchange(t, a, b, la, lb, 1)
}

// startRelay starts a relay server (identity 9) on loopback.
func startRelay(t *testing.T) *relay.Server {
	t.Helper()
	r, err := relay.New(relay.Config{Identity: testkey.Key(t, 9), ListenAddr: "127.0.0.1:0", Handshake: fastHS()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRelayedPairDarkOneWay: the pair goes dark from b to a only. a
// hears b no more there, falls back to the relay, and rekeys through it;
// b still hears a's keepalives on the pair, so the pair is never silent
// for b. b answers the rekey through the relay, the way it came (before:
// on the pair, where it was lost, and a gave the association up after
// its retries), and a's packets through the relay make b check the pair
// at once: b falls back too, and data flows both ways through the relay.
func TestRelayedPairDarkOneWay(t *testing.T) {
	r := startRelay(t)
	ga := newGate(t)
	a := relayedNode(t, 0, r, func(c *overlay.Config) { c.PacketConn = ga })
	b := relayedNode(t, 1, r, nil)
	la, lb := connectRelayed(t, a, b)
	waitFor(t, 10*time.Second, "the direct pair both ways", func() bool {
		return pathOf(a, b) == "direct" && pathOf(b, a) == "direct"
	})
	exchange(t, a, b, la, lb, 0)
	pa := info(t, a, b)
	ctl := r.Stats().Relay.ControlForwarded
	ga.cutFrom(pa.Locator)
	waitFor(t, 10*time.Second, "a's rekey through the relay", func() bool {
		p := info(t, a, b)
		return pathOf(a, b) == "relayed" && p.OutSPI != pa.OutSPI && p.State == "ESTABLISHED"
	})
	if n := r.Stats().Relay.ControlForwarded - ctl; n < 2 {
		t.Fatalf("the relay forwarded %d control packets, want the rekey's both ways", n)
	}
	waitFor(t, 5*time.Second, "b's fallback to the relay", func() bool { return pathOf(b, a) == "relayed" })
	esp := r.Stats().Relay.ESPForwarded
	exchange(t, a, b, la, lb, 1)
	if r.Stats().Relay.ESPForwarded == esp {
		t.Fatal("the relay forwarded no ESP after the fallback")
	}
	if p := info(t, a, b); p.State != "ESTABLISHED" {
		t.Fatalf("a's association %s", p.State)
	}
}

// TestRelayedPeerRestarts: b, whose association with a moved from the
// relay to an ICE pair, stops without a CLOSE (it crashed) and starts
// again with the same identity on another port. Its new base exchange
// through the relay replaces a's association in place, and the two find
// a direct pair again. Before, a kept the old association's ICE session,
// keyed with the old KEYMAT, which failed b's new checks, and its
// nominated pair, a dead address: the association stayed relayed.
func TestRelayedPeerRestarts(t *testing.T) {
	r := startRelay(t)
	a := relayedNode(t, 0, r, nil)
	gb := newGate(t)
	b := relayedNode(t, 1, r, func(c *overlay.Config) { c.PacketConn = gb })
	la, _ := connectRelayed(t, a, b)
	waitFor(t, 10*time.Second, "the direct pair both ways", func() bool {
		return pathOf(a, b) == "direct" && pathOf(b, a) == "direct"
	})
	old := info(t, a, b)
	gb.mute() // b crashes: no CLOSE leaves it
	b.Close()
	b2 := relayedNode(t, 1, r, nil)
	lb := listenInner(t, b2, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b2.Connect(ctx, a.HIT()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a direct pair both ways after the restart", func() bool {
		return pathOf(a, b2) == "direct" && pathOf(b2, a) == "direct"
	})
	if p := info(t, a, b2); p.InSPI == old.InSPI || p.Locator == old.Locator {
		t.Fatalf("a's association with b after its restart %+v, before %+v: want new SAs and the new pair", p, old)
	}
	exchange(t, a, b2, la, lb, 0)
}

func fastHS() handshake.Config {
	return handshake.Config{RetransmitTimeout: 50 * time.Millisecond, Retries: 3, PuzzleDifficulty: 1}
}

// relayedNode starts a node (identity n) registered with r, with 200 ms
// keepalives, and waits for its registration.
func relayedNode(t *testing.T, n int, r *relay.Server, mod func(*overlay.Config)) *overlay.Stack {
	t.Helper()
	return relayedNodeAt(t, n, r, r.Addr(), mod)
}

// relayedNodeAt is relayedNode with the relay reached at addr.
func relayedNodeAt(t *testing.T, n int, r *relay.Server, addr netip.AddrPort, mods ...func(*overlay.Config)) *overlay.Stack {
	t.Helper()
	cfg := overlay.Config{Identity: testkey.Key(t, n), ListenAddr: "127.0.0.1:0", Handshake: fastHS(),
		Relays: []overlay.RelayAddr{{HIT: r.HIT(), Addr: addr}}, KeepaliveInterval: 200 * time.Millisecond}
	for _, mod := range mods {
		if mod != nil {
			mod(&cfg)
		}
	}
	s, err := overlay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.WaitReachable(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

func listenInner(t *testing.T, s *overlay.Stack, port int) *overlay.InnerConn {
	t.Helper()
	c, err := s.ListenInner(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends a datagram from b to a and one back, each resent until it
// arrives (a path may be changing), tagged with id.
func exchange(t *testing.T, a, b *overlay.Stack, la, lb *overlay.InnerConn, id byte) {
	t.Helper()
	send := func(from *overlay.InnerConn, to *overlay.Stack, port int, at *overlay.InnerConn, msg []byte) {
		t.Helper()
		buf := make([]byte, 2048)
		for try := 0; ; try++ {
			if _, err := from.WriteTo(msg, &overlay.Addr{HIT: to.HIT(), Port: port}); err != nil {
				t.Fatal(err)
			}
			at.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			for {
				n, _, err := at.ReadFrom(buf)
				if err != nil {
					break
				}
				if bytes.Equal(buf[:n], msg) {
					return
				}
			}
			if try == 20 {
				t.Fatalf("datagram %x lost 20 times", msg)
			}
		}
	}
	send(lb, a, 7, la, []byte{id, 'b', 'a'})
	send(la, b, 8, lb, []byte{id, 'a', 'b'})
}

// drain discards what c holds.
func drain(c *overlay.InnerConn) {
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := c.ReadFrom(buf); err != nil {
			c.SetReadDeadline(time.Time{})
			return
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func info(t *testing.T, s, peer *overlay.Stack) overlay.PeerInfo {
	t.Helper()
	for _, p := range s.Peers() {
		if p.HIT == peer.HIT() {
			return p
		}
	}
	t.Fatalf("%v has no association with %v", s.HIT(), peer.HIT())
	return overlay.PeerInfo{}
}

func pathOf(s, peer *overlay.Stack) string {
	for _, p := range s.Peers() {
		if p.HIT == peer.HIT() {
			return p.Path
		}
	}
	return ""
}

// hasLocator reports whether p lists a locator of origin in state, current
// or not.
func hasLocator(p overlay.PeerInfo, origin, state string, current bool) bool {
	for _, l := range p.Locators {
		if l.Origin == origin && l.State == state && l.Current == current {
			return true
		}
	}
	return false
}

// gate is a node's socket that can cut its traffic with one address
// (both ways, as a path that goes dark), lose the ESP from an address,
// hold back the next ESP data packet from an address, and deliver
// datagrams as if they came from any address (spoof): what a network and
// an attacker on the path can do.
type gate struct {
	net.PacketConn
	spoofer *net.UDPConn

	mu       sync.Mutex
	dark     netip.AddrPort
	deaf     netip.AddrPort // cutFrom
	muted    bool           // mute
	noESP    netip.AddrPort
	holdAddr netip.AddrPort
	kept     []byte
	spoofAs  netip.AddrPort
	spoofed  atomic.Int64
}

func newGate(t *testing.T) *gate {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return &gate{PacketConn: pc, spoofer: sp}
}

func (g *gate) cut(a netip.AddrPort) {
	g.mu.Lock()
	g.dark = a
	g.mu.Unlock()
}

// mute loses everything the node sends.
func (g *gate) mute() {
	g.mu.Lock()
	g.muted = true
	g.mu.Unlock()
}

// cutFrom loses what comes from a; what goes to a passes.
func (g *gate) cutFrom(a netip.AddrPort) {
	g.mu.Lock()
	g.deaf = a
	g.mu.Unlock()
}

// dropESPFrom loses the ESP that comes from a (control and STUN pass).
func (g *gate) dropESPFrom(a netip.AddrPort) {
	g.mu.Lock()
	g.noESP = a
	g.mu.Unlock()
}

func (g *gate) holdFrom(a netip.AddrPort) {
	g.mu.Lock()
	g.holdAddr = a
	g.mu.Unlock()
}

func (g *gate) held() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.kept
}

// spoof delivers b to the node as if it came from from.
func (g *gate) spoof(t *testing.T, b []byte, from netip.AddrPort) {
	t.Helper()
	g.mu.Lock()
	g.spoofAs = from
	g.mu.Unlock()
	n := g.spoofed.Load()
	if _, err := g.spoofer.WriteToUDPAddrPort(b, addrPort(g.PacketConn.LocalAddr())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the spoofed datagram", func() bool { return g.spoofed.Load() > n })
}

func (g *gate) WriteTo(p []byte, to net.Addr) (int, error) {
	g.mu.Lock()
	dark := g.muted || g.dark.IsValid() && addrPort(to) == g.dark
	g.mu.Unlock()
	if dark {
		return len(p), nil
	}
	return g.PacketConn.WriteTo(p, to)
}

func (g *gate) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, from, err := g.PacketConn.ReadFrom(p)
		if err != nil {
			return n, from, err
		}
		src := addrPort(from)
		g.mu.Lock()
		switch {
		case src == addrPort(g.spoofer.LocalAddr()):
			from = net.UDPAddrFromAddrPort(g.spoofAs)
			g.spoofed.Add(1)
		case g.dark.IsValid() && src == g.dark, g.deaf.IsValid() && src == g.deaf,
			g.noESP.IsValid() && src == g.noESP && overlay.Classify(p[:n]) == overlay.KindESP:
			g.mu.Unlock()
			continue
		case g.holdAddr.IsValid() && src == g.holdAddr && g.kept == nil && n > 100 && binary.BigEndian.Uint32(p) != 0:
			g.kept = append([]byte(nil), p[:n]...)
			g.mu.Unlock()
			continue
		}
		g.mu.Unlock()
		return n, from, nil
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// pathLog is a slog.Handler that keeps the "path" records: "path=P
// reason=R".
type pathLog struct {
	mu  sync.Mutex
	evs []string
}

func (h *pathLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *pathLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "path" {
		return nil
	}
	var path, reason string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "path":
			path = a.Value.String()
		case "reason":
			reason = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	h.evs = append(h.evs, fmt.Sprintf("path=%s reason=%s", path, reason))
	h.mu.Unlock()
	return nil
}

func (h *pathLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *pathLog) WithGroup(string) slog.Handler      { return h }

func (h *pathLog) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.evs...)
}

func (h *pathLog) mark() int { return len(h.list()) }

func (h *pathLog) has(prefix string) bool { return h.hasSince(0, prefix) }

func (h *pathLog) hasSince(mark int, prefix string) bool {
	for _, e := range h.list()[mark:] {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

// connectRelayed binds inner port 7 on a and 8 on b and has b connect to
// a, which it knows only through their relay.
func connectRelayed(t *testing.T, a, b *overlay.Stack) (la, lb *overlay.InnerConn) {
	t.Helper()
	la, lb = listenInner(t, a, 7), listenInner(t, b, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.HIT()); err != nil {
		t.Fatal(err)
	}
	return la, lb
}

// TestRelayForgedRestartIgnored: the keepalive's STUN answers are not
// authenticated, and an attacker on the path between a node and its relay
// rewrites each one to say that the relay restarted (another instance).
// The node asks the association before it believes it: the relay answers
// an echo over it, so the association and the registration stay; before,
// every keepalive dropped and rebuilt them, cutting the peers that reach
// the node through the relay.
func TestRelayForgedRestartIgnored(t *testing.T) {
	r := startRelay(t)
	s, started, forged := forgedKeepalives(t, r, func(m *stun.Message, xa *stun.XORMappedAddress, n int32) []stun.Setter {
		inst := binary.BigEndian.AppendUint64(nil, 0xdead0000+uint64(n))
		return []stun.Setter{xa, stun.RawAttribute{Type: nat.AttrInstance, Value: inst}}
	})
	if err := s.Reachable(); err != nil {
		t.Errorf("after %d forged restarts: %v", forged, err)
	}
	if n := s.Stats().BEX.Started - started; n != 0 {
		t.Errorf("%d forged answers started %d base exchanges with the relay", forged, n)
	}
}

// TestRelayForgedReflexiveIgnored: as TestRelayForgedRestartIgnored, but
// the attacker rewrites the address in each answer: our NAT would have
// moved us. The node refreshes its registration, and the relay's answer
// names, in REG_FROM under its signature, the address it still sees:
// the association, the registration and our reflexive address (an ICE
// candidate we give peers) stay. Before, every keepalive dropped and
// rebuilt the association, and the forged address was our candidate.
func TestRelayForgedReflexiveIgnored(t *testing.T) {
	r := startRelay(t)
	elsewhere := netip.MustParseAddrPort("203.0.113.9:4444")
	s, started, forged := forgedKeepalives(t, r, func(m *stun.Message, _ *stun.XORMappedAddress, n int32) []stun.Setter {
		return []stun.Setter{&stun.XORMappedAddress{IP: elsewhere.Addr().AsSlice(), Port: int(elsewhere.Port()) + int(n)}}
	})
	if err := s.Reachable(); err != nil {
		t.Errorf("after %d forged addresses: %v", forged, err)
	}
	if n := s.Stats().BEX.Started - started; n != 0 {
		t.Errorf("%d forged answers started %d base exchanges with the relay", forged, n)
	}
	if st := s.Status(); len(st.Relays) != 1 || st.Relays[0].Reflexive.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("relays %+v, want our reflexive address as the relay sees it", st.Relays)
	}
}

// forgedKeepalives starts a node registered with r through an attacker on
// the path who, once the registration is done, replaces each STUN answer
// to the node's keepalives with one made of the transaction ID and what
// rewrite returns for the genuine XOR-MAPPED-ADDRESS (n counts the
// forgeries from 1). It returns the node after four forgeries, with the
// base exchanges it had started before them.
func forgedKeepalives(t *testing.T, r *relay.Server, rewrite func(m *stun.Message, xa *stun.XORMappedAddress, n int32) []stun.Setter) (*overlay.Stack, uint64, int32) {
	t.Helper()
	px, err := mitm.New(r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	var forged atomic.Int32
	px.SetHook(func(d *mitm.Datagram) mitm.Verdict {
		if d.Dir != mitm.ToClient || d.Kind() != mitm.KindSTUN || forged.Load() < 0 {
			return mitm.Pass
		}
		var m stun.Message
		if stun.Decode(bytes.Clone(d.Data), &m) != nil || m.Type != stun.BindingSuccess {
			return mitm.Pass
		}
		var xa stun.XORMappedAddress
		if xa.GetFrom(&m) != nil {
			return mitm.Pass
		}
		setters := append([]stun.Setter{stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess},
			rewrite(&m, &xa, forged.Add(1))...)
		f, err := stun.Build(append(setters, stun.Fingerprint)...)
		if err != nil {
			return mitm.Pass
		}
		return mitm.Replace(f.Raw)
	})
	forged.Store(-1) // the registration's own answer passes
	s := relayedNodeAt(t, 1, r, px.Addr())
	started := s.Stats().BEX.Started
	forged.Store(0)
	deadline := time.Now().Add(15 * time.Second)
	for forged.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := forged.Load(); n < 4 {
		t.Fatalf("only %d keepalive answers forged", n)
	}
	return s, started, forged.Load()
}

// TestLostStateDoesNotPoisonDial: an attacker makes b believe that a, a
// peer b reaches only through their relay, holds an association b lost,
// at the attacker's address: a forged check in a's name, then a's own R1,
// which anyone gets by sending a an I1 (in b's name), replayed from there
// (overlay lostState). b's application then dials a: it goes through the
// relay and connects, instead of waiting on the exchange toward the
// attacker.
func TestLostStateDoesNotPoisonDial(t *testing.T) {
	r := startRelay(t)
	a := relayedNode(t, 1, r, nil)
	b := relayedNode(t, 2, r, nil)
	atk, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer atk.Close()
	send := func(pkt []byte, to netip.AddrPort) {
		if _, err := atk.WriteTo(wire.AppendUDPControl(nil, pkt), net.UDPAddrFromAddrPort(to)); err != nil {
			t.Fatal(err)
		}
	}
	await := func(typ wire.PacketType) []byte {
		buf := make([]byte, 4096)
		for {
			atk.SetReadDeadline(time.Now().Add(3 * time.Second))
			n, _, err := atk.ReadFrom(buf)
			if err != nil {
				t.Fatalf("waiting for %v: %v", typ, err)
			}
			if pkt, err := wire.ParsePacket(buf[wire.NonESPMarkerLen:n]); err == nil && pkt.Type() == typ {
				return append([]byte(nil), pkt...)
			}
		}
	}
	var bl wire.Builder
	bl.Reset(nil, wire.I1, b.HIT(), a.HIT())
	bl.Add(wire.DHGroupList{Groups: []uint8{wire.DHGroupP256, wire.DHGroupP384, wire.DHGroupMODP1536}})
	i1, _ := bl.Bytes()
	send(i1, a.LocalAddr())
	r1 := await(wire.R1) // a's R1, for "b"

	bl.Reset(nil, wire.UPDATE, a.HIT(), b.HIT()) // a check in a's name
	bl.AddRaw(wire.ParamEchoRequestSigned, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	bl.AddRaw(wire.ParamHIPMAC, make([]byte, 32))
	bl.AddRaw(wire.ParamHIPSignature, append([]byte{0, 7}, make([]byte, 64)...))
	upd, _ := bl.Bytes()
	send(upd, b.LocalAddr())
	await(wire.I1) // b asks "a" at the attacker's address
	send(r1, b.LocalAddr())
	await(wire.I2) // b's exchange toward the attacker: one I2, never sent again
	n := 0
	buf := make([]byte, 4096)
	for {
		atk.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) // ten retransmission timeouts
		m, _, err := atk.ReadFrom(buf)
		if err != nil {
			break
		}
		if pkt, err := wire.ParsePacket(buf[wire.NonESPMarkerLen:m]); err == nil && pkt.Type() == wire.I2 {
			n++
		}
	}
	if n != 0 {
		t.Errorf("b sent the I2 toward an address nothing vouched for %d times more", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Connect(ctx, a.HIT()); err != nil {
		t.Fatalf("b's dial of a, which it reaches through the relay: %v", err)
	}
}
