package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Fuzz targets for the NAT traversal, relay and registration parameters
// (locator.go, nat.go, registration.go, relay.go). FuzzParams already
// reaches these decoders, but through a 16-bit type most of whose values
// select another decoder or none; here the type is picked by one octet
// from the family, the seeds are real encodings of that family, and each
// target checks what is particular to it beyond checkReencode.
//
// The committed corpora under testdata/fuzz/<Target> are natFuzzSeeds,
// written by
//
//	go test -run FuzzSeedsNAT ./handshake/wire -args -write-seeds

// The parameter families, indexed by the selector octet modulo their
// length.
var (
	regFamily   = []ParamType{ParamRegInfo, ParamRegRequest, ParamRegResponse, ParamRegFailed, ParamRegFrom}
	relayFamily = []ParamType{ParamRelayFrom, ParamRelayTo, ParamRelayHMAC, ParamRVSHMAC, ParamFrom, ParamViaRVS,
		ParamRelayedAddress, ParamMappedAddress}
	natModeFamily = []ParamType{ParamNATTraversalMode, ParamTransactionPacing}
)

// FuzzLocatorSet: ParseLocatorSet never panics; an accepted set accounts
// for every octet, At and UnsupportedAt work for every index below Len and
// Unsupported (in a set larger than a packet can carry, the first and the
// last), the plain form LocatorSet() builds again and decodes to itself,
// and the contents come back as canonicalLocatorSet says.
func FuzzLocatorSet(f *testing.F) {
	addNATSeeds(f, "FuzzLocatorSet")
	f.Fuzz(func(t *testing.T, contents []byte) {
		v, err := ParseLocatorSet(contents)
		// At walks the set from its start, so visiting every index (as
		// describe and LocatorSet do) is quadratic; past what a packet can
		// carry, only the first and last index are tried.
		huge := len(contents) > maxParamContents
		if !huge {
			if _, derr := describe(ParamLocatorSet, contents); (derr == nil) != (err == nil) {
				t.Fatalf("describe says %v, ParseLocatorSet %v", derr, err)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrParamLength) && !errors.Is(err, ErrParamValue) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if v.Len() != 0 || v.Unsupported() != 0 || v.Bytes() != nil {
				t.Fatal("a rejected set left a partial view")
			}
			return
		}
		if len(contents) > 0 && &v.Bytes()[0] != &contents[0] || len(v.Bytes()) != len(contents) {
			t.Fatal("Bytes does not alias the contents")
		}
		// Walk the sub-parameters independently of the view.
		known, unknown := 0, 0
		for off := 0; off < len(contents); {
			if len(contents)-off < locatorHeaderLen {
				t.Fatalf("accepted a set with %d stray octets at %d", len(contents)-off, off)
			}
			n := locatorHeaderLen + 4*int(contents[off+2])
			if off+n > len(contents) {
				t.Fatalf("accepted a locator at %d running past the end", off)
			}
			if binary.BigEndian.Uint32(contents[off+4:]) == 0 {
				t.Fatalf("accepted a zero lifetime at %d", off)
			}
			if w, ok := locatorWords(contents[off+1]); ok {
				if 4*w+locatorHeaderLen != n {
					t.Fatalf("accepted type %d of %d octets", contents[off+1], n)
				}
				known++
			} else {
				unknown++
			}
			off += n
		}
		if v.Len() != known || v.Unsupported() != unknown {
			t.Fatalf("Len %d Unsupported %d, counted %d and %d", v.Len(), v.Unsupported(), known, unknown)
		}
		for _, i := range indices(v.Len(), huge) {
			l := v.At(i)
			if _, ok := locatorWords(l.Type); !ok || l.Lifetime == 0 || !l.Addr.IsValid() || l.Addr.Zone() != "" || l.Addr.Is4In6() {
				t.Fatalf("At(%d) = %+v", i, l)
			}
		}
		for _, i := range indices(v.Unsupported(), huge) {
			raw, p := v.UnsupportedAt(i)
			if _, ok := locatorWords(raw[1]); ok || len(raw) != locatorHeaderLen+4*int(raw[2]) || cap(raw) != len(raw) || p != (raw[3]&1 == 1) {
				t.Fatalf("UnsupportedAt(%d) = %x, %v", i, raw, p)
			}
		}
		if huge {
			return
		}
		s := v.LocatorSet()
		if len(s.Locators) != v.Len() {
			t.Fatalf("LocatorSet has %d locators, Len %d", len(s.Locators), v.Len())
		}
		for i, l := range s.Locators {
			if l != v.At(i) {
				t.Fatalf("LocatorSet()[%d] = %+v, At %+v", i, l, v.At(i))
			}
		}
		mustBuild(t, s)
		checkReencode(t, ParamLocatorSet, contents, s)
		// The canonical encoding is a fixed point and has nothing to skip.
		c := canonicalLocatorSet(contents)
		v2, err := ParseLocatorSet(c)
		if err != nil || v2.Len() != v.Len() || v2.Unsupported() != 0 || !bytes.Equal(canonicalLocatorSet(c), c) {
			t.Fatalf("canonical form: Len %d Unsupported %d, %v", v2.Len(), v2.Unsupported(), err)
		}
	})
}

