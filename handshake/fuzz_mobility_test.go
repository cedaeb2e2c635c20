package handshake

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// FuzzUpdateMobility fuzzes what FuzzHandle cannot reach: the handling of
// an UPDATE after its HIP_MAC and HIP_SIGNATURE have verified. The input is
// the parameter chain between the header and HIP_MAC; the target signs it
// with the sender's real keys, so every input is an authenticated UPDATE,
// and checks the rules of RFC 8046 mobility (mobility.go): a LOCATOR_SET
// is reported only from a SEQ, parsed, once; an ESP_INFO with OLD SPI =
// NEW SPI never rekeys; an echo request is answered with the same data, in
// a packet the prober accepts; an echo answer is reported unchanged. The
// hosts allocate SPIs from a counter so that the SPIs in the committed
// seeds (testdata/fuzz/FuzzUpdateMobility) are the live ones.

// mobilityPair is fixedPair with SPIs allocated from a counter.
func mobilityPair(t testing.TB) (a, b *host) {
	ka, kb := fixedKeys(t)
	cfg := func(id *hostid.PrivateKey, next uint32) Config {
		return Config{Identity: id, PuzzleDifficulty: 1, AllocateSPI: func() uint32 { next++; return next }}
	}
	a, b = newHost(t, "a", cfg(ka, 0x1000)), newHost(t, "b", cfg(kb, 0x2000))
	l := &link{}
	l.send(a, b, a.initiate(t0, b.e.HIT()))
	l.run(t, t0)
	b.a(a).DataReceived(t0)
	a.events, b.events = nil, nil
	return a, b
}

// signedUpdate makes an UPDATE from a to b of the parameter chain body,
// with a's HIP_MAC and HIP_SIGNATURE; false if body is no such chain.
func signedUpdate(a, b *host, body []byte) ([]byte, bool) {
	if len(body)%8 != 0 || wire.HeaderLen+len(body) > wire.MaxPacketLen {
		return nil, false
	}
	var bl wire.Builder
	bl.Reset(nil, wire.UPDATE, a.e.HIT(), b.e.HIT())
	hdr, err := bl.Bytes()
	if err != nil {
		return nil, false
	}
	raw := append(append([]byte(nil), hdr...), body...)
	raw[1] = uint8(len(raw)/8 - 1)
	bl.Extend(wire.Packet(raw))
	aa := a.a(b)
	if err := addMAC(&bl, aa.rhash, aa.ourMACKey()); err != nil {
		return nil, false
	}
	pkt, err := a.e.sign(&bl)
	return pkt, err == nil
}

func FuzzUpdateMobility(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		a, b := mobilityPair(t)
		pkt, ok := signedUpdate(a, b, body)
		if !ok {
			return
		}
		p, err := wire.ParsePacket(pkt)
		if err != nil {
			return
		}
		ba := b.a(a)
		now := t0.Add(time.Second)
		expectAnswer(b, a, p)
		out := b.deliver(now, pkt)
		if len(out) > 1 {
			t.Fatalf("%d packets out, want at most an ACK or a rekey answer", len(out))
		}
		checkMobilityEvents(t, a, b, p, len(out) == 0 && b.lastErr() != nil, now)
		if ei, ok := espInfoOf(p); ok && ei.OldSPI == ei.NewSPI && (ba.Rekeying() || len(b.eventsOf(EventRekeyInbound)) != 0) {
			t.Fatal("ESP_INFO with OLD SPI = NEW SPI started a rekey")
		}
		// The same UPDATE again: a SEQ is processed once (RFC 7401
		// §6.12.1), so nothing is reported again.
		sets, rekeys := len(b.eventsOf(EventLocatorSet)), len(b.eventsOf(EventRekeyInbound))
		b.deliver(now.Add(time.Minute), pkt)
		if _, seq := p.Param(wire.ParamSeq); seq && (len(b.eventsOf(EventLocatorSet)) != sets || len(b.eventsOf(EventRekeyInbound)) != rekeys) {
			t.Fatal("a retransmitted SEQ was processed again")
		}
	})
}

// expectAnswer makes b wait for the answer p may carry, as if b had sent
// the probe it answers (AppendProbe), so that the answer is processed
// past the nonce check (sentProbes).
func expectAnswer(b, a *host, p wire.Packet) {
	if q, ok := p.Param(wire.ParamEchoResponseSigned); ok {
		if n := len(q.Contents()); n >= minProbeNonce && n <= maxProbeNonce {
			b.a(a).upd.echoes().probes.add(t0, q.Contents())
		}
	}
}

