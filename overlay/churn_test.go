package overlay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// waitClosed waits on WatchAssociation until the association of s with
// the peer h can no longer carry data.
func waitClosed(t *testing.T, s *Stack, h [16]byte, within time.Duration) {
	t.Helper()
	timeout := time.After(within)
	for {
		w, changed := s.WatchAssociation(h)
		if !w.Live {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("association with %v still live after %v", h, within)
		}
	}
}

// TestWatchAssociation: the watch reports the association live from the
// base exchange on, and wakes its watcher when a CLOSE ends it.
func TestWatchAssociation(t *testing.T) {
	a, b := connected(t, nil, nil)
	w, changed := b.WatchAssociation(a.HIT())
	if !w.Live || w.Gen == 0 || w.LeftGen != 0 {
		t.Fatalf("after the base exchange: %+v; want live, a generation, none left: %+v", w, b.Peers())
	}
	select {
	case <-changed:
		// The Initiator's first ESP (or anything else) moved R2-SENT on.
	default:
	}
	if w, _ := b.WatchAssociation(testKey(t, 5).HIT()); w != (AssocWatch{}) {
		t.Fatalf("a HIT without an association: %+v", w)
	}
	a.Close()
	waitClosed(t, b, a.HIT(), 2*time.Second)
	if p, ok := peerInfo(b, a.HIT()); !ok || p.State != handshake.Closed.String() {
		t.Fatalf("after CLOSE: %+v, %v; want the CLOSED record", p, ok)
	}
}

// TestAssociationGenerations: a new association with the same peer gets a
// new, greater Gen; the peer's CLOSE of the last one stays visible in
// LeftGen after the next comes up, so a watcher that looks only then
// still learns that the association it saw was ended by the peer.
func TestAssociationGenerations(t *testing.T) {
	a, b := connected(t, nil, nil)
	first, _ := a.WatchAssociation(b.HIT())
	if wb, _ := b.WatchAssociation(a.HIT()); !first.Live || first.Gen == 0 || !wb.Live || wb.Gen == 0 {
		t.Fatalf("after the base exchange: a %+v, b %+v", first, wb)
	}
	b.Close()
	waitClosed(t, a, b.HIT(), 2*time.Second)
	closed, _ := a.WatchAssociation(b.HIT())
	if closed.Gen != first.Gen || !closed.LeftSince(first.Gen) {
		t.Fatalf("after b's CLOSE: %+v, want Gen %d left", closed, first.Gen)
	}

	b2 := newTestStack(t, 1, nil) // b again, same identity, new port
	a.AddPeer(b2.HIT(), b2.LocalAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b2.HIT()); err != nil {
		t.Fatal(err)
	}
	next, _ := a.WatchAssociation(b.HIT())
	if !next.Live || next.Gen <= first.Gen {
		t.Fatalf("next association: %+v, want live with Gen > %d", next, first.Gen)
	}
	if !next.LeftSince(first.Gen) || next.LeftSince(next.Gen) {
		t.Fatalf("next association: %+v, want the first left and the next not", next)
	}
}

// TestGenerationRules: which changes of a record make a new association
// (assocTable.generations), on records alone.
func TestGenerationRules(t *testing.T) {
	tbl := newAssocTable()
	var h wire.HIT
	h[15] = 1
	put := func(st handshake.State) AssocWatch {
		tbl.put(&assocRecord{HIT: h, Info: handshake.Info{State: st, InSPI: uint32(tbl.gens)}})
		r := tbl.get(h)
		return AssocWatch{Live: r.live(), Gen: r.gen, LeftGen: r.leftGen}
	}
	steps := []struct {
		st           handshake.State
		gen, leftGen uint64
	}{
		{handshake.I1Sent, 0, 0},
		{handshake.I2Sent, 0, 0},
		{handshake.Established, 1, 0}, // the Initiator's exchange completes
		{handshake.Established, 1, 0}, // a rekey: new SPIs, same association
		{handshake.R2Sent, 2, 0},      // an I2 in ESTABLISHED: a new exchange
		{handshake.Established, 2, 0},
		{handshake.Closed, 2, 2}, // the peer's CLOSE
		{handshake.Closed, 2, 2},
		{handshake.R2Sent, 3, 2},  // an I2 in CLOSED
		{handshake.Closing, 3, 2}, // our own close is not the peer's
		{handshake.Closed, 3, 3},  // but a crossing CLOSE is
	}
	for i, s := range steps {
		if w := put(s.st); w.Gen != s.gen || w.LeftGen != s.leftGen {
			t.Errorf("step %d (%v): Gen %d LeftGen %d, want %d %d", i, s.st, w.Gen, w.LeftGen, s.gen, s.leftGen)
		}
	}
	tbl.delete(h)
	if w := put(handshake.R2Sent); w.Gen != 4 || w.LeftGen != 0 {
		t.Errorf("a record made anew: %+v, want Gen 4 and nothing left", w)
	}
}