// maxParamContents is the most a parameter can hold in a packet of
// MaxPacketLen octets.
const maxParamContents = MaxPacketLen - HeaderLen - paramHeaderLen

// indices returns 0..n-1, or, if only the ends are wanted, the first and
// last of them.
func indices(n int, ends bool) []int {
	if ends && n > 2 {
		return []int{0, n - 1}
	}
	is := make([]int, n)
	for i := range is {
		is[i] = i
	}
	return is
}

// FuzzRegParams: REG_INFO, REG_REQUEST, REG_RESPONSE, REG_FAILED and
// REG_FROM, the type picked by sel.
func FuzzRegParams(f *testing.F) {
	addNATSeeds(f, "FuzzRegParams")
	f.Fuzz(func(t *testing.T, sel uint8, contents []byte) {
		pt := regFamily[int(sel)%len(regFamily)]
		v := fuzzFamilyMember(t, pt, contents)
		if v == nil {
			return
		}
		var lifetimes, types []byte
		switch v := v.(type) {
		case RegInfo:
			if v.MinLifetime > v.MaxLifetime {
				// Accepted on receipt (Min > Max is not judged) but
				// not sent: the Builder must refuse it.
				b := NewBuilder(nil, UPDATE, hitI, hitR)
				b.Add(v)
				if _, err := b.Bytes(); !errors.Is(err, ErrParamValue) {
					t.Fatalf("REG_INFO Min %d > Max %d built: %v", v.MinLifetime, v.MaxLifetime, err)
				}
			}
			lifetimes, types = []byte{v.MinLifetime, v.MaxLifetime}, v.Types
		case RegRequest:
			lifetimes, types = []byte{v.Lifetime}, v.Types
		case RegResponse:
			lifetimes, types = []byte{v.Lifetime}, v.Types
		case RegFailed:
			types = v.Types
		case TransportAddress:
			checkTransportAddress(t, pt, contents, v)
			return
		default:
			t.Fatalf("%v decoded as %T", pt, v)
		}
		if !aliasesTail(types, contents) {
			t.Fatalf("%v: Types %x is not the tail of %x", pt, types, contents)
		}
		// RFC 8003 §4.1: the lifetime octets map one to one onto durations.
		for _, x := range lifetimes {
			d := LifetimeToDuration(x)
			if y := DurationToLifetime(d); y != x {
				t.Fatalf("lifetime %d = %v encodes back as %d", x, d, y)
			}
			if x > 0 && d <= LifetimeToDuration(x-1) {
				t.Fatalf("lifetime %d = %v not above %d", x, d, x-1)
			}
		}
	})
}

