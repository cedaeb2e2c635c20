package handshake

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"hipnet.dev/handshake/wire"
)

// FuzzOpenRendezvous attacks the rendezvous integrity check (rendezvous.go,
// RFC 8004 §4.2.1, §4.3.2) between the fixed identities of fixedPair, whose
// association is ESTABLISHED; either end plays the RVS. Each input is used
// three ways, as in FuzzOpenRelayed:
//
//  1. pkt as received: OpenRendezvous at either end, HasRendezvous, ViaRVS
//     and AppendViaRVS never panic; OpenRendezvous accepts only what its
//     peer sent (checked by openRVSChecked) and returns a packet that
//     parses. The keys are fresh in every run, so no committed packet
//     verifies.
//  2. pkt, when it parses, as the I1 an RVS forwards: the end sel&1 wraps
//     it with AppendRendezvous from rvsFroms[sel>>1&7], and the other end
//     must open it back to pkt and the address. When AppendRendezvous
//     refuses pkt, the packet of the exchange picked by sel>>4 is wrapped.
//  3. that genuine packet with mut applied (mutate, in fuzz_relay_test.go):
//     a changed octet of the MAC or of an address must give ErrBadMAC (the
//     MAC is checked before the addresses are read), a truncation
//     ErrMalformed, another covered octet some error, and octets the
//     RVS_HMAC does not cover nothing.
//
// The committed corpus under testdata/fuzz/FuzzOpenRendezvous holds
// rvsSeeds of one run:
//
//	go test -run WriteFuzzSeedsRendezvous ./handshake -args -write-seeds
func FuzzOpenRendezvous(f *testing.F) {
	ends, inners := relayFixture(f)
	for _, s := range rvsSeeds(f, ends, inners) {
		f.Add(s.pkt, s.sel, s.mut)
	}
	f.Fuzz(func(t *testing.T, pkt []byte, sel uint8, mut []byte) {
		// 1. Arbitrary bytes.
		for _, e := range ends {
			openRVSChecked(t, e, pkt)
		}
		if p, err := wire.ParsePacket(pkt); err == nil {
			checkRVSAccessors(t, p, rvsFroms[sel&7].Addr())
		}

		// 2. A genuine forwarded packet.
		e, other := ends[sel&1], ends[1-sel&1]
		from := rvsFroms[sel>>1&7]
		inner, g := genuineRendezvous(t, e, pkt, from)
		if g == nil {
			inner = bytes.Clone(inners[int(sel>>4)%len(inners)])
			var err error
			if g, err = e.send.AppendRendezvous(bytes.Clone(inner), from); err != nil {
				t.Fatalf("AppendRendezvous of a packet of the exchange: %v", err)
			}
		}
		want := bytes.Clone(inner)
		want[4], want[5] = 0, 0 // AppendRendezvous zeroes the Checksum
		wantFrom := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		out, got, err := openRVSChecked(t, e, g)
		if err != nil || got != wantFrom || !bytes.Equal(out, want) {
			t.Fatalf("genuine packet: %v, %v (want %v), inner equal %v", err, got, wantFrom, bytes.Equal(out, want))
		}
		if !HasRendezvous(wire.Packet(g)) {
			t.Fatal("HasRendezvous false on a forwarded packet")
		}
		// The RVS cannot pass its own packet off as the client's.
		if _, _, err := other.open.OpenRendezvous(bytes.Clone(g)); !errors.Is(err, ErrBadMAC) {
			t.Fatalf("opened with the sender's own key: %v", err)
		}

		// 3. The genuine packet, mutated.
		if len(mut) == 0 {
			return
		}
		m := mutate(g, mut)
		gm := rvsGeometry(t, g)
		out, got, err = openRVSChecked(t, e, m)
		var covered, outside bool // a changed octet the HMAC covers; one outside the MAC and the addresses
		for i := range min(len(m), len(g)) {
			if m[i] == g[i] || i == 4 || i == 5 || i >= gm.macEnd {
				continue
			}
			covered = true
			if !gm.inMAC(i) && !gm.inAddr(i) {
				outside = true
			}
		}
		whole := len(m) >= len(g)
		switch {
		case whole && !covered:
			// Only uncovered octets changed: the same packet.
			want[4], want[5] = m[4], m[5]
			if err != nil || got != wantFrom || !bytes.Equal(out, want) {
				t.Fatalf("equivalent packet: %v, %v, inner equal %v", err, got, bytes.Equal(out, want))
			}
		case whole && !outside:
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
	})
}

// rvsFroms are the Initiator addresses the fuzz target forwards from:
// IPv4, IPv6, IPv4-mapped and IPv4-compatible, the HIP port (FROM alone)
// and others (RELAY_FROM too), port 0 included.
var rvsFroms = [8]netip.AddrPort{
	netip.MustParseAddrPort("198.18.0.77:40000"),
	netip.MustParseAddrPort("[2001:db8::7]:10500"),
	netip.MustParseAddrPort("192.0.2.1:10500"),
	netip.MustParseAddrPort("[::ffff:203.0.113.9]:61000"),
	netip.MustParseAddrPort("[fe80::1]:1"),
	netip.MustParseAddrPort("[2001:db8:ffff::1]:65535"),
	netip.MustParseAddrPort("10.0.0.1:0"),
	netip.MustParseAddrPort("[::c000:201]:3478"),
}

// genuineRendezvous has e.send forward pkt from, if pkt parses and
// AppendRendezvous takes it, and returns the parsed pkt and the result. A
// refusal must be for a reason AppendRendezvous documents.
func genuineRendezvous(t *testing.T, e relayEnds, pkt []byte, from netip.AddrPort) (inner, g []byte) {
	t.Helper()
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		return nil, nil
	}
	inner = bytes.Clone(p)
	g, err = e.send.AppendRendezvous(bytes.Clone(inner), from)
	_, forwarded := forwardedParam(p)
	switch {
	case err == nil && forwarded:
		t.Fatal("AppendRendezvous took a packet with relay or rendezvous parameters")
	case err == nil:
		return inner, g
	case errors.Is(err, ErrMalformed) && !forwarded:
		t.Fatalf("AppendRendezvous refused a parsed first-hop packet: %v", err)
	case !errors.Is(err, ErrMalformed) && !errors.Is(err, wire.ErrBuilderOrder) && !errors.Is(err, wire.ErrTooLarge):
		// Parameters sorting after FROM, or no room left, are all else.
		t.Fatalf("AppendRendezvous: %v", err)
	}
	return nil, nil
}

