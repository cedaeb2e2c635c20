package handshake

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Issue 9, finding 6 (Initiator side): puzzles off the state machine.
//
// RFC 7401 §6.8 step 12: the Initiator solves the puzzle and MUST give up
// when the puzzle's lifetime (§5.2.4) is over. A hard puzzle solved inside
// the state machine stalls every other association of the host, and one
// solved without a deadline keeps burning CPU for an R1 nobody waits for.
// Puzzles above Config.InlinePuzzle are handed to the caller (EventPuzzle)
// and answered with Association.PuzzleSolved.

// puzzleStart sends a's I1 to b and gives b's R1 to a directly — not via
// the harness, which solves EventPuzzle at once — and returns a's
// association and the puzzle it asks the caller to solve.
func puzzleStart(t *testing.T, a, b *host, now time.Time) (*Association, *Puzzle) {
	t.Helper()
	aa := a.e.Initiate(now, b.e.HIT())
	a.assoc[b.e.HIT()] = aa
	res, err := b.e.Handle(now, aa.Outgoing()[0], nil)
	if err != nil || res.Reply == nil {
		t.Fatalf("I1: %v", err)
	}
	if _, err := a.e.Handle(now, res.Reply, aa); err != nil {
		t.Fatalf("R1: %v", err)
	}
	var p *Puzzle
	for _, ev := range aa.Events() {
		if ev.Kind == EventPuzzle {
			p = ev.Puzzle
		}
	}
	if p == nil {
		t.Fatal("no EventPuzzle")
	}
	return aa, p
}

func hardPair(t *testing.T, k uint8) (*host, *host) {
	t.Helper()
	a, b := pair(t)
	if err := b.e.SetPuzzleDifficulty(t0, k); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestPuzzleOffStateMachine: an R1 with #K 12 (above the default inline
// limit 8) yields EventPuzzle with the puzzle's deadline — its arrival
// plus the Lifetime of PUZZLE, 2^(38-32) = 64 s for the default 60 s
// R1Lifetime — and no I2. The association waits in I1-SENT without
// retransmitting its I1 (the R1 answered it) and refuses another R1 until
// PuzzleSolved gives it #J; then the exchange completes.
func TestPuzzleOffStateMachine(t *testing.T) {
	a, b := hardPair(t, 12)
	aa, p := puzzleStart(t, a, b, t0)
	if p.K != 12 || !p.Deadline.Equal(t0.Add(64*time.Second)) {
		t.Fatalf("puzzle K %d deadline %v", p.K, p.Deadline)
	}
	if aa.State() != I1Sent || len(aa.Outgoing()) != 0 {
		t.Fatalf("while solving: state %v, packets sent", aa.State())
	}
	if !aa.Deadline().Equal(p.Deadline) {
		t.Fatalf("timer %v, want only the puzzle's deadline %v", aa.Deadline(), p.Deadline)
	}
	aa.HandleTimeout(t0.Add(30 * time.Second))
	if aa.State() != I1Sent || len(aa.Outgoing()) != 0 || len(aa.Events()) != 0 {
		t.Fatal("something happened before the puzzle's deadline")
	}
	// Another R1 meanwhile is dropped (§6.8 step 8: one at a time).
	r1 := b.deliver(t0, rewriteI1Groups(t, a.e.Initiate(t0, b.e.HIT()).Outgoing()[0], wire.DHGroupP256))[0]
	if _, err := a.e.Handle(t0, r1, aa); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("R1 while solving: %v", err)
	}

	j, err := p.Solve(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(40 * time.Second)
	if err := aa.PuzzleSolved(now, p, j, nil); err != nil {
		t.Fatal(err)
	}
	out := aa.Outgoing()
	if aa.State() != I2Sent || len(out) != 1 || ptype(out[0]) != wire.I2 {
		t.Fatalf("after PuzzleSolved: %v, %d packets", aa.State(), len(out))
	}
	if sol := solutionOf(t, out[0]); sol.K != 12 || string(sol.J) != string(j) {
		t.Fatal("I2 does not carry the caller's #J")
	}
	l := &link{}
	l.send(a, b, out)
	l.run(t, now)
	if aa.State() != Established {
		t.Fatalf("exchange: %v (errors a %v b %v)", aa.State(), a.errs, b.errs)
	}
	// The same Puzzle again is stale.
	if err := aa.PuzzleSolved(now, p, j, nil); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("second PuzzleSolved: %v", err)
	}
	if aa.State() != Established || len(aa.Outgoing()) != 0 {
		t.Fatal("stale PuzzleSolved changed the association")
	}
}

