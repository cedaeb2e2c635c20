package udpbatch

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// benchModes are the feature sets the benchmarks compare.
var benchModes = []struct {
	name string
	o    options
}{
	{"gso+gro", options{}},
	{"mmsg", options{noGSO: true, noGRO: true}},
	{"msg", options{noBatch: true, noGSO: true, noGRO: true}},
}

const (
	benchBatch = 64
	benchSize  = 1200 // an ESP packet under a 1280-octet path MTU
)

func benchPackets() [][]byte {
	pkts := make([][]byte, benchBatch)
	for i := range pkts {
		pkts[i] = testDatagram(i, benchSize)
	}
	return pkts
}

// BenchmarkWrite sends batches of 64 datagrams of 1200 octets to a
// loopback peer that reads nothing (the kernel drops what overflows its
// buffer, after the full receive path), and in the same run as many with
// one WriteToUDPAddrPort each: dgrams/s is the batched rate and x-single
// its ratio to the one-per-call rate. ns/op is per batch of 64.
func BenchmarkWrite(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			su, ru := listen(b, "udp4", "127.0.0.1:0"), listen(b, "udp4", "127.0.0.1:0")
			w := newConn(su, m.o).NewWriter(benchBatch)
			pkts, dst := benchPackets(), to("127.0.0.1", ru)
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if n, err := w.WriteBatchTo(pkts, dst); n != len(pkts) || err != nil {
					b.Fatalf("sent %d: %v", n, err)
				}
			}
			batched := float64(b.N*benchBatch) / time.Since(start).Seconds()
			b.StopTimer()
			single := singleWriteRate(b, su, pkts, dst, min(b.N, 2000))
			b.ReportMetric(batched, "dgrams/s")
			b.ReportMetric(batched/single, "x-single")
		})
	}
}

// singleWriteRate sends rounds × pkts with one WriteToUDPAddrPort each
// and returns datagrams per second. Rounds are capped by the caller so
// that the comparison costs a fraction of a second.
func singleWriteRate(b *testing.B, u *net.UDPConn, pkts [][]byte, dst netip.AddrPort, rounds int) float64 {
	start := time.Now()
	for range rounds {
		for _, p := range pkts {
			if _, err := u.WriteToUDPAddrPort(p, dst); err != nil {
				b.Fatal(err)
			}
		}
	}
	return float64(rounds*len(pkts)) / time.Since(start).Seconds()
}

// BenchmarkRead reads datagrams of 1200 octets that a goroutine sends
// in GSO batches as fast as it can, and in the same run as many with one
// ReadFromUDPAddrPort each from a plain socket fed the same way:
// dgrams/s is the Reader's rate and x-single its ratio to the
// one-per-call rate. ns/op is per datagram.
func BenchmarkRead(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			ru := listen(b, "udp4", "127.0.0.1:0")
			r := newConn(ru, m.o).NewReader(benchBatch)
			stop := flood(b, to("127.0.0.1", ru))
			ru.SetReadDeadline(time.Now().Add(time.Minute))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for got := 0; got < b.N; {
				n, err := r.Read()
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
			rate := float64(b.N) / time.Since(start).Seconds()
			b.StopTimer()
			stop()
			b.ReportMetric(rate, "dgrams/s")
			b.ReportMetric(rate/singleReadRate(b, min(b.N, 200000)), "x-single")
		})
	}
}

// singleReadRate reads n datagrams with one ReadFromUDPAddrPort each from
// a socket fed as BenchmarkRead's, and returns datagrams per second.
func singleReadRate(b *testing.B, n int) float64 {
	u := listen(b, "udp4", "127.0.0.1:0")
	stop := flood(b, to("127.0.0.1", u))
	defer stop()
	u.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, BufferSize)
	start := time.Now()
	for range n {
		if _, _, err := u.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// flood sends GSO batches to dst from a goroutine until the returned
// function is called.
func flood(b *testing.B, dst netip.AddrPort) (stop func()) {
	su := listen(b, "udp4", "127.0.0.1:0")
	w := New(su).NewWriter(benchBatch)
	pkts := benchPackets()
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := w.WriteBatchTo(pkts, dst); err != nil {
				return
			}
		}
	}()
	return func() { close(done); <-exited }
}
