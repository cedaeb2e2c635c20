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
	"sync"
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
// identity, window of them in flight on as many goroutines, with the
// handshake's retransmissions run from the wall clock. Each registration
// has a socket of its own, on one of registerAddrs loopback addresses, as
// n hosts would: the relay's R1 rate limits (overlay ratelimit.go) allow
// few I1s a second per source and a few hundred per address, and the
// relay must not be measured throttling its own test. Nothing of the
// client side outlives the call.
func registerMany(hit wire.HIT, at netip.AddrPort, n, window int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, window)
	for w := range window {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				src := netip.AddrFrom4([4]byte{127, 0, 1, byte(1 + (w+i)%registerAddrs)})
				if err := registerOne(hit, at, src); err != nil {
					errs <- err
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// registerAddrs is how many loopback source addresses (127.0.1.1 on)
// registerMany spreads its hosts over.
const registerAddrs = 32

// registerOne runs one registration from a new socket on src.
func registerOne(hit wire.HIT, at netip.AddrPort, src netip.Addr) error {
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, _, err = registerOn(conn, hit, at)
	return err
}

// registerOn registers a new identity for RELAY_UDP_HIP with the relay at
// (hit, at) over conn, and returns its HIT and its association with the
// relay once the grant is in and the association established.
func registerOn(conn *net.UDPConn, hit wire.HIT, at netip.AddrPort) (wire.HIT, *handshake.Association, error) {
	k, err := hostid.Generate(hostid.ECDSAP256, nil)
	if err != nil {
		return wire.HIT{}, nil, err
	}
	now := time.Now()
	ep, err := handshake.NewEndpoint(handshake.Config{Identity: k, DHGroups: []uint8{wire.DHGroupP256}}, now)
	if err != nil {
		return wire.HIT{}, nil, err
	}
	a := ep.Initiate(now, hit)
	if err := a.RequestRegistration(wire.DurationToLifetime(time.Hour), wire.RegTypeRelayUDPHIP); err != nil {
		return wire.HIT{}, nil, err
	}
	var out []byte
	granted := false
	// settle acts on what the association did; it reports whether the
	// registration is complete.
	settle := func() (bool, error) {
		for _, ev := range a.Events() {
			switch ev.Kind {
			case handshake.EventFailed, handshake.EventClosed:
				return false, fmt.Errorf("client %v: %v: %w", ep.HIT(), ev.Kind, ev.Err)
			case handshake.EventRegistration:
				if !slices.Contains(ev.Registration.Granted, wire.RegTypeRelayUDPHIP) {
					return false, fmt.Errorf("client %v: registration refused: %+v", ep.HIT(), *ev.Registration)
				}
				granted = true
			}
		}
		for _, p := range a.Outgoing() {
			out = wire.AppendUDPControl(out[:0], p)
			if _, err := conn.WriteToUDPAddrPort(out, at); err != nil {
				return false, err
			}
		}
		return granted && a.State() == handshake.Established, nil
	}
	buf := make([]byte, 65536)
	for {
		switch ok, err := settle(); {
		case err != nil:
			return wire.HIT{}, nil, err
		case ok:
			return ep.HIT(), a, nil
		}
		wait := 100 * time.Millisecond
		if d := a.Deadline(); !d.IsZero() {
			wait = min(wait, max(time.Until(d), time.Millisecond))
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		m, _, err := conn.ReadFromUDPAddrPort(buf)
		now := time.Now()
		switch {
		case err == nil:
			// Anything unparsable is ignored, as is a packet the state
			// machine rejects.
			if pkt, err := wire.ParseUDPControl(buf[:m]); err == nil {
				if res, herr := ep.Handle(now, pkt, a); herr == nil && res.Assoc != nil {
					a = res.Assoc
				}
			}
		case !os.IsTimeout(err):
			return wire.HIT{}, nil, err
		}
		if d := a.Deadline(); !d.IsZero() && !now.Before(d) {
			a.HandleTimeout(now)
		}
	}
}