// TestPuzzleInlineLimit: #K at Config.InlinePuzzle is still solved inside
// the state machine, with no EventPuzzle.
func TestPuzzleInlineLimit(t *testing.T) {
	a, b := hardPair(t, 8)
	l := bex(t, a, b)
	if a.a(b).State() != Established || len(a.eventsOf(EventPuzzle)) != 0 || ptype(l.seen[2].b) != wire.I2 {
		t.Fatalf("#K 8: state %v, events %v", a.a(b).State(), a.events)
	}
}

// TestPuzzleSolvedLate: an answer after the puzzle's lifetime fails the
// exchange (§6.8 step 12) instead of sending an I2 the Responder may no
// longer accept; so does a wrong #J and a Solve that gave up.
func TestPuzzleSolvedLate(t *testing.T) {
	for _, c := range []struct {
		name string
		at   func(p *Puzzle) time.Time
		j    func(j []byte) []byte
		err  error
		want error
	}{
		{"late", func(p *Puzzle) time.Time { return p.Deadline.Add(time.Nanosecond) }, nil, nil, errPuzzleUnsolved},
		{"wrong #J", func(p *Puzzle) time.Time { return t0 }, func(j []byte) []byte {
			j = append([]byte(nil), j...)
			j[len(j)-1]++ // the next counter, until it is no solution
			return j
		}, nil, ErrBadPuzzle},
		{"gave up", func(p *Puzzle) time.Time { return t0 }, nil, errPuzzleUnsolved, errPuzzleUnsolved},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := hardPair(t, 12)
			aa, p := puzzleStart(t, a, b, t0)
			j, err := p.Solve(nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.j != nil {
				for j = c.j(j); verifyPuzzle(p.newHash, p.i, p.hitI, p.hitR, j, int(p.K)); j = c.j(j) {
				}
			}
			if err := aa.PuzzleSolved(c.at(p), p, j, c.err); err != nil {
				t.Fatal(err)
			}
			if aa.State() != EFailed || len(aa.Outgoing()) != 0 {
				t.Fatalf("state %v, want E-FAILED and no I2", aa.State())
			}
			a.collect(aa)
			if ev := a.eventsOf(EventFailed); len(ev) != 1 || !errors.Is(ev[0].Err, c.want) {
				t.Fatalf("events %v, want %v", a.events, c.want)
			}
		})
	}
}

// TestPuzzleDeadlineTimeout: with no answer by the deadline, the timer
// fails the exchange; a Puzzle answered after that, or one the association
// no longer waits for (it restarted), is refused and changes nothing.
func TestPuzzleDeadlineTimeout(t *testing.T) {
	a, b := hardPair(t, 12)
	aa, p := puzzleStart(t, a, b, t0)
	j, err := p.Solve(nil)
	if err != nil {
		t.Fatal(err)
	}
	aa.HandleTimeout(p.Deadline.Add(time.Nanosecond))
	a.collect(aa)
	if aa.State() != EFailed {
		t.Fatalf("after the deadline: %v", aa.State())
	}
	if ev := a.eventsOf(EventFailed); len(ev) != 1 || !errors.Is(ev[0].Err, errPuzzleUnsolved) {
		t.Fatalf("events %v", a.events)
	}
	if err := aa.PuzzleSolved(p.Deadline, p, j, nil); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("PuzzleSolved after the timeout: %v", err)
	}
	if aa.State() != EFailed || len(aa.Outgoing()) != 0 {
		t.Fatal("stale answer changed the association")
	}

	// A Puzzle of an exchange that was restarted is stale too.
	aa, p = puzzleStart(t, a, b, t0)
	j, _ = p.Solve(nil)
	aa.Close(t0)
	aa.Restart(t0)
	aa.Outgoing()
	if err := aa.PuzzleSolved(t0, p, j, nil); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("PuzzleSolved after a restart: %v", err)
	}
	if aa.State() != I1Sent || len(aa.Outgoing()) != 0 {
		t.Fatalf("stale answer after restart: %v", aa.State())
	}
	// And one of another association.
	other, q := puzzleStart(t, newHost(t, "c", defaultCfg(testKey(t, hostid.ECDSAP256, 2))), b, t0)
	k, _ := q.Solve(nil)
	if err := aa.PuzzleSolved(t0, q, k, nil); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("another association's Puzzle: %v", err)
	}
	_ = other
}

