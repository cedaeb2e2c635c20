package overlay

import (
	"container/heap"
	"time"
)

// The control goroutine's timers, all in one heap with one time.Timer
// armed for the earliest entry:
//
//   - each association's deadline (retransmission, R2-SENT,
//     CLOSING/CLOSED/E-FAILED, a rekey's deadline, a puzzle's lifetime:
//     Association.Deadline), the switch to a rekeyed outbound SA, its
//     locator Set's next check (locators.go) and its dial's next locator
//     (dial.go): one entry per peer, at the earliest of them;
//   - wake-ups asked for by the stack's other goroutines (after): each
//     relay loop's keepalive and back-off waits (relayclient.go) and each
//     STUN transaction's retransmissions (stun.go). The goroutine blocks
//     on a channel that the control goroutine closes when the time comes.
//
// Beside the heap, the loop's timer also covers the stack-wide deadlines:
// the next tick (below: rekeys by policy, the keepalives of associations
// without a locator Set, the data path's clock), the locators' count reading
// (syncPaths), the idle check (idle.go), the next R1 rotation
// (Endpoint.NextRotation), the end of the load window
// (Endpoint.LoadDeadline) and, while Close drains, the end of the
// CLOSE_ACK wait. No other clock runs in the stack, but for pion/ice's own
// inside each ICE session (nat/), which the library keeps.

// timerEntry is one deadline in the heap: a peer's, or a wake-up.
type timerEntry struct {
	deadline time.Time
	idx      int           // index in the heap, -1 if absent
	p        *peer         // the peer whose deadline this is; nil for a wake-up
	wake     chan struct{} // a wake-up: closed when due
}

// timerHeap is a min-heap of entries by deadline (container/heap).
type timerHeap []*timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h *timerHeap) Push(x any) {
	e := x.(*timerEntry)
	e.idx = len(*h)
	*h = append(*h, e)
}

func (h *timerHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	e.idx = -1
	return e
}

// set schedules p at d; a zero d unschedules it.
func (h *timerHeap) set(p *peer, d time.Time) { h.setEntry(&p.tm, d) }

func (h *timerHeap) setEntry(e *timerEntry, d time.Time) {
	if d.IsZero() {
		h.removeEntry(e)
		return
	}
	e.deadline = d
	if e.idx >= 0 {
		heap.Fix(h, e.idx)
	} else {
		heap.Push(h, e)
	}
}

func (h *timerHeap) remove(p *peer) { h.removeEntry(&p.tm) }

func (h *timerHeap) removeEntry(e *timerEntry) {
	if e.idx >= 0 {
		heap.Remove(h, e.idx)
	}
	e.deadline = time.Time{}
}

// due pops and returns the entries whose deadline is not after now.
func (h *timerHeap) due(now time.Time, dst []*timerEntry) []*timerEntry {
	for h.Len() > 0 && !(*h)[0].deadline.After(now) {
		e := heap.Pop(h).(*timerEntry)
		e.deadline = time.Time{}
		dst = append(dst, e)
	}
	return dst
}

// afterCmd is a wake-up at at (Stack.after).
type afterCmd struct {
	at   time.Time
	wake chan struct{}
}

// takeAfters moves the wake-ups asked for since the last call into the
// heap, closing those already due.
func (c *control) takeAfters(now time.Time) {
	s := c.s
	s.pokeMu.Lock()
	as := s.afters
	s.afters = nil
	s.pokeMu.Unlock()
	for _, m := range as {
		if !m.at.After(now) {
			close(m.wake)
			continue
		}
		c.timers.setEntry(&timerEntry{idx: -1, wake: m.wake}, m.at)
	}
}

// after returns a channel that the control goroutine closes d from now,
// from its timer heap: how the stack's other goroutines wait for a
// protocol time (a keepalive interval, a retransmission timeout, an ICE
// session's pacing). It is closed at once if the stack has finished. A
// wait abandoned early leaves its entry in the heap until it is due,
// which bounds nothing more than the waits themselves.
//
// It never waits for the control goroutine: it queues the request, as
// poke does, and wakes the loop. The control goroutine itself waits for
// some of its callers (an ICE session's Close waits for the session's
// goroutines, which call after), so a blocking hand-off here would be a
// deadlock.
func (s *Stack) after(d time.Duration) <-chan struct{} {
	wake := make(chan struct{})
	s.pokeMu.Lock()
	if s.afterShut {
		s.pokeMu.Unlock()
		close(wake)
		return wake
	}
	s.afters = append(s.afters, afterCmd{at: time.Now().Add(d), wake: wake})
	s.pokeMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return wake
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
	for _, e := range c.due {
		p := e.p
		if p == nil {
			close(e.wake)
			continue
		}
		if p.x.nextOut != nil && !now.Before(p.x.switchAt) {
			c.switchOut(p, p.x.nextOut)
		}
		if c.lostTimeout(p, now) { // inbound.go
			continue
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
		c.s.clock.Store(now.UnixNano()) // the data path's coarse clock
		c.tick(now)
		c.nextTick = now.Add(c.s.tickEvery())
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

// tickMax bounds the period of tick.
const tickMax = time.Second

// tickEvery is the period of tick: a second, or half the keepalive
// interval if that is shorter.
func (s *Stack) tickEvery() time.Duration {
	return min(tickMax, s.keepaliveInterval()/2)
}

// tick runs every tickEvery on the control goroutine: it retires the
// inbound SAs one rekey old whose time is up and ends the retired ones
// whose hold has passed (sas.go), and, in one pass over the
// peers, starts the rekeys by time and volume (rekeying.go) and sends the
// keepalives of the associations that have no locator Set (locators.go
// keepIdle).
// The paths themselves, relayed or direct, are the Sets' (locators.go).
func (c *control) tick(now time.Time) {
	if len(c.prevs) > 0 {
		c.expirePrevs(now)
	}
	if len(c.retired) > 0 {
		c.expireRetired(func(r retiredSA) bool { return !now.Before(r.until) })
	}
	if c.s.cfg.Forwarder != nil {
		return // a relay keeps no keepalives (RFC 5770 §4.7: it MAY refrain) and rekeys nothing by policy
	}
	t := now.UnixNano()
	for _, p := range c.s.peerList() {
		c.rekeyDue(p, now)
		c.keepIdle(p, t)
	}
}

// earliest returns the earlier of two deadlines, zero meaning none.
func earliest(d, t time.Time) time.Time {
	if d.IsZero() || (!t.IsZero() && t.Before(d)) {
		return t
	}
	return d
}