// openRVSChecked runs e.open.OpenRendezvous on a copy of in. A rejection
// must wrap ErrBadMAC, ErrMalformed or ErrNotRelayed and return nothing
// else. An acceptance must be of a packet ParsePacket accepts whose
// RVS_HMAC verifies with the peer's key, give back in place a packet that
// parses and has no relay or rendezvous parameter left, and be what the
// peer's AppendRendezvous of the result gives, except for octets the
// RVS_HMAC does not cover.
func openRVSChecked(t *testing.T, e relayEnds, in []byte) ([]byte, netip.AddrPort, error) {
	t.Helper()
	buf := bytes.Clone(in)
	out, from, err := e.open.OpenRendezvous(buf)
	if err != nil {
		if !errors.Is(err, ErrBadMAC) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrNotRelayed) {
			t.Fatalf("OpenRendezvous error %v wraps none of ErrBadMAC, ErrMalformed, ErrNotRelayed", err)
		}
		if out != nil || from != (netip.AddrPort{}) {
			t.Fatalf("OpenRendezvous returned %d octets and %v with %v", len(out), from, err)
		}
		return nil, from, err
	}
	p, perr := wire.ParsePacket(in)
	if perr != nil {
		t.Fatalf("OpenRendezvous accepted what ParsePacket rejects: %v", perr)
	}
	q, ok := p.Param(wire.ParamRVSHMAC)
	if !ok || !hmac.Equal(computeMAC(e.open.rhash, e.open.peerMACKey(), p, q.Offset(), nil), q.Contents()) {
		t.Fatalf("OpenRendezvous accepted a packet whose RVS_HMAC does not verify: %x", in)
	}
	if len(out) == 0 || &out[0] != &buf[0] {
		t.Fatal("OpenRendezvous did not return the packet in place")
	}
	op, perr := wire.ParsePacket(out)
	if perr != nil || len(op) != len(out) {
		t.Fatalf("opened packet of %d octets: %v", len(out), perr)
	}
	if typ, ok := forwardedParam(op); ok {
		t.Fatalf("opened packet still has %v", typ)
	}
	if !from.Addr().IsValid() || from.Addr().Is4In6() {
		t.Fatalf("Initiator address %v", from)
	}
	re, rerr := e.send.AppendRendezvous(bytes.Clone(out), from)
	if rerr != nil {
		t.Fatalf("peer cannot rebuild the accepted packet: %v", rerr)
	}
	gm := rvsGeometry(t, re)
	if len(p) != len(re) {
		t.Fatalf("accepted packet of %d octets, the peer sends %d", len(p), len(re))
	}
	for i := range re {
		if p[i] != re[i] && i != 4 && i != 5 && i < gm.macEnd {
			t.Fatalf("accepted packet differs from the genuine one at octet %d\n got %x\nwant %x", i, []byte(p), re)
		}
	}
	return out, from, nil
}

