package handshake

import (
	"encoding/binary"
	"errors"
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
// maxTries or at the deadline — the Initiator MUST stop after the puzzle
// lifetime (RFC 7401 §6.8 step 12). The clock is the caller's: clock may be
// nil, in which case only maxTries bounds the search.
func solvePuzzle(newHash func() hash.Hash, i []byte, hitI, hitR wire.HIT, k int, start []byte, maxTries uint64) ([]byte, error) {
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
		binary.BigEndian.PutUint64(j[len(j)-8:], ctr+n)
		if lowBitsZero(puzzleHash(h, i, hitI, hitR, j, sum[:]), k) {
			return j, nil
		}
	}
	return nil, errPuzzleUnsolved
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
