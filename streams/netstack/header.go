package netstack

import (
	"encoding/binary"

	"hipnet.dev/handshake/wire"
)

// The inner IPv6 header (RFC 8200 §3). netstack speaks IPv6 whose
// addresses are the two HITs; in BEET mode (RFC 7402 Appendix B) that
// header is implied by the SA and is not carried, so it is stripped on the
// way out and rebuilt on the way in.
const (
	ipv6HeaderLen = 40
	ipv6Version   = 6

	// protoTCP is the only next header this transport carries.
	protoTCP = 6
	// tcpMinHeaderLen is the shortest TCP header (RFC 9293 §3.1).
	tcpMinHeaderLen = 20
	// tcpMaxOptions is the TCP option space (RFC 9293 §3.1: a Data
	// Offset of at most 15 words); netstack sizes data segments so that
	// the largest options still fit under the MSS.
	tcpMaxOptions = 40

	// hopLimit of a rebuilt inbound header. The value is never checked
	// (the packet does not travel further); 64 is what a host would send.
	hopLimit = 64

	// maxSegment is the largest segment an IPv6 Payload Length can
	// describe without a jumbogram option.
	maxSegment = 0xFFFF
)

// dropReason says why an outbound packet from netstack was not handed to
// the Link. Each has a counter in Stats.
type dropReason uint8

const (
	dropNone      dropReason = iota
	dropMalformed            // shorter than its headers, not version 6, or a Payload Length that disagrees with the packet
	dropExtension            // an IPv6 extension header follows the fixed header
	dropProtocol             // an upper-layer protocol other than TCP (ICMPv6 from NDP or MLD, UDP)
	dropSource               // the source is not the local HIT (netstack has no other address)
)

func (r dropReason) String() string {
	switch r {
	case dropNone:
		return "none"
	case dropMalformed:
		return "malformed"
	case dropExtension:
		return "extension header"
	case dropProtocol:
		return "not TCP"
	case dropSource:
		return "source is not the local HIT"
	}
	return "unknown"
}

// isExtensionHeader reports whether nh names an IPv6 extension header
// (RFC 8200 §4, the IANA "IPv6 Extension Header Types" registry) rather
// than an upper-layer protocol. HIP (139) and Shim6 (140) are in that
// registry too.
func isExtensionHeader(nh uint8) bool {
	switch nh {
	case 0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254:
		return true
	}
	return false
}

// stripIPv6 checks that pkt is a fixed IPv6 header from local followed
// directly by a TCP segment, and returns the destination HIT and the
// segment, which aliases pkt. Anything else is refused with the reason:
// a BEET SA carries one transport segment between the two HITs and has no
// place for extension headers (RFC 7402 Appendix B), and the only protocol
// this transport puts on the SA is TCP. Traffic class, flow label and hop
// limit are dropped with the header: BEET does not carry them.
func stripIPv6(pkt []byte, local wire.HIT) (dst wire.HIT, seg []byte, why dropReason) {
	if len(pkt) < ipv6HeaderLen+tcpMinHeaderLen || pkt[0]>>4 != ipv6Version {
		return dst, nil, dropMalformed
	}
	if int(binary.BigEndian.Uint16(pkt[4:6])) != len(pkt)-ipv6HeaderLen {
		return dst, nil, dropMalformed
	}
	switch nh := pkt[6]; {
	case nh == protoTCP:
	case isExtensionHeader(nh):
		return dst, nil, dropExtension
	default:
		return dst, nil, dropProtocol
	}
	if wire.HIT(pkt[8:24]) != local {
		return dst, nil, dropSource
	}
	return wire.HIT(pkt[24:40]), pkt[ipv6HeaderLen:], dropNone
}

// putIPv6 writes into h, which must be ipv6HeaderLen octets, the header of
// an inbound segment: from src to dst, next header proto, payloadLen
// octets after it. Traffic class and flow label are zero.
func putIPv6(h []byte, src, dst wire.HIT, proto uint8, payloadLen int) {
	_ = h[ipv6HeaderLen-1]
	binary.BigEndian.PutUint32(h[0:4], ipv6Version<<28)
	binary.BigEndian.PutUint16(h[4:6], uint16(payloadLen))
	h[6] = proto
	h[7] = hopLimit
	copy(h[8:24], src[:])
	copy(h[24:40], dst[:])
}