// FuzzRelayParams: RELAY_FROM, RELAY_TO, RELAY_HMAC, RVS_HMAC, FROM,
// VIA_RVS, RELAYED_ADDRESS and MAPPED_ADDRESS, the type picked by sel.
func FuzzRelayParams(f *testing.F) {
	addNATSeeds(f, "FuzzRelayParams")
	f.Fuzz(func(t *testing.T, sel uint8, contents []byte) {
		pt := relayFamily[int(sel)%len(relayFamily)]
		v := fuzzFamilyMember(t, pt, contents)
		if v == nil {
			return
		}
		switch v := v.(type) {
		case TransportAddress:
			checkTransportAddress(t, pt, contents, v)
		case From:
			if v.Addr.Is4In6() || !bytes.Equal(MakeAddrList(v.Addr), contents) {
				t.Fatalf("FROM %x decoded as %v", contents, v.Addr)
			}
		case ViaRVS:
			if !aliasesTail(v.Addrs, contents) || len(v.Addrs) != len(contents) || v.Addrs.Len()*addrLen != len(contents) {
				t.Fatalf("VIA_RVS of %d octets holds %d addresses", len(contents), v.Addrs.Len())
			}
			addrs := make([]netip.Addr, v.Addrs.Len())
			for i := range addrs {
				if addrs[i] = v.Addrs.At(i); addrs[i].Is4In6() {
					t.Fatalf("VIA_RVS address %d left mapped: %v", i, addrs[i])
				}
			}
			if got := MakeViaRVS(addrs...); !bytes.Equal(got.Addrs, contents) {
				t.Fatalf("VIA_RVS %v encodes as %x, received %x", addrs, got.Addrs, contents)
			}
		case RelayHMAC:
			if !aliasesTail(v.MAC, contents) || len(v.MAC) != len(contents) {
				t.Fatal("RELAY_HMAC does not alias its contents")
			}
		case RVSHMAC:
			if !aliasesTail(v.MAC, contents) || len(v.MAC) != len(contents) {
				t.Fatal("RVS_HMAC does not alias its contents")
			}
		default:
			t.Fatalf("%v decoded as %T", pt, v)
		}
	})
}

// FuzzNATTraversalMode: NAT_TRAVERSAL_MODE and TRANSACTION_PACING, the type
// picked by sel.
func FuzzNATTraversalMode(f *testing.F) {
	addNATSeeds(f, "FuzzNATTraversalMode")
	f.Fuzz(func(t *testing.T, sel uint8, contents []byte) {
		pt := natModeFamily[int(sel)%len(natModeFamily)]
		v := fuzzFamilyMember(t, pt, contents)
		if v == nil {
			return
		}
		switch v := v.(type) {
		case NATTraversalMode:
			// RFC 9028 §5.4: accept the first six Mode IDs, drop the rest.
			want := min((len(contents)-2)/2, MaxListIDs)
			if v.Modes.Len() != want || &v.Modes[0] != &contents[2] {
				t.Fatalf("%d octets gave %d modes, want %d", len(contents), v.Modes.Len(), want)
			}
			for i := range v.Modes.Len() {
				id := v.Modes.At(i)
				if id != binary.BigEndian.Uint16(contents[2+2*i:]) || !v.Modes.Contains(id) {
					t.Fatalf("mode %d = %d", i, id)
				}
				_ = NATModeName(id)
			}
		case TransactionPacing:
			if v.MinTa != binary.BigEndian.Uint32(contents) || v.Duration() != time.Duration(v.MinTa)*time.Millisecond {
				t.Fatalf("Min Ta %d, duration %v from %x", v.MinTa, v.Duration(), contents)
			}
		default:
			t.Fatalf("%v decoded as %T", pt, v)
		}
	})
}

// fuzzFamilyMember decodes contents as pt through decoders and checks what
// holds for every parameter: describe agrees with the decoder, errors wrap
// a sentinel and name pt, and an accepted value builds (but for a REG_INFO
// with Min Lifetime above Max, which FuzzRegParams judges) and survives
// checkReencode. It returns the decoded value, or nil on a decode error.
func fuzzFamilyMember(t *testing.T, pt ParamType, contents []byte) Encoder {
	t.Helper()
	_, derr := describe(pt, contents)
	v, err := decoders[pt](contents)
	if (derr == nil) != (err == nil) {
		t.Fatalf("%v: describe says %v, decoder %v", pt, derr, err)
	}
	if err != nil {
		if !errors.Is(err, ErrParamLength) && !errors.Is(err, ErrParamValue) {
			t.Fatalf("%v: error %v wraps no sentinel", pt, err)
		}
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Type != pt {
			t.Fatalf("%v: error %v names another type", pt, err)
		}
		return nil
	}
	if r, ok := v.(RegInfo); !ok || r.MinLifetime <= r.MaxLifetime {
		mustBuild(t, v)
	}
	checkReencode(t, pt, contents, v)
	return v
}

