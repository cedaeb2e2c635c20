package overlay

import (
	"fmt"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// Connecting: Connect and the data path's pokes (start a base exchange for
// queued data, R2-SENT ended by data, rekey), and the waiters they leave,
// answered once the association is established or has failed.

// wakeWaiters answers p's waiting Connects with err — at the next
// flushWakes, after the record is written, so that a caller returning from
// Connect finds Peers up to date. An error fails a waiting Register too.
func (c *control) wakeWaiters(p *peer, err error) {
	for _, w := range p.x.waiters {
		c.wakes = append(c.wakes, wake{w, err})
	}
	if len(p.x.waiters) > 0 {
		p.x.waiters = nil // p.x is p's own: it held waiters
	}
	c.wakeKeyWaiters(p, err)
	if err != nil {
		c.regFail(p, err)
	}
}

type wake struct {
	ch  chan error
	err error
}

func (c *control) flushWakes() {
	for _, w := range c.wakes {
		select {
		case w.ch <- w.err:
		default:
		}
	}
	clear(c.wakes)
	c.wakes = c.wakes[:0]
	c.flushRegWakes()
}

// wakeKeyWaiters answers p's waiting ConnectKeyeds with err, at the next
// flushWakes.
func (c *control) wakeKeyWaiters(p *peer, err error) {
	for _, w := range p.x.keyWaiters {
		c.wakes = append(c.wakes, wake{w, err})
	}
	if len(p.x.keyWaiters) > 0 {
		p.x.keyWaiters = nil // p.x is p's own: it held waiters
	}
}

// wait keeps reply (if any) until p's association is established, or,
// keyed, until its keys exist.
func (p *peer) wait(reply chan error, keyed bool) {
	if reply == nil {
		return
	}
	x := p.mut()
	if keyed {
		x.keyWaiters = append(x.keyWaiters, reply)
	} else {
		x.waiters = append(x.waiters, reply)
	}
}

// connect serves Connect and ConnectKeyed (reply set) and the data path's
// pokeConnect (reply nil).
func (c *control) connect(now time.Time, h wire.HIT, reply chan error, keyed bool) {
	s := c.s
	answer := func(err error) {
		if reply != nil {
			reply <- err
		}
	}
	p, err := c.peerFor(h)
	if err != nil {
		answer(err)
		return
	}
	c.takeConfigured(p, now) // dial.go: an AddPeer whose poke is not served yet
	if a := p.assoc; a != nil && reply != nil && p.x.lostState && (a.State() == handshake.I1Sent || a.State() == handshake.I2Sent) {
		// An exchange that an unauthenticated UPDATE started toward the
		// address it came from, not complete yet (inbound.go lostState):
		// the application's Connect does not wait on an address anyone
		// could have named (and answered there with a copy of the peer's
		// R1, which anyone can get), but starts afresh on the normal path.
		c.abandon(p)
		if p, err = c.peerFor(h); err != nil {
			answer(err)
			return
		}
	}
	if a := p.assoc; a != nil {
		switch a.State() {
		case handshake.Established, handshake.R2Sent:
			answer(nil)
			return
		case handshake.I1Sent, handshake.I2Sent:
			if keyed && p.secret.Load() != nil {
				answer(nil) // I2-SENT, keys exported (secret.go)
				return
			}
			p.wait(reply, keyed)
			return
		}
	}
	if _, ok := p.locator(); !ok && !c.dialRelayed(p) {
		answer(fmt.Errorf("%w: %v", ErrUnknownPeer, h))
		return
	}
	p.wait(reply, keyed)
	if p.x.lostState {
		p.x.lostState = false // a new exchange; lostState marks its own after this
	}
	if p.assoc == nil {
		p.assoc = c.ep.Initiate(now, h)
		p.resetCounters()
	} else {
		p.assoc.Restart(now) // UNASSOCIATED, E-FAILED, CLOSING, CLOSED (§4.4.3)
	}
	s.ctr.bexStarted.Add(1)
	s.log.Debug("bex started", "peer", h.String())
	c.process(p, now)
}

// handlePokes serves what the data path asked for.
func (c *control) handlePokes(now time.Time) {
	s := c.s
	s.pokeMu.Lock()
	ps := s.poked
	s.poked = c.spare[:0]
	s.pokeMu.Unlock()
	for _, p := range ps {
		k := p.pokes.Swap(0)
		if k&pokeConnect != 0 {
			c.connectPoke(p, now)
		}
		if k&pokeData != 0 && p.assoc != nil {
			p.assoc.DataReceived(now)
			if p.x.nextOut != nil {
				c.switchOut(p, p.x.nextOut) // the peer sends on its new SA: it has ours
			}
			c.process(p, now)
		}
		if k&pokeRekey != 0 {
			c.rekey(p, now)
		}
		if k&pokePath != 0 {
			c.pathPoke(p, now) // locators.go
		}
	}
	clear(ps)
	c.spare = ps
}

// connectPoke starts the base exchange for queued data, or discards the
// queue if it cannot start.
func (c *control) connectPoke(p *peer, now time.Time) {
	if c.draining || c.s.lookupPeer(p.hit) != p {
		c.discardPending(p)
		return
	}
	if p.out.Load() != nil {
		return
	}
	if p.assoc != nil && p.assoc.State() == handshake.Closed && !c.s.mayReopenPending(p) {
		return // the peer left, and nothing queued may reach it anew
	}
	c.connect(now, p.hit, nil, false)
	if p.assoc == nil && !c.s.relayPending() {
		c.discardPending(p) // unknown or refused
	}
}

// peerFor is what Connect and Register check before anything starts: the
// stack is open, Authorize admits h, and a locator for h is known.
func (c *control) peerFor(h wire.HIT) (*peer, error) {
	if c.draining {
		return nil, ErrClosed
	}
	if !c.s.authorized(h) {
		return nil, fmt.Errorf("%w: %v", ErrNotAuthorized, h)
	}
	p := c.s.lookupPeer(h)
	if p == nil && len(c.s.relays) > 0 {
		p = c.s.ensurePeer(h) // reached through a relay (path.go)
	}
	if p == nil {
		return nil, noPeer(h)
	}
	return p, nil
}
