package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/ratelimit"
	"hipnet.dev/locator"
)

// The control plane: one goroutine owns the handshake.Endpoint and every
// handshake.Association (neither is safe for concurrent use). It receives
// control packets (copied by the read loop), Connect commands and pokes from
// the data path, feeds the state machines, sends what they output, acts on
// their events (SAs in and out of the data path's tables, waiters woken,
// association records written) and runs their timers (timers.go).

// ctrlPacket is a HIP control packet (without the zero marker) and its
// source. A packet with barrier set is a test hook: the control goroutine
// closes it when everything queued before it was handled.
type ctrlPacket struct {
	b       []byte
	from    netip.AddrPort
	barrier chan struct{}
}

// command is a request to the control goroutine from another goroutine:
// one type per request, each run on the control goroutine.
type command interface {
	run(c *control, now time.Time)
}

// connectCmd asks for an association with hit; reply gets nil once it is
// ESTABLISHED or R2-SENT (or, keyed, once its keys exist: ConnectKeyed),
// or the error (Connect).
type connectCmd struct {
	hit   wire.HIT
	reply chan error
	keyed bool
}

func (m connectCmd) run(c *control, now time.Time) { c.connect(now, m.hit, m.reply, m.keyed) }

// registerCmd is a Register with registrar hit (registration.go).
type registerCmd struct {
	hit wire.HIT
	reg *regCommand
}

func (m registerCmd) run(c *control, now time.Time) { c.register(now, m.hit, m.reg) }

// connectAddrCmd is a ConnectAddr (opportunistic.go).
type connectAddrCmd struct{ opp *oppCommand }

func (m connectAddrCmd) run(c *control, now time.Time) { c.connectOpp(now, m.opp) }

// dropCmd drops the association with hit (dropAssociation).
type dropCmd struct{ hit wire.HIT }

func (m dropCmd) run(c *control, _ time.Time) { c.dropAssoc(m.hit) }

// relayBackCmd: we registered with relay hit (again) (relayclient.go).
type relayBackCmd struct{ hit wire.HIT }

func (m relayBackCmd) run(c *control, now time.Time) { c.relayBack(now, m.hit) }

// relayDownCmd: our registration with relay hit is lost (relayclient.go).
type relayDownCmd struct{ hit wire.HIT }

func (m relayDownCmd) run(c *control, now time.Time) { c.relayDown(now, m.hit) }

// control is the control goroutine's state; nothing else touches it.
type control struct {
	s *Stack
	// rvs are the peers we hold a RENDEZVOUS registration with
	// (rendezvous.go): the few a FROM-carrying I1 may come from.
	rvs    map[*peer]struct{}
	ep     *handshake.Endpoint
	timers timerHeap
	timer  *time.Timer
	armed  time.Time
	due    []*timerEntry
	spare  []*peer
	wakes  []wake

	// spiRes holds the inbound SPIs handed to the state machines and not
	// yet installed, so that allocation never repeats one. Entries are
	// pruned at each R1 rotation once they are spiResLife old.
	spiRes map[uint32]time.Time

	// nextTick is when tick (timers.go) runs next, every tickEvery, from
	// the timer below like every other deadline.
	nextTick time.Time

	draining   bool // Close: CLOSE sent, waiting for CLOSE_ACKs
	drainUntil time.Time
	// relaysOpen: Close has not yet closed the associations with our
	// relays, which carry the CLOSEs of relayed peers; they close when
	// those are done, or at relaysCloseBy.
	relaysOpen    bool
	relaysCloseBy time.Time

	// switchGrace is how long a rekeyed outbound SA waits for proof that
	// the peer installed its new inbound SA: the first retransmission
	// timeout (an UPDATE round trip should not exceed it), at least
	// minSwitchGrace. Waiting costs nothing but a little more use of the
	// old keys, which stay valid; switching early loses datagrams.
	switchGrace time.Duration
	// retired are inbound SAs two rekeys old, kept for packets still on
	// their way (sas.go retire); prevs, those one rekey old, until they
	// are retired (sas.go prevLife).
	retired []retiredSA
	prevs   []prevSA

	reg regState // registration.go

	// handling is the context of the control packet the Endpoint is
	// handling, for its Candidates callback (inbound.go); nil otherwise.
	handling *inbound

	// opp are opportunistic base exchanges (ConnectAddr) by address, until
	// their R1 names the Responder.
	opp map[netip.AddrPort]*peer

	r1lim *r1Limiter // ratelimit.go
	// lostLim limits the I1s that UPDATEs from unknown hosts draw, all
	// sources together, and lostProbes notes them (inbound.go lostState).
	lostLim    ratelimit.Bucket
	lostProbes map[wire.HIT]lostProbe

	// Locators (locators.go): the associations whose data path counts
	// are read every pathSyncEvery, and when next; buffers reused.
	pathBusy     map[*peer]struct{}
	nextPathSync time.Time
	decisions    []locator.Decision
	locBuf       []locator.Locator
	probeBuf     []byte
	// announced is the LOCATOR_SET we last announced (mobility.go).
	announced []wire.Locator
	// dialling counts the dials under way through configured locators
	// (dial.go).
	dialling int
	// nextIdle is when idle associations are next looked for (idle.go).
	nextIdle time.Time
}