// mustBuild checks that a value decoded from the wire can be sent again:
// only a packet over MaxPacketLen may refuse it. (Format is left to
// FuzzParsePacket: describe already prints the parameter.)
func mustBuild(t *testing.T, v Encoder) {
	t.Helper()
	b := NewBuilder(nil, UPDATE, hitI, hitR)
	b.Add(v)
	if _, err := b.Bytes(); err != nil && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%v: decoded value does not build: %v", v.ParamType(), err)
	}
}

// checkTransportAddress checks the fields of a decoded REG_FROM, RELAY_FROM,
// RELAY_TO, RELAYED_ADDRESS or MAPPED_ADDRESS against its 20 octets.
func checkTransportAddress(t *testing.T, pt ParamType, contents []byte, v TransportAddress) {
	t.Helper()
	if !IsTransportAddress(pt) || v.Type != pt {
		t.Fatalf("%v decoded with Type %v", pt, v.Type)
	}
	ap := v.AddrPort()
	if v.Port != binary.BigEndian.Uint16(contents) || v.Protocol != contents[2] || ap.Port() != v.Port || ap.Addr() != v.Addr {
		t.Fatalf("%v: %+v from %x", pt, v, contents)
	}
	if v.Addr.Is4In6() || !bytes.Equal(MakeAddrList(v.Addr), contents[4:]) {
		t.Fatalf("%v: address %v from %x", pt, v.Addr, contents[4:])
	}
}

// aliasesTail reports whether sub is the end of b, in place (both empty
// counts).
func aliasesTail(sub, b []byte) bool {
	if len(sub) == 0 {
		return true
	}
	return len(sub) <= len(b) && &sub[len(sub)-1] == &b[len(b)-1]
}

// natSeed is one input of a fuzz target in this file: args in the order of
// the fuzz function's parameters after t.
type natSeed struct {
	name string
	args []any
}

func addNATSeeds(f *testing.F, target string) {
	for _, s := range natFuzzSeeds(f)[target] {
		f.Add(s.args...)
	}
}

// seedContents builds e into a packet and returns its contents as sent.
func seedContents(t testing.TB, e Encoder) []byte {
	t.Helper()
	b := NewBuilder(nil, UPDATE, hitI, hitR)
	b.Add(e)
	raw, err := b.Bytes()
	if err != nil {
		t.Fatalf("seed %v: %v", e.ParamType(), err)
	}
	q, _ := Packet(raw).Param(e.ParamType())
	return bytes.Clone(q.Contents())
}

