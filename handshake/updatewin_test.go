package handshake

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// Issue 9, finding 7: UPDATE.
//
// RFC 7401 §6.12.1: a SEQ is acknowledged whatever else happens (step 6),
// a retransmitted one is acknowledged again after its HIP_MAC verified
// (step 2), and one outside the receiver's window is dropped (step 1).
// RFC 7402 §6.8-6.10: a rekey completes when both ESP_INFOs are known and
// ours is acknowledged. The fix ACKs a peer's rekey that crosses a
// non-rekey UPDATE of ours (it used to be dropped with ErrBusy, unACKed),
// restarts a rekey whose ACK came without the peer's ESP_INFO instead of
// waiting forever, and keeps a 64-entry window of the peer's Update IDs.

// updAck returns the Update IDs acknowledged by an UPDATE and whether it
// carries a SEQ or an ESP_INFO.
func updAck(t *testing.T, pkt []byte) (acks []uint32, seq, info bool) {
	t.Helper()
	p, err := wire.ParsePacket(pkt)
	if err != nil || p.Type() != wire.UPDATE {
		t.Fatalf("not an UPDATE: %v", err)
	}
	if q, ok := p.Param(wire.ParamAck); ok {
		a, err := wire.ParseAck(q.Contents())
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < a.IDs.Len(); i++ {
			acks = append(acks, a.IDs.At(i))
		}
	}
	_, seq = p.Param(wire.ParamSeq)
	_, info = p.Param(wire.ParamESPInfo)
	return acks, seq, info
}

func updSeq(t *testing.T, pkt []byte) uint32 {
	t.Helper()
	p, _ := wire.ParsePacket(pkt)
	q, ok := p.Param(wire.ParamSeq)
	if !ok {
		t.Fatal("UPDATE without SEQ")
	}
	s, err := wire.ParseSeq(q.Contents())
	if err != nil {
		t.Fatal(err)
	}
	return s.UpdateID
}

// seqUpdate has a build, undelivered, a genuine UPDATE (HIP_MAC and
// signature valid) with Update ID id: a registration cancellation, which
// needs no REG_INFO (RFC 8003 §5).
func seqUpdate(t *testing.T, a, b *host, id uint32) []byte {
	t.Helper()
	aa := a.a(b)
	aa.upd.next, aa.upd.outstanding = id, false
	if err := aa.Register(t0, 0, wire.RegTypeRelayUDPHIP); err != nil {
		t.Fatal(err)
	}
	out := a.collect(aa)
	if len(out) != 1 || updSeq(t, out[0]) != id {
		t.Fatal("no UPDATE with the wanted SEQ")
	}
	return out[0]
}

// TestUpdateRekeyCrossesRegistration: A's registration UPDATE (no
// ESP_INFO) is outstanding when B's rekey UPDATE arrives. A acknowledges
// B's SEQ at once (§6.12.1 step 6) and, since only one UPDATE of ours may
// be outstanding (§6.11, RFC 7402 §6.8), sends its ESP_INFO as soon as its
// own UPDATE is acknowledged. Both ends finish the rekey with SAs that
// pair, and A gets its registration answer — with no retransmission.
func TestUpdateRekeyCrossesRegistration(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	if err := aa.Register(t0, 0, wire.RegTypeRelayUDPHIP); err != nil {
		t.Fatal(err)
	}
	regUp := a.collect(aa)
	if err := ba.Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	rekeyUp := b.collect(ba)

	out := a.deliver(t0, rekeyUp[0])
	if err := a.lastErr(); err != nil {
		t.Fatalf("peer's rekey during our registration: %v", err)
	}
	if len(out) != 1 {
		t.Fatalf("%d answers to the peer's rekey, want one ACK", len(out))
	}
	acks, seq, info := updAck(t, out[0])
	if len(acks) != 1 || acks[0] != updSeq(t, rekeyUp[0]) || seq || info {
		t.Fatalf("answer ACKs %v (SEQ %v ESP_INFO %v), want a bare ACK of the rekey", acks, seq, info)
	}

	l := &link{}
	l.send(a, b, regUp)
	l.send(a, b, out)
	l.run(t, t0)
	ea, eb := lastEvent(t, a, EventRekeyed), lastEvent(t, b, EventRekeyed)
	checkSAs(t, ea.Outbound, ea.Inbound, eb.Outbound, eb.Inbound)
	if r := lastEvent(t, a, EventRegistration).Registration; len(r.Failed) != 1 {
		t.Fatalf("registration answer %+v", r)
	}
	for _, x := range []*Association{aa, ba} {
		if x.Rekeying() || x.upd.outstanding || !x.Deadline().IsZero() {
			t.Fatal("an UPDATE is still pending")
		}
	}
	for _, h := range []*host{a, b} {
		for _, err := range h.errs {
			if err != nil {
				t.Fatalf("%s: %v", h.name, err)
			}
		}
	}
}

