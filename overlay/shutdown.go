package overlay

import (
	"time"

	"hipnet.dev/handshake"
)

// Shutdown: Close sends CLOSE to every peer (RFC 7401 §5.3.7), closes the
// associations with our relays last (the others' CLOSEs may go through
// them), and the control loop ends once the CLOSE_ACKs are in or closeWait
// has passed.

// beginShutdown starts Close: CLOSE to every peer with keys (RFC 7401
// §5.3.7), pending Connects fail with ErrClosed; the loop then waits up to
// closeWait for the CLOSE_ACKs.
func (c *control) beginShutdown(now time.Time) {
	c.draining = true
	c.drainUntil = now.Add(closeWait)
	for _, p := range c.s.peerList() {
		c.discardPending(p)
		c.wakeWaiters(p, ErrClosed)
		if a := p.assoc; a != nil && !c.s.isRelay(p.hit) {
			a.Close(now)
			c.process(p, now)
		}
	}
	c.flushWakes()
	if len(c.s.relays) > 0 {
		c.relaysOpen, c.relaysCloseBy = true, now.Add(closeWait/2)
		c.closeRelays(now)
	}
}

// closeRelays closes the associations with our relays once the other
// associations have finished closing (their CLOSEs may go through the
// relays, which forward only for hosts still registered), or at
// relaysCloseBy.
func (c *control) closeRelays(now time.Time) {
	if c.closingCount() > 0 && now.Before(c.relaysCloseBy) {
		return
	}
	c.relaysOpen = false
	for _, p := range c.s.peerList() {
		if a := p.assoc; a != nil && c.s.isRelay(p.hit) {
			a.Close(now)
			c.process(p, now)
		}
	}
}

func (c *control) closingCount() int {
	n := 0
	for _, p := range c.s.peerList() {
		if p.assoc != nil && p.assoc.State() == handshake.Closing {
			n++
		}
	}
	return n
}

func (c *control) finish() {
	for _, p := range c.s.peerList() {
		c.wakeWaiters(p, ErrClosed)
		c.clearPath(p)
	}
	for _, p := range c.opp {
		c.wakeWaiters(p, ErrClosed)
	}
	c.regShutdown()
	c.flushWakes()
	c.s.pokeMu.Lock()
	c.s.afterShut = true
	as := c.s.afters
	c.s.afters = nil
	c.s.pokeMu.Unlock()
	for _, m := range as {
		close(m.wake)
	}
	for _, e := range c.timers {
		if e.wake != nil {
			close(e.wake) // a goroutine waiting on after: the stack is done
		}
	}
	c.timers = nil
}
