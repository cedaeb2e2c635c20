package locator

import (
	"net/netip"
	"time"
)

// Credit-based authorization (RFC 8046 §3.3.2, §5.6): what may be sent to
// an address of the peer that is not verified is bounded by what the peer
// recently sent us.

const (
	// creditAgingInterval and the factor 7/8 are CreditAgingInterval and
	// CreditAgingFactor of RFC 8046 §5.6.2.
	creditAgingInterval = 5 * time.Second
	creditAgingNum      = 7
	creditAgingDen      = 8
	// maxCredit keeps the counter far from overflow; aging brings it down
	// to zero within some 210 intervals.
	maxCredit = 1 << 40
)

// credit is the per-peer credit counter of RFC 8046 §5.6.1, aged lazily:
// each use first applies the agings that fell due since the last, so no
// timer is needed.
type credit struct {
	n  int64
	at time.Time // start of the current aging interval; zero: never used
}

func (c *credit) age(now time.Time) {
	if c.at.IsZero() {
		c.at = now
		return
	}
	d := now.Sub(c.at)
	if d < creditAgingInterval {
		return // also a clock that went back: no aging, no harm
	}
	k := d / creditAgingInterval
	c.at = c.at.Add(k * creditAgingInterval)
	for ; k > 0 && c.n > 0; k-- {
		c.n = c.n * creditAgingNum / creditAgingDen
	}
}

// earn adds n octets received from the peer (RFC 8046 §5.6.1: "increase
// that peer's credit counter by the size of the received packet").
func (c *credit) earn(now time.Time, n int) {
	c.age(now)
	if n > 0 {
		c.n = min(c.n+int64(n), maxCredit)
	}
}

// spend takes n octets if the counter holds them (Figure 9: "Is credit
// counter >= packet size?"), and reports whether it did.
func (c *credit) spend(now time.Time, n int) bool {
	c.age(now)
	if n < 0 || int64(n) > c.n {
		return false
	}
	c.n -= int64(n)
	return true
}

// Allow reports whether n octets of data may be sent to the locator at to
// now, and charges them to the credit if they must be paid for (RFC 8046
// §5.6.1). Sending to an Active locator is free and leaves the credit
// alone, and so is sending to the current locator while it carries the
// base exchange or is deprecated with nothing better. Sending to any other
// locator the Set holds costs n octets of credit, and is refused when the
// credit is short ("the packet MUST be discarded or buffered"): that
// includes the current locator when it failed, or was renewed and awaits
// verification, and nothing usable is left — exactly Figure 9's case, "the
// preferred destination address [is] UNVERIFIED" and no ACTIVE one
// exists. An address the Set does not hold is refused.
//
// The credit is earned by authenticated packets from the peer on verified
// locators only (Active, or in use after their lifetime ended; Received),
// a stricter reading of §5.6.1 ("whenever a packet arrives from a peer"):
// a packet an attacker copied and raced in from another address buys
// nothing.
func (s *Set) Allow(now time.Time, to netip.AddrPort, n int) bool {
	i := s.find(norm(to))
	if i < 0 {
		return false
	}
	if e := &s.e[i]; e.State == Active || (i == s.cur && (e.bootstrap || e.proven())) {
		return true
	}
	return s.credit.spend(now, n)
}

// AllowProbe reports whether a probe of n octets may be sent to the
// locator at to now (Decision SendProbe), and charges it if it must be
// paid for. Probes to an address the application configured, the peer
// announced in a signed LOCATOR_SET, ICE nominated, a relay, or that was
// verified before, are free: they are the verification RFC 8046 §5.4
// requires, bounded by Config.ProbeCount per check and a back-off between
// checks. A probe to the source address of a packet that was never
// verified is what an attacker who copies the peer's packets and sends
// them from a victim's address would cause, so it is paid for, first by
// the octets that came from that address, then by the peer's credit: the
// node never sends an unverified address more than it received, from it or
// from the peer (DESIGN.md, threat model: no amplifier). When AllowProbe
// says no, drop the probe: the Set counts it as sent and unanswered.
func (s *Set) AllowProbe(now time.Time, to netip.AddrPort, n int) bool {
	i := s.find(norm(to))
	if i < 0 || n < 0 {
		return false
	}
	e := &s.e[i]
	if e.Origin != OriginPacket || e.verified {
		return true
	}
	if int64(n) <= e.inBytes {
		e.inBytes -= int64(n)
		return true
	}
	if s.credit.spend(now, n-int(e.inBytes)) {
		e.inBytes = 0
		return true
	}
	return false
}

// Credit returns the credit counter, in octets, as last aged.
func (s *Set) Credit() int64 { return s.credit.n }
