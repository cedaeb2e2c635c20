package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// What covers the relay and rendezvous parameters. HIP_MAC and
// HIP_SIGNATURE cover the packet up to themselves (RFC 7401 §6.4), and
// parameters are sorted by type (§5.2.1), so the type number decides:
//
//   - REG_FROM (950), RELAYED_ADDRESS (4650) and MAPPED_ADDRESS (4660) are
//     below HIP_MAC (61505) and covered by HIP_MAC and HIP_SIGNATURE.
//     "Of the three [REG_FROM, RELAY_FROM, RELAY_TO], only REG_FROM is
//     covered by the signature" (RFC 9028 §5.6).
//   - RELAY_FROM (63998) and RELAY_TO (64002) lie in the "Rendezvous and
//     relaying" range 63488-64511, after HIP_SIGNATURE (61697): neither
//     HIP_MAC nor any signature covers them. A relay appends RELAY_FROM to a
//     packet it forwards and protects it with RELAY_HMAC (RFC 9028 §4.5
//     step 2); a Responder puts RELAY_TO in R1 outside the signature "to
//     allow pre-created R1 packets" (step 3). Step 7 calls RELAY_TO in R2
//     "protected by the HMAC", but HIP_MAC_2 (61569) precedes it, so only a
//     RELAY_HMAC can.
//   - FROM (65498), RVS_HMAC (65500), VIA_RVS (65502) and RELAY_HMAC
//     (65520) are the last parameters of a packet, after HIP_SIGNATURE and
//     not covered by it. An RVS that adds FROM MUST add RVS_HMAC, which
//     covers FROM but not VIA_RVS (RFC 8004 §4.2.1, §4.2.2); RELAY_HMAC
//     covers everything before it. Compute both over AppendCovered up to
//     their own offset, like HIP_MAC.

// addrLen is an IPv6 address or an IPv4-mapped IPv4 address.
const addrLen = 16

// addrAt reads a 16-octet address, unmapping IPv4-mapped addresses. It does
// not allocate.
func addrAt(b []byte) netip.Addr { return netip.AddrFrom16([addrLen]byte(b[:addrLen])).Unmap() }

// putAddr writes a as 16 octets: IPv4 as IPv4-mapped IPv6, any zone
// dropped.
func putAddr(b []byte, a netip.Addr) {
	a16 := a.As16()
	copy(b, a16[:])
}

// validateAddr checks that a can be sent: a valid address without a zone,
// which the 16-octet field could not carry.
func validateAddr(t ParamType, a netip.Addr, what string) error {
	switch {
	case !a.IsValid():
		return valueError(t, what+": no address (the zero netip.Addr)")
	case a.Zone() != "":
		return valueError(t, fmt.Sprintf("%s: address %v has a zone, which the wire cannot carry", what, a))
	}
	return nil
}

// TransportAddress is the body shared by REG_FROM, RELAY_FROM, RELAY_TO
// (RFC 5770 §5.6, RFC 9028 §5.6), RELAYED_ADDRESS and MAPPED_ADDRESS
// (RFC 9028 §5.12): Port(16) | Protocol(8) | Reserved(8) | Address(128),
// Length 20. Type tells which one it is.
//
//   - REG_FROM: the transport address a relay server saw a registration
//     come from (the client's server-reflexive candidate).
//   - RELAY_FROM: where a relayed packet came from; RELAY_TO: where to
//     forward one. Neither is covered by HIP_MAC or a signature (see the
//     comment at the top of relay.go).
//   - RELAYED_ADDRESS: the UDP port a data relay allocated to the client;
//     MAPPED_ADDRESS: the address a connectivity check came from.
//
// Port is zero and Protocol 0 for plain IP; Protocol is 17 for UDP, the
// only value RFC 9028 allows in RELAYED_ADDRESS and MAPPED_ADDRESS (not
// checked here). Addr holds IPv4 unmapped; the wire carries it
// IPv4-mapped.
type TransportAddress struct {
	Type     ParamType // ParamRegFrom, ParamRelayFrom, ParamRelayTo, ParamRelayedAddress or ParamMappedAddress
	Port     uint16
	Protocol uint8
	Addr     netip.Addr
}

const transportAddressLen = 20

