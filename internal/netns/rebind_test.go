package netns

import (
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// TestE2ENATRebind checks what a conntrack flush does to a running flow
// (EndpointIndependent: the same public port comes back; RandomFully: a
// new one), then that Rebind always gives a new port, that an
// EndpointIndependent site stays endpoint-independent after it (towards old
// and new destinations alike), that RandomFully's new port is from the
// other half of the range, that the far end's datagrams to the old mapping
// no longer get through while the new mapping works both ways, and that a
// flow that runs through it changes source.
func TestE2ENATRebind(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, Spec{Peer: true, Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: RandomFully}, {NAT: None}}})
	echo := reporter(t, tp.Public(), 7000)
	echo2 := reporter(t, tp.Peer(), 7000)
	fresh := []netip.AddrPort{reporter(t, tp.Public(), 7001), reporter(t, tp.Public(), 7002)}
	if err := tp.Rebind(2); err == nil {
		t.Error("Rebind of a site without NAT: no error")
	}
	for i := range 2 {
		t.Run(tp.NAT(i).String(), func(t *testing.T) {
			host := listen(t, tp.Host(i), "0.0.0.0:0")
			f := startFlow(t, listen(t, tp.Host(i), "0.0.0.0:0"), echo)
			peer := listen(t, tp.Peer(), netip.AddrPortFrom(tp.Peer().Addr(), 0).String())
			peerAP := netip.AddrPortFrom(tp.Peer().Addr(), uint16(peer.LocalAddr().(*net.UDPAddr).Port))
			toPeer := func() netip.AddrPort { // the host's mapping as the peer sees it
				t.Helper()
				if _, err := host.WriteToUDPAddrPort([]byte("hello"), peerAP); err != nil {
					t.Fatal(err)
				}
				if err := peer.SetReadDeadline(time.Now().Add(replyWait)); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 64)
				_, from, err := peer.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatal(err)
				}
				return from
			}

			m1 := observed(t, host, echo)
			f.waitFor(t, "before", func(netip.AddrPort) bool { return true })
			if err := tp.Router(i).FlushConntrack(); errors.Is(err, exec.ErrNotFound) {
				t.Skip(err)
			} else if err != nil {
				t.Fatal(err)
			}
			m2 := observed(t, host, echo)
			t.Logf("conntrack flush: %s, then %s", m1, m2)
			if tp.NAT(i) == EndpointIndependent && m2 != m1 {
				t.Errorf("after a flush plain MASQUERADE gave %s, not the kept port %s (update the documentation of Rebind)", m2, m1)
			}

			p1 := toPeer()
			// A reply that came after the flush: the flow has its mapping
			// again, so Rebind sees it (it rebinds the mappings it lists).
			flowBefore := f.waitReplies(t, "before Rebind", 2)
			for round := range 2 {
				if err := tp.Rebind(i); err != nil {
					t.Fatal(err)
				}
				m3 := observed(t, host, echo)
				t.Logf("Rebind %d: %s, then %s", round, m2, m3)
				if m3.Addr() != tp.Router(i).Addr() || m3.Port() == m2.Port() {
					t.Errorf("after Rebind the public host saw %s, want %s with another port than %d", m3, tp.Router(i).Addr(), m2.Port())
				}
				switch tp.NAT(i) {
				case EndpointIndependent:
					for _, ep := range append([]netip.AddrPort{echo2}, fresh[round]) {
						if got := observed(t, host, ep); got != m3 {
							t.Errorf("after Rebind %s saw %s, the public host %s: not endpoint-independent", ep, got, m3)
						}
					}
				case RandomFully:
					if (m2.Port() <= 33279) == (m3.Port() <= 33279) {
						t.Errorf("after Rebind port %d, in the same half of the range as the old %d", m3.Port(), m2.Port())
					}
					if got := observed(t, host, fresh[round]); got.Port() == m3.Port() {
						t.Logf("two destinations got the same random port %d (p = 1/64512)", got.Port())
					}
				}

				// The peer's datagram to the old mapping is dropped;
				// the new mapping works both ways.
				if _, err := peer.WriteToUDPAddrPort([]byte("old"), p1); err != nil {
					t.Fatal(err)
				}
				silent(t, host, "from the peer to the old mapping")
				p2 := toPeer()
				if p2 == p1 {
					t.Errorf("the peer sees %s after Rebind as before", p2)
				}
				if _, err := peer.WriteToUDPAddrPort([]byte("reply"), p2); err != nil {
					t.Fatal(err)
				}
				arrives(t, host, peerAP, "the peer's reply to the new mapping")
				f.waitFor(t, "after Rebind", func(ap netip.AddrPort) bool { return ap != flowBefore })
				flowBefore = f.waitFor(t, "after Rebind", func(netip.AddrPort) bool { return true })
				m2, p1 = m3, p2
			}
		})
	}
}
