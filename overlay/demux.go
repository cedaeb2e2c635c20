package overlay

import "encoding/binary"

// Kind is what a datagram on the node's UDP port carries (DESIGN.md "One
// UDP port, three kinds of packet").
type Kind uint8

const (
	// KindInvalid: too short to be anything (fewer than 8 octets).
	KindInvalid Kind = iota
	// KindControl: a HIP control packet behind the 4-octet zero non-ESP
	// marker (RFC 5770 §5.1, RFC 3948 §2.2).
	KindControl
	// KindESP: an ESP packet; its first 4 octets are the non-zero SPI
	// (RFC 3948 §2.2).
	KindESP
	// KindSTUN: a STUN message (RFC 8489 §5): first two bits zero, the magic
	// cookie at octets 4..8, and a Message Length that matches the datagram.
	KindSTUN
)

var kindNames = [...]string{"invalid", "control", "esp", "stun"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(?)"
}

// stunMagicCookie is the fixed STUN Magic Cookie (RFC 8489 §5).
const stunMagicCookie = 0x2112A442

// stunHeaderLen is the fixed STUN header (RFC 8489 §5).
const stunHeaderLen = 20

// Classify says what a UDP payload received on the node's port is. It is a
// pure function of the octets and never panics:
//
//   - fewer than 8 octets: KindInvalid (not even an ESP header);
//   - first 4 octets zero: KindControl (the non-ESP marker);
//   - the STUN magic cookie at octets 4..8, the two most significant bits
//     zero, and a Message Length equal to the octets after the 20-octet
//     header (a multiple of 4): KindSTUN;
//   - otherwise: KindESP (a non-zero SPI).
//
// The length check goes beyond "cookie and two zero bits": an ESP packet
// whose SPI has its top two bits clear and whose sequence number happens to
// equal the cookie would otherwise be taken for STUN. With it, such a packet
// must also carry the right length in its sequence-number-adjacent octets,
// which a real STUN message always does (RFC 8489 §5: the length excludes
// the header and its last two bits are zero).
func Classify(b []byte) Kind {
	if len(b) < 8 {
		return KindInvalid
	}
	if b[0]|b[1]|b[2]|b[3] == 0 {
		return KindControl
	}
	if b[0]&0xC0 == 0 && binary.BigEndian.Uint32(b[4:8]) == stunMagicCookie &&
		len(b) >= stunHeaderLen && int(binary.BigEndian.Uint16(b[2:4])) == len(b)-stunHeaderLen {
		return KindSTUN
	}
	return KindESP
}
