package overlay

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

const protoTCP = 6

type gotSegment struct {
	src wire.HIT
	seg []byte
}

// segmentSink registers a handler for proto on s that copies what it gets
// into a channel.
func segmentSink(t *testing.T, s *Stack, proto uint8) chan gotSegment {
	t.Helper()
	ch := make(chan gotSegment, 16)
	if err := s.HandleSegments(proto, func(src wire.HIT, seg []byte) {
		ch <- gotSegment{src, append([]byte(nil), seg...)}
	}); err != nil {
		t.Fatal(err)
	}
	return ch
}

func recvSegment(t *testing.T, ch chan gotSegment) gotSegment {
	t.Helper()
	select {
	case g := <-ch:
		return g
	case <-time.After(5 * time.Second):
		t.Fatal("no segment")
		return gotSegment{}
	}
}

// TestSegments: a segment of another protocol than UDP written before the
// association exists is queued, starts the base exchange and arrives; one
// written after goes at once; the handler is told the HIT the SA
// authenticated; without a handler the peer's segments are dropped and
// counted; UDP and a taken protocol are refused.
func TestSegments(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	introduce(a, b)
	got := segmentSink(t, b, protoTCP)

	first := []byte("segment before the base exchange")
	if err := a.WriteSegment(b.HIT(), protoTCP, first); err != nil {
		t.Fatal(err)
	}
	g := recvSegment(t, got)
	if g.src != a.HIT() || !bytes.Equal(g.seg, first) {
		t.Fatalf("got %q from %v, want %q from %v", g.seg, g.src, first, a.HIT())
	}
	second := pattern(7, 1200)
	if err := a.WriteSegment(b.HIT(), protoTCP, second); err != nil {
		t.Fatal(err)
	}
	if g := recvSegment(t, got); !bytes.Equal(g.seg, second) {
		t.Fatal("second segment differs")
	}

	// No handler at a: b's segment is dropped and counted.
	before := a.Stats().Drops.NotUDP
	if err := b.WriteSegment(a.HIT(), protoTCP, []byte("nobody listens")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the unhandled segment counted", func() bool { return a.Stats().Drops.NotUDP > before })

	if err := a.WriteSegment(b.HIT(), 17, []byte("udp")); !errors.Is(err, ErrProtocol) {
		t.Fatalf("WriteSegment(UDP) = %v, want ErrProtocol", err)
	}
	// Too long for one UDP datagram: refused before it is sealed, so it
	// uses up no sequence number (it would be lost on the socket).
	sent := a.Stats().ESPOut
	if err := a.WriteSegment(b.HIT(), protoTCP, make([]byte, MaxSegment+1)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("WriteSegment(%d octets) = %v, want EMSGSIZE", MaxSegment+1, err)
	}
	if n := a.Stats().ESPOut - sent; n != 0 {
		t.Fatalf("a refused segment sealed %d ESP packets", n)
	}
	if err := b.HandleSegments(protoTCP, func(wire.HIT, []byte) {}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("a second handler for TCP = %v, want ErrProtocol", err)
	}
	if err := b.HandleSegments(protoTCP, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.HandleSegments(protoTCP, func(wire.HIT, []byte) {}); err != nil {
		t.Fatalf("a handler after removal: %v", err)
	}
}

// TestWriteSegmentAllocs: an established association seals and sends a
// segment without allocating.
// TestSegmentBatches: a handler registered with a flush gets it after the
// segments of each receive batch, on the read loop, and never with no
// segment before it: every segment is followed by a flush.
func TestSegmentBatches(t *testing.T) {
	a, b := connected(t, nil, nil)
	var mu sync.Mutex
	var events []string // "s" per segment, "f" per flush, in order
	h := func(wire.HIT, []byte) {
		mu.Lock()
		events = append(events, "s")
		mu.Unlock()
	}
	flush := func() {
		mu.Lock()
		events = append(events, "f")
		mu.Unlock()
	}
	if err := b.HandleSegmentBatches(protoTCP, h, flush); err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if err := a.WriteSegment(b.HIT(), protoTCP, pattern(i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "the segments and their flush", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(strings.Join(events, ""), "s") == n && events[len(events)-1] == "f"
	})
	mu.Lock()
	seq := strings.Join(events, "")
	mu.Unlock()
	if strings.Contains(seq, "ff") || strings.HasPrefix(seq, "f") {
		t.Fatalf("a flush with no segment before it: %s", seq)
	}
	if !strings.HasSuffix(seq, "f") {
		t.Fatalf("segments left unflushed: %s", seq)
	}
	t.Logf("%d segments in %d batches", strings.Count(seq, "s"), strings.Count(seq, "f"))
}

func TestWriteSegmentAllocs(t *testing.T) {
	skipAllocs(t)
	a, b := connected(t, nil, nil)
	if err := b.HandleSegments(protoTCP, func(wire.HIT, []byte) {}); err != nil {
		t.Fatal(err)
	}
	seg := pattern(3, 1000)
	write := func() {
		if err := a.WriteSegment(b.HIT(), protoTCP, seg); err != nil {
			t.Fatal(err)
		}
	}
	warmTx(a, write)
	n := pathAllocs(200, write)
	if n != 0 {
		t.Fatalf("WriteSegment allocates %.1f times per segment", n)
	}
}

// TestAssociationSecret: both ends of an association get the same secret,
// a third host has none with either, and it goes with the association.
func TestAssociationSecret(t *testing.T) {
	a, b := connected(t, nil, nil)
	barrier(t, b)
	sa, ok := a.AssociationSecret(b.HIT())
	if !ok || len(sa) != 32 {
		t.Fatalf("initiator: secret %x, %v", sa, ok)
	}
	var sb []byte
	waitFor(t, 5*time.Second, "the responder's secret", func() bool {
		sb, ok = b.AssociationSecret(a.HIT())
		return ok
	})
	if !bytes.Equal(sa, sb) {
		t.Fatalf("secrets differ:\n%x\n%x", sa, sb)
	}
	sa[0] ^= 1 // the caller's copy
	if again, _ := a.AssociationSecret(b.HIT()); bytes.Equal(again, sa) {
		t.Fatal("AssociationSecret returned the stack's own array")
	}
	c := newTestStack(t, 2, nil)
	if _, ok := c.AssociationSecret(a.HIT()); ok {
		t.Fatal("a stranger has a secret")
	}
	b.Close() // sends CLOSE to a
	waitFor(t, 5*time.Second, "the secret gone with the association", func() bool {
		_, ok := a.AssociationSecret(b.HIT())
		return !ok
	})
}
