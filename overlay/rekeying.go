package overlay

import (
	"time"
)

// Rekeying by time and by volume (DESIGN.md "SAs rekey by UPDATE ... by
// time, by volume and before sequence numbers run out"; RFC 7402 §6.8
// leaves the policy to the host). Sequence exhaustion is the data path's
// (esp.Outbound.NeedsRekey, Config.RekeyAfter); these two are checked on
// the control goroutine once a second (tick), for each outbound SA, and
// start a rekey with a new Diffie-Hellman exchange, so that the new keys
// do not derive from the old ones (forward secrecy).

const (
	// DefaultRekeyInterval: one hour, the lifetime IPsec stacks commonly
	// give an SA (strongSwan's default rekey time, for one). WireGuard's
	// two minutes buys forward secrecy at a finer grain for a handshake
	// every two minutes per peer; a HIP rekey with a new Diffie-Hellman
	// exchange is a signed UPDATE round trip, which an IoT device on a
	// battery should not make every two minutes. One hour bounds what one
	// stolen key opens to an hour of traffic.
	DefaultRekeyInterval = time.Hour
	// DefaultRekeyBytes: 64 GiB (2^36 octets, 2^32 AES blocks) sealed
	// under one key. For AES-GCM with the counter-based nonces of RFC
	// 4106 the confidentiality bound after σ blocks is about σ²/2^128
	// (the CFRG's AEAD usage limits); at 2^32 blocks that is 2^-64, far
	// below any practical attack, and for a busy 1 Gbit/s association it
	// means a rekey every 9 minutes or so. The CBC suites with HMAC have
	// the same 128-bit block birthday bound.
	DefaultRekeyBytes = 1 << 36
)

func (s *Stack) rekeyInterval() time.Duration {
	switch t := s.cfg.RekeyInterval; {
	case t < 0:
		return 0
	case t == 0:
		return DefaultRekeyInterval
	default:
		return t
	}
}

func (s *Stack) rekeyBytes() uint64 {
	switch b := s.cfg.RekeyBytes; {
	case b < 0:
		return 0
	case b == 0:
		return DefaultRekeyBytes
	default:
		return uint64(b)
	}
}

// outboundSince notes that p's outbound SA changed now: the time and the
// volume of the policy count from here.
func (p *peer) outboundSince(now time.Time) {
	p.saSince, p.saBase = monoOf(now), p.bytesOut.Load()
}

// rekeyDue starts a rekey of p's SAs when its outbound SA is older than
// the interval or has sealed more than the volume.
func (c *control) rekeyDue(p *peer, now time.Time) {
	s := c.s
	if p.saSince == 0 || !c.canRekey(p) {
		return
	}
	a := p.assoc
	age, vol := time.Duration(monoOf(now)-p.saSince), p.bytesOut.Load()-p.saBase
	iv, limit := s.rekeyInterval(), s.rekeyBytes()
	if (iv == 0 || age < iv) && (limit == 0 || vol < limit) {
		return
	}
	if err := a.Rekey(now, true); err != nil {
		s.log.Debug("rekey", "peer", p.hit.String(), "err", err)
		return
	}
	s.log.Info("rekey by policy", "peer", p.hit.String(), "age", age.Round(time.Second), "bytes", vol)
	p.outboundSince(now) // not again until this one completes, or the next period
	c.process(p, now)
}
