package relay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Helpers of bench_test.go: a UDP flow with a bounded window (sender,
// counting sink), and a driver of many sans-I/O registrations over one
// UDP socket.

func benchKey(tb testing.TB) *hostid.PrivateKey {
	tb.Helper()
	k, err := hostid.Generate(hostid.ECDSAP256, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// benchUDP opens a loopback UDP socket with the buffers the stack asks for
// on its own sockets (4 MiB, as far as net.core.[rw]mem_max allow), so the
// baseline is not handicapped by smaller buffers.
func benchUDP(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	tb.Cleanup(func() { c.Close() })
	return c
}

func udpAddrPort(c net.PacketConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// waitUntil polls cond until it holds or timeout passes, about 200 times
// over the timeout (at least every 10 ms: some conditions are costly).
func waitUntil(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	every := max(timeout/200, 10*time.Millisecond)
	for end := time.Now().Add(timeout); ; time.Sleep(every) {
		if cond() {
			return
		}
		if time.Now().After(end) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// Flow packets: an ESP header (SPI, sequence number) and a marker the sink
// recognises, padded to fwdPktSize. The relay forwards ESP without opening
// it (it holds no keys), so the rest of the payload does not matter to it.
var benchMagic = []byte("hipnet-relay-bench")

func benchPacket(spi uint32, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p, spi)
	copy(p[8:], benchMagic)
	for i := 8 + len(benchMagic); i < size; i++ {
		p[i] = byte(i)
	}
	return p
}

func isBenchPacket(p []byte) bool {
	return len(p) >= 8+len(benchMagic) && bytes.Equal(p[8:8+len(benchMagic)], benchMagic)
}

// benchSink is the receiving end of a flow: a UDP socket whose ReadFrom
// counts and swallows flow packets and returns anything else. Given to an
// overlay.Stack as Config.PacketConn it sits in the stack's read loop, so
// the stack keeps working (its control traffic passes through) while flow
// packets never reach its ESP path; run alone it is a plain counting
// receiver. Either way the receiving work per packet is the same: one
// recvfrom, one comparison, one atomic add.
type benchSink struct {
	*net.UDPConn
	window int
	got    atomic.Uint64 // flow packets arrived
	// The sender, when the window is full, sets waiting and sleeps on wake
	// until got is within half a window of sent: one wake-up per half
	// window, not one goroutine hand-off per packet.
	sent    atomic.Uint64
	waiting atomic.Bool
	wake    chan struct{}
}

func newBenchSink(tb testing.TB, window int) *benchSink {
	return &benchSink{UDPConn: benchUDP(tb), window: window, wake: make(chan struct{}, 1)}
}

func (s *benchSink) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, from, err := s.UDPConn.ReadFromUDPAddrPort(p)
		if err != nil {
			return 0, nil, err
		}
		if !isBenchPacket(p[:n]) {
			return n, net.UDPAddrFromAddrPort(from), nil
		}
		got := s.got.Add(1)
		if s.waiting.Load() && s.sent.Load()-got <= uint64(s.window/2) && s.waiting.CompareAndSwap(true, false) {
			s.wake <- struct{}{}
		}
	}
}

// drain runs the sink as a plain receiver until its socket closes.
func (s *benchSink) drain() {
	buf := make([]byte, 65536)
	for {
		if _, _, err := s.ReadFrom(buf); err != nil {
			return
		}
	}
}

// benchFlow sends numbered flow packets from one socket to one address,
// never more than sink.window unacknowledged by the sink: every socket
// buffer on the way holds at most that many packets, far below its size,
// so nothing is dropped for overrun and the rate measured is the rate of
// the slowest stage, not of loss recovery.
type benchFlow struct {
	name string
	from *net.UDPConn
	to   netip.AddrPort
	sink *benchSink
	pkt  []byte
	seq  uint32
}

// stallLimit is how long the flow waits for the sink before it calls the
// packets in flight lost.
const stallLimit = 2 * time.Second

// run sends n packets and waits until the sink has counted all of them;
// it returns the time from the first send to the last arrival.
func (f *benchFlow) run(n int) (time.Duration, error) {
	s := f.sink
	stall := time.NewTimer(time.Hour)
	stall.Stop()
	defer stall.Stop()
	// waitFor sleeps until at most max packets are in flight.
	waitFor := func(max uint64) error {
		for s.sent.Load()-s.got.Load() > max {
			s.waiting.Store(true)
			if s.sent.Load()-s.got.Load() <= uint64(s.window/2) { // arrived meanwhile
				if s.waiting.CompareAndSwap(true, false) {
					continue
				}
			}
			stall.Reset(stallLimit)
			select {
			case <-s.wake:
				stall.Stop()
			case <-stall.C:
				sent, got := s.sent.Load(), s.got.Load()
				return fmt.Errorf("no packet arrived for %v: %d sent, %d arrived (lost %d)", stallLimit, sent, got, sent-got)
			}
		}
		return nil
	}
	start := time.Now()
	for range n {
		if s.sent.Load()-s.got.Load() >= uint64(s.window) {
			if err := waitFor(uint64(s.window / 2)); err != nil {
				return 0, err
			}
		}
		f.seq++
		binary.BigEndian.PutUint32(f.pkt[4:], f.seq)
		if _, err := f.from.WriteToUDPAddrPort(f.pkt, f.to); err != nil {
			return 0, err
		}
		s.sent.Add(1)
	}
	// The last half window, then spin-free polling for the rest.
	if err := waitFor(uint64(s.window / 2)); err != nil {
		return 0, err
	}
	for end := time.Now().Add(stallLimit); s.got.Load() != s.sent.Load(); time.Sleep(20 * time.Microsecond) {
		if time.Now().After(end) {
			sent, got := s.sent.Load(), s.got.Load()
			return 0, fmt.Errorf("%d sent, %d arrived (lost %d)", sent, got, sent-got)
		}
	}
	return time.Since(start), nil
}

// udpForwarder is the baseline's middle box: the least a forwarder can do
// in Go, one recvfrom and one sendto to a fixed destination per datagram.
func udpForwarder(in *net.UDPConn, to netip.AddrPort) {
	buf := make([]byte, 65536)
	for {
		n, _, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = in.WriteToUDPAddrPort(buf[:n], to)
	}
}

// settledHeap is the live heap after two full collections (the second
// also empties the sync.Pool victim caches).
func settledHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// registerMany registers n new ECDSA P-256 identities for RELAY_UDP_HIP
// with the relay at (hit, at): one sans-I/O handshake.Endpoint per
// identity, every base exchange over one client UDP socket, at most
// window of them in flight (the relay's control backlog is 256 packets),
// with the handshake's retransmissions run from the wall clock. Nothing of
// the client side outlives the call.
func registerMany(hit wire.HIT, at netip.AddrPort, n, window int) error {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)

	type client struct {
		ep      *handshake.Endpoint
		a       *handshake.Association
		granted bool
	}
	live := make(map[wire.HIT]*client, window)
	var out []byte
	send := func(pkts [][]byte) error {
		for _, p := range pkts {
			out = wire.AppendUDPControl(out[:0], p)
			if _, err := conn.WriteToUDPAddrPort(out, at); err != nil {
				return err
			}
		}
		return nil
	}
	// settle acts on what an association did; it reports whether the
	// registration is complete.
	settle := func(c *client) (bool, error) {
		for _, ev := range c.a.Events() {
			switch ev.Kind {
			case handshake.EventFailed, handshake.EventClosed:
				return false, fmt.Errorf("client %v: %v: %w", c.ep.HIT(), ev.Kind, ev.Err)
			case handshake.EventRegistration:
				if !slices.Contains(ev.Registration.Granted, wire.RegTypeRelayUDPHIP) {
					return false, fmt.Errorf("client %v: registration refused: %+v", c.ep.HIT(), *ev.Registration)
				}
				c.granted = true
			}
		}
		if err := send(c.a.Outgoing()); err != nil {
			return false, err
		}
		return c.granted && c.a.State() == handshake.Established, nil
	}
	lifetime := wire.DurationToLifetime(time.Hour)
	buf := make([]byte, 65536)
	started, done := 0, 0
	lastTimers := time.Now()
	for done < n {
		for started < n && len(live) < window {
			k, err := hostid.Generate(hostid.ECDSAP256, nil)
			if err != nil {
				return err
			}
			now := time.Now()
			ep, err := handshake.NewEndpoint(handshake.Config{Identity: k, DHGroups: []uint8{wire.DHGroupP256}}, now)
			if err != nil {
				return err
			}
			c := &client{ep: ep, a: ep.Initiate(now, hit)}
			if err := c.a.RequestRegistration(lifetime, wire.RegTypeRelayUDPHIP); err != nil {
				return err
			}
			live[ep.HIT()] = c
			if _, err := settle(c); err != nil {
				return err
			}
			started++
		}
		_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		m, _, err := conn.ReadFromUDPAddrPort(buf)
		now := time.Now()
		if err == nil {
			// Anything unparsable or for a client already done (a
			// duplicate) is ignored, as is a packet the state machine
			// rejects.
			if pkt, err := wire.ParseUDPControl(buf[:m]); err == nil {
				if c := live[pkt.ReceiverHIT()]; c != nil {
					res, herr := c.ep.Handle(now, pkt, c.a)
					if res.Assoc != nil {
						c.a = res.Assoc
					}
					if herr == nil {
						ok, err := settle(c)
						if err != nil {
							return err
						}
						if ok {
							delete(live, c.ep.HIT())
							done++
						}
					}
				}
			}
		} else if !os.IsTimeout(err) {
			return err
		}
		if now.Sub(lastTimers) >= 100*time.Millisecond {
			lastTimers = now
			for _, c := range live {
				if d := c.a.Deadline(); !d.IsZero() && !now.Before(d) {
					c.a.HandleTimeout(now)
					if _, err := settle(c); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}