// TestPuzzleDeadlineExact: Deadline() is "when HandleTimeout must next be
// called"; called then, it must act, as every other timer does
// (!now.Before(deadline)). A caller whose clock reads exactly the
// deadline — a fake clock, a coarse timer — otherwise finds the
// association stuck with the same deadline, already due.
func TestPuzzleDeadlineExact(t *testing.T) {
	a, b := hardPair(t, 12)
	aa, _ := puzzleStart(t, a, b, t0)
	d := aa.Deadline()
	aa.HandleTimeout(d)
	if aa.State() != EFailed {
		t.Fatalf("HandleTimeout at Deadline() %v: state %v, next deadline %v", d, aa.State(), aa.Deadline())
	}
}

// TestPuzzleSolveStops: Puzzle.Solve consults stop every solveChunk (4096)
// hashes — often enough to end within about a millisecond of the
// deadline, rarely enough to cost nothing. The puzzle is built so that its
// first solution lies between 4096 and 8192 tries from the start: a stop
// that says yes at once ends the search unsolved after exactly one look,
// one that says yes the second time is never asked again because the
// solution comes first.
func TestPuzzleSolveStops(t *testing.T) {
	const k = 12
	hitI, hitR := testKey(t, hostid.ECDSAP256, 0).HIT(), testKey(t, hostid.ECDSAP256, 1).HIT()
	i := make([]byte, sha256.Size)
	copy(i, "a fixed #I for this test")
	j := make([]byte, sha256.Size)
	at := func(n uint64) []byte {
		binary.BigEndian.PutUint64(j[len(j)-8:], n)
		return append([]byte(nil), j...)
	}
	// Find a start whose first solution is 4097..8191 tries away.
	var start uint64
	prev := uint64(0)
	for n := uint64(0); ; n++ {
		if n > 1<<20 {
			t.Fatal("no suitable gap between solutions")
		}
		if !verifyPuzzle(sha256.New, i, wire.HIT(hitI), wire.HIT(hitR), at(n), k) {
			continue
		}
		if gap := n - prev; n > 0 && gap > solveChunk+1 && gap < 2*solveChunk {
			start = prev + 1
			break
		}
		prev = n
	}
	p := &Puzzle{K: k, newHash: sha256.New, i: i, hitI: wire.HIT(hitI), hitR: wire.HIT(hitR), start: at(start)}

	calls := 0
	if _, err := p.Solve(func() bool { calls++; return true }); !errors.Is(err, errPuzzleUnsolved) || calls != 1 {
		t.Fatalf("stop at once: %v after %d looks, want unsolved after 1", err, calls)
	}
	calls = 0
	got, err := p.Solve(func() bool { calls++; return calls > 1 })
	if err != nil || calls != 1 || !verifyPuzzle(sha256.New, i, wire.HIT(hitI), wire.HIT(hitR), got, k) {
		t.Fatalf("stop the second time: %v after %d looks", err, calls)
	}
	if want, _ := p.Solve(nil); string(want) != string(got) {
		t.Fatal("Solve with and without stop found different solutions")
	}
}

// TestPuzzleStaleAfterClose: PuzzleSolved ignores a Puzzle the association
// no longer waits for because it "restarted, closed or failed meanwhile"
// (puzzle.go). Close in I1-SENT must clear the puzzle being solved, or the
// answer would revive the closed association (an I2 sent, I2-SENT) and,
// without an answer, the puzzle's timer would later report EventFailed for
// an association already reported closed.
func TestPuzzleStaleAfterClose(t *testing.T) {
	a, b := hardPair(t, 12)
	aa, p := puzzleStart(t, a, b, t0)
	aa.Close(t0)
	aa.Events()
	if d := aa.Deadline(); !d.IsZero() {
		t.Errorf("closed association keeps a timer at %v", d)
	}
	j, _ := p.Solve(nil)
	if err := aa.PuzzleSolved(t0, p, j, nil); !errors.Is(err, ErrUnexpected) {
		t.Errorf("PuzzleSolved after Close: %v, want ErrUnexpected", err)
	}
	if aa.State() != Unassociated || len(aa.Outgoing()) != 0 {
		t.Errorf("closed association after PuzzleSolved: %v, I2 sent", aa.State())
	}

	aa, p = puzzleStart(t, a, b, t0)
	aa.Close(t0)
	aa.Events()
	aa.HandleTimeout(p.Deadline.Add(time.Nanosecond))
	if ev := aa.Events(); aa.State() != Unassociated || len(ev) != 0 {
		t.Errorf("closed association after the puzzle's deadline: %v, events %v", aa.State(), ev)
	}
}
