package wire

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Traffic Types of a locator (RFC 8046 §4.1). The P bit has scope over the
// Traffic Type; when P is set on locators of different types, the more
// specific type (1 or 2) wins over 0.
const (
	TrafficBoth      uint8 = 0 // HIP control packets and user data
	TrafficSignaling uint8 = 1 // HIP control packets only
	TrafficData      uint8 = 2 // user data (ESP) only
)

// Locator Types (RFC 8046 §4.2, RFC 5770 §5.7, RFC 9028 §5.7).
const (
	// LocatorTypeAddr is a 128-bit IPv6 address or IPv4-mapped IPv4
	// address, "defined primarily for non-ESP-based usage" (RFC 8046 §4.2).
	LocatorTypeAddr uint8 = 0
	// LocatorTypeESP is an ESP SPI (32 bits) followed by an address
	// (RFC 8046 §4.2).
	LocatorTypeESP uint8 = 1
	// LocatorTypeTransport is the "transport address" of an ICE candidate:
	// Port(16) | Protocol(8) | Kind(8) | Priority(32) | SPI(32) |
	// Address(128) (RFC 5770 §5.7, RFC 9028 §5.7).
	LocatorTypeTransport uint8 = 2
)

// Kinds of a transport locator (RFC 5770 §5.7 Table 2, RFC 9028 §5.7
// Table 2): the ICE candidate type.
const (
	KindHost            uint8 = 0
	KindServerReflexive uint8 = 1
	KindPeerReflexive   uint8 = 2 // "currently unused" (RFC 9028)
	KindRelayed         uint8 = 3
)

// ProtocolUDP is the IP protocol number of UDP, the only transport protocol
// of RFC 5770 and RFC 9028 transport locators and relay parameters.
const ProtocolUDP = 17

// locatorHeaderLen is Traffic Type, Locator Type, Locator Length,
// Reserved|P and the Locator Lifetime (RFC 8046 §4).
const locatorHeaderLen = 8

// locatorWords returns the Locator Length, in 4-octet words, of a Locator
// Type this package decodes: 4 for an address (type 0), 5 for SPI and
// address (type 1), 7 for a transport locator (type 2, "Locator Length 7",
// RFC 5770 §5.7 Table 2).
func locatorWords(typ uint8) (int, bool) {
	switch typ {
	case LocatorTypeAddr:
		return 4, true
	case LocatorTypeESP:
		return 5, true
	case LocatorTypeTransport:
		return 7, true
	}
	return 0, false
}

// Locator is one Locator sub-parameter of LOCATOR_SET (RFC 8046 §4) in
// plain form. Which fields the wire carries depends on Type:
//
//	type 0 (LocatorTypeAddr)       Addr
//	type 1 (LocatorTypeESP)        SPI, Addr
//	type 2 (LocatorTypeTransport)  Port, Protocol, Kind, Priority, SPI, Addr
//
// Fields a type does not carry are zero when parsed and must be zero when
// built. Addr holds an IPv4 address unmapped; on the wire it is the
// IPv4-mapped IPv6 address ::ffff:a.b.c.d (RFC 4291 §2.5.5.2). RFC 8046
// §4.2 says only "IPv4-in-IPv6 format" and cites RFC 4291, which has both
// that and the deprecated IPv4-compatible ::a.b.c.d; RFC 5770 §5.7 and
// RFC 9028 §5.7 name the mapped form, so that is the one unmapped here, and
// an IPv4-compatible address stays an IPv6 address.
type Locator struct {
	Traffic   uint8  // TrafficBoth, TrafficSignaling or TrafficData
	Type      uint8  // LocatorTypeAddr, LocatorTypeESP or LocatorTypeTransport
	Preferred bool   // the P bit, scoped by Traffic (RFC 8046 §4.1)
	Lifetime  uint32 // seconds; MUST be non-zero (RFC 8046 §4)
	Port      uint16 // transport port (type 2)
	Protocol  uint8  // transport protocol, ProtocolUDP (type 2)
	Kind      uint8  // KindHost ... KindRelayed (type 2)
	Priority  uint32 // ICE priority, RFC 8445 §5.1.2 (type 2)
	SPI       uint32 // the SPI the sender expects in ESP to this locator (types 1, 2)
	Addr      netip.Addr
}

// wireLen is the length of the sub-parameter, header included.
func (l Locator) wireLen() int {
	w, _ := locatorWords(l.Type)
	return locatorHeaderLen + 4*w
}

// LocatorSetView is a parsed LOCATOR_SET (RFC 8046 §4): a zero-copy view
// over its Locator sub-parameters. Len and At cover the locators of the
// types this package decodes (0, 1 and 2), in wire order; sub-parameters
// of any other Locator Type are skipped by their Locator Length and counted
// by Unsupported.
//
// LOCATOR_SET is critical and its type (193) is below HIP_MAC and
// HIP_SIGNATURE, so it is covered by both (RFC 7401 §6.4). In ICE-HIP it
// MUST travel inside ENCRYPTED (RFC 9028 §5.7); decrypt first, then find it
// with IterParams.
type LocatorSetView struct {
	b           []byte
	n           int
	unsupported int
}

