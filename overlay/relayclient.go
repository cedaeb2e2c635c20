package overlay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"hipnet.dev/handshake/wire"
)

// A node's side of its relays (Config.Relays): one goroutine per relay
// registers for RELAY_UDP_HIP (RFC 5770 §4.1) over a base exchange,
// refreshes the registration before it expires, sends NAT keepalives
// (§4.7) and checks that the relay still knows it; when the relay stops
// answering (it restarted, or the path broke), the association is dropped
// and the node registers anew.
//
// Keepalives are two small packets per interval: a STUN Binding Request to
// the relay's STUN service, which keeps the NAT mapping of the node's one
// socket alive and tells the node its server-reflexive address (its ICE
// candidate, nat.go), and an ESP "ping" to the relay service port, which
// proves that the relay still has the association: a relay that lost its
// state cannot answer it, where it would still answer STUN.

// RelayAddr names a relay: its HIT, or the zero HIT for the opportunistic
// mode of RFC 7401 §4.1.8 (the HIT is learnt from the relay's R1 and
// logged), and its address.
type RelayAddr struct {
	HIT  wire.HIT
	Addr netip.AddrPort
}

// RelayServicePort is the inner UDP port of a relay's service: liveness
// pings and observed addresses. Inner ports are per association, so it
// takes nothing from applications on other peers.
const RelayServicePort = 65534

const (
	defaultKeepalive = 15 * time.Second
	relayLifetime    = time.Hour // asked; the relay clamps it
	relayPingWait    = 2 * time.Second
	relayMisses      = 2
	relayBackoffMax  = 30 * time.Second

	opPing      = 1
	opPingReply = 0x81
)

// relayClient is one configured relay.
type relayClient struct {
	cfg        RelayAddr
	hit        atomic.Pointer[wire.HIT] // learnt in opportunistic mode
	registered atomic.Bool
	lost       atomic.Bool                    // the association with the relay closed or failed
	srflx      atomic.Pointer[netip.AddrPort] // our address as the relay's STUN service sees it
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

// startRelays starts the echo service (status.go), the relay goroutines
// of Config.Relays and, on a relay, its service port.
func (s *Stack) startRelays() error {
	echo, err := s.ListenInner(EchoPort)
	if err != nil {
		return err
	}
	s.bg.Add(1)
	go s.serveEcho(echo)
	if s.relay != nil {
		c, err := s.ListenInner(RelayServicePort)
		if err != nil {
			return err
		}
		s.relaySvc = c
		s.bg.Add(1)
		go s.serveRelay(c)
	}
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

// serveRelay answers relay service requests until the stack closes.
func (s *Stack) serveRelay(c *InnerConn) {
	defer s.bg.Done()
	buf := make([]byte, 64)
	for {
		n, from, err := c.ReadFromAddr(buf)
		if err != nil {
			return
		}
		if n < 1 || buf[0] != opPing {
			continue
		}
		p := s.lookupPeer(from.HIT)
		if p == nil {
			continue
		}
		at, _ := p.locator()
		reply := make([]byte, 0, 19)
		reply = append(reply, opPingReply)
		reply = binary.BigEndian.AppendUint16(reply, at.Port())
		a16 := at.Addr().As16()
		reply = append(reply, a16[:]...)
		_, _ = c.WriteTo(reply, &from)
	}
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
			s.log.Warn("relay registration failed", "relay", rc.cfg.Addr, "err", err, "retry", backoff)
			if !s.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, relayBackoffMax)
			continue
		}
		backoff = time.Second
		rc.registered.Store(true)
		s.log.Info("relay registered", "relay", h.String(), "addr", rc.cfg.Addr, "lifetime", reg.Duration())
		s.retryPending()
		s.keepRelay(rc, h, reg)
		rc.registered.Store(false)
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
	reg, err := s.Register(ctx, h, relayLifetime, wire.RegTypeRelayUDPHIP)
	if err != nil {
		return h, reg, err
	}
	// The reflexive address first: a dial through the relay sends it as
	// an ICE candidate.
	s.refreshSrflx(rc)
	return h, reg, nil
}

// keepRelay sends keepalives and refreshes until the relay is lost or the
// stack closes.
func (s *Stack) keepRelay(rc *relayClient, h wire.HIT, reg Registration) {
	refreshAt := time.Now().Add(reg.Duration() * 4 / 5)
	misses := 0
	for s.sleep(s.keepaliveInterval()) {
		if rc.lost.Swap(false) {
			s.log.Warn("relay lost", "relay", h.String(), "addr", rc.cfg.Addr, "reason", "association ended")
			return
		}
		if !time.Now().Before(refreshAt) {
			ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
			r, err := s.Register(ctx, h, relayLifetime, wire.RegTypeRelayUDPHIP)
			cancel()
			if err != nil {
				s.log.Warn("relay refresh failed", "relay", h.String(), "err", err)
				s.dropAssociation(h)
				return
			}
			refreshAt = time.Now().Add(r.Duration() * 4 / 5)
		}
		s.refreshSrflx(rc)
		if err := s.pingRelay(h); err != nil {
			misses++
			s.log.Debug("relay ping", "relay", h.String(), "err", err, "misses", misses)
			if misses >= relayMisses {
				s.log.Warn("relay lost", "relay", h.String(), "addr", rc.cfg.Addr)
				s.dropAssociation(h)
				return
			}
			continue
		}
		misses = 0
	}
}

// refreshSrflx asks the relay's STUN service for our reflexive address.
func (s *Stack) refreshSrflx(rc *relayClient) {
	ctx, cancel := context.WithTimeout(s.ctx, relayPingWait)
	defer cancel()
	if a, err := s.STUNBinding(ctx, rc.cfg.Addr); err == nil {
		rc.srflx.Store(&a)
	}
}

var errNoPong = errors.New("hip: relay did not answer the ping")

// pingRelay sends one ping over ESP and waits for the answer.
func (s *Stack) pingRelay(h wire.HIT) error {
	c, err := s.ListenInner(0)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.WriteTo([]byte{opPing}, &Addr{HIT: h, Port: RelayServicePort}); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(relayPingWait))
	buf := make([]byte, 64)
	for {
		n, from, err := c.ReadFromAddr(buf)
		if err != nil {
			return fmt.Errorf("%w: %w", errNoPong, err)
		}
		if from.HIT == h && n >= 1 && buf[0] == opPingReply {
			return nil
		}
	}
}

// sleep waits d or until the stack closes; false if it closed.
func (s *Stack) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closing:
		return false
	}
}

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
