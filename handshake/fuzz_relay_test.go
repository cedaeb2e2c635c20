package handshake

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"hipnet.dev/handshake/wire"
)

// FuzzOpenRelayed attacks the control relay's integrity check (relay.go,
// RFC 5770 §4.5, §5.8) between the fixed identities of fixedPair, whose
// association is ESTABLISHED. Each input is used three ways:
//
//  1. pkt as received: OpenRelayed at either end and RelayAddr never
//     panic, and OpenRelayed accepts only what its peer sent (checked by
//     openChecked). Nothing here is expected to pass: the keys are fresh
//     in every run, so a committed relayed packet no longer verifies.
//  2. pkt, when it parses, as the packet a relay forwards: the end sel&1
//     wraps it with AppendRelayed and address relayAddrs[sel>>1&7], and the
//     other end must open it back to pkt and the address. Otherwise the
//     packet of the exchange picked by sel>>4 is wrapped.
//  3. that genuine packet with mut applied (see mutate): an octet the
//     RELAY_HMAC covers that changed must make OpenRelayed fail (ErrBadMAC
//     for the MAC or the address, ErrMalformed for a truncation), and one
//     it does not cover (the Checksum, the padding after the MAC, octets
//     past the Header Length) must not change the result.
//
// The committed corpus under testdata/fuzz/FuzzOpenRelayed holds
// relaySeeds of one run:
//
//	go test -run WriteFuzzSeedsRelay ./handshake -args -write-seeds
func FuzzOpenRelayed(f *testing.F) {
	ends, inners := relayFixture(f)
	for _, s := range relaySeeds(f, ends, inners) {
		f.Add(s.pkt, s.sel, s.mut)
	}
	f.Fuzz(func(t *testing.T, pkt []byte, sel uint8, mut []byte) {
		// 1. Arbitrary bytes.
		for _, e := range ends {
			openChecked(t, e, pkt)
		}
		if p, err := wire.ParsePacket(pkt); err == nil {
			checkRelayAddr(t, p)
		}

		// 2. A genuine relayed packet.
		e, other := ends[sel&1], ends[1-sel&1]
		addr := relayAddrs[sel>>1&7]
		var inner, g []byte
		if p, err := wire.ParsePacket(pkt); err == nil {
			inner = bytes.Clone(p)
			if g, err = e.send.AppendRelayed(bytes.Clone(inner), addr); err != nil {
				if !errors.Is(err, wire.ErrBuilderOrder) && !errors.Is(err, wire.ErrTooLarge) {
					t.Fatalf("AppendRelayed: %v", err)
				}
				g = nil
			}
		}
		if g == nil {
			inner = bytes.Clone(inners[int(sel>>4)%len(inners)])
			var err error
			if g, err = e.send.AppendRelayed(bytes.Clone(inner), addr); err != nil {
				t.Fatalf("AppendRelayed of a packet of the exchange: %v", err)
			}
		}
		out, got, err := openChecked(t, e, g)
		if hasRelayAddr(inner) {
			// The relay parameters already inside make two addresses.
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("packet with a relay address inside opened: %v", err)
			}
			return
		}
		want := bytes.Clone(inner)
		want[4], want[5] = 0, 0 // AppendRelayed zeroes the Checksum
		wantAddr := addr
		wantAddr.Addr = addr.Addr.Unmap()
		if err != nil || got != wantAddr || !bytes.Equal(out, want) {
			t.Fatalf("genuine packet: %v, %+v (want %+v), inner equal %v", err, got, wantAddr, bytes.Equal(out, want))
		}
		gp, _ := wire.ParsePacket(g)
		if ra, ok := RelayAddr(gp); !ok || ra != wantAddr {
			t.Fatalf("RelayAddr %+v %v, want %+v", ra, ok, wantAddr)
		}
		// The sender cannot pass its own packet off as its peer's.
		if _, _, err := other.open.OpenRelayed(bytes.Clone(g)); !errors.Is(err, ErrBadMAC) {
			t.Fatalf("opened with the sender's own key: %v", err)
		}

		// 3. The genuine packet, mutated.
		if len(mut) == 0 {
			return
		}
		m := mutate(g, mut)
		gm := relayGeometry(t, g)
		out, got, err = openChecked(t, e, m)
		var covered, outside bool // a changed octet the HMAC covers; one outside the MAC and the address
		for i := range min(len(m), len(g)) {
			if m[i] == g[i] || i == 4 || i == 5 || i >= gm.macEnd {
				continue
			}
			covered = true
			inMAC := i >= gm.hmacOff+4 && i < gm.macEnd
			inAddr := i >= gm.cut+4 && i < gm.cut+24
			if !inMAC && !inAddr {
				outside = true
			}
		}
		whole := len(m) >= len(g)
		switch {
		case whole && !covered:
			// Only uncovered octets changed: the same packet.
			want[4], want[5] = m[4], m[5]
			if err != nil || got != wantAddr || !bytes.Equal(out, want) {
				t.Fatalf("equivalent packet: %v, %+v, inner equal %v", err, got, bytes.Equal(out, want))
			}
			if p, err := wire.ParsePacket(m); err != nil {
				t.Fatalf("opened but does not parse: %v", err)
			} else if ra, ok := RelayAddr(p); !ok || ra != wantAddr {
				t.Fatalf("RelayAddr %+v %v, want %+v", ra, ok, wantAddr)
			}
		case whole && !outside:
			// Only the MAC or the address changed.
			if !errors.Is(err, ErrBadMAC) {
				t.Fatalf("changed MAC or address: %v", err)
			}
		case !whole && (len(m) < 2 || m[1] == g[1]):
			// Shorter than its Header Length says.
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("truncated to %d of %d octets: %v", len(m), len(g), err)
			}
		default:
			if err == nil {
				t.Fatalf("mutated packet opened: %x", m)
			}
		}
		if p, err := wire.ParsePacket(m); err == nil {
			checkRelayAddr(t, p)
		}
	})
}

