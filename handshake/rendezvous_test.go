package handshake

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// rvsScene is a rendezvous client with an established association with its
// RVS, and an Initiator in I1-SENT towards the client whose I1 the RVS is
// to forward (RFC 8004 §3.3).
type rvsScene struct {
	client, rvs, init *host
	i1                []byte
}

func newRVSScene(t *testing.T) rvsScene {
	t.Helper()
	client, rvs := pair(t)
	bex(t, client, rvs)
	rvs.a(client).DataReceived(t0) // the Responder leaves R2-SENT
	if client.a(rvs).State() != Established || rvs.a(client).State() != Established {
		t.Fatalf("client and RVS not established: %v %v", client.a(rvs).State(), rvs.a(client).State())
	}
	init := newHost(t, "init", defaultCfg(testKey(t, hostid.ECDSAP256, 2)))
	out := init.initiate(t0, client.e.HIT())
	if len(out) != 1 || ptype(out[0]) != wire.I1 {
		t.Fatalf("initiator sent %d packets", len(out))
	}
	return rvsScene{client, rvs, init, out[0]}
}

// forward is the RVS's AppendRendezvous of a copy of the I1.
func (s rvsScene) forward(t *testing.T, from netip.AddrPort) []byte {
	t.Helper()
	fwd, err := s.rvs.a(s.client).AppendRendezvous(bytes.Clone(s.i1), from)
	if err != nil {
		t.Fatalf("AppendRendezvous(%v): %v", from, err)
	}
	return fwd
}

// open is the client's OpenRendezvous of a copy of pkt.
func (s rvsScene) open(pkt []byte) ([]byte, netip.AddrPort, error) {
	return s.client.a(s.rvs).OpenRendezvous(bytes.Clone(pkt))
}