// natFuzzSeeds are the seeds of the four targets: real encodings of the
// plain structs, shapes the structs cannot produce (unknown locator types,
// reserved bits, more than six modes), and truncated and oversized
// variants of each.
func natFuzzSeeds(t testing.TB) map[string][]natSeed {
	seeds := map[string][]natSeed{}
	mapped := netip.MustParseAddr("::ffff:203.0.113.9") // an IPv4-mapped address given as IPv6
	compat := netip.MustParseAddr("::c000:201")         // IPv4-compatible: stays IPv6
	a6 := ip6a.As16()

	// LOCATOR_SET.
	loc := func(name string, c []byte) {
		seeds["FuzzLocatorSet"] = append(seeds["FuzzLocatorSet"], natSeed{"locator-" + name, []any{c}})
	}
	set := func(ls ...Locator) []byte { return seedContents(t, LocatorSet{Locators: ls}) }
	sample := set(sampleLocators...)
	ice := set(
		Locator{Traffic: TrafficBoth, Type: LocatorTypeTransport, Preferred: true, Lifetime: 3600, Port: 50500, Protocol: ProtocolUDP,
			Kind: KindHost, Priority: 2130706431, SPI: 0x1000, Addr: ip6a},
		Locator{Traffic: TrafficBoth, Type: LocatorTypeTransport, Lifetime: 3600, Port: 50500, Protocol: ProtocolUDP,
			Kind: KindHost, Priority: 2130706175, SPI: 0x1000, Addr: ip4a},
		Locator{Traffic: TrafficBoth, Type: LocatorTypeTransport, Lifetime: 3600, Port: 61000, Protocol: ProtocolUDP,
			Kind: KindServerReflexive, Priority: 1694498815, SPI: 0x1000, Addr: mapped},
		Locator{Traffic: TrafficBoth, Type: LocatorTypeTransport, Lifetime: 600, Port: 10501, Protocol: ProtocolUDP,
			Kind: KindRelayed, Priority: 16777215, SPI: 0x1000, Addr: ip4b},
	)
	loc("empty", nil)
	loc("sample", sample)
	loc("ice-candidates", ice)
	loc("type0-ipv6", set(Locator{Type: LocatorTypeAddr, Preferred: true, Lifetime: 1, Addr: ip6b}))
	loc("type0-ipv4", set(Locator{Traffic: TrafficSignaling, Type: LocatorTypeAddr, Lifetime: 120, Addr: ip4a}))
	loc("type0-ipv4-mapped", set(Locator{Type: LocatorTypeAddr, Lifetime: 120, Addr: mapped}))
	loc("type0-ipv4-compatible", set(Locator{Type: LocatorTypeAddr, Lifetime: 120, Addr: compat}))
	loc("type1-ipv4", set(Locator{Traffic: TrafficData, Type: LocatorTypeESP, Preferred: true, Lifetime: 60, SPI: 0xcafe, Addr: ip4b}))
	loc("type1-ipv6", set(Locator{Traffic: TrafficData, Type: LocatorTypeESP, Lifetime: 0xffffffff, SPI: 0xffffffff, Addr: ip6a}))
	loc("type2-ipv6", set(Locator{Type: LocatorTypeTransport, Lifetime: 30, Port: 65535, Protocol: ProtocolUDP,
		Kind: KindPeerReflexive, Priority: 1, SPI: 1, Addr: ip6b}))
	unknown := append(bytes.Clone(sample[:24]), rawLocator(TrafficBoth, 9, 3, 0x01, 5, fill(12, 0))...)
	unknown = append(unknown, sample[24:]...)
	loc("unknown-type-between", unknown)
	loc("unknown-type-only", rawLocator(TrafficData, 3, 5, 0, 77, append([]byte{0, 0, 0, 9}, ip4aWire...)))
	loc("unknown-type-empty-body", append(rawLocator(0, 255, 0, 0x01, 1, nil), sample[:24]...))
	loc("unknown-type-max-length", rawLocator(0, 200, 255, 0, 1, fill(4*255, 7)))
	loc("reserved-bits", rawLocator(0xff, LocatorTypeAddr, 4, 0xff, 1, a6[:]))
	loc("truncated-by-one", sample[:len(sample)-1])
	loc("without-last-locator", sample[:len(sample)-36])
	loc("truncated-header", sample[:7])
	loc("oversized-by-one", append(bytes.Clone(sample), 0))
	loc("oversized-zero-header", append(bytes.Clone(sample), make([]byte, 8)...))
	loc("type2-length-6", rawLocator(0, LocatorTypeTransport, 6, 0, 1, make([]byte, 24)))
	loc("type0-length-5", rawLocator(0, LocatorTypeAddr, 5, 0, 1, make([]byte, 20)))
	loc("zero-lifetime", append(bytes.Clone(sample[:24]), rawLocator(0, 0, 4, 0, 0, a6[:])...))

	// The three families of single parameters: name, selector, contents.
	param := func(target string, family []ParamType, name string, pt ParamType, c []byte) {
		i := 0
		for family[i] != pt {
			i++
		}
		seeds[target] = append(seeds[target], natSeed{name, []any{uint8(i), c}})
	}
	// Each value, then it one octet short and one octet long.
	values := func(target string, family []ParamType, name string, e Encoder) {
		c := seedContents(t, e)
		pt := e.ParamType()
		param(target, family, name, pt, c)
		if len(c) > 0 {
			param(target, family, name+"-short", pt, c[:len(c)-1])
		}
		param(target, family, name+"-long", pt, append(bytes.Clone(c), 0xa5))
	}
	empty := func(target string, family []ParamType) {
		for _, pt := range family {
			param(target, family, "empty-"+pt.String(), pt, nil)
		}
	}

	reg := func(name string, e Encoder) { values("FuzzRegParams", regFamily, name, e) }
	reg("reg-info-relays", RegInfo{MinLifetime: 91, MaxLifetime: 120, Types: []byte{RegTypeRelayUDPHIP, RegTypeRelayUDPESP, RegTypeCandidateDiscovery}})
	reg("reg-info-none", RegInfo{MinLifetime: 10, MaxLifetime: 200})
	reg("reg-info-all", RegInfo{MinLifetime: 1, MaxLifetime: 255, Types: []byte{1, 2, 3, 4, 201}})
	reg("reg-request", RegRequest{Lifetime: 120, Types: []byte{RegTypeRelayUDPHIP}})
	reg("reg-request-cancel", RegRequest{Lifetime: 0, Types: []byte{RegTypeRendezvous, RegTypeRelayUDPESP}})
	reg("reg-request-no-types", RegRequest{Lifetime: 255})
	reg("reg-response", RegResponse{Lifetime: 100, Types: []byte{RegTypeRelayUDPHIP, RegTypeRelayUDPESP}})
	reg("reg-response-cancelled", RegResponse{Lifetime: 0, Types: []byte{RegTypeCandidateDiscovery}})
	reg("reg-failed", RegFailed{FailureType: RegFailureInsufficientResources, Types: []byte{RegTypeRelayUDPESP}})
	reg("reg-failed-rvs-and-relay", RegFailed{FailureType: RegFailureRendezvousAndRelay, Types: []byte{RegTypeRendezvous, RegTypeRelayUDPHIP}})
	reg("reg-failed-private", RegFailed{FailureType: 201})
	reg("reg-from-ipv4", TransportAddress{Type: ParamRegFrom, Port: 49152, Protocol: ProtocolUDP, Addr: ip4a})
	reg("reg-from-ipv6", TransportAddress{Type: ParamRegFrom, Port: 10500, Protocol: ProtocolUDP, Addr: ip6b})
	reg("reg-from-ipv4-mapped", TransportAddress{Type: ParamRegFrom, Port: 1, Protocol: ProtocolUDP, Addr: mapped})
	param("FuzzRegParams", regFamily, "reg-info-min-above-max", ParamRegInfo, []byte{200, 100, 1, 2, 3, 4, 201})
	param("FuzzRegParams", regFamily, "reg-from-reserved", ParamRegFrom, append([]byte{0xc0, 0x00, 17, 0xff}, ip4aWire...))
	empty("FuzzRegParams", regFamily)

	relay := func(name string, e Encoder) { values("FuzzRelayParams", relayFamily, name, e) }
	relay("relay-from-ipv6", TransportAddress{Type: ParamRelayFrom, Port: 10500, Protocol: ProtocolUDP, Addr: ip6b})
	relay("relay-from-ipv4", TransportAddress{Type: ParamRelayFrom, Port: 50000, Protocol: ProtocolUDP, Addr: ip4a})
	relay("relay-to-ipv4-plain", TransportAddress{Type: ParamRelayTo, Addr: ip4b})
	relay("relay-to-ipv4-mapped", TransportAddress{Type: ParamRelayTo, Port: 10500, Protocol: ProtocolUDP, Addr: mapped})
	relay("relay-to-ipv4-compatible", TransportAddress{Type: ParamRelayTo, Port: 10500, Protocol: ProtocolUDP, Addr: compat})
	relay("relay-hmac-sha256", RelayHMAC{MAC: fill(32, 9)})
	relay("relay-hmac-sha384", RelayHMAC{MAC: fill(48, 9)})
	relay("relay-hmac-max", RelayHMAC{MAC: fill(64, 1)})
	relay("relay-hmac-one", RelayHMAC{MAC: []byte{0}})
	relay("rvs-hmac-sha256", RVSHMAC{MAC: fill(32, 8)})
	relay("rvs-hmac-sha384", RVSHMAC{MAC: fill(48, 3)})
	relay("from-ipv4", From{Addr: ip4a})
	relay("from-ipv6", From{Addr: ip6a})
	relay("from-ipv4-mapped", From{Addr: mapped})
	relay("via-rvs-one", MakeViaRVS(ip6a))
	relay("via-rvs-two", MakeViaRVS(ip6a, ip4b))
	relay("via-rvs-three", MakeViaRVS(mapped, compat, ip6b))
	relay("relayed-address-ipv4", TransportAddress{Type: ParamRelayedAddress, Port: 10501, Protocol: ProtocolUDP, Addr: ip4b})
	relay("relayed-address-ipv6", TransportAddress{Type: ParamRelayedAddress, Port: 10501, Protocol: ProtocolUDP, Addr: ip6a})
	relay("mapped-address-ipv4", TransportAddress{Type: ParamMappedAddress, Port: 60000, Protocol: ProtocolUDP, Addr: ip4a})
	relay("mapped-address-ipv6", TransportAddress{Type: ParamMappedAddress, Port: 443, Protocol: ProtocolUDP, Addr: ip6b})
	param("FuzzRelayParams", relayFamily, "relay-hmac-65", ParamRelayHMAC, fill(65, 2))
	param("FuzzRelayParams", relayFamily, "via-rvs-24", ParamViaRVS, fill(24, 6))
	param("FuzzRelayParams", relayFamily, "relay-from-reserved", ParamRelayFrom, append([]byte{0x27, 0x10, 17, 0xff}, a6[:]...))
	empty("FuzzRelayParams", relayFamily)

	nat := func(name string, e Encoder) { values("FuzzNATTraversalMode", natModeFamily, name, e) }
	nat("modes-ice-hip-udp-encap", MakeNATTraversalMode(NATModeICEHIPUDP, NATModeUDPEncapsulation))
	nat("modes-udp-encap", MakeNATTraversalMode(NATModeUDPEncapsulation))
	nat("modes-legacy", MakeNATTraversalMode(NATModeICESTUNUDP, NATModeICEHIPUDP, NATModeUDPEncapsulation))
	nat("modes-six", MakeNATTraversalMode(3, 2, 1, 0, 9, 0xffff))
	nat("pacing-default", TransactionPacing{MinTa: 50})
	nat("pacing-floor", TransactionPacing{MinTa: 5})
	nat("pacing-zero", TransactionPacing{})
	nat("pacing-max", TransactionPacing{MinTa: 0xffffffff})
	param("FuzzNATTraversalMode", natModeFamily, "modes-eight", ParamNATTraversalMode, append([]byte{0xff, 0xff}, MakeU16List(3, 1, 2, 3, 1, 2, 9, 9)...))
	param("FuzzNATTraversalMode", natModeFamily, "modes-reserved", ParamNATTraversalMode, []byte{0xff, 0xff, 0, 3})
	param("FuzzNATTraversalMode", natModeFamily, "modes-none", ParamNATTraversalMode, []byte{0, 0})
	param("FuzzNATTraversalMode", natModeFamily, "modes-odd", ParamNATTraversalMode, []byte{0, 0, 0, 3, 0})
	empty("FuzzNATTraversalMode", natModeFamily)
	return seeds
}