// relayEnds is one direction of the relay hop: send adds the relay
// parameters, open is its peer's association, which checks them.
type relayEnds struct {
	send, open *Association
}

// relayAddrs are the addresses the fuzz target relays with: both types,
// IPv4, IPv6, IPv4-mapped and IPv4-compatible, UDP and plain IP.
var relayAddrs = [8]wire.TransportAddress{
	{Type: wire.ParamRelayFrom, Port: 40000, Protocol: wire.ProtocolUDP, Addr: netip.MustParseAddr("198.18.0.77")},
	{Type: wire.ParamRelayTo, Port: 10500, Protocol: wire.ProtocolUDP, Addr: netip.MustParseAddr("2001:db8::7")},
	{Type: wire.ParamRelayFrom, Addr: netip.MustParseAddr("2001:db8:ffff::1")},
	{Type: wire.ParamRelayTo, Port: 61000, Protocol: wire.ProtocolUDP, Addr: netip.MustParseAddr("::ffff:203.0.113.9")},
	{Type: wire.ParamRelayTo, Addr: netip.MustParseAddr("192.0.2.1")},
	{Type: wire.ParamRelayFrom, Port: 65535, Protocol: wire.ProtocolUDP, Addr: netip.MustParseAddr("fe80::1")},
	{Type: wire.ParamRelayFrom, Port: 1, Protocol: wire.ProtocolUDP, Addr: netip.MustParseAddr("::ffff:10.0.0.1")},
	{Type: wire.ParamRelayTo, Port: 3478, Protocol: wire.ProtocolUDP, Addr: netip.MustParseAddr("::c000:201")},
}

// relayFixture runs the base exchange of fixedPair and returns both
// directions of the hop and the packets of the exchange.
func relayFixture(t testing.TB) ([2]relayEnds, [][]byte) {
	a, b, seen := fixedPair(t)
	ends := [2]relayEnds{{a.a(b), b.a(a)}, {b.a(a), a.a(b)}}
	for _, e := range ends {
		if e.send.State() != Established || e.open.State() != Established {
			t.Fatalf("fixture not established: %v %v", e.send.State(), e.open.State())
		}
	}
	inners := make([][]byte, len(seen))
	for i, p := range seen {
		inners[i] = p.b
	}
	return ends, inners
}

