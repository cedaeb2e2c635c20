package locator

import "time"

// Every timer of a Set, in one place. There is no timer object: each due
// time is derived from the state, by the same function for Deadline and
// for HandleTimeout, so the two cannot disagree.
//
//	lifetime        a locator's Expires: it becomes Deprecated (RFC 8046 §5.1)
//	probe           the next probe of a check, or its verdict
//	recovery        a failed locator that would be preferred is checked again
//	silence         the current path was silent while we sent: probe it
//	pair silence    the current path, an ICE pair, carried nothing from the
//	                peer for PairSilence, sending or not: probe it
//	keepalive       NAT keepalive on an idle path (RFC 5770 §4.7), or the
//	                passive keepalive answering a peer that sends one way
//	pair keepalive  NAT keepalive on an ICE pair that is not the current
//	                path, so that it can come back
//	standby         the best standby is checked while the association is used

// Deadline returns when HandleTimeout must next be called; zero: no timer.
// It may lie in the past after an event: call HandleTimeout at once then.
// Calling HandleTimeout early is harmless; calling it late delays what is
// due by as much.
func (s *Set) Deadline() time.Time {
	var d time.Time
	for i := range s.e {
		e := &s.e[i]
		if e.Kind == 0 {
			continue
		}
		if !e.Expires.IsZero() && e.State != Deprecated {
			d = earliest(d, e.Expires)
		}
		if e.probe.n > 0 {
			d = earliest(d, e.probe.next)
		}
		if t, ok := s.recoveryDue(i); ok {
			d = earliest(d, t)
		}
		if t, ok := s.pairKeepaliveDue(i); ok {
			d = earliest(d, t)
		}
	}
	if t, ok := s.silenceDue(); ok {
		d = earliest(d, t)
	}
	if t, ok := s.pairSilenceDue(); ok {
		d = earliest(d, t)
	}
	if t, ok := s.keepaliveDue(); ok {
		d = earliest(d, t)
	}
	if _, t, ok := s.standbyDue(); ok {
		d = earliest(d, t)
	}
	return d
}

func earliest(d, t time.Time) time.Time {
	if d.IsZero() || t.Before(d) {
		return t
	}
	return d
}

// HandleTimeout runs the timers due at now and returns the decisions they
// led to.
func (s *Set) HandleTimeout(now time.Time) []Decision {
	s.out = s.out[:0]
	// Lifetimes and checks first: they decide which locators are usable.
	for i := range s.e {
		e := &s.e[i]
		if e.Kind == 0 {
			continue
		}
		if !e.Expires.IsZero() && e.State != Deprecated && !now.Before(e.Expires) {
			s.deprecate(i) // RFC 8046 §5.1 "... to DEPRECATED: The locator's lifetime expires"
			continue
		}
		if e.probe.n > 0 && !now.Before(e.probe.next) {
			s.probeDue(now, i)
		}
	}
	s.reselect(now, 0)
	// Then what depends on the current locator.
	for i := range s.e {
		if t, ok := s.recoveryDue(i); ok && !now.Before(t) {
			s.startProbe(now, i, ProbeRecovery)
		}
	}
	if t, ok := s.silenceDue(); ok && !now.Before(t) {
		s.startProbe(now, s.cur, ProbeLiveness)
	}
	if t, ok := s.pairSilenceDue(); ok && !now.Before(t) {
		s.startProbe(now, s.cur, ProbeLiveness)
	}
	if t, ok := s.keepaliveDue(); ok && !now.Before(t) {
		e := &s.e[s.cur]
		e.lastSend, e.recvUnacked = now, time.Time{}
		s.out = append(s.out, Decision{Action: SendKeepalive, To: e.Addr, Kind: e.Kind, Relay: e.Relay})
	}
	for i := range s.e {
		if t, ok := s.pairKeepaliveDue(i); ok && !now.Before(t) {
			e := &s.e[i]
			e.lastSend = now
			s.out = append(s.out, Decision{Action: SendKeepalive, To: e.Addr, Kind: e.Kind})
		}
	}
	if i, t, ok := s.standbyDue(); ok && !now.Before(t) {
		s.startProbe(now, i, ProbeStandby)
	}
	return s.out
}

// usedNear reports whether the association carried traffic within
// StandbyInterval before t: standby and recovery checks are for paths in
// use, and an idle association needs none (its next send will find out).
func (s *Set) usedNear(t time.Time) bool {
	return !s.lastUse.IsZero() && s.lastUse.After(t.Add(-s.cfg.StandbyInterval))
}

