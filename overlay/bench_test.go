package overlay

import (
	"crypto/rand"
	"encoding/binary"
	"flag"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Benchmarks:
//
//	BenchmarkSALookup                SPI → SA with 100 000 associations in
//	                                 the store (goal <= 100 ns, 0 allocs)
//	BenchmarkIdleAssociationMemory   heap per established, idle association:
//	                                 peer struct, handshake.Association,
//	                                 both SAs, table record (goal <= 4 KiB)
//	BenchmarkReceiveESP              one ESP datagram from the socket's
//	                                 buffer to the reader's buffer
//	BenchmarkSendESP                 InnerConn.WriteTo to the socket
//	BenchmarkLoopback                one datagram stack to stack over
//	                                 loopback UDP, in lockstep

// benchAssocs stays under one R1 generation's record of spent puzzle
// solutions (handshake solutions.go, 65 536): the memory benchmark drives
// the control plane by hand, so the timer that rotates a full generation
// never runs, and the 65 537th I2 would be refused as a replay.
var benchAssocs = flag.Int("overlay.assocs", 60_000, "associations for BenchmarkSALookup and BenchmarkIdleAssociationMemory (at most 65 536)")

// tableWith builds a stack (no goroutines) whose store and SPI table hold n
// associations with real AES-GCM inbound SAs, and returns their SPIs.
func tableWith(t testing.TB, n int) (*Stack, []uint32) {
	t.Helper()
	s, err := newStack(Config{Identity: testKey(t, 0), ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	key := make([]byte, 20)
	rand.Read(key)
	spis := make([]uint32, 0, n)
	for i := range n {
		spi := s.ctl.allocSPI()
		in, err := esp.NewInbound(esp.Config{SPI: spi, Suite: esp.SuiteAESGCM16, EncKey: key})
		if err != nil {
			t.Fatal(err)
		}
		var h wire.HIT
		h[0], h[1], h[2] = 0x20, 0x01, 0x20
		binary.BigEndian.PutUint64(h[8:], uint64(i))
		p := newPeer(h)
		e := &inboundSA{sa: in, p: p}
		p.in = e
		s.spis.set(spi, e)
		delete(s.ctl.spiRes, spi)
		r := &assocRecord{HIT: h, Info: handshake.Info{State: handshake.Established, InSPI: spi}, peer: p}
		s.db.put(r)
		spis = append(spis, spi)
	}
	return s, spis
}

func BenchmarkSALookup(b *testing.B) {
	s, spis := tableWith(b, *benchAssocs)
	if got := s.spis.len(); got != len(spis) {
		b.Fatalf("%d SAs in the table", got)
	}
	if s.spis.lookup(spis[len(spis)/2]) == nil {
		b.Fatal("table lacks the SPI")
	}
	// Visit the SPIs in a shuffled order so that the benchmark does not
	// walk memory sequentially.
	order := make([]uint32, len(spis))
	for i, j := range randPerm(len(spis)) {
		order[i] = spis[j]
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	var hit *inboundSA
	for b.Loop() {
		hit = s.spis.lookup(order[i])
		if i++; i == len(order) {
			i = 0
		}
	}
	if hit == nil {
		b.Fatal("miss")
	}
	b.ReportMetric(float64(len(spis)), "assocs")
}

func randPerm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	var r [8]byte
	for i := n - 1; i > 0; i-- {
		rand.Read(r[:])
		j := int(binary.BigEndian.Uint64(r[:]) % uint64(i+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// sinkConn is a PacketConn that keeps the last datagram written to it, for
// driving a stack's control plane by hand.
type sinkConn struct {
	mu   sync.Mutex
	last []byte
}

func (c *sinkConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.last = append(c.last[:0], b...)
	c.mu.Unlock()
	return len(b), nil
}

func (c *sinkConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := append([]byte(nil), c.last[wire.NonESPMarkerLen:]...)
	c.last = c.last[:0]
	return b
}

func (c *sinkConn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, net.ErrClosed }
func (c *sinkConn) Close() error                           { return nil }
func (c *sinkConn) LocalAddr() net.Addr                    { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 10500} }
func (c *sinkConn) SetDeadline(time.Time) error            { return nil }
func (c *sinkConn) SetReadDeadline(time.Time) error        { return nil }
func (c *sinkConn) SetWriteDeadline(time.Time) error       { return nil }

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkIdleAssociationMemory runs -overlay.assocs real base exchanges
// (ECDSA P-256 Initiators, one new identity each) against one stack's
// control plane, driven by hand, and reports the heap each established,
// idle association costs the stack, in total and by part. The Initiators'
// side is discarded.
func BenchmarkIdleAssociationMemory(b *testing.B) {
	n := *benchAssocs
	sink := &sinkConn{}
	s, err := newStack(Config{Identity: testKey(b, 0), PacketConn: sink, Handshake: handshake.Config{PuzzleDifficulty: 1}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	before := heapInUse()
	var mu sync.Mutex // the control goroutine's exclusivity
	respond := func(pkt []byte, from netip.AddrPort) []byte {
		mu.Lock()
		defer mu.Unlock()
		s.ctl.handlePacket(time.Now(), ctrlPacket{b: pkt, from: from})
		return sink.take()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				k, err := hostid.Generate(hostid.ECDSAP256, nil)
				if err != nil {
					b.Error(err)
					return
				}
				now := time.Now()
				ep, err := handshake.NewEndpoint(handshake.Config{Identity: k, DHGroups: []uint8{wire.DHGroupP256}}, now)
				if err != nil {
					b.Error(err)
					return
				}
				from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 10500)
				a := ep.Initiate(now, s.hit)
				r1 := respond(a.Outgoing()[0], from)
				if _, err := ep.Handle(now, r1, a); err != nil {
					b.Error("R1:", err)
					return
				}
				r2 := respond(a.Outgoing()[0], from)
				if _, err := ep.Handle(now, r2, a); err != nil || a.State() != handshake.Established {
					b.Error("R2:", err, a.State())
					return
				}
				// The Initiator's first ESP: R2-SENT → ESTABLISHED.
				mu.Lock()
				p := s.lookupPeer(ep.HIT())
				p.assoc.DataReceived(now)
				s.ctl.process(p, now)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	elapsed := time.Since(start)
	if got := len(s.Peers()); got != n {
		b.Fatalf("%d associations in the store, want %d", got, n)
	}
	for _, p := range s.Peers()[:1] {
		if p.State != "ESTABLISHED" {
			b.Fatalf("state %s", p.State)
		}
	}
	total := heapInUse()
	// Take the parts away one by one to attribute the memory.
	s.db = newAssocTable()
	ps := s.peerList()
	for _, p := range ps {
		p.rec = nil
	}
	noStore := heapInUse()
	for _, p := range ps {
		p.in, p.prev = nil, nil
		p.out.Store(nil)
	}
	for i := range s.spis.shards {
		s.spis.shards[i].Store(nil)
	}
	noSAs := heapInUse()
	for _, p := range ps {
		p.assoc = nil
	}
	noAssoc := heapInUse()
	per := func(x, y uint64) float64 { return float64(int64(x)-int64(y)) / float64(n) }
	b.ReportMetric(per(total, before), "B/assoc")
	b.ReportMetric(per(total, noStore), "B/store")
	b.ReportMetric(per(noStore, noSAs), "B/SAs")
	b.ReportMetric(per(noSAs, noAssoc), "B/handshake")
	b.ReportMetric(per(noAssoc, before), "B/peer")
	b.ReportMetric(float64(n), "assocs")
	b.ReportMetric(float64(elapsed.Microseconds())/float64(n), "µs/bex")
	runtime.KeepAlive(ps)
	runtime.KeepAlive(s)
}

func BenchmarkReceiveESP(b *testing.B) {
	a, bb := connected(b, nil, nil)
	cb := listen(b, bb, 99)
	barrier(b, bb)
	payload := pattern(1, 1200)
	from := a.LocalAddr()
	buf := make([]byte, 2048)
	var pkts [][]byte
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(pkts) {
			b.StopTimer()
			pkts, i = sealed(b, a, bb, 5000, 99, payload, 4096), 0
			b.StartTimer()
		}
		bb.receive(pkts[i], from)
		i++
		if _, _, err := cb.ReadFromAddr(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoopback: datagrams from one stack to another over loopback UDP,
// socket reads and writes included (the read loop's allocations count).
func BenchmarkLoopback(b *testing.B) {
	a, bb := connected(b, nil, nil)
	ca, cb := listen(b, a, 0), listen(b, bb, 98)
	to := &Addr{HIT: bb.HIT(), Port: 98}
	msg := pattern(3, 1200)
	buf := make([]byte, 2048)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.WriteTo(msg, to); err != nil {
			b.Fatal(err)
		}
		if _, _, err := cb.ReadFromAddr(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSendESP(b *testing.B) {
	a, bb := connected(b, nil, nil)
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	a.AddPeer(bb.HIT(), addrPortOf(sink.LocalAddr()))
	ca := listen(b, a, 0)
	to := &Addr{HIT: bb.HIT(), Port: 9}
	msg := pattern(2, 1200)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.WriteTo(msg, to); err != nil {
			b.Fatal(err)
		}
	}
}