// checkRVSAccessors compares HasRendezvous and ViaRVS with a plain scan of
// p, and has AppendViaRVS add addr to p when p is an R1.
func checkRVSAccessors(t *testing.T, p wire.Packet, addr netip.Addr) {
	t.Helper()
	var has bool
	var via *wire.Param
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		switch q.Type() {
		case wire.ParamFrom, wire.ParamRVSHMAC:
			has = true
		case wire.ParamViaRVS:
			if via == nil {
				via = &q
			}
		}
	}
	if HasRendezvous(p) != has {
		t.Fatalf("HasRendezvous %v, want %v", !has, has)
	}
	got, ok := ViaRVS(p)
	var want netip.Addr
	if via != nil {
		if c := via.Contents(); len(c) >= 16 && len(c)%16 == 0 {
			want = netip.AddrFrom16([16]byte(c)).Unmap()
		}
	}
	if ok != want.IsValid() || got != want {
		t.Fatalf("ViaRVS %v %v, want %v", got, ok, want)
	}

	r1v, err := AppendViaRVS(bytes.Clone(p), addr)
	switch {
	case p.Type() != wire.R1 || via != nil:
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("AppendViaRVS to %v (VIA_RVS %v): %v", p.Type(), via != nil, err)
		}
	case err != nil:
		if !errors.Is(err, wire.ErrBuilderOrder) && !errors.Is(err, wire.ErrTooLarge) {
			t.Fatalf("AppendViaRVS: %v", err)
		}
	default:
		vp, err := wire.ParsePacket(r1v)
		if err != nil {
			t.Fatalf("R1 with VIA_RVS does not parse: %v", err)
		}
		if got, ok := ViaRVS(vp); !ok || got != addr.Unmap() {
			t.Fatalf("ViaRVS after AppendViaRVS(%v): %v %v", addr, got, ok)
		}
		for i := range p {
			if r1v[i] != p[i] && i != 1 && i != 4 && i != 5 {
				t.Fatalf("AppendViaRVS changed octet %d", i)
			}
		}
	}
}

// rvsGeom locates what AppendRendezvous appended: the RELAY_FROM (when
// hasRelay) or else the FROM at cut, the FROM at fromOff, the RVS_HMAC at
// hmacOff, its MAC ending at macEnd (padding follows up to the end).
type rvsGeom struct {
	cut, fromOff, hmacOff, macEnd int
	hasRelay                      bool
}

func rvsGeometry(t testing.TB, g []byte) rvsGeom {
	t.Helper()
	p, err := wire.ParsePacket(g)
	if err != nil {
		t.Fatal(err)
	}
	gm := rvsGeom{cut: -1}
	for it := p.Params(); ; {
		q, ok := it.Next()
		if !ok {
			break
		}
		switch q.Type() {
		case wire.ParamRelayFrom:
			gm.cut, gm.hasRelay = q.Offset(), true
		case wire.ParamFrom:
			gm.fromOff = q.Offset()
		case wire.ParamRVSHMAC:
			gm.hmacOff, gm.macEnd = q.Offset(), q.Offset()+4+len(q.Contents())
		}
	}
	if !gm.hasRelay {
		gm.cut = gm.fromOff
	}
	if gm.macEnd == 0 || gm.hmacOff != gm.fromOff+24 || gm.hasRelay && gm.fromOff != gm.cut+24 {
		t.Fatalf("not a forwarded packet: %+v", gm)
	}
	return gm
}

// inMAC: octet i is in the RVS_HMAC's MAC.
func (gm rvsGeom) inMAC(i int) bool { return i >= gm.hmacOff+4 && i < gm.macEnd }

// inAddr: octet i is in the contents of RELAY_FROM or FROM.
func (gm rvsGeom) inAddr(i int) bool {
	return i >= gm.fromOff+4 && i < gm.fromOff+20 || gm.hasRelay && i >= gm.cut+4 && i < gm.cut+24
}

