package wire

import (
	"fmt"
	"time"
)

// MaxRHASHLen bounds #I and #J: 64 octets, the output of the longest hash a
// HIT suite could name (SHA-512). The suites of RFC 7401 §5.2.10 use 20, 32
// and 48 octets. The receiver checks that the length equals its RHASH_len.
const MaxRHASHLen = 64

// Puzzle is the PUZZLE parameter of R1 (RFC 7401 §5.2.4):
// #K(8) | Lifetime(8) | Opaque(16) | #I(RHASH_len).
//
// Length is 4 + RHASH_len/8 (§5.2.4). The table in §5.2 says 12, which fits
// only a 64-bit #I of HIP version 1; the per-parameter section is the
// definition (CODEPOINTS.md §17). ParsePuzzle therefore accepts any #I of 1
// to MaxRHASHLen octets; the caller checks it against its RHASH_len.
type Puzzle struct {
	K        uint8   // number of low-order bits of the hash that must be zero
	Lifetime uint8   // 2^(Lifetime-32) seconds
	Opaque   [2]byte // set by the Responder, echoed in SOLUTION
	I        []byte  // random #I, RHASH_len/8 octets
}

// ParsePuzzle parses PUZZLE contents. I aliases contents.
func ParsePuzzle(contents []byte) (Puzzle, error) {
	n := len(contents) - 4
	if n < 1 || n > MaxRHASHLen {
		return Puzzle{}, lengthError(ParamPuzzle, len(contents), fmt.Sprintf("4 + #I of 1..%d", MaxRHASHLen))
	}
	return Puzzle{
		K:        contents[0],
		Lifetime: contents[1],
		Opaque:   [2]byte(contents[2:4]),
		I:        contents[4:],
	}, nil
}

// LifetimeDuration returns the puzzle lifetime 2^(Lifetime-32) seconds
// (§5.2.4), saturating at the bounds of time.Duration.
func (p Puzzle) LifetimeDuration() time.Duration { return puzzleLifetime(p.Lifetime) }

func puzzleLifetime(v uint8) time.Duration {
	e := int(v) - 32
	switch {
	case e < -30: // below one nanosecond
		return 0
	case e < 0:
		return time.Second >> uint(-e)
	case e > 33: // 2^33 s * 1e9 ns overflows int64
		return time.Duration(1<<63 - 1)
	}
	return time.Second << uint(e)
}

func (Puzzle) ParamType() ParamType { return ParamPuzzle }
func (p Puzzle) Len() int           { return 4 + len(p.I) }
func (p Puzzle) Encode(b []byte) {
	b[0], b[1] = p.K, p.Lifetime
	copy(b[2:4], p.Opaque[:])
	copy(b[4:], p.I)
}
func (p Puzzle) validate() error {
	if len(p.I) < 1 || len(p.I) > MaxRHASHLen {
		return valueError(ParamPuzzle, fmt.Sprintf("#I of %d octets, want 1..%d", len(p.I), MaxRHASHLen))
	}
	return nil
}

// Solution is the SOLUTION parameter of I2 (RFC 7401 §5.2.5):
// #K(8) | Reserved(8) | Opaque(16) | #I | #J, with #I and #J each RHASH_len
// bits, so Length is 4 + RHASH_len/4.
type Solution struct {
	K      uint8
	Opaque [2]byte // copied unmodified from PUZZLE
	I      []byte  // #I from PUZZLE
	J      []byte  // the solution #J, as long as #I
}

// ParseSolution parses SOLUTION contents: #I and #J are the two equal halves
// of what follows the first 4 octets. I and J alias contents.
func ParseSolution(contents []byte) (Solution, error) {
	n := len(contents) - 4
	if n < 2 || n%2 != 0 || n/2 > MaxRHASHLen {
		return Solution{}, lengthError(ParamSolution, len(contents), fmt.Sprintf("4 + two equal halves of 1..%d", MaxRHASHLen))
	}
	h := 4 + n/2
	return Solution{
		K:      contents[0],
		Opaque: [2]byte(contents[2:4]),
		I:      contents[4:h:h],
		J:      contents[h:],
	}, nil
}

func (Solution) ParamType() ParamType { return ParamSolution }
func (s Solution) Len() int           { return 4 + len(s.I) + len(s.J) }
func (s Solution) Encode(b []byte) {
	b[0] = s.K
	copy(b[2:4], s.Opaque[:])
	copy(b[4:], s.I)
	copy(b[4+len(s.I):], s.J)
}
func (s Solution) validate() error {
	if len(s.I) != len(s.J) || len(s.I) < 1 || len(s.I) > MaxRHASHLen {
		return valueError(ParamSolution, fmt.Sprintf("#I of %d and #J of %d octets, want equal and 1..%d", len(s.I), len(s.J), MaxRHASHLen))
	}
	return nil
}
