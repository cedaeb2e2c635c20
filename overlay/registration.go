package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// Registration (RFC 8003) on the stack. The handshake package runs the
// protocol (REG_INFO in R1, REG_REQUEST in I2 or UPDATE, REG_RESPONSE and
// REG_FAILED in R2 or UPDATE) and reports each answer as an
// EventRegistration, on both sides. The control goroutine tells the two
// sides apart by the packet that caused the event: one carrying a
// REG_REQUEST makes us the registrar (we decided and answered), any other
// makes us the requester (the answer arrived, or R1 offered nothing).
//
//   - Registrar: Config.Handshake.Registrar decides; the table of what
//     was granted is the decider's (package relay keeps it, and hears from
//     Forwarder.Ended when an association, and so its registrations,
//     ends). The stack only logs its answers.
//   - Requester: Register asks in I2 when there is no association (or it
//     is still waiting for R1), or in an UPDATE when one is established,
//     and waits for the answer. One request per registrar is in flight at
//     a time; others wait for it (and for the handshake's own UPDATEs) in
//     a queue on the control goroutine, sent as soon as the association
//     allows.

// ErrRegistrationRefused: the registrar granted none of the requested
// registration types (Registration.Failed says why).
var ErrRegistrationRefused = errors.New("hip: registration refused")

// Registration is one registration: on a requester, the registrar's
// answer (Stack.Register); on a relay server, a requester's
// (ForwarderReport).
type Registration struct {
	Peer     wire.HIT         // the requester (registrar side) or the registrar (requester side)
	Granted  []uint8          // granted registration types (wire.RegTypeRendezvous, ...)
	Lifetime uint8            // granted lifetime code (RFC 8003 §4.1); 0: cancelled
	Expires  time.Time        // when the grant ends: granted at + wire.LifetimeToDuration(Lifetime)
	Failed   []wire.RegFailed // refused types and why
}

// Duration is the granted lifetime.
func (r Registration) Duration() time.Duration { return wire.LifetimeToDuration(r.Lifetime) }

// regCommand is a Register for the control goroutine.
type regCommand struct {
	lifetime uint8
	types    []uint8
	reply    chan regResult  // buffered (1)
	done     <-chan struct{} // the caller's context: a queued request it gave up is dropped
}

type regResult struct {
	reg Registration
	err error
	// from is the answer's REG_FROM: our transport address as the
	// registrar saw it (RFC 5770 §4.1), the server-reflexive address
	// behind a NAT, authenticated with the answer; invalid: none sent.
	from netip.AddrPort
}

// regWait is the in-flight request to one registrar.
type regWait struct {
	cmd   *regCommand
	viaI2 bool
}

// regState is the control goroutine's registration bookkeeping.
type regState struct {
	waits map[wire.HIT]*regWait
	wakes []regWake
	// queued are requests that could not be sent yet, by registrar, in
	// order; retryRegs sends them when the association changes.
	queued   map[wire.HIT][]*regCommand
	retrying bool
}

type regWake struct {
	ch  chan regResult
	res regResult
}

// Register asks the registrar for the registration types for lifetime
// (RFC 8003; clamped by the registrar to its bounds, and lifetime 0
// cancels) and waits for its answer. Without an association it starts the
// base exchange and asks in I2; with an established one it asks in an
// UPDATE. The registrar's locator must be known (AddPeer), else the error
// wraps ErrUnknownPeer. When nothing is granted the Registration is
// returned with an error wrapping ErrRegistrationRefused (a refusal known
// from R1, which offers none of the types, is returned while the base
// exchange goes on); the other errors
// are Connect's (a cancelled context gives its error; Close gives
// ErrClosed).
func (s *Stack) Register(ctx context.Context, registrar wire.HIT, lifetime time.Duration, types ...uint8) (Registration, error) {
	res := s.register(ctx, registrar, lifetime, types...)
	return res.reg, res.err
}

// register is Register, with the answer's REG_FROM (the relay client's).
func (s *Stack) register(ctx context.Context, registrar wire.HIT, lifetime time.Duration, types ...uint8) regResult {
	fail := func(err error) regResult { return regResult{err: err} }
	if s.closed.Load() {
		return fail(ErrClosed)
	}
	cmd := &regCommand{lifetime: wire.DurationToLifetime(lifetime), types: append([]uint8(nil), types...),
		reply: make(chan regResult, 1), done: ctx.Done()}
	select {
	case s.cmds <- registerCmd{hit: registrar, reg: cmd}:
	case <-s.closing:
		return fail(ErrClosed)
	case <-ctx.Done():
		return fail(regCtxError(ctx, registrar))
	}
	select {
	case res := <-cmd.reply:
		return res
	case <-ctx.Done():
		return fail(regCtxError(ctx, registrar))
	case <-s.ctrlDone:
		select {
		case res := <-cmd.reply:
			return res
		default:
			return fail(ErrClosed)
		}
	}
}

