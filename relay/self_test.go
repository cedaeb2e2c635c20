package relay

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// TestSendable: RELAY_TO never makes the relay send to its own socket,
// nor to its machine (loopback, or any port on its own addresses) for a
// host that is not on the machine (a UDP reflector into the relay's local
// services), unless it names a local Initiator the relay just relayed
// for; a host on loopback, as in the tests, still reaches loopback peers.
func TestSendable(t *testing.T) {
	ap := netip.MustParseAddrPort
	outside, local := ap("198.51.100.7:4000"), ap("127.0.0.1:5000")
	specific := &selfView{listen: ap("203.0.113.5:10500")}
	onLoopback := &selfView{listen: ap("127.0.0.1:10500")}
	any4 := &selfView{listen: ap("0.0.0.0:10500"), host: []netip.Addr{netip.MustParseAddr("203.0.113.5"), netip.MustParseAddr("192.168.1.2")}}
	any6 := &selfView{listen: ap("[::]:10500"), host: []netip.Addr{netip.MustParseAddr("2001:db8::5")}}
	for _, c := range []struct {
		name     string
		v        *selfView
		to, from netip.AddrPort
		want     bool
		seen     bool // to is a local source relayed for a moment ago
	}{
		{"a peer", specific, ap("198.51.100.9:4000"), outside, true, false},
		{"own socket", specific, ap("203.0.113.5:10500"), outside, false, false},
		{"own socket, v4-mapped", specific, ap("[::ffff:203.0.113.5]:10500"), outside, false, false},
		{"own address, another port, from outside", specific, ap("203.0.113.5:10501"), outside, false, false},
		{"own address, another port, from the machine", specific, ap("203.0.113.5:10501"), ap("203.0.113.5:5000"), true, false},
		{"own address, the Initiator relayed for", specific, ap("203.0.113.5:10501"), outside, true, true},
		{"unspecified socket: interface address, another port", any4, ap("192.168.1.2:53"), outside, false, false},
		{"loopback from outside, the Initiator relayed for", specific, ap("127.0.0.1:6000"), outside, true, true},
		{"own socket, even relayed for", specific, ap("203.0.113.5:10500"), outside, false, true},
		{"loopback from outside", specific, ap("127.0.0.1:6000"), outside, false, false},
		{"loopback /8 from outside", specific, ap("127.1.2.3:6000"), outside, false, false},
		{"v4-mapped loopback from outside", specific, ap("[::ffff:127.0.0.1]:6000"), outside, false, false},
		{"::1 from outside", specific, ap("[::1]:6000"), outside, false, false},
		{"::1 from ::1", specific, ap("[::1]:6000"), ap("[::1]:5000"), true, false},
		{"loopback peer of a loopback host", onLoopback, ap("127.0.0.1:6000"), local, true, false},
		{"own loopback socket, even from loopback", onLoopback, ap("127.0.0.1:10500"), local, false, false},
		{"unspecified socket: interface address", any4, ap("192.168.1.2:10500"), outside, false, false},
		{"unspecified socket: public interface address", any4, ap("203.0.113.5:10500"), outside, false, false},
		{"unspecified socket: loopback, from loopback", any4, ap("127.0.0.1:10500"), local, false, false},
		{"unspecified socket: another host, same port", any4, ap("198.51.100.9:10500"), outside, true, false},
		{"unspecified v6 socket: interface address", any6, ap("[2001:db8::5]:10500"), outside, false, false},
		{"unspecified v6 socket: ::1", any6, ap("[::1]:10500"), ap("[::1]:5000"), false, false},
		{"address not known yet", nil, ap("198.51.100.9:4000"), outside, false, false},
		{"unspecified target", specific, ap("0.0.0.0:4000"), outside, false, false},
		{"broadcast", specific, ap("255.255.255.255:4000"), outside, false, false},
	} {
		if got := sendable(c.to, c.from, c.v, c.seen); got != c.want {
			t.Errorf("%s: sendable(%v from %v) = %v, want %v", c.name, c.to, c.from, got, c.want)
		}
	}
}

// TestESPNeverToSelf: no ESP forwarding entry sends to the relay's own
// socket, whoever announces it: a peer seen at the relay's address (its
// SPI held, then activated by the host's answer), or a host whose
// locator is the relay's.
func TestESPNeverToSelf(t *testing.T) {
	for _, listen := range []string{"198.18.0.100:10500", "0.0.0.0:10500"} {
		r := testForwarder(t)
		r.setSelf(netip.MustParseAddrPort(listen))
		self := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.100"), 10500)
		if r.self.Load().listen.Addr().IsUnspecified() {
			self = netip.MustParseAddrPort("127.0.0.1:10500")
		}
		h, p, q := hitN(1), hitN(2), hitN(3)
		hAt, pAt := netip.MustParseAddrPort("198.18.0.1:1000"), netip.MustParseAddrPort("198.18.0.2:2000")
		grantRelay(t, r, h)
		grantRelay(t, r, q)
		now := time.Now()
		relayed(t, r, h, p, hAt, self, 0x1111, 0x2222, now) // h's peer p seen at the relay's address
		relayed(t, r, q, p, self, pAt, 0x3333, 0x4444, now) // registered q's locator the relay's address
		for k, to := range forwardsOf(r) {
			if to == self {
				t.Errorf("%s: ESP with SPI %#x from %v forwarded to the relay itself", listen, k.spi, k.from)
			}
		}
		if n := r.forged.Load(); n != 2 {
			t.Errorf("%s: %d entries to the relay refused, want 2", listen, n)
		}
		// Entries to elsewhere are made as before.
		if to, ok := lookupNow(r, 0x1111, self); !ok || to != hAt {
			t.Errorf("%s: ESP for h: %v %v, want %v", listen, to, ok, hAt)
		}
	}
}

