package overlay

import (
	"bytes"
	"net"
	"runtime/debug"
	"testing"
	"time"

	"hipnet.dev/esp"
)

// The zero-allocation guarantees of the data path (DESIGN.md "Associations
// and the store"). testing.AllocsPerRun counts every goroutine's
// allocations, so each test keeps the stacks' own goroutines idle while it
// measures.

func skipAllocs(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	// The collector stays off while the test counts: a collection empties
	// the buffer pools (sync.Pool), and refilling them would count as the
	// path's allocations (about one in sixty runs saw a collection inside
	// a send-path count: 1.0 per datagram for that run).
	gc := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(gc) })
}

func TestSALookupAllocs(t *testing.T) {
	skipAllocs(t)
	s, spis := tableWith(t, 1000)
	i := 0
	if a := testing.AllocsPerRun(1000, func() {
		if s.spis.lookup(spis[i%len(spis)]) == nil {
			t.Fatal("SA not found")
		}
		i++
	}); a != 0 {
		t.Errorf("SA lookup allocates %.1f times", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		if s.spis.lookup(7) != nil {
			t.Fatal("found SPI 7")
		}
	}); a != 0 {
		t.Errorf("failed SA lookup allocates %.1f times", a)
	}
}

// sealed returns n ESP packets from a to b's inner port, sealed with a's
// real outbound SA (as a's data path would) into their own buffers.
func sealed(t testing.TB, a, b *Stack, srcPort, dstPort uint16, payload []byte, n int) [][]byte {
	t.Helper()
	o := a.lookupPeer(b.HIT()).out.Load()
	pkts := make([][]byte, n)
	for i := range pkts {
		seg := esp.AppendUDP(nil, a.HIT(), b.HIT(), srcPort, dstPort, payload)
		var err error
		if pkts[i], err = o.Seal(make([]byte, 0, len(seg)+o.Overhead(len(seg))), seg, esp.ProtoUDP); err != nil {
			t.Fatal(err)
		}
	}
	return pkts
}

// TestReceiveAllocs: a received ESP datagram goes through demux, SA lookup,
// Open, ParseUDP and the InnerConn's inbox, and is read by ReadFromAddr,
// without one allocation.
func TestReceiveAllocs(t *testing.T) {
	skipAllocs(t)
	a, b := connected(t, nil, nil)
	cb := listen(t, b, 99)
	barrier(t, b)
	payload := pattern(1, 1200)
	const runs = 500
	pkts := sealed(t, a, b, 5000, 99, payload, runs+1)
	from := a.LocalAddr()
	buf := make([]byte, 2048)
	i := 0
	if n := testing.AllocsPerRun(runs, func() {
		b.receive(pkts[i], from)
		i++
		n, src, err := cb.ReadFromAddr(buf)
		if err != nil || n != len(payload) || src.HIT != a.HIT() || src.Port != 5000 {
			t.Fatalf("read: %d %v %v", n, src, err)
		}
	}); n != 0 {
		t.Errorf("receive path allocates %.1f times per datagram", n)
	}
	if !bytes.Equal(buf[:len(payload)], payload) {
		t.Fatal("payload corrupted")
	}
	// The drop paths do not allocate either (a flood of forgeries).
	bad := bytes.Clone(pkts[0])
	bad[len(bad)-1] ^= 1
	if n := testing.AllocsPerRun(100, func() { b.receive(bad, from) }); n != 0 {
		t.Errorf("dropping a forgery allocates %.1f times", n)
	}
	unknown := bytes.Clone(bad)
	unknown[0] ^= 0x40
	if n := testing.AllocsPerRun(100, func() { b.receive(unknown, from) }); n != 0 {
		t.Errorf("dropping an unknown SPI allocates %.1f times", n)
	}
}

// warmTx fills the buffer pool the way a burst does: back-to-back writes
// queue up to txQueueMax sealed packets (tx.go), each in a pooled buffer
// that returns when the sender goroutine has written it. The first burst
// makes those buffers; after it the send path takes them from the pool.
// How many a burst holds at once depends on how the sender keeps up, so
// the pool is first given as many as can be out at once: a full queue,
// the batch the sender is writing, and one inline write.
func warmTx(s *Stack, write func()) {
	bufs := make([]*[]byte, 2*txQueueMax+1)
	for i := range bufs {
		bufs[i] = getBuf(smallBufLen)
	}
	for _, b := range bufs {
		putBuf(b)
	}
	for range 2 * txQueueMax {
		write()
	}
	for {
		s.tx.mu.Lock()
		idle := !s.tx.sending && len(s.tx.pkts) == 0
		s.tx.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// innerPair connects two stacks, a and b, and returns a with an
// InnerConn on each (b's on port 77) and the address of b's.
func innerPair(t *testing.T) (a *Stack, ca, cb *InnerConn, to *Addr) {
	a, b := connected(t, nil, nil)
	ca = listen(t, a, 0)
	cb = listen(t, b, 77)
	barrier(t, b)
	return a, ca, cb, &Addr{HIT: b.HIT(), Port: 77}
}

// pathAllocs is testing.AllocsPerRun for a path that runs on a stack's
// goroutines as well as the caller's: the least of three counts. The
// count takes in every goroutine of the process, and a stack of an
// earlier test may still be finishing its CLOSE exchange; an allocation
// on the path shows in all three.
func pathAllocs(runs int, f func()) float64 {
	n := testing.AllocsPerRun(runs, f)
	for range 2 {
		n = min(n, testing.AllocsPerRun(runs, f))
	}
	return n
}

// TestDatagramAllocs: datagrams end to end over real loopback sockets,
// InnerConn.WriteTo on one stack and ReadFromAddr on the other, through
// the transmit queue, sendmmsg/GSO, recvmmsg/GRO, seal and open: no
// allocation on either side.
func TestDatagramAllocs(t *testing.T) {
	skipAllocs(t)
	_, ca, cb, to := innerPair(t)
	msg := pattern(4, 1200)
	buf := make([]byte, 2048)
	roundTrip := func() {
		if _, err := ca.WriteTo(msg, to); err != nil {
			t.Fatal(err)
		}
		if n, _, err := cb.ReadFromAddr(buf); err != nil || n != len(msg) {
			t.Fatalf("read %d, %v", n, err)
		}
	}
	for range 2 * txQueueMax {
		roundTrip()
	}
	if n := pathAllocs(500, roundTrip); n != 0 {
		t.Errorf("a datagram end to end allocates %.2f times", n)
	}
	if !bytes.Equal(buf[:len(msg)], msg) {
		t.Fatal("payload corrupted")
	}
}

// TestSendAllocs: InnerConn.WriteTo with an association seals into pooled
// buffers and writes with WriteToUDPAddrPort: no allocation.
func TestSendAllocs(t *testing.T) {
	skipAllocs(t)
	a, b := connected(t, nil, nil)
	// Send to a socket nobody reads, so that no stack goroutine wakes up.
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	a.AddPeer(b.HIT(), addrPortOf(sink.LocalAddr()))
	ca := listen(t, a, 0)
	to := &Addr{HIT: b.HIT(), Port: 9}
	msg := pattern(2, 1200)
	write := func() {
		if _, err := ca.WriteTo(msg, to); err != nil {
			t.Fatal(err)
		}
	}
	warmTx(a, write)
	if n := pathAllocs(200, write); n != 0 {
		t.Errorf("send path allocates %.1f times per datagram", n)
	}
	a.AddPeer(b.HIT(), b.LocalAddr()) // so that Close gets its CLOSE_ACK
}
