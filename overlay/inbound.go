package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// The inbound control path: one HIP control packet from the read loop,
// through the Forwarder (forwarder.go) and RELAY_FROM, the R1 limit of relayed I1s, the
// Endpoint, Config.Authorize, and the association's outputs. What the
// handling of one packet needs to know about it travels in an inbound,
// passed down as an argument, never stashed on the control struct.

// inbound is the context of the control packet being handled.
type inbound struct {
	from netip.AddrPort
	// via is the relay it came through (RELAY_FROM), if any.
	via via
	// rvs is the rendezvous server it came through (FROM), if any
	// (rendezvous.go).
	rvs rendezvous
	// finalizing: an UPDATE with a SEQ, so a rekey it completes on our side
	// is not yet complete on the peer's (RFC 7402 §6.10).
	finalizing bool
	// regRequest: it carries a REG_REQUEST, so an EventRegistration it
	// causes is our answer as registrar (registration.go).
	regRequest bool
	// size is the packet's length in octets.
	size int
	// back: an authenticated packet of the peer's through the
	// association's relay; what it draws goes back that way
	// (processPacket).
	back bool
	// answerAt: a fresh registration request (UPDATE, REG_REQUEST) from
	// an address other than the requester's locator; the answer goes
	// there (processPacket).
	answerAt netip.AddrPort
}

