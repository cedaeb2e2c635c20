package handshake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"time"

	"hipnet.dev/handshake/wire"
)

// The cryptographic puzzle of RFC 7401 §4.1.2 and §6.3:
//
//	Ltrunc( RHASH( #I | HIT-I | HIT-R | #J ), #K ) == 0
//
// where Ltrunc keeps the lowest-order #K bits, all fields in network byte
// order, and HIT-I / HIT-R appear in that order whatever packet carries
// them (§6.3 note iii).

var errPuzzleUnsolved = errors.New("handshake: puzzle not solved within its lifetime")

// maxPuzzleK bounds the difficulty we will try to solve: 2^28 hashes is
// minutes of CPU, far beyond any sane responder request.
const maxPuzzleK = 28

// puzzleHash computes RHASH(#I | HIT-I | HIT-R | #J) into sum.
func puzzleHash(h hash.Hash, i []byte, hitI, hitR wire.HIT, j []byte, sum []byte) []byte {
	h.Reset()
	h.Write(i)
	h.Write(hitI[:])
	h.Write(hitR[:])
	h.Write(j)
	return h.Sum(sum[:0])
}

// lowBitsZero reports whether the k lowest-order bits of d are zero.
func lowBitsZero(d []byte, k int) bool {
	for n := len(d) - 1; k > 0; n-- {
		if n < 0 {
			return false
		}
		m := byte(0xff)
		if k < 8 {
			m = byte(1<<k) - 1
		}
		if d[n]&m != 0 {
			return false
		}
		k -= 8
	}
	return true
}

// verifyPuzzle checks a SOLUTION (RFC 7401 §6.9 step 8).
func verifyPuzzle(newHash func() hash.Hash, i []byte, hitI, hitR wire.HIT, j []byte, k int) bool {
	var sum [64]byte
	return lowBitsZero(puzzleHash(newHash(), i, hitI, hitR, j, sum[:]), k)
}

// solvePuzzle searches #J by counting from a random start, giving up after
// maxTries or, when stop is set, as soon as stop reports true (checked
// every solveChunk tries): the Initiator MUST stop at the end of the
// puzzle's lifetime (RFC 7401 §6.8 step 12), and the clock is the
// caller's.
func solvePuzzle(newHash func() hash.Hash, i []byte, hitI, hitR wire.HIT, k int, start []byte, maxTries uint64, stop func() bool) ([]byte, error) {
	if k > maxPuzzleK {
		return nil, errPuzzleUnsolved
	}
	j := append([]byte(nil), start...)
	if len(j) < 8 {
		return nil, errors.New("handshake: puzzle #J too short")
	}
	h := newHash()
	var sum [64]byte
	ctr := binary.BigEndian.Uint64(j[len(j)-8:])
	for n := uint64(0); n < maxTries; n++ {
		if stop != nil && n%solveChunk == 0 && n > 0 && stop() {
			break
		}
		binary.BigEndian.PutUint64(j[len(j)-8:], ctr+n)
		if lowBitsZero(puzzleHash(h, i, hitI, hitR, j, sum[:]), k) {
			return j, nil
		}
	}
	return nil, errPuzzleUnsolved
}

// solveChunk is how many hashes run between two looks at the stop
// function: about a millisecond's work.
const solveChunk = 4096

// maxPuzzleSearch bounds the time an Initiator gives one puzzle, whatever
// lifetime the R1 announces: far beyond what an honest #K takes, and
// short enough that a hostile Responder cannot keep a core busy for long.
const maxPuzzleSearch = 2 * time.Minute

// Puzzle is an R1's puzzle that is too hard to solve inside the state
// machine (#K above Config.InlinePuzzle): EventPuzzle hands it to the
// caller, which runs Solve where it does not hold up other associations —
// another goroutine — and gives the outcome to Association.PuzzleSolved.
// A Puzzle is immutable and safe to use from another goroutine.
type Puzzle struct {
	// Deadline is the end of the puzzle's lifetime (RFC 7401 §5.2.4),
	// counted from the R1's arrival: the search must stop then (§6.8 step
	// 12), and PuzzleSolved refuses a later answer.
	Deadline time.Time
	// K is the difficulty.
	K uint8

	newHash    func() hash.Hash
	i          []byte
	hitI, hitR wire.HIT
	start      []byte
	offer      *r1Offer
}

// newPuzzle prepares the search for o's puzzle, received at now.
func (a *Association) newPuzzle(now time.Time, o *r1Offer) (*Puzzle, error) {
	start, err := a.e.random(len(o.pz.I))
	if err != nil {
		return nil, err
	}
	// The Responder chooses the lifetime (up to 2^31 s); we search no
	// longer than maxPuzzleSearch, which stops earlier than the RFC's
	// "MUST terminate" and never later (§6.8 step 12).
	life := min(puzzleLifetime(o.pz.Lifetime), maxPuzzleSearch)
	return &Puzzle{Deadline: now.Add(life), K: o.pz.K, newHash: o.rhash,
		i: o.pz.I, hitI: a.e.hit, hitR: o.sender, start: start, offer: o}, nil
}

// Solve searches #J until it is found or stop reports true; stop is
// called about every millisecond of work and should compare the caller's
// clock with Deadline (and report the caller's own shutdown).
func (p *Puzzle) Solve(stop func() bool) ([]byte, error) {
	return solvePuzzle(p.newHash, p.i, p.hitI, p.hitR, int(p.K), p.start, 1<<(min(p.K, maxPuzzleK)+8), stop)
}

// PuzzleSolved gives the association the outcome of p.Solve: with #J, the
// exchange goes on to the I2 (RFC 7401 §6.8 step 13); with an error, or
// after the puzzle's lifetime, it fails. A Puzzle the association no
// longer waits for (it restarted, closed or failed meanwhile) is ignored.
func (a *Association) PuzzleSolved(now time.Time, p *Puzzle, j []byte, err error) error {
	if p == nil || a.Solving() != p || a.state != I1Sent && a.state != I2Sent {
		return fmt.Errorf("%w: stale puzzle", ErrUnexpected)
	}
	a.bex.solving = nil
	if err == nil && now.After(p.Deadline) {
		err = errPuzzleUnsolved
	}
	if err == nil && !verifyPuzzle(p.newHash, p.i, p.hitI, p.hitR, j, int(p.K)) {
		err = fmt.Errorf("%w: #J does not solve the puzzle", ErrBadPuzzle)
	}
	if err != nil {
		a.fail(now, err)
		return nil
	}
	return a.r1Finish(now, p.offer, j)
}

// puzzleLifetime decodes the PUZZLE Lifetime field: 2^(value-32) seconds
// (RFC 7401 §5.2.4).
func puzzleLifetime(v uint8) time.Duration {
	e := int(v) - 32
	switch {
	case e < -30:
		return time.Nanosecond
	case e > 30:
		return 1 << 30 * time.Second
	case e < 0:
		return time.Second >> uint(-e)
	}
	return time.Second << uint(e)
}

// puzzleLifetimeCode encodes a duration as the smallest Lifetime value
// whose lifetime is at least d.
func puzzleLifetimeCode(d time.Duration) uint8 {
	for v := uint8(0); v < 63; v++ {
		if puzzleLifetime(v) >= d {
			return v
		}
	}
	return 63
}