// ParseLocatorSet parses LOCATOR_SET contents: zero or more sub-parameters,
// each an 8-octet header (Traffic Type, Locator Type, Locator Length in
// 4-octet words, Reserved|P, Locator Lifetime) and Locator Length words of
// locator. An empty set is valid: it "has the effect of deprecating all
// addresses" (RFC 8046 §4). It checks that every sub-parameter fits, that
// each locator of type 0, 1 and 2 has its fixed length (4, 5 and 7 words;
// else ErrParamLength), and that no lifetime is zero ("Each locator MUST
// have a non-zero lifetime", RFC 8046 §4; else ErrParamValue). Reserved
// bits are ignored and Traffic Type, Protocol and Kind values are not
// judged.
//
// A Locator Type it does not know is skipped, not rejected: RFC 8046 §5.3
// has a host that "receives a locator with an unsupported Locator Type"
// answer with a LOCATOR_TYPE_UNSUPPORTED notification carrying "the
// locator(s) that the receiver failed to process" — a SHOULD only when that
// locator is the preferred one, a MAY otherwise — so the rest of the set
// is still processed, and the Locator Length field, given in words for
// every type (§4), is what lets a receiver step over a locator it cannot
// read. RFC 5770 §5.7 added type 2 to this very parameter in that way.
// UnsupportedAt returns such a locator for that notification.
//
// The view aliases contents; parsing does not allocate.
func ParseLocatorSet(contents []byte) (LocatorSetView, error) {
	v := LocatorSetView{b: contents}
	for off := 0; off < len(contents); {
		rest := contents[off:]
		if len(rest) < locatorHeaderLen {
			return LocatorSetView{}, &ParamError{Type: ParamLocatorSet, Offset: -1, Err: ErrParamLength,
				Detail: fmt.Sprintf("locator at octet %d: %d octets left, the locator header is %d", off, len(rest), locatorHeaderLen)}
		}
		typ, words := rest[1], int(rest[2])
		n := locatorHeaderLen + 4*words
		if n > len(rest) {
			return LocatorSetView{}, &ParamError{Type: ParamLocatorSet, Offset: -1, Err: ErrParamLength,
				Detail: fmt.Sprintf("locator at octet %d: Locator Length %d words needs %d octets, %d left", off, words, n, len(rest))}
		}
		if want, ok := locatorWords(typ); ok {
			if words != want {
				return LocatorSetView{}, &ParamError{Type: ParamLocatorSet, Offset: -1, Err: ErrParamLength,
					Detail: fmt.Sprintf("locator at octet %d: type %d with Locator Length %d words, want %d", off, typ, words, want)}
			}
			v.n++
		} else {
			v.unsupported++
		}
		if binary.BigEndian.Uint32(rest[4:]) == 0 {
			return LocatorSetView{}, valueError(ParamLocatorSet, fmt.Sprintf("locator at octet %d: zero Locator Lifetime", off))
		}
		off += n
	}
	return v, nil
}

// Len returns the number of locators of a supported type.
func (v LocatorSetView) Len() int { return v.n }

// Unsupported returns the number of sub-parameters whose Locator Type this
// package does not decode.
func (v LocatorSetView) Unsupported() int { return v.unsupported }

// Bytes returns the contents the view was parsed from, for example to
// recognise a LOCATOR_SET already processed, which RFC 8046 §5.3 requires
// of a host that may receive duplicates.
func (v LocatorSetView) Bytes() []byte { return v.b }

// nth returns the sub-parameter (header included) that is the i-th of the
// supported (known true) or unsupported (known false) ones.
func (v LocatorSetView) nth(i int, known bool) []byte {
	for off := 0; off < len(v.b); {
		n := locatorHeaderLen + 4*int(v.b[off+2])
		if _, ok := locatorWords(v.b[off+1]); ok == known {
			if i == 0 {
				return v.b[off : off+n : off+n]
			}
			i--
		}
		off += n
	}
	panic("wire: locator index out of range")
}

// At returns the i-th locator of a supported type, 0 <= i < Len. It walks
// the set from the start, so a loop over all locators is quadratic in
// their number, which a 2008-octet packet bounds at 71. It does not
// allocate.
func (v LocatorSetView) At(i int) Locator {
	s := v.nth(i, true)
	l := Locator{
		Traffic:   s[0],
		Type:      s[1],
		Preferred: s[3]&1 == 1,
		Lifetime:  binary.BigEndian.Uint32(s[4:]),
	}
	body := s[locatorHeaderLen:]
	switch l.Type {
	case LocatorTypeAddr:
		l.Addr = addrAt(body)
	case LocatorTypeESP:
		l.SPI = binary.BigEndian.Uint32(body)
		l.Addr = addrAt(body[4:])
	case LocatorTypeTransport:
		l.Port = binary.BigEndian.Uint16(body)
		l.Protocol = body[2]
		l.Kind = body[3]
		l.Priority = binary.BigEndian.Uint32(body[4:])
		l.SPI = binary.BigEndian.Uint32(body[8:])
		l.Addr = addrAt(body[12:])
	}
	return l
}

