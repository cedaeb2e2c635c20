package handshake

import (
	"crypto/sha256"
	"fmt"

	"hipnet.dev/handshake/wire"
)

// Spent puzzle solutions: the Responder's defence against replayed I2s.
//
// #I is derived from the HIT pair and the R1 generation (puzzleI), and the
// generation's Diffie-Hellman key serves every Initiator, so a recorded I2
// stays valid while its generation is accepted. Accepted again, it would
// install SAs with the keys and SPIs of the association it was recorded
// from, and our ESP would restart at sequence number 1 under the same
// AES-GCM key and salt: a repeated (key, nonce) pair. Each generation
// therefore remembers the solutions (HIT-I, #J) it has accepted, and an I2
// whose solution is spent is dropped before any public-key work. The record
// lives exactly as long as the generation can accept I2s (RFC 7401 §6.7.1),
// so no replay outlives it, and it is bounded: a full generation is
// rotated early (Endpoint.spend).
//
// Every I2 that reaches Diffie-Hellman work is charged to its solution
// first, whatever then fails (a bad public value, HIP_MAC, a missing or
// mismatched HOST_ID, the signature), and after maxSolutionFailures the
// solution is refused before any such work: one solved puzzle cannot buy
// an unbounded number of Diffie-Hellman computations (§4.1.1: the puzzle
// prices the Responder's work). The few tries it keeps let a genuine I2
// through a handful of forged copies injected ahead of it.

// solutionKey identifies a solution within its generation: SHA-256(HIT-I
// | #J) truncated to 128 bits. #I is implied by the generation and HIT-I.
// 128 bits keep a record entry at about 30 octets, against 65 for the
// whole digest (a Responder records every I2 of a generation, a relay
// thousands), and leave nothing to gain from a collision: making another
// Initiator's solution look spent needs a second preimage of a key the
// attacker sees only in that Initiator's I2, and a collision among one's
// own solutions only spends one's own puzzles.
type solutionKey [16]byte

func makeSolutionKey(hitI wire.HIT, j []byte) solutionKey {
	h := sha256.New()
	h.Write(hitI[:])
	h.Write(j)
	var sum [sha256.Size]byte
	return solutionKey(h.Sum(sum[:0])[:len(solutionKey{})])
}

const (
	// maxSolutionFailures is how many I2s with one solution may fail
	// authentication before the solution is spent.
	maxSolutionFailures = 4
	solutionSpent       = 0xff
	// maxSolutions bounds one generation's record (about 30 octets an
	// entry); Endpoint.spend rotates the generation when it is full.
	maxSolutions = 1 << 16
)

// solutionSet is one generation's record: failures per solution, or
// solutionSpent.
type solutionSet map[solutionKey]uint8

// usable reports whether an I2 with this solution may still be processed.
// A full record takes no new solution: it could not count its failures
// (the generation is rotated meanwhile, see Endpoint.checkFull).
func (s solutionSet) usable(k solutionKey) error {
	n, seen := s[k]
	switch {
	case n == solutionSpent:
		return fmt.Errorf("%w: puzzle solution already used", ErrReplay)
	case n >= maxSolutionFailures:
		return fmt.Errorf("%w: puzzle solution failed %d times", ErrReplay, n)
	case !seen && len(s) >= maxSolutions:
		return fmt.Errorf("%w: this R1 generation's solution record is full", ErrReplay)
	}
	return nil
}

// failed charges an I2 with this solution, before its Diffie-Hellman work.
func (s solutionSet) failed(k solutionKey) {
	if n := s[k]; n < maxSolutionFailures {
		s[k] = n + 1
	}
}