// extend appends params to a copy of pkt (a finished packet) and, when
// mac is not nil, an RVS_HMAC keyed with mac's outgoing key: what an RVS
// keyed like mac would send, however odd the params.
func extend(t *testing.T, pkt []byte, mac *Association, params ...wire.Encoder) []byte {
	t.Helper()
	p, err := wire.ParsePacket(bytes.Clone(pkt))
	if err != nil {
		t.Fatal(err)
	}
	var b wire.Builder
	b.Extend(p)
	for _, q := range params {
		b.Add(q)
	}
	if mac != nil {
		if err := addMACAs(&b, mac.rhash, mac.ourMACKey(), func(m []byte) wire.Encoder { return wire.RVSHMAC{MAC: m} }); err != nil {
			t.Fatal(err)
		}
	}
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// raw is a parameter given by type and contents, of any length.
type raw struct {
	t wire.ParamType
	c []byte
}

func (r raw) ParamType() wire.ParamType { return r.t }
func (r raw) Len() int                  { return len(r.c) }
func (r raw) Encode(b []byte)           { copy(b, r.c) }

// TestRendezvousRoundTrip: the client opens what its RVS forwards back to
// the Initiator's I1, octet for octet, and learns the Initiator's address:
// FROM alone from the HIP port, RELAY_FROM and FROM from another port.
func TestRendezvousRoundTrip(t *testing.T) {
	s := newRVSScene(t)
	for _, c := range []struct {
		from, want string
	}{
		{"192.0.2.7:10500", "192.0.2.7:10500"},
		{"[2001:db8::7]:10500", "[2001:db8::7]:10500"},
		{"198.51.100.9:40001", "198.51.100.9:40001"},
		{"[2001:db8:1::9]:53211", "[2001:db8:1::9]:53211"},
		{"[::ffff:203.0.113.5]:61000", "203.0.113.5:61000"}, // unmapped on the way back
	} {
		from := netip.MustParseAddrPort(c.from)
		fwd := s.forward(t, from)
		p, err := wire.ParsePacket(fwd)
		if err != nil {
			t.Fatalf("%v: forwarded packet does not parse: %v", from, err)
		}
		if !HasRendezvous(p) {
			t.Fatalf("%v: HasRendezvous false", from)
		}
		g := rvsGeometry(t, fwd)
		if g.cut != len(s.i1) {
			t.Fatalf("%v: I1 of %d octets, parameters appended at %d", from, len(s.i1), g.cut)
		}
		if wantRelay := from.Port() != hipUDPPort; g.hasRelay != wantRelay {
			t.Fatalf("%v: RELAY_FROM present %v, want %v", from, g.hasRelay, wantRelay)
		}
		a16 := from.Addr().As16()
		if !bytes.Equal(fwd[g.fromOff+4:g.fromOff+20], a16[:]) {
			t.Fatalf("%v: FROM holds %x", from, fwd[g.fromOff+4:g.fromOff+20])
		}

		buf := bytes.Clone(fwd)
		inner, got, err := s.client.a(s.rvs).OpenRendezvous(buf)
		if err != nil || got != netip.MustParseAddrPort(c.want) || !bytes.Equal(inner, s.i1) {
			t.Fatalf("%v: OpenRendezvous %v %v, inner equal %v", from, err, got, bytes.Equal(inner, s.i1))
		}
		if &inner[0] != &buf[0] {
			t.Fatalf("%v: not opened in place", from)
		}
		ip, err := wire.ParsePacket(inner)
		if err != nil || len(ip) != len(inner) || HasRendezvous(ip) {
			t.Fatalf("%v: opened packet: %v, %d of %d octets", from, err, len(ip), len(inner))
		}
		// The client answers it as any I1.
		if out := s.client.deliver(t0, inner); len(out) != 1 || ptype(out[0]) != wire.R1 {
			t.Fatalf("%v: client answered the opened I1 with %d packets", from, len(out))
		}
	}
}

// TestRendezvousTampered: a change to anything the RVS_HMAC covers is
// caught by the MAC before the addresses are read (RFC 8004 §4.3.2: MUST
// drop).
func TestRendezvousTampered(t *testing.T) {
	s := newRVSScene(t)
	ephemeral := s.forward(t, netip.MustParseAddrPort("198.51.100.9:40001"))
	hip := s.forward(t, netip.MustParseAddrPort("[2001:db8::7]:10500"))
	ge, gh := rvsGeometry(t, ephemeral), rvsGeometry(t, hip)
	for _, c := range []struct {
		name string
		pkt  []byte
		at   int
	}{
		{"FROM address, with RELAY_FROM", ephemeral, ge.fromOff + 4 + 15},
		{"FROM address, without RELAY_FROM", hip, gh.fromOff + 4 + 3},
		{"RELAY_FROM port", ephemeral, ge.cut + 4 + 1},
		{"RELAY_FROM address", ephemeral, ge.cut + 4 + 4 + 15},
		{"I1 sender HIT", hip, 8 + 15},
		{"I1 last parameter", ephemeral, ge.cut - 1},
		{"I1 controls", hip, 7},
		{"RVS_HMAC first", hip, gh.hmacOff + 4},
		{"RVS_HMAC last", ephemeral, ge.macEnd - 1},
	} {
		m := bytes.Clone(c.pkt)
		m[c.at] ^= 0x01
		if _, _, err := s.open(m); !errors.Is(err, ErrBadMAC) {
			t.Errorf("%s (octet %d): %v, want ErrBadMAC", c.name, c.at, err)
		}
	}
	// Not covered: the Checksum (zero over UDP) and the padding after the
	// MAC change nothing.
	m := bytes.Clone(hip)
	m[4], m[5] = 0xbe, 0xef
	if _, got, err := s.open(m); err != nil || got.Port() != hipUDPPort {
		t.Fatalf("checksum changed: %v %v", err, got)
	}
}

// TestRendezvousWrongKey: only the client's own RVS can forward to it. An
// RVS_HMAC from another registration, or keyed with the client's own
// outgoing key (a packet reflected back at it), fails.
func TestRendezvousWrongKey(t *testing.T) {
	s := newRVSScene(t)
	from := netip.MustParseAddrPort("198.51.100.9:40001")
	other := newHost(t, "other-rvs", defaultCfg(testKey(t, hostid.ECDSAP256, 3)))
	bex(t, s.client, other)
	other.a(s.client).DataReceived(t0)
	fwd, err := other.a(s.client).AppendRendezvous(bytes.Clone(s.i1), from)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.open(fwd); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("third host's RVS_HMAC: %v", err)
	}
	// The same packet is good over the association that keyed it.
	if _, got, err := s.client.a(other).OpenRendezvous(bytes.Clone(fwd)); err != nil || got != from {
		t.Fatalf("third host's packet over its own association: %v %v", err, got)
	}

	reflected, err := s.client.a(s.rvs).AppendRendezvous(bytes.Clone(s.i1), from)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.open(reflected); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("client's own key: %v", err)
	}
	if _, _, err := s.rvs.a(s.client).OpenRendezvous(s.forward(t, from)); !errors.Is(err, ErrBadMAC) {
		t.Fatalf("RVS opened its own packet: %v", err)
	}
}

