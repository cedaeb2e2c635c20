package overlay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/deadline"
)

// A node's side of its relays (Config.Relays): one goroutine per relay
// registers for RELAY_UDP_HIP (RFC 5770 §4.1) over a base exchange,
// refreshes the registration before it expires, sends NAT keepalives
// (§4.7) and checks that the relay still knows it; when the relay stops
// answering (it restarted, or the path broke), the association is dropped
// and the node registers anew.
//
// A keepalive is one STUN Binding Request to the relay's STUN service per
// interval (RFC 5770 §4.7): it keeps the NAT mapping of the node's one
// socket alive, tells the node its server-reflexive address (its ICE
// candidate, path.go), and carries the relay's instance number
// (stunAttrInstance), which changes when the relay restarts and so loses
// its registrations. Two keepalives in a row without an answer, or a new
// instance, and the node drops the association and registers again. The
// ESP SAs with the relay stay idle meanwhile (and are trimmed), which
// matters to a relay holding thousands of registrations.

// RelayAddr names a relay: its HIT, or the zero HIT for the opportunistic
// mode of RFC 7401 §4.1.8 (the HIT is learnt from the relay's R1 and
// logged), and its address.
type RelayAddr struct {
	HIT  wire.HIT
	Addr netip.AddrPort
}

const (
	defaultKeepalive = 15 * time.Second
	relayLifetime    = time.Hour       // asked; the relay clamps it
	relayPingWait    = 2 * time.Second // how long a keepalive waits for its answer
	// relayConfirmMin is the least wait for the registration refresh that
	// checks a changed reflexive address (reflexiveMoved); it waits at
	// most relayPingWait.
	relayConfirmMin = 500 * time.Millisecond
	relayMisses     = 2
	relayBackoffMax = 30 * time.Second
)

// relayClient is one configured relay.
type relayClient struct {
	cfg        RelayAddr
	hit        atomic.Pointer[wire.HIT] // learnt in opportunistic mode
	registered atomic.Bool
	lost       atomic.Bool                    // the association with the relay closed or failed
	srflx      atomic.Pointer[netip.AddrPort] // our address as the relay's STUN service sees it
	lastErr    atomic.Pointer[error]          // why the last registration failed or was lost; nil: none since it last held
	instance   uint64                         // the relay's stunAttrInstance when we registered (relayLoop only)
	knownInst  bool                           // instance was read (relayLoop only)
	regTook    time.Duration                  // how long the last registration took (relayLoop only)
}

func (rc *relayClient) HIT() (wire.HIT, bool) {
	if h := rc.hit.Load(); h != nil {
		return *h, true
	}
	return wire.HIT{}, false
}

func (s *Stack) keepaliveInterval() time.Duration {
	if s.cfg.KeepaliveInterval > 0 {
		return s.cfg.KeepaliveInterval
	}
	return defaultKeepalive
}

// startRelays starts the echo service (status.go) and the relay
// goroutines of Config.Relays.
func (s *Stack) startRelays() error {
	echo, err := s.ListenInner(EchoPort)
	if err != nil {
		return err
	}
	s.bg.Add(1)
	go s.serveEcho(echo)
	for _, rc := range s.relays {
		if ra := rc.cfg; !ra.HIT.IsZero() {
			h := ra.HIT
			rc.hit.Store(&h)
			s.AddPeer(ra.HIT, ra.Addr)
		}
		s.bg.Add(1)
		go s.relayLoop(rc)
	}
	return nil
}

// relayLoop keeps one relay registration alive until the stack closes.
func (s *Stack) relayLoop(rc *relayClient) {
	defer s.bg.Done()
	backoff := time.Second
	for !s.closed.Load() {
		rc.lost.Store(false) // set by the control goroutine if the association ends from now on
		h, reg, err := s.registerRelay(rc)
		if err != nil {
			if s.closed.Load() {
				return
			}
			rc.setErr(err)
			s.log.Warn("relay registration failed", "relay", rc.cfg.Addr, "err", err, "retry", backoff)
			if !s.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, relayBackoffMax)
			continue
		}
		backoff = time.Second
		rc.lastErr.Store(nil)
		rc.registered.Store(true)
		s.relaysChanged()
		s.log.Info("relay registered", "relay", h.String(), "addr", rc.cfg.Addr, "lifetime", reg.Duration())
		s.retryPending()
		s.relayBack(h)
		s.keepRelay(rc, h, reg)
		rc.registered.Store(false)
		s.relaysChanged()
		s.relayLost(h)
	}
}