// UnsupportedAt returns the i-th sub-parameter of an unsupported Locator
// Type, 0 <= i < Unsupported, as it was received (its 8-octet header and
// locator, aliasing the contents), and its P bit. RFC 8046 §5.3: the
// receiver SHOULD send a NOTIFY of type LOCATOR_TYPE_UNSUPPORTED with such
// locators as Notification Data when one of them is preferred, and MAY
// otherwise.
func (v LocatorSetView) UnsupportedAt(i int) (raw []byte, preferred bool) {
	s := v.nth(i, false)
	return s, s[3]&1 == 1
}

// LocatorSet copies the supported locators into the plain form, which can
// be built again. Unsupported ones are left out. It allocates.
func (v LocatorSetView) LocatorSet() LocatorSet {
	s := LocatorSet{Locators: make([]Locator, v.n)}
	for i := range s.Locators {
		s.Locators[i] = v.At(i)
	}
	return s
}

// LocatorSet is the LOCATOR_SET parameter (RFC 8046 §4; transport locators
// RFC 5770 §5.7, RFC 9028 §5.7) in plain form, for building. Every Locator
// must be of type 0, 1 or 2, have a non-zero Lifetime and a valid Addr
// without a zone, and leave the fields its type does not carry zero; the
// Builder reports anything else as ErrParamValue. No Locators is valid and
// deprecates all the sender's addresses (RFC 8046 §4). Reserved bits are
// sent as zero.
type LocatorSet struct {
	Locators []Locator
}

func (LocatorSet) ParamType() ParamType { return ParamLocatorSet }

func (s LocatorSet) Len() int {
	n := 0
	for _, l := range s.Locators {
		n += l.wireLen()
	}
	return n
}

func (s LocatorSet) Encode(b []byte) {
	off := 0
	for _, l := range s.Locators {
		w, _ := locatorWords(l.Type)
		b[off] = l.Traffic
		b[off+1] = l.Type
		b[off+2] = uint8(w)
		if l.Preferred {
			b[off+3] = 1
		}
		binary.BigEndian.PutUint32(b[off+4:], l.Lifetime)
		body := b[off+locatorHeaderLen:]
		switch l.Type {
		case LocatorTypeAddr:
			putAddr(body, l.Addr)
		case LocatorTypeESP:
			binary.BigEndian.PutUint32(body, l.SPI)
			putAddr(body[4:], l.Addr)
		case LocatorTypeTransport:
			binary.BigEndian.PutUint16(body, l.Port)
			body[2] = l.Protocol
			body[3] = l.Kind
			binary.BigEndian.PutUint32(body[4:], l.Priority)
			binary.BigEndian.PutUint32(body[8:], l.SPI)
			putAddr(body[12:], l.Addr)
		}
		off += l.wireLen()
	}
}

func (s LocatorSet) validate() error {
	for i, l := range s.Locators {
		if _, ok := locatorWords(l.Type); !ok {
			return valueError(ParamLocatorSet, fmt.Sprintf("locator %d: type %d has no encoding here", i, l.Type))
		}
		if l.Lifetime == 0 {
			return valueError(ParamLocatorSet, fmt.Sprintf("locator %d: zero lifetime (RFC 8046 §4: MUST be non-zero)", i))
		}
		if err := validateAddr(ParamLocatorSet, l.Addr, fmt.Sprintf("locator %d", i)); err != nil {
			return err
		}
		transport := l.Port != 0 || l.Protocol != 0 || l.Kind != 0 || l.Priority != 0
		switch {
		case l.Type == LocatorTypeAddr && (transport || l.SPI != 0):
			return valueError(ParamLocatorSet, fmt.Sprintf("locator %d: type 0 carries only an address", i))
		case l.Type == LocatorTypeESP && transport:
			return valueError(ParamLocatorSet, fmt.Sprintf("locator %d: type 1 carries only an SPI and an address", i))
		}
	}
	return nil
}

// TrafficName returns a short name of a Traffic Type, for printing.
func TrafficName(t uint8) string {
	switch t {
	case TrafficBoth:
		return "both"
	case TrafficSignaling:
		return "signaling"
	case TrafficData:
		return "data"
	}
	return fmt.Sprintf("traffic%d", t)
}

// KindName returns a short name of a transport locator Kind, for printing.
func KindName(k uint8) string {
	switch k {
	case KindHost:
		return "host"
	case KindServerReflexive:
		return "srflx"
	case KindPeerReflexive:
		return "prflx"
	case KindRelayed:
		return "relay"
	}
	return fmt.Sprintf("kind%d", k)
}
