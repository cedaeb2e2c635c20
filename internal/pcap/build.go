package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Fixed locally administered MAC addresses for synthesised Ethernet
// frames: the capture only needs a well-formed link layer.
var (
	macSrc = [6]byte{0x02, 0x68, 0x69, 0x70, 0x00, 0x01}
	macDst = [6]byte{0x02, 0x68, 0x69, 0x70, 0x00, 0x02}
)

var errFamily = errors.New("pcap: source and destination address families differ")

// WriteUDP writes one UDP datagram from src to dst carrying payload, framed
// for the Writer's link type (Ethernet, raw IP or Linux SLL) over IPv4 or
// IPv6. IPv4 gets a correct header checksum and a zero UDP checksum (which
// RFC 768 and, for UDP-encapsulated ESP, RFC 3948 §2.1 allow); IPv6 gets a
// correct UDP checksum, which RFC 8200 §8.1 requires.
func (w *Writer) WriteUDP(t time.Time, src, dst netip.AddrPort, payload []byte) error {
	if len(payload) > 0xffff-udpHeaderLen {
		return fmt.Errorf("pcap: UDP payload of %d bytes too long", len(payload))
	}
	var u [udpHeaderLen]byte
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(udpHeaderLen+len(payload)))
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	if sa.Is6() && da.Is6() {
		sum := pseudoSum(sa, da, ProtoUDP, udpHeaderLen+len(payload))
		sum = sumBytes(sum, u[:])
		sum = sumBytes(sum, payload)
		c := ^fold(sum)
		if c == 0 {
			c = 0xffff // RFC 768: a computed zero is sent as all ones
		}
		binary.BigEndian.PutUint16(u[6:], c)
	}
	return w.writeIP(t, sa, da, ProtoUDP, u[:], payload)
}

// WriteIP writes one IP packet from src to dst with protocol proto (for
// example 139 for raw HIP or 50 for raw ESP) carrying payload.
func (w *Writer) WriteIP(t time.Time, src, dst netip.Addr, proto uint8, payload []byte) error {
	return w.writeIP(t, src.Unmap(), dst.Unmap(), proto, nil, payload)
}

func (w *Writer) writeIP(t time.Time, src, dst netip.Addr, proto uint8, l4hdr, payload []byte) error {
	if src.Is4() != dst.Is4() || !src.IsValid() || !dst.IsValid() {
		return errFamily
	}
	b := w.buf[:0]
	var etherType uint16 = etherTypeIPv6
	if src.Is4() {
		etherType = etherTypeIPv4
	}
	switch w.linkType {
	case LinkTypeEthernet:
		b = append(b, macDst[:]...)
		b = append(b, macSrc[:]...)
		b = binary.BigEndian.AppendUint16(b, etherType)
	case LinkTypeLinuxSLL:
		b = binary.BigEndian.AppendUint16(b, 4) // packet type: sent by us
		b = binary.BigEndian.AppendUint16(b, 1) // ARPHRD_ETHER
		b = binary.BigEndian.AppendUint16(b, 6)
		b = append(b, macSrc[:]...)
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint16(b, etherType)
	case LinkTypeRaw:
	default:
		return fmt.Errorf("pcap: cannot synthesise frames for link type %d", w.linkType)
	}
	n := len(l4hdr) + len(payload)
	if src.Is4() {
		if ipv4MinLen+n > 0xffff {
			return fmt.Errorf("pcap: IPv4 packet too long")
		}
		ip := len(b)
		b = append(b, 0x45, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(ipv4MinLen+n))
		b = append(b, 0, 0, 0x40, 0, 64, proto, 0, 0) // id 0, DF, TTL 64
		s4, d4 := src.As4(), dst.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
		binary.BigEndian.PutUint16(b[ip+10:], ^fold(sumBytes(0, b[ip:])))
	} else {
		if n > 0xffff {
			return fmt.Errorf("pcap: IPv6 payload too long")
		}
		b = append(b, 0x60, 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
		b = append(b, proto, 64)
		s16, d16 := src.As16(), dst.As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = append(b, l4hdr...)
	b = append(b, payload...)
	w.buf = b
	return w.WritePacket(t, b)
}

// pseudoSum is the unfolded one's-complement sum of the IPv6 pseudo-header
// (RFC 8200 §8.1).
func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	s, d := src.As16(), dst.As16()
	sum := sumBytes(0, s[:])
	sum = sumBytes(sum, d[:])
	return sum + uint32(length>>16) + uint32(length&0xffff) + uint32(proto)
}

func sumBytes(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return fold32(sum)
}

func fold32(sum uint32) uint32 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum
}

func fold(sum uint32) uint16 { return uint16(fold32(sum)) }