// checkMobilityEvents checks what b reported of p, which it dropped
// (an error and nothing sent) or not.
func checkMobilityEvents(t *testing.T, a, b *host, p wire.Packet, dropped bool, now time.Time) {
	t.Helper()
	sets, reqs, resps := b.eventsOf(EventLocatorSet), b.eventsOf(EventEchoRequest), b.eventsOf(EventEchoResponse)
	if dropped && len(sets)+len(reqs)+len(resps) > 0 {
		t.Fatalf("mobility events from a dropped UPDATE (%v)", b.lastErr())
	}
	if len(sets) > 1 || len(reqs) > 1 || len(resps) > 1 {
		t.Fatalf("%d sets, %d echo requests, %d echo responses reported from one UPDATE", len(sets), len(reqs), len(resps))
	}
	if len(sets) == 1 {
		if _, seq := p.Param(wire.ParamSeq); !seq {
			t.Fatal("LOCATOR_SET reported from an UPDATE without SEQ")
		}
		if _, err := wire.ParseLocatorSet(sets[0].LocatorSet); err != nil {
			t.Fatalf("reported LOCATOR_SET does not parse: %v", err)
		}
	}
	if len(resps) == 1 {
		q, _ := p.Param(wire.ParamEchoResponseSigned)
		if !bytes.Equal(resps[0].Echo, q.Contents()) {
			t.Fatal("echo answer reported changed")
		}
	}
	if len(reqs) == 1 {
		q, _ := p.Param(wire.ParamEchoRequestSigned)
		if n := len(q.Contents()); n < minProbeNonce || n > maxProbeNonce {
			return // no probe of a's: its answer is refused (sentProbes)
		}
		// The request came from the fuzzer, not from AppendProbe: a
		// waits for its answer as if it had.
		a.a(b).upd.echoes().probes.add(now, q.Contents())
		reply := reqs[0].Reply
		a.deliver(now, reply)
		if err := a.lastErr(); err != nil {
			t.Fatalf("the prober refused the answer: %v", err)
		}
		got := a.eventsOf(EventEchoResponse)
		if len(got) != 1 || !bytes.Equal(got[0].Echo, q.Contents()) {
			t.Fatal("answer does not echo the request")
		}
	}
}

func espInfoOf(p wire.Packet) (wire.ESPInfo, bool) {
	q, ok := p.Param(wire.ParamESPInfo)
	if !ok {
		return wire.ESPInfo{}, false
	}
	ei, err := wire.ParseESPInfo(q.Contents())
	return ei, err == nil
}

// TestWriteMobilityFuzzSeeds writes the mobility packets of a live
// exchange between the fixed identities: whole, as FuzzHandle seeds
// (mob-NN-UPDATE), and as the parameter chains FuzzUpdateMobility signs.
func TestWriteMobilityFuzzSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to regenerate the mobility seeds")
	}
	pkts := mobilityPackets(t)
	write := func(dir, name string, b []byte) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, pkt := range pkts {
		write(filepath.Join("testdata", "fuzz", "FuzzHandle"), fmt.Sprintf("mob-%02d-UPDATE", i), pkt)
		p, err := wire.ParsePacket(pkt)
		if err != nil {
			t.Fatal(err)
		}
		mac, ok := p.Param(wire.ParamHIPMAC)
		if !ok {
			t.Fatal("no HIP_MAC")
		}
		write(filepath.Join("testdata", "fuzz", "FuzzUpdateMobility"), fmt.Sprintf("%02d", i), pkt[wire.HeaderLen:mac.Offset()])
	}
}

