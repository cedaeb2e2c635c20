package overlay

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"hipnet.dev/handshake/wire"
)

// Opportunistic mode (RFC 7401 §4.1.8): a base exchange with a host known
// only by its address. The I1 carries the NULL Receiver's HIT; the R1
// names the Responder, whose identity the rest of the exchange
// authenticates, and from then on it is an ordinary association. A node
// uses it for a relay configured as "host:port" (Config.Relays with a zero
// HIT). It trusts whoever answers at that address: configure the relay's
// HIT to rule out an impostor on the path.

type oppCommand struct {
	addr  netip.AddrPort
	hit   chan wire.HIT // buffered (1): the Responder's HIT, once R1 names it
	reply chan error    // buffered (1)
}

// ConnectAddr runs an opportunistic base exchange with the host at addr and
// returns its HIT once the association is established. Errors are
// Connect's.
func (s *Stack) ConnectAddr(ctx context.Context, addr netip.AddrPort) (wire.HIT, error) {
	if s.closed.Load() {
		return wire.HIT{}, ErrClosed
	}
	cmd := &oppCommand{addr: netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port()), hit: make(chan wire.HIT, 1), reply: make(chan error, 1)}
	select {
	case s.cmds <- connectAddrCmd{opp: cmd}:
	case <-s.closing:
		return wire.HIT{}, ErrClosed
	case <-ctx.Done():
		return wire.HIT{}, fmt.Errorf("hip: connect %v: %w", addr, ctx.Err())
	}
	select {
	case err := <-cmd.reply:
		if err != nil {
			return wire.HIT{}, err
		}
		return <-cmd.hit, nil
	case <-ctx.Done():
		return wire.HIT{}, fmt.Errorf("hip: connect %v: %w", addr, ctx.Err())
	case <-s.ctrlDone:
		return wire.HIT{}, ErrClosed
	}
}

// connectOpp starts an opportunistic base exchange (control goroutine).
func (c *control) connectOpp(now time.Time, cmd *oppCommand) {
	if c.draining {
		cmd.reply <- ErrClosed
		return
	}
	if c.opp == nil {
		c.opp = map[netip.AddrPort]*peer{}
	}
	if old := c.opp[cmd.addr]; old != nil {
		x := old.mut()
		x.waiters = append(x.waiters, cmd.reply)
		x.oppHIT = append(x.oppHIT, cmd.hit)
		return
	}
	p := newPeer(wire.HIT{})
	p.setLocator(cmd.addr)
	x := p.mut()
	x.waiters = []chan error{cmd.reply}
	x.oppHIT = []chan wire.HIT{cmd.hit}
	p.assoc = c.ep.Initiate(now, wire.HIT{})
	c.s.ctr.bexStarted.Add(1)
	c.opp[cmd.addr] = p
	c.s.log.Debug("bex started", "peer", "opportunistic", "addr", cmd.addr)
	for _, pkt := range p.assoc.Outgoing() {
		c.sendControl(pkt, cmd.addr)
	}
	c.timers.set(p, p.assoc.Deadline())
}

// handleOppR1 takes an R1 from the address of an opportunistic exchange.
// The exchange's association checks it first, as any R1 (RFC 7401 §6.8:
// the HOST_ID hashing to the Sender's HIT, HIP_SIGNATURE_2), and only an
// R1 it accepted names the Responder: a forged one, from anyone who can
// send from that address, is dropped and the exchange waits for the
// genuine R1, instead of taking the Sender's HIT from the forgery and
// dropping the real Responder's answer as a stranger's.
func (c *control) handleOppR1(now time.Time, pk ctrlPacket, sender wire.HIT, in *inbound) {
	a := c.opp[pk.from].assoc
	c.handling = in
	_, err := c.ep.Handle(now, pk.b, a)
	c.handling = nil
	if err != nil {
		c.countRejected(err, pk.from)
		return
	}
	p := c.oppPeer(sender, pk.from)
	if p == nil {
		// Refused (oppPeer): the I2 and keys the R1 made never leave.
		a.Outgoing()
		a.Events()
		delete(c.spiRes, a.Info().InSPI)
		return
	}
	c.processPacket(p, now, in)
}

// oppPeer adopts the opportunistic exchange with the R1's source, now
// that its association accepted the R1, which names the Responder: the
// peer struct takes its HIT.
func (c *control) oppPeer(sender wire.HIT, from netip.AddrPort) *peer {
	p := c.opp[from]
	if p == nil {
		return nil
	}
	delete(c.opp, from)
	s := c.s
	if (!s.authorized(sender) && !s.relayAddr(from)) || s.lookupPeer(sender) != nil {
		c.timers.remove(p)
		c.wakeWaiters(p, fmt.Errorf("%w: %v answered at %v", ErrNotAuthorized, sender, from))
		c.flushWakes()
		return nil
	}
	if p.rec != nil {
		s.db.delete(wire.HIT{}) // written under the NULL HIT while waiting
		p.rec = nil
	}
	p.hit = sender
	for _, ch := range p.x.oppHIT {
		ch <- sender
	}
	if p.x.oppHIT != nil {
		p.x.oppHIT = nil // p.x is p's own: it held them
	}
	s.peersMu.Lock()
	s.peers[sender] = p
	s.peersMu.Unlock()
	s.log.Info("opportunistic peer", "peer", sender.String(), "addr", from)
	return p
}

// dropAssociation forgets the association with h without a CLOSE: its
// peer is gone (a relay that restarted) and a new base exchange follows.
func (s *Stack) dropAssociation(h wire.HIT) {
	select {
	case s.cmds <- dropCmd{hit: h}:
	case <-s.closing:
	}
}

func (c *control) dropAssoc(h wire.HIT) {
	p := c.s.lookupPeer(h)
	if p == nil || p.assoc == nil {
		return
	}
	c.s.log.Info("association dropped", "peer", h.String())
	c.wakeWaiters(p, fmt.Errorf("%w: association with %v dropped", ErrClosed, h))
	c.abandon(p)
	c.flushWakes()
}
