package netns

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestE2EMultihomedPeer checks that the peer of Spec.MultihomedPeer is
// reached at both its addresses, from a NAT site, a routed site and the
// public host; that after Blackhole of one address only the other answers,
// both ways, while the interface stays up; that both answer again after
// Blackhole is switched off; that with eth0 down a socket bound to 0.0.0.0
// goes out by eth1; and that eth0 comes back up with its routes.
func TestE2EMultihomedPeer(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, Spec{MultihomedPeer: true, Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: None}}})
	peer := tp.Peer()
	want := []Interface{
		{"eth0", netip.MustParsePrefix("198.18.0.2/24")},
		{"eth1", netip.MustParsePrefix("198.19.0.2/24")},
	}
	if got := peer.Interfaces(); !slices.Equal(got, want) {
		t.Fatalf("peer interfaces %v, want %v", got, want)
	}
	first, second := want[0].Prefix.Addr(), want[1].Prefix.Addr()
	at := []netip.AddrPort{
		reporterAt(t, peer, netip.AddrPortFrom(first, 7000)),
		reporterAt(t, peer, netip.AddrPortFrom(second, 7000)),
	}
	type client struct {
		name string
		conn *net.UDPConn
		seen netip.Addr // the source address the peer should see
	}
	clients := []client{
		{"NAT site", listen(t, tp.Host(0), "0.0.0.0:0"), tp.Router(0).Addr()},
		{"routed site", listen(t, tp.Host(1), "0.0.0.0:0"), tp.Host(1).Addr()},
		{"public host", listen(t, tp.Public(), "0.0.0.0:0"), tp.Public().Addr()},
	}
	reachable := func(t *testing.T, c client, ap netip.AddrPort) {
		t.Helper()
		if got := observed(t, c.conn, ap); got.Addr() != c.seen {
			t.Errorf("%s: %s saw %s, want address %s", c.name, ap, got, c.seen)
		}
	}
	for _, c := range clients {
		reachable(t, c, at[0])
		reachable(t, c, at[1])
	}

	// From the peer: a socket bound to either address, and one bound to
	// 0.0.0.0, to the public host.
	echo := reporter(t, tp.Public(), 7000)
	from1 := listen(t, peer, netip.AddrPortFrom(first, 0).String())
	from2 := listen(t, peer, netip.AddrPortFrom(second, 0).String())
	fromAny := listen(t, peer, "0.0.0.0:0")
	if got := observed(t, from2, echo); got.Addr() != second {
		t.Errorf("from the second address the public host saw %s", got)
	}
	if got := observed(t, fromAny, echo); got.Addr() != first {
		t.Errorf("from 0.0.0.0 with both links up the public host saw %s, want %s", got, first)
	}

	t.Run("blackhole", func(t *testing.T) {
		if err := tp.Blackhole(first, true); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			unanswered(t, c.conn, at[0], c.name+" to the black-holed address")
			reachable(t, c, at[1])
		}
		unanswered(t, from1, echo, "from the black-holed address")
		if got := observed(t, from2, echo); got.Addr() != second {
			t.Errorf("from the second address the public host saw %s", got)
		}
		// The host cannot tell: the link is up, the address there.
		if err := peer.Do(func() error {
			ifc, err := net.InterfaceByName("eth0")
			if err != nil {
				return err
			}
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagRunning == 0 {
				t.Errorf("eth0 flags %v with its path black-holed, want up and running", ifc.Flags)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := tp.Blackhole(first, false); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			reachable(t, c, at[0])
			reachable(t, c, at[1])
		}
		if got := observed(t, from1, echo); got.Addr() != first {
			t.Errorf("from the first address after the black hole the public host saw %s", got)
		}
	})

	t.Run("router uplink", func(t *testing.T) {
		if err := tp.Blackhole(tp.Router(0).Addr(), true); err != nil {
			t.Fatal(err)
		}
		unanswered(t, clients[0].conn, at[1], "NAT site with its uplink black-holed")
		reachable(t, clients[1], at[1])
		if err := tp.Blackhole(tp.Router(0).Addr(), false); err != nil {
			t.Fatal(err)
		}
		reachable(t, clients[0], at[1])
		if err := tp.Blackhole(tp.Host(0).Addr(), true); err == nil {
			t.Error("Blackhole of a private address: no error")
		}
	})

	t.Run("link down", func(t *testing.T) {
		if err := peer.SetInterfaceUp("eth0", false); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			unanswered(t, c.conn, at[0], c.name+" to the address of the link that is down")
			reachable(t, c, at[1])
		}
		// The default route through eth1 and the core takes over.
		if got := observed(t, fromAny, echo); got.Addr() != second {
			t.Errorf("from 0.0.0.0 with eth0 down the public host saw %s, want %s", got, second)
		}
		hostEcho := reporter(t, tp.Host(1), 7000)
		if got := observed(t, fromAny, hostEcho); got.Addr() != second {
			t.Errorf("from 0.0.0.0 with eth0 down the routed site's host saw %s, want %s", got, second)
		}

		if err := peer.SetInterfaceUp("eth0", true); err != nil {
			t.Fatal(err)
		}
		out, err := peer.Exec(context.Background(), "ip", "route")
		if err != nil {
			t.Fatal(err)
		}
		if route := "10.101.0.0/24 via 198.18.0.11 dev eth0"; !strings.Contains(string(out), route) {
			t.Errorf("after eth0 went down and up the peer lacks the route %s:\n%s", route, out)
		}
		if got := observed(t, fromAny, hostEcho); got.Addr() != first {
			t.Errorf("from 0.0.0.0 with eth0 up again the routed site's host saw %s, want %s", got, first)
		}
		for _, c := range clients {
			reachable(t, c, at[0])
		}
	})
}
