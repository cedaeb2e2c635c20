package esp

import (
	"encoding/binary"
	"math/bits"
)

// BEET inner format (RFC 7402 Appendix B.1.2, DESIGN.md "Data path"): the
// ESP payload is a bare transport segment, no inner IP header. Its
// addresses are implied by the SA: the two HITs. For UDP (Next Header 17)
// the checksum is computed over the IPv6 pseudo-header built from the
// HITs, exactly as if the segment had travelled in an IPv6 packet between
// them (RFC 7401 §4.5.1, RFC 8200 §8.1).

// ProtoUDP is the Next Header value of a BEET UDP segment.
const ProtoUDP uint8 = 17

const udpHeaderLen = 8

// AppendUDP appends a UDP segment from srcHIT:srcPort to dstHIT:dstPort
// carrying payload to dst and returns the extended slice. It allocates
// nothing when dst has room for 8+len(payload) octets. A segment longer
// than 65535 octets gets Length 0 as in an IPv6 jumbogram (RFC 2675 §4);
// ParseUDP rejects such segments.
func AppendUDP(dst []byte, srcHIT, dstHIT [16]byte, srcPort, dstPort uint16, payload []byte) []byte {
	n := udpHeaderLen + len(payload)
	ret, seg := grow(dst, n)
	// Payload first: it may overlap the header area in dst's free space.
	copy(seg[udpHeaderLen:], payload)
	binary.BigEndian.PutUint16(seg[0:], srcPort)
	binary.BigEndian.PutUint16(seg[2:], dstPort)
	length := uint16(0)
	if n <= 0xffff {
		length = uint16(n)
	}
	binary.BigEndian.PutUint16(seg[4:], length)
	binary.BigEndian.PutUint16(seg[6:], 0)
	c := ^fold(udpSum(srcHIT, dstHIT, seg))
	if c == 0 {
		c = 0xffff // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(seg[6:], c)
	return ret
}

// ParseUDP checks a BEET UDP segment received on an SA between srcHIT and
// dstHIT and returns its ports and payload (aliasing seg). The Length
// field must be at least 8 and at most len(seg): octets beyond it are
// traffic-flow-confidentiality padding (RFC 4303 §2.7), which the checksum
// does not cover. The checksum must verify; zero, "no checksum", is not
// allowed over IPv6 (RFC 8200 §8.1).
func ParseUDP(seg []byte, srcHIT, dstHIT [16]byte) (srcPort, dstPort uint16, payload []byte, err error) {
	if len(seg) < udpHeaderLen {
		return 0, 0, nil, ErrShortPacket
	}
	n := int(binary.BigEndian.Uint16(seg[4:]))
	if n < udpHeaderLen || n > len(seg) {
		return 0, 0, nil, ErrMalformed
	}
	seg = seg[:n]
	if binary.BigEndian.Uint16(seg[6:]) == 0 || fold(udpSum(srcHIT, dstHIT, seg)) != 0xffff {
		return 0, 0, nil, ErrChecksum
	}
	return binary.BigEndian.Uint16(seg[0:]), binary.BigEndian.Uint16(seg[2:]), seg[udpHeaderLen:], nil
}

// udpSum is the unfolded one's-complement sum of the HIT pseudo-header
// and a UDP segment.
func udpSum(src, dst [16]byte, seg []byte) uint64 { return hitSum(src, dst, ProtoUDP, seg) }

// hitSum is the unfolded one's-complement sum of the IPv6 pseudo-header
// (source HIT, destination HIT, 32-bit upper-layer length, zero, next
// header; RFC 8200 §8.1 as RFC 7401 §4.5.1 applies it) and the segment.
func hitSum(src, dst [16]byte, proto uint8, seg []byte) uint64 {
	var sum uint64
	for i := 0; i < 16; i += 4 {
		sum += uint64(binary.BigEndian.Uint32(src[i:]))
		sum += uint64(binary.BigEndian.Uint32(dst[i:]))
	}
	sum += uint64(len(seg)) + uint64(proto)
	return checksumAdd(sum, seg)
}

// checksumAdd adds b to a one's-complement sum (RFC 1071) of big-endian
// 16-bit words; an odd final octet is padded with zero.
//
// It sums b as little-endian words and swaps the folded result, which
// RFC 1071 §2(B) allows ("byte order independence"): on the machines
// hipnet runs on (amd64, arm64, arm, mipsle, riscv64) the loads then need
// no byte swap. Four 32-bit words go into four 64-bit accumulators a turn,
// so no add waits for a carry from the one before (an ADC chain would):
// 2^32 words of headroom each is far beyond any segment.
func checksumAdd(sum uint64, b []byte) uint64 {
	var s0, s1, s2, s3 uint64
	for len(b) >= 32 {
		s0 += uint64(binary.LittleEndian.Uint32(b)) + uint64(binary.LittleEndian.Uint32(b[4:]))
		s1 += uint64(binary.LittleEndian.Uint32(b[8:])) + uint64(binary.LittleEndian.Uint32(b[12:]))
		s2 += uint64(binary.LittleEndian.Uint32(b[16:])) + uint64(binary.LittleEndian.Uint32(b[20:]))
		s3 += uint64(binary.LittleEndian.Uint32(b[24:])) + uint64(binary.LittleEndian.Uint32(b[28:]))
		b = b[32:]
	}
	for len(b) >= 4 {
		s0 += uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		s1 += uint64(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s2 += uint64(b[0]) // the high octet of a zero-padded big-endian word
	}
	le := (s0 & 0xffffffff) + s0>>32 + (s1 & 0xffffffff) + s1>>32 +
		(s2 & 0xffffffff) + s2>>32 + (s3 & 0xffffffff) + s3>>32
	return sum + uint64(bits.ReverseBytes16(fold(le)))
}

// fold reduces a 64-bit one's-complement sum to 16 bits.
func fold(sum uint64) uint16 {
	sum = sum>>32 + sum&0xffffffff
	sum = sum>>32 + sum&0xffffffff
	sum = sum>>16 + sum&0xffff
	sum = sum>>16 + sum&0xffff
	return uint16(sum)
}
