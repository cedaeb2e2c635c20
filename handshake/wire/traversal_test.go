package wire

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// traversalParams is one of each relay, registration, rendezvous and NAT
// traversal parameter, in ascending type order.
var traversalParams = []Encoder{
	LocatorSet{Locators: sampleLocators},
	MakeNATTraversalMode(NATModeICEHIPUDP, NATModeUDPEncapsulation),
	TransactionPacing{MinTa: 50},
	RegInfo{MinLifetime: 91, MaxLifetime: 120, Types: []byte{RegTypeRelayUDPHIP, RegTypeRelayUDPESP}},
	RegRequest{Lifetime: 120, Types: []byte{RegTypeRelayUDPHIP}},
	RegResponse{Lifetime: 100, Types: []byte{RegTypeRelayUDPHIP}},
	RegFailed{FailureType: RegFailureInsufficientResources, Types: []byte{RegTypeRelayUDPESP}},
	TransportAddress{Type: ParamRegFrom, Port: 49152, Protocol: ProtocolUDP, Addr: ip4a},
	TransportAddress{Type: ParamRelayedAddress, Port: 10501, Protocol: ProtocolUDP, Addr: ip6a},
	TransportAddress{Type: ParamMappedAddress, Port: 60000, Protocol: ProtocolUDP, Addr: ip4b},
	PeerPermission{RPort: 10501, PPort: 50500, Protocol: ProtocolUDP, RAddr: ip4a, PAddr: ip6b, OSPI: 0x01020304, ISPI: 0x0a0b0c0d},
	CandidatePriority{Priority: 2130706431},
	Nominate{},
	TransportAddress{Type: ParamRelayFrom, Port: 10500, Protocol: ProtocolUDP, Addr: ip6b},
	TransportAddress{Type: ParamRelayTo, Addr: ip4b}, // plain IP: port and protocol 0
	From{Addr: ip4a},
	RVSHMAC{MAC: fill(32, 8)},
	MakeViaRVS(ip6a, ip4b),
	RelayHMAC{MAC: fill(48, 9)},
}

// TestTraversalRoundTrip builds every new parameter into one packet, parses
// the packet and decodes each parameter back to the struct it came from.
func TestTraversalRoundTrip(t *testing.T) {
	raw := buildPacket(t, UPDATE, traversalParams...)
	p, err := ParsePacket(raw)
	if err != nil {
		t.Fatal(err)
	}
	checkAllParams(t, p)
	it := p.Params()
	for i, want := range traversalParams {
		q, ok := it.Next()
		if !ok {
			t.Fatalf("parameter %d missing", i)
		}
		if q.Type() != want.ParamType() || len(q.Contents()) != want.Len() {
			t.Fatalf("parameter %d: %v len %d, want %v len %d", i, q.Type(), len(q.Contents()), want.ParamType(), want.Len())
		}
		got, err := decoders[q.Type()](q.Contents())
		if err != nil {
			t.Fatalf("%v: %v", q.Type(), err)
		}
		if normalize(got) != normalize(want) {
			t.Errorf("%v: decoded\n %s\nwant\n %s", q.Type(), normalize(got), normalize(want))
		}
		checkReencode(t, q.Type(), q.Contents(), got)
	}
	if _, ok := it.Next(); ok {
		t.Error("extra parameter")
	}
	// The shared address body on the wire (RFC 9028 §5.6): port, protocol,
	// reserved, IPv4-mapped address.
	q, _ := p.Param(ParamRegFrom)
	if want := append([]byte{0xc0, 0x00, 17, 0}, ip4aWire...); !bytes.Equal(q.Contents(), want) {
		t.Errorf("REG_FROM contents %x, want %x", q.Contents(), want)
	}
	q, _ = p.Param(ParamFrom)
	if !bytes.Equal(q.Contents(), ip4aWire) {
		t.Errorf("FROM contents %x", q.Contents())
	}
	// RFC 5770 §5.6 / RFC 9028 §5.6: REG_FROM is covered by the signature,
	// RELAY_FROM and RELAY_TO are not; neither are FROM, VIA_RVS and the
	// relay MACs (all after HIP_SIGNATURE in type order).
	for _, pt := range []ParamType{ParamLocatorSet, ParamNATTraversalMode, ParamTransactionPacing, ParamRegInfo, ParamRegRequest,
		ParamRegResponse, ParamRegFailed, ParamRegFrom, ParamRelayedAddress, ParamMappedAddress, ParamPeerPermission,
		ParamCandidatePriority, ParamNominate} {
		if pt >= ParamHIPMAC {
			t.Errorf("%v not before HIP_MAC", pt)
		}
	}
	for _, pt := range []ParamType{ParamRelayFrom, ParamRelayTo, ParamFrom, ParamRVSHMAC, ParamViaRVS, ParamRelayHMAC} {
		if pt <= ParamHIPSignature || pt.Critical() {
			t.Errorf("%v is covered by HIP_SIGNATURE or critical", pt)
		}
	}
	if !(ParamFrom < ParamRVSHMAC && ParamRVSHMAC < ParamViaRVS && ParamViaRVS < ParamRelayHMAC) {
		t.Error("RVS_HMAC must cover FROM but not VIA_RVS; RELAY_HMAC is last")
	}
}

