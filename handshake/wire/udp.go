package wire

import (
	"encoding/binary"
	"fmt"
)

// NonESPMarkerLen is the length of the non-ESP marker: 4 zero octets where an
// ESP packet has its SPI (RFC 3948 §2.2). HIP control packets over UDP carry
// it between the UDP header and the HIP header (RFC 5770 §5.1, RFC 9028
// §5.1), which is how one UDP port carries both HIP and ESP: a payload whose
// first 4 octets are zero is HIP, anything else is an ESP SPI (which MUST
// NOT be zero, RFC 3948 §2.1).
const NonESPMarkerLen = 4

// HasNonESPMarker reports whether a UDP payload starts with the 4 zero
// octets of the non-ESP marker.
func HasNonESPMarker(udpPayload []byte) bool {
	return len(udpPayload) >= NonESPMarkerLen && binary.BigEndian.Uint32(udpPayload) == 0
}

// AppendUDPControl appends to dst the UDP payload that carries the HIP packet
// pkt: the non-ESP marker, then pkt with its Checksum field forced to zero,
// since over UDP "the HIP header checksum MUST be zero" (RFC 5770 §5.1,
// RFC 9028 §5.1). pkt itself is not modified.
func AppendUDPControl(dst, pkt []byte) []byte {
	dst = append(dst, 0, 0, 0, 0)
	off := len(dst)
	dst = append(dst, pkt...)
	if len(pkt) >= 6 {
		dst[off+4], dst[off+5] = 0, 0
	}
	return dst
}

// ParseUDPControl parses the payload of a UDP datagram that carries a HIP
// control packet: the non-ESP marker (else ErrMarker), then the packet as
// ParsePacket checks it, whose Checksum field must be zero (else
// ErrChecksum).
//
// RFC 5770 §5.1 and RFC 9028 §5.1 state the zero checksum as a sender rule
// ("MUST be zero") and do not tell the receiver what to do otherwise. This
// package rejects a non-zero value: such a checksum is computed over IP
// addresses a NAT may have rewritten, so its presence means the sender does
// not follow the UDP encapsulation rules; UDP's own checksum protects the
// packet. The returned view aliases udpPayload.
func ParseUDPControl(udpPayload []byte) (Packet, error) {
	if len(udpPayload) < NonESPMarkerLen {
		return nil, fmt.Errorf("%w: UDP payload of %d octets", ErrTooShort, len(udpPayload))
	}
	if !HasNonESPMarker(udpPayload) {
		return nil, fmt.Errorf("%w: first octets % x", ErrMarker, udpPayload[:NonESPMarkerLen])
	}
	p, err := ParsePacket(udpPayload[NonESPMarkerLen:])
	if err != nil {
		return nil, err
	}
	if c := p.Checksum(); c != 0 {
		return nil, fmt.Errorf("%w: checksum 0x%04x over UDP, where it MUST be zero (RFC 5770 §5.1)", ErrChecksum, c)
	}
	return p, nil
}
