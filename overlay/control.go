package overlay

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// The control plane: one goroutine owns the handshake.Endpoint and every
// handshake.Association (neither is safe for concurrent use). It receives
// control packets (copied by the read loop), Connect commands and pokes from
// the data path, feeds the state machines, sends what they output, acts on
// their events (SAs in and out of the data path's tables, waiters woken,
// memdb records written) and runs their timers (timers.go).

// ctrlPacket is a HIP control packet (without the zero marker) and its
// source. A packet with barrier set is a test hook: the control goroutine
// closes it when everything queued before it was handled.
type ctrlPacket struct {
	b       []byte
	from    netip.AddrPort
	barrier chan struct{}
}

// command asks for an association with hit; reply gets nil once it is
// ESTABLISHED or R2-SENT, or the error.
// With reg set it is a Register instead (registration.go).
type command struct {
	hit       wire.HIT
	reply     chan error
	reg       *regCommand
	opp       *oppCommand // ConnectAddr (opportunistic.go)
	drop      bool        // dropAssociation
	relayBack bool        // relayBack: we registered with relay hit
}

// control is the control goroutine's state; nothing else touches it.
type control struct {
	s      *Stack
	ep     *handshake.Endpoint
	timers timerHeap
	timer  *time.Timer
	armed  time.Time
	due    []*peer
	spare  []*peer
	wakes  []wake

	// spiRes holds the inbound SPIs handed to the state machines and not
	// yet installed, so that allocation never repeats one. Entries are
	// pruned at each R1 rotation once they are spiResLife old.
	spiRes map[uint32]time.Time

	draining   bool // Close: CLOSE sent, waiting for CLOSE_ACKs
	drainUntil time.Time
	// relaysOpen: Close has not yet closed the associations with our
	// relays, which carry the CLOSEs of relayed peers; they close when
	// those are done, or at relaysCloseBy.
	relaysOpen    bool
	relaysCloseBy time.Time

	// peerFinalizing: the packet being handled is an UPDATE with a SEQ, so
	// a rekey it completes on our side is not yet complete on the peer's
	// (RFC 7402 §6.10).
	peerFinalizing bool
	// switchGrace is how long a rekeyed outbound SA waits for proof that
	// the peer installed its new inbound SA: the first retransmission
	// timeout (an UPDATE round trip should not exceed it), at least
	// minSwitchGrace. Waiting costs nothing but a little more use of the
	// old keys, which stay valid; switching early loses datagrams.
	switchGrace time.Duration

	reg regState // registration.go

	via via // path.go: the relay the packet being handled came through

	// opp are opportunistic base exchanges (ConnectAddr) by address, until
	// their R1 names the Responder.
	opp map[netip.AddrPort]*peer

	r1lim *r1Limiter // ratelimit.go
}

const minSwitchGrace = 500 * time.Millisecond

const spiResLife = 10 * time.Minute