// TestTraversalReserved: reserved fields are ignored on receipt and sent as
// zero.
func TestTraversalReserved(t *testing.T) {
	ta := append([]byte{0x27, 0x10, 17, 0xff}, ip4aWire...)
	a, err := ParseRelayFrom(ta)
	if err != nil || a.Port != 10000 || a.Protocol != 17 || a.Addr != ip4a || a.Type != ParamRelayFrom || a.AddrPort().String() != "192.0.2.1:10000" {
		t.Fatalf("%+v %v", a, err)
	}
	nm, err := ParseNATTraversalMode([]byte{0xff, 0xff, 0, 3})
	if err != nil || nm.Modes.Len() != 1 || nm.Modes.At(0) != NATModeICEHIPUDP {
		t.Fatalf("%+v %v", nm, err)
	}
	pp := make([]byte, 48)
	copy(pp[5:8], []byte{1, 2, 3})
	if _, err := ParsePeerPermission(pp); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseNominate([]byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	raw := buildPacket(t, UPDATE, nm, PeerPermission{RAddr: ip4a, PAddr: ip4b}, Nominate{}, a)
	for _, c := range []struct {
		pt   ParamType
		zero []int
	}{{ParamNATTraversalMode, []int{0, 1}}, {ParamPeerPermission, []int{5, 6, 7}}, {ParamNominate, []int{0, 1, 2, 3}}, {ParamRelayFrom, []int{3}}} {
		q, _ := Packet(raw).Param(c.pt)
		for _, i := range c.zero {
			if q.Contents()[i] != 0 {
				t.Errorf("%v: reserved octet %d sent as %d", c.pt, i, q.Contents()[i])
			}
		}
	}
}

// TestTraversalLengths checks, per decoder, the accepted lengths and their
// neighbours.
func TestTraversalLengths(t *testing.T) {
	for _, p := range []struct {
		t     ParamType
		cases []lengthCase
	}{
		// All ones: a type-1 locator of 1 word, too short or with the wrong
		// Locator Length. (Zero octets are a valid, empty set.)
		{ParamLocatorSet, []lengthCase{{4, false}, {7, false}, {8, false}, {23, false}, {25, false}, {28, false}, {36, false}}},
		{ParamNATTraversalMode, []lengthCase{{0, false}, {2, false}, {3, false}, {4, true}, {5, false}, {14, true}, {16, true}, {30, true}}},
		{ParamTransactionPacing, []lengthCase{{0, false}, {3, false}, {4, true}, {5, false}, {8, false}}},
		{ParamRegInfo, []lengthCase{{0, false}, {1, false}, {2, true}, {3, true}, {100, true}}},
		{ParamRegRequest, []lengthCase{{0, false}, {1, true}, {2, true}, {50, true}}},
		{ParamRegResponse, []lengthCase{{0, false}, {1, true}, {2, true}}},
		{ParamRegFailed, []lengthCase{{0, false}, {1, true}, {2, true}}},
		{ParamRegFrom, []lengthCase{{0, false}, {16, false}, {19, false}, {20, true}, {21, false}, {24, false}}},
		{ParamRelayFrom, []lengthCase{{19, false}, {20, true}, {21, false}}},
		{ParamRelayTo, []lengthCase{{19, false}, {20, true}, {21, false}}},
		{ParamRelayedAddress, []lengthCase{{19, false}, {20, true}, {21, false}}},
		{ParamMappedAddress, []lengthCase{{19, false}, {20, true}, {21, false}}},
		{ParamPeerPermission, []lengthCase{{0, false}, {47, false}, {48, true}, {49, false}, {96, false}}},
		{ParamCandidatePriority, []lengthCase{{3, false}, {4, true}, {5, false}}},
		{ParamNominate, []lengthCase{{0, false}, {3, false}, {4, true}, {5, false}, {8, false}}},
		{ParamFrom, []lengthCase{{0, false}, {4, false}, {15, false}, {16, true}, {17, false}, {20, false}, {32, false}}},
		{ParamViaRVS, []lengthCase{{0, false}, {15, false}, {16, true}, {17, false}, {31, false}, {32, true}, {48, true}}},
		{ParamRVSHMAC, []lengthCase{{0, false}, {1, true}, {32, true}, {64, true}, {65, false}}},
		{ParamRelayHMAC, []lengthCase{{0, false}, {1, true}, {48, true}, {64, true}, {65, false}}},
	} {
		d := decoders[p.t]
		for _, c := range p.cases {
			// Non-zero octets, so that a LOCATOR_SET's lifetimes are not zero.
			_, err := d(bytes.Repeat([]byte{1}, c.n))
			switch {
			case c.ok && err != nil:
				t.Errorf("%v: %d octets rejected: %v", p.t, c.n, err)
			case !c.ok && !errors.Is(err, ErrParamLength):
				t.Errorf("%v: %d octets: error %v, want ErrParamLength", p.t, c.n, err)
			}
		}
	}
}

// TestTraversalBadAddress: a struct whose address cannot be put on the wire
// (none, or with a zone) is refused by the Builder.
func TestTraversalBadAddress(t *testing.T) {
	zoned := netip.MustParseAddr("fe80::1%eth0")
	for _, e := range []Encoder{
		TransportAddress{Type: ParamRelayTo, Port: 1, Protocol: 17},
		TransportAddress{Type: ParamMappedAddress, Addr: zoned},
		From{},
		From{Addr: zoned},
		PeerPermission{RAddr: ip4a},
		PeerPermission{PAddr: ip4a},
		PeerPermission{RAddr: zoned, PAddr: ip4a},
	} {
		b := NewBuilder(nil, UPDATE, hitI, hitR)
		b.Add(e)
		if _, err := b.Bytes(); !errors.Is(err, ErrParamValue) {
			t.Errorf("%#v: %v, want ErrParamValue", e, err)
		}
	}
	// A TransportAddress must say which of the five parameters it is.
	for _, pt := range []ParamType{0, ParamFrom, ParamLocatorSet} {
		b := NewBuilder(nil, UPDATE, hitI, hitR)
		b.Add(TransportAddress{Type: pt, Addr: ip4a})
		if _, err := b.Bytes(); !errors.Is(err, ErrParamValue) {
			t.Errorf("TransportAddress of type %v: %v", pt, err)
		}
	}
	// Bad list shapes and MAC sizes.
	for _, e := range []Encoder{
		ViaRVS{}, ViaRVS{Addrs: make(AddrList, 20)},
		NATTraversalMode{}, NATTraversalMode{Modes: U16List{1}}, MakeNATTraversalMode(1, 2, 3, 1, 2, 3, 1),
		RVSHMAC{}, RelayHMAC{MAC: make([]byte, 65)},
	} {
		b := NewBuilder(nil, UPDATE, hitI, hitR)
		b.Add(e)
		if _, err := b.Bytes(); !errors.Is(err, ErrParamValue) {
			t.Errorf("%#v: %v, want ErrParamValue", e, err)
		}
	}
	// An IPv4-compatible address (::c000:201) is an IPv6 address, not
	// unmapped; an all-zero address is the unspecified IPv6 address.
	c := make([]byte, 16)
	copy(c[12:], []byte{192, 0, 2, 1})
	if f, _ := ParseFrom(c); !f.Addr.Is6() || f.Addr.Is4In6() {
		t.Errorf("IPv4-compatible parsed as %v", f.Addr)
	}
	if f, _ := ParseFrom(make([]byte, 16)); f.Addr != netip.IPv6Unspecified() {
		t.Errorf("zero address parsed as %v", f.Addr)
	}
}

// TestNATTraversalModeSix: more than six mode IDs are accepted and cut to
// the first six (RFC 9028 §5.4).
func TestNATTraversalModeSix(t *testing.T) {
	c := append([]byte{0, 0}, MakeU16List(3, 1, 2, 3, 1, 2, 9, 9)...)
	m, err := ParseNATTraversalMode(c)
	if err != nil || m.Modes.Len() != 6 || m.Modes.At(0) != 3 || m.Modes.Contains(9) || cap(m.Modes) != 12 {
		t.Fatalf("%v %v", m.Modes, err)
	}
	if NATModeName(NATModeUDPEncapsulation) != "UDP-ENCAPSULATION" || NATModeName(NATModeICESTUNUDP) != "ICE-STUN-UDP" ||
		NATModeName(NATModeICEHIPUDP) != "ICE-HIP-UDP" || NATModeName(0) != "mode0" {
		t.Error("NATModeName")
	}
	if p := (TransactionPacing{MinTa: 50}); p.Duration().String() != "50ms" {
		t.Error(p.Duration())
	}
}

// TestTraversalAliasing: the variable-length parsers alias their input.
func TestTraversalAliasing(t *testing.T) {
	c := append([]byte{10, 20}, 1, 2)
	info, _ := ParseRegInfo(c)
	c[2] = 4
	if info.Types[0] != 4 {
		t.Error("REG_INFO copies")
	}
	v := MakeAddrList(ip4a)
	via, _ := ParseViaRVS(v)
	v[15] = 9
	if via.Addrs.At(0) != netip.MustParseAddr("192.0.2.9") {
		t.Error("VIA_RVS copies")
	}
	mac := fill(20, 0)
	m, _ := ParseRelayHMAC(mac)
	mac[0] ^= 0xff
	if m.MAC[0] != mac[0] {
		t.Error("RELAY_HMAC copies")
	}
}

func TestFormatTraversal(t *testing.T) {
	raw := buildPacket(t, UPDATE, traversalParams...)
	p, err := ParsePacket(raw)
	if err != nil {
		t.Fatal(err)
	}
	s := Format(p)
	for _, want := range []string{
		"LOCATOR_SET (193,C) len=124: locators=[both preferred lifetime=120s 2001:db8::1, data lifetime=1s spi=0x11223344 192.0.2.1, both lifetime=4294967295s srflx protocol=17 198.51.100.7:10500 priority=1694499071 spi=0xdeadbeef, signaling preferred lifetime=60s relay protocol=17 [2001:db8:ffff::42]:50000 priority=16777215 spi=0x00000007]",
		"NAT_TRAVERSAL_MODE (608) len=6: modes=[ICE-HIP-UDP UDP-ENCAPSULATION]",
		"TRANSACTION_PACING (610) len=4: min-ta=50ms",
		"REG_INFO (930) len=4: min-lifetime=91 (10.375s) max-lifetime=120 (2m8s) types=[RELAY_UDP_HIP RELAY_UDP_ESP]",
		"REG_REQUEST (932) len=2: lifetime=120 (2m8s) types=[RELAY_UDP_HIP]",
		"REG_RESPONSE (934) len=2: lifetime=100 (",
		"REG_FAILED (936) len=2: failure=2 (insufficient resources) types=[RELAY_UDP_ESP]",
		"REG_FROM (950) len=20: protocol=17 address=192.0.2.1:49152",
		"RELAYED_ADDRESS (4650) len=20: protocol=17 address=[2001:db8::1]:10501",
		"MAPPED_ADDRESS (4660) len=20: protocol=17 address=198.51.100.7:60000",
		"PEER_PERMISSION (4680) len=48: protocol=17 relay=192.0.2.1:10501 peer=[2001:db8:ffff::42]:50500 ospi=0x01020304 ispi=0x0a0b0c0d",
		"CANDIDATE_PRIORITY (4700) len=4: priority=2130706431",
		"NOMINATE (4710) len=4\n",
		"RELAY_FROM (63998) len=20: protocol=17 address=[2001:db8:ffff::42]:10500",
		"RELAY_TO (64002) len=20: protocol=0 address=198.51.100.7:0",
		"FROM (65498) len=16: address=192.0.2.1",
		"RVS_HMAC (65500) len=32: hmac=",
		"VIA_RVS (65502) len=32: addresses=[2001:db8::1 198.51.100.7]",
		"RELAY_HMAC (65520) len=48: hmac=",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Format lacks %q:\n%s", want, s)
		}
	}
	// Malformed contents are shown as such; unsupported locators counted.
	b := NewBuilder(nil, UPDATE, hitI, hitR)
	b.AddRaw(ParamLocatorSet, append(rawLocator(0, 9, 0, 1, 5, nil), rawLocator(0, 0, 3, 0, 1, make([]byte, 12))...))
	b.AddRaw(ParamRegInfo, []byte{1})
	b.AddRaw(ParamRegRequest, []byte{0})
	b.AddRaw(ParamRegFrom, make([]byte, 16))
	b.AddRaw(ParamNominate, nil)
	b.AddRaw(ParamViaRVS, make([]byte, 8))
	raw, err = b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	s = Format(Packet(raw))
	for _, want := range []string{"LOCATOR_SET (193,C) len=28 MALFORMED", "REG_INFO (930) len=1 MALFORMED",
		"REG_REQUEST (932) len=1: lifetime=0 (cancel) types=[]", "REG_FROM (950) len=16 MALFORMED", "NOMINATE (4710) len=0 MALFORMED",
		"VIA_RVS (65502) len=8 MALFORMED"} {
		if !strings.Contains(s, want) {
			t.Errorf("Format lacks %q:\n%s", want, s)
		}
	}
	b = NewBuilder(nil, UPDATE, hitI, hitR)
	b.AddRaw(ParamLocatorSet, append(rawLocator(0, 9, 0, 1, 5, nil), rawLocator(0, 0, 4, 0, 1, make([]byte, 16))...))
	raw, _ = b.Bytes()
	if s := Format(Packet(raw)); !strings.Contains(s, "locators=[both lifetime=1s ::] +1 of unsupported type") {
		t.Errorf("unsupported locator:\n%s", s)
	}
}