// TestNoAutoConnectAfterClose: a datagram written in CLOSED starts a new
// base exchange (RFC 7401 §4.4.3) through an InnerConn with auto-connect
// on; with it off the write fails with ErrUnknownPeer and the association
// stays CLOSED: a stream layer with packets still in flight cannot bring
// back a peer that left.
func TestNoAutoConnectAfterClose(t *testing.T) {
	for _, auto := range []bool{false, true} {
		a, b := connected(t, nil, nil)
		c := listen(t, b, 9)
		c.SetAutoConnect(auto)
		a.Close()
		waitClosed(t, b, a.HIT(), 2*time.Second)
		started := b.Stats().BEX.Started

		_, err := c.WriteTo([]byte("late"), &Addr{HIT: a.HIT(), Port: 9})
		if auto && err == nil {
			// The write pokes the control goroutine through the wake
			// channel, which a barrier on the control channel does not
			// order: wait for the exchange to start.
			waitFor(t, 2*time.Second, "the base exchange the write starts", func() bool {
				p, _ := peerInfo(b, a.HIT())
				return b.Stats().BEX.Started > started && p.State == handshake.I1Sent.String()
			})
		}
		barrier(t, b)
		p, _ := peerInfo(b, a.HIT())
		n := b.Stats().BEX.Started - started
		if auto {
			if err != nil || n != 1 || p.State != handshake.I1Sent.String() {
				t.Errorf("auto-connect on: write %v, %d base exchanges started, state %s; want nil, 1, I1-SENT", err, n, p.State)
			}
			continue
		}
		if !errors.Is(err, ErrUnknownPeer) {
			t.Errorf("auto-connect off: write after CLOSE: %v, want ErrUnknownPeer", err)
		}
		if n != 0 || p.State != handshake.Closed.String() {
			t.Errorf("auto-connect off: %d base exchanges started, state %s; want 0, CLOSED", n, p.State)
		}
		pa := b.lookupPeer(a.HIT())
		pa.mu.Lock()
		queued := len(pa.pending)
		pa.mu.Unlock()
		if st := b.Stats(); st.Drops.QueueFull+st.Drops.QueueDiscarded != 0 || queued != 0 {
			t.Errorf("auto-connect off: the datagram was queued")
		}
	}
}

// TestClosedByPeer: ClosedByPeer is true on the side that received the
// CLOSE, and on neither side while the association is live; the side that
// closed did not receive one.
func TestClosedByPeer(t *testing.T) {
	a, b := connected(t, nil, nil)
	if a.ClosedByPeer(b.HIT()) || b.ClosedByPeer(a.HIT()) {
		t.Fatal("ClosedByPeer of a live association")
	}
	a.Close()
	waitClosed(t, b, a.HIT(), 2*time.Second)
	if !b.ClosedByPeer(a.HIT()) {
		t.Error("b: ClosedByPeer false after a's CLOSE")
	}
	if a.ClosedByPeer(b.HIT()) {
		t.Error("a: ClosedByPeer true after its own CLOSE")
	}
	if b.ClosedByPeer(wire.HIT(testKey(t, 3).HIT())) {
		t.Error("ClosedByPeer of a HIT without an association")
	}
}

// TestClosedRecordHeap: what a closed association leaves on the
// Responder until CloseLinger ends it is the record that answers a
// retransmitted CLOSE; every SA, queue and buffer is gone at the CLOSE.
// closedPeers Initiators associate and close; the Responder's heap grows by
// at most closedRecordMax per CLOSED record.
func TestClosedRecordHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 200 stacks")
	}
	const (
		closedPeers     = 200
		workers         = 4
		closedRecordMax = 4096
	)
	resp := newTestStack(t, 0, nil)
	cycle := func(i int) error {
		// A fresh key, not testKey's: the cache would keep it.
		k, err := hostid.Generate(hostid.ECDSAP256, nil)
		if err != nil {
			return err
		}
		s, err := New(Config{Identity: k, ListenAddr: loopbackAddr(i), Handshake: fastHandshake()})
		if err != nil {
			return err
		}
		defer s.Close()
		s.AddPeer(resp.HIT(), resp.LocalAddr())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Connect(ctx, resp.HIT()); err != nil {
			return err
		}
		return s.Close()
	}
	run := func(from, to int) {
		var wg sync.WaitGroup
		errs := make(chan error, to-from)
		next := make(chan int)
		for range workers {
			wg.Go(func() {
				for i := range next {
					if err := cycle(i); err != nil {
						errs <- err
					}
				}
			})
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	closed := func() int { return resp.Stats().Associations[handshake.Closed.String()] }
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}

	run(1, 1+workers) // warm-up
	waitFor(t, 2*time.Second, "warm-up CLOSEs", func() bool { return closed() == workers })
	before := heap()
	run(1+workers, 1+workers+closedPeers)
	waitFor(t, 2*time.Second, "CLOSEs", func() bool { return closed() == workers+closedPeers })
	after := heap()
	for range 10 { // the Initiators' last timers run out
		if (int64(after)-int64(before))/closedPeers <= closedRecordMax {
			break
		}
		time.Sleep(100 * time.Millisecond)
		after = min(after, heap())
	}
	per := (int64(after) - int64(before)) / closedPeers
	t.Logf("FIGURE closed record heap before=%d after=%d per_record=%d", before, after, per)
	if per > closedRecordMax {
		t.Errorf("%d octets of heap per CLOSED association, want <= %d", per, closedRecordMax)
	}
	barrier(t, resp)
	if n := resp.spis.len(); n != 0 {
		t.Errorf("%d inbound SAs installed after every peer closed", n)
	}
	for _, p := range resp.peerList() {
		p.mu.Lock()
		queued := len(p.pending)
		p.mu.Unlock()
		if p.out.Load() != nil || p.in != nil || p.prev != nil || p.x.nextOut != nil || queued != 0 {
			t.Errorf("peer %v keeps SAs or a queue in CLOSED", p.hit)
		}
	}
}