// TestRekeyAckWithoutESPInfo: a peer that acknowledges our rekey UPDATE
// but never sends its ESP_INFO must not leave us rekeying forever. By the
// rekey deadline we start the rekey again — a new UPDATE with a new SEQ
// and ESP_INFO — and after Config.Retries restarts the association is
// considered broken and closed, as for an unanswered UPDATE (§6.11 step 4).
func TestRekeyAckWithoutESPInfo(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	if err := aa.Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	up := a.collect(aa)[0]
	now := t0
	restarts := 0
	for {
		ack, err := ba.buildAck(updSeq(t, up), nil, nil) // ACK only, no ESP_INFO
		if err != nil {
			t.Fatal(err)
		}
		if out := a.deliver(now, ack); len(out) != 0 || a.lastErr() != nil {
			t.Fatalf("ACK: %v", a.lastErr())
		}
		if !aa.Rekeying() {
			t.Fatal("rekey ended without the peer's ESP_INFO")
		}
		d := aa.Deadline()
		if d.IsZero() {
			t.Fatal("acknowledged rekey without a deadline: it would wait forever")
		}
		now = d
		out := a.timeout(now)
		if aa.State() != Established {
			break
		}
		restarts++
		if len(out) != 1 {
			t.Fatalf("restart %d: %d packets", restarts, len(out))
		}
		acks, seq, info := updAck(t, out[0])
		if !seq || !info || len(acks) != 0 || updSeq(t, out[0]) <= updSeq(t, up) {
			t.Fatalf("restart %d: not a new rekey UPDATE", restarts)
		}
		up = out[0]
		if restarts > 20 {
			t.Fatal("rekey restarted without end")
		}
	}
	if restarts != aa.e.cfg.Retries {
		t.Fatalf("%d restarts, want Config.Retries = %d", restarts, aa.e.cfg.Retries)
	}
	if aa.State() != Closing {
		t.Fatalf("state %v", aa.State())
	}
	mustErr(t, lastEvent(t, a, EventClosed).Err, ErrTimeout)
	if len(a.eventsOf(EventRekeyed)) != 0 {
		t.Fatal("rekeyed")
	}
}

// TestRekeyRestartCompletes: the restarted rekey is an ordinary one: the
// peer answers it and both ends rekey.
func TestRekeyRestartCompletes(t *testing.T) {
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
	now := aa.Deadline()
	l := &link{}
	l.send(a, b, a.timeout(now))
	l.run(t, now)
	ea, eb := lastEvent(t, a, EventRekeyed), lastEvent(t, b, EventRekeyed)
	checkSAs(t, ea.Outbound, ea.Inbound, eb.Outbound, eb.Inbound)
	if aa.Rekeying() || !aa.Deadline().IsZero() {
		t.Fatal("rekey still pending")
	}
}