// ParseRegFrom parses REG_FROM contents (exactly 20 octets); Type is set to
// ParamRegFrom.
func ParseRegFrom(contents []byte) (TransportAddress, error) {
	return parseTransportAddress(ParamRegFrom, contents)
}

// ParseRelayFrom parses RELAY_FROM contents (exactly 20 octets); Type is
// set to ParamRelayFrom.
func ParseRelayFrom(contents []byte) (TransportAddress, error) {
	return parseTransportAddress(ParamRelayFrom, contents)
}

// ParseRelayTo parses RELAY_TO contents (exactly 20 octets); Type is set
// to ParamRelayTo.
func ParseRelayTo(contents []byte) (TransportAddress, error) {
	return parseTransportAddress(ParamRelayTo, contents)
}

// ParseRelayedAddress parses RELAYED_ADDRESS contents (exactly 20 octets);
// Type is set to ParamRelayedAddress.
func ParseRelayedAddress(contents []byte) (TransportAddress, error) {
	return parseTransportAddress(ParamRelayedAddress, contents)
}

// ParseMappedAddress parses MAPPED_ADDRESS contents (exactly 20 octets);
// Type is set to ParamMappedAddress.
func ParseMappedAddress(contents []byte) (TransportAddress, error) {
	return parseTransportAddress(ParamMappedAddress, contents)
}

// IsTransportAddress reports whether t is one of the five parameter types
// with the TransportAddress body.
func IsTransportAddress(t ParamType) bool {
	switch t {
	case ParamRegFrom, ParamRelayFrom, ParamRelayTo, ParamRelayedAddress, ParamMappedAddress:
		return true
	}
	return false
}

func parseTransportAddress(t ParamType, contents []byte) (TransportAddress, error) {
	if len(contents) != transportAddressLen {
		return TransportAddress{}, lengthError(t, len(contents), "20")
	}
	return TransportAddress{
		Type:     t,
		Port:     binary.BigEndian.Uint16(contents),
		Protocol: contents[2],
		Addr:     addrAt(contents[4:]),
	}, nil
}

// AddrPort returns Addr and Port together.
func (a TransportAddress) AddrPort() netip.AddrPort { return netip.AddrPortFrom(a.Addr, a.Port) }

func (a TransportAddress) ParamType() ParamType { return a.Type }
func (TransportAddress) Len() int               { return transportAddressLen }
func (a TransportAddress) Encode(b []byte) {
	binary.BigEndian.PutUint16(b, a.Port)
	b[2] = a.Protocol
	putAddr(b[4:], a.Addr)
}
func (a TransportAddress) validate() error {
	if !IsTransportAddress(a.Type) {
		return valueError(a.Type, "TransportAddress.Type must be REG_FROM, RELAY_FROM, RELAY_TO, RELAYED_ADDRESS or MAPPED_ADDRESS")
	}
	return validateAddr(a.Type, a.Addr, "Address")
}

// From is the FROM parameter (RFC 8004 §4.2.2): the original source address
// of a packet whose IP source an RVS rewrote, Length 16. An RVS appends
// one after any FROM already present and MUST then add RVS_HMAC. Its type
// is above HIP_SIGNATURE, so only RVS_HMAC covers it. Addr holds IPv4
// unmapped; the wire carries the "IPv4-in-IPv6 format", taken here as
// IPv4-mapped as in RFC 5770 §5.6.
type From struct {
	Addr netip.Addr
}

// ParseFrom parses FROM contents (exactly 16 octets).
func ParseFrom(contents []byte) (From, error) {
	if len(contents) != addrLen {
		return From{}, lengthError(ParamFrom, len(contents), "16")
	}
	return From{Addr: addrAt(contents)}, nil
}

func (From) ParamType() ParamType { return ParamFrom }
func (From) Len() int             { return addrLen }
func (f From) Encode(b []byte)    { putAddr(b, f.Addr) }
func (f From) validate() error    { return validateAddr(ParamFrom, f.Addr, "Address") }

// AddrList is a list of 16-octet addresses kept as the raw octets of the
// wire, so that parsing never allocates. Build one with MakeAddrList.
type AddrList []byte

// MakeAddrList encodes addrs, IPv4 as IPv4-mapped IPv6.
func MakeAddrList(addrs ...netip.Addr) AddrList {
	l := make(AddrList, addrLen*len(addrs))
	for i, a := range addrs {
		putAddr(l[addrLen*i:], a)
	}
	return l
}