// mobilityPackets returns the mobility UPDATEs of a live exchange: an
// announcement and its ACK, a probe and its answer, an ECHO_REQUEST_SIGNED
// in a SEQ UPDATE and its ACK, a rekey with a LOCATOR_SET, an empty
// LOCATOR_SET, and ones to drop: two LOCATOR_SETs, OLD SPI = NEW SPI
// naming no SA.
func mobilityPackets(t *testing.T) [][]byte {
	a, b := mobilityPair(t)
	aa := a.a(b)
	var pkts [][]byte
	locs := append(locsAt(addr1), wire.Locator{Type: wire.LocatorTypeTransport, Lifetime: 30,
		Port: 10500, Protocol: wire.ProtocolUDP, Kind: wire.KindServerReflexive, Priority: 7, SPI: 0x1001, Addr: addr2})
	if err := aa.AnnounceLocators(t0, locs); err != nil {
		t.Fatal(err)
	}
	announce := a.collect(aa)[0]
	pkts = append(pkts, announce, b.deliver(t0, announce)[0])
	a.deliver(t0, pkts[1])
	probe := probeOf(t, a, b, []byte("probe-nonce-0001"))
	b.deliver(t0, probe)
	pkts = append(pkts, probe, lastEvent(t, b, EventEchoRequest).Reply)

	seqEcho := craft(t, a, b, true, true, func(bl *wire.Builder) {
		bl.Add(wire.Seq{UpdateID: aa.upd.next})
		bl.Add(wire.Echo{Type: wire.ParamEchoRequestSigned, Opaque: []byte("seq-nonce")})
	})
	pkts = append(pkts, seqEcho, b.deliver(t0, seqEcho)[0])
	ls := wire.LocatorSet{Locators: locsAt(addr3)}
	for _, add := range []func(bl *wire.Builder){
		func(bl *wire.Builder) {
			bl.Add(wire.ESPInfo{KeymatIndex: uint16(aa.km.next), OldSPI: aa.inSPI, NewSPI: 0x1777})
			bl.Add(wire.LocatorSet{Locators: []wire.Locator{{Type: wire.LocatorTypeESP, Lifetime: 1, SPI: 0x1777, Addr: addr3}}})
			bl.Add(wire.Seq{UpdateID: aa.upd.next + 1})
		},
		func(bl *wire.Builder) {
			bl.Add(wire.ESPInfo{KeymatIndex: uint16(aa.espIndex), OldSPI: aa.inSPI, NewSPI: aa.inSPI})
			bl.Add(wire.LocatorSet{})
			bl.Add(wire.Seq{UpdateID: aa.upd.next + 2})
		},
		func(bl *wire.Builder) {
			bl.Add(ls)
			bl.Add(ls)
			bl.Add(wire.Seq{UpdateID: aa.upd.next + 3})
		},
		func(bl *wire.Builder) {
			bl.Add(wire.ESPInfo{OldSPI: 0x999, NewSPI: 0x999})
			bl.Add(ls)
			bl.Add(wire.Seq{UpdateID: aa.upd.next + 4})
		},
	} {
		pkts = append(pkts, craft(t, a, b, true, true, add))
	}
	return pkts
}

// TestMobilitySeeds runs the seeds' packets through the checks of
// FuzzUpdateMobility, re-signed on a fresh pair as the target does, and
// checks that they reach what they are for: the counter-allocated SPIs
// make the ESP_INFOs of the seeds name live SAs.
func TestMobilitySeeds(t *testing.T) {
	want := []struct {
		kinds []EventKind
		acked bool
	}{
		{[]EventKind{EventLocatorSet}, true}, // announcement
		{nil, false},                         // its ACK, re-signed as ours: acknowledges nothing
		{[]EventKind{EventEchoRequest}, false},
		{[]EventKind{EventEchoResponse}, false},
		{nil, true}, // SEQ with ECHO_REQUEST_SIGNED: answered in the ACK
		{nil, false},
		{[]EventKind{EventRekeyInbound, EventLocatorSet}, true},
		{[]EventKind{EventLocatorSet}, true}, // empty set
		{nil, false},                         // two LOCATOR_SETs
		{nil, true},                          // OLD = NEW naming no SA: ACKed, not reported
	}
	pkts := mobilityPackets(t)
	if len(pkts) != len(want) {
		t.Fatalf("%d packets, want %d", len(pkts), len(want))
	}
	for i, pkt := range pkts {
		a, b := mobilityPair(t)
		p, _ := wire.ParsePacket(pkt)
		mac, _ := p.Param(wire.ParamHIPMAC)
		re, ok := signedUpdate(a, b, pkt[wire.HeaderLen:mac.Offset()])
		if !ok {
			t.Fatalf("packet %d: not re-signed", i)
		}
		rp, _ := wire.ParsePacket(re)
		expectAnswer(b, a, rp)
		out := b.deliver(t0, re)
		var kinds []EventKind
		for _, ev := range b.events {
			kinds = append(kinds, ev.Kind)
		}
		if fmt.Sprint(kinds) != fmt.Sprint(want[i].kinds) || (len(out) == 1) != want[i].acked {
			t.Fatalf("packet %d: events %v, %d packets out (%v); want %v, answered %v", i, kinds, len(out), b.lastErr(), want[i].kinds, want[i].acked)
		}
		checkMobilityEvents(t, a, b, rp, len(out) == 0 && b.lastErr() != nil, t0)
	}
}