// handlePacket feeds one control packet to the Endpoint and acts on the
// result. The authorization checks of Config.Authorize sit here: on an I2
// (Initiator authenticated) and on an R1 (Responder authenticated).
func (c *control) handlePacket(now time.Time, pk ctrlPacket) {
	s := c.s
	pkt, err := wire.ParsePacket(pk.b)
	if err != nil {
		s.drop(&s.ctr.malformed, "malformed control", pk.from, err)
		return
	}
	if c.forwardControl(now, pk, pkt) {
		return
	}
	in := &inbound{from: pk.from, size: len(pk.b)}
	var ok bool
	if handshake.HasRendezvous(pkt) {
		if in.rvs, ok = c.openRendezvous(now, &pk, &pkt); !ok {
			return
		}
	} else if in.via, ok = c.openRelayed(&pk, &pkt); !ok {
		return
	}
	sender, typ := pkt.SenderHIT(), pkt.Type()
	if c.draining && (typ == wire.I1 || typ == wire.I2) {
		s.drop(&s.ctr.controlRejected, "closing", pk.from, nil)
		return
	}
	if typ == wire.I1 && (in.via.relay != nil && !c.r1lim.allow(in.via.from, now) ||
		in.rvs.server != nil && !c.r1lim.allow(in.rvs.initiator, now)) {
		// A relayed or rendezvous I1, limited by where the relay saw it
		// come from (a direct one was limited by the read loop,
		// receive.go).
		s.drop(&s.ctr.rateLimited, "r1 rate limit", pk.from, nil)
		return
	}
	p := s.lookupPeer(sender)
	if p == nil && typ == wire.R1 && c.opp[pk.from] != nil {
		c.handleOppR1(now, pk, sender, in) // opportunistic.go
		return
	}
	if p == nil && typ == wire.R1 && in.via.relay == nil && in.rvs.server == nil && c.lostAsked(now, sender, pk.from) {
		c.lostAnswered(now, pk, sender, in)
		return
	}
	if typ == wire.R1 && (p == nil || p.assoc == nil || p.assoc.State() != handshake.I1Sent) {
		c.wrongHost(sender, pk.from) // dial.go: who answers at a locator we dial
	}
	var a *handshake.Association
	var before handshake.State
	var spiBefore uint32
	if p != nil && p.assoc != nil {
		a = p.assoc
		before = a.State()
		spiBefore = a.Info().InSPI
	}
	_, hasSeq := pkt.Param(wire.ParamSeq)
	in.finalizing = typ == wire.UPDATE && hasSeq
	_, in.regRequest = pkt.Param(wire.ParamRegRequest)
	wasRekeying := a != nil && a.Rekeying()
	// The Endpoint may call back into us while it builds an I2 or R2
	// (Config.Candidates): the one place the context is looked up rather
	// than passed, and only for the length of this call.
	c.handling = in
	res, err := c.ep.Handle(now, pk.b, a)
	c.handling = nil
	if err == nil && in.finalizing && wasRekeying && a.Rekeying() {
		// The peer's own rekey UPDATE crossed ours: it may finish at the
		// same moment we do, so neither side may assume the other ready.
		p.mut().crossedRekey = true
	}
	if res.Reply != nil {
		c.reply(res.Reply, in) // R1, or NOTIFY for a rejected I2
	}
	if err != nil {
		c.countRejected(err, pk.from)
		if a != nil {
			c.processPacket(p, now, in)
		}
		if typ == wire.UPDATE && a == nil && in.via.relay == nil && in.rvs.server == nil {
			c.lostState(now, pkt, sender, pk.from)
		}
		return
	}
	if in.finalizing && a != nil && in.via.relay != nil {
		c.relayMoved(p, now, in) // path.go: the peer behind the relay moved?
	}
	in.back = a != nil && in.rvs.server == nil && c.throughRelay(p, in) // path.go
	if typ == wire.UPDATE && in.regRequest && !res.Repeat && a != nil && in.via.relay == nil && in.rvs.server == nil {
		// A requester behind a NAT whose mapping changed refreshes its
		// registration from the new one, to learn it from our REG_FROM
		// (RFC 9028 §4.1: "especially important for the case of host
		// movement"): the answer goes where the request came from, or
		// it would go to the old mapping. Only a fresh request's: a
		// replay (res.Repeat) from elsewhere draws nothing there, and
		// the answer is about the request's size (no amplification).
		if at, ok := p.locator(); ok && at != unmapPort(in.from) {
			in.answerAt = unmapPort(in.from)
		}
	}
	n := res.Assoc
	if n == nil {
		return
	}
	if typ == wire.I2 {
		// A valid I2: the Initiator's identity is authenticated and n is a
		// new association in R2-SENT (or a replaced in place).
		if !s.authorized(sender) {
			c.refuse(p, n, a, sender, in, pk.b)
			return
		}
		// Not a retransmitted I2: a new association, or one that replaced
		// ours in place (new SAs), R2-SENT included: a relay's
		// association with a host stays in R2-SENT, the host sending it
		// no ESP, and a host that moved registers again with a new I2.
		fresh := p == nil || p.assoc == nil || before != handshake.R2Sent || n.Info().InSPI != spiBefore
		if fresh && p != nil && (before == handshake.Established || before == handshake.R2Sent) {
			// It replaces our association in place: the peer restarted, or
			// lost its state, without a CLOSE. Its path is chosen afresh,
			// as after a CLOSE: the old association's ICE session checks
			// with the old KEYMAT's key, which the peer's new checks fail,
			// and its pair and relay were the old exchange's choice.
			relayed := p.relayed.Load() && in.via.relay != nil
			c.clearPath(p) // path.go
			c.resetPath(p) // locators.go
			// A peer given by AddPeer keeps its address, and goes on
			// through the relay if the new exchange came through it too
			// (tookRelayed).
			p.relayed.Store(relayed)
		}
		if p == nil {
			p = s.learnPeer(sender, pk.from)
		} else if at, ok := p.locator(); !ok || fresh && in.via.relay == nil && in.rvs.server == nil && at != unmapPort(pk.from) {
			// A new base exchange from another address (the Initiator
			// moved, or its NAT mapping changed): the R2 and what follows
			// go where the I2 came from, and its locators start afresh.
			c.resetPath(p)
			p.setLocator(pk.from)
		}
		if p.assoc == nil {
			p.assoc = n
			p.resetCounters()
		}
		if fresh {
			s.ctr.bexStarted.Add(1)
			// The path is chosen by the base exchange only: a later relayed
			// packet, which could be a replay of a genuine one, never moves
			// an association onto a relay or changes where RELAY_TO points.
			c.tookRelayed(p, in.via)
		}
		c.processPacket(p, now, in)
		return
	}
	if typ == wire.R1 && before == handshake.I1Sent && a.State() == handshake.I2Sent {
		c.followAnswer(p, pk.from) // dial.go: the locator that answered
	}
	if typ == wire.R1 && before == handshake.I1Sent {
		c.followRendezvous(p, pkt, pk.from) // rendezvous.go
	}
	if a != nil && (before == handshake.Established || before == handshake.R2Sent) && typ != wire.I1 && typ != wire.I2 && typ != wire.R1 &&
		(in.via.relay == nil || in.via.relay == p.x.relay) && in.rvs.server == nil && !isProbe(pkt) && !res.Repeat &&
		typ != wire.NOTIFY && !(typ == wire.UPDATE && !hasSeq && isEchoAnswer(pkt)) {
		// An authenticated packet of an association (the state machine
		// checked its HIP_MAC): a sign of life of its path (through the
		// association's relay: of the relay locator, whose address it
		// comes from), or a NAT rebinding candidate (locators.go). Not the
		// peer's probes: they show that its packets reach us, not that
		// ours reach it, and on a path that lost one direction they would
		// keep it looking alive. Nor a repeat of an UPDATE already
		// acknowledged (res.Repeat), which anyone who recorded it can
		// send from any address, each time drawing a probe there. Nor,
		// for the same reason, what carries no SEQ to tell a replay from
		// a fresh packet: a NOTIFY, or the answer to an address check
		// (RFC 8046 §5.4), which is a sign of life only when it answers a
		// probe still waiting (echoAnswered). A replayed answer would
		// otherwise keep a dead path current, so that failover never
		// came, and draw probes to any address it was sent from.
		c.pathReceived(p, now, in.from, in.size)
	}
	if typ == wire.R1 && before == handshake.I1Sent && a.State() == handshake.I2Sent && !s.authorized(sender) {
		// The Responder is authenticated and refused: its I2 is never sent.
		a.Outgoing()
		a.Events()
		delete(c.spiRes, a.Info().InSPI)
		s.ctr.unauthorized.Add(1)
		s.ctr.bexRefused.Add(1)
		s.log.Info("unauthorized", "peer", sender.String(), "role", "responder")
		c.discardPending(p)
		c.wakeWaiters(p, fmt.Errorf("%w: %v", ErrNotAuthorized, sender))
		c.abandon(p)
		c.flushWakes()
		return
	}
	c.processPacket(p, now, in)
}

