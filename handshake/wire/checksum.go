package wire

import (
	"encoding/binary"
	"net/netip"
)

// Checksum computes the HIP checksum of the packet pkt sent from src to dst
// (RFC 7401 §5.1.1): the Internet checksum over a pseudo header and the
// packet, with the Checksum field taken as zero.
//
// The pseudo header is the IPv6 one (RFC 2460 §8.1) when either address is
// IPv6, or the IPv4 UDP one (RFC 768) when both are IPv4 (IPv4-mapped IPv6
// addresses count as IPv4); the protocol is 139 in both, and the length is
// (Header Length+1)*8, read from pkt. The sum covers that many octets of pkt
// (fewer if pkt is shorter).
//
// HIP over UDP does not use this checksum: it MUST be zero (RFC 5770 §5.1).
func Checksum(pkt []byte, src, dst netip.Addr) uint16 {
	length := len(pkt)
	if len(pkt) >= 2 {
		length = (int(pkt[1]) + 1) * 8
	}
	var sum uint64
	src, dst = src.Unmap(), dst.Unmap()
	if src.Is4() && dst.Is4() {
		s, d := src.As4(), dst.As4()
		sum += uint64(binary.BigEndian.Uint32(s[:]))
		sum += uint64(binary.BigEndian.Uint32(d[:]))
		sum += ProtocolHIP + uint64(length) // zero octet, protocol, 16-bit length
	} else {
		s, d := src.As16(), dst.As16()
		sum = sumWords(sum, s[:])
		sum = sumWords(sum, d[:])
		sum += uint64(length) + ProtocolHIP // 32-bit length, 3 zero octets, next header
	}
	body := pkt
	if len(body) > length {
		body = body[:length]
	}
	if len(body) >= 6 {
		sum = sumWords(sum, body[:4])
		body = body[6:] // the Checksum field counts as zero
		if len(body) > 0 {
			// body now starts at an even offset (6), so word alignment holds.
			sum = sumWords(sum, body)
		}
	} else {
		var tmp [6]byte
		copy(tmp[:], body)
		sum = sumWords(sum, tmp[:4])
	}
	return ^fold(sum)
}

// sumWords adds b to sum as big-endian 16-bit words; an odd final octet is
// padded with a zero octet.
func sumWords(sum uint64, b []byte) uint64 {
	for len(b) >= 8 {
		sum += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

// fold reduces a one's-complement sum to 16 bits.
func fold(sum uint64) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// VerifyChecksum reports whether the packet's Checksum field matches the one
// computed for the given IP addresses. A packet that fails MUST be dropped
// silently, without an ICMP message (RFC 7401 §5.4.2).
func (p Packet) VerifyChecksum(src, dst netip.Addr) bool {
	return p.Checksum() == Checksum(p, src, dst)
}

// FillChecksum computes the checksum of the packet in pkt for src and dst and
// writes it into the Checksum field, for HIP sent directly over IP.
func FillChecksum(pkt []byte, src, dst netip.Addr) {
	if len(pkt) < 6 {
		return
	}
	binary.BigEndian.PutUint16(pkt[4:], Checksum(pkt, src, dst))
}
