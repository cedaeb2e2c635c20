package hipnet

import (
	"crypto/tls"
	"net"
	"net/netip"
	"testing"

	"hipnet.dev/internal/netns"
)

// BenchmarkThroughputVeth is BenchmarkThroughput across a real link: two
// network namespaces joined through a bridge by veths of the default
// 1,500-octet MTU (internal/netns; root only). One hipnet stream, on the
// transport -hipnet.streams names, against TLS 1.3 over TCP across the
// same link, interleaved. On the loopback netstack's TCP sends 64 KiB
// segments and QUIC 1,452-octet packets; here both are held to the link's
// MTU, as across a network, and so is TLS's TCP (its GSO and GRO still
// batch them).
func BenchmarkThroughputVeth(b *testing.B) {
	netns.Require(b)
	ctx := benchCtx(b)
	pki := getPKI(b)
	tp := netns.NewTopology(b, netns.Spec{Peer: true})
	pub, peer := tp.Public(), tp.Peer()

	listen := func(ns *netns.Namespace) net.PacketConn {
		pc, err := ns.ListenPacket("udp4", netip.AddrPortFrom(ns.Addr(), DefaultPort).String())
		if err != nil {
			b.Fatal(err)
		}
		return pc
	}
	server := newTestNode(b, Config{PacketConn: listen(peer)})
	client := newTestNode(b, Config{PacketConn: listen(pub),
		Peers: map[HIT][]netip.AddrPort{server.HIT(): {netip.AddrPortFrom(peer.Addr(), DefaultPort)}}})
	hc := bulkStream(b, ctx, client, server)

	// TLS: the listener's and the client's sockets made inside their
	// namespaces. The server's certificate names 127.0.0.1.
	var tln net.Listener
	if err := peer.Do(func() (err error) {
		tln, err = tls.Listen("tcp", netip.AddrPortFrom(peer.Addr(), 0).String(), pki.serverTLS())
		return err
	}); err != nil {
		b.Fatal(err)
	}
	taddr := serveTLSOn(b, tln, func(c *tls.Conn) { bulkSink(c, bulkSize) })
	cconf := pki.clientTLS()
	cconf.ServerName = "127.0.0.1"
	var tc *tls.Conn
	if err := pub.Do(func() (err error) {
		tc, err = tls.Dial("tcp", taddr, cconf)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tc.Close() })

	var hip, tlsT, hipCPU, tlsCPU samples
	run := bulkRunner(b)
	all := func(record bool) []func() {
		return []func(){run("hip", hc, &hip, &hipCPU, record), run("tls", tc, &tlsT, &tlsCPU, record)}
	}
	b.SetBytes(2 * bulkSize)
	interleaved(b, all)
	h, t := hip.median(), tlsT.median()
	b.ReportMetric(h, "hip-MB/s")
	b.ReportMetric(t, "tls-MB/s")
	b.ReportMetric(ratio(h, t), "hip/tls")
	b.ReportMetric(hipCPU.median(), "hip-cpu-s/GB")
	b.ReportMetric(tlsCPU.median(), "tls-cpu-s/GB")
}
