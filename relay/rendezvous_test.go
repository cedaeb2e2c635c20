package relay

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// recorder is a node's UDP socket that keeps a copy of every HIP control
// packet it receives, with its source.
type recorder struct {
	net.PacketConn
	mu   sync.Mutex
	pkts []recorded
	// before, if set, runs before a control packet is handed to the stack.
	before func(wire.PacketType)
}

type recorded struct {
	b    []byte
	from netip.AddrPort
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return &recorder{PacketConn: pc}
}

func (c *recorder) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.PacketConn.ReadFrom(b)
	if err == nil && n > 4 && b[0]|b[1]|b[2]|b[3] == 0 {
		c.mu.Lock()
		c.pkts = append(c.pkts, recorded{append([]byte(nil), b[4:n]...), addrPortOf(from)})
		c.mu.Unlock()
		if p, err := wire.ParsePacket(b[4:n]); err == nil && c.before != nil {
			c.before(p.Type())
		}
	}
	return n, from, err
}

// first returns the first recorded packet of type t.
func (c *recorder) first(t wire.PacketType) (wire.Packet, netip.AddrPort, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.pkts {
		if p, err := wire.ParsePacket(r.b); err == nil && p.Type() == t {
			return p, r.from, true
		}
	}
	return wire.Packet{}, netip.AddrPort{}, false
}

// rendezvousClient starts node n on rec, registered RENDEZVOUS with r.
func rendezvousClient(t *testing.T, r *Server, n int, rec *recorder) *overlay.Stack {
	t.Helper()
	b := newTestStack(t, n, func(c *overlay.Config) { c.PacketConn = rec })
	b.AddPeer(r.HIT(), r.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reg, err := b.Register(ctx, r.HIT(), time.Minute, wire.RegTypeRendezvous)
	if err != nil || len(reg.Granted) != 1 || reg.Granted[0] != wire.RegTypeRendezvous {
		t.Fatalf("RENDEZVOUS registration: %+v, %v", reg, err)
	}
	return b
}

// dialThroughServer has a, which knows b only by the rendezvous server
// r's address, connect to b, and checks that a datagram reaches b.
func dialThroughServer(t *testing.T, r *Server, a, b *overlay.Stack) {
	t.Helper()
	a.AddPeer(b.HIT(), r.Addr())
	la, lb := listen(t, a, 7), listen(t, b, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}
	if _, err := la.WriteTo([]byte("hello"), &overlay.Addr{HIT: b.HIT(), Port: 8}); err != nil {
		t.Fatal(err)
	}
	if got, _ := readOne(t, lb, 5*time.Second); string(got) != "hello" {
		t.Fatalf("b read %q", got)
	}
}

// TestRendezvous: RFC 8004 end to end. b registers RENDEZVOUS with the
// relay; a knows b's HIT and only the relay's address. a's I1 reaches b
// through the relay with FROM (a's address) and RVS_HMAC (§3.3, §4.2); b
// answers a directly with an R1 carrying VIA_RVS (§4.3.3); a sends its I2
// to where the R1 came from (§4.3.4), so the relay carries one packet and
// no ESP, and data flows directly.
func TestRendezvous(t *testing.T) {
	r := relayStack(t)
	recA, recB := newRecorder(t), newRecorder(t)
	b := rendezvousClient(t, r, 1, recB)
	a := newTestStack(t, 0, func(c *overlay.Config) { c.PacketConn = recA })
	dialThroughServer(t, r, a, b)

	i1, i1From, ok := recB.first(wire.I1)
	if !ok || i1From != r.Addr() {
		t.Fatalf("b's I1 from %v (%v), want from the relay %v", i1From, ok, r.Addr())
	}
	q, ok := i1.Param(wire.ParamFrom)
	if !ok {
		t.Fatal("the forwarded I1 has no FROM")
	}
	if f, err := wire.ParseFrom(q.Contents()); err != nil || f.Addr.Unmap() != a.LocalAddr().Addr() {
		t.Fatalf("FROM %+v (%v), want %v", f, err, a.LocalAddr().Addr())
	}
	if _, ok := i1.Param(wire.ParamRVSHMAC); !ok {
		t.Fatal("the forwarded I1 has no RVS_HMAC")
	}
	r1, r1From, ok := recA.first(wire.R1)
	if !ok || r1From != b.LocalAddr() {
		t.Fatalf("a's R1 from %v (%v), want from b %v", r1From, ok, b.LocalAddr())
	}
	if via, ok := handshake.ViaRVS(r1); !ok || via.Unmap() != r.Addr().Addr() {
		t.Fatalf("R1's VIA_RVS %v (%v), want %v", via, ok, r.Addr().Addr())
	}
	if pi, ok := peerInfo(a, b.HIT()); !ok || pi.Locator != b.LocalAddr() {
		t.Fatalf("a's locator for b %+v, want %v", pi, b.LocalAddr())
	}
	st := r.Stats().Relay
	if st.Rendezvoused != 1 || st.ControlForwarded != 0 || st.ESPForwarded != 0 {
		t.Fatalf("relay carried %+v; want the one I1 only", st)
	}
}

// TestRendezvousAddPeerDuringExchange: the locator the R1 through the
// server moves the association to (§4.3.4) stays its locator whatever
// AddPeer the control goroutine serves during the exchange.
//   - In I1-SENT, a direct address that does not answer (on another IP
//     than the server's: followRendezvous compares addresses): before,
//     the locator moved there, the R1 with VIA_RVS was no longer
//     followed, and the I2 went to the silent address.
//   - In I2-SENT, the server's address again: before, the locator Set
//     built then made the configured address current, and the
//     association came up on the server, which forwards no ESP.
func TestRendezvousAddPeerDuringExchange(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for _, tc := range []struct {
		name string
		on   wire.PacketType // the AddPeer is served before this packet
		addr func(r *Server) netip.AddrPort
	}{
		{"I1-SENT", wire.R1, func(*Server) netip.AddrPort { return addrPortOf(silent.LocalAddr()) }},
		{"I2-SENT", wire.R2, (*Server).Addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := relayStack(t)
			recA, recB := newRecorder(t), newRecorder(t)
			b := rendezvousClient(t, r, 1, recB)
			a := newTestStack(t, 0, func(c *overlay.Config) { c.PacketConn = recA })
			var once sync.Once
			recA.before = func(typ wire.PacketType) {
				if typ == tc.on {
					once.Do(func() {
						a.AddPeer(b.HIT(), tc.addr(r))
						time.Sleep(50 * time.Millisecond) // the poke is served first
					})
				}
			}
			dialThroughServer(t, r, a, b)
			if pi, ok := peerInfo(a, b.HIT()); !ok || pi.Locator != b.LocalAddr() {
				t.Fatalf("a's locator for b %+v, want %v", pi, b.LocalAddr())
			}
		})
	}
}

