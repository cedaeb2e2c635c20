package streamcheck

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

// udpEcho starts an echo on a UDP socket on loopback: EchoPackets, or,
// with a non-nil f, one that sends back what f returns for each datagram
// (its sequence number read from the probe's format).
func udpEcho(t *testing.T, f func(seq int64, b []byte) [][]byte) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	go func() {
		defer wg.Done()
		if f == nil {
			if err := EchoPackets(pc); !errors.Is(err, net.ErrClosed) {
				t.Errorf("EchoPackets: %v", err)
			}
			return
		}
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			b := append([]byte(nil), buf[:n]...)
			for _, out := range f(int64(binary.BigEndian.Uint64(b[8:])), b) {
				pc.WriteTo(out, from)
			}
		}
	}()
	return pc
}

func dialUDP(t *testing.T, to net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", to.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestProbeClean(t *testing.T) {
	echo := udpEcho(t, nil)
	for _, connected := range []bool{true, false} {
		var p *PacketProbe
		if connected {
			p = StartProbe(dialUDP(t, echo.LocalAddr()), ProbeConfig{Interval: 2 * time.Millisecond})
		} else {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			p = StartPacketProbe(pc, echo.LocalAddr(), ProbeConfig{Size: 200, Interval: 2 * time.Millisecond})
		}
		eventually(t, "50 echoes", func() bool { return p.Snapshot().Received >= 50 })
		r := p.Stop()
		t.Log(r)
		if r.Lost() != 0 || r.Duplicates != 0 || r.Reordered != 0 || r.Corrupt != 0 || r.Err != nil ||
			r.LongestGap <= 0 || r.LongestGap > 200*time.Millisecond || r.Sent < 50 {
			t.Fatalf("connected %v: %v", connected, r)
		}
		if r2 := p.Stop(); r2 != r {
			t.Fatalf("second Stop: %v", r2)
		}
	}
}

func TestProbeCountsWhatGoesWrong(t *testing.T) {
	const outage = 300 * time.Millisecond
	var (
		mu       sync.Mutex
		darkTill time.Time
		held     []byte
	)
	echo := udpEcho(t, func(seq int64, b []byte) [][]byte {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case seq == 5:
			return [][]byte{b, b} // duplicated
		case seq == 7:
			b[len(b)-1] ^= 1 // corrupted: counts as corrupt, and as lost
			return [][]byte{b}
		case seq == 10:
			held = b // sent after 11: reordered
			return nil
		case seq == 11:
			return [][]byte{b, held}
		case seq == 20:
			darkTill = time.Now().Add(outage)
		}
		if time.Now().Before(darkTill) {
			return nil // the path is down
		}
		return [][]byte{b}
	})
	p := StartProbe(dialUDP(t, echo.LocalAddr()), ProbeConfig{Interval: 5 * time.Millisecond})
	eventually(t, "echoes after the outage", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return !darkTill.IsZero() && time.Now().After(darkTill.Add(100*time.Millisecond))
	})
	r := p.Stop()
	t.Log(r)
	if r.Duplicates != 1 || r.Corrupt != 1 || r.Reordered != 1 || r.Err != nil {
		t.Fatalf("report %v", r)
	}
	// About outage/interval datagrams lost in the outage (fewer if the
	// ticker fell behind), and #7.
	inOutage := int64(outage / (5 * time.Millisecond))
	if r.Lost() < 1+inOutage/2 || r.Lost() > 1+inOutage+10 {
		t.Fatalf("lost %d of %d", r.Lost(), r.Sent)
	}
	if r.LongestGap < outage || r.LongestGap > outage+time.Second {
		t.Fatalf("longest gap %v, want about %v", r.LongestGap, outage)
	}
}

func TestProbeStopIsBounded(t *testing.T) {
	// Nothing echoes: a socket that only reads.
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	c := dialUDP(t, sink.LocalAddr())
	p := StartProbe(c, ProbeConfig{Interval: time.Millisecond, Linger: 100 * time.Millisecond})
	eventually(t, "some sent", func() bool { return p.Snapshot().Sent > 10 })
	start := time.Now()
	r := p.Stop()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Stop took %v", took)
	}
	if r.Received != 0 || r.Lost() != r.Sent || r.LongestGap < 100*time.Millisecond {
		t.Fatalf("report %v", r)
	}
	// The socket is the caller's, open, without deadlines.
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("write after Stop: %v", err)
	}
}

func TestProbeLeaksNoGoroutines(t *testing.T) {
	echo := udpEcho(t, nil)
	base := runtime.NumGoroutine()
	c, err := net.Dial("udp", echo.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := StartProbe(c, ProbeConfig{Interval: time.Millisecond})
	eventually(t, "echoes", func() bool { return p.Snapshot().Received > 10 })
	p.Stop()
	c.Close()
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= base })
}