// loopbackAddr is an address of its own in 127/8 for Initiator i where the
// system has them (Linux), so that the Responder's R1 rate limit per
// address (ratelimit.go) does not refuse a fast series of base exchanges;
// else 127.0.0.1.
func loopbackAddr(i int) string {
	a := fmt.Sprintf("127.0.%d.%d:0", 1+i/250, 2+i%250)
	if pc, err := net.ListenPacket("udp", a); err == nil {
		pc.Close()
		return a
	}
	return "127.0.0.1:0"
}

// TestSegmentReopens: once the peer has closed the association, only the
// segments SetSegmentReopens lets through start a base exchange with it;
// the others fail with ErrPeerLeft and start nothing. Without a predicate
// every segment does, as before.
func TestSegmentReopens(t *testing.T) {
	const proto = 6
	syn := func(seg []byte) bool { return seg[0] == 'S' }
	for _, withRule := range []bool{true, false} {
		a, b := connected(t, nil, nil)
		if withRule {
			a.SetSegmentReopens(proto, syn)
		}
		b.Close()
		waitClosed(t, a, b.HIT(), 2*time.Second)
		if !a.ClosedByPeer(b.HIT()) {
			t.Fatal("a does not see b's CLOSE")
		}
		started := a.Stats().BEX.Started
		err := a.WriteSegment(b.HIT(), proto, []byte("ack of data in flight"))
		if withRule {
			if !errors.Is(err, ErrPeerLeft) {
				t.Errorf("stray segment: %v, want ErrPeerLeft", err)
			}
			barrier(t, a)
			if n := a.Stats().BEX.Started - started; n != 0 {
				t.Errorf("a stray segment started %d base exchanges", n)
			}
			err = a.WriteSegment(b.HIT(), proto, []byte("SYN"))
		}
		if err != nil {
			t.Fatalf("reopening segment (rule %v): %v", withRule, err)
		}
		waitFor(t, 2*time.Second, "the base exchange the segment starts", func() bool {
			return a.Stats().BEX.Started > started
		})
	}
}

// TestSegmentReopensQueued: a stray segment that WriteSegment queued in
// the moment between the SAs' removal and the CLOSED record (both happen
// in one step of the control goroutine) is dropped there too, and starts
// no base exchange; a reopening one queued with it does.
func TestSegmentReopensQueued(t *testing.T) {
	const proto = 6
	a, b := connected(t, nil, nil)
	a.SetSegmentReopens(proto, func(seg []byte) bool { return seg[0] == 'S' })
	b.Close()
	waitClosed(t, a, b.HIT(), 2*time.Second)
	p := a.lookupPeer(b.HIT())
	queue := func(seg string) {
		// What WriteSegment did in that moment: queue and poke.
		if _, err := a.push(p, pendingSeg{b: []byte(seg), proto: proto}, false); err != nil {
			t.Fatal(err)
		}
		a.poke(p, pokeConnect)
		barrier(t, a)
	}
	started, discarded := a.Stats().BEX.Started, a.Stats().Drops.QueueDiscarded
	queue("ack of data in flight")
	if n := a.Stats().BEX.Started - started; n != 0 {
		t.Errorf("a queued stray segment started %d base exchanges", n)
	}
	if n := a.Stats().Drops.QueueDiscarded - discarded; n != 1 {
		t.Errorf("%d queued segments discarded, want 1", n)
	}
	queue("SYN")
	waitFor(t, 2*time.Second, "the base exchange the SYN starts", func() bool {
		return a.Stats().BEX.Started > started
	})
}
