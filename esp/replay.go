package esp

import "math/bits"

// replayWindow is the RFC 6479 anti-replay window over 64-bit extended
// sequence numbers: a ring of M 64-bit blocks (M a power of two) of which
// M-1 form the usable window W = (M-1)*64. Sliding forward clears whole
// blocks instead of shifting bits; a sequence number's bit is found from
// the number alone (block = seq/64 mod M, bit = seq mod 64).
//
// It is not safe for concurrent use; Inbound guards it with a mutex.
type replayWindow struct {
	top  uint64 // T: highest sequence number authenticated so far; 0 = none
	size uint64 // W
	mask uint64 // M-1
	// blocks is allocated by the first update: an SA that never receives
	// (an idle relay association, a one-way flow) costs no window.
	blocks []uint64
}

func newReplayWindow(want int) replayWindow {
	if want == 0 {
		want = DefaultReplayWindow
	}
	want = min(max(want, MinReplayWindow), MaxReplayWindow)
	// Smallest power-of-two M with (M-1)*64 >= want.
	need := uint64(want+63)/64 + 1
	m := uint64(1) << bits.Len64(need-1)
	return replayWindow{size: (m - 1) * 64, mask: m - 1}
}

// infer reconstructs the 64-bit sequence number from the low 32 bits on
// the wire, RFC 4303 Appendix A2.2. Bl = Tl - W + 1 (mod 2^32).
//
//	Case A (Tl >= W-1, window inside one subspace):
//	    Seql >= Bl: Seqh = Th;   Seql < Bl: Seqh = Th + 1
//	Case B (Tl <  W-1, window spans two subspaces):
//	    Seql >= Bl: Seqh = Th-1; Seql < Bl: Seqh = Th
//
// In case B with Th = 0 there is no subspace -1: such a Seql lies ahead of
// T in subspace 0. Resynchronisation after losing more than 2^32 packets
// (Appendix A3) is not attempted.
func (w *replayWindow) infer(seql uint32) uint64 {
	tl, th := uint32(w.top), uint32(w.top>>32)
	bl := tl - uint32(w.size) + 1
	seqh := th
	if tl >= uint32(w.size-1) {
		if seql < bl {
			seqh = th + 1 // Th = 2^32-1 wraps to 0: lands left of the window
		}
	} else if seql >= bl && th > 0 {
		seqh = th - 1
	}
	return uint64(seqh)<<32 | uint64(seql)
}

// maxJump is the largest forward gap check accepts. A2.2 puts every Seql
// left of the window into the next subspace, i.e. it reads a stale packet
// as one nearly 2^32 packets ahead, which then fails the ICV. Like serial
// number arithmetic (RFC 1982 §3.2), this package splits the 32-bit circle
// in half instead: more than 2^31 ahead counts as behind, so stale packets
// are reported as ErrTooOld, before any ICV work. The two rules differ
// only after 2^31 consecutive losses, which no live SA sees (HIP rekeys
// long before: DefaultRekeyAfter < 2^32).
const maxJump = 1 << 31

// check reports whether seq may be accepted, without changing the window
// (RFC 4303 §3.4.3: check before the ICV, update after).
func (w *replayWindow) check(seq uint64) error {
	switch {
	case seq == 0:
		return ErrTooOld // never sent: the first packet is 1
	case seq > w.top:
		if seq-w.top > maxJump {
			return ErrTooOld
		}
		return nil
	case w.top-seq >= w.size:
		return ErrTooOld
	case w.blocks != nil && w.blocks[(seq/64)&w.mask]&(1<<(seq%64)) != 0:
		return ErrReplay
	}
	return nil
}

// update marks seq as received, sliding the window if seq is the new top.
// It re-checks first: another goroutine may have accepted seq meanwhile.
func (w *replayWindow) update(seq uint64) error {
	if err := w.check(seq); err != nil {
		return err
	}
	if w.blocks == nil {
		w.blocks = make([]uint64, w.mask+1)
	}
	if seq > w.top {
		cur, idx := w.top/64, seq/64
		// Clear the blocks the top moves into (RFC 6479 §2, Figure 3);
		// at most the whole ring.
		n := min(idx-cur, w.mask+1)
		for i := uint64(1); i <= n; i++ {
			w.blocks[(cur+i)&w.mask] = 0
		}
		w.top = seq
	}
	w.blocks[(seq/64)&w.mask] |= 1 << (seq % 64)
	return nil
}

// reset empties the window and puts its top at t (tests).
func (w *replayWindow) reset(t uint64) {
	clear(w.blocks)
	w.top = t
}
