package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// canonicalLocatorSet is what re-encoding parsed LOCATOR_SET contents must
// give: the supported locators with their reserved bits cleared, and the
// unsupported ones dropped. c must have passed ParseLocatorSet.
func canonicalLocatorSet(c []byte) []byte {
	var out []byte
	for off := 0; off < len(c); {
		n := locatorHeaderLen + 4*int(c[off+2])
		if _, ok := locatorWords(c[off+1]); ok {
			s := bytes.Clone(c[off : off+n])
			s[3] &= 1
			out = append(out, s...)
		}
		off += n
	}
	return out
}

// rawLocator builds one sub-parameter by hand: the header fields as given
// and body as the locator.
func rawLocator(traffic, typ, words, resP uint8, lifetime uint32, body []byte) []byte {
	b := []byte{traffic, typ, words, resP, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], lifetime)
	return append(b, body...)
}

var (
	ip4a     = netip.MustParseAddr("192.0.2.1")
	ip4b     = netip.MustParseAddr("198.51.100.7")
	ip6a     = netip.MustParseAddr("2001:db8::1")
	ip6b     = netip.MustParseAddr("2001:db8:ffff::42")
	ip4aWire = func() []byte { a := ip4a.As16(); return a[:] }()
)

// sampleLocators has one locator of each supported type, IPv4 and IPv6.
var sampleLocators = []Locator{
	{Traffic: TrafficBoth, Type: LocatorTypeAddr, Preferred: true, Lifetime: 120, Addr: ip6a},
	{Traffic: TrafficData, Type: LocatorTypeESP, Lifetime: 1, SPI: 0x11223344, Addr: ip4a},
	{Traffic: TrafficBoth, Type: LocatorTypeTransport, Lifetime: 0xffffffff, Port: 10500, Protocol: ProtocolUDP,
		Kind: KindServerReflexive, Priority: 0x650000ff, SPI: 0xdeadbeef, Addr: ip4b},
	{Traffic: TrafficSignaling, Type: LocatorTypeTransport, Preferred: true, Lifetime: 60, Port: 50000, Protocol: ProtocolUDP,
		Kind: KindRelayed, Priority: 16777215, SPI: 7, Addr: ip6b},
}

// TestLocatorSetWire checks the encoding octet by octet against RFC 8046 §4
// and RFC 5770 §5.7, and parses it back.
func TestLocatorSetWire(t *testing.T) {
	s := LocatorSet{Locators: sampleLocators}
	if s.Len() != 24+28+36+36 {
		t.Fatalf("Len %d", s.Len())
	}
	raw := buildPacket(t, UPDATE, s)
	q, _ := Packet(raw).Param(ParamLocatorSet)
	c := q.Contents()
	a6, a4, a4b, a6b := ip6a.As16(), ip4a.As16(), ip4b.As16(), ip6b.As16()
	var want []byte
	want = append(want, rawLocator(0, 0, 4, 1, 120, a6[:])...)
	want = append(want, rawLocator(2, 1, 5, 0, 1, append([]byte{0x11, 0x22, 0x33, 0x44}, a4[:]...))...)
	want = append(want, rawLocator(0, 2, 7, 0, 0xffffffff, append([]byte{0x29, 0x04, 17, 1, 0x65, 0x00, 0x00, 0xff, 0xde, 0xad, 0xbe, 0xef}, a4b[:]...))...)
	want = append(want, rawLocator(1, 2, 7, 1, 60, append([]byte{0xc3, 0x50, 17, 3, 0x00, 0xff, 0xff, 0xff, 0, 0, 0, 7}, a6b[:]...))...)
	if !bytes.Equal(c, want) {
		t.Fatalf("contents\n got %x\nwant %x", c, want)
	}
	if !bytes.Equal(want[24+8+4:24+8+4+16], append(make([]byte, 10), 0xff, 0xff, 192, 0, 2, 1)) {
		t.Fatal("IPv4 is not IPv4-mapped on the wire")
	}
	v, err := ParseLocatorSet(c)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 4 || v.Unsupported() != 0 || !bytes.Equal(v.Bytes(), c) {
		t.Fatalf("Len %d Unsupported %d", v.Len(), v.Unsupported())
	}
	for i, l := range sampleLocators {
		if got := v.At(i); got != l {
			t.Errorf("At(%d) = %+v, want %+v", i, got, l)
		}
		if v.At(i).Addr.Is4In6() {
			t.Errorf("At(%d): IPv4 left mapped", i)
		}
	}
	if normalize(v.LocatorSet()) != normalize(s) {
		t.Errorf("LocatorSet() = %+v", v.LocatorSet())
	}
	// Empty: deprecates all addresses (RFC 8046 §4).
	if v, err := ParseLocatorSet(nil); err != nil || v.Len() != 0 {
		t.Errorf("empty: %v %d", err, v.Len())
	}
	if raw := buildPacket(t, UPDATE, LocatorSet{}); len(raw) != HeaderLen+8 {
		t.Errorf("empty LOCATOR_SET built as %d octets", len(raw))
	}
}