// openChecked runs e.open.OpenRelayed on a copy of in. A rejection must
// wrap ErrBadMAC, ErrMalformed or ErrNotRelayed and return nothing else; an
// acceptance must be of a packet ParsePacket accepts, whose last RELAY_HMAC
// verifies with the peer's key, and which the peer's AppendRelayed of the
// result gives back except for octets the HMAC does not cover.
func openChecked(t *testing.T, e relayEnds, in []byte) ([]byte, wire.TransportAddress, error) {
	t.Helper()
	buf := bytes.Clone(in)
	out, addr, err := e.open.OpenRelayed(buf)
	if err != nil {
		if !errors.Is(err, ErrBadMAC) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotRelayed) {
			t.Fatalf("OpenRelayed error %v wraps none of ErrBadMAC, ErrMalformed, ErrNotRelayed", err)
		}
		if out != nil || addr != (wire.TransportAddress{}) {
			t.Fatalf("OpenRelayed returned %d octets and %+v with %v", len(out), addr, err)
		}
		return nil, addr, err
	}
	p, perr := wire.ParsePacket(in)
	if perr != nil {
		t.Fatalf("OpenRelayed accepted what ParsePacket rejects: %v", perr)
	}
	var q wire.Param
	found := false
	for it := p.Params(); ; {
		r, ok := it.Next()
		if !ok {
			break
		}
		if r.Type() == wire.ParamRelayHMAC {
			q, found = r, true
		}
	}
	if !found || !hmac.Equal(computeMAC(e.open.rhash, e.open.peerMACKey(), p, q.Offset(), nil), q.Contents()) {
		t.Fatalf("OpenRelayed accepted a packet whose RELAY_HMAC does not verify: %x", in)
	}
	if len(out) == 0 || &out[0] != &buf[0] {
		t.Fatal("OpenRelayed did not return the packet in place")
	}
	op, perr := wire.ParsePacket(out)
	if perr != nil || len(op) != len(out) {
		t.Fatalf("stripped packet of %d octets: %v", len(out), perr)
	}
	if hasRelayAddr(out) {
		t.Fatal("stripped packet still has a relay address")
	}
	if _, ok := op.Param(wire.ParamRelayHMAC); ok {
		t.Fatal("stripped packet still has RELAY_HMAC")
	}
	if addr.Type != wire.ParamRelayFrom && addr.Type != wire.ParamRelayTo || addr.Addr.Is4In6() {
		t.Fatalf("relay address %+v", addr)
	}
	// Only the genuine packet, or one differing in what the HMAC does not
	// cover, passes.
	re, rerr := e.send.AppendRelayed(bytes.Clone(out), addr)
	if rerr != nil {
		t.Fatalf("peer cannot rebuild the accepted packet: %v", rerr)
	}
	gm := relayGeometry(t, re)
	if len(p) != len(re) {
		t.Fatalf("accepted packet of %d octets, the peer sends %d", len(p), len(re))
	}
	for i := range re {
		if p[i] != re[i] && i != 4 && i != 5 && i < gm.macEnd {
			t.Fatalf("accepted packet differs from the genuine one at octet %d\n got %x\nwant %x", i, []byte(p), re)
		}
	}
	return out, addr, nil
}

// checkRelayAddr: RelayAddr returns the RELAY_TO, else the RELAY_FROM, of
// p, the first of its type, if that has the 20 octets of an address.
func checkRelayAddr(t *testing.T, p wire.Packet) {
	t.Helper()
	got, ok := RelayAddr(p)
	for _, typ := range []wire.ParamType{wire.ParamRelayTo, wire.ParamRelayFrom} {
		q, found := p.Param(typ)
		if !found || len(q.Contents()) != 20 {
			continue
		}
		want := wire.TransportAddress{Type: typ, Port: binary.BigEndian.Uint16(q.Contents()), Protocol: q.Contents()[2],
			Addr: netip.AddrFrom16([16]byte(q.Contents()[4:])).Unmap()}
		if !ok || got != want {
			t.Fatalf("RelayAddr = %+v %v, want %+v", got, ok, want)
		}
		return
	}
	if ok {
		t.Fatalf("RelayAddr = %+v from a packet without a valid relay address", got)
	}
}