// TestRendezvousNotRelayed: a packet without FROM or without RVS_HMAC is
// not a rendezvous packet; one from the control relay (RELAY_FROM and
// RELAY_HMAC) is not either (RFC 9028 §7.8 keeps the two apart).
func TestRendezvousNotRelayed(t *testing.T) {
	s := newRVSScene(t)
	rvs := s.rvs.a(s.client)
	fwd := s.forward(t, netip.MustParseAddrPort("[2001:db8::7]:10500"))
	g := rvsGeometry(t, fwd)
	noHMAC := bytes.Clone(fwd[:g.hmacOff])
	noHMAC[1] = uint8(len(noHMAC)/8 - 1)
	relayed, err := rvs.AppendRelayed(bytes.Clone(s.i1), wire.TransportAddress{Type: wire.ParamRelayFrom, Port: 40000, Protocol: wire.ProtocolUDP, Addr: netip.MustParseAddr("198.51.100.9")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		pkt  []byte
		has  bool  // HasRendezvous
		want error // from OpenRendezvous
	}{
		{"plain I1", s.i1, false, ErrNotRelayed},
		{"FROM without RVS_HMAC", noHMAC, true, ErrNotRelayed},
		{"RVS_HMAC without FROM", extend(t, s.i1, rvs), true, ErrNotRelayed},
		{"control relay", relayed, false, ErrNotRelayed},
		// RELAY_FROM must be followed by FROM.
		{"RELAY_FROM and RVS_HMAC without FROM", extend(t, s.i1, rvs, wire.TransportAddress{Type: wire.ParamRelayFrom, Port: 1, Protocol: wire.ProtocolUDP, Addr: netip.MustParseAddr("192.0.2.1")}), true, ErrMalformed},
	} {
		p, err := wire.ParsePacket(c.pkt)
		if err != nil {
			t.Fatal(err)
		}
		if HasRendezvous(p) != c.has {
			t.Errorf("%s: HasRendezvous %v", c.name, !c.has)
		}
		if _, _, err := s.open(c.pkt); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestRendezvousMalformed: packets whose RVS_HMAC verifies (the RVS made
// them) but whose layout AppendRendezvous never builds are refused, as
// are packets that do not parse and associations without keys.
func TestRendezvousMalformed(t *testing.T) {
	s := newRVSScene(t)
	rvs := s.rvs.a(s.client)
	a1, a2 := netip.MustParseAddr("198.51.100.9"), netip.MustParseAddr("198.51.100.10")
	relayFrom := func(proto uint8, a netip.Addr) wire.TransportAddress {
		return wire.TransportAddress{Type: wire.ParamRelayFrom, Port: 40000, Protocol: proto, Addr: a}
	}
	fwd := s.forward(t, netip.AddrPortFrom(a1, 40000))

	// The control: RELAY_FROM and FROM that agree open.
	if _, got, err := s.open(extend(t, s.i1, rvs, relayFrom(wire.ProtocolUDP, a1), wire.From{Addr: a1})); err != nil || got != netip.AddrPortFrom(a1, 40000) {
		t.Fatalf("well-formed packet: %v %v", err, got)
	}
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"two FROMs", extend(t, s.i1, rvs, wire.From{Addr: a1}, wire.From{Addr: a2})},
		{"VIA_RVS after RVS_HMAC", extend(t, fwd, nil, wire.MakeViaRVS(a2))},
		{"unknown parameter after RVS_HMAC", extend(t, fwd, nil, raw{65510, []byte{1, 2}})},
		{"two RVS_HMACs", extend(t, fwd, nil, wire.RVSHMAC{MAC: make([]byte, 32)})},
		{"RELAY_FROM and FROM disagree", extend(t, s.i1, rvs, relayFrom(wire.ProtocolUDP, a1), wire.From{Addr: a2})},
		{"RELAY_FROM not UDP", extend(t, s.i1, rvs, relayFrom(0, a1), wire.From{Addr: a1})},
		{"two RELAY_FROMs", extend(t, s.i1, rvs, relayFrom(wire.ProtocolUDP, a1), relayFrom(wire.ProtocolUDP, a1), wire.From{Addr: a1})},
		{"RELAY_TO before FROM", extend(t, s.i1, rvs, wire.TransportAddress{Type: wire.ParamRelayTo, Port: 1, Protocol: wire.ProtocolUDP, Addr: a1}, wire.From{Addr: a1})},
		{"parameter between RELAY_FROM and FROM", extend(t, s.i1, rvs, relayFrom(wire.ProtocolUDP, a1), raw{64010, []byte{0}}, wire.From{Addr: a1})},
		{"parameter between FROM and RVS_HMAC", extend(t, s.i1, rvs, wire.From{Addr: a1}, raw{65499, []byte{0}})},
		{"FROM of 4 octets", extend(t, s.i1, rvs, raw{wire.ParamFrom, a1.AsSlice()})},
		{"RELAY_FROM of 16 octets", extend(t, s.i1, rvs, raw{wire.ParamRelayFrom, make([]byte, 16)}, wire.From{Addr: a1})},
		{"truncated", fwd[:len(fwd)-8]},
		{"garbage", []byte("not a HIP packet")},
	} {
		if _, _, err := s.open(c.pkt); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", c.name, err)
		}
	}

	// An association without keys can neither protect nor check.
	noKeys := s.init.a(s.client)
	if noKeys.State() != I1Sent {
		t.Fatalf("initiator in %v", noKeys.State())
	}
	if _, _, err := noKeys.OpenRendezvous(bytes.Clone(fwd)); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("OpenRendezvous without keys: %v", err)
	}
	if _, err := noKeys.AppendRendezvous(bytes.Clone(s.i1), netip.AddrPortFrom(a1, 1)); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("AppendRendezvous without keys: %v", err)
	}
}