// TestLocatorSetUnsupported: a locator of a type this package does not know
// is stepped over by its Locator Length and handed out raw, and the
// reserved bits of the others are ignored.
func TestLocatorSetUnsupported(t *testing.T) {
	a6 := ip6a.As16()
	var c []byte
	c = append(c, rawLocator(0, 0, 4, 0xfe, 30, a6[:])...)      // reserved bits set, P clear
	c = append(c, rawLocator(0, 9, 3, 0x01, 5, fill(12, 0))...) // unknown, preferred
	c = append(c, rawLocator(2, 1, 5, 0x81, 40, append([]byte{0, 0, 0, 9}, ip4aWire...))...)
	c = append(c, rawLocator(1, 200, 0, 0x00, 6, nil)...)     // unknown, empty locator
	c = append(c, rawLocator(7, 0, 4, 0x00, 50, ip4aWire)...) // undefined Traffic Type: kept
	v, err := ParseLocatorSet(c)
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 3 || v.Unsupported() != 2 {
		t.Fatalf("Len %d Unsupported %d", v.Len(), v.Unsupported())
	}
	want := []Locator{
		{Traffic: 0, Type: 0, Lifetime: 30, Addr: ip6a},
		{Traffic: 2, Type: 1, Preferred: true, Lifetime: 40, SPI: 9, Addr: ip4a},
		{Traffic: 7, Type: 0, Lifetime: 50, Addr: ip4a},
	}
	for i := range want {
		if got := v.At(i); got != want[i] {
			t.Errorf("At(%d) = %+v, want %+v", i, got, want[i])
		}
	}
	raw, pref := v.UnsupportedAt(0)
	if !pref || !bytes.Equal(raw, c[24:24+20]) {
		t.Errorf("UnsupportedAt(0) = %x %v", raw, pref)
	}
	raw, pref = v.UnsupportedAt(1)
	if pref || !bytes.Equal(raw, c[24+20+28:24+20+28+8]) {
		t.Errorf("UnsupportedAt(1) = %x %v", raw, pref)
	}
	// Rebuilt from the plain form: reserved bits zero, unknown types gone.
	b := NewBuilder(nil, UPDATE, hitI, hitR)
	b.Add(v.LocatorSet())
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	q, _ := Packet(out).Param(ParamLocatorSet)
	if !bytes.Equal(q.Contents(), canonicalLocatorSet(c)) || q.Contents()[3] != 0 || len(q.Contents()) != 24+28+24 {
		t.Errorf("rebuilt %x", q.Contents())
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("At(Len) did not panic")
			}
		}()
		v.At(3)
	}()
}

