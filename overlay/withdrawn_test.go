package overlay

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// locSetOf is the contents of a LOCATOR_SET with addrs, the first
// preferred.
func locSetOf(t *testing.T, addrs ...string) []byte {
	var ls []wire.Locator
	for i, a := range addrs {
		ls = append(ls, wire.Locator{Traffic: wire.TrafficBoth, Type: wire.LocatorTypeESP, Lifetime: ^uint32(0),
			Preferred: i == 0, Addr: netip.MustParseAddr(a)})
	}
	var b wire.Builder
	b.Reset(nil, wire.UPDATE, wire.HIT{}, wire.HIT{})
	b.Add(wire.LocatorSet{Locators: ls})
	pkt, err := b.Packet()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pkt.Param(wire.ParamLocatorSet)
	return p.Contents()
}

// TestWithdrawnAnnouncedAgain: the peer withdraws its current address
// (RFC 8046 §5.3), then announces it again before the path moved (an
// interface that flapped). The withdrawal is forgotten: when traffic later
// moves off the address, for any reason, the address stays in the Set, as
// the peer's latest LOCATOR_SET lists it, and traffic can come back to it.
func TestWithdrawnAnnouncedAgain(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, func(c *Config) { c.ListenAddr = "0.0.0.0:0" })
	port := b.LocalAddr().Port()
	one := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
	two := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port)
	gone := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)
	a.AddPeer(b.HIT(), one)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.HIT()); err != nil {
		t.Fatal(err)
	}
	p := a.lookupPeer(b.HIT())
	apply := func(raw []byte, from netip.AddrPort) {
		done := make(chan struct{})
		a.cmds <- funcCmd(func(c *control, now time.Time) {
			c.locatorSet(p, now, raw, &inbound{from: from})
			close(done)
		})
		<-done
	}
	apply(locSetOf(t, "192.0.2.1"), gone)             // only an address not reachable yet
	apply(locSetOf(t, "127.0.0.1", "127.0.0.2"), one) // back: the first again, and another
	waitFor(t, 5*time.Second, "127.0.0.2 verified", func() bool {
		pi, _ := peerInfo(a, b.HIT())
		for _, l := range pi.Locators {
			if l.Addr == two && l.State == "active" {
				return true
			}
		}
		return false
	})
	apply(locSetOf(t, "127.0.0.2", "127.0.0.1"), two) // the other preferred now, the first still listed
	waitFor(t, 5*time.Second, "traffic on 127.0.0.2", func() bool {
		pi, _ := peerInfo(a, b.HIT())
		for _, l := range pi.Locators {
			if l.Addr == two && l.Current {
				return true
			}
		}
		return false
	})
	barrier(t, a)
	pi, _ := peerInfo(a, b.HIT())
	for _, l := range pi.Locators {
		if l.Addr == one {
			return
		}
	}
	t.Fatalf("%v, listed in the peer's latest LOCATOR_SET, was removed: %+v", one, pi.Locators)
}