func forwardsOf(r *forwarder) map[fwdKey]netip.AddrPort {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := make(map[fwdKey]netip.AddrPort, len(r.fwd))
	for k, e := range r.fwd {
		m[k] = e.to
	}
	return m
}

// TestRelayToSelf: a registered host whose RELAY_TO names the relay's own
// socket, with a RELAY_HMAC that verifies, gets nothing sent: the relay
// drops the packet as forged and its socket receives nothing from itself.
// Both with the socket bound to an address and to the unspecified one
// (RELAY_TO then names the port on loopback). A packet with RELAY_TO
// naming a peer first shows that the same client's packets are relayed.
func TestRelayToSelf(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		t.Run(listen, func(t *testing.T) {
			pc, err := net.ListenPacket("udp4", listen)
			if err != nil {
				t.Fatal(err)
			}
			port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
			self := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), port)
			// The relay's socket counts what arrives from the relay itself.
			var fromSelf atomic.Int64
			rtap := &tap{PacketConn: pc, match: func(b []byte, from netip.AddrPort) bool {
				if from.Port() == port && from.Addr().Unmap().IsLoopback() {
					fromSelf.Add(1)
				}
				return false
			}}
			r := testRelay(t, func(c *Config) { c.PacketConn = rtap; c.Logger = testLog("relay") })
			conn := benchUDP(t)
			host, a, err := registerOn(conn, r.HIT(), self)
			if err != nil {
				t.Fatal(err)
			}
			peer := benchUDP(t)
			send := func(to netip.AddrPort) {
				t.Helper()
				var b wire.Builder
				b.Reset(nil, wire.UPDATE, host, hitN(7))
				b.Add(wire.ESPInfo{NewSPI: 0x5555})
				pkt, err := b.Bytes()
				if err != nil {
					t.Fatal(err)
				}
				out, err := a.AppendRelayed(pkt, wire.TransportAddress{Type: wire.ParamRelayTo, Port: to.Port(), Protocol: wire.ProtocolUDP, Addr: to.Addr()})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := conn.WriteToUDPAddrPort(wire.AppendUDPControl(nil, out), self); err != nil {
					t.Fatal(err)
				}
			}

			send(udpAddrPort(peer))
			peer.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := peer.ReadFromUDPAddrPort(make([]byte, 2048)); err != nil {
				t.Fatalf("the relayed packet to a peer did not arrive: %v", err)
			}
			before := r.Stats().Relay

			send(self)
			waitFor(t, 5*time.Second, "the relay to drop or forward", func() bool {
				st := r.Stats().Relay
				return st.Forged > before.Forged || st.ControlForwarded > before.ControlForwarded
			})
			time.Sleep(200 * time.Millisecond) // what it sent itself would be back by now
			st := r.Stats().Relay
			if st.Forged != before.Forged+1 || st.ControlForwarded != before.ControlForwarded || fromSelf.Load() != 0 {
				t.Errorf("RELAY_TO the relay itself: forged %d→%d, forwarded %d→%d, %d packets from itself; want one forged, none forwarded or sent",
					before.Forged, st.Forged, before.ControlForwarded, st.ControlForwarded, fromSelf.Load())
			}
		})
	}
}

// TestLocalSeen: a source on the relay's machine whose packet the relay
// relayed to a registered host may be named in that host's RELAY_TO for
// localSeenLife; one elsewhere is never noted, and the notes are bounded.
func TestLocalSeen(t *testing.T) {
	r := testForwarder(t)
	r.setSelf(netip.MustParseAddrPort("203.0.113.5:10500"))
	now := time.Now()
	initiator := netip.MustParseAddrPort("127.0.0.1:40000")
	outside := netip.MustParseAddrPort("198.51.100.7:4000")
	r.noteLocal(netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000"), now) // as a dual-stack socket reports it
	r.noteLocal(outside, now)
	if !r.seenLocal(initiator, now.Add(time.Second)) {
		t.Fatal("the local Initiator was not noted")
	}
	if r.seenLocal(outside, now) {
		t.Fatal("a source elsewhere was noted as local")
	}
	if r.seenLocal(initiator, now.Add(localSeenLife)) {
		t.Fatal("noted past localSeenLife")
	}
	for i := range 2 * localSeenMax {
		r.noteLocal(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(1000+i)), now)
	}
	if len(r.localSeen) > localSeenMax {
		t.Fatalf("%d local sources noted, want at most %d", len(r.localSeen), localSeenMax)
	}
	r.prune(now.Add(localSeenLife))
	if len(r.localSeen) != 0 {
		t.Fatalf("%d local sources left after their life", len(r.localSeen))
	}
}

// TestESPNeverBackToSource: no forwarding entry sends ESP back to the
// address it came from. A host registered with two relays could otherwise
// give each an entry pointing at the other, and one packet went round
// between them for as long as the registration lasted.
func TestESPNeverBackToSource(t *testing.T) {
	r := testForwarder(t)
	r.setSelf(netip.MustParseAddrPort("198.18.0.100:10500"))
	h, p := hitN(1), hitN(2)
	grantRelay(t, r, h)
	other := netip.MustParseAddrPort("198.18.0.200:10500") // another relay
	forged := r.forged.Load()
	r.set(fwdKey{0x1111, other}, netip.MustParseAddrPort("[::ffff:198.18.0.200]:10500"), h, p, time.Now())
	if _, ok := r.lookup(0x1111, other, time.Now().UnixNano()); ok {
		t.Fatal("ESP from another relay forwarded back to it")
	}
	if r.forged.Load() != forged+1 {
		t.Fatal("the refused entry was not counted")
	}
}