// TestUpdateSeqReack: a retransmission of a recent SEQ, not only the
// latest, is acknowledged again (§6.12.1 step 2) — after its HIP_MAC
// verified, and at most once per RetransmitTimeout, so that replays cannot
// make us sign without bound. It is not processed again.
func TestUpdateSeqReack(t *testing.T) {
	a, b := established(t)
	ba := b.a(a)
	var ups, acks [][]byte
	for id := uint32(0); id < 3; id++ {
		u := seqUpdate(t, a, b, id)
		out := b.deliver(t0, u)
		if len(out) != 1 || b.lastErr() != nil {
			t.Fatalf("SEQ %d: %v", id, b.lastErr())
		}
		ups, acks = append(ups, u), append(acks, out[0])
	}
	regs := len(b.eventsOf(EventRegistration))
	rto := ba.e.cfg.RetransmitTimeout
	now := t0.Add(10 * time.Second)

	if out := b.deliver(now, tamper(t, ups[1], wire.ParamHIPMAC, 0)); len(out) != 0 {
		t.Fatal("forged retransmission acknowledged")
	}
	mustErr(t, b.lastErr(), ErrBadMAC)

	out := b.deliver(now, ups[1])
	if len(out) != 1 || b.lastErr() != nil {
		t.Fatalf("retransmitted SEQ 1: %d packets, %v", len(out), b.lastErr())
	}
	if got, seq, _ := updAck(t, out[0]); len(got) != 1 || got[0] != 1 || seq {
		t.Fatalf("re-ACK of %v", got)
	}
	if out := b.deliver(now.Add(rto/2), ups[2]); len(out) != 0 {
		t.Fatal("second re-ACK within RetransmitTimeout")
	}
	mustErr(t, b.lastErr(), ErrReplay)
	// After RetransmitTimeout: the latest SEQ gets its cached ACK.
	out = b.deliver(now.Add(rto), ups[2])
	if len(out) != 1 || !bytes.Equal(out[0], acks[2]) {
		t.Fatalf("retransmitted latest SEQ: %d packets, %v", len(out), b.lastErr())
	}
	if n := len(b.eventsOf(EventRegistration)); n != regs {
		t.Fatal("a retransmitted SEQ was processed again")
	}
}

// TestUpdateSeqWindowEdges: with the highest SEQ processed h, a new SEQ up
// to h+64 is accepted, h+65 is dropped unverified (§6.12.1 step 1), an
// unseen SEQ within the 64 behind h is a reordered UPDATE and processed,
// and a SEQ 64 or more behind h is dropped, not even re-acknowledged.
func TestUpdateSeqWindowEdges(t *testing.T) {
	a, b := established(t)
	u0 := seqUpdate(t, a, b, 0)
	if out := b.deliver(t0, u0); len(out) != 1 {
		t.Fatal(b.lastErr())
	}
	regs := func() int { return len(b.eventsOf(EventRegistration)) }
	n := regs()
	for _, c := range []struct {
		id      uint32
		wantErr error
	}{
		{65, ErrReplay}, // 65 ahead of 0
		{64, nil},       // 64 ahead: the edge of the window
		{129, ErrReplay},
		{1, nil}, // 63 behind 64, never seen: reordered
		{0, ErrReplay},
	} {
		var pkt []byte
		if c.id == 0 {
			pkt = u0 // 64 behind: too old even for a re-ACK
		} else {
			pkt = seqUpdate(t, a, b, c.id)
		}
		out := b.deliver(t0.Add(time.Minute), pkt)
		if c.wantErr == nil {
			if len(out) != 1 || b.lastErr() != nil || regs() != n+1 {
				t.Fatalf("SEQ %d: %d packets, %v", c.id, len(out), b.lastErr())
			}
			n++
			continue
		}
		if len(out) != 0 || !errors.Is(b.lastErr(), c.wantErr) || regs() != n {
			t.Fatalf("SEQ %d: %d packets, %v, want dropped with %v", c.id, len(out), b.lastErr(), c.wantErr)
		}
	}
}

// TestUpdateForgedSeq: an UPDATE whose HIP_MAC or signature fails changes
// nothing — in particular it does not mark its SEQ as seen, so the genuine
// UPDATE with that SEQ is still processed.
func TestUpdateForgedSeq(t *testing.T) {
	a, b := established(t)
	ba := b.a(a)
	u := seqUpdate(t, a, b, 5)
	win := ba.upd.win
	for _, f := range []struct {
		pkt  []byte
		want error
	}{
		{tamper(t, u, wire.ParamHIPMAC, 0), ErrBadMAC},
		{tamper(t, u, wire.ParamHIPSignature, -1), ErrBadSignature},
		{tamper(t, u, wire.ParamRegRequest, 0), ErrBadMAC},
	} {
		if out := b.deliver(t0, f.pkt); len(out) != 0 {
			t.Fatal("forged UPDATE answered")
		}
		mustErr(t, b.lastErr(), f.want)
	}
	if ba.upd.win != win || len(b.events) != 0 || ba.State() != Established {
		t.Fatalf("forged UPDATEs changed the association: %+v, events %v", ba.upd.win, b.events)
	}
	if out := b.deliver(t0, u); len(out) != 1 || b.lastErr() != nil {
		t.Fatalf("genuine UPDATE after the forgeries: %v", b.lastErr())
	}
	lastEvent(t, b, EventRegistration)
}

