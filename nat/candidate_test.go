package nat

import (
	"net/netip"
	"reflect"
	"testing"

	"hipnet.dev/handshake/wire"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestPriority(t *testing.T) {
	for _, tc := range []struct {
		kind uint8
		want uint32
	}{
		// (2^24)*type preference + (2^8)*65535 + (256-1), RFC 8445 §5.1.2.1
		{wire.KindHost, 126<<24 | 65535<<8 | 255},
		{wire.KindPeerReflexive, 110<<24 | 65535<<8 | 255},
		{wire.KindServerReflexive, 100<<24 | 65535<<8 | 255},
		{wire.KindRelayed, 65535<<8 | 255},
	} {
		if got := Priority(tc.kind); got != tc.want {
			t.Errorf("Priority(%s) = %d, want %d", wire.KindName(tc.kind), got, tc.want)
		}
	}
	if Priority(wire.KindHost) != 2130706431 {
		t.Error("host priority is not 2130706431")
	}
}

// TestLocatorsRoundTrip sends candidates through a LOCATOR_SET, encoded
// and parsed by handshake/wire, and back.
func TestLocatorsRoundTrip(t *testing.T) {
	in := []Candidate{
		{Addr: netip.MustParseAddrPort("192.0.2.1:10500"), Kind: wire.KindHost},
		{Addr: netip.MustParseAddrPort("[2001:db8::1]:10500"), Kind: wire.KindHost, Priority: 12345},
		{Addr: netip.MustParseAddrPort("198.51.100.7:40000"), Kind: wire.KindServerReflexive},
		{Addr: netip.MustParseAddrPort("203.0.113.9:3478"), Kind: wire.KindRelayed},
		{Addr: netip.MustParseAddrPort("[::ffff:192.0.2.2]:1"), Kind: wire.KindPeerReflexive},
	}
	const spi, lifetime = 0x01020304, 600
	ls := Locators(in, spi, lifetime)
	for i, l := range ls {
		if l.Type != wire.LocatorTypeTransport || l.Protocol != wire.ProtocolUDP ||
			l.Traffic != wire.TrafficBoth || l.SPI != spi || l.Lifetime != lifetime || l.Preferred {
			t.Errorf("locator %d: %+v", i, l)
		}
		if l.Priority != in[i].priority() || l.Priority == 0 {
			t.Errorf("locator %d: priority %d", i, l.Priority)
		}
	}
	set := wire.LocatorSet{Locators: ls}
	b := make([]byte, set.Len())
	set.Encode(b)
	v, err := wire.ParseLocatorSet(b)
	if err != nil {
		t.Fatal(err)
	}
	got := FromLocators(v.LocatorSet().Locators)
	want := make([]Candidate, len(in))
	for i, c := range in {
		want[i] = Candidate{
			Addr:     netip.AddrPortFrom(c.Addr.Addr().Unmap(), c.Addr.Port()),
			Kind:     c.Kind,
			Priority: c.priority(),
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %v\nwant %v", got, want)
	}
}

func TestFromLocatorsSkips(t *testing.T) {
	good := wire.Locator{
		Traffic: wire.TrafficBoth, Type: wire.LocatorTypeTransport, Lifetime: 1, Port: 10500,
		Protocol: wire.ProtocolUDP, Kind: wire.KindHost, Priority: 7, Addr: mustAddr("192.0.2.1"),
	}
	data := good
	data.Traffic = wire.TrafficData
	ls := []wire.Locator{
		{Type: wire.LocatorTypeAddr, Lifetime: 1, Addr: mustAddr("192.0.2.9")},
		{Type: wire.LocatorTypeESP, Lifetime: 1, SPI: 1, Addr: mustAddr("192.0.2.9")},
		good,
		func() wire.Locator { l := good; l.Traffic = wire.TrafficSignaling; return l }(), // a relay (RFC 5770 §4.5)
		func() wire.Locator { l := good; l.Protocol = 6; return l }(),
		func() wire.Locator { l := good; l.Kind = 4; return l }(),
		func() wire.Locator { l := good; l.Port = 0; return l }(),
		func() wire.Locator { l := good; l.Addr = netip.Addr{}; return l }(),
		// No peer is reached there (the unspecified address is this host).
		func() wire.Locator { l := good; l.Addr = mustAddr("0.0.0.0"); return l }(),
		func() wire.Locator { l := good; l.Addr = mustAddr("::"); return l }(),
		func() wire.Locator { l := good; l.Addr = mustAddr("224.0.0.251"); return l }(),
		func() wire.Locator { l := good; l.Addr = mustAddr("ff02::1"); return l }(),
		func() wire.Locator { l := good; l.Addr = mustAddr("::ffff:255.255.255.255"); return l }(),
		data,
	}
	got := FromLocators(ls)
	want := []Candidate{
		{Addr: netip.MustParseAddrPort("192.0.2.1:10500"), Kind: wire.KindHost, Priority: 7},
		{Addr: netip.MustParseAddrPort("192.0.2.1:10500"), Kind: wire.KindHost, Priority: 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestFromLocatorsBounded: a peer that lists many candidates gets
// MaxRemoteCandidates checked, the first ones.
func TestFromLocatorsBounded(t *testing.T) {
	var ls []wire.Locator
	for i := range 3 * MaxRemoteCandidates {
		ls = append(ls, wire.Locator{Traffic: wire.TrafficBoth, Type: wire.LocatorTypeTransport, Lifetime: 1,
			Port: uint16(10000 + i), Protocol: wire.ProtocolUDP, Kind: wire.KindHost, Addr: mustAddr("192.0.2.1")})
	}
	got := FromLocators(ls)
	if len(got) != MaxRemoteCandidates || got[len(got)-1].Addr.Port() != uint16(10000+MaxRemoteCandidates-1) {
		t.Fatalf("%d candidates, the last %v; want the first %d", len(got), got[len(got)-1], MaxRemoteCandidates)
	}
}
