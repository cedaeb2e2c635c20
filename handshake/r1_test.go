package handshake

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// withPuzzle rebuilds r1 with PUZZLE contents puzzle, every other
// parameter as it was (the signature no longer verifies, but parses).
func withPuzzle(t testing.TB, r1 []byte, puzzle []byte) []byte {
	t.Helper()
	p, err := wire.ParsePacket(r1)
	if err != nil {
		t.Fatal(err)
	}
	var b wire.Builder
	b.Reset(nil, wire.R1, p.SenderHIT(), p.ReceiverHIT())
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		if q.Type() == wire.ParamPuzzle {
			b.AddRaw(wire.ParamPuzzle, puzzle)
		} else {
			b.AddRaw(q.Type(), q.Contents())
		}
	}
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// i1SentPair returns a in I1-SENT with b, and b's genuine R1.
func i1SentPair(t testing.TB) (a, b *host, r1 []byte) {
	a, b = fixedHosts(t)
	i1 := a.initiate(t0, b.e.HIT())
	out := b.deliver(t0, i1[0])
	if len(out) != 1 || ptype(out[0]) != wire.R1 {
		t.Fatalf("no R1: %v", b.lastErr())
	}
	return a, b, out[0]
}

// TestR1ShortPuzzle: an R1 whose PUZZLE is too short to hold #K,
// Lifetime and Opaque is malformed. It is dropped before the signature
// is checked (the scope of HIP_SIGNATURE_2 zeroes Opaque and #I, RFC 7401
// §5.2.15) without a panic, which anyone who could send us an R1 in
// I1-SENT could otherwise cause; the genuine R1 still works.
func TestR1ShortPuzzle(t *testing.T) {
	a, b, r1 := i1SentPair(t)
	for _, n := range []int{0, 1, 2, 3} {
		a.deliver(t0, withPuzzle(t, r1, make([]byte, n)))
		if err := a.lastErr(); !errors.Is(err, ErrMalformed) {
			t.Errorf("PUZZLE of %d octets: %v, want ErrMalformed", n, err)
		}
		if st := a.a(b).State(); st != I1Sent {
			t.Fatalf("PUZZLE of %d octets: state %v", n, st)
		}
	}
	if out := a.deliver(t0, r1); len(out) != 1 || ptype(out[0]) != wire.I2 {
		t.Fatalf("genuine R1: %v", a.lastErr())
	}
}

// FuzzHandleI1Sent feeds arbitrary packets to an association in
// I1-SENT, where an R1 is processed: nothing may panic, and a rejected
// packet leaves the association as it was and sends nothing. Its seeds
// are the exchange's R1 and R1s with short PUZZLEs. The Endpoints are
// made once (their R1 generations are costly); each input gets a new
// association.
func FuzzHandleI1Sent(f *testing.F) {
	a, b, _ := i1SentPair(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		ab := a.e.Initiate(t0, b.e.HIT())
		ab.Outgoing()
		ab.Events()
		handleRejected(t, a, ab, pkt, t0.Add(time.Millisecond))
	})
}