// encodeSeed renders a seed as a corpus file ("go test fuzz v1").
func encodeSeed(args []any) string {
	var sb strings.Builder
	sb.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch a := a.(type) {
		case []byte:
			fmt.Fprintf(&sb, "[]byte(%q)\n", a)
		case uint8:
			fmt.Fprintf(&sb, "uint8(%d)\n", a)
		default:
			panic(fmt.Sprintf("seed argument of type %T", a))
		}
	}
	return sb.String()
}

// TestFuzzSeedsNAT checks that testdata/fuzz holds natFuzzSeeds, and with
// -write-seeds writes them.
func TestFuzzSeedsNAT(t *testing.T) {
	seeds := natFuzzSeeds(t)
	targets := make([]string, 0, len(seeds))
	for target := range seeds {
		targets = append(targets, target)
	}
	sort.Strings(targets)
	for _, target := range targets {
		dir := filepath.Join("testdata", "fuzz", target)
		names := map[string]bool{}
		for _, s := range seeds[target] {
			if names[s.name] {
				t.Fatalf("%s: seed name %s twice", target, s.name)
			}
			names[s.name] = true
			body, path := encodeSeed(s.args), filepath.Join(dir, s.name)
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
				t.Errorf("seed %s/%s missing or stale (run go test -run FuzzSeedsNAT ./handshake/wire -args -write-seeds): %v", target, s.name, err)
			}
		}
	}
}
