package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// IP protocol numbers this package names.
const (
	ProtoUDP uint8 = 17
	ProtoESP uint8 = 50
	ProtoHIP uint8 = 139
)

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100
	ethHeaderLen  = 14
	sllHeaderLen  = 16
	ipv4MinLen    = 20
	ipv6HeaderLen = 40
	udpHeaderLen  = 8
)

// ErrNotIP reports a well-formed frame that carries something other than
// IPv4 or IPv6 (ARP, for example); callers reading real captures skip it.
var ErrNotIP = errors.New("pcap: frame does not carry IP")

// Frame is the network- and transport-layer view of one packet.
type Frame struct {
	Src, Dst netip.Addr
	Proto    uint8  // IPv4 protocol / IPv6 next header after extension headers
	Payload  []byte // IP payload; for Proto == 17, the UDP payload
	SrcPort  uint16 // set when Proto == 17
	DstPort  uint16 // set when Proto == 17
}

// Decode strips the link layer of p and decodes the IPv4 or IPv6 header
// and, for UDP, the UDP header. Payload aliases p.Data. Ethernet padding
// beyond the IP total length is dropped. IPv6 hop-by-hop, routing and
// destination options headers are skipped.
func Decode(p Packet) (Frame, error) {
	b := p.Data
	switch p.LinkType {
	case LinkTypeEthernet:
		if len(b) < ethHeaderLen {
			return Frame{}, fmt.Errorf("%w: short Ethernet header", ErrFormat)
		}
		et := binary.BigEndian.Uint16(b[12:])
		b = b[ethHeaderLen:]
		for et == etherTypeVLAN { // IEEE 802.1Q tag(s)
			if len(b) < 4 {
				return Frame{}, fmt.Errorf("%w: short VLAN tag", ErrFormat)
			}
			et = binary.BigEndian.Uint16(b[2:])
			b = b[4:]
		}
		return decodeIP(et, b)
	case LinkTypeLinuxSLL:
		if len(b) < sllHeaderLen {
			return Frame{}, fmt.Errorf("%w: short SLL header", ErrFormat)
		}
		return decodeIP(binary.BigEndian.Uint16(b[14:]), b[sllHeaderLen:])
	case LinkTypeRaw:
		if len(b) == 0 {
			return Frame{}, fmt.Errorf("%w: empty raw IP packet", ErrFormat)
		}
		switch b[0] >> 4 {
		case 4:
			return decodeIP(etherTypeIPv4, b)
		case 6:
			return decodeIP(etherTypeIPv6, b)
		}
		return Frame{}, fmt.Errorf("%w: IP version %d", ErrFormat, b[0]>>4)
	}
	return Frame{}, fmt.Errorf("%w: unsupported link type %d", ErrFormat, p.LinkType)
}

func decodeIP(etherType uint16, b []byte) (Frame, error) {
	var f Frame
	switch etherType {
	case etherTypeIPv4:
		if len(b) < ipv4MinLen || b[0]>>4 != 4 {
			return f, fmt.Errorf("%w: bad IPv4 header", ErrFormat)
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < ipv4MinLen || total < ihl || total > len(b) {
			return f, fmt.Errorf("%w: bad IPv4 lengths (ihl %d, total %d, have %d)", ErrFormat, ihl, total, len(b))
		}
		f.Src = netip.AddrFrom4([4]byte(b[12:16]))
		f.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		f.Proto = b[9]
		f.Payload = b[ihl:total]
		// A non-first fragment carries no transport header.
		if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
			return f, nil
		}
	case etherTypeIPv6:
		if len(b) < ipv6HeaderLen || b[0]>>4 != 6 {
			return f, fmt.Errorf("%w: bad IPv6 header", ErrFormat)
		}
		plen := int(binary.BigEndian.Uint16(b[4:]))
		if ipv6HeaderLen+plen > len(b) {
			return f, fmt.Errorf("%w: IPv6 payload length %d exceeds capture", ErrFormat, plen)
		}
		f.Src = netip.AddrFrom16([16]byte(b[8:24]))
		f.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		nh := b[6]
		pl := b[ipv6HeaderLen : ipv6HeaderLen+plen]
		for nh == 0 || nh == 43 || nh == 60 { // hop-by-hop, routing, destination options
			if len(pl) < 8 || len(pl) < (int(pl[1])+1)*8 {
				return f, fmt.Errorf("%w: bad IPv6 extension header", ErrFormat)
			}
			nh, pl = pl[0], pl[(int(pl[1])+1)*8:]
		}
		f.Proto, f.Payload = nh, pl
	default:
		return f, fmt.Errorf("%w: EtherType %#04x", ErrNotIP, etherType)
	}
	if f.Proto == ProtoUDP {
		u := f.Payload
		if len(u) < udpHeaderLen {
			return f, fmt.Errorf("%w: short UDP header", ErrFormat)
		}
		ulen := int(binary.BigEndian.Uint16(u[4:]))
		if ulen < udpHeaderLen || ulen > len(u) {
			return f, fmt.Errorf("%w: bad UDP length %d", ErrFormat, ulen)
		}
		f.SrcPort = binary.BigEndian.Uint16(u[0:])
		f.DstPort = binary.BigEndian.Uint16(u[2:])
		f.Payload = u[udpHeaderLen:ulen]
	}
	return f, nil
}