// TestRendezvousAttacks: what an attacker's packets get.
//   - An I1 with its own FROM and RVS_HMAC, sent to the relay for a
//     rendezvous host: dropped by the relay as forged (those parameters
//     are the server's to add).
//   - An I1 with FROM and RVS_HMAC sent straight to the rendezvous host
//     from anywhere but its server: dropped, no R1 (no reflection towards
//     the address in FROM).
//   - Anything but an I1 for a rendezvous host: not forwarded (§3.3).
func TestRendezvousAttacks(t *testing.T) {
	r := relayStack(t)
	recB := newRecorder(t)
	b := rendezvousClient(t, r, 1, recB)
	atk, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer atk.Close()
	victim := netip.MustParseAddrPort("127.0.0.1:9")
	i1 := buildI1(t, 2, b.HIT(), victim)

	send := func(to netip.AddrPort, pkt []byte) {
		t.Helper()
		if _, err := atk.WriteTo(append([]byte{0, 0, 0, 0}, pkt...), net.UDPAddrFromAddrPort(to)); err != nil {
			t.Fatal(err)
		}
	}
	before, bBefore := r.Stats().Relay, b.Stats()
	send(r.Addr(), i1)
	waitFor(t, 2*time.Second, "the relay's drop", func() bool { return r.Stats().Relay.Forged > before.Forged })
	send(b.LocalAddr(), i1)
	waitFor(t, 2*time.Second, "b's drop", func() bool { return b.Stats().Drops.ControlRejected > bBefore.Drops.ControlRejected })
	upd := buildUpdate(t, b.HIT())
	send(r.Addr(), upd)
	waitFor(t, 2*time.Second, "the relay's drop of an UPDATE", func() bool {
		return r.Stats().Relay.Unregistered > before.Unregistered
	})
	time.Sleep(100 * time.Millisecond)
	if st := r.Stats().Relay; st.Rendezvoused != before.Rendezvoused || st.ControlForwarded != before.ControlForwarded {
		t.Fatalf("the relay forwarded an attacker's packet: %+v", st)
	}
	if bs := b.Stats(); bs.ControlOut != bBefore.ControlOut {
		t.Fatalf("b sent %d control packets after the attacker's I1s", bs.ControlOut-bBefore.ControlOut)
	}
}

// buildI1 is an I1 from identity n to h that carries a FROM and an
// RVS_HMAC of its own making (any key: it cannot have the server's).
func buildI1(t *testing.T, n int, h wire.HIT, from netip.AddrPort) []byte {
	t.Helper()
	var bl wire.Builder
	bl.Reset(nil, wire.I1, wire.HIT(testKey(t, n).HIT()), h)
	bl.Add(wire.DHGroupList{Groups: []uint8{wire.DHGroupP256}})
	bl.Add(wire.From{Addr: from.Addr()})
	bl.Add(wire.RVSHMAC{MAC: make([]byte, 32)})
	b, err := bl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildUpdate is an (unauthenticated) UPDATE for h.
func buildUpdate(t *testing.T, h wire.HIT) []byte {
	t.Helper()
	var bl wire.Builder
	bl.Reset(nil, wire.UPDATE, wire.HIT(testKey(t, 2).HIT()), h)
	bl.Add(wire.Seq{UpdateID: 1})
	b, err := bl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