// setErr records why rc is not registered.
func (rc *relayClient) setErr(err error) { rc.lastErr.Store(&err) }

// relaysChanged wakes the callers of WaitReachable.
func (s *Stack) relaysChanged() {
	ch := make(chan struct{})
	if old := s.relayWake.Swap(&ch); old != nil {
		close(*old)
	}
}

// Reachable reports whether the node can be reached as configured: nil
// when every relay of Config.Relays holds its registration (and at once
// when there are none), else why not, relay by relay.
func (s *Stack) Reachable() error {
	var errs []error
	for _, rc := range s.relays {
		if rc.registered.Load() {
			continue
		}
		if e := rc.lastErr.Load(); e != nil {
			errs = append(errs, fmt.Errorf("relay %v: %w", rc.cfg.Addr, *e))
		} else {
			errs = append(errs, fmt.Errorf("relay %v: not registered yet", rc.cfg.Addr))
		}
	}
	return errors.Join(errs...)
}

// WaitReachable returns nil once Reachable does, or, when ctx ends first,
// an error that wraps both the context's error and Reachable's; ErrClosed
// once the stack is closing, at once if it was already.
func (s *Stack) WaitReachable(ctx context.Context) error {
	for {
		if deadline.Closed(s.closing) {
			return ErrClosed
		}
		wake := s.relayWake.Load()
		err := s.Reachable()
		if err == nil {
			return nil
		}
		select {
		case <-*wake:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-s.closing:
			return ErrClosed
		}
	}
}

// registerRelay registers with rc, learning its HIT first in
// opportunistic mode.
func (s *Stack) registerRelay(rc *relayClient) (wire.HIT, Registration, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	h, ok := rc.HIT()
	if !ok {
		var err error
		if h, err = s.ConnectAddr(ctx, rc.cfg.Addr); err != nil {
			return h, Registration{}, err
		}
		rc.hit.Store(&h)
		s.log.Info("relay identified", "relay", h.String(), "addr", rc.cfg.Addr, "mode", "opportunistic")
		s.AddPeer(h, rc.cfg.Addr)
	}
	// The reflexive address before the registration: once the relay
	// grants it, it forwards dials to us, and our answers carry the
	// reflexive address as an ICE candidate. The relay's instance too, to
	// notice a restart. The relay's STUN service needs no association.
	sctx, scancel := context.WithTimeout(ctx, relayPingWait)
	rc.knownInst = false
	if r := s.stunBinding(sctx, rc.cfg.Addr); r.err == nil {
		rc.srflx.Store(&r.addr)
		rc.instance, rc.knownInst = r.instance, true
	}
	scancel()
	asked := time.Now()
	res := s.register(ctx, h, relayLifetime, wire.RegTypeRelayUDPHIP)
	rc.regTook = time.Since(asked)
	if res.err == nil && res.from.IsValid() {
		rc.srflx.Store(&res.from) // REG_FROM: authenticated, unlike the STUN answer
	}
	return h, res.reg, res.err
}