// TestAppendRendezvousRefuses: the RVS forwards only I1s straight from
// the Initiator, not one that a relay or an RVS has already handled.
func TestAppendRendezvousRefuses(t *testing.T) {
	s := newRVSScene(t)
	rvs := s.rvs.a(s.client)
	from := netip.MustParseAddrPort("198.51.100.9:40001")
	ta := func(typ wire.ParamType) wire.TransportAddress {
		return wire.TransportAddress{Type: typ, Port: 1, Protocol: wire.ProtocolUDP, Addr: from.Addr()}
	}
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"forwarded already", s.forward(t, from)},
		{"RELAY_FROM", extend(t, s.i1, nil, ta(wire.ParamRelayFrom))},
		{"RELAY_TO", extend(t, s.i1, nil, ta(wire.ParamRelayTo))},
		{"FROM", extend(t, s.i1, nil, wire.From{Addr: from.Addr()})},
		{"RVS_HMAC", extend(t, s.i1, nil, wire.RVSHMAC{MAC: make([]byte, 32)})},
		{"RELAY_HMAC", extend(t, s.i1, nil, wire.RelayHMAC{MAC: make([]byte, 32)})},
	} {
		if _, err := rvs.AppendRendezvous(bytes.Clone(c.pkt), from); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", c.name, err)
		}
	}
	if _, err := rvs.AppendRendezvous([]byte("short"), from); !errors.Is(err, ErrMalformed) {
		t.Errorf("unparsable packet: %v", err)
	}
	// Nor without an address to put in FROM.
	if _, err := rvs.AppendRendezvous(bytes.Clone(s.i1), netip.AddrPort{}); err == nil {
		t.Error("forwarded from the zero AddrPort")
	}
	if _, err := rvs.AppendRendezvous(bytes.Clone(s.i1), from); err != nil {
		t.Fatalf("plain I1 refused: %v", err)
	}
}

