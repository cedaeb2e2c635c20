package locator

import (
	"net/netip"
	"time"
)

// The choice of the current locator (RFC 8046 §5.5, RFC 8047 §5.4).
//
// Locators are ranked by tier, then by preference. Tiers:
//
//	tierActive      verified (RFC 8046 §5.5 step 1)
//	tierBootstrap   configured, before the association: the base exchange's path
//	tierDeprecated  lifetime over while Active: used only when nothing else
//	                can be ("SHOULD NOT be used ... if an alternate
//	                (non-deprecated) is available", §4)
//	tierNone        never current: unverified, failed, deprecated unverified
//
// Preference: direct (or ICE) above relayed, then the Preferred mark (the
// peer's P bit, §4.1; the base exchange's address; ICE's pair), then
// Priority. The current locator changes only to one that ranks strictly
// higher (so equals never flap) or when it drops out of its tier.
type tier uint8

const (
	tierNone tier = iota
	tierDeprecated
	tierBootstrap
	tierActive
)

func (e *entry) tier() tier {
	switch e.State {
	case Active:
		return tierActive
	case Unverified:
		if e.bootstrap {
			return tierBootstrap
		}
	case Deprecated:
		if e.wasActive {
			return tierDeprecated
		}
	}
	return tierNone
}

func (e *entry) pref() uint64 {
	p := uint64(e.Priority)
	if e.Preferred {
		p |= 1 << 32
	}
	if e.Kind != Relayed {
		p |= 1 << 33
	}
	return p
}

// proven reports whether the association runs over e: it is Active, or it
// was when its lifetime ended. Only such a path is watched for failure and
// kept alive.
func (e *entry) proven() bool {
	return e.State == Active || (e.State == Deprecated && e.wasActive)
}

// outranks reports whether locator i ranks strictly above locator j.
func (s *Set) outranks(i, j int) bool {
	a, b := &s.e[i], &s.e[j]
	if ta, tb := a.tier(), b.tier(); ta != tb {
		return ta > tb
	}
	return a.pref() > b.pref()
}

// usable reports whether locator i may be current.
func (s *Set) usable(i int) bool {
	return i >= 0 && s.e[i].Kind != 0 && s.e[i].tier() != tierNone
}

// best returns the locator that should be current: the highest ranked
// usable one, the current one among equals, else the first. -1: none.
func (s *Set) best() int {
	b := -1
	for i := range s.e {
		if !s.usable(i) {
			continue
		}
		if b < 0 || s.outranks(i, b) || (i == s.cur && !s.outranks(b, i)) {
			b = i
		}
	}
	return b
}

// reselect moves the current locator to the best one if that ranks
// strictly higher. The reason is the current one's failure or
// deprecation if that is why, else hint (zero: ReasonInitial when there
// was no current locator, ReasonBetter otherwise). When no
// locator is usable the current one stays: the caller keeps sending there
// while recovery checks look for a working path.
func (s *Set) reselect(now time.Time, hint Reason) {
	b := s.best()
	if b < 0 || b == s.cur {
		return
	}
	if s.cur >= 0 && !s.outranks(b, s.cur) {
		return
	}
	r := hint
	if s.cur < 0 {
		if r == 0 {
			r = ReasonInitial
		}
	} else if r != ReasonRebinding {
		switch s.e[s.cur].State {
		case Failed:
			r = ReasonFailed
		case Deprecated:
			r = ReasonDeprecated
		}
	}
	if r == 0 {
		r = ReasonBetter
	}
	if r == ReasonFailed && s.e[b].Kind == Relayed {
		r = ReasonFallback
	}
	var from netip.AddrPort
	if s.cur >= 0 {
		old := &s.e[s.cur]
		from = old.Addr
		old.waiting, old.recvUnacked = time.Time{}, time.Time{}
		if old.probe.purpose == ProbeLiveness {
			old.probe = probe{} // no longer the path: standby checks take over
		}
	}
	s.switchTo(now, b, r, from)
}

// switchTo makes locator b current and tells the caller.
func (s *Set) switchTo(now time.Time, b int, r Reason, from netip.AddrPort) {
	s.cur = b
	e := &s.e[b]
	e.waiting, e.recvUnacked = time.Time{}, time.Time{}
	if e.lastSend.IsZero() {
		e.lastSend = now // the keepalive clock starts with the path
	}
	s.out = append(s.out, Decision{Action: Switch, To: e.Addr, Kind: e.Kind, Relay: e.Relay, From: from, Reason: r})
}

// removeAt forgets locator i. If it was current, the best remaining one
// takes over (ReasonGone), or the caller learns that none is left.
func (s *Set) removeAt(now time.Time, i int) {
	wasCur := i == s.cur
	from := s.e[i].Addr
	s.e[i] = entry{}
	if !wasCur {
		return
	}
	s.cur = -1
	if b := s.best(); b >= 0 {
		s.switchTo(now, b, ReasonGone, from)
		return
	}
	s.out = append(s.out, Decision{Action: Switch, From: from, Reason: ReasonGone})
}
