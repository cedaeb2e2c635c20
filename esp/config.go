package esp

import "io"

// Defaults and limits for Config.
const (
	// DefaultReplayWindow is the inbound anti-replay window when
	// Config.ReplayWindow is zero. RFC 4303 §3.4.3 asks for at least 32
	// and recommends 64; HIP over UDP across multipath and relays reorders
	// more, so hipnet starts at 1024.
	DefaultReplayWindow = 1024
	// MinReplayWindow is the smallest window (one 64-bit block).
	MinReplayWindow = 64
	// MaxReplayWindow bounds the bitmap at 128 KiB.
	MaxReplayWindow = 1 << 20
	// DefaultRekeyAfter is Outbound.NeedsRekey's threshold when
	// Config.RekeyAfter is zero: 2^32 - 2^20 packets, early enough that a
	// rekey by UPDATE completes before the low 32 bits wrap, so even a peer
	// that keeps only 32 bits of state never sees a wrap.
	DefaultRekeyAfter uint64 = 1<<32 - 1<<20
)

// Config describes one direction of an ESP security association.
type Config struct {
	// SPI is the Security Parameters Index (RFC 4303 §2.1). Must be
	// non-zero: zero is the non-ESP marker of HIP and IKE over UDP
	// (RFC 3948 §2.2, RFC 5770 §5.1).
	SPI uint32
	// Suite is the negotiated ESP_TRANSFORM suite.
	Suite Suite
	// EncKey and AuthKey are the keys drawn from KEYMAT (RFC 7402 §7);
	// their lengths must equal Suite.KeyLen. They are copied.
	EncKey  []byte
	AuthKey []byte
	// ReplayWindow (inbound only) is the anti-replay window in packets.
	// Zero means DefaultReplayWindow. Values are clamped to
	// [MinReplayWindow, MaxReplayWindow] and then rounded up to the RFC
	// 6479 layout: (M-1)*64 for a power-of-two M blocks of 64 bits
	// (1024 becomes 1984). Inbound.ReplayWindow reports the result.
	ReplayWindow int
	// RekeyAfter (outbound only): NeedsRekey turns true once this many
	// packets were sealed. Zero means DefaultRekeyAfter.
	RekeyAfter uint64
	// Rand (outbound CBC suites only) supplies the 16-octet key that makes
	// CBC IVs unpredictable (RFC 3602 §3). Nil means crypto/rand.Reader.
	// Tests pass a fixed reader to reproduce packets.
	Rand io.Reader
}

// check validates c and returns the suite's key lengths.
func (c *Config) check() error {
	if c.SPI == 0 {
		return ErrBadSPI
	}
	if !c.Suite.Supported() {
		return ErrUnsupportedSuite
	}
	enc, auth := c.Suite.KeyLen()
	if len(c.EncKey) != enc || len(c.AuthKey) != auth {
		return ErrKeyLength
	}
	return nil
}