// TestAppendViaRVS: the client answers the opened I1 with an R1 ending in
// VIA_RVS (RFC 8004 §4.3.3); its HIP_SIGNATURE_2 still verifies, so the
// Initiator takes it and the base exchange completes directly.
func TestAppendViaRVS(t *testing.T) {
	s := newRVSScene(t)
	rvsAddr := netip.MustParseAddr("192.0.2.53")
	inner, _, err := s.open(s.forward(t, netip.MustParseAddrPort("198.51.100.9:40001")))
	if err != nil {
		t.Fatal(err)
	}
	out := s.client.deliver(t0, inner)
	if len(out) != 1 || ptype(out[0]) != wire.R1 {
		t.Fatalf("client answered with %d packets", len(out))
	}
	r1 := out[0]
	if _, ok := ViaRVS(wire.Packet(r1)); ok {
		t.Fatal("R1 has VIA_RVS before AppendViaRVS")
	}
	r1v, err := AppendViaRVS(bytes.Clone(r1), rvsAddr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := wire.ParsePacket(r1v)
	if err != nil {
		t.Fatalf("R1 with VIA_RVS does not parse: %v", err)
	}
	if got, ok := ViaRVS(p); !ok || got != rvsAddr {
		t.Fatalf("ViaRVS %v %v", got, ok)
	}
	// Everything the signature covers is untouched; VIA_RVS is last.
	// (The Header Length grows; the Checksum, zero over UDP, is zeroed.)
	if len(r1v) != len(r1)+24 {
		t.Fatalf("R1 of %d octets became %d", len(r1), len(r1v))
	}
	for i := range r1 {
		if r1v[i] != r1[i] && i != 1 && i != 4 && i != 5 {
			t.Fatalf("AppendViaRVS changed octet %d of the R1", i)
		}
	}
	if _, err := AppendViaRVS(bytes.Clone(r1v), rvsAddr); !errors.Is(err, ErrMalformed) {
		t.Fatalf("second VIA_RVS: %v", err)
	}
	if _, err := AppendViaRVS(bytes.Clone(s.i1), rvsAddr); !errors.Is(err, ErrMalformed) {
		t.Fatalf("VIA_RVS in an I1: %v", err)
	}

	l := &link{}
	l.send(s.client, s.init, [][]byte{r1v})
	l.run(t, t0)
	for _, h := range []*host{s.init, s.client} {
		for _, err := range h.errs {
			if err != nil {
				t.Fatalf("%s rejected a packet: %v", h.name, err)
			}
		}
	}
	if st := s.init.a(s.client).State(); st != Established {
		t.Fatalf("initiator in %v", st)
	}
	if st := s.client.a(s.init).State(); st != R2Sent { // until the first ESP arrives
		t.Fatalf("client in %v", st)
	}
}

// TestViaRVS: the first address of a well-formed VIA_RVS, IPv4 unmapped;
// nothing from a malformed one.
func TestViaRVS(t *testing.T) {
	s := newRVSScene(t)
	r1 := s.client.deliver(t0, s.i1)[0]
	v6, v4 := netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("192.0.2.53")
	for _, c := range []struct {
		name string
		via  wire.Encoder
		want netip.Addr
	}{
		{"IPv6", wire.MakeViaRVS(v6), v6},
		{"IPv4", wire.MakeViaRVS(v4), v4},
		{"two addresses", wire.MakeViaRVS(v4, v6), v4},
		{"8 octets", raw{wire.ParamViaRVS, make([]byte, 8)}, netip.Addr{}},
		{"empty", raw{wire.ParamViaRVS, nil}, netip.Addr{}},
	} {
		got, ok := ViaRVS(wire.Packet(extend(t, r1, nil, c.via)))
		if ok != c.want.IsValid() || got != c.want {
			t.Errorf("%s: ViaRVS %v %v, want %v", c.name, got, ok, c.want)
		}
	}
	// AppendViaRVS writes what ViaRVS reads, for both families.
	for _, a := range []netip.Addr{v6, v4} {
		r1v, err := AppendViaRVS(bytes.Clone(r1), a)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := ViaRVS(wire.Packet(r1v)); !ok || got != a {
			t.Errorf("ViaRVS of AppendViaRVS(%v): %v %v", a, got, ok)
		}
	}
}

// TestRelayedRefusesRendezvous: RVS_HMAC and RELAY_HMAC are keyed alike
// (RFC 9028 §7.8), so a forwarded rendezvous I1 whose RVS_HMAC is renamed
// RELAY_HMAC would verify as a relayed packet; OpenRelayed refuses any
// packet that carries rendezvous parameters.
func TestRelayedRefusesRendezvous(t *testing.T) {
	s := newRVSScene(t)
	fwd := s.forward(t, netip.MustParseAddrPort("192.0.2.7:40000")) // RELAY_FROM, FROM, RVS_HMAC
	p, err := wire.ParsePacket(fwd)
	if err != nil {
		t.Fatal(err)
	}
	q, ok := p.Param(wire.ParamRVSHMAC)
	if !ok {
		t.Fatal("no RVS_HMAC")
	}
	binary.BigEndian.PutUint16(fwd[q.Offset():], uint16(wire.ParamRelayHMAC))
	if _, _, err := s.client.a(s.rvs).OpenRelayed(fwd); !errors.Is(err, ErrMalformed) {
		t.Fatalf("renamed RVS_HMAC: OpenRelayed err %v, want ErrMalformed", err)
	}
}