func regCtxError(ctx context.Context, h wire.HIT) error {
	return fmt.Errorf("hip: register with %v: %w", h, ctx.Err())
}

// register serves Register on the control goroutine: it answers at once
// (an error), leaves the reply waiting for the answer, or, when the
// request cannot be sent now, queues it (retryRegs).
func (c *control) register(now time.Time, h wire.HIT, cmd *regCommand) {
	if !c.sendRegister(now, h, cmd) {
		c.reg.queued[h] = append(c.reg.queued[h], cmd)
	}
}

// sendRegister sends cmd, or answers it with an error; it reports false,
// having done neither, when the request cannot be sent now.
func (c *control) sendRegister(now time.Time, h wire.HIT, cmd *regCommand) bool {
	s := c.s
	answer := func(err error) bool { cmd.reply <- regResult{reg: Registration{Peer: h}, err: err}; return true }
	select {
	case <-cmd.done:
		return answer(context.Canceled) // the caller gave up: nothing is sent
	default:
	}
	p, err := c.peerFor(h)
	if err != nil {
		return answer(err)
	}
	if c.reg.waits[h] != nil {
		return false
	}
	a := p.assoc
	state := handshake.Unassociated
	if a != nil {
		state = a.State()
	}
	switch state {
	case handshake.Established, handshake.R2Sent:
		if info, ok := a.PeerRegInfo(); cmd.lifetime != 0 && (!ok || !offersAny(info, cmd.types)) {
			// Nothing to ask: the registrar announced none of the types (or
			// nothing at all: we answered its base exchange, so never saw
			// its R1).
			reg := Registration{Peer: h, Failed: []wire.RegFailed{{FailureType: wire.RegFailureTypeUnavailable, Types: cmd.types}}}
			cmd.reply <- regResult{reg: reg, err: refused(reg)}
			return true
		}
		err := a.Register(now, cmd.lifetime, cmd.types...)
		if errors.Is(err, handshake.ErrBusy) {
			return false // an UPDATE of ours is outstanding
		}
		if err != nil {
			return answer(fmt.Errorf("hip: register with %v: %w", h, err))
		}
		c.addRegWait(h, &regWait{cmd: cmd})
		s.log.Debug("registration requested", "peer", h.String(), "types", regNames(cmd.types), "via", "update")
		c.process(p, now)
	case handshake.I2Sent:
		return false // too late for I2: wait for ESTABLISHED and use UPDATE
	default:
		// No association, or one to (re)start, or one waiting for R1.
		if state != handshake.I1Sent {
			c.takeConfigured(p, now) // dial.go
			if _, ok := p.locator(); !ok {
				return answer(fmt.Errorf("%w: %v", ErrUnknownPeer, h))
			}
			if a == nil {
				p.assoc = c.ep.Initiate(now, h)
				p.resetCounters()
			} else {
				a.Restart(now)
			}
			s.ctr.bexStarted.Add(1)
			s.log.Debug("bex started", "peer", h.String())
		}
		if err := p.assoc.RequestRegistration(cmd.lifetime, cmd.types...); err != nil {
			answer(fmt.Errorf("hip: register with %v: %w", h, err))
			c.process(p, now)
			return true
		}
		c.addRegWait(h, &regWait{cmd: cmd, viaI2: true})
		s.log.Debug("registration requested", "peer", h.String(), "types", regNames(cmd.types), "via", "i2")
		c.process(p, now)
	}
	return true
}

// retryRegs sends the requests queued for p's registrar, in order, now that
// its association changed; those that still cannot go stay queued, and
// those whose caller gave up are dropped.
func (c *control) retryRegs(p *peer, now time.Time) {
	q := c.reg.queued[p.hit]
	if len(q) == 0 || c.reg.retrying {
		return
	}
	c.reg.retrying = true
	defer func() { c.reg.retrying = false }()
	delete(c.reg.queued, p.hit)
	for i, cmd := range q {
		if !c.sendRegister(now, p.hit, cmd) {
			c.reg.queued[p.hit] = append(c.reg.queued[p.hit], q[i:]...)
			return
		}
	}
}

func (c *control) addRegWait(h wire.HIT, w *regWait) {
	if c.reg.waits == nil {
		c.reg.waits = map[wire.HIT]*regWait{}
	}
	c.reg.waits[h] = w
}

func offersAny(info wire.RegInfo, types []uint8) bool {
	for _, t := range types {
		if strings.IndexByte(string(info.Types), t) >= 0 {
			return true
		}
	}
	return false
}