// rvsSeeds: every packet of the exchange forwarded by either end, from
// each address in turn; the I1 and the R2 with mutations of each kind the
// target tells apart; and packets already forwarded or relayed, an R1 with
// VIA_RVS, truncated and empty ones, for part 1 of the target.
func rvsSeeds(t testing.TB, ends [2]relayEnds, inners [][]byte) []relaySeed {
	var seeds []relaySeed
	for i, in := range inners {
		for dir := range 2 {
			sel := uint8(dir | (2*i+dir)%len(rvsFroms)<<1)
			seeds = append(seeds, relaySeed{fmt.Sprintf("genuine-%d-%v-sel%d", i, ptype(in), sel), in, sel, nil})
		}
	}
	for _, i := range []int{0, len(inners) - 1} {
		in := inners[i]
		g, err := ends[0].send.AppendRendezvous(bytes.Clone(in), rvsFroms[0])
		if err != nil {
			t.Fatal(err)
		}
		gm := rvsGeometry(t, g)
		muts := []struct {
			name string
			mut  []byte
		}{
			{"mac-first", mutOp(opXor, gm.hmacOff+4, 0x01)},
			{"mac-last", mutOp(opXor, gm.macEnd-1, 0x80)},
			{"from-last", mutOp(opXor, gm.fromOff+19, 0x01)},
			{"from-mapped-prefix", mutOp(opSet, gm.fromOff+14, 0)},
			{"from-length-4", mutOp(opSet, gm.fromOff+3, 4)},
			{"from-type-via", mutOp(opSet, gm.fromOff+1, 0xde)},
			{"relay-port", mutOp(opXor, gm.cut+5, 0x01)},
			{"relay-protocol", mutOp(opSet, gm.cut+6, 6)},
			{"relay-address", mutOp(opXor, gm.cut+23, 0x01)},
			{"relay-type-to", append(mutOp(opSet, gm.cut, 0xfa), mutOp(opSet, gm.cut+1, 0x02)...)},
			{"hmac-type-unknown", mutOp(opSet, gm.hmacOff+1, 0xdd)},
			{"hmac-length-short", mutOp(opXor, gm.hmacOff+3, 0x01)},
			{"inner-sender-hit", mutOp(opXor, 8+15, 0x01)},
			{"inner-last-param", mutOp(opXor, gm.cut-1, 0x01)},
			{"header-length-less", mutOp(opSet, 1, g[1]-3)},
			{"header-length-more", append(mutOp(opAppend, 7, 0), mutOp(opSet, 1, g[1]+1)...)},
			{"checksum", append(mutOp(opSet, 4, 0xbe), mutOp(opSet, 5, 0xef)...)},
			{"padding", mutOp(opSet, len(g)-1, 0xff)},
			{"trailing", mutOp(opAppend, 15, 0xaa)},
			{"truncated-by-one", mutOp(opTruncate, len(g)-1, 0)},
			{"truncated-before-hmac", mutOp(opTruncate, gm.hmacOff, 0)},
			{"truncated-empty", mutOp(opTruncate, 0, 0)},
		}
		for _, m := range muts {
			seeds = append(seeds, relaySeed{fmt.Sprintf("mutated-%d-%v-%s", i, ptype(in), m.name), in, 0, m.mut})
		}
		relayed, err := ends[0].send.AppendRelayed(bytes.Clone(in), relayAddrs[0])
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds,
			relaySeed{fmt.Sprintf("forwarded-%d-%v", i, ptype(in)), g, 1, nil},
			relaySeed{fmt.Sprintf("forwarded-%d-%v-truncated", i, ptype(in)), g[:gm.hmacOff], 2, nil},
			relaySeed{fmt.Sprintf("relayed-%d-%v", i, ptype(in)), relayed, 3, nil})
	}
	for _, in := range inners {
		if ptype(in) != wire.R1 {
			continue
		}
		r1v, err := AppendViaRVS(bytes.Clone(in), rvsFroms[5].Addr())
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, relaySeed{"r1-via-rvs", r1v, 4, nil})
	}
	seeds = append(seeds, relaySeed{"empty", nil, 0, nil},
		relaySeed{"garbage", []byte("\x3b\x04\x01\x21"), 0x35, mutOp(opXor, 0, 1)})
	return seeds
}

// TestWriteFuzzSeedsRendezvous writes rvsSeeds to
// testdata/fuzz/FuzzOpenRendezvous with -write-seeds.
func TestWriteFuzzSeedsRendezvous(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate the FuzzOpenRendezvous corpus")
	}
	ends, inners := relayFixture(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzOpenRendezvous")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range rvsSeeds(t, ends, inners) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint8(%d)\n[]byte(%q)\n", s.pkt, s.sel, s.mut)
		if err := os.WriteFile(filepath.Join(dir, s.name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
