package netstack

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// fakeNet joins fakeLinks, each standing for one node's ESP SAs: a
// segment written to a HIT is handed to that node's handler with the
// writer's HIT as src, as an SA would authenticate it. It can drop,
// duplicate and reorder segments, and deliver inline (sync) or from one
// goroutine per receiving link (the default, as a socket reader would).
type fakeNet struct {
	sync    bool
	drop    float64 // fraction of segments lost
	dup     float64 // fraction delivered twice
	reorder float64 // fraction held back behind the next segment
	// batch makes the links batchLinks: the receiving goroutine calls the
	// flush after the segments it found queued (a receive batch), so the
	// Transport coalesces them (GRO).
	batch bool

	mu    sync.Mutex
	rng   *rand.Rand
	links map[wire.HIT]*fakeLink

	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type fakeLink struct {
	n       *fakeNet
	hit     wire.HIT
	handler atomic.Pointer[func(wire.HIT, []byte)]
	flush   atomic.Pointer[func()]
	in      chan fakeSegment
	// tap, if set, sees every segment this link writes and swallows it
	// by returning false.
	tap atomic.Pointer[func(dst wire.HIT, seg []byte) bool]
	// bufs recycles segment copies, so that benchmarks measure the
	// transport rather than the fake.
	bufs sync.Pool
	// paths answers MaxSegment (setPath); a peer not in it has no
	// figure, as over a Link that cannot size paths.
	paths sync.Map // wire.HIT → int
}

// setPath makes MaxSegment report n octets for the path to peer.
func (l *fakeLink) setPath(peer wire.HIT, n int) { l.paths.Store(peer, n) }

// MaxSegment makes a fakeLink a pathLink.
func (l *fakeLink) MaxSegment(peer wire.HIT) (int, bool) {
	n, ok := l.paths.Load(peer)
	if !ok {
		return 0, false
	}
	return n.(int), true
}

type fakeSegment struct {
	src wire.HIT
	seg *[]byte
}

func newFakeNet() *fakeNet {
	return &fakeNet{
		rng:   rand.New(rand.NewPCG(1, 2)),
		links: make(map[wire.HIT]*fakeLink),
		quit:  make(chan struct{}),
	}
}

// testHIT returns an ORCHIDv2-shaped HIT numbered i.
func testHIT(i byte) wire.HIT {
	return wire.HIT{0x20, 0x01, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, i}
}

// add makes the link of a node with hit.
func (n *fakeNet) add(hit wire.HIT) *fakeLink {
	l := &fakeLink{n: n, hit: hit, in: make(chan fakeSegment, 8192)}
	l.bufs.New = func() any { b := make([]byte, 0, 2048); return &b }
	n.mu.Lock()
	n.links[hit] = l
	n.mu.Unlock()
	if !n.sync {
		n.wg.Add(1)
		go l.receive()
	}
	return l
}

// batchFakeLink is a fakeLink that says where its receive batches end.
type batchFakeLink struct{ *fakeLink }

func (l batchFakeLink) HandleSegmentBatches(proto uint8, fn func(src wire.HIT, seg []byte), flush func()) {
	l.HandleSegments(proto, fn)
	if fn == nil || flush == nil {
		l.flush.Store(nil)
		return
	}
	l.flush.Store(&flush)
}

// endBatch calls the flush, if the Transport gave one.
func (l *fakeLink) endBatch() {
	if f := l.flush.Load(); f != nil {
		(*f)()
	}
}

// close stops the receiving goroutines and waits for them.
func (n *fakeNet) close() {
	n.once.Do(func() { close(n.quit) })
	n.wg.Wait()
}

func (l *fakeLink) LocalHIT() wire.HIT { return l.hit }

func (l *fakeLink) HandleSegments(proto uint8, fn func(src wire.HIT, seg []byte)) {
	if proto != protoTCP {
		panic("fakeLink: only TCP")
	}
	if fn == nil {
		l.handler.Store(nil)
		return
	}
	l.handler.Store(&fn)
}

func (l *fakeLink) WriteSegment(dst wire.HIT, proto uint8, seg []byte) error {
	if proto != protoTCP {
		return fmt.Errorf("fakeLink: protocol %d", proto)
	}
	if tap := l.tap.Load(); tap != nil && !(*tap)(dst, seg) {
		return nil
	}
	l.n.mu.Lock()
	to := l.n.links[dst]
	copies := 1
	if r := l.n.rng.Float64(); r < l.n.drop {
		copies = 0
	} else if r < l.n.drop+l.n.dup {
		copies = 2
	}
	l.n.mu.Unlock()
	if to == nil {
		return fmt.Errorf("fakeLink: %s: %w", dst, overlay.ErrUnknownPeer)
	}
	for range copies {
		if l.n.sync {
			to.handle(l.hit, seg)
			to.endBatch()
			continue
		}
		b := to.bufs.Get().(*[]byte)
		*b = append((*b)[:0], seg...)
		select {
		case to.in <- fakeSegment{src: l.hit, seg: b}:
		case <-l.n.quit:
			return errors.New("fakeLink: closed")
		default:
			to.bufs.Put(b) // queue full: lost, as on a real link
		}
	}
	return nil
}

// receive delivers the queued segments in order, except that a segment
// picked for reordering waits behind the next one (or 2 ms).
func (l *fakeLink) receive() {
	defer l.n.wg.Done()
	var (
		held    fakeSegment
		holding bool
	)
	for {
		var timeout <-chan time.Time
		if holding {
			timeout = time.After(2 * time.Millisecond)
		}
		select {
		case <-l.n.quit:
			return
		case <-timeout:
			l.deliver(held)
			holding = false
			l.endBatch()
		case s := <-l.in:
			if !holding && l.n.reorder > 0 && l.pick(l.n.reorder) {
				held, holding = s, true
				continue
			}
			l.deliver(s)
			if holding {
				l.deliver(held)
				holding = false
			}
			if len(l.in) == 0 {
				l.endBatch() // nothing more queued: the batch ends here
			}
		}
	}
}

func (l *fakeLink) pick(p float64) bool {
	l.n.mu.Lock()
	defer l.n.mu.Unlock()
	return l.n.rng.Float64() < p
}

func (l *fakeLink) deliver(s fakeSegment) {
	l.handle(s.src, *s.seg)
	l.bufs.Put(s.seg)
}

// handle hands seg to the node as if its SA with src had opened it.
func (l *fakeLink) handle(src wire.HIT, seg []byte) {
	if fn := l.handler.Load(); fn != nil {
		(*fn)(src, seg)
	}
}

// setTap installs fn as the link's outbound tap (nil removes it).
func (l *fakeLink) setTap(fn func(dst wire.HIT, seg []byte) bool) {
	if fn == nil {
		l.tap.Store(nil)
		return
	}
	l.tap.Store(&fn)
}

// node is a Transport on a fakeLink.
type node struct {
	*Transport
	link *fakeLink
}

// newNodes makes count Transports on n, closed at the end of the test
// (before n).
func newNodes(tb testing.TB, n *fakeNet, count int, cfg Config) []node {
	tb.Helper()
	tb.Cleanup(n.close)
	nodes := make([]node, count)
	for i := range nodes {
		l := n.add(testHIT(byte(i + 1)))
		var link Link = l
		if n.batch {
			link = batchFakeLink{l}
		}
		tr, err := New(link, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = tr.Close() })
		nodes[i] = node{Transport: tr, link: l}
	}
	return nodes
}

// pair is two nodes on a fresh fakeNet.
func pair(tb testing.TB, n *fakeNet) (a, b node) {
	tb.Helper()
	if n == nil {
		n = newFakeNet()
	}
	nodes := newNodes(tb, n, 2, Config{})
	return nodes[0], nodes[1]
}