// TestUpdateSeqAckedAnyway: a SEQ whose contents we reject (an ESP_INFO
// with SPI 0) is still acknowledged, so the peer stops retransmitting it
// (§6.12.1 step 6); the error is reported and no rekey starts.
func TestUpdateSeqAckedAnyway(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	bad, err := aa.buildUpdate(wire.ESPInfo{KeymatIndex: uint16(aa.km.next), OldSPI: aa.inSPI}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := b.deliver(t0, bad)
	mustErr(t, b.lastErr(), ErrMalformed)
	if len(out) != 1 {
		t.Fatalf("%d packets, want the ACK", len(out))
	}
	if acks, seq, info := updAck(t, out[0]); len(acks) != 1 || acks[0] != updSeq(t, bad) || seq || info {
		t.Fatalf("answer ACKs %v", acks)
	}
	if ba.Rekeying() || len(b.eventsOf(EventRekeyInbound)) != 0 {
		t.Fatal("rejected ESP_INFO started a rekey")
	}
}

// TestSeqWindow unit-tests the window in circular Update ID space
// (§6.12), across the wrap at 2^32.
func TestSeqWindow(t *testing.T) {
	var w seqWindow
	if w.check(0) != seqNew || w.check(seqWindowSize-1) != seqNew || w.check(seqWindowSize) != seqTooFar {
		t.Fatal("first SEQ must lie in [0, 64)")
	}
	w.mark(3)
	for _, c := range []struct {
		id   uint32
		want seqVerdict
	}{
		{3, seqSeen}, {2, seqNew}, {0, seqNew}, {4, seqNew}, {3 + 64, seqNew}, {3 + 65, seqTooFar},
		{math.MaxUint32, seqNew},         // 4 behind 3, across the wrap: within the window
		{math.MaxUint32 - 60, seqTooOld}, // 3-64 wrapped: 64 behind
		{3 + 1<<31, seqTooFar},           // half the space away
	} {
		if got := w.check(c.id); got != c.want {
			t.Errorf("highest 3: check(%d) = %d, want %d", c.id, got, c.want)
		}
	}

	// Across the wrap.
	w = seqWindow{seen: true, highest: math.MaxUint32 - 1, bits: 1}
	for _, id := range []uint32{math.MaxUint32, 0, 1} {
		if w.check(id) != seqNew {
			t.Fatalf("check(%d) after %d: not new", id, w.highest)
		}
		w.mark(id)
	}
	if w.highest != 1 {
		t.Fatalf("highest %d, want 1 after the wrap", w.highest)
	}
	for _, c := range []struct {
		id   uint32
		want seqVerdict
	}{
		{1, seqSeen}, {0, seqSeen}, {math.MaxUint32, seqSeen}, {math.MaxUint32 - 1, seqSeen},
		{math.MaxUint32 - 2, seqNew},                                    // never marked, 3 behind
		{math.MaxUint32 - 61, seqNew}, {math.MaxUint32 - 62, seqTooOld}, // 1-63 and 1-64 wrapped
		{65, seqNew}, {66, seqTooFar},
	} {
		if got := w.check(c.id); got != c.want {
			t.Errorf("highest 1 after the wrap: check(%d) = %d, want %d", c.id, got, c.want)
		}
	}
	// A jump of exactly the window size: the old highest is now 64
	// behind and falls out.
	w.mark(65)
	if w.check(65) != seqSeen || w.check(1) != seqTooOld || w.check(2) != seqNew {
		t.Fatal("jump of 64")
	}
	// Marking an older SEQ within the window does not move the highest.
	w.mark(10)
	if w.highest != 65 || w.check(10) != seqSeen || w.check(11) != seqNew {
		t.Fatal("reordered mark")
	}
}
