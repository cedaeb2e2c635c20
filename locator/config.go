package locator

import "time"

// Config holds the timing of a Set. Every zero field takes its default;
// doc.go explains the defaults and the failover budget they add up to.
type Config struct {
	// KeepaliveInterval is how long the current path may carry nothing
	// from us before a keepalive refreshes the NAT mappings on it (RFC
	// 5770 §4.7: "MUST send keepalives every 15 seconds ... when the
	// control or data channel is idle"). Default 15 s; overlay passes its
	// Config.KeepaliveInterval.
	KeepaliveInterval time.Duration

	// AckDelay is how long after a packet arrives on the current path,
	// with nothing sent back, a passive keepalive answers it, so that a
	// peer sending one way sees its path work without probing. Default
	// 100 ms; at most half of SilenceTimeout.
	AckDelay time.Duration

	// SilenceTimeout is how long the current path may carry no
	// authenticated packet from the peer while we send before it is
	// probed. It grows to 2·RTT + AckDelay on slow paths. Default 250 ms.
	SilenceTimeout time.Duration

	// ProbeInterval is the time between probes of one check and after the
	// last one (at least 1.5·RTT once an RTT is measured). Default 200 ms.
	ProbeInterval time.Duration

	// ProbeCount is how many unanswered probes fail a locator. Default 3.
	ProbeCount int

	// RecoveryMin and RecoveryMax bound the back-off between checks of a
	// failed locator that would be preferred if it worked (the switch
	// back). Defaults 1 s and KeepaliveInterval.
	RecoveryMin, RecoveryMax time.Duration

	// StandbyInterval is how old the last answer from the best standby may
	// be while the association is in use before it is probed again.
	// Default KeepaliveInterval.
	StandbyInterval time.Duration

	// PairSilence is how long the current locator, when it is the pair ICE
	// nominated, may carry no authenticated packet from the peer before
	// it is probed, whether we send or not: both ends keep such a pair
	// alive with a keepalive every KeepaliveInterval (RFC 5770 §4.7), so
	// on a pair that works the peer's packets never stop for long.
	// Default 3·KeepaliveInterval (two keepalives lost in a row), at least
	// PairSilenceMin.
	PairSilence time.Duration
}

// Defaults (doc.go, "Timing").
const (
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultAckDelay          = 100 * time.Millisecond
	DefaultSilenceTimeout    = 250 * time.Millisecond
	DefaultProbeInterval     = 200 * time.Millisecond
	DefaultProbeCount        = 3
	DefaultRecoveryMin       = time.Second
	// PairSilenceMin is the least default PairSilence: with very short
	// keepalive intervals (tests), a pair is not probed for the jitter of
	// its keepalives.
	PairSilenceMin = time.Second
)

// maxRTT caps an RTT sample, so that one late answer cannot stretch the
// failure detection without bound.
const maxRTT = 2 * time.Second

func (c Config) withDefaults() Config {
	if c.KeepaliveInterval <= 0 {
		c.KeepaliveInterval = DefaultKeepaliveInterval
	}
	if c.SilenceTimeout <= 0 {
		c.SilenceTimeout = DefaultSilenceTimeout
	}
	if c.AckDelay <= 0 {
		c.AckDelay = DefaultAckDelay
	}
	// A passive keepalive that comes later than the peer's patience is
	// useless; half leaves room for the round trip.
	c.AckDelay = min(c.AckDelay, c.SilenceTimeout/2)
	if c.ProbeInterval <= 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeCount <= 0 {
		c.ProbeCount = DefaultProbeCount
	}
	c.ProbeCount = min(c.ProbeCount, 255) // Decision.Attempt
	if c.RecoveryMin <= 0 {
		c.RecoveryMin = DefaultRecoveryMin
	}
	if c.RecoveryMax <= 0 {
		c.RecoveryMax = c.KeepaliveInterval
	}
	c.RecoveryMax = max(c.RecoveryMax, c.RecoveryMin)
	if c.StandbyInterval <= 0 {
		c.StandbyInterval = c.KeepaliveInterval
	}
	if c.PairSilence <= 0 {
		c.PairSilence = max(3*c.KeepaliveInterval, PairSilenceMin)
	}
	return c
}