const minSwitchGrace = 500 * time.Millisecond

const spiResLife = 10 * time.Minute

func (c *control) run() {
	s := c.s
	defer close(s.ctrlDone)
	c.timer = time.NewTimer(time.Hour)
	defer c.timer.Stop()
	start := time.Now()
	s.clock.Store(start.UnixNano())
	c.nextTick = start.Add(s.tickEvery())
	if s.idleTimeout() > 0 {
		c.nextIdle = start.Add(s.idleCheckEvery())
	}
	closing := s.closing
	var addrs <-chan struct{}
	if w := s.cfg.WatchAddrs; w != nil {
		addrs = w.Changes()
	}
	for {
		c.arm()
		c.drainPrio()
		select {
		case pk := <-s.ctrlPrio:
			c.handlePacket(time.Now(), pk)
		case pk := <-s.ctrlIn:
			if pk.barrier != nil {
				// Everything queued before the barrier, in either queue,
				// is handled first.
				c.drainPrio()
				close(pk.barrier)
				continue
			}
			c.handlePacket(time.Now(), pk)
		case cmd := <-s.cmds:
			cmd.run(c, time.Now())
		case <-s.wake:
			c.takeAfters(time.Now()) // timers.go
			c.handlePokes(time.Now())
		case r := <-s.solved:
			c.puzzleSolved(time.Now(), r)
		case <-c.timer.C:
			c.handleTimers(time.Now())
		case <-addrs:
			c.addrsChanged(time.Now()) // mobility.go
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

// drainPrio handles the packets waiting in the priority queue (receive.go):
// those there now, no more, so that a flood into it cannot keep the loop
// from its timers and its other inputs.
func (c *control) drainPrio() {
	for n := len(c.s.ctrlPrio); n > 0; n-- {
		c.handlePacket(time.Now(), <-c.s.ctrlPrio)
	}
}

// process drains an association after anything happened to it: events
// first, then the record and the timer, then the packets — so that the SAs
// and the record are in place before the packets that let the peer use
// them leave — and last the answers to waiting Connects.
func (c *control) process(p *peer, now time.Time) { c.processPacket(p, now, nil) }

// processPacket is process after a control packet (in) was handled: the
// events it caused may depend on what it was.
func (c *control) processPacket(p *peer, now time.Time, in *inbound) {
	a := p.assoc
	if a == nil {
		return
	}
	for _, ev := range a.Events() {
		c.event(p, a, ev, now, in)
	}
	if pz := p.puzzle.Load(); pz != nil && a.Solving() != pz {
		c.dropPuzzle(p) // restarted, closed or failed: its solver stops
	}
	out := a.Outgoing()
	c.sync(p)
	if p.x.rekeyOwed && c.canRekey(p) {
		c.s.poke(p, pokeRekey) // sas.go rekey: one that waited for an UPDATE
	}
	for _, pkt := range out {
		if in != nil && in.answerAt.IsValid() {
			c.sendControl(pkt, in.answerAt) // inbound.go: a registration from a new mapping
			continue
		}
		if in != nil && in.back && !p.relayed.Load() {
			// The peer sends through the relay while we use the direct
			// path: its checks failed that path (RFC 5770 §4.10 has it
			// resend through the relay), and it may not hear us there.
			// What its packet draws (the ACK of its rekey) goes back the
			// way it came, or the peer gives up waiting before our own
			// checks fail the path. One copy only, as sendPeer says.
			c.sendRelayed(p, pkt) // path.go
		} else {
			c.sendPeer(p, pkt)
		}
	}
	c.retryRegs(p, now)
	c.flushWakes()
}

func (c *control) event(p *peer, a *handshake.Association, ev handshake.Event, now time.Time, in *inbound) {
	s := c.s
	switch ev.Kind {
	case handshake.EventInboundSA:
		c.installInbound(p, ev.Inbound, false, now)
		c.keyed(p, a) // secret.go: the I2 is about to leave
	case handshake.EventEstablished:
		c.installInbound(p, ev.Inbound, false, now)
		// The record says ESTABLISHED before the queue leaves with the
		// outbound SA: what answers a queued packet (a QUIC handshake
		// begun at ConnectKeyed) must find the association live.
		c.record(p, a)
		if o := c.newOutbound(p, ev.Outbound); o != nil {
			c.s.installOutbound(p, o)
			p.outboundSince(now)
		}
		p.clearNextOut()
		p.rekeyAsked.Store(false)
		c.exportSecret(p, a) // secret.go
		if a.State() == handshake.R2Sent && p.in != nil {
			p.in.notify.Store(true) // the Initiator's first ESP ends R2-SENT
		}
		info := a.Info()
		loc, _ := p.locator()
		s.log.Info("bex established", "peer", p.hit.String(), "initiator", info.Initiator, "locator", loc,
			"esp", info.ESPSuite.String(), "in_spi", info.InSPI, "out_spi", info.OutSPI)
		s.ctr.bexCompleted.Add(1)
		p.lastHandshake.Store(now.UnixNano())
		c.endDial(p)
		c.pathEstablished(p, now)
		c.announceNew(p, now)
		c.wakeWaiters(p, nil)
		c.regEstablished(p, a)
		c.startICE(p, a)
	case handshake.EventRekeyInbound:
		// A rekey the peer started: our new inbound SA goes in beside the
		// current one now, before the peer (who finishes first) sends on
		// it; EventRekeyed then finds it installed.
		c.peerFinishedRekey(p)
		c.installInbound(p, ev.Inbound, true, now)
	case handshake.EventRekeyed:
		c.peerFinishedRekey(p)
		c.installInbound(p, ev.Inbound, true, now)
		o := c.newOutbound(p, ev.Outbound)
		if o == nil {
			break
		}
		crossed := p.x.crossedRekey
		if crossed {
			p.x.crossedRekey = false // p.x is p's own: it was set
		}
		if (in != nil && in.finalizing || crossed) && p.out.Load() != nil {
			// RFC 7402 §6.10: we finished first (or at the same time as the
			// peer); the peer installs its new inbound SA when our ACK
			// arrives. Keep sending on the old SA until the peer's data
			// shows up on our new inbound SA, or the grace period passes.
			// (An ACK-only UPDATE, by contrast, comes from a peer that has
			// finished: we switch at once.)
			x := p.mut()
			x.nextOut, x.switchAt = o, now.Add(c.switchGrace)
			if p.in != nil {
				p.in.notify.Store(true)
			}
		} else {
			c.switchOut(p, o)
		}
		p.lastHandshake.Store(now.UnixNano())
		s.log.Info("rekeyed", "peer", p.hit.String(), "in_spi", ev.Inbound.SPI, "out_spi", ev.Outbound.SPI)
	case handshake.EventFailed:
		s.ctr.countFailure(ev.Err)
		s.relayEnded(p.hit)
		c.clearPath(p) // a new base exchange chooses its path afresh
		c.resetPath(p)
		c.removeSAs(p)
		c.discardPending(p)
		c.assocEnded(p)
		s.log.Warn("bex failed", "peer", p.hit.String(), "err", ev.Err)
		c.wakeWaiters(p, c.dialError(p, ev.Err))
		c.endDial(p)
	case handshake.EventClosed:
		s.relayEnded(p.hit)
		c.clearPath(p)
		c.resetPath(p)
		// The record first (CLOSING, or CLOSED after the peer's CLOSE),
		// then the SAs: a writer that finds no SA then finds the record
		// that says why (segment.go, SetSegmentReopens), rather than an
		// ESTABLISHED one a moment behind.
		c.record(p, a)
		c.removeSAs(p)
		c.discardPending(p)
		c.assocEnded(p)
		s.log.Info("peer closed", "peer", p.hit.String(), "reason", ev.Err)
		c.wakeWaiters(p, fmt.Errorf("%w: association with %v closed", ErrClosed, p.hit))
	case handshake.EventNotify:
		s.log.Info("notify", "peer", p.hit.String(), "err", ev.Err)
	case handshake.EventPuzzle:
		c.solve(p, ev.Puzzle) // puzzle.go
	case handshake.EventRegistration:
		c.regEvent(p, ev.Registration, now, in != nil && in.regRequest)
	case handshake.EventLocatorSet, handshake.EventEchoRequest, handshake.EventEchoResponse:
		c.pathEvent(p, ev, now, in) // locators.go
	}
}

// refusedError: the peer authenticated us and refused (NOTIFY
// BLOCKED_BY_POLICY). It is ErrNotAuthorized and ErrHandshakeFailed both,
// said once.
type refusedError struct{ peer wire.HIT }

func (e refusedError) Error() string {
	return ErrNotAuthorized.Error() + ": " + e.peer.String() + " refused us (BLOCKED_BY_POLICY)"
}

func (e refusedError) Is(target error) bool {
	return target == ErrNotAuthorized || target == ErrHandshakeFailed
}

// bexError maps a failed base exchange to the stack's errors.
func bexError(h wire.HIT, err error) error {
	if errors.Is(err, handshake.ErrTimeout) {
		return fmt.Errorf("%w: %v did not answer", ErrHandshakeTimeout, h)
	}
	var ne *handshake.NotifyError
	if errors.As(err, &ne) && ne.Type == wire.NotifyBlockedByPolicy {
		// The peer authenticated us and refused: its Authorize said no.
		return refusedError{h}
	}
	return fmt.Errorf("%w with %v: %w", ErrHandshakeFailed, h, err)
}

func (c *control) discardPending(p *peer) { c.s.discardPending(p) }

// sync writes p's association record when something it holds changed, keeps the
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
	if p.x.lostState && a.State() != handshake.I1Sent && a.State() != handshake.I2Sent {
		p.x.lostState = false // the exchange lostAnswered started is over
	}
	c.record(p, a)
	d := a.Deadline()
	if !p.x.switchAt.IsZero() && (d.IsZero() || p.x.switchAt.Before(d)) {
		d = p.x.switchAt
	}
	if set := p.set(); set != nil {
		d = earliest(d, set.Deadline())
	}
	if p.x.dial != nil {
		d = earliest(d, p.x.dial.next)
	}
	c.timers.set(p, d)
}

// record writes a's record if it changed.
func (c *control) record(p *peer, a *handshake.Association) {
	info := a.Info()
	if p.rec == nil || p.rec.Info != info || p.rec.Identity != a.PeerIdentity() {
		r := &assocRecord{HIT: p.hit, Info: info, Identity: a.PeerIdentity(), peer: p}
		c.s.db.put(r)
		p.rec = r
	}
}

// abandon forgets p's association: timer, record, SAs; a peer learnt from
// its I2 (no AddPeer locator) is forgotten with it.
func (c *control) abandon(p *peer) {
	s := c.s
	c.timers.remove(p)
	c.endDial(p)
	c.resetPath(p)
	c.removeSAs(p)
	c.assocEnded(p)
	c.clearPath(p)
	if p.hit.IsZero() {
		for k, v := range c.opp {
			if v == p {
				delete(c.opp, k) // an opportunistic exchange that failed
			}
		}
	}
	p.assoc = nil
	if p.x.lostState {
		p.x.lostState = false
	}
	c.dropPuzzle(p) // its solver, if any, stops
	if p.rec != nil {
		s.db.delete(p.hit)
		p.rec = nil
	}
	if len(p.x.waiters) == 0 && len(p.x.keyWaiters) == 0 {
		s.forgetPeer(p)
	}
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