func (c *control) run() {
	s := c.s
	defer close(s.ctrlDone)
	c.timer = time.NewTimer(time.Hour)
	defer c.timer.Stop()
	tick := time.NewTicker(s.pathCheckEvery())
	defer tick.Stop()
	s.clock.Store(time.Now().UnixNano())
	closing := s.closing
	for {
		c.arm()
		select {
		case pk := <-s.ctrlIn:
			if pk.barrier != nil {
				close(pk.barrier)
				continue
			}
			c.handlePacket(time.Now(), pk)
		case cmd := <-s.cmds:
			switch {
			case cmd.reg != nil:
				c.register(time.Now(), cmd.hit, cmd.reg)
			case cmd.opp != nil:
				c.connectOpp(time.Now(), cmd.opp)
			case cmd.drop:
				c.dropAssoc(cmd.hit)
			case cmd.relayBack:
				c.rekeyVia(time.Now(), cmd.hit)
			default:
				c.connect(time.Now(), cmd.hit, cmd.reply)
			}
		case now := <-tick.C:
			s.clock.Store(now.UnixNano())
			c.tick(now)
		case <-s.wake:
			c.handlePokes(time.Now())
		case r := <-s.solved:
			c.puzzleSolved(time.Now(), r)
		case <-c.timer.C:
			c.handleTimers(time.Now())
		case <-closing:
			closing = nil
			c.beginShutdown(time.Now())
		}
		if c.relaysOpen {
			c.closeRelays(time.Now())
		}
		if c.draining && (c.closingCount() == 0 || !time.Now().Before(c.drainUntil)) {
			c.finish()
			return
		}
	}
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
	if c.relayPacket(now, pk, pkt) {
		return
	}
	if !c.openRelayed(&pk, &pkt) {
		return
	}
	defer func() { c.via = via{} }()
	sender, typ := pkt.SenderHIT(), pkt.Type()
	if c.draining && (typ == wire.I1 || typ == wire.I2) {
		s.drop(&s.ctr.controlRejected, "closing", pk.from, nil)
		return
	}
	if typ == wire.I1 && c.via.relay != nil && !c.r1lim.allow(c.via.from, now) {
		// A relayed I1, limited by where the relay saw it come from (a
		// direct one was limited by the read loop, receive.go).
		s.drop(&s.ctr.rateLimited, "r1 rate limit", pk.from, nil)
		return
	}
	p := s.lookupPeer(sender)
	if p == nil && typ == wire.R1 {
		p = c.oppPeer(sender, pk.from)
	}
	var a *handshake.Association
	var before handshake.State
	if p != nil && p.assoc != nil {
		a = p.assoc
		before = a.State()
	}
	_, hasSeq := pkt.Param(wire.ParamSeq)
	c.peerFinalizing = typ == wire.UPDATE && hasSeq
	c.noteRegPacket(pkt)
	defer func() { c.peerFinalizing, c.reg.fromRequest = false, false }()
	wasRekeying := a != nil && a.Rekeying()
	res, err := c.ep.Handle(now, pk.b, a)
	if err == nil && c.peerFinalizing && wasRekeying && a.Rekeying() {
		// The peer's own rekey UPDATE crossed ours: it may finish at the
		// same moment we do, so neither side may assume the other ready.
		p.crossedRekey = true
	}
	if res.Reply != nil {
		c.reply(res.Reply, pk.from) // R1, or NOTIFY for a rejected I2
	}
	if err != nil {
		c.countRejected(err, pk.from)
		if a != nil {
			c.process(p, now)
		}
		return
	}
	n := res.Assoc
	if n == nil {
		return
	}
	if typ == wire.I2 {
		// A valid I2: the Initiator's identity is authenticated and n is a
		// new association in R2-SENT (or a replaced in place).
		if !s.authorized(sender) {
			c.refuse(p, n, a, sender, pk.from, pk.b)
			return
		}
		if p == nil {
			p = s.learnPeer(sender, pk.from)
		} else if _, ok := p.locator(); !ok {
			p.setLocator(pk.from)
		}
		fresh := p.assoc == nil || before != handshake.R2Sent // not a retransmitted I2
		if p.assoc == nil {
			p.assoc = n
			p.resetCounters()
		}
		if fresh {
			s.ctr.bexStarted.Add(1)
			// The path is chosen by the base exchange only: a later relayed
			// packet, which could be a replay of a genuine one, never moves
			// an association onto a relay or changes where RELAY_TO points.
			c.tookRelayed(p)
		}
		c.process(p, now)
		return
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
	c.process(p, now)
}

// refuse turns away an authenticated Initiator: its association is
// discarded with everything it would send (the R2) and its SAs never reach
// the data path; a signed NOTIFY BLOCKED_BY_POLICY goes to the I2's source.
// If the I2 replaced an association in place, that one is gone too.
func (c *control) refuse(p *peer, n, old *handshake.Association, sender wire.HIT, from netip.AddrPort, i2 []byte) {
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
	s.log.Info("unauthorized", "peer", sender.String(), "role", "initiator", "from", from)
	if msg, err := c.ep.RefuseI2(i2); err == nil {
		c.reply(msg, from)
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

// process drains an association after anything happened to it: events
// first, then the record and the timer, then the packets — so that the SAs
// and the record are in place before the packets that let the peer use
// them leave — and last the answers to waiting Connects.
func (c *control) process(p *peer, now time.Time) {
	a := p.assoc
	if a == nil {
		return
	}
	for _, ev := range a.Events() {
		c.event(p, a, ev, now)
	}
	out := a.Outgoing()
	c.sync(p)
	for _, pkt := range out {
		c.sendPeer(p, pkt)
	}
	c.flushWakes()
}

func (c *control) event(p *peer, a *handshake.Association, ev handshake.Event, now time.Time) {
	s := c.s
	switch ev.Kind {
	case handshake.EventInboundSA:
		c.installInbound(p, ev.Inbound, false)
	case handshake.EventEstablished:
		c.installInbound(p, ev.Inbound, false)
		if o := c.newOutbound(p, ev.Outbound); o != nil {
			c.s.installOutbound(p, o)
		}
		p.nextOut, p.switchAt = nil, time.Time{}
		p.rekeyAsked.Store(false)
		if a.State() == handshake.R2Sent && p.in != nil {
			p.in.notify.Store(true) // the Initiator's first ESP ends R2-SENT
		}
		info := a.Info()
		loc, _ := p.locator()
		s.log.Info("bex established", "peer", p.hit.String(), "initiator", info.Initiator, "locator", loc,
			"esp", info.ESPSuite.String(), "in_spi", info.InSPI, "out_spi", info.OutSPI)
		s.ctr.bexCompleted.Add(1)
		c.wakeWaiters(p, nil)
		c.regEstablished(p, a)
		c.startICE(p, a)
	case handshake.EventRekeyInbound:
		// A rekey the peer started: our new inbound SA goes in beside the
		// current one now, before the peer (who finishes first) sends on
		// it; EventRekeyed then finds it installed.
		c.installInbound(p, ev.Inbound, true)
	case handshake.EventRekeyed:
		c.installInbound(p, ev.Inbound, true)
		o := c.newOutbound(p, ev.Outbound)
		if o == nil {
			break
		}
		crossed := p.crossedRekey
		p.crossedRekey = false
		if (c.peerFinalizing || crossed) && p.out.Load() != nil {
			// RFC 7402 §6.10: we finished first (or at the same time as the
			// peer); the peer installs its new inbound SA when our ACK
			// arrives. Keep sending on the old SA until the peer's data
			// shows up on our new inbound SA, or the grace period passes.
			// (An ACK-only UPDATE, by contrast, comes from a peer that has
			// finished: we switch at once.)
			p.nextOut, p.switchAt = o, now.Add(c.switchGrace)
			if p.in != nil {
				p.in.notify.Store(true)
			}
		} else {
			c.switchOut(p, o)
		}
		s.log.Info("rekeyed", "peer", p.hit.String(), "in_spi", ev.Inbound.SPI, "out_spi", ev.Outbound.SPI)
	case handshake.EventFailed:
		s.ctr.countFailure(ev.Err)
		s.relayEnded(p.hit)
		c.clearPath(p) // a new base exchange chooses its path afresh
		c.removeSAs(p)
		c.discardPending(p)
		c.regEnded(p)
		s.log.Warn("bex failed", "peer", p.hit.String(), "err", ev.Err)
		c.wakeWaiters(p, bexError(p.hit, ev.Err))
	case handshake.EventClosed:
		s.relayEnded(p.hit)
		c.clearPath(p)
		c.removeSAs(p)
		c.discardPending(p)
		c.regEnded(p)
		s.log.Info("peer closed", "peer", p.hit.String(), "reason", ev.Err)
		c.wakeWaiters(p, fmt.Errorf("%w: association with %v closed", ErrClosed, p.hit))
	case handshake.EventNotify:
		s.log.Info("notify", "peer", p.hit.String(), "err", ev.Err)
	case handshake.EventPuzzle:
		c.solve(p, ev.Puzzle) // puzzle.go
	case handshake.EventRegistration:
		c.regEvent(p, ev.Registration, now)
	}
}

// bexError maps a failed base exchange to the stack's errors.
func bexError(h wire.HIT, err error) error {
	if errors.Is(err, handshake.ErrTimeout) {
		return fmt.Errorf("%w: %v did not answer", ErrHandshakeTimeout, h)
	}
	var ne *handshake.NotifyError
	if errors.As(err, &ne) && ne.Type == wire.NotifyBlockedByPolicy {
		// The peer authenticated us and refused: its Authorize said no.
		return fmt.Errorf("%w: %v refused us (BLOCKED_BY_POLICY): %w", ErrNotAuthorized, h, ErrHandshakeFailed)
	}
	return fmt.Errorf("%w with %v: %w", ErrHandshakeFailed, h, err)
}

// installInbound puts an inbound SA in the data path's table. A rekey keeps
// the previous SA for packets still in flight (until the next rekey); a new
// base exchange replaces both.
func (c *control) installInbound(p *peer, cfg esp.Config, rekey bool) {
	if p.in != nil && p.in.sa.SPI() == cfg.SPI {
		return // the Initiator's EventEstablished repeats EventInboundSA's SA
	}
	sa, err := esp.NewInbound(cfg)
	if err != nil {
		c.s.log.Error("inbound sa", "peer", p.hit.String(), "err", err)
		return
	}
	e := &inboundSA{sa: sa, p: p}
	if rekey {
		if p.prev != nil {
			c.s.spis.remove(p.prev.sa.SPI(), p.prev)
		}
		p.prev = p.in
	} else {
		c.removeInbound(p)
	}
	p.in = e
	c.s.spis.set(cfg.SPI, e)
	delete(c.spiRes, cfg.SPI)
	c.s.keylog(p, cfg)
}

func (c *control) newOutbound(p *peer, cfg esp.Config) *esp.Outbound {
	if c.s.rekeyAfter != 0 {
		cfg.RekeyAfter = c.s.rekeyAfter
	}
	o, err := esp.NewOutbound(cfg)
	if err != nil {
		c.s.log.Error("outbound sa", "peer", p.hit.String(), "err", err)
		return nil
	}
	c.s.keylog(p, cfg)
	return o
}

// trimSAs frees the cipher state of SAs no packet used since the last
// call (every R1 rotation): an idle association then costs its keys, not
// its AES-GCM tables (esp.Inbound.Trim). The next packet rebuilds them.
func (c *control) trimSAs() {
	for _, p := range c.s.peerList() {
		for _, e := range []*inboundSA{p.in, p.prev} {
			if e != nil {
				e.sa.Trim()
			}
		}
		if o := p.out.Load(); o != nil {
			o.Trim()
		}
	}
}

// switchOut starts sending on a rekeyed outbound SA.
func (c *control) switchOut(p *peer, o *esp.Outbound) {
	p.out.Store(o)
	p.nextOut, p.switchAt = nil, time.Time{}
	if p.in != nil {
		p.in.notify.Store(false)
	}
	p.rekeyAsked.Store(false)
}

func (c *control) removeInbound(p *peer) {
	for _, e := range []*inboundSA{p.in, p.prev} {
		if e != nil {
			c.s.spis.remove(e.sa.SPI(), e)
		}
	}
	p.in, p.prev = nil, nil
}

// removeSAs takes p out of the data path: no inbound SA, no outbound SA
// (writers queue and restart the base exchange).
func (c *control) removeSAs(p *peer) {
	c.removeInbound(p)
	p.out.Store(nil)
	p.nextOut, p.switchAt = nil, time.Time{}
}

func (c *control) discardPending(p *peer) { c.s.discardPending(p) }

// sync writes p's memdb record when something it holds changed, keeps the
// timer heap in step, and forgets an association that went back to
// UNASSOCIATED.
func (c *control) sync(p *peer) {
	a := p.assoc
	if a == nil {
		return
	}
	if a.State() == handshake.Unassociated {
		c.abandon(p)
		return
	}
	info := a.Info()
	if p.rec == nil || p.rec.Info != info || p.rec.Identity != a.PeerIdentity() || p.rec.Reg != p.reg {
		r := &assocRecord{HIT: p.hit, State: info.State.String(), Info: info, Identity: a.PeerIdentity(), Reg: p.reg, peer: p}
		if err := putRecord(c.s.db, r); err != nil {
			c.s.log.Error("store", "peer", p.hit.String(), "err", err)
		} else {
			p.rec = r
		}
	}
	d := a.Deadline()
	if !p.switchAt.IsZero() && (d.IsZero() || p.switchAt.Before(d)) {
		d = p.switchAt
	}
	c.timers.set(p, d)
}

// abandon forgets p's association: timer, record, SAs; a peer learnt from
// its I2 (no AddPeer locator) is forgotten with it.
func (c *control) abandon(p *peer) {
	s := c.s
	c.timers.remove(p)
	c.removeSAs(p)
	c.regEnded(p)
	c.clearPath(p)
	if p.hit.IsZero() {
		for k, v := range c.opp {
			if v == p {
				delete(c.opp, k) // an opportunistic exchange that failed
			}
		}
	}
	p.assoc = nil
	if p.rec != nil {
		if err := deleteRecord(s.db, p.hit); err != nil {
			s.log.Error("store", "peer", p.hit.String(), "err", err)
		}
		p.rec = nil
	}
	if len(p.waiters) == 0 {
		s.forgetPeer(p)
	}
}

// wakeWaiters answers p's waiting Connects with err — at the next
// flushWakes, after the record is written, so that a caller returning from
// Connect finds Peers up to date. An error fails a waiting Register too.
func (c *control) wakeWaiters(p *peer, err error) {
	for _, w := range p.waiters {
		c.wakes = append(c.wakes, wake{w, err})
	}
	p.waiters = nil
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

// connect serves Connect (reply set) and the data path's pokeConnect
// (reply nil).
func (c *control) connect(now time.Time, h wire.HIT, reply chan error) {
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
	if a := p.assoc; a != nil {
		switch a.State() {
		case handshake.Established, handshake.R2Sent:
			answer(nil)
			return
		case handshake.I1Sent, handshake.I2Sent:
			if reply != nil {
				p.waiters = append(p.waiters, reply)
			}
			return
		}
	}
	if _, ok := p.locator(); !ok && !c.dialRelayed(p) {
		answer(fmt.Errorf("%w: %v", ErrUnknownPeer, h))
		return
	}
	if reply != nil {
		p.waiters = append(p.waiters, reply)
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
			if p.nextOut != nil {
				c.switchOut(p, p.nextOut) // the peer sends on its new SA: it has ours
			}
			c.process(p, now)
		}
		if k&pokeRekey != 0 {
			c.rekey(p, now)
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
	c.connect(now, p.hit, nil)
	if p.assoc == nil && !c.s.relayPending() {
		c.discardPending(p) // unknown or refused
	}
}

// rekey starts an ESP rekeying UPDATE (RFC 7402 §6.8): from KEYMAT, or with
// a new Diffie-Hellman exchange when KEYMAT is used up.
func (c *control) rekey(p *peer, now time.Time) {
	a := p.assoc
	if a == nil || (a.State() != handshake.Established && a.State() != handshake.R2Sent) || a.Rekeying() {
		return
	}
	err := a.Rekey(now, false)
	if err != nil && !errors.Is(err, handshake.ErrBusy) {
		err = a.Rekey(now, true)
	}
	if err != nil {
		c.s.log.Warn("rekey failed", "peer", p.hit.String(), "err", err)
		if !errors.Is(err, handshake.ErrBusy) {
			p.rekeyAsked.Store(false)
		}
		return
	}
	c.s.log.Debug("rekey started", "peer", p.hit.String())
	c.process(p, now)
}

// sendControl sends a HIP packet over UDP behind the zero marker.
func (c *control) sendControl(pkt []byte, to netip.AddrPort) {
	s := c.s
	bp := getBuf(wire.NonESPMarkerLen + len(pkt))
	b := wire.AppendUDPControl((*bp)[:0], pkt)
	err := s.sock.writeTo(b, to)
	n := len(b)
	putBuf(bp)
	if err != nil {
		s.ctr.sendErrors.Add(1)
		s.log.Debug("send failed", "to", to, "err", err)
		return
	}
	s.ctr.packetsOut.Add(1)
	s.ctr.bytesOut.Add(uint64(n))
	s.ctr.controlOut.Add(1)
}

// allocSPI is the Endpoint's SPI allocator: random, above the IANA-reserved
// 1-255 (RFC 4303 §2.1), and unique among installed and handed-out SPIs.
func (c *control) allocSPI() uint32 {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		spi := binary.BigEndian.Uint32(b[:])
		if spi <= 255 || c.s.spis.lookup(spi) != nil {
			continue
		}
		if _, ok := c.spiRes[spi]; ok {
			continue
		}
		c.spiRes[spi] = time.Now()
		return spi
	}
}

func (c *control) pruneSPIs(now time.Time) {
	for spi, t := range c.spiRes {
		if now.Sub(t) > spiResLife {
			delete(c.spiRes, spi)
		}
	}
}

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
		return nil, fmt.Errorf("%w: %v", ErrUnknownPeer, h)
	}
	return p, nil
}