// TestLocatorSetMalformed: every length and value check of ParseLocatorSet.
func TestLocatorSetMalformed(t *testing.T) {
	a6 := ip6a.As16()
	good := rawLocator(0, 0, 4, 0, 1, a6[:])
	transport := rawLocator(0, 2, 7, 0, 1, append(make([]byte, 12), a6[:]...))
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short header", good[:7], ErrParamLength},
		{"header only", good[:8], ErrParamLength},
		{"truncated address", good[:23], ErrParamLength},
		{"trailing octets", append(bytes.Clone(good), 0, 0, 0, 0), ErrParamLength},
		{"second locator short", append(bytes.Clone(good), good[:12]...), ErrParamLength},
		{"type 0 with 5 words", rawLocator(0, 0, 5, 0, 1, make([]byte, 20)), ErrParamLength},
		{"type 0 with 3 words", rawLocator(0, 0, 3, 0, 1, make([]byte, 12)), ErrParamLength},
		{"type 1 with 4 words", rawLocator(0, 1, 4, 0, 1, a6[:]), ErrParamLength},
		{"type 2 with 6 words", rawLocator(0, 2, 6, 0, 1, make([]byte, 24)), ErrParamLength},
		{"type 2 with 8 words", rawLocator(0, 2, 8, 0, 1, make([]byte, 32)), ErrParamLength},
		{"type 2 truncated", transport[:len(transport)-4], ErrParamLength},
		{"unknown type overruns", rawLocator(0, 3, 2, 0, 1, make([]byte, 4)), ErrParamLength},
		{"zero lifetime", rawLocator(0, 0, 4, 1, 0, a6[:]), ErrParamValue},
		{"zero lifetime, unknown type", append(bytes.Clone(good), rawLocator(0, 5, 0, 0, 0, nil)...), ErrParamValue},
	} {
		v, err := ParseLocatorSet(c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
		if v.Len() != 0 || v.Bytes() != nil {
			t.Errorf("%s: non-empty view with an error", c.name)
		}
	}
	for _, b := range [][]byte{good, transport, append(bytes.Clone(good), transport...), rawLocator(0, 3, 255, 0, 1, make([]byte, 1020))} {
		if _, err := ParseLocatorSet(b); err != nil {
			t.Errorf("%x: %v", b[:8], err)
		}
	}
}

// TestLocatorSetBuildErrors: the plain form refuses what it cannot send.
func TestLocatorSetBuildErrors(t *testing.T) {
	ok := Locator{Type: LocatorTypeAddr, Lifetime: 1, Addr: ip6a}
	for _, c := range []struct {
		name string
		l    Locator
	}{
		{"unknown type", Locator{Type: 3, Lifetime: 1, Addr: ip6a}},
		{"zero lifetime", Locator{Type: LocatorTypeAddr, Addr: ip6a}},
		{"no address", Locator{Type: LocatorTypeTransport, Lifetime: 1, Port: 1, Protocol: 17}},
		{"zoned address", Locator{Type: LocatorTypeAddr, Lifetime: 1, Addr: netip.MustParseAddr("fe80::1%eth0")}},
		{"SPI on type 0", Locator{Type: LocatorTypeAddr, Lifetime: 1, SPI: 1, Addr: ip6a}},
		{"port on type 0", Locator{Type: LocatorTypeAddr, Lifetime: 1, Port: 1, Addr: ip6a}},
		{"priority on type 1", Locator{Type: LocatorTypeESP, Lifetime: 1, Priority: 1, Addr: ip6a}},
	} {
		b := NewBuilder(nil, UPDATE, hitI, hitR)
		b.Add(LocatorSet{Locators: []Locator{ok, c.l}})
		if _, err := b.Bytes(); !errors.Is(err, ErrParamValue) {
			t.Errorf("%s: %v, want ErrParamValue", c.name, err)
		}
	}
	// 72 transport locators (2592 octets) do not fit in a packet.
	many := make([]Locator, 72)
	for i := range many {
		many[i] = sampleLocators[2]
	}
	b := NewBuilder(nil, UPDATE, hitI, hitR)
	b.Add(LocatorSet{Locators: many})
	if _, err := b.Bytes(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized set: %v", err)
	}
}

// parseLocators is what a receiver does with a LOCATOR_SET: parse it and
// read every locator.
func parseLocators(c []byte) (sum uint64, err error) {
	v, err := ParseLocatorSet(c)
	if err != nil {
		return 0, err
	}
	for i := range v.Len() {
		l := v.At(i)
		a := l.Addr.As16()
		sum += uint64(l.Port) + uint64(l.Priority) + uint64(l.SPI) + uint64(l.Kind) + uint64(a[15])
		if l.Addr.Is4() {
			sum++
		}
	}
	return sum, nil
}

