package handshake

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// Host mobility, RFC 8046: LOCATOR_SET announcements (§5.2, §5.3) and the
// SEQ-less address probes of §5.4 (mobility.go).

var (
	addr1 = netip.MustParseAddr("2001:db8::1")
	addr2 = netip.MustParseAddr("192.0.2.7")
	addr3 = netip.MustParseAddr("2001:db8::3")
)

// locsAt is one preferred type 1 locator with a zero SPI, which
// AnnounceLocators fills in.
func locsAt(ad netip.Addr) []wire.Locator {
	return []wire.Locator{{Type: wire.LocatorTypeESP, Preferred: true, Lifetime: 60, Addr: ad}}
}

// params returns the parameter types of pkt, in order.
func params(t *testing.T, pkt []byte) []wire.ParamType {
	t.Helper()
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	var ts []wire.ParamType
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		ts = append(ts, q.Type())
	}
	return ts
}

// paramOf returns the contents of pkt's parameter typ, failing without it.
func paramOf(t *testing.T, pkt []byte, typ wire.ParamType) []byte {
	t.Helper()
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	q, ok := p.Param(typ)
	if !ok {
		t.Fatalf("%v has no %v (params %v)", p.Type(), typ, params(t, pkt))
	}
	return q.Contents()
}

func hasParam(t *testing.T, pkt []byte, typ wire.ParamType) bool {
	t.Helper()
	for _, x := range params(t, pkt) {
		if x == typ {
			return true
		}
	}
	return false
}

