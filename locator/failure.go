package locator

import (
	"net/netip"
	"time"
)

// Path-failure detection and address verification (RFC 8046 §5.4, RFC
// 8047 §4.2.2): what the caller reports from its data path, and the probes
// those reports start. The timers that drive them are in timers.go.
//
// The rule, as in WireGuard's timers and QUIC's path validation: the
// current path is suspect when it has carried no authenticated packet
// from the peer for Config.SilenceTimeout while we have been sending; it
// is then probed Config.ProbeCount times, Config.ProbeInterval apart; if
// no probe is answered and nothing authenticated arrives meanwhile, it
// fails and the best verified standby, or the relay, takes over.

// Received records an authenticated packet of n octets (ESP that opened,
// or a HIP control packet whose HIP_MAC verified) from the peer at from.
// Call it only after authentication and the anti-replay check: it is what
// proves a path alive and earns credit.
//
// On the current locator it clears the suspicion of failure and, if we
// stay silent, arms the passive keepalive. A packet from an address the
// Set does not hold makes it an Unverified candidate (a NAT rebinding, RFC
// 8046 §5.3) whose verification starts at once; traffic moves there only
// once it is verified (Verified), and only if the peer's packets no longer
// come from the current locator. A packet from a failed locator starts its
// re-verification, at most once per Config.RecoveryMin. A packet never
// moves the path by itself.
//
// Steady state (a known locator) allocates nothing.
func (s *Set) Received(now time.Time, from netip.AddrPort, n int) []Decision {
	return s.received(now, from, n, false)
}

// ReceivedKeepalive is Received for an authenticated keepalive (an ESP
// dummy packet): it proves the path like any packet, but is not answered
// by a passive keepalive, or two idle peers would keep each other busy.
func (s *Set) ReceivedKeepalive(now time.Time, from netip.AddrPort, n int) []Decision {
	return s.received(now, from, n, true)
}

func (s *Set) received(now time.Time, from netip.AddrPort, n int, keepalive bool) []Decision {
	s.out = s.out[:0]
	if !keepalive {
		s.lastUse = now
	}
	a := norm(from)
	i := s.find(a)
	if i < 0 {
		s.candidate(now, a, n)
		return s.out
	}
	e := &s.e[i]
	e.LastReceived = now
	if e.proven() {
		s.credit.earn(now, n) // RFC 8046 §5.6.1, on verified locators only (Allow)
	} else if n > 0 {
		e.inBytes = min(e.inBytes+int64(n), maxCredit)
	}
	if i == s.cur {
		e.waiting = time.Time{}
		if e.probe.n > 0 && e.probe.purpose == ProbeLiveness && !e.probe.heard {
			e.probe = probe{} // alive after all
		}
		if !keepalive && e.recvUnacked.IsZero() {
			e.recvUnacked = now
		}
	}
	if e.State == Failed && e.probe.n == 0 && !now.Before(s.recheckAt(e)) {
		s.startProbe(now, i, ProbeRecovery)
	}
	if i != s.cur && e.Kind == Relayed && !keepalive {
		s.peerOnRelay(now)
	}
	return s.out
}

// recheckAt is when a packet from failed locator e may start a check of
// it: RecoveryMin after the failure for an address verified before, so
// that a path coming back is found at once; a packet source never
// verified waits out its back-off (retryAt), since anyone on the path can
// copy the peer's packets from any source, each copy drawing signed
// probes there.
func (s *Set) recheckAt(e *entry) time.Time {
	if e.Origin == OriginPacket && !e.verified {
		return e.retryAt
	}
	return e.failedAt.Add(s.cfg.RecoveryMin)
}

// peerOnRelay: the peer's packets come through the relay while our
// current path is another. The peer has given that path up: its own
// checks failed it, and it sends through the relay (RFC 5770 §4.10). It
// may not hear us there, whatever we still hear from it (a path dark one
// way, or its keepalives to the pair it failed), so the path is checked
// now, not after its silence: a dark path found at once, not after
// PairSilence (idle) or the loss of our next packets (busy). At most one
// check per RecoveryMin after the last proof, the cadence at which the
// peer checks the path it failed: a peer that stays on the relay while
// the path works costs one probe a second at most.
func (s *Set) peerOnRelay(now time.Time) {
	if s.cur < 0 {
		return
	}
	c := &s.e[s.cur]
	if c.Kind == Relayed || !c.proven() || c.probe.n > 0 || now.Before(c.lastOK.Add(s.cfg.RecoveryMin)) {
		return
	}
	s.startProbe(now, s.cur, ProbeLiveness)
	c.probe.heard = true
}

// candidate adds the source a of an authenticated packet as a NAT
// rebinding candidate and starts verifying it, within MaxCandidates.
func (s *Set) candidate(now time.Time, a netip.AddrPort, n int) {
	if !s.assoc || !unicast(a) {
		return
	}
	pending := 0
	for i := range s.e {
		if e := &s.e[i]; e.Kind != 0 && e.Origin == OriginPacket && e.State == Unverified {
			pending++
		}
	}
	if pending >= MaxCandidates {
		return
	}
	i := s.add(now, a, Direct, OriginPacket)
	if i < 0 {
		return
	}
	e := &s.e[i]
	e.LastReceived = now
	e.inBytes = int64(max(n, 0))
	s.startProbe(now, i, ProbeVerify)
}