// lostState acts on an UPDATE from h, at from, a host we know nothing of:
// h may still hold an association with us that we lost (we restarted,
// RFC 7401 §4.5.4). Its ESP is dropped here for its unknown SPI and its
// checks of the path go unanswered; left alone, it would send into the
// void until its association idles out, which its own traffic keeps from
// happening. RFC 7402 §6.2 leaves lost state to the implementation: we
// ask h at from with one I1, keeping nothing but a note (lostProbes); if
// h answers with its R1 (lostAnswered), a base exchange follows. h, in
// ESTABLISHED, answers our I1 with R1 and replaces its association on our
// valid I2 (§4.4.4), and both ends have one again, a few round trips
// after its first check.
//
// The UPDATE is not authenticated (we hold no key for it): anyone can
// send one, in any HIT's name, from any address. So:
//   - a peer we know keeps its locators: one configured (Config.Peers,
//     AddPeer) is dialled at those, as a write to it would be; one reached
//     through a relay, or already in an exchange, is left alone; from is
//     used only for a HIT we know nothing of;
//   - only for an UPDATE with HIP_MAC and HIP_SIGNATURE, as a host
//     that holds an association sends them, and so longer than the one
//     I1 that answers it, which is not retransmitted: nothing amplified;
//   - at most lostRate a second for all sources together, and never out
//     of the limits of honest I1s (r1lim);
//   - no state until h's R1 comes from that very address, so a spoofed
//     source gets one I1 and nothing more;
//   - the exchange is marked: an application's Connect to h before it
//     completes starts afresh on the normal path instead of waiting on an
//     address an attacker may have named (connect);
//   - and only if Config.Authorize admits h.
func (c *control) lostState(now time.Time, pkt wire.Packet, h wire.HIT, from netip.AddrPort) {
	s := c.s
	_, mac := pkt.Param(wire.ParamHIPMAC)
	_, sig := pkt.Param(wire.ParamHIPSignature)
	if c.draining || !mac || !sig || h.IsZero() || h == s.hit || !s.authorized(h) {
		return
	}
	if p := s.lookupPeer(h); p != nil {
		// A peer we know, at the addresses we know (Config.Peers,
		// AddPeer): a restarted node that has its clients configured dials
		// them there, as any write to them would, within the same limit.
		// Never at from, and never one reached through a relay or with an
		// exchange of its own under way.
		if p.assoc == nil && p.static.Load() && c.lostLim.Take(now, lostBurst, lostRate) {
			s.log.Info("peer may hold an association we lost: base exchange", "peer", h.String())
			c.connect(now, h, nil, false)
		}
		return
	}
	c.pruneLost(now)
	if len(c.lostProbes) >= maxLostProbes || !c.lostLim.Take(now, lostBurst, lostRate) {
		return
	}
	c.lostProbes[h] = lostProbe{from: from, until: now.Add(lostWait)}
	c.sendControl(c.ep.BuildI1(c.probeBuf[:0], h), from)
	s.log.Debug("peer may hold an association we lost: asking it", "peer", h.String(), "at", from)
}

// lostAsked reports whether an R1 from h at from answers the I1 of
// lostState, and forgets the note if so.
func (c *control) lostAsked(now time.Time, h wire.HIT, from netip.AddrPort) bool {
	lp, ok := c.lostProbes[h]
	if !ok || lp.from != from || now.After(lp.until) {
		return false
	}
	delete(c.lostProbes, h)
	return true
}

