package overlay

import (
	"container/heap"
	"time"
)

// The control goroutine's timers: it keeps the associations' deadlines
// (retransmission, R2-SENT, CLOSING/CLOSED/E-FAILED, a rekey's deadline, a
// puzzle's lifetime: Association.Deadline; the switch to a rekeyed
// outbound SA) in a heap and arms one time.Timer for the earliest of them,
// the next path check (keepalives and direct paths gone dark, path.go
// tick), the next R1 rotation (Endpoint.NextRotation), the end of the load
// window (Endpoint.LoadDeadline) and, while Close drains, the end of the
// CLOSE_ACK wait.
//
// Not every clock is here yet: each relay loop's waits
// (relayclient.go), STUN retransmissions (stun.go), a puzzle solver's wait for a free core
// (puzzle.go) and the ICE sessions' own timers (nat/) keep their own.
// Moving them into this heap is the next step of the layout work.

// timerHeap is a min-heap of peers by deadline (container/heap).
type timerHeap []*peer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (h *timerHeap) Push(x any) {
	p := x.(*peer)
	p.heapIdx = len(*h)
	*h = append(*h, p)
}

func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	p := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	p.heapIdx = -1
	return p
}

// set schedules p at d; a zero d unschedules it.
func (h *timerHeap) set(p *peer, d time.Time) {
	if d.IsZero() {
		h.remove(p)
		return
	}
	p.deadline = d
	if p.heapIdx >= 0 {
		heap.Fix(h, p.heapIdx)
	} else {
		heap.Push(h, p)
	}
}

func (h *timerHeap) remove(p *peer) {
	if p.heapIdx >= 0 {
		heap.Remove(h, p.heapIdx)
	}
	p.deadline = time.Time{}
}

// due pops and returns the peers whose deadline is not after now.
func (h *timerHeap) due(now time.Time, dst []*peer) []*peer {
	for h.Len() > 0 && !(*h)[0].deadline.After(now) {
		p := heap.Pop(h).(*peer)
		p.deadline = time.Time{}
		dst = append(dst, p)
	}
	return dst
}

// arm resets the control loop's timer to the earliest of the association
// deadlines, the R1 rotation and the drain deadline.
func (c *control) arm() {
	next := c.ep.NextRotation()
	if c.nextTick.Before(next) {
		next = c.nextTick
	}
	if d := c.ep.LoadDeadline(); !d.IsZero() && d.Before(next) {
		next = d
	}
	if len(c.timers) > 0 && c.timers[0].deadline.Before(next) {
		next = c.timers[0].deadline
	}
	if !c.nextPathSync.IsZero() && c.nextPathSync.Before(next) {
		next = c.nextPathSync
	}
	if !c.nextIdle.IsZero() && c.nextIdle.Before(next) {
		next = c.nextIdle
	}
	if c.draining && c.drainUntil.Before(next) {
		next = c.drainUntil
	}
	if c.relaysOpen && c.relaysCloseBy.Before(next) {
		next = c.relaysCloseBy
	}
	if next.Equal(c.armed) {
		return
	}
	c.armed = next
	c.timer.Reset(time.Until(next))
}

// handleTimers runs what is due at now.
func (c *control) handleTimers(now time.Time) {
	c.armed = time.Time{}
	c.due = c.timers.due(now, c.due[:0])
	for _, p := range c.due {
		if p.nextOut != nil && !now.Before(p.switchAt) {
			c.switchOut(p, p.nextOut)
		}
		c.dialTimeout(p, now) // dial.go
		c.pathTimeout(p, now) // locators.go
		if a := p.assoc; a != nil {
			a.HandleTimeout(now) // a no-op for timers not yet due
			c.process(p, now)
		}
	}
	clear(c.due)
	if !c.nextPathSync.IsZero() && !now.Before(c.nextPathSync) {
		c.syncPaths(now) // locators.go
	}
	if !c.nextIdle.IsZero() && !now.Before(c.nextIdle) {
		c.closeIdle(now) // idle.go
	}
	if !now.Before(c.nextTick) {
		// The path check: keepalives and direct paths gone dark (path.go),
		// and the data path's coarse clock.
		c.s.clock.Store(now.UnixNano())
		c.tick(now)
		c.nextTick = now.Add(c.s.pathCheckEvery())
	}
	if d := c.ep.LoadDeadline(); !d.IsZero() && !now.Before(d) {
		// The puzzle follows the I2 load (handshake load.go).
		if changed, err := c.ep.HandleLoad(now); err != nil {
			c.s.log.Error("puzzle difficulty", "err", err)
		} else if changed {
			k := c.ep.PuzzleDifficulty()
			c.s.puzzleK.Store(uint32(k))
			c.s.log.Info("puzzle difficulty", "k", k)
		}
	}
	if !now.Before(c.ep.NextRotation()) {
		// A new R1 generation: DH keys and signatures, off the packet path.
		if err := c.ep.Rotate(now); err != nil {
			c.s.log.Error("r1 rotation failed", "err", err)
		}
		c.pruneSPIs(now)
		c.trimSAs()
		if f := c.s.cfg.Forwarder; f != nil {
			f.Prune(now)
		}
	}
}

// earliest returns the earlier of two deadlines, zero meaning none.
func earliest(d, t time.Time) time.Time {
	if d.IsZero() || (!t.IsZero() && t.Before(d)) {
		return t
	}
	return d
}