// TestWriteFuzzSeedsI1Sent writes FuzzHandleI1Sent's corpus.
func TestWriteFuzzSeedsI1Sent(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate the FuzzHandleI1Sent corpus")
	}
	_, _, r1 := i1SentPair(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzHandleI1Sent")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{"r1": r1}
	for _, n := range []int{0, 1, 3} {
		seeds[fmt.Sprintf("r1-puzzle%d", n)] = withPuzzle(t, r1, make([]byte, n))
	}
	for name, p := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", p)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPuzzleLeftAfterR2: in I2-SENT, a newer R1 whose puzzle is too hard
// to solve inline (the Responder's load raised #K and our I1 was
// retransmitted, or someone sent an I1 in our name) starts a puzzle; then
// the R2 for our first I2 completes the exchange. The puzzle has nothing
// left to do: neither its lifetime nor a late #J may touch the
// ESTABLISHED association (RFC 7401 §6.10 step 6). Before, its lifetime
// failed the association, and its #J restarted it in I2-SENT.
func TestPuzzleLeftAfterR2(t *testing.T) {
	a, b, r1 := i1SentPair(t)
	i1 := i1Of(t, a, b)
	i2 := a.deliver(t0, r1)
	if len(i2) != 1 || ptype(i2[0]) != wire.I2 {
		t.Fatalf("no I2: %v", a.lastErr())
	}
	r2 := b.deliver(t0, i2[0])
	if len(r2) != 1 || ptype(r2[0]) != wire.R2 {
		t.Fatalf("no R2: %v", b.lastErr())
	}
	if err := b.e.SetPuzzleDifficulty(t0, a.e.cfg.InlinePuzzle+8); err != nil {
		t.Fatal(err)
	}
	hard := b.deliver(t0, i1)
	if len(hard) != 1 || ptype(hard[0]) != wire.R1 {
		t.Fatalf("no second R1: %v", b.lastErr())
	}
	ab := a.a(b)
	// Handled as the stack does: the puzzle goes to a solver, which has
	// not answered yet (the harness's deliver would solve it at once).
	if _, err := a.e.Handle(t0, hard[0], ab); err != nil {
		t.Fatal(err)
	}
	ab.Events()
	ab.Outgoing()
	p := ab.Solving()
	if p == nil || ab.State() != I2Sent {
		t.Fatalf("the newer R1 started no puzzle (%v, %v)", ab.State(), a.lastErr())
	}
	a.deliver(t0, r2[0])
	if ab.State() != Established || ab.Solving() != nil {
		t.Fatalf("after R2: %v, solving %v", ab.State(), ab.Solving() != nil)
	}
	ab.HandleTimeout(p.Deadline.Add(time.Second))
	if ab.State() != Established {
		t.Fatalf("the puzzle's lifetime took the association to %v", ab.State())
	}
	j, err := p.Solve(func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if err := ab.PuzzleSolved(t0, p, j, nil); err == nil || ab.State() != Established {
		t.Fatalf("a late #J: %v, state %v", err, ab.State())
	}
}

// i1Of is a fresh I1 from a to b, for b to answer again.
func i1Of(t *testing.T, a, b *host) []byte {
	t.Helper()
	var bl wire.Builder
	bl.Reset(nil, wire.I1, a.e.HIT(), b.e.HIT())
	bl.Add(wire.DHGroupList{Groups: a.e.cfg.DHGroups})
	out, err := bl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOldR1DroppedUnverified: in I2-SENT, an R1 of the generation
// already answered (a replay, or a copy with its signature mangled) is
// dropped as a replay before its signature is checked, so that replaying
// R1s costs the Initiator no signature verification each.
func TestOldR1DroppedUnverified(t *testing.T) {
	a, b, r1 := i1SentPair(t)
	if out := a.deliver(t0, r1); len(out) != 1 || ptype(out[0]) != wire.I2 {
		t.Fatalf("genuine R1: %v", a.lastErr())
	}
	mangled := bytes.Clone(r1)
	mangled[len(mangled)-20] ^= 0xff // inside HIP_SIGNATURE_2
	for _, p := range [][]byte{r1, mangled} {
		if out := a.deliver(t0, p); len(out) != 0 || !errors.Is(a.lastErr(), ErrReplay) {
			t.Fatalf("old R1 again: %d packets, %v; want ErrReplay", len(out), a.lastErr())
		}
	}
	if st := a.a(b).State(); st != I2Sent {
		t.Fatalf("state %v", st)
	}
}

// TestOpportunisticTakesOnlyR1: an opportunistic association in I1-SENT
// (§4.1.8) learns its peer from an R1 and takes nothing else meanwhile:
// an I2 from another host, handed to it, does not replace it.
func TestOpportunisticTakesOnlyR1(t *testing.T) {
	a, c := pair(t)
	opp := a.e.Initiate(t0, wire.HIT{})
	opp.Outgoing()
	r1 := a.deliver(t0, c.initiate(t0, a.e.HIT())[0])
	i2 := c.deliver(t0, r1[0])
	if len(i2) != 1 || ptype(i2[0]) != wire.I2 {
		t.Fatalf("no I2: %v", c.lastErr())
	}
	if _, err := a.e.Handle(t0, i2[0], opp); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("I2 to the opportunistic association: %v, want ErrUnexpected", err)
	}
	if opp.State() != I1Sent || !opp.PeerHIT().IsZero() {
		t.Fatalf("opportunistic association now %v with %v", opp.State(), opp.PeerHIT())
	}
}