// hasRelayAddr reports whether pkt (a parsed packet) has a RELAY_FROM or
// RELAY_TO.
func hasRelayAddr(pkt []byte) bool {
	p := wire.Packet(pkt)
	_, from := p.Param(wire.ParamRelayFrom)
	_, to := p.Param(wire.ParamRelayTo)
	return from || to
}

// relayGeom locates the relay parameters of a packet AppendRelayed built:
// the relay address at cut, RELAY_HMAC at hmacOff, its MAC ending at
// macEnd (padding follows up to the end of the packet).
type relayGeom struct {
	cut, hmacOff, macEnd int
}

func relayGeometry(t testing.TB, g []byte) relayGeom {
	t.Helper()
	p, err := wire.ParsePacket(g)
	if err != nil {
		t.Fatal(err)
	}
	var gm relayGeom
	for it := p.Params(); ; {
		q, ok := it.Next()
		if !ok {
			break
		}
		switch q.Type() {
		case wire.ParamRelayFrom, wire.ParamRelayTo:
			gm.cut = q.Offset()
		case wire.ParamRelayHMAC:
			gm.hmacOff, gm.macEnd = q.Offset(), q.Offset()+4+len(q.Contents())
		}
	}
	if gm.macEnd == 0 || gm.hmacOff != gm.cut+24 {
		t.Fatalf("not a relayed packet: %+v", gm)
	}
	return gm
}

// Mutation operations: mut is read 4 octets at a time, op, position (16
// bits) and value.
const (
	opXor      = iota // xor the octet at position mod length with value
	opSet             // set it to value
	opTruncate        // cut the packet to position mod (length+1)
	opAppend          // append 1 + position%64 octets of value
)

func mutate(g, mut []byte) []byte {
	m := bytes.Clone(g)
	for ; len(mut) >= 4; mut = mut[4:] {
		pos, val := int(binary.BigEndian.Uint16(mut[1:])), mut[3]
		switch mut[0] % 4 {
		case opXor:
			if len(m) > 0 {
				m[pos%len(m)] ^= val
			}
		case opSet:
			if len(m) > 0 {
				m[pos%len(m)] = val
			}
		case opTruncate:
			m = m[:pos%(len(m)+1)]
		case opAppend:
			m = append(m, bytes.Repeat([]byte{val}, 1+pos%64)...)
		}
	}
	return m
}

func mutOp(op, pos int, val byte) []byte {
	return []byte{byte(op), byte(pos >> 8), byte(pos), val}
}

type relaySeed struct {
	name string
	pkt  []byte
	sel  uint8
	mut  []byte
}