// craft builds an UPDATE from from to to with the parameters add adds,
// then, as asked, a HIP_MAC and a HIP_SIGNATURE made with from's real keys:
// what a peer could send, or an attacker with part of the keys.
func craft(t *testing.T, from, to *host, mac, sign bool, add func(b *wire.Builder)) []byte {
	t.Helper()
	fa := from.a(to)
	var b wire.Builder
	b.Reset(nil, wire.UPDATE, from.e.HIT(), to.e.HIT())
	add(&b)
	if mac {
		if err := addMAC(&b, fa.rhash, fa.ourMACKey()); err != nil {
			t.Fatal(err)
		}
	}
	var pkt []byte
	var err error
	if sign {
		pkt, err = from.e.sign(&b)
	} else {
		pkt, err = finish(&b)
	}
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// locatorEvents returns the LOCATOR_SETs h was told of, parsed.
func locatorEvents(t *testing.T, h *host) []wire.LocatorSet {
	t.Helper()
	var out []wire.LocatorSet
	for _, ev := range h.eventsOf(EventLocatorSet) {
		v, err := wire.ParseLocatorSet(ev.LocatorSet)
		if err != nil {
			t.Fatalf("EventLocatorSet does not parse: %v", err)
		}
		out = append(out, v.LocatorSet())
	}
	return out
}

// noRekeyEvents fails if h saw a rekey start or finish.
func noRekeyEvents(t *testing.T, h *host) {
	t.Helper()
	if n := len(h.eventsOf(EventRekeyInbound)) + len(h.eventsOf(EventRekeyed)); n != 0 {
		t.Fatalf("%s: %d rekey events", h.name, n)
	}
}

// TestAnnounceLocators: RFC 8046 §5.2 case 1. The UPDATE holds ESP_INFO
// with OLD SPI = NEW SPI = our inbound SPI, LOCATOR_SET with that SPI
// filled in, SEQ, HIP_MAC and HIP_SIGNATURE; the peer reports the set
// once, acknowledges it, and neither side rekeys.
func TestAnnounceLocators(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	infoA, infoB := aa.Info(), ba.Info()
	locs := locsAt(addr1)
	if err := aa.AnnounceLocators(t0, locs); err != nil {
		t.Fatal(err)
	}
	if locs[0].SPI != 0 {
		t.Fatal("AnnounceLocators changed the caller's slice")
	}
	out := a.collect(aa)
	if len(out) != 1 {
		t.Fatalf("%d packets, want the announcement", len(out))
	}
	up := out[0]
	want := []wire.ParamType{wire.ParamESPInfo, wire.ParamLocatorSet, wire.ParamSeq, wire.ParamHIPMAC, wire.ParamHIPSignature}
	if got := params(t, up); !equalTypes(got, want) {
		t.Fatalf("announcement parameters %v, want %v", got, want)
	}
	ei, err := wire.ParseESPInfo(paramOf(t, up, wire.ParamESPInfo))
	if err != nil || ei.OldSPI != infoA.InSPI || ei.NewSPI != infoA.InSPI {
		t.Fatalf("ESP_INFO %+v (%v), want OLD = NEW = %#x", ei, err, infoA.InSPI)
	}
	if !aa.upd.outstanding || aa.Deadline().IsZero() {
		t.Fatal("the announcement is not reliable")
	}

	l := &link{}
	l.send(a, b, out)
	l.run(t, t0)
	sets := locatorEvents(t, b)
	if len(sets) != 1 || len(sets[0].Locators) != 1 {
		t.Fatalf("peer reported %v, want one set of one locator", sets)
	}
	got := sets[0].Locators[0]
	if got.SPI != infoA.InSPI || got.Addr != addr1 || !got.Preferred || got.Lifetime != 60 || got.Type != wire.LocatorTypeESP {
		t.Fatalf("locator %+v, want SPI %#x at %v", got, infoA.InSPI, addr1)
	}
	if aa.upd.outstanding || !aa.Deadline().IsZero() {
		t.Fatal("announcement not acknowledged")
	}
	noRekeyEvents(t, a)
	noRekeyEvents(t, b)
	if aa.Info() != infoA || ba.Info() != infoB || aa.Rekeying() || ba.Rekeying() {
		t.Fatal("an announcement changed the SAs")
	}
	if len(a.eventsOf(EventLocatorSet)) != 0 {
		t.Fatal("the announcer reported its own set")
	}
}

func equalTypes(a, b []wire.ParamType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAnnounceLocatorsRefused: only in ESTABLISHED or R2-SENT, and never
// a multicast or broadcast address (RFC 8046 §5.2) or what LOCATOR_SET
// cannot carry.
func TestAnnounceLocatorsRefused(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	for _, locs := range [][]wire.Locator{
		locsAt(netip.MustParseAddr("ff02::1")),
		locsAt(netip.MustParseAddr("224.0.0.1")),
		locsAt(netip.MustParseAddr("255.255.255.255")),
		{{Type: wire.LocatorTypeESP, Lifetime: 0, Addr: addr1}},
		{{Type: 9, Lifetime: 1, Addr: addr1}},
		{{Type: wire.LocatorTypeAddr, Lifetime: 1, SPI: 5, Addr: addr1}},
	} {
		if err := aa.AnnounceLocators(t0, locs); err == nil {
			t.Fatalf("%+v accepted", locs)
		}
	}
	if out := a.collect(aa); len(out) != 0 || aa.upd.locsQueued() {
		t.Fatal("a refused set was sent or queued")
	}
	// An empty set is an announcement: it deprecates every address (§4).
	if err := aa.AnnounceLocators(t0, nil); err != nil {
		t.Fatal(err)
	}
	l := &link{}
	l.send(a, b, a.collect(aa))
	l.run(t, t0)
	if ev := lastEvent(t, b, EventLocatorSet); ev.LocatorSet == nil || len(ev.LocatorSet) != 0 {
		t.Fatalf("empty set reported as %v", ev.LocatorSet)
	}
	aa.Close(t0)
	if err := aa.AnnounceLocators(t0, locsAt(addr1)); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("announcement in CLOSING: %v", err)
	}
}

// TestAnnounceLocatorsLost: the announcement and its ACK are lost once
// each; retransmission delivers it, it is reported once, acknowledged
// again, and nothing is left outstanding.
func TestAnnounceLocatorsLost(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	var fromA, fromB, sent int
	l := &link{filter: func(p packet) []byte {
		if ptype(p.b) != wire.UPDATE {
			return p.b
		}
		if p.from == a {
			sent++
			if fromA++; fromA == 1 {
				return nil // the first announcement
			}
		} else if fromB++; fromB == 1 {
			return nil // the first ACK
		}
		return p.b
	}}
	if err := aa.AnnounceLocators(t0, locsAt(addr1)); err != nil {
		t.Fatal(err)
	}
	l.send(a, b, a.collect(aa))
	l.run(t, t0)
	now := t0
	for i := 0; i < 10 && aa.upd.outstanding; i++ {
		now = now.Add(10 * time.Second)
		l.send(a, b, a.timeout(now))
		l.run(t, now)
	}
	if aa.upd.outstanding || aa.State() != Established {
		t.Fatalf("announcement not acknowledged (state %v)", aa.State())
	}
	if sent < 3 {
		t.Fatalf("%d transmissions, want at least 3", sent)
	}
	if n := len(b.eventsOf(EventLocatorSet)); n != 1 {
		t.Fatalf("retransmitted announcement reported %d times, want once", n)
	}
}

// TestAnnounceQueuedBehindRekey: while our rekey is under way the sets
// wait, the later replacing the earlier (RFC 8046 §5.2), and the one sent
// after the rekey names the new inbound SPI.
func TestAnnounceQueuedBehindRekey(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	if err := aa.Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	rekeyUp := a.collect(aa)
	for _, ad := range []netip.Addr{addr1, addr2} {
		if err := aa.AnnounceLocators(t0, locsAt(ad)); err != nil {
			t.Fatal(err)
		}
	}
	if out := a.collect(aa); len(out) != 0 {
		t.Fatalf("%d packets sent beside the outstanding rekey", len(out))
	}
	if err := aa.Rekey(t0, false); err != ErrBusy {
		t.Fatalf("second rekey: %v", err)
	}
	l := &link{}
	l.send(a, b, rekeyUp)
	l.run(t, t0)
	ea, eb := lastEvent(t, a, EventRekeyed), lastEvent(t, b, EventRekeyed)
	checkSAs(t, ea.Outbound, ea.Inbound, eb.Outbound, eb.Inbound)
	sets := locatorEvents(t, b)
	if len(sets) != 1 {
		t.Fatalf("%d sets reported, want the latest only", len(sets))
	}
	if got := sets[0].Locators[0]; got.Addr != addr2 || got.SPI != ea.Inbound.SPI {
		t.Fatalf("locator %+v, want %v with the new SPI %#x", got, addr2, ea.Inbound.SPI)
	}
	if aa.upd.outstanding || aa.upd.locsQueued() || aa.Rekeying() {
		t.Fatal("something still pending")
	}
}

// TestAnnounceQueuedBehindPeerRekey: a rekey the peer started, which we
// answer with an UPDATE of ours, holds the set back too.
func TestAnnounceQueuedBehindPeerRekey(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	if err := ba.Rekey(t0, true); err != nil {
		t.Fatal(err)
	}
	answer := a.deliver(t0, b.collect(ba)[0])
	if !aa.Rekeying() || !aa.upd.outstanding {
		t.Fatal("the peer's rekey was not answered")
	}
	if err := aa.AnnounceLocators(t0, locsAt(addr3)); err != nil {
		t.Fatal(err)
	}
	if out := a.collect(aa); len(out) != 0 {
		t.Fatal("announcement sent beside the rekey answer")
	}
	l := &link{}
	l.send(a, b, answer)
	l.run(t, t0)
	ea := lastEvent(t, a, EventRekeyed)
	sets := locatorEvents(t, b)
	if len(sets) != 1 || sets[0].Locators[0].SPI != ea.Inbound.SPI {
		t.Fatalf("sets %v, want one naming the new SPI %#x", sets, ea.Inbound.SPI)
	}
}

// TestAnnounceQueuedBehindAnnounce: a set announced while the previous one
// is outstanding goes once that is acknowledged; a third replaces the
// second before it goes.
func TestAnnounceQueuedBehindAnnounce(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	for _, ad := range []netip.Addr{addr1, addr2, addr3} {
		if err := aa.AnnounceLocators(t0, locsAt(ad)); err != nil {
			t.Fatal(err)
		}
	}
	out := a.collect(aa)
	if len(out) != 1 {
		t.Fatalf("%d packets, want one announcement outstanding", len(out))
	}
	l := &link{}
	l.send(a, b, out)
	l.run(t, t0)
	sets := locatorEvents(t, b)
	if len(sets) != 2 || sets[0].Locators[0].Addr != addr1 || sets[1].Locators[0].Addr != addr3 {
		t.Fatalf("sets %v, want %v then %v", sets, addr1, addr3)
	}
}

// TestLocatorSetNoRekey: OLD SPI = NEW SPI is not a rekey (RFC 8046 §5.3
// case 1), and arriving while the receiver's own rekey is under way it
// neither completes nor disturbs that rekey, which then finishes with
// fresh SAs that pair.
func TestLocatorSetNoRekey(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	old := ba.Info()
	if err := ba.Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	rekeyUp := b.collect(ba)
	if err := aa.AnnounceLocators(t0, locsAt(addr1)); err != nil {
		t.Fatal(err)
	}
	announce := a.collect(aa)

	acks := b.deliver(t0, announce[0])
	if err := b.lastErr(); err != nil {
		t.Fatal(err)
	}
	if len(acks) != 1 || hasParam(t, acks[0], wire.ParamESPInfo) {
		t.Fatal("announcement not answered with a bare ACK")
	}
	if !ba.Rekeying() || ba.upd.ph.peerInfo != nil || ba.upd.ph.pending != nil {
		t.Fatal("the announcement's ESP_INFO was taken as the peer's half of the rekey")
	}
	if len(b.eventsOf(EventLocatorSet)) != 1 {
		t.Fatal("set not reported")
	}
	noRekeyEvents(t, b)

	l := &link{}
	l.send(b, a, acks)
	l.send(b, a, rekeyUp)
	l.run(t, t0)
	ea, eb := lastEvent(t, a, EventRekeyed), lastEvent(t, b, EventRekeyed)
	checkSAs(t, ea.Outbound, ea.Inbound, eb.Outbound, eb.Inbound)
	if eb.Inbound.SPI == old.InSPI || eb.Outbound.SPI == old.OutSPI {
		t.Fatal("rekey kept an old SPI")
	}
	if len(b.eventsOf(EventLocatorSet)) != 1 {
		t.Fatal("set reported again")
	}
}

// TestLocatorSetWithRekey: a LOCATOR_SET beside an ESP_INFO with a new SPI
// is RFC 8046 §5.3 case 2: the rekey path answers it, and the set is
// reported after.
func TestLocatorSetWithRekey(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	const newSPI = 0xabcdef
	up := craft(t, a, b, true, true, func(bl *wire.Builder) {
		bl.Add(wire.ESPInfo{KeymatIndex: uint16(aa.km.next), OldSPI: aa.inSPI, NewSPI: newSPI})
		l := locsAt(addr1)
		l[0].SPI = newSPI
		bl.Add(wire.LocatorSet{Locators: l})
		bl.Add(wire.Seq{UpdateID: 0})
	})
	out := b.deliver(t0, up)
	if err := b.lastErr(); err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || !hasParam(t, out[0], wire.ParamESPInfo) || !hasParam(t, out[0], wire.ParamAck) {
		t.Fatal("rekey not answered with ESP_INFO and ACK")
	}
	if !ba.Rekeying() || ba.upd.ph.peerInfo == nil || ba.upd.ph.peerInfo.NewSPI != newSPI {
		t.Fatal("rekey not started")
	}
	var kinds []EventKind
	for _, ev := range b.events {
		kinds = append(kinds, ev.Kind)
	}
	if len(kinds) != 2 || kinds[0] != EventRekeyInbound || kinds[1] != EventLocatorSet {
		t.Fatalf("events %v, want rekey-inbound then locator-set", kinds)
	}
}

// TestLocatorSetUnknownSPI: OLD SPI = NEW SPI naming no SA of the peer is
// a protocol error (RFC 8046 §5.3): the SEQ is acknowledged (RFC 7401
// §6.12.1 step 6) but nothing is reported.
func TestLocatorSetUnknownSPI(t *testing.T) {
	a, b := established(t)
	up := craft(t, a, b, true, true, func(bl *wire.Builder) {
		bl.Add(wire.ESPInfo{OldSPI: 0x999, NewSPI: 0x999})
		bl.Add(wire.LocatorSet{Locators: locsAt(addr1)})
		bl.Add(wire.Seq{UpdateID: 0})
	})
	out := b.deliver(t0, up)
	mustErr(t, b.lastErr(), ErrMalformed)
	if len(out) != 1 || !hasParam(t, out[0], wire.ParamAck) {
		t.Fatal("SEQ not acknowledged")
	}
	if len(b.events) != 0 {
		t.Fatalf("events %v", b.events)
	}
}

// TestLocatorSetForged: an announcement with a bad HIP_MAC, a tampered
// LOCATOR_SET, a bad or missing HIP_SIGNATURE (RFC 8046 §4.3), or an old
// SEQ changes nothing and reports nothing; the genuine one is still taken
// afterwards, once, and its retransmission only acknowledged again.
func TestLocatorSetForged(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	if err := aa.AnnounceLocators(t0, locsAt(addr1)); err != nil {
		t.Fatal(err)
	}
	up := a.collect(aa)[0]
	noSig := craft(t, a, b, true, false, func(bl *wire.Builder) {
		bl.Add(wire.ESPInfo{OldSPI: aa.inSPI, NewSPI: aa.inSPI})
		bl.Add(wire.LocatorSet{Locators: locsAt(addr3)})
		bl.Add(wire.Seq{UpdateID: updSeq(t, up)})
	})
	before := ba.upd.win
	for _, c := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"bad HIP_MAC", tamper(t, up, wire.ParamHIPMAC, 0), ErrBadMAC},
		{"tampered LOCATOR_SET", tamper(t, up, wire.ParamLocatorSet, 12), ErrBadMAC},
		{"tampered SEQ", tamper(t, up, wire.ParamSeq, 3), ErrBadMAC},
		{"bad HIP_SIGNATURE", tamper(t, up, wire.ParamHIPSignature, -1), ErrBadSignature},
		{"no HIP_SIGNATURE", noSig, ErrBadSignature},
	} {
		if out := b.deliver(t0, c.pkt); len(out) != 0 {
			t.Fatalf("%s: answered", c.name)
		}
		mustErr(t, b.lastErr(), c.want)
		if len(b.events) != 0 || ba.upd.win != before {
			t.Fatalf("%s: events %v, window changed %v", c.name, b.events, ba.upd.win != before)
		}
	}
	first := b.deliver(t0, up)
	if len(first) != 1 || len(b.eventsOf(EventLocatorSet)) != 1 {
		t.Fatalf("genuine announcement after forgeries: %v", b.lastErr())
	}
	// Acknowledged again from the cache, at most once a retransmission
	// timeout (RFC 7401 §6.12.1 step 2), and never reported again.
	for _, now := range []time.Time{t0, t0.Add(time.Minute)} {
		again := b.deliver(now, up)
		if err := b.lastErr(); err != nil || len(again) != 1 || !bytes.Equal(again[0], first[0]) {
			t.Fatalf("retransmission not acknowledged again from the cache: %v", err)
		}
		if again := b.deliver(now, up); len(again) != 0 {
			t.Fatal("replay acknowledged twice in one retransmission timeout")
		}
		mustErr(t, b.lastErr(), ErrReplay)
	}
	if n := len(b.eventsOf(EventLocatorSet)); n != 1 {
		t.Fatalf("replayed announcement reported %d times", n)
	}
}