// traversalSeeds are the FuzzParams seeds of the relay, registration and NAT
// traversal parameters: each of traversalParams, some shapes the structs
// cannot produce (reserved bits, unknown locator types, more than six mode
// IDs), near misses, and the empty contents of every new decoder.
func traversalSeeds(t testing.TB) map[string][]string {
	seeds := map[string][]string{}
	add := func(name string, pt ParamType, c []byte) {
		seeds[name] = []string{fmt.Sprintf("uint16(%d)", uint16(pt)), fmt.Sprintf("[]byte(%q)", c)}
	}
	raw := buildPacket(t, UPDATE, traversalParams...)
	count := map[ParamType]int{}
	for it := Packet(raw).Params(); ; {
		q, ok := it.Next()
		if !ok {
			break
		}
		count[q.Type()]++
		add(fmt.Sprintf("traversal-%v-%d", q.Type(), count[q.Type()]), q.Type(), q.Contents())
	}
	a6 := ip6a.As16()
	var mixed []byte
	mixed = append(mixed, rawLocator(0, 0, 4, 0xfe, 30, a6[:])...)
	mixed = append(mixed, rawLocator(0, 9, 3, 0x01, 5, fill(12, 0))...)
	mixed = append(mixed, rawLocator(2, 1, 5, 0x81, 40, append([]byte{0, 0, 0, 9}, ip4aWire...))...)
	mixed = append(mixed, rawLocator(1, 2, 7, 0x01, 9, append(fill(12, 3), ip4aWire...))...)
	add("traversal-LOCATOR_SET-unsupported", ParamLocatorSet, mixed)
	add("traversal-LOCATOR_SET-bad-length", ParamLocatorSet, rawLocator(0, 2, 6, 0, 1, make([]byte, 24)))
	add("traversal-LOCATOR_SET-zero-lifetime", ParamLocatorSet, rawLocator(0, 0, 4, 0, 0, a6[:]))
	add("traversal-NAT_TRAVERSAL_MODE-eight", ParamNATTraversalMode, append([]byte{0xff, 0xff}, MakeU16List(3, 1, 2, 3, 1, 2, 9, 9)...))
	add("traversal-PEER_PERMISSION-reserved", ParamPeerPermission, append(append([]byte{0, 1, 0, 2, 17, 0xff, 0xff, 0xff}, fill(32, 4)...), fill(8, 5)...))
	add("traversal-RELAY_FROM-short", ParamRelayFrom, ip4aWire)
	add("traversal-VIA_RVS-odd", ParamViaRVS, fill(24, 6))
	add("traversal-REG_INFO-min-above-max", ParamRegInfo, []byte{200, 100, 1, 2, 3, 4, 201})
	for _, e := range traversalParams {
		add("empty-"+e.ParamType().String(), e.ParamType(), nil)
	}
	return seeds
}

// TestTraversalFuzzSeeds checks that the committed corpus under
// testdata/fuzz/FuzzParams holds traversalSeeds, and with -write-seeds
// writes them. It runs after TestWriteFuzzSeeds (file order), which starts
// by removing that directory.
func TestTraversalFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParams")
	for name, args := range traversalSeeds(t) {
		body := "go test fuzz v1\n" + strings.Join(args, "\n") + "\n"
		path := filepath.Join(dir, name)
		if *writeSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != body {
			t.Errorf("seed %s missing or stale (run go test -run FuzzSeeds -write-seeds): %v", name, err)
		}
	}
}
