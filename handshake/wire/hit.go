package wire

import (
	"fmt"
	"net/netip"
)

// HIT is a Host Identity Tag: a 128-bit ORCHIDv2 (RFC 7343) derived from a
// Host Identity, carried in the HIP header (RFC 7401 §5.1) and used as the
// address of a peer. It is a comparable value type: compare with ==.
type HIT [16]byte

// String returns the IPv6 text form of the HIT (RFC 5952 canonical form).
func (h HIT) String() string { return netip.AddrFrom16(h).String() }

// Addr returns the HIT as an IPv6 address.
func (h HIT) Addr() netip.Addr { return netip.AddrFrom16(h) }

// ParseHIT parses the IPv6 text form of a HIT. It fails unless the address
// lies in the ORCHIDv2 prefix 2001:20::/28 (RFC 7343 §2, RFC 7401 §3).
func ParseHIT(s string) (HIT, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return HIT{}, fmt.Errorf("%w: %v", ErrBadHIT, err)
	}
	if !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return HIT{}, fmt.Errorf("%w: %q is not a plain IPv6 address", ErrBadHIT, s)
	}
	h := HIT(a.As16())
	if !h.IsORCHIDv2() {
		return HIT{}, fmt.Errorf("%w: %q is outside the ORCHIDv2 prefix 2001:20::/28", ErrBadHIT, s)
	}
	return h, nil
}

// MustParseHIT is ParseHIT for constants and tests; it panics on error.
func MustParseHIT(s string) HIT {
	h, err := ParseHIT(s)
	if err != nil {
		panic(err)
	}
	return h
}

// HITFromAddr converts an IPv6 address to a HIT without checking the prefix
// (the HITs in a received header are not checked either: a NOTIFY may carry
// a zero receiver HIT, RFC 7401 §5.3.6).
func HITFromAddr(a netip.Addr) HIT { return HIT(a.As16()) }

// OGA returns the 4-bit ORCHID Generation Algorithm ID that follows the
// 28-bit prefix; for HIPv2 it is the HIT Suite ID (RFC 7343 §2, RFC 7401
// §5.2.10).
func (h HIT) OGA() uint8 { return h[3] & 0x0f }

// IsORCHIDv2 reports whether h lies in 2001:20::/28.
func (h HIT) IsORCHIDv2() bool {
	return h[0] == 0x20 && h[1] == 0x01 && h[2] == 0x00 && h[3]&0xf0 == 0x20
}

// Compare compares h and o as unsigned 128-bit big-endian integers and returns
// -1, 0 or 1. RFC 7401 uses this order to name HOST_g and HOST_l (§6.5) and to
// sort the HITs in the KEYMAT info string.
func (h HIT) Compare(o HIT) int {
	for i := range h {
		switch {
		case h[i] < o[i]:
			return -1
		case h[i] > o[i]:
			return 1
		}
	}
	return 0
}

// IsZero reports whether h is the all-zero HIT (opportunistic mode, §4.1.8,
// or an unknown receiver in NOTIFY, §5.3.6).
func (h HIT) IsZero() bool { return h == HIT{} }

// MarshalText writes the HIT in its IPv6 text form, so that JSON and other
// text encodings show "2001:2x::…" rather than 16 numbers.
func (h HIT) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses the IPv6 text form (ParseHIT), or "::", the zero
// HIT (an unknown one) as MarshalText writes it.
func (h *HIT) UnmarshalText(b []byte) error {
	if string(b) == "::" {
		*h = HIT{}
		return nil
	}
	v, err := ParseHIT(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}
