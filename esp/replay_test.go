package esp

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestReplayWindowSizes(t *testing.T) {
	for _, c := range []struct{ want, size, blocks int }{
		{0, 1984, 32},  // default 1024 rounds up to (32-1)*64
		{1, 64, 2},     // clamped to the minimum
		{64, 64, 2},    // (2-1)*64
		{65, 192, 4},   // needs 2 usable blocks: M=4
		{960, 960, 16}, // exactly (16-1)*64
		{1 << 30, 1<<20 + 1<<20 - 64, 1 << 15},
	} {
		w := newReplayWindow(c.want)
		if w.blocks != nil {
			t.Errorf("newReplayWindow(%d) allocated its blocks before any packet", c.want)
		}
		if err := w.update(1); err != nil {
			t.Fatal(err)
		}
		if int(w.size) != c.size || len(w.blocks) != c.blocks {
			t.Errorf("newReplayWindow(%d): size %d blocks %d, want %d %d", c.want, w.size, len(w.blocks), c.size, c.blocks)
		}
	}
}

// TestReplayWindowModel drives the RFC 6479 window and a naive model (a
// set of accepted numbers) with the same random sequence numbers around a
// moving top, including jumps of more than the whole ring.
func TestReplayWindowModel(t *testing.T) {
	for _, size := range []int{64, 1024} {
		w := newReplayWindow(size)
		W := w.size
		seen := map[uint64]bool{}
		var top uint64
		r := rand.New(rand.NewPCG(uint64(size), 7))
		for range 200000 {
			var seq uint64
			switch r.IntN(10) {
			case 0:
				seq = top + 1 + r.Uint64N(3*W) // jump ahead, maybe past the ring
			case 1:
				seq = top + 1
			default:
				d := r.Uint64N(W + 70)
				if d > top {
					d = top
				}
				seq = top - d
			}
			var want error
			switch {
			case seq == 0:
				want = ErrTooOld
			case seq > top:
			case top-seq >= W:
				want = ErrTooOld
			case seen[seq]:
				want = ErrReplay
			}
			if got := w.check(seq); got != want {
				t.Fatalf("W=%d top=%d seq=%d: check %v, model %v", W, top, seq, got, want)
			}
			if want == nil && r.IntN(4) != 0 { // sometimes "ICV failed": no update
				if err := w.update(seq); err != nil {
					t.Fatal(err)
				}
				seen[seq] = true
				top = max(top, seq)
			}
			if w.top != top {
				t.Fatalf("top %d, model %d", w.top, top)
			}
		}
	}
}

// TestInferESN: for any top T and any true sequence number from the bottom
// of the window to 2^31 ahead, the low 32 bits are enough (RFC 4303 A2.2).
func TestInferESN(t *testing.T) {
	w := newReplayWindow(1024)
	W := w.size
	r := rand.New(rand.NewPCG(3, 4))
	tops := []uint64{0, 1, W - 2, W - 1, W, 1<<32 - 1, 1 << 32, 1<<32 + W - 2, 1<<32 + W, 5<<32 - 3}
	for range 200 {
		tops = append(tops, r.Uint64N(1<<40))
	}
	for _, top := range tops {
		w.top = top
		lo := uint64(1)
		if top >= W {
			lo = top - W + 1
		}
		cands := []uint64{lo, top, top + 1, top + maxJump}
		for range 200 {
			cands = append(cands, lo+r.Uint64N(top+maxJump-lo+1))
		}
		for _, seq := range cands {
			if got := w.infer(uint32(seq)); got != seq {
				t.Fatalf("top %#x: infer(%#x) = %#x, want %#x", top, uint32(seq), got, seq)
			}
		}
		// Just left of the window, and more than 2^31 ahead: too old.
		for _, seq := range []uint64{lo - 1, top + maxJump + 1} {
			if seq == 0 {
				continue
			}
			if err := w.check(w.infer(uint32(seq))); !errors.Is(err, ErrTooOld) {
				t.Fatalf("top %#x seq %#x: %v, want ErrTooOld", top, seq, err)
			}
		}
	}
}
