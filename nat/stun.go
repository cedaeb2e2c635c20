package nat

import (
	"encoding/binary"
)

// The few STUN (RFC 8489 §5) fields this package reads itself, without
// decoding a message: the Mux classifies every STUN packet the node reads,
// so it must be cheap, allocation-free and safe on any input.

const (
	stunHeaderLen   = 20
	stunMagicCookie = 0x2112A442
	stunMethodBind  = 0x001
	attrUsername    = 0x0006
	attrFingerprint = 0x8028

	attrMessageIntegrity    = 0x0008
	attrMessageIntegrity256 = 0x001c
	fingerprintXOR          = 0x5354554e
)

// STUN message classes (RFC 8489 §5).
const (
	classRequest    = 0
	classIndication = 1
	classSuccess    = 2
	classError      = 3
)

// stunHeader is what stunParse reads from a message header.
type stunHeader struct {
	method uint16
	class  uint8
	txID   [12]byte
}

// stunParse checks that b is exactly one STUN message: the two leading zero
// bits, the magic cookie, and a Message Length that is a multiple of 4 and
// accounts for every octet after the header (RFC 8489 §5). It does not look
// at attributes.
func stunParse(b []byte) (stunHeader, bool) {
	if len(b) < stunHeaderLen || b[0]&0xc0 != 0 ||
		binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return stunHeader{}, false
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n%4 != 0 || n != len(b)-stunHeaderLen {
		return stunHeader{}, false
	}
	t := binary.BigEndian.Uint16(b[0:2])
	h := stunHeader{
		// M11..M0 around the class bits C1 (bit 8) and C0 (bit 4).
		method: t&0x000f | (t&0x00e0)>>1 | (t&0x3e00)>>2,
		class:  uint8((t>>4)&1 | (t>>7)&2),
	}
	copy(h.txID[:], b[8:20])
	return h, true
}

// stunAttr returns the value of the first attribute of type typ in a
// message stunParse accepted, walking the attributes with their padding
// (RFC 8489 §14). Like a STUN agent it ignores what follows
// MESSAGE-INTEGRITY but MESSAGE-INTEGRITY-SHA256 and FINGERPRINT, and what
// follows MESSAGE-INTEGRITY-SHA256 but FINGERPRINT (§14.5, §14.6), as
// pion's decoder does. It returns false when there is no such attribute or
// an attribute runs past the end.
func stunAttr(b []byte, typ uint16) ([]byte, bool) {
	var seenMI, seenMI256 bool
	for off := stunHeaderLen; off+4 <= len(b); {
		t := binary.BigEndian.Uint16(b[off:])
		n := int(binary.BigEndian.Uint16(b[off+2:]))
		v := off + 4
		if n > len(b)-v {
			return nil, false
		}
		off = v + (n+3)&^3
		ignored := t != attrFingerprint && (seenMI && t != attrMessageIntegrity256 || !seenMI && seenMI256)
		if ignored {
			continue
		}
		if t == typ {
			return b[v : v+n : v+n], true
		}
		seenMI = seenMI || t == attrMessageIntegrity
		seenMI256 = seenMI256 || t == attrMessageIntegrity256
	}
	return nil, false
}

// isBindingRequest reports whether b is a STUN Binding request, and its
// transaction ID.
func isBindingRequest(b []byte) ([12]byte, bool) {
	h, ok := stunParse(b)
	if !ok || h.method != stunMethodBind || h.class != classRequest {
		return [12]byte{}, false
	}
	return h.txID, true
}
