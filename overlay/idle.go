package overlay

import (
	"time"

	"hipnet.dev/handshake"
)

// Idle associations (Config.IdleTimeout): RFC 7401 §4.4.1 calls it the
// Unused Association Lifetime, after which a host "MAY begin to tear down
// an active HIP association" with CLOSE (§4.4.4 Table 7). Here "unused"
// means no application data in either direction: keepalives, probes and
// rekeys keep a path and its keys fresh, not the association.

// DefaultIdleTimeout is Config.IdleTimeout's default.
const DefaultIdleTimeout = 15 * time.Minute

// idleTimeout is Config.IdleTimeout with its default; zero: disabled.
func (s *Stack) idleTimeout() time.Duration {
	switch t := s.cfg.IdleTimeout; {
	case t < 0:
		return 0
	case t == 0:
		return DefaultIdleTimeout
	default:
		return t
	}
}

// idleCheckEvery is how often associations are looked at: a quarter of
// the timeout, so that one closes at most 25 % late, and at most once a
// minute.
func (s *Stack) idleCheckEvery() time.Duration {
	return min(s.idleTimeout()/4, time.Minute)
}

// closeIdle closes the associations that carried no data for the idle
// timeout. Neither those with our relays (the registration is their use)
// nor a relay server's (its hosts' registrations are) are ever idle.
func (c *control) closeIdle(now time.Time) {
	s := c.s
	limit := s.idleTimeout()
	c.nextIdle = time.Time{}
	if limit == 0 || c.draining {
		return
	}
	c.nextIdle = now.Add(s.idleCheckEvery())
	if s.cfg.Forwarder != nil {
		return
	}
	for _, p := range s.peerList() {
		a := p.assoc
		if a == nil || s.isRelay(p.hit) || (a.State() != handshake.Established && a.State() != handshake.R2Sent) {
			p.idleSince = 0
			continue
		}
		n := int64(p.pktsIn.Load() + p.pktsOut.Load())
		if n != p.lastData || p.idleSince == 0 {
			p.lastData, p.idleSince = n, monoOf(now)
			continue
		}
		if idle := monoOf(now) - p.idleSince; idle >= int64(limit) {
			s.log.Info("idle close", "peer", p.hit.String(), "idle", time.Duration(idle).Round(time.Second))
			s.ctr.idleClosed.Add(1)
			p.idleSince = 0
			a.Close(now)
			c.process(p, now)
		}
	}
}
