package netns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestE2ERenumber renumbers the host of each kind of site twice while a
// flow runs, and checks the new address and subnet, that a socket bound to
// 0.0.0.0 keeps working from the new address, that the public host sees a
// new source (a new port behind a NAT, the new address without), and, for
// the routed site, that the public routes followed.
func TestE2ERenumber(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, Spec{Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: RandomFully}, {NAT: None}}})
	echo := reporter(t, tp.Public(), 7000)
	for i := range tp.Sites() {
		t.Run(tp.NAT(i).String(), func(t *testing.T) {
			host := listen(t, tp.Host(i), "0.0.0.0:0")
			f := startFlow(t, listen(t, tp.Host(i), "0.0.0.0:0"), echo)
			seen := f.waitFor(t, "before", func(netip.AddrPort) bool { return true })
			prev := observed(t, host, echo)
			site := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i), 0, 0}), 16)
			for round := range 2 {
				oldAddr, oldLAN := tp.Host(i).Addr(), tp.LAN(i)
				addr, err := tp.Renumber(i)
				if err != nil {
					t.Fatal(err)
				}
				lan := tp.LAN(i)
				t.Logf("round %d: %s (%s) to %s (%s)", round, oldAddr, oldLAN, addr, lan)
				if addr == oldAddr || addr != tp.Host(i).Addr() || lan == oldLAN || !lan.Contains(addr) || !site.Contains(addr) {
					t.Fatalf("Renumber: %s in %s (Host %s), before %s in %s", addr, lan, tp.Host(i).Addr(), oldAddr, oldLAN)
				}
				gw := hostAddr(lan, 1)
				if !slices.Contains(tp.Router(i).Interfaces(), Interface{"lan0", gw}) {
					t.Errorf("router interfaces %v lack lan0 %s", tp.Router(i).Interfaces(), gw)
				}
				out, err := tp.Host(i).Exec(context.Background(), "ip", "route")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(out), "default via "+gw.Addr().String()+" dev eth0") {
					t.Errorf("host routes:\n%s", out)
				}

				now := observed(t, host, echo)
				want := tp.Router(i).Addr()
				if tp.NAT(i) == None {
					want = addr
				}
				if now == prev || now.Addr() != want {
					t.Errorf("the public host saw %s before and %s after, want a new source with address %s", prev, now, want)
				}
				seen = f.waitFor(t, "after Renumber", func(ap netip.AddrPort) bool { return ap != seen && ap.Addr() == want })
				prev = now

				if tp.NAT(i) != None {
					continue
				}
				pub := listen(t, tp.Public(), "0.0.0.0:0")
				if _, err := pub.WriteToUDPAddrPort([]byte("in"), netip.AddrPortFrom(addr, uint16(host.LocalAddr().(*net.UDPAddr).Port))); err != nil {
					t.Fatal(err)
				}
				arrives(t, host, netip.AddrPortFrom(tp.Public().Addr(), uint16(pub.LocalAddr().(*net.UDPAddr).Port)), "to the new address, from the public host")
				if _, err := pub.WriteToUDPAddrPort([]byte("in"), netip.AddrPortFrom(oldAddr, 9)); !errors.Is(err, syscall.ENETUNREACH) {
					t.Errorf("to the old address from the public host: %v, want ENETUNREACH (its route removed)", err)
				}
			}
		})
	}
}

// TestE2EMove moves a NAT site's host, with a flow running, to a router
// with another NAT, to a router without NAT, and home again, and checks at
// each step where it is attached, its address and the routers' interfaces,
// the source the public host sees, and that the other hosts are not
// disturbed.
func TestE2EMove(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, Spec{Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: RandomFully}, {NAT: None}}})
	echo := reporter(t, tp.Public(), 7000)
	host := listen(t, tp.Host(0), "0.0.0.0:0")
	f := startFlow(t, listen(t, tp.Host(0), "0.0.0.0:0"), echo)
	others := []*net.UDPConn{nil, listen(t, tp.Host(1), "0.0.0.0:0"), listen(t, tp.Host(2), "0.0.0.0:0")}
	f.waitFor(t, "at home", func(ap netip.AddrPort) bool { return ap.Addr() == tp.Router(0).Addr() })
	prev := observed(t, host, echo)

	for _, to := range []int{1, 2, 0} {
		from := tp.AttachedTo(0)
		oldAddr := tp.Host(0).Addr()
		addr, err := tp.Move(0, to)
		if err != nil {
			t.Fatal(err)
		}
		lan := tp.LAN(0)
		t.Logf("from site %d (%s) to site %d: %s in %s", from, oldAddr, to, addr, lan)
		site := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + to), 0, 0}), 16)
		if tp.AttachedTo(0) != to || addr != tp.Host(0).Addr() || !lan.Contains(addr) || !site.Contains(addr) || addr == oldAddr {
			t.Fatalf("after Move(0, %d): attached to %d, %s (Host %s) in %s", to, tp.AttachedTo(0), addr, tp.Host(0).Addr(), lan)
		}
		name := "lan-h0"
		if to == 0 {
			name = "lan0"
		}
		if !slices.Contains(tp.Router(to).Interfaces(), Interface{name, hostAddr(lan, 1)}) {
			t.Errorf("router %d interfaces %v lack %s %s", to, tp.Router(to).Interfaces(), name, hostAddr(lan, 1))
		}
		for _, ifc := range tp.Router(from).Interfaces() {
			if ifc.Name == "lan0" && from == 0 || ifc.Name == "lan-h0" {
				t.Errorf("router %d still has %v", from, ifc)
			}
		}

		want := tp.Router(to).Addr()
		if tp.NAT(to) == None {
			want = addr
		}
		now := observed(t, host, echo)
		if now.Addr() != want {
			t.Errorf("at site %d the public host saw %s, want address %s", to, now, want)
		}
		if now == prev {
			t.Errorf("the public host saw the same source %s after the move", now)
		}
		prev = now
		f.waitFor(t, "after Move", func(ap netip.AddrPort) bool { return ap.Addr() == want })
		for j := 1; j < tp.Sites(); j++ {
			observed(t, others[j], echo) // fails the test if unanswered
		}
	}
	out, err := tp.Public().Exec(context.Background(), "ip", "route")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(out), "via 198.18.0.12") != 1 {
		t.Errorf("the public host should route only the routed site's own LAN to it now:\n%s", out)
	}
	if _, err := tp.Move(0, 0); err == nil {
		t.Error("Move to the site the host is attached to: no error")
	}
	if _, err := tp.Move(0, 3); err == nil {
		t.Error("Move to a site that does not exist: no error")
	}
}