// Len returns the number of addresses.
func (l AddrList) Len() int { return len(l) / addrLen }

// At returns the i-th address, IPv4-mapped ones unmapped.
func (l AddrList) At(i int) netip.Addr { return addrAt(l[addrLen*i:]) }

// ViaRVS is the VIA_RVS parameter (RFC 8004 §4.2.3): the addresses of the
// rendezvous servers an I1 traversed, which the Responder appends at the
// end of its R1 "for debugging purposes". More than one address is
// "outside the scope" of RFC 8004 but the format allows it. Its type is
// above HIP_SIGNATURE and RVS_HMAC, so nothing but RELAY_HMAC covers it.
type ViaRVS struct {
	Addrs AddrList
}

// ParseViaRVS parses VIA_RVS contents: one or more 16-octet addresses.
// Addrs aliases contents.
func ParseViaRVS(contents []byte) (ViaRVS, error) {
	if len(contents) < addrLen || len(contents)%addrLen != 0 {
		return ViaRVS{}, lengthError(ParamViaRVS, len(contents), "a non-zero multiple of 16")
	}
	return ViaRVS{Addrs: AddrList(contents)}, nil
}

// MakeViaRVS returns a VIA_RVS of the given addresses.
func MakeViaRVS(addrs ...netip.Addr) ViaRVS { return ViaRVS{Addrs: MakeAddrList(addrs...)} }

func (ViaRVS) ParamType() ParamType { return ParamViaRVS }
func (v ViaRVS) Len() int           { return len(v.Addrs) }
func (v ViaRVS) Encode(b []byte)    { copy(b, v.Addrs) }
func (v ViaRVS) validate() error {
	if len(v.Addrs) < addrLen || len(v.Addrs)%addrLen != 0 {
		return valueError(ParamViaRVS, "VIA_RVS needs one or more whole 16-octet addresses")
	}
	return nil
}

// RVSHMAC is the RVS_HMAC parameter (RFC 8004 §4.2.1): laid out as HIP_MAC,
// an HMAC over the packet before it (AppendCovered up to its offset) keyed
// with the HIP-lg or HIP-gl integrity key of the rendezvous registration.
// Non-critical; it covers FROM but not VIA_RVS, and no signature covers it.
type RVSHMAC struct {
	MAC []byte
}

// ParseRVSHMAC parses RVS_HMAC contents: 1 to 64 octets. MAC aliases
// contents.
func ParseRVSHMAC(contents []byte) (RVSHMAC, error) {
	if err := checkMACLen(ParamRVSHMAC, contents); err != nil {
		return RVSHMAC{}, err
	}
	return RVSHMAC{MAC: contents}, nil
}

func (RVSHMAC) ParamType() ParamType { return ParamRVSHMAC }
func (m RVSHMAC) Len() int           { return len(m.MAC) }
func (m RVSHMAC) Encode(b []byte)    { copy(b, m.MAC) }
func (m RVSHMAC) validate() error    { return validateMAC(ParamRVSHMAC, m.MAC) }

// RelayHMAC is the RELAY_HMAC parameter (RFC 5770 §5.8, RFC 9028 §5.8): "the
// same semantics as RVS_HMAC", keyed with the integrity key of the relay
// registration. A relay server appends it after RELAY_FROM; being the
// highest type defined, it covers every other parameter of the packet.
type RelayHMAC struct {
	MAC []byte
}

// ParseRelayHMAC parses RELAY_HMAC contents: 1 to 64 octets. MAC aliases
// contents.
func ParseRelayHMAC(contents []byte) (RelayHMAC, error) {
	if err := checkMACLen(ParamRelayHMAC, contents); err != nil {
		return RelayHMAC{}, err
	}
	return RelayHMAC{MAC: contents}, nil
}

func (RelayHMAC) ParamType() ParamType { return ParamRelayHMAC }
func (m RelayHMAC) Len() int           { return len(m.MAC) }
func (m RelayHMAC) Encode(b []byte)    { copy(b, m.MAC) }
func (m RelayHMAC) validate() error    { return validateMAC(ParamRelayHMAC, m.MAC) }
