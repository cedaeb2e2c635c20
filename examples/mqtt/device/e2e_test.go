package main

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"hipnet.dev/examples/mqtt/internal/testnet"
	"hipnet.dev/hipnet"
	"hipnet.dev/internal/netns"
)

// TestE2EDeviceBehindNAT: real network namespaces (run as root by `make
// e2e`): the relay (198.18.0.1) and the broker (198.18.0.2) are on the
// public segment, the device program runs behind an endpoint-independent
// NAT (10.100.0.2) and knows the broker by its HIT alone. The base
// exchange goes through the relay, and the device's telemetry arrives,
// in order, under its HIT.
func TestE2EDeviceBehindNAT(t *testing.T) {
	netns.Require(t)
	tp := netns.NewTopology(t, netns.Spec{Peer: true, Sites: []netns.SiteSpec{{NAT: netns.EndpointIndependent}}})
	pub, peer, host := tp.Public(), tp.Peer(), tp.Host(0)

	r, relaySpec := testnet.Relay(t, listenIn(t, pub, pub.Addr().String()+":10500"))
	key := filepath.Join(t.TempDir(), "device.key")
	id, err := hipnet.LoadOrCreateIdentity(key)
	if err != nil {
		t.Fatal(err)
	}
	bnode, _, msgs := broker(t, r, relaySpec, listenIn(t, peer, peer.Addr().String()+":10500"), id.HIT())

	const n = 20
	hit, stop := deviceRun(t, listenIn(t, host, host.Addr().String()+":10500"),
		"-identity", key, "-relay", relaySpec, "-broker", bnode.HIT().String(), "-interval", "200ms")
	last := receive(t, msgs, hit, 1, n, 60*time.Second)
	st := r.Stats().Relay
	if st.ControlForwarded == 0 {
		t.Fatalf("the relay forwarded no HIP control packet: %+v", st)
	}
	t.Logf("%d messages from behind the NAT; relay forwarded %d control and %d ESP packets; path now %s",
		n, st.ControlForwarded, st.ESPForwarded, last.HIPPath)
	if err := stop(); err != nil {
		t.Fatalf("device: %v", err)
	}
}

// listenIn opens a UDP socket inside ns.
func listenIn(t *testing.T, ns *netns.Namespace, addr string) net.PacketConn {
	t.Helper()
	pc, err := ns.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}