// lostAnswered takes h's R1, the answer to lostState's I1, into a base
// exchange, as an opportunistic dial takes its R1 (handleOppR1): a new
// association checks it (signature, HIT and host identity) before
// anything is kept, and sends the I2. So a blind spoofer's junk R1 is
// dropped like any bad R1. A genuine R1, which anyone can get from h by
// asking, may still have been replayed from an address h is not at: the
// exchange is marked (lostState), its I2 is sent once and never again
// (lostTimeout), and an application's Connect does not wait on it
// (connect).
func (c *control) lostAnswered(now time.Time, pk ctrlPacket, h wire.HIT, in *inbound) {
	s := c.s
	if c.draining || s.lookupPeer(h) != nil || !s.authorized(h) {
		return
	}
	a := c.ep.Initiate(now, h)
	a.Outgoing() // its I1: the one lostState sent stands for it
	c.handling = in
	_, err := c.ep.Handle(now, pk.b, a)
	c.handling = nil
	if err != nil {
		a.Events()
		c.countRejected(err, pk.from)
		return
	}
	p := s.learnPeer(h, pk.from)
	p.assoc = a
	p.resetCounters()
	p.mut().lostState = true
	s.ctr.bexStarted.Add(1)
	s.log.Info("peer holds an association we lost: base exchange", "peer", h.String(), "at", pk.from)
	c.processPacket(p, now, in)
}

// lostTimeout ends, at its first retransmission, an exchange lostAnswered
// started: its I2 went once to an address no check has vouched for, and
// goes there no more (no amplification of a replayed R1). The host, if it
// is there and still holds the association, checks its path again, and
// lostState asks it again. It reports whether it ended p's exchange.
func (c *control) lostTimeout(p *peer, now time.Time) bool {
	a := p.assoc
	if !p.x.lostState || a == nil || a.State() != handshake.I2Sent || a.Deadline().IsZero() || now.Before(a.Deadline()) {
		return false
	}
	c.discardPending(p) // counted, as when any exchange fails
	c.abandon(p)
	return true
}

// pruneLost forgets the notes of lostState whose R1 did not come in time.
func (c *control) pruneLost(now time.Time) {
	for h, lp := range c.lostProbes {
		if now.After(lp.until) {
			delete(c.lostProbes, h)
		}
	}
}

// lostProbe is lostState's note of an I1 it sent to ask whether a host
// still holds an association with us.
type lostProbe struct {
	from  netip.AddrPort
	until time.Time
}

// Bounds of lostState, all sources together.
const (
	lostBurst     = 4
	lostRate      = 1 // a second
	lostWait      = 3 * time.Second
	maxLostProbes = 16
)

// refuse turns away an authenticated Initiator: its association is
// discarded with everything it would send (the R2) and its SAs never reach
// the data path; a signed NOTIFY BLOCKED_BY_POLICY goes to the I2's source.
// If the I2 replaced an association in place, that one is gone too.
func (c *control) refuse(p *peer, n, old *handshake.Association, sender wire.HIT, in *inbound, i2 []byte) {
	s := c.s
	n.Outgoing()
	n.Events()
	delete(c.spiRes, n.Info().InSPI)
	if old != nil {
		c.removeSAs(p)
		c.discardPending(p)
		c.wakeWaiters(p, fmt.Errorf("%w: %v", ErrNotAuthorized, sender))
		c.abandon(p)
		c.flushWakes()
	}
	s.ctr.unauthorized.Add(1)
	s.log.Info("unauthorized", "peer", sender.String(), "role", "initiator", "from", in.from)
	if msg, err := c.ep.RefuseI2(i2); err == nil {
		c.reply(msg, in)
	} else {
		s.log.Error("notify failed", "err", err)
	}
}

// countRejected counts a control packet the Endpoint refused.
func (c *control) countRejected(err error, from netip.AddrPort) {
	s := c.s
	switch {
	case errors.Is(err, handshake.ErrMalformed):
		s.drop(&s.ctr.malformed, "malformed control", from, err)
	case errors.Is(err, handshake.ErrReplay):
		s.drop(&s.ctr.controlReplay, "control replay", from, err)
	case errors.Is(err, handshake.ErrNotForUs):
		s.drop(&s.ctr.notForUs, "not for us", from, err)
	default:
		s.drop(&s.ctr.controlRejected, "control rejected", from, err)
	}
}

// isEchoAnswer reports whether pkt answers an address check: it carries
// ECHO_RESPONSE_SIGNED.
func isEchoAnswer(pkt wire.Packet) bool {
	_, ok := pkt.Param(wire.ParamEchoResponseSigned)
	return ok
}

// isProbe reports whether pkt is an address check (RFC 8046 §5.4): an
// UPDATE with ECHO_REQUEST_SIGNED.
func isProbe(pkt wire.Packet) bool {
	_, ok := pkt.Param(wire.ParamEchoRequestSigned)
	return ok && pkt.Type() == wire.UPDATE
}
