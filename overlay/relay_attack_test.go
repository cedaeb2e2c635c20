package overlay

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// Regression tests for the relay review's findings.

// TestRelayESPPoison: an unregistered, unauthenticated party cannot
// re-point a relayed association's ESP to itself with a forged control
// packet announcing the association's SPI (review finding H1): SPIs the
// relay cannot authenticate are only held until the registered host
// answers.
func TestRelayESPPoison(t *testing.T) {
	r, a, b, la, lb := relayedPair(t)
	la.WriteTo([]byte{1}, &Addr{HIT: b.HIT(), Port: 8})
	readOne(t, lb, 5*time.Second)
	pa, _ := peerInfo(a, b.HIT())
	t.Logf("a->b out SPI %#x, a path %s", pa.OutSPI, pa.Path)

	atk, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer atk.Close()
	var bl wire.Builder
	var someone wire.HIT
	someone[0] = 0x20
	someone[1] = 0x01
	someone[15] = 0x42 // not b, not registered, no keys
	bl.Reset(nil, wire.UPDATE, someone, a.HIT())
	bl.Add(wire.ESPInfo{NewSPI: pa.OutSPI})
	pkt, err := bl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	raddr := net.UDPAddrFromAddrPort(r.LocalAddr())
	if _, err := atk.WriteToUDP(wire.AppendUDPControl(nil, pkt), raddr); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	t.Logf("relay stats after forged UPDATE: %+v", r.Stats().Relay)
	for i := 0; i < 3; i++ {
		la.WriteTo([]byte{byte(i)}, &Addr{HIT: b.HIT(), Port: 8})
	}
	atk.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2000)
	got := 0
	for {
		n, from, err := atk.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if n >= 8 && binary.BigEndian.Uint32(buf) == pa.OutSPI {
			got++
			t.Logf("attacker got ESP spi=%#x len=%d from %v", binary.BigEndian.Uint32(buf), n, from)
		}
	}
	if got > 0 {
		t.Errorf("POISONED: attacker received %d of a's ESP packets for b", got)
	}
}

type capConn struct {
	net.PacketConn
	mu   sync.Mutex
	last []byte // last UPDATE sent
	all  [][]byte
}

func (c *capConn) WriteTo(p []byte, to net.Addr) (int, error) {
	if len(p) > 8 && p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 0 && p[4+2]&0x7f == byte(wire.UPDATE) {
		c.mu.Lock()
		c.last = append([]byte(nil), p...)
		c.all = append(c.all, c.last)
		c.mu.Unlock()
	}
	return c.PacketConn.WriteTo(p, to)
}

// TestRelayReplayHijack: a replayed (captured) UPDATE of a direct peer,
// sent to our relay by a third party, does not move the association onto
// the relay with RELAY_TO pointing at the attacker (review finding H2):
// only a fresh base exchange chooses the path.
func TestRelayReplayHijack(t *testing.T) {
	r := relayStack(t)
	a := behind(t, 0, r, nil)
	waitRegistered(t, r, a.HIT())
	pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	cc := &capConn{PacketConn: pc}
	b := newTestStack(t, 1, func(c *Config) { c.PacketConn = cc })
	b.AddPeer(a.HIT(), a.LocalAddr())
	la := listen(t, a, 7)
	lb := listen(t, b, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.rekeyAfter = 3
	if err := b.Connect(ctx, a.HIT()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		lb.WriteTo([]byte{byte(i)}, &Addr{HIT: a.HIT(), Port: 7})
		readOne(t, la, 5*time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	cc.mu.Lock()
	upd := cc.last
	cc.mu.Unlock()
	if upd == nil {
		t.Fatal("no UPDATE captured: the rekey did not happen")
	}
	pa, _ := peerInfo(a, b.HIT())
	t.Logf("before: a's path to b %s locator %v", pa.Path, pa.Locator)
	atk, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer atk.Close()
	cc.mu.Lock()
	all := cc.all
	cc.mu.Unlock()
	t.Logf("captured %d UPDATEs", len(all))
	for _, u := range all {
		atk.WriteToUDP(u, net.UDPAddrFromAddrPort(r.LocalAddr()))
	}
	time.Sleep(300 * time.Millisecond)
	pa, _ = peerInfo(a, b.HIT())
	t.Logf("after replay: a's path to b %s locator %v (relay %v, attacker %v)", pa.Path, pa.Locator, r.LocalAddr(), atk.LocalAddr())
	atk.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 2000)
	if n, _, err := atk.ReadFromUDP(buf); err == nil {
		t.Logf("attacker received %d bytes (type %d) through the relay", n, buf[6]&0x7f)
	}
	for i := 0; i < 3; i++ {
		la.WriteTo([]byte{byte(i)}, &Addr{HIT: b.HIT(), Port: 8})
	}
	esp := 0
	atk.SetReadDeadline(time.Now().Add(time.Second))
	for {
		n, _, err := atk.ReadFromUDP(buf)
		if err != nil {
			break
		}
		if n > 4 && !(buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 0) {
			esp++
		}
	}
	t.Logf("attacker received %d ESP packets of a->b; relay %+v", esp, r.Stats().Relay)
	if pa.Path == "relayed" || esp > 0 {
		t.Errorf("HIJACKED: path %s, attacker got %d ESP packets", pa.Path, esp)
	}
}
