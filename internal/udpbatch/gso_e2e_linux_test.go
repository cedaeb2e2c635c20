package udpbatch

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/internal/netns"
)

// TestE2EGSOOverPathMTU: on a real link whose MTU (1300) is below the
// segment size (1400), the kernel refuses the UDP_SEGMENT message (EINVAL
// or EMSGSIZE, by kernel version). Every datagram still arrives, resent
// unsegmented and fragmented by IP, and GSO stays on for smaller segments
// only. Before EMSGSIZE was taken for a refusal, each such batch was
// lost, and a TCP flow over it stalled.
func TestE2EGSOOverPathMTU(t *testing.T) {
	netns.Require(t)
	tp := netns.NewTopology(t, netns.Spec{Peer: true})
	pub, peer := tp.Public(), tp.Peer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := pub.Exec(ctx, "ip", "link", "set", "dev", "eth0", "mtu", "1300"); err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	listenIn := func(ns *netns.Namespace) *net.UDPConn {
		pc, err := ns.ListenPacket("udp4", netip.AddrPortFrom(ns.Addr(), 0).String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc.(*net.UDPConn)
	}
	su, ru := listenIn(pub), listenIn(peer)
	c := New(su)
	if !c.Caps().GSO {
		t.Skip("no UDP_SEGMENT")
	}
	r := newConn(ru, options{noGRO: true}).NewReader(64)
	pkts := make([][]byte, 20)
	for i := range pkts {
		pkts[i] = testDatagram(i, 1400)
	}
	dst := ru.LocalAddr().(*net.UDPAddr).AddrPort()
	if n, err := c.NewWriter(64).WriteBatchTo(pkts, dst); n != len(pkts) || err != nil {
		t.Fatalf("sent %d of %d: %v", n, len(pkts), err)
	}
	expectDatagrams(t, ru, r, pkts, su.LocalAddr().(*net.UDPAddr).AddrPort())
	if caps := c.Caps(); !caps.GSO || caps.GSOErrors != 1 || c.gso.limit.Load() >= 1400 {
		t.Errorf("after a refusal at 1400 octets: %+v, limit %d; want GSO on below 1400", caps, c.gso.limit.Load())
	}
}