func TestParseLocatorSetZeroAllocs(t *testing.T) {
	ls := make([]Locator, 4)
	for i := range ls {
		ls[i] = Locator{Traffic: TrafficBoth, Type: LocatorTypeTransport, Lifetime: 300, Port: uint16(10500 + i),
			Protocol: ProtocolUDP, Kind: uint8(i), Priority: uint32(1000 * i), SPI: uint32(i + 1), Addr: []netip.Addr{ip4a, ip6a, ip4b, ip6b}[i]}
	}
	raw := buildPacket(t, UPDATE, LocatorSet{Locators: ls})
	q, _ := Packet(raw).Param(ParamLocatorSet)
	c := q.Contents()
	want, err := parseLocators(c)
	if err != nil || want == 0 {
		t.Fatal(want, err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if got, err := parseLocators(c); err != nil || got != want {
			t.Fatal(got, err)
		}
	})
	if allocs != 0 {
		t.Errorf("parsing a LOCATOR_SET of 4 transport locators allocates %.1f times, want 0", allocs)
	}
}

// parseTraversal decodes every relay, registration and NAT traversal
// parameter of p with its ParseXxx, as a receiver would.
func parseTraversal(p Packet) (sum int, err error) {
	it := p.Params()
	for {
		q, ok := it.Next()
		if !ok {
			return sum, it.Err()
		}
		c := q.Contents()
		switch q.Type() {
		case ParamLocatorSet:
			s, e := parseLocators(c)
			sum, err = sum+int(s&0xff), e
		case ParamNATTraversalMode:
			v, e := ParseNATTraversalMode(c)
			sum, err = sum+int(v.Modes.At(0)), e
		case ParamTransactionPacing:
			v, e := ParseTransactionPacing(c)
			sum, err = sum+int(v.MinTa), e
		case ParamRegInfo:
			v, e := ParseRegInfo(c)
			sum, err = sum+int(v.MaxLifetime)+len(v.Types), e
		case ParamRegRequest:
			v, e := ParseRegRequest(c)
			sum, err = sum+int(v.Lifetime)+len(v.Types), e
		case ParamRegResponse:
			v, e := ParseRegResponse(c)
			sum, err = sum+int(v.Lifetime)+len(v.Types), e
		case ParamRegFailed:
			v, e := ParseRegFailed(c)
			sum, err = sum+int(v.FailureType)+len(v.Types), e
		case ParamRegFrom, ParamRelayedAddress, ParamMappedAddress, ParamRelayFrom, ParamRelayTo:
			v, e := parseTransportAddress(q.Type(), c)
			sum, err = sum+int(v.Port)+int(v.AddrPort().Addr().As16()[15]), e
		case ParamPeerPermission:
			v, e := ParsePeerPermission(c)
			sum, err = sum+int(v.ISPI&0xff)+int(v.PAddr.As16()[15]), e
		case ParamCandidatePriority:
			v, e := ParseCandidatePriority(c)
			sum, err = sum+int(v.Priority&0xff), e
		case ParamNominate:
			_, err = ParseNominate(c)
			sum++
		case ParamFrom:
			v, e := ParseFrom(c)
			sum, err = sum+int(v.Addr.As16()[15]), e
		case ParamRVSHMAC:
			v, e := ParseRVSHMAC(c)
			sum, err = sum+len(v.MAC), e
		case ParamViaRVS:
			v, e := ParseViaRVS(c)
			sum, err = sum+v.Addrs.Len()+int(v.Addrs.At(0).As16()[15]), e
		case ParamRelayHMAC:
			v, e := ParseRelayHMAC(c)
			sum, err = sum+len(v.MAC), e
		}
		if err != nil {
			return 0, err
		}
	}
}

func TestParseTraversalZeroAllocs(t *testing.T) {
	p, err := ParsePacket(buildPacket(t, UPDATE, traversalParams...))
	if err != nil {
		t.Fatal(err)
	}
	want, err := parseTraversal(p)
	if err != nil || want == 0 {
		t.Fatal(want, err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if got, err := parseTraversal(p); err != nil || got != want {
			t.Fatal(got, err)
		}
	})
	if allocs != 0 {
		t.Errorf("parsing the relay and NAT traversal parameters allocates %.1f times, want 0", allocs)
	}
}
