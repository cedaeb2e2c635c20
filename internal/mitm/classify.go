package mitm

import (
	"encoding/binary"
	"strconv"
)

// Kind is what a datagram on a hipnet port is, told by its first octets
// as the node's demultiplexer tells them (DESIGN.md "One UDP port").
type Kind uint8

const (
	KindOther Kind = iota // shorter than 8 octets, or a zero marker without a HIP header
	KindHIP               // four zero octets (the non-ESP marker, RFC 5770 §5.1) and a HIP header
	KindESP               // a non-zero SPI (RFC 3948 §2.2)
	KindSTUN              // STUN: first two bits 00 and the magic cookie at octets 4..8 (RFC 8489 §5)
)

func (k Kind) String() string {
	switch k {
	case KindHIP:
		return "HIP"
	case KindESP:
		return "ESP"
	case KindSTUN:
		return "STUN"
	}
	return "other"
}

// HIP packet types (RFC 7401 §5.3, the low seven bits of the third octet
// of the HIP header); hipnet.dev/handshake/wire has the same numbers.
const (
	TypeI1       = 1
	TypeR1       = 2
	TypeI2       = 3
	TypeR2       = 4
	TypeUPDATE   = 16
	TypeNOTIFY   = 17
	TypeCLOSE    = 18
	TypeCLOSEACK = 19
)

// markerLen is the non-ESP marker before a HIP packet over UDP.
const markerLen = 4

// hipHeaderLen is the fixed HIP header (RFC 7401 §5.1).
const hipHeaderLen = 40

const stunCookie = 0x2112A442

// Classify tells what a UDP payload is.
func Classify(b []byte) Kind {
	if len(b) < 8 {
		return KindOther
	}
	if binary.BigEndian.Uint32(b) == 0 {
		if len(b) >= markerLen+hipHeaderLen {
			return KindHIP
		}
		return KindOther
	}
	if b[0]&0xc0 == 0 && binary.BigEndian.Uint32(b[4:]) == stunCookie {
		return KindSTUN
	}
	return KindESP
}

// HIPType returns the HIP packet type of a UDP payload that is a HIP
// control packet (see Classify).
func HIPType(b []byte) (uint8, bool) {
	if Classify(b) != KindHIP {
		return 0, false
	}
	return b[markerLen+2] & 0x7f, true
}

// SPI returns the SPI of a UDP payload that is ESP.
func SPI(b []byte) (uint32, bool) {
	if Classify(b) != KindESP {
		return 0, false
	}
	return binary.BigEndian.Uint32(b), true
}

// TypeName names a HIP packet type for messages.
func TypeName(t uint8) string {
	switch t {
	case TypeI1:
		return "I1"
	case TypeR1:
		return "R1"
	case TypeI2:
		return "I2"
	case TypeR2:
		return "R2"
	case TypeUPDATE:
		return "UPDATE"
	case TypeNOTIFY:
		return "NOTIFY"
	case TypeCLOSE:
		return "CLOSE"
	case TypeCLOSEACK:
		return "CLOSE_ACK"
	}
	return "HIP(" + strconv.Itoa(int(t)) + ")"
}