// keepRelay sends keepalives and refreshes until the relay is lost or the
// stack closes.
func (s *Stack) keepRelay(rc *relayClient, h wire.HIT, reg Registration) {
	refreshAt := time.Now().Add(reg.Duration() * 4 / 5)
	misses := 0
	for s.sleep(s.keepaliveInterval()) {
		if rc.lost.Swap(false) {
			rc.setErr(errors.New("association with the relay ended"))
			s.log.Warn("relay lost", "relay", h.String(), "addr", rc.cfg.Addr, "reason", "association ended")
			return
		}
		if !time.Now().Before(refreshAt) {
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			r, err := s.Register(ctx, h, relayLifetime, wire.RegTypeRelayUDPHIP)
			cancel()
			if err != nil {
				rc.setErr(err)
				s.log.Warn("relay refresh failed", "relay", h.String(), "err", err)
				s.dropAssociation(h)
				return
			}
			refreshAt = time.Now().Add(r.Duration() * 4 / 5)
		}
		ctx, cancel := context.WithTimeout(s.ctx, relayPingWait)
		r := s.stunBinding(ctx, rc.cfg.Addr)
		cancel()
		if r.err != nil {
			misses++
			s.log.Debug("relay keepalive", "relay", h.String(), "err", r.err, "misses", misses)
			if misses >= relayMisses && s.relayAnswers(h) {
				misses = 0 // STUN is lost or blocked; the association is fine
				continue
			}
			if misses >= relayMisses {
				rc.setErr(fmt.Errorf("no answer to %d keepalives: %w", misses, r.err))
				s.log.Warn("relay lost", "relay", h.String(), "addr", rc.cfg.Addr, "err", r.err)
				s.dropAssociation(h)
				return
			}
			continue
		}
		misses = 0
		if old := rc.srflx.Load(); old != nil && *old != r.addr {
			if !s.reflexiveMoved(rc, h, *old, r.addr) {
				continue
			}
			// Our NAT gave the socket another mapping: the relay would keep
			// forwarding to the old one. Register again from the new one.
			s.log.Warn("relay lost", "relay", h.String(), "addr", rc.cfg.Addr, "reason", "reflexive address changed", "was", *old, "now", r.addr)
			s.dropAssociation(h)
			return
		}
		rc.srflx.Store(&r.addr)
		if !rc.knownInst {
			rc.instance, rc.knownInst = r.instance, true // the first answer after registering
		} else if r.instance != rc.instance && s.relayAnswers(h) {
			s.log.Warn("relay keepalive answer says the relay restarted; its association says not", "relay", h.String(), "instance", r.instance)
		} else if r.instance != rc.instance {
			rc.setErr(errors.New("the relay restarted"))
			s.log.Warn("relay lost", "relay", h.String(), "addr", rc.cfg.Addr, "reason", "restarted")
			s.dropAssociation(h)
			return
		}
	}
}

// reflexiveMoved reports whether our reflexive address toward relay h
// really moved from old, now that a keepalive's STUN answer says now. The
// answer is not authenticated: anyone who sees the keepalive can forge
// one (RFC 8489 §16.1.1), and on its word alone keepRelay would drop an
// association that works, once a keepalive. So the registration is
// refreshed, over the association, from the socket the keepalive left:
// the relay's answer names in REG_FROM, authenticated, where it saw the
// request (RFC 9028 §4.1: "the mechanism that allows the Control Relay
// Client to learn its new server-reflexive address"). A relay that sends
// no REG_FROM is taken at the STUN answer's word, and so is one that does
// not answer within a few times the registration's own round trip (ours
// answers where a fresh request came from, inbound.go answerAt; one that
// answers at our old mapping after a real move never reaches us).
func (s *Stack) reflexiveMoved(rc *relayClient, h wire.HIT, old, now netip.AddrPort) bool {
	wait := min(max(3*rc.regTook, relayConfirmMin), relayPingWait)
	ctx, cancel := context.WithTimeout(s.ctx, wait)
	res := s.register(ctx, h, relayLifetime, wire.RegTypeRelayUDPHIP)
	cancel()
	if res.err != nil || !res.from.IsValid() {
		s.log.Debug("relay reflexive address unconfirmed", "relay", h.String(), "stun", now, "err", res.err)
		return true
	}
	if res.from == old {
		s.log.Warn("relay keepalive answer names another reflexive address; the registrar's REG_FROM says not",
			"relay", h.String(), "stun", now, "reg_from", res.from)
		return false
	}
	rc.srflx.Store(&res.from)
	return true
}