// relaySeeds: every packet of the exchange relayed in both directions and
// with each address; the I1 and the R2 with mutations of each kind that
// openChecked and the target tell apart; and packets that are already
// relayed, truncated or empty, for part 1 of the target.
func relaySeeds(t testing.TB, ends [2]relayEnds, inners [][]byte) []relaySeed {
	var seeds []relaySeed
	for i, in := range inners {
		// Both directions for every packet; the addresses in turn.
		for dir := range 2 {
			sel := uint8(dir | (2*i+dir)%len(relayAddrs)<<1)
			seeds = append(seeds, relaySeed{fmt.Sprintf("genuine-%d-%v-sel%d", i, ptype(in), sel), in, sel, nil})
		}
	}
	for _, i := range []int{0, len(inners) - 1} {
		in := inners[i]
		g, err := ends[0].send.AppendRelayed(bytes.Clone(in), relayAddrs[0])
		if err != nil {
			t.Fatal(err)
		}
		gm := relayGeometry(t, g)
		muts := []struct {
			name string
			mut  []byte
		}{
			{"mac-first", mutOp(opXor, gm.hmacOff+4, 0x01)},
			{"mac-last", mutOp(opXor, gm.macEnd-1, 0x80)},
			{"mac-zeroed", bytes.Join([][]byte{mutOp(opSet, gm.hmacOff+4, 0), mutOp(opSet, gm.hmacOff+5, 0), mutOp(opSet, gm.hmacOff+6, 0)}, nil)},
			{"addr-port", mutOp(opXor, gm.cut+5, 0x01)},
			{"addr-protocol", mutOp(opSet, gm.cut+6, 6)},
			{"addr-reserved", mutOp(opSet, gm.cut+7, 0xff)},
			{"addr-last", mutOp(opXor, gm.cut+23, 0x01)},
			{"addr-and-mac", append(mutOp(opXor, gm.cut+20, 0x10), mutOp(opXor, gm.hmacOff+10, 0x10)...)},
			{"addr-type-swapped", append(mutOp(opSet, gm.cut, 0xfa), mutOp(opSet, gm.cut+1, 0x02)...)}, // RELAY_FROM to RELAY_TO
			{"addr-length-16", mutOp(opSet, gm.cut+3, 16)},
			{"hmac-type-unknown", mutOp(opSet, gm.hmacOff+1, 0xf1)},
			{"hmac-length-short", mutOp(opXor, gm.hmacOff+3, 0x01)},
			{"inner-type", mutOp(opXor, 2, 0x01)},
			{"inner-sender-hit", mutOp(opXor, 8+15, 0x01)},
			{"inner-last-param", mutOp(opXor, gm.cut-1, 0x01)},
			{"header-length-less", mutOp(opSet, 1, g[1]-1)},
			{"header-length-more", append(mutOp(opAppend, 7, 0), mutOp(opSet, 1, g[1]+1)...)},
			{"checksum", append(mutOp(opSet, 4, 0xbe), mutOp(opSet, 5, 0xef)...)},
			{"padding", mutOp(opSet, len(g)-1, 0xff)},
			{"trailing", mutOp(opAppend, 15, 0xaa)},
			{"truncated-by-one", mutOp(opTruncate, len(g)-1, 0)},
			{"truncated-before-hmac", mutOp(opTruncate, gm.hmacOff, 0)},
			{"truncated-header", mutOp(opTruncate, 39, 0)},
			{"truncated-empty", mutOp(opTruncate, 0, 0)},
		}
		for _, m := range muts {
			seeds = append(seeds, relaySeed{fmt.Sprintf("mutated-%d-%v-%s", i, ptype(in), m.name), in, 0, m.mut})
		}
		// Relayed already: in a later run, the HMAC is stale. Without its
		// RELAY_HMAC, the packet is wrapped again (with RELAY_TO, sel 3)
		// and then has two relay addresses.
		noHMAC := bytes.Clone(g[:gm.hmacOff])
		noHMAC[1] = uint8(len(noHMAC)/8 - 1)
		seeds = append(seeds,
			relaySeed{fmt.Sprintf("relayed-%d-%v", i, ptype(in)), g, 0, nil},
			relaySeed{fmt.Sprintf("relayed-%d-%v-truncated", i, ptype(in)), g[:gm.hmacOff], 1, nil},
			relaySeed{fmt.Sprintf("relayed-%d-%v-without-hmac", i, ptype(in)), noHMAC, 3, nil})
	}
	seeds = append(seeds, relaySeed{"empty", nil, 0, nil},
		relaySeed{"garbage", []byte("\x3b\x04\x01\x21"), 0x35, mutOp(opXor, 0, 1)})
	return seeds
}

// TestWriteFuzzSeedsRelay writes relaySeeds to testdata/fuzz/FuzzOpenRelayed
// with -write-seeds. The seeds come from one run's exchange, so there is
// nothing to compare them with otherwise.
func TestWriteFuzzSeedsRelay(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate the FuzzOpenRelayed corpus")
	}
	ends, inners := relayFixture(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzOpenRelayed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range relaySeeds(t, ends, inners) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint8(%d)\n[]byte(%q)\n", s.pkt, s.sel, s.mut)
		if err := os.WriteFile(filepath.Join(dir, s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