// recoveryDue returns when failed locator i is checked again, if it is:
// when nothing usable is left (RFC 8046 §5.5 step 4: look for any
// non-deprecated address), or when it would rank above the current
// locator if it worked and the association is in use (the move back to
// the preferred path, RFC 8047 §4.2.3). A packet source never verified is
// not checked on a timer: only new packets from it, paid for, restart its
// check (Received, AllowProbe).
func (s *Set) recoveryDue(i int) (time.Time, bool) {
	e := &s.e[i]
	if !s.assoc || e.Kind == 0 || e.State != Failed || e.probe.n > 0 || (e.Origin == OriginPacket && !e.verified) {
		return time.Time{}, false
	}
	if !s.usable(s.cur) {
		return e.retryAt, true
	}
	if i == s.cur || e.pref() <= s.e[s.cur].pref() || !s.usedNear(e.retryAt) {
		return time.Time{}, false
	}
	return e.retryAt, true
}

// silenceDue returns when the current locator's silence makes it suspect:
// Config.SilenceTimeout (or more on a slow path) after the first packet we
// sent since the peer's last.
func (s *Set) silenceDue() (time.Time, bool) {
	if !s.assoc || s.cur < 0 {
		return time.Time{}, false
	}
	e := &s.e[s.cur]
	if !e.proven() || e.waiting.IsZero() || e.probe.n > 0 {
		return time.Time{}, false
	}
	return e.waiting.Add(s.silenceBound(e)), true
}

// pairSilenceDue returns when the current locator, if it is the pair ICE
// nominated, is probed for the peer's silence: Config.PairSilence after
// the peer's last packet on it, or its last proof, whether we send or not.
// Both ends keep an ICE pair alive (RFC 5770 §4.7: keepalives when the
// channel is idle; this Set's own keepaliveDue and pairKeepaliveDue), so
// on a pair that works the peer's packets do not stop that long; a pair
// that went dark while the association is idle is found so, and traffic
// falls back to the relay before it is needed there. A direct path has no
// such promise (the peer may be a host that sends nothing unasked): its
// silence counts only while we send (silenceDue).
func (s *Set) pairSilenceDue() (time.Time, bool) {
	if !s.assoc || s.cur < 0 {
		return time.Time{}, false
	}
	e := &s.e[s.cur]
	if e.Kind != ICE || !e.proven() || e.probe.n > 0 {
		return time.Time{}, false
	}
	last := e.lastOK
	if e.LastReceived.After(last) {
		last = e.LastReceived
	}
	return last.Add(s.cfg.PairSilence), true
}

// pairKeepaliveDue returns when locator i, a pair ICE nominated that is
// not the current path (it failed and traffic fell back to the relay),
// gets a NAT keepalive: Config.KeepaliveInterval after the last packet
// sent to it. Its NAT mappings stay open, and the peer, which does the
// same, sees its keepalives arrive there as soon as the pair works again:
// that starts the recovery check (Received), and traffic moves back
// without waiting for the association to be used (RFC 5770 §4.7 keeps the
// pair alive "when the control or data channel is idle").
func (s *Set) pairKeepaliveDue(i int) (time.Time, bool) {
	e := &s.e[i]
	if !s.assoc || i == s.cur || e.Kind != ICE {
		return time.Time{}, false
	}
	return e.lastSend.Add(s.cfg.KeepaliveInterval), true
}

// keepaliveDue returns when the current locator needs a keepalive: the
// passive one Config.AckDelay after an unanswered packet from the peer,
// and the NAT keepalive Config.KeepaliveInterval after our last packet
// (RFC 5770 §4.7). A relayed path gets no NAT keepalive from here: the
// relay client keeps the mapping to the relay alive, and the relay owes
// none (§4.7 "HIP relay servers MAY refrain").
func (s *Set) keepaliveDue() (time.Time, bool) {
	if !s.assoc || s.cur < 0 {
		return time.Time{}, false
	}
	e := &s.e[s.cur]
	if !e.proven() {
		return time.Time{}, false
	}
	var d time.Time
	if !e.recvUnacked.IsZero() {
		d = e.recvUnacked.Add(s.cfg.AckDelay)
	}
	if e.Kind != Relayed {
		d = earliest(d, e.lastSend.Add(s.cfg.KeepaliveInterval))
	}
	return d, !d.IsZero()
}

// standbyDue returns the best standby, the direct or ICE locator a
// failure would move to, and when it is checked: Config.StandbyInterval
// after its last answer, if the association is in use then. A relay is
// not checked: its registration is kept by the relay client.
func (s *Set) standbyDue() (int, time.Time, bool) {
	if !s.assoc || s.cur < 0 {
		return -1, time.Time{}, false
	}
	b := -1
	for i := range s.e {
		e := &s.e[i]
		if i == s.cur || e.Kind == 0 || e.Kind == Relayed || e.State != Active {
			continue
		}
		if b < 0 || s.outranks(i, b) {
			b = i
		}
	}
	if b < 0 || s.e[b].probe.n > 0 {
		return -1, time.Time{}, false
	}
	t := s.e[b].lastOK.Add(s.cfg.StandbyInterval)
	if !s.usedNear(t) {
		return -1, time.Time{}, false
	}
	return b, t, true
}
