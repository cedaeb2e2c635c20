package hipnet

import (
	"crypto/tls"
	"net"
	"syscall"
	"testing"
	"time"
)

// benchRTT is the round-trip time BenchmarkFirstContactRTT adds to the
// client's path.
const benchRTT = 10 * time.Millisecond

// delayedPC delays every datagram it sends by d: a path whose round trip
// is d longer, with the whole delay on the way out.
type delayedPC struct {
	net.PacketConn
	d time.Duration
}

func (p delayedPC) WriteTo(b []byte, to net.Addr) (int, error) {
	c := append([]byte(nil), b...)
	time.AfterFunc(p.d, func() { p.PacketConn.WriteTo(c, to) })
	return len(b), nil
}

// delayedConn delays every write by d, in order, as delayedPC does.
type delayedConn struct {
	net.Conn
	d time.Duration
	q chan delayedWrite
}

type delayedWrite struct {
	at time.Time
	b  []byte
}

func newDelayedConn(c net.Conn, d time.Duration) *delayedConn {
	dc := &delayedConn{Conn: c, d: d, q: make(chan delayedWrite, 64)}
	go func() {
		for w := range dc.q {
			time.Sleep(time.Until(w.at))
			if _, err := c.Write(w.b); err != nil {
				return
			}
		}
	}()
	return dc
}

func (c *delayedConn) Write(b []byte) (int, error) {
	c.q <- delayedWrite{at: time.Now().Add(c.d), b: append([]byte(nil), b...)}
	return len(b), nil
}

func (c *delayedConn) Close() error {
	close(c.q)
	return c.Conn.Close()
}

// BenchmarkFirstContactRTT is BenchmarkFirstContact on a path with a
// benchRTT round trip, as between hosts on a network: the count of round
// trips decides there, not the CPU. The client's datagrams, and TLS's
// client bytes, leave benchRTT late; TLS's TCP handshake is delayed as
// much (the dialer waits benchRTT before connect, for the SYN's round
// trip, which the kernel's loopback would otherwise make instant). The
// metrics are in round trips: hipnet takes the base exchange's two plus
// its stream's, TLS the SYN's, its handshake's and the echo's.
func BenchmarkFirstContactRTT(b *testing.B) {
	ctx := benchCtx(b)
	server, dst, tlsAddr, tconf := firstContactServers(b)
	tconf.ServerName = "127.0.0.1" // what tls.Dial would take from the address

	var hip, tlsT samples
	hipFirst := func(record bool) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		client := freshClientFrom(b, server, Config{PacketConn: delayedPC{pc, benchRTT}})
		defer client.Close()
		t0 := time.Now()
		c := dialPingPong(b, ctx, client, dst)
		if record {
			hip.addDur(time.Since(t0))
		}
		c.Close()
	}
	tlsFirst := func(record bool) {
		t0 := time.Now()
		d := net.Dialer{Control: func(string, string, syscall.RawConn) error {
			time.Sleep(benchRTT) // the SYN's round trip
			return nil
		}}
		raw, err := d.DialContext(ctx, "tcp", tlsAddr)
		if err != nil {
			b.Fatal(err)
		}
		c := tls.Client(newDelayedConn(raw, benchRTT), tconf)
		if err := pingPong(c); err != nil {
			c.Close()
			b.Fatal(err)
		}
		if record {
			tlsT.addDur(time.Since(t0))
		}
		c.Close()
	}
	interleaved(b, func(record bool) []func() {
		return []func(){
			path("hip", func() { hipFirst(record) }),
			path("tls", func() { tlsFirst(record) }),
		}
	})
	rtt := float64(benchRTT.Microseconds())
	h, t := hip.median(), tlsT.median()
	b.ReportMetric(h/rtt, "hip-rtts")
	b.ReportMetric(t/rtt, "tls-rtts")
	b.ReportMetric(ratio(h, t), "hip/tls")
}
