package udpbatch

import (
	"net"
	"net/netip"
	"testing"
)

// TestAllocs checks that WriteBatch and Read allocate nothing once warm,
// with every feature and with none: a dual-stack sender's batch goes half
// to an IPv4 peer (one GSO run) and half to an IPv6 peer (another, with a
// short last datagram).
func TestAllocs(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			su := listen(t, "udp", "[::]:0")
			w := newConn(su, m.o).NewWriter(64)
			sink := []*net.UDPConn{listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp6", "[::1]:0")}
			pkts, sinkTo := allocBatch(sink)
			write := func(to []netip.AddrPort) {
				if n, err := w.WriteBatch(pkts, to); n != len(pkts) || err != nil {
					t.Fatalf("sent %d of %d: %v", n, len(pkts), err)
				}
			}
			if a := testing.AllocsPerRun(50, func() { write(sinkTo) }); a != 0 {
				t.Errorf("WriteBatch: %v allocations, want 0", a)
			}

			recv := []*net.UDPConn{listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp6", "[::1]:0")}
			_, recvTo := allocBatch(recv)
			readers := []*Reader{newConn(recv[0], m.o).NewReader(64), newConn(recv[1], m.o).NewReader(64)}
			read := func(r *Reader, k int) {
				for got := 0; got < k; {
					n, err := r.Read()
					if err != nil {
						t.Fatal(err)
					}
					for i := range n {
						if b, _ := r.Datagram(i); len(b) == 0 {
							t.Fatal("empty datagram")
						}
					}
					got += n
				}
			}
			a := testing.AllocsPerRun(50, func() {
				write(recvTo)
				read(readers[0], len(pkts)/2)
				read(readers[1], len(pkts)/2)
			})
			if a != 0 {
				t.Errorf("WriteBatch and Read: %v allocations, want 0", a)
			}
		})
	}
}

// allocBatch is 64 datagrams, the first 32 of 1200 octets to peers[0] and
// the rest of 1000, the last 600, to peers[1].
func allocBatch(peers []*net.UDPConn) ([][]byte, []netip.AddrPort) {
	var pkts [][]byte
	var tos []netip.AddrPort
	for i := range 64 {
		n, dst := 1200, to("127.0.0.1", peers[0])
		if i >= 32 {
			n, dst = 1000, to("::1", peers[1])
		}
		if i == 63 {
			n = 600
		}
		pkts = append(pkts, testDatagram(i, n))
		tos = append(tos, dst)
	}
	return pkts, tos
}
