package esp

import (
	"math/rand/v2"
	"testing"
)

// TestChecksumReference: the little-endian, four-accumulator sum swaps
// and folds to the RFC 1071 sum of big-endian 16-bit words, for every
// length around the loops' strides, for the largest segments, and for
// all-ones data, where the carries pile up.
func TestChecksumReference(t *testing.T) {
	ref := func(b []byte, s uint64) uint16 {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint64(b[i])<<8 | uint64(b[i+1])
		}
		if len(b)%2 == 1 {
			s += uint64(b[len(b)-1]) << 8
		}
		for s > 0xffff {
			s = s>>16 + s&0xffff
		}
		return uint16(s)
	}
	r := rand.New(rand.NewPCG(1, 2))
	lengths := []int{1350, 9000, 65535, 65536}
	for n := 0; n <= 200; n++ {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		for _, fill := range []string{"random", "ones"} {
			b := make([]byte, n)
			for i := range b {
				b[i] = 0xff
				if fill == "random" {
					b[i] = byte(r.Uint32())
				}
			}
			if got, want := fold(checksumAdd(0x1234_5678_9abc, b)), ref(b, 0x1234_5678_9abc); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
				t.Fatalf("%d octets, %s: sum %#04x, want %#04x", n, fill, got, want)
			}
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	buf := make([]byte, 1350)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		checksumAdd(0, buf)
	}
}
