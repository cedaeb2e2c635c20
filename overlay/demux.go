package overlay

import "hipnet.dev/nat"

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

// Classify says what a UDP payload received on the node's port is. It is a
// pure function of the octets and never panics:
//
//   - fewer than 8 octets: KindInvalid (not even an ESP header);
//   - first 4 octets zero: KindControl (the non-ESP marker);
//   - exactly one STUN message as nat.IsSTUN frames it (the two most
//     significant bits zero, the magic cookie at octets 4..8, a Message
//     Length equal to the octets after the 20-octet header): KindSTUN;
//   - otherwise: KindESP (a non-zero SPI).
//
// The length check goes beyond "cookie and two zero bits": an ESP packet
// whose SPI has its top two bits clear and whose sequence number happens to
// equal the cookie would otherwise be taken for STUN.
func Classify(b []byte) Kind {
	if len(b) < 8 {
		return KindInvalid
	}
	if b[0]|b[1]|b[2]|b[3] == 0 {
		return KindControl
	}
	if nat.IsSTUN(b) {
		return KindSTUN
	}
	return KindESP
}