// relayAnswers reports whether relay h answers an echo over our
// association with it. The keepalive's STUN answer is not authenticated:
// an observer of the path can forge one (RFC 8489 §16.1.1) or make a few
// look lost, and on its word alone keepRelay would drop an association
// that works, cutting every peer that reaches us through the relay, once
// a keepalive, for as long as it cared to. So before that word ends the
// association, the association itself is asked: a relay that restarted
// has lost our SAs and cannot answer; one that answers has not.
func (s *Stack) relayAnswers(h wire.HIT) bool {
	if !s.Live(h) {
		return false
	}
	_, err := s.Ping(s.ctx, h, rand.Uint64(), 16, relayPingWait)
	return err == nil
}

// sleep waits d or until the stack closes; false if it closed.
func (s *Stack) sleep(d time.Duration) bool { return s.sleepCtx(s.ctx, d) }

// retryPending restarts the base exchanges of datagrams queued while no
// relay was registered.
func (s *Stack) retryPending() {
	for _, p := range s.peerList() {
		p.mu.Lock()
		waiting := len(p.pending) > 0 && p.out.Load() == nil
		p.mu.Unlock()
		if waiting {
			s.poke(p, pokeConnect)
		}
	}
}

// relayBack tells the control goroutine that we registered with relay h
// (again): the associations through it have the relay locator back, and
// those whose ESP goes there rekey, so that a restarted relay learns their
// SPIs from the UPDATEs and forwards their ESP again (path.go relayBack).
func (s *Stack) relayBack(h wire.HIT) {
	select {
	case s.cmds <- relayBackCmd{hit: h}:
	case <-s.closing:
	}
}

// relayLost tells the control goroutine that our registration with relay
// h is lost: the associations through it lose the relay locator until
// relayBack (path.go relayDown).
func (s *Stack) relayLost(h wire.HIT) {
	select {
	case s.cmds <- relayDownCmd{hit: h}:
	case <-s.closing:
	}
}

// relayEnded notes that the association with h ended (control
// goroutine): if h is one of our relays, its loop registers again.
func (s *Stack) relayEnded(h wire.HIT) {
	for _, rc := range s.relays {
		if rh, ok := rc.HIT(); ok && rh == h {
			rc.lost.Store(true)
			rc.registered.Store(false)
		}
	}
}

// isRelay reports whether h is one of our Config.Relays.
func (s *Stack) isRelay(h wire.HIT) bool {
	for _, rc := range s.relays {
		if rh, ok := rc.HIT(); ok && rh == h {
			return true
		}
	}
	return false
}

// relayAddr reports whether at is the address of one of our relays.
func (s *Stack) relayAddr(at netip.AddrPort) bool {
	for _, rc := range s.relays {
		if rc.cfg.Addr == at {
			return true
		}
	}
	return false
}

// relayPending reports whether relays are configured but none is
// registered yet: a dial to an unknown HIT waits for one.
func (s *Stack) relayPending() bool {
	if len(s.relays) == 0 {
		return false
	}
	for _, rc := range s.relays {
		if rc.registered.Load() {
			return false
		}
	}
	return true
}

// registeredRelay returns the peer of a relay we hold a registration
// with (control goroutine).
func (s *Stack) registeredRelay() *peer {
	for _, rc := range s.relays {
		if !rc.registered.Load() {
			continue
		}
		h, ok := rc.HIT()
		if !ok {
			continue
		}
		if p := s.lookupPeer(h); p != nil && p.assoc != nil && p.out.Load() != nil {
			return p
		}
	}
	return nil
}

// relayAt returns the peer of the relay whose locator is at, if we are
// registered with it (control goroutine): the sender of a packet with
// RELAY_FROM.
func (s *Stack) relayAt(at netip.AddrPort) *peer {
	for _, rc := range s.relays {
		h, ok := rc.HIT()
		if !ok {
			continue
		}
		if p := s.lookupPeer(h); p != nil && p.assoc != nil {
			if l, ok := p.locator(); ok && l == at {
				return p
			}
		}
	}
	return nil
}

// srflxCandidates returns the server-reflexive addresses learnt from the
// relays.
func (s *Stack) srflxCandidates() []netip.AddrPort {
	var out []netip.AddrPort
	for _, rc := range s.relays {
		if a := rc.srflx.Load(); a != nil {
			out = append(out, *a)
		}
	}
	return out
}
