package wire

import (
	"encoding/binary"
	"fmt"
)

// PacketType is the 7-bit HIP packet type (RFC 7401 §5.1, §5.3 Table 11).
type PacketType uint8

// Packet types of RFC 7401 §5.3.
const (
	I1        PacketType = 1  // §5.3.1
	R1        PacketType = 2  // §5.3.2
	I2        PacketType = 3  // §5.3.3
	R2        PacketType = 4  // §5.3.4
	UPDATE    PacketType = 16 // §5.3.5
	NOTIFY    PacketType = 17 // §5.3.6 (support optional)
	CLOSE     PacketType = 18 // §5.3.7
	CLOSE_ACK PacketType = 19 // §5.3.8
)

// String returns the RFC name of the packet type.
func (t PacketType) String() string {
	switch t {
	case I1:
		return "I1"
	case R1:
		return "R1"
	case I2:
		return "I2"
	case R2:
		return "R2"
	case UPDATE:
		return "UPDATE"
	case NOTIFY:
		return "NOTIFY"
	case CLOSE:
		return "CLOSE"
	case CLOSE_ACK:
		return "CLOSE_ACK"
	}
	return fmt.Sprintf("PacketType(%d)", uint8(t))
}

// Known reports whether t is one of the eight packet types of RFC 7401 §5.3.
// A packet of any other type MUST be dropped (§5.1).
func (t PacketType) Known() bool {
	return t >= I1 && t <= R2 || t >= UPDATE && t <= CLOSE_ACK
}

// Header constants (RFC 7401 §5.1).
const (
	// HeaderLen is the fixed header: 8 octets and the two HITs.
	HeaderLen = 40
	// Version is the HIP version this package speaks.
	Version = 2
	// NextHeaderNone is IPPROTO_NONE, the only Next Header value RFC 7401
	// describes.
	NextHeaderNone = 59
	// MaxPacketLen follows from the 8-bit Header Length: (255+1)*8 octets.
	MaxPacketLen = (255 + 1) * 8
	// MaxParamsLen is the room left for parameters: 255*8 - 32 = 2008.
	MaxParamsLen = MaxPacketLen - HeaderLen
	// ProtocolHIP is the IP protocol number of raw HIP (RFC 7401 §9).
	ProtocolHIP = 139
)

// ControlAnonymous is the A bit of the Controls field: the sender's HI is
// anonymous (RFC 7401 §5.1.2). The other bits MUST be zero when sent and
// ignored when received.
const ControlAnonymous = 0x0001

// Packet is a view over one HIP packet, from the Next Header octet to the end
// of the last parameter (RFC 7401 §5.1). It does not include the 4-octet zero
// marker of HIP over UDP. Obtain one from ParsePacket (or ParseUDPControl):
// the accessors assume its checks passed and read the bytes in place, without
// copying. The few Set methods write in place, for a sender that fills in a
// field after building (the checksum, or the receiver HIT and puzzle of a
// pre-built R1).
type Packet []byte

// ParsePacket checks b once and returns a view over the HIP packet it holds.
//
// It checks, in order: at least HeaderLen octets; Version 2 (a version-1
// packet, RFC 5201, returns a *VersionError); Header Length at least 4 and
// (Header Length+1)*8 no more than len(b); a packet type of §5.3; and the
// whole parameter chain: each TLV lies inside the packet with its padding
// (total length 11 + Length - (Length+3)%8, §5.2.1), and types never decrease
// (§5.2.1). Octets after the declared length are not part of the packet and
// are not returned (§5.1: trailing data MUST be ignored). The two fixed bits,
// the reserved bits and the padding octets are ignored as §5.1 and §5.2.1
// require of a receiver. The Next Header value is not checked either.
//
// ParsePacket does not allocate unless it returns an error. The returned
// view aliases b.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < HeaderLen {
		return nil, fmt.Errorf("%w: %d octets, the HIP header alone is %d", ErrTooShort, len(b), HeaderLen)
	}
	if v := b[3] >> 4; v != Version {
		return nil, &VersionError{Version: v}
	}
	hl := int(b[1])
	if hl < 4 {
		return nil, fmt.Errorf("%w: Header Length %d is below the minimum 4", ErrBadLength, hl)
	}
	n := (hl + 1) * 8
	if n > len(b) {
		return nil, fmt.Errorf("%w: Header Length %d means %d octets, only %d received", ErrBadLength, hl, n, len(b))
	}
	if t := PacketType(b[2] & 0x7f); !t.Known() {
		return nil, fmt.Errorf("%w: %d", ErrUnknownType, uint8(t))
	}
	p := Packet(b[:n])
	if err := checkParams(p, HeaderLen); err != nil {
		return nil, err
	}
	return p, nil
}

// NextHeader returns the Next Header field (59, IPPROTO_NONE, in practice).
func (p Packet) NextHeader() uint8 { return p[0] }

// HeaderLength returns the raw Header Length field: the packet length in
// 8-octet units, not counting the first 8 octets.
func (p Packet) HeaderLength() uint8 { return p[1] }

// Len returns the packet length in octets, (Header Length+1)*8.
func (p Packet) Len() int { return (int(p[1]) + 1) * 8 }

// Type returns the packet type.
func (p Packet) Type() PacketType { return PacketType(p[2] & 0x7f) }

// Version returns the HIP version (always 2 after ParsePacket).
func (p Packet) Version() uint8 { return p[3] >> 4 }

// Checksum returns the Checksum field.
func (p Packet) Checksum() uint16 { return binary.BigEndian.Uint16(p[4:]) }

// Controls returns the Controls field (§5.1.2).
func (p Packet) Controls() uint16 { return binary.BigEndian.Uint16(p[6:]) }

// Anonymous reports whether the A control bit is set.
func (p Packet) Anonymous() bool { return p.Controls()&ControlAnonymous != 0 }

// SenderHIT returns the Sender's HIT.
func (p Packet) SenderHIT() HIT { return HIT(p[8:24]) }

// ReceiverHIT returns the Receiver's HIT.
func (p Packet) ReceiverHIT() HIT { return HIT(p[24:40]) }

// SetChecksum writes the Checksum field in place.
func (p Packet) SetChecksum(c uint16) { binary.BigEndian.PutUint16(p[4:], c) }

// Params returns an iterator over the packet's parameters in wire order.
func (p Packet) Params() ParamIter { return ParamIter{buf: p, off: HeaderLen} }

// Param returns the first parameter of type t. Because parameters are sorted
// (§5.2.1) it stops at the first parameter with a greater type.
func (p Packet) Param(t ParamType) (Param, bool) {
	it := p.Params()
	for {
		q, ok := it.Next()
		if !ok || q.Type() > t {
			return Param{}, false
		}
		if q.Type() == t {
			return q, true
		}
	}
}
