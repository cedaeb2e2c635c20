package netstack

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"hipnet.dev/overlay"
)

// The benchmarks run over the in-memory Link pair, in both of its modes:
// "async" hands each segment to a goroutine of the receiving node (as a
// socket reader would deliver it), "sync" calls the receiver's handler
// on the sending goroutine (the cost of the stacks alone).
var linkModes = []struct {
	name string
	sync bool
}{{"async", false}, {"sync", true}}

func benchPair(b *testing.B, sync bool) (node, node) {
	n := newFakeNet()
	n.sync = sync
	nodes := newNodes(b, n, 2, Config{})
	return nodes[0], nodes[1]
}

// BenchmarkBulk: one connection, 64 KiB Writes, the receiver discarding.
func BenchmarkBulk(b *testing.B) {
	const chunk = 64 << 10
	for _, m := range linkModes {
		b.Run(m.name, func(b *testing.B) {
			a, z := benchPair(b, m.sync)
			l, err := z.Listen(0)
			if err != nil {
				b.Fatal(err)
			}
			received := make(chan int64, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					received <- 0
					return
				}
				n, _ := io.Copy(io.Discard, c)
				c.Close()
				received <- n
			}()
			c := dial(b, a.Transport, z.local, l.Addr().(*overlay.Addr).Port)
			buf := make([]byte, chunk)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.(*conn).CloseWrite()
			n := <-received
			elapsed := time.Since(start)
			b.StopTimer()
			if n != int64(b.N)*chunk {
				b.Fatalf("received %d of %d octets", n, b.N*chunk)
			}
			b.ReportMetric(float64(n)/1e6/elapsed.Seconds(), "MB/s")
			b.ReportMetric(float64(a.Stats().SegmentsSent)/float64(b.N), "segments/op")
		})
	}
}

// BenchmarkDialEcho: a new connection per operation: Dial, one octet
// there and back, Close.
func BenchmarkDialEcho(b *testing.B) {
	for _, m := range linkModes {
		b.Run(m.name, func(b *testing.B) {
			a, z := benchPair(b, m.sync)
			l, err := z.Listen(0)
			if err != nil {
				b.Fatal(err)
			}
			serveEcho(b, l)
			port := l.Addr().(*overlay.Addr).Port
			ctx := context.Background()
			one := make([]byte, 1)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				c, err := a.Dial(ctx, z.local, port)
				if err != nil {
					b.Fatal(err)
				}
				echoOnce(b, c, one)
				c.Close()
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/dial+echo")
		})
	}
}

// BenchmarkEcho: one octet there and back on an open connection.
func BenchmarkEcho(b *testing.B) {
	for _, m := range linkModes {
		b.Run(m.name, func(b *testing.B) {
			a, z := benchPair(b, m.sync)
			l, err := z.Listen(0)
			if err != nil {
				b.Fatal(err)
			}
			serveEcho(b, l)
			c := dial(b, a.Transport, z.local, l.Addr().(*overlay.Addr).Port)
			one := make([]byte, 1)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				echoOnce(b, c, one)
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/1e3/float64(b.N), "µs/echo")
		})
	}
}

func echoOnce(b *testing.B, c net.Conn, one []byte) {
	if _, err := c.Write(one); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, one); err != nil {
		b.Fatal(err)
	}
}