// regFrom is handshake.Registrar.From: where the request being answered
// came from, as we saw it (through a relay: where the relay saw it), for
// the REG_FROM of our answer. For a repeat of a request already answered,
// only from the address the requester's association is verified at: its
// own copy corrects the REG_FROM that an attacker's copy, sent first from
// elsewhere, drew; a copy from anywhere else changes nothing.
func (c *control) regFrom(peer wire.HIT, repeat bool) (netip.AddrPort, bool) {
	in := c.handling
	switch {
	case in == nil:
		return netip.AddrPort{}, false
	case in.via.relay != nil:
		return unmapPort(in.via.from), !repeat
	case in.rvs.server != nil:
		return unmapPort(in.rvs.initiator), !repeat
	}
	from := unmapPort(in.from)
	if !repeat {
		return from, true
	}
	p := c.s.lookupPeer(peer)
	if p == nil {
		return from, false
	}
	at, ok := p.locator()
	return from, ok && at == from
}

// regEvent acts on an EventRegistration; asRegistrar says the packet that
// caused it carried a REG_REQUEST, so the event is our answer as registrar.
func (c *control) regEvent(p *peer, reg *handshake.Registration, now time.Time, asRegistrar bool) {
	if reg == nil {
		return
	}
	r := Registration{
		Peer: p.hit, Granted: append([]uint8(nil), reg.Granted...), Lifetime: reg.Lifetime,
		Failed: append([]wire.RegFailed(nil), reg.Failed...),
	}
	if len(r.Granted) > 0 && r.Lifetime != 0 {
		r.Expires = now.Add(r.Duration())
	}
	role := "requester"
	if asRegistrar {
		// Our answer as registrar: what it means (a relay's table) is the
		// Forwarder's, which decided it (handshake.Registrar.Decide).
		role = "registrar"
	} else {
		c.rendezvousGranted(p, r) // rendezvous.go
		c.regAnswered(p, r, reg.From)
	}
	c.s.log.Info("registration", "peer", p.hit.String(), "role", role, "granted", regNames(r.Granted),
		"lifetime", r.Duration(), "failed", failedText(r.Failed))
}

// regAnswered answers the Register waiting for p's answer, if any.
func (c *control) regAnswered(p *peer, r Registration, from netip.AddrPort) {
	w := c.reg.waits[p.hit]
	if w == nil {
		return
	}
	delete(c.reg.waits, p.hit)
	var err error
	if len(r.Granted) == 0 {
		err = refused(r)
	}
	c.reg.wakes = append(c.reg.wakes, regWake{w.cmd.reply, regResult{reg: r, err: err, from: from}})
}

// regFail answers p's waiting and queued Registers with err
// (wakeWaiters).
func (c *control) regFail(p *peer, err error) {
	if w := c.reg.waits[p.hit]; w != nil {
		delete(c.reg.waits, p.hit)
		c.reg.wakes = append(c.reg.wakes, regWake{w.cmd.reply, regResult{reg: Registration{Peer: p.hit}, err: err}})
	}
	for _, cmd := range c.reg.queued[p.hit] {
		c.reg.wakes = append(c.reg.wakes, regWake{cmd.reply, regResult{reg: Registration{Peer: p.hit}, err: err}})
	}
	delete(c.reg.queued, p.hit)
}

// regEstablished: a request meant for our I2 is lost when the peer's I2
// won (we are the Responder): it goes first in the queue, to be asked
// again by UPDATE (retryRegs).
func (c *control) regEstablished(p *peer, a *handshake.Association) {
	if w := c.reg.waits[p.hit]; w != nil && w.viaI2 && !a.Info().Initiator {
		delete(c.reg.waits, p.hit)
		c.reg.queued[p.hit] = append([]*regCommand{w.cmd}, c.reg.queued[p.hit]...)
	}
}

// regShutdown fails every waiting and queued Register with ErrClosed.
func (c *control) regShutdown() {
	for h, w := range c.reg.waits {
		c.reg.wakes = append(c.reg.wakes, regWake{w.cmd.reply, regResult{reg: Registration{Peer: h}, err: ErrClosed}})
	}
	clear(c.reg.waits)
	for h, q := range c.reg.queued {
		for _, cmd := range q {
			c.reg.wakes = append(c.reg.wakes, regWake{cmd.reply, regResult{reg: Registration{Peer: h}, err: ErrClosed}})
		}
	}
	clear(c.reg.queued)
}

func (c *control) flushRegWakes() {
	for _, w := range c.reg.wakes {
		select {
		case w.ch <- w.res:
		default:
		}
	}
	clear(c.reg.wakes)
	c.reg.wakes = c.reg.wakes[:0]
}

func refused(r Registration) error {
	why := failedText(r.Failed)
	if why == "" {
		why = "nothing granted"
	}
	return fmt.Errorf("%w by %v: %s", ErrRegistrationRefused, r.Peer, why)
}

func regNames(types []uint8) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = wire.RegTypeName(t)
	}
	return out
}

func failedText(fs []wire.RegFailed) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("%s: %s (failure type %d)", strings.Join(regNames(f.Types), ","), wire.RegFailureName(f.FailureType), f.FailureType)
	}
	return strings.Join(parts, "; ")
}