// Sent records that we sent a packet of ours, ESP data or a HIP control
// packet, to the locator at to. Do not report the probes and keepalives
// the Set asked for: it counts those itself, and a keepalive must not arm
// the failure detection, or every idle association would be probed.
//
// Steady state allocates nothing.
func (s *Set) Sent(now time.Time, to netip.AddrPort) {
	i := s.find(norm(to))
	if i < 0 {
		return
	}
	s.lastUse = now
	e := &s.e[i]
	e.lastSend = now
	e.recvUnacked = time.Time{}
	if i == s.cur && e.waiting.IsZero() {
		e.waiting = now
	}
}

// Verified records that a probe to addr was answered (an ECHO_RESPONSE
// matching the nonce sent there, RFC 8046 §5.4), wherever the answer came
// from. The locator becomes Active (§5.1 "UNVERIFIED to ACTIVE"); a
// Deprecated one stays so (§5.1: it needs a new lifetime first). If it
// ranks above the current one, it becomes current.
//
// NAT rebinding: if it is a packet source and the peer has sent nothing on
// the current locator since that source first appeared, the peer has
// moved: the current locator must be verified again before it is used
// (§5.1 "ACTIVE to UNVERIFIED"), and the path moves (ReasonRebinding). As
// in QUIC (RFC 9000 §9.3), the path follows the peer only once the new
// address is validated.
func (s *Set) Verified(now time.Time, addr netip.AddrPort) []Decision {
	s.out = s.out[:0]
	i := s.find(norm(addr))
	if i < 0 || s.e[i].State == Deprecated {
		return s.out
	}
	e := &s.e[i]
	prev := e.State
	if e.probe.n == 1 {
		s.sampleRTT(e, now.Sub(e.probe.sentAt)) // Karn: only an unambiguous answer
	}
	s.activate(now, i)
	hint := ReasonBetter
	if prev == Failed {
		hint = ReasonRecovered
	}
	if e.Origin == OriginPacket && s.cur >= 0 && s.cur != i {
		// Ties go to the move: within one instant the order is unknown,
		// and X is verified either way.
		if c := &s.e[s.cur]; c.Kind != Relayed && !c.LastReceived.After(e.firstSeen) {
			s.fail(now, s.cur)
			hint = ReasonRebinding
		}
	}
	s.reselect(now, hint)
	return s.out
}

// VerifyFailed records that the locator at addr is known not to work: the
// base exchange or an UPDATE sent there was given up, or the probe could
// not be sent. Report only what an attacker cannot forge (not a bare ICMP
// error). The locator fails at once, as if its probes had gone
// unanswered.
func (s *Set) VerifyFailed(now time.Time, addr netip.AddrPort) []Decision {
	s.out = s.out[:0]
	i := s.find(norm(addr))
	if i < 0 {
		return s.out
	}
	if e := &s.e[i]; e.State == Deprecated && !e.wasActive {
		return s.out
	}
	s.fail(now, i)
	s.reselect(now, 0)
	return s.out
}

// startProbe starts a check of locator i, unless one is running or there
// is no association to carry it.
func (s *Set) startProbe(now time.Time, i int, p Purpose) {
	e := &s.e[i]
	if !s.assoc || e.probe.n > 0 {
		return
	}
	e.probe = probe{purpose: p}
	s.sendProbe(now, i)
}

// sendProbe sends the next probe of locator i's check.
func (s *Set) sendProbe(now time.Time, i int) {
	e := &s.e[i]
	e.probe.n++
	e.probe.sentAt = now
	e.probe.next = now.Add(s.probeTimeout(e))
	e.lastSend = now
	e.recvUnacked = time.Time{}
	s.out = append(s.out, Decision{Action: SendProbe, To: e.Addr, Kind: e.Kind, Relay: e.Relay,
		Purpose: e.probe.purpose, Attempt: uint8(e.probe.n)})
}

// probeDue handles locator i's check at its next time: another probe, or
// the verdict.
func (s *Set) probeDue(now time.Time, i int) {
	if s.e[i].probe.n >= s.cfg.ProbeCount {
		s.fail(now, i)
		return
	}
	s.sendProbe(now, i)
}

// fail marks locator i Failed: it is not used until it answers again, and
// is tried again after a back-off that doubles up to Config.RecoveryMax. A
// Deprecated locator stays Deprecated but can no longer stand in.
func (s *Set) fail(now time.Time, i int) {
	e := &s.e[i]
	e.probe = probe{}
	e.bootstrap = false
	e.waiting, e.recvUnacked = time.Time{}, time.Time{}
	e.failedAt = now
	if e.State == Deprecated {
		e.wasActive = false
		return
	}
	e.State = Failed
	if e.backoff == 0 {
		e.backoff = s.cfg.RecoveryMin
	} else {
		e.backoff = min(2*e.backoff, s.cfg.RecoveryMax)
	}
	e.retryAt = now.Add(e.backoff)
}

// sampleRTT folds a probe's round trip into e's smoothed RTT (RFC 6298
// §2.3, alpha 1/8).
func (s *Set) sampleRTT(e *entry, d time.Duration) {
	if d <= 0 {
		return
	}
	d = min(d, maxRTT)
	if e.RTT == 0 {
		e.RTT = d
		return
	}
	e.RTT = (7*e.RTT + d) / 8
}

// silenceBound is how long e may be silent while we send before it is
// probed: Config.SilenceTimeout, or on a slow path two round trips and the
// peer's passive keepalive delay.
func (s *Set) silenceBound(e *entry) time.Duration {
	return max(s.cfg.SilenceTimeout, 2*e.RTT+s.cfg.AckDelay)
}

// probeTimeout is how long a probe to e is waited for.
func (s *Set) probeTimeout(e *entry) time.Duration {
	return max(s.cfg.ProbeInterval, e.RTT+e.RTT/2)
}