// TestLocatorSetOldSeq: an announcement whose SEQ has left the window is
// dropped without an answer or a report (RFC 7401 §6.12.1 step 1).
func TestLocatorSetOldSeq(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	announce := func(id uint32, ad netip.Addr) []byte {
		aa.upd.next, aa.upd.outstanding = id, false
		if err := aa.AnnounceLocators(t0, locsAt(ad)); err != nil {
			t.Fatal(err)
		}
		return a.collect(aa)[0]
	}
	old, mid, last := announce(0, addr1), announce(10, addr2), announce(70, addr3)
	b.deliver(t0, mid)
	b.deliver(t0, last)
	if n := len(b.eventsOf(EventLocatorSet)); n != 2 {
		t.Fatalf("%d sets reported, want 2", n)
	}
	if out := b.deliver(t0.Add(time.Minute), old); len(out) != 0 {
		t.Fatal("old SEQ answered")
	}
	mustErr(t, b.lastErr(), ErrReplay)
	if sets := locatorEvents(t, b); len(sets) != 2 || sets[1].Locators[0].Addr != addr3 {
		t.Fatalf("sets %v", sets)
	}
}

// TestUpdateParamsOnce: RFC 8046 §4.3 defines procedures for one
// LOCATOR_SET and one ESP_INFO, RFC 7401 §5.2.20 allows one
// ECHO_REQUEST_SIGNED: more is dropped unanswered, even when signed. A
// LOCATOR_SET needs a SEQ, and a malformed one is acknowledged but not
// reported.
func TestUpdateParamsOnce(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	ei := wire.ESPInfo{OldSPI: aa.inSPI, NewSPI: aa.inSPI}
	ls := wire.LocatorSet{Locators: locsAt(addr1)}
	echo := wire.Echo{Type: wire.ParamEchoRequestSigned, Opaque: []byte("abcdefgh")}
	for name, add := range map[string]func(bl *wire.Builder){
		"two LOCATOR_SETs": func(bl *wire.Builder) {
			bl.Add(ei)
			bl.Add(ls)
			bl.Add(ls)
			bl.Add(wire.Seq{UpdateID: 0})
		},
		"two ESP_INFOs": func(bl *wire.Builder) {
			bl.Add(ei)
			bl.Add(ei)
			bl.Add(ls)
			bl.Add(wire.Seq{UpdateID: 0})
		},
		"two ECHO_REQUEST_SIGNED": func(bl *wire.Builder) {
			bl.Add(echo)
			bl.Add(echo)
		},
		"LOCATOR_SET without SEQ": func(bl *wire.Builder) {
			bl.Add(ls)
			bl.Add(echo)
		},
		"ESP_INFO in a probe": func(bl *wire.Builder) {
			bl.Add(ei)
			bl.Add(echo)
		},
		"nothing": func(bl *wire.Builder) {},
	} {
		out := b.deliver(t0, craft(t, a, b, true, true, add))
		mustErr(t, b.lastErr(), ErrMalformed)
		if len(out) != 0 || len(b.events) != 0 {
			t.Fatalf("%s: answered %d, events %v", name, len(out), b.events)
		}
	}
	bad := craft(t, a, b, true, true, func(bl *wire.Builder) {
		bl.Add(ei)
		// A locator with a zero lifetime (RFC 8046 §4: MUST be non-zero).
		bl.AddRaw(wire.ParamLocatorSet, []byte{0, 1, 5, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
		bl.Add(wire.Seq{UpdateID: 0})
	})
	out := b.deliver(t0, bad)
	mustErr(t, b.lastErr(), ErrMalformed)
	if len(out) != 1 || len(b.events) != 0 {
		t.Fatalf("malformed LOCATOR_SET: %d answers, events %v", len(out), b.events)
	}
}

// probeOf returns a's probe to b with nonce, undelivered.
func probeOf(t *testing.T, a, b *host, nonce []byte) []byte {
	t.Helper()
	pkt, err := a.a(b).AppendProbe(t0, nil, nonce)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

// TestProbe: RFC 8046 §5.4 address verification. The probe is a SEQ-less
// UPDATE(ECHO_REQUEST_SIGNED, HIP_MAC, HIP_SIGNATURE) that touches nothing
// of the sender's; the peer reports a signed UPDATE(ECHO_RESPONSE_SIGNED)
// for the caller to send back, outside Outgoing; the prober reports the
// echoed nonce.
func TestProbe(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	if err := aa.Rekey(t0, false); err != nil { // something outstanding, to leave alone
		t.Fatal(err)
	}
	a.collect(aa)
	outID, rtx, at := aa.upd.outID, aa.rtx.pkt, aa.Deadline()
	nonce := []byte("a nonce of 20 octets")
	prefix := []byte("prefix")
	pkt, err := aa.AppendProbe(t0, prefix, nonce)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pkt, prefix) {
		t.Fatal("AppendProbe did not append")
	}
	probe := pkt[len(prefix):]
	want := []wire.ParamType{wire.ParamEchoRequestSigned, wire.ParamHIPMAC, wire.ParamHIPSignature}
	if got := params(t, probe); !equalTypes(got, want) || !bytes.Equal(paramOf(t, probe, wire.ParamEchoRequestSigned), nonce) {
		t.Fatalf("probe parameters %v, want %v with the nonce", got, want)
	}
	if out := a.collect(aa); len(out) != 0 || aa.upd.outID != outID || !bytes.Equal(aa.rtx.pkt, rtx) || aa.Deadline() != at {
		t.Fatal("a probe touched the UPDATE state")
	}

	if out := b.deliver(t0, probe); len(out) != 0 {
		t.Fatal("the answer went to Outgoing")
	}
	if err := b.lastErr(); err != nil {
		t.Fatal(err)
	}
	reply := lastEvent(t, b, EventEchoRequest).Reply
	want = []wire.ParamType{wire.ParamEchoResponseSigned, wire.ParamHIPMAC, wire.ParamHIPSignature}
	if got := params(t, reply); !equalTypes(got, want) || !bytes.Equal(paramOf(t, reply, wire.ParamEchoResponseSigned), nonce) {
		t.Fatalf("answer parameters %v, want %v echoing the nonce", got, want)
	}
	if ba.upd.outstanding || !ba.Deadline().IsZero() {
		t.Fatal("answering a probe armed a retransmission")
	}

	if out := a.deliver(t0, reply); len(out) != 0 {
		t.Fatal("the answer was answered")
	}
	if err := a.lastErr(); err != nil {
		t.Fatal(err)
	}
	if got := lastEvent(t, a, EventEchoResponse).Echo; !bytes.Equal(got, nonce) {
		t.Fatalf("echo %q, want %q", got, nonce)
	}
	if aa.upd.outID != outID || !aa.Rekeying() {
		t.Fatal("the answer touched the UPDATE state")
	}
}

// TestProbeRefused: nonces of 4 to 32 octets, in ESTABLISHED or R2-SENT
// only; a probe to a closing association is dropped.
func TestProbeRefused(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	for _, n := range []int{0, 3, 33} {
		if _, err := aa.AppendProbe(t0, nil, make([]byte, n)); err == nil {
			t.Fatalf("nonce of %d octets accepted", n)
		}
	}
	for _, n := range []int{4, 32} {
		if _, err := aa.AppendProbe(t0, nil, make([]byte, n)); err != nil {
			t.Fatalf("nonce of %d octets: %v", n, err)
		}
	}
	probe := probeOf(t, a, b, []byte("12345678"))
	b.a(a).Close(t0)
	b.collect(b.a(a))
	if out := b.deliver(t0, probe); len(out) != 0 || len(b.eventsOf(EventEchoRequest)) != 0 {
		t.Fatal("CLOSING answered a probe")
	}
	mustErr(t, b.lastErr(), ErrUnexpected)
	aa.Close(t0)
	if _, err := aa.AppendProbe(t0, nil, []byte("12345678")); !errors.Is(err, ErrUnexpected) {
		t.Fatalf("probe in CLOSING: %v", err)
	}
}

// TestProbeRateLimit: a probe replayed beyond echoBurst at once, or
// faster than one per echoInterval after, gets no answer; probes failing
// HIP_MAC take no token; a valid HIP_MAC with a bad signature does, and
// gets no answer.
func TestProbeRateLimit(t *testing.T) {
	a, b := established(t)
	probe := probeOf(t, a, b, []byte("12345678"))
	answers := func(now time.Time, pkt []byte, n int) int {
		t.Helper()
		before := len(b.eventsOf(EventEchoRequest))
		for i := 0; i < n; i++ {
			if out := b.deliver(now, pkt); len(out) != 0 {
				t.Fatal("answer in Outgoing")
			}
		}
		return len(b.eventsOf(EventEchoRequest)) - before
	}
	if n := answers(t0, probe, 20); n != echoBurst {
		t.Fatalf("%d answers to 20 copies at once, want %d", n, echoBurst)
	}
	mustErr(t, b.lastErr(), ErrReplay)
	if n := answers(t0.Add(echoInterval), probe, 3); n != 1 {
		t.Fatalf("%d answers one interval later, want 1", n)
	}
	if n := answers(t0.Add(time.Hour), probe, 20); n != echoBurst {
		t.Fatalf("%d answers after a pause, want %d", n, echoBurst)
	}

	now := t0.Add(2 * time.Hour)
	if n := answers(now, tamper(t, probe, wire.ParamHIPMAC, 1), 50); n != 0 {
		t.Fatal("a probe with a bad HIP_MAC was answered")
	}
	mustErr(t, b.lastErr(), ErrBadMAC)
	if n := answers(now, tamper(t, probe, wire.ParamHIPSignature, 2), 1); n != 0 {
		t.Fatal("a probe with a bad signature was answered")
	}
	mustErr(t, b.lastErr(), ErrBadSignature)
	if n := answers(now, probe, 20); n != echoBurst-1 {
		t.Fatalf("%d answers after forged probes, want %d", n, echoBurst-1)
	}
}

// TestEchoResponseForged: an answer with a bad HIP_MAC, a bad or missing
// signature is not reported; a replayed answer is reported once, and its
// replays cost no token (sentProbes).
func TestEchoResponseForged(t *testing.T) {
	a, b := established(t)
	b.deliver(t0, probeOf(t, a, b, []byte("12345678")))
	reply := lastEvent(t, b, EventEchoRequest).Reply
	noSig := craft(t, b, a, true, false, func(bl *wire.Builder) {
		bl.Add(wire.Echo{Type: wire.ParamEchoResponseSigned, Opaque: []byte("12345678")})
	})
	for _, c := range []struct {
		pkt  []byte
		want error
	}{
		{tamper(t, reply, wire.ParamHIPMAC, 0), ErrBadMAC},
		{tamper(t, reply, wire.ParamEchoResponseSigned, 0), ErrBadMAC},
		{tamper(t, reply, wire.ParamHIPSignature, -1), ErrBadSignature},
		{noSig, ErrBadSignature},
	} {
		a.deliver(t0, c.pkt)
		mustErr(t, a.lastErr(), c.want)
		if len(a.events) != 0 {
			t.Fatalf("forged answer reported: %v", a.events)
		}
	}
	for i := 0; i < 10; i++ {
		a.deliver(t0.Add(time.Hour), reply)
	}
	if n := len(a.eventsOf(EventEchoResponse)); n != 1 {
		t.Fatalf("an answer and 9 replays reported %d times, want once", n)
	}
	mustErr(t, a.lastErr(), ErrReplay)
}

// TestStaleAnswersKeepNoTokens: a flood of one recorded answer, faster than
// the limit on echo UPDATEs, does not keep the answers to our new probes
// out: a stale answer is dropped before it takes a token.
func TestStaleAnswersKeepNoTokens(t *testing.T) {
	a, b := established(t)
	b.deliver(t0, probeOf(t, a, b, []byte("old-nonce")))
	stale := lastEvent(t, b, EventEchoRequest).Reply
	a.deliver(t0, stale) // answered: that probe waits no more
	now := t0
	for i := range 50 {
		now = now.Add(echoInterval) // the rate the limit allows
		for range 4 {
			a.deliver(now, stale) // four times that
		}
		nonce := []byte{'n', 'e', 'w', byte(i)}
		b.deliver(now, probeOf(t, a, b, nonce))
		a.deliver(now, lastEvent(t, b, EventEchoRequest).Reply)
	}
	if n := len(a.eventsOf(EventEchoResponse)); n != 51 {
		t.Fatalf("%d answers reported, want 51: the first and the 50 fresh ones", n)
	}
}

// TestEchoInSeqUpdate: an ECHO_REQUEST_SIGNED in a SEQ UPDATE (RFC 8046
// §3.2.1 Figure 3) is answered in the ACK, UPDATE(ACK,
// ECHO_RESPONSE_SIGNED), which is cached for retransmissions; the
// answer in an ACK is reported to the prober. In a rekey, the answer rides
// on the rekey reply.
func TestEchoInSeqUpdate(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	nonce := []byte("seq nonce")
	id := aa.upd.next
	up := craft(t, a, b, true, true, func(bl *wire.Builder) {
		bl.Add(wire.Seq{UpdateID: id})
		bl.Add(wire.Echo{Type: wire.ParamEchoRequestSigned, Opaque: nonce})
	})
	aa.seqSent() // as if a had sent it reliably
	out := b.deliver(t0, up)
	if err := b.lastErr(); err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || !hasParam(t, out[0], wire.ParamAck) || !bytes.Equal(paramOf(t, out[0], wire.ParamEchoResponseSigned), nonce) {
		t.Fatal("SEQ UPDATE not answered with ACK and ECHO_RESPONSE_SIGNED")
	}
	if len(b.eventsOf(EventEchoRequest)) != 0 {
		t.Fatal("an echo in a SEQ UPDATE was answered outside the ACK")
	}
	again := b.deliver(t0.Add(time.Minute), up)
	if len(again) != 1 || !bytes.Equal(again[0], out[0]) {
		t.Fatal("retransmission not answered from the cache")
	}
	a.deliver(t0, out[0])
	if err := a.lastErr(); err != nil {
		t.Fatal(err)
	}
	if got := lastEvent(t, a, EventEchoResponse).Echo; !bytes.Equal(got, nonce) || aa.upd.outstanding {
		t.Fatalf("ACK with echo: echo %q, outstanding %v", got, aa.upd.outstanding)
	}

	rekey := craft(t, a, b, true, true, func(bl *wire.Builder) {
		bl.Add(wire.ESPInfo{KeymatIndex: uint16(aa.km.next), OldSPI: aa.inSPI, NewSPI: 0x12345})
		bl.Add(wire.Seq{UpdateID: aa.upd.next})
		bl.Add(wire.Echo{Type: wire.ParamEchoRequestSigned, Opaque: nonce})
	})
	out = b.deliver(t0, rekey)
	if len(out) != 1 || !hasParam(t, out[0], wire.ParamESPInfo) || !bytes.Equal(paramOf(t, out[0], wire.ParamEchoResponseSigned), nonce) {
		t.Fatal("rekey with echo not answered with ESP_INFO and ECHO_RESPONSE_SIGNED")
	}
	// The first SEQ, no longer the latest, retransmitted: a new ACK, with
	// the echo answered again.
	out = b.deliver(t0.Add(2*time.Minute), up)
	if len(out) != 1 || hasParam(t, out[0], wire.ParamSeq) || !bytes.Equal(paramOf(t, out[0], wire.ParamEchoResponseSigned), nonce) {
		t.Fatal("older SEQ with echo not acknowledged again with the answer")
	}
}

// TestRateLimit: the token bucket itself.
func TestRateLimit(t *testing.T) {
	var r rateLimit
	got := 0
	for i := 0; i < 100; i++ {
		if r.allow(t0, time.Second, 3) {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("burst %d, want 3", got)
	}
	if r.allow(t0.Add(999*time.Millisecond), time.Second, 3) || !r.allow(t0.Add(time.Second), time.Second, 3) {
		t.Fatal("refill is not one token a second")
	}
	// A clock that goes back refuses rather than grants.
	if r.allow(t0.Add(-time.Hour), time.Second, 3) {
		t.Fatal("clock going back granted a token")
	}
}

// TestAnnounceWaitsForPeerESPInfo: our rekey acknowledged without the
// peer's ESP_INFO leaves nothing outstanding but the rekey under way: the
// set still waits, since the rekey will change the SPI it names.
func TestAnnounceWaitsForPeerESPInfo(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	if err := aa.Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	up := a.collect(aa)[0]
	ack, err := ba.buildAck(updSeq(t, up), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.deliver(t0, ack)
	if aa.upd.outstanding || !aa.Rekeying() {
		t.Fatal("setup: want our rekey acknowledged and under way")
	}
	if err := aa.AnnounceLocators(t0, locsAt(addr1)); err != nil {
		t.Fatal(err)
	}
	if out := a.collect(aa); len(out) != 0 {
		t.Fatal("announcement sent during the rekey")
	}
	l := &link{}
	l.send(a, b, [][]byte{up})
	l.run(t, t0)
	ea := lastEvent(t, a, EventRekeyed)
	if sets := locatorEvents(t, b); len(sets) != 1 || sets[0].Locators[0].SPI != ea.Inbound.SPI {
		t.Fatalf("sets %v, want one naming the new SPI %#x", sets, ea.Inbound.SPI)
	}
}

// TestAnnounceCrossesLostRekeyAck: the peer finished a rekey and announces
// its new SPI while our side still waits for the ACK of its rekey answer
// (lost): OLD SPI = NEW SPI = the SPI the rekey is bringing in is no
// rekey either, and is reported.
func TestAnnounceCrossesLostRekeyAck(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	if err := aa.Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	answer := b.deliver(t0, a.collect(aa)[0])
	out := a.deliver(t0, answer[0]) // the ACK, lost
	if len(out) != 1 || aa.Rekeying() {
		t.Fatal("setup: a did not finish the rekey")
	}
	if err := aa.AnnounceLocators(t0, locsAt(addr1)); err != nil {
		t.Fatal(err)
	}
	announce := a.collect(aa)
	b.deliver(t0, announce[0])
	if err := b.lastErr(); err != nil {
		t.Fatalf("announcement during the peer's unfinished rekey: %v", err)
	}
	if len(b.eventsOf(EventLocatorSet)) != 1 || !ba.Rekeying() {
		t.Fatal("set not reported, or the rekey disturbed")
	}
	// b's answer is retransmitted, acknowledged again, and the rekey ends.
	l := &link{}
	l.send(b, a, b.timeout(t0.Add(time.Minute)))
	l.run(t, t0.Add(time.Minute))
	ea, eb := lastEvent(t, a, EventRekeyed), lastEvent(t, b, EventRekeyed)
	checkSAs(t, ea.Outbound, ea.Inbound, eb.Outbound, eb.Inbound)
}

// TestMobilityCopies: what the caller hands in or gets out is copied: a
// slice changed after AnnounceLocators does not change the set that
// waits, and events outlive the packet buffer they came from.
func TestMobilityCopies(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	if err := aa.Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	rekeyUp := a.collect(aa)
	locs := locsAt(addr1)
	if err := aa.AnnounceLocators(t0, locs); err != nil {
		t.Fatal(err)
	}
	locs[0].Addr = addr3
	var announce []byte
	l := &link{filter: func(p packet) []byte {
		if hasParam(t, p.b, wire.ParamLocatorSet) {
			announce = p.b // held back, delivered below
			return nil
		}
		return p.b
	}}
	l.send(a, b, rekeyUp)
	l.run(t, t0)
	if announce == nil {
		t.Fatal("no announcement")
	}
	buf := append([]byte(nil), announce...)
	b.deliver(t0, buf)
	clear(buf) // the receiver's buffer, reused
	ev := lastEvent(t, b, EventLocatorSet)
	if !bytes.Equal(ev.LocatorSet, paramOf(t, announce, wire.ParamLocatorSet)) {
		t.Fatal("EventLocatorSet aliases the packet")
	}
	if sets := locatorEvents(t, b); sets[0].Locators[0].Addr != addr1 {
		t.Fatalf("sent %v, want the address given at the call", sets[0].Locators[0].Addr)
	}

	probe := probeOf(t, a, b, []byte("12345678"))
	b.deliver(t0, probe)
	reply := append([]byte(nil), lastEvent(t, b, EventEchoRequest).Reply...)
	a.deliver(t0, reply)
	clear(reply)
	if got := lastEvent(t, a, EventEchoResponse).Echo; string(got) != "12345678" {
		t.Fatalf("EventEchoResponse aliases the packet: %q", got)
	}
}

// TestLostProbeForgotten: the nonce of a probe whose answer never comes
// is kept for probeKeep, and the echo state with it then goes: an
// association that once lost a probe does not keep it for good.
func TestLostProbeForgotten(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	if _, err := aa.AppendProbe(t0, nil, []byte("lost-probe")); err != nil {
		t.Fatal(err)
	}
	aa.HandleTimeout(t0.Add(time.Second))
	if aa.upd.echo == nil {
		t.Fatal("the nonce of a probe just sent was forgotten")
	}
	aa.HandleTimeout(t0.Add(probeKeep + time.Second))
	if aa.upd.echo != nil {
		t.Fatalf("echo state still held %v after a probe whose answer was lost", probeKeep+time.Second)
	}
}
