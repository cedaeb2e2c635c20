package handshake

import (
	"bytes"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

func established(t *testing.T) (*host, *host) {
	t.Helper()
	a, b := pair(t)
	bex(t, a, b)
	b.a(a).DataReceived(t0)
	a.events, b.events = nil, nil
	return a, b
}

func lastEvent(t *testing.T, h *host, k EventKind) Event {
	t.Helper()
	ev := h.eventsOf(k)
	if len(ev) == 0 {
		t.Fatalf("%s: no %v event (events %v, errors %v)", h.name, k, h.events, h.errs)
	}
	return ev[len(ev)-1]
}

// TestRekey: an UPDATE exchange with ESP_INFO gives both sides new SPIs
// and keys — drawn further along KEYMAT, or from a new Diffie-Hellman —
// whoever starts it, and the new SAs pair up and carry data.
func TestRekey(t *testing.T) {
	for _, c := range []struct {
		name     string
		newDH    bool
		fromResp bool
	}{
		{"keymat-initiator", false, false},
		{"keymat-responder", false, true},
		{"newdh-initiator", true, false},
		{"newdh-responder", true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := established(t)
			from, to := a, b
			if c.fromResp {
				from, to = b, a
			}
			old := from.a(to).Info()
			oldKey := append([]byte(nil), from.a(to).hipMAC.gl()...)
			if err := from.a(to).Rekey(t0, c.newDH); err != nil {
				t.Fatal(err)
			}
			if err := from.a(to).Rekey(t0, c.newDH); err != ErrBusy {
				t.Fatalf("second rekey: %v", err)
			}
			l := &link{}
			l.send(from, to, from.collect(from.a(to)))
			l.run(t, t0.Add(time.Second))
			var ups int
			for _, p := range l.seen {
				if ptype(p.b) != wire.UPDATE {
					t.Fatalf("unexpected %v", ptype(p.b))
				}
				ups++
			}
			if ups != 3 {
				t.Fatalf("%d UPDATEs, want 3 (SEQ; SEQ+ACK; ACK)", ups)
			}
			ef, et := lastEvent(t, from, EventRekeyed), lastEvent(t, to, EventRekeyed)
			checkSAs(t, ef.Outbound, ef.Inbound, et.Outbound, et.Inbound)
			// The side that answered the rekey announced its new inbound SA
			// early, before the initiator (who finishes first) could use it.
			early := lastEvent(t, to, EventRekeyInbound)
			if early.Inbound.SPI != et.Inbound.SPI || !bytes.Equal(early.Inbound.EncKey, et.Inbound.EncKey) ||
				!bytes.Equal(early.Inbound.AuthKey, et.Inbound.AuthKey) {
				t.Fatal("early inbound SA differs from the final one")
			}
			if len(from.eventsOf(EventRekeyInbound)) != 0 {
				t.Fatal("the rekey initiator announced an early inbound SA")
			}
			var earlyAt, doneAt int
			for i, e := range to.events {
				switch e.Kind {
				case EventRekeyInbound:
					earlyAt = i
				case EventRekeyed:
					doneAt = i
				}
			}
			if earlyAt > doneAt {
				t.Fatal("EventRekeyInbound after EventRekeyed")
			}
			now := from.a(to).Info()
			if now.InSPI == old.InSPI || now.OutSPI == old.OutSPI {
				t.Fatal("SPIs not renewed")
			}
			if !bytes.Equal(oldKey, from.a(to).hipMAC.gl()) {
				t.Fatal("rekeying must not change the HIP keys (RFC 7402 §7)")
			}
			if from.a(to).Rekeying() || to.a(from).Rekeying() || !from.a(to).Deadline().IsZero() {
				t.Fatal("rekey still pending")
			}
			// A second rekey works too and yields different keys again.
			if err := from.a(to).Rekey(t0, c.newDH); err != nil {
				t.Fatal(err)
			}
			l.send(from, to, from.collect(from.a(to)))
			l.run(t, t0.Add(2*time.Second))
			if e2 := lastEvent(t, from, EventRekeyed); bytes.Equal(e2.Outbound.EncKey, ef.Outbound.EncKey) {
				t.Fatal("second rekey reused keys")
			}
		})
	}
}

// TestRekeyLostUpdate: lost UPDATEs are retransmitted and the retransmitted
// SEQ is answered from the cache.
func TestRekeyLostUpdate(t *testing.T) {
	a, b := established(t)
	drops := 0
	l := &link{filter: func(p packet) []byte {
		if ptype(p.b) == wire.UPDATE && drops < 1 && p.from == b {
			drops++ // lose B's SEQ+ACK once
			return nil
		}
		return p.b
	}}
	if err := a.a(b).Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	l.send(a, b, a.collect(a.a(b)))
	l.run(t, t0)
	now := t0
	for i := 0; i < 5 && (a.a(b).Rekeying() || b.a(a).Rekeying()); i++ {
		now = now.Add(10 * time.Second)
		l.send(a, b, a.timeout(now))
		l.send(b, a, b.timeout(now))
		l.run(t, now)
	}
	ea, eb := lastEvent(t, a, EventRekeyed), lastEvent(t, b, EventRekeyed)
	checkSAs(t, ea.Outbound, ea.Inbound, eb.Outbound, eb.Inbound)
}

// TestUpdateForgedOrReplayed: a tampered UPDATE is dropped; a replayed
// SEQ is re-acknowledged, not re-processed.
func TestUpdateForgedOrReplayed(t *testing.T) {
	a, b := established(t)
	if err := a.a(b).Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	up := a.collect(a.a(b))[0]
	b.deliver(t0, tamper(t, up, wire.ParamHIPMAC, 3))
	mustErr(t, b.lastErr(), ErrBadMAC)
	b.deliver(t0, tamper(t, up, wire.ParamESPInfo, 11))
	mustErr(t, b.lastErr(), ErrBadMAC)
	if b.a(a).Rekeying() {
		t.Fatal("forged UPDATE started a rekey")
	}
	first := b.deliver(t0, up)
	if len(first) != 1 || !b.a(a).Rekeying() || b.repeat {
		t.Fatalf("genuine UPDATE: %v (repeat %v)", b.lastErr(), b.repeat)
	}
	again := b.deliver(t0, up)
	if len(again) != 1 || !bytes.Equal(again[0], first[0]) {
		t.Fatal("retransmitted SEQ not answered from cache")
	}
	if !b.repeat {
		t.Fatal("retransmitted SEQ not reported as a repeat (Result.Repeat)")
	}
	if n := len(b.eventsOf(EventRekeyed)); n != 0 {
		t.Fatalf("%d rekeys", n)
	}
}

// TestUpdateGiveUp: an UPDATE never acknowledged breaks the association.
func TestUpdateGiveUp(t *testing.T) {
	a, b := established(t)
	if err := a.a(b).Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	aa := a.a(b)
	aa.Outgoing()
	for i := 0; i < 20 && aa.State() == Established; i++ {
		a.timeout(aa.Deadline())
	}
	if aa.State() != Closing {
		t.Fatalf("state %v", aa.State())
	}
	mustErr(t, lastEvent(t, a, EventClosed).Err, ErrTimeout)
}

func TestClose(t *testing.T) {
	for _, fromResp := range []bool{false, true} {
		a, b := established(t)
		from, to := a, b
		if fromResp {
			from, to = b, a
		}
		from.a(to).Close(t0)
		if from.a(to).State() != Closing {
			t.Fatalf("closer: %v", from.a(to).State())
		}
		l := &link{}
		l.send(from, to, from.collect(from.a(to)))
		l.run(t, t0)
		if st := from.a(to).State(); st != Unassociated {
			t.Fatalf("closer after CLOSE_ACK: %v", st)
		}
		if st := to.a(from).State(); st != Closed {
			t.Fatalf("peer after CLOSE: %v", st)
		}
		lastEvent(t, from, EventClosed)
		lastEvent(t, to, EventClosed)
		// CLOSED expires into UNASSOCIATED.
		to.timeout(to.a(from).Deadline())
		if to.a(from).State() != Unassociated {
			t.Fatal("CLOSED did not expire")
		}
		// A new exchange can follow.
		l.send(from, to, from.initiate(t0.Add(time.Minute), to.e.HIT()))
		l.run(t, t0.Add(time.Minute))
		if st := from.a(to).State(); st != Established {
			t.Fatalf("re-establish after close: %v", st)
		}
	}
}

func TestCloseForgedAndCrossed(t *testing.T) {
	a, b := established(t)
	a.a(b).Close(t0)
	cl := a.collect(a.a(b))[0]
	b.deliver(t0, tamper(t, cl, wire.ParamHIPSignature, 5))
	mustErr(t, b.lastErr(), ErrBadSignature)
	if b.a(a).State() != Established {
		t.Fatal("forged CLOSE accepted")
	}
	// Both close at once: each answers the other's CLOSE and ends up
	// UNASSOCIATED or CLOSED, with one EventClosed each.
	b.a(a).Close(t0)
	l := &link{}
	l.send(a, b, [][]byte{cl})
	l.send(b, a, b.collect(b.a(a)))
	l.run(t, t0)
	for _, h := range []*host{a, b} {
		if n := len(h.eventsOf(EventClosed)); n != 1 {
			t.Fatalf("%s: %d close events", h.name, n)
		}
	}
	// Retransmitted CLOSE_ACK / CLOSE after the fact do nothing harmful.
	a.timeout(t0.Add(time.Hour))
	b.timeout(t0.Add(time.Hour))
	if a.a(b).State() != Unassociated || b.a(a).State() != Unassociated {
		t.Fatalf("states %v %v", a.a(b).State(), b.a(a).State())
	}
}

// TestRekeyAfterLostAck: the peer rekeys, we answer, the peer finishes
// but its ACK of our answer is lost, and it starts its next rekey, which
// reaches us first. That one is not taken for the first's half: we finish
// the first when the ACK comes again, then answer the second, and after
// both every SA of one side is the other's.
func TestRekeyAfterLostAck(t *testing.T) {
	a, b := established(t)
	ab, ba := a.a(b), b.a(a)
	if err := ba.Rekey(t0, false); err != nil {
		t.Fatal(err)
	}
	up1 := b.collect(ba)
	ans1 := a.deliver(t0, up1[0]) // our ESP_INFO and the ACK of b's SEQ
	if len(ans1) != 1 {
		t.Fatalf("answer to b's rekey: %d packets (%v)", len(ans1), a.lastErr())
	}
	b.deliver(t0, ans1[0]) // b finishes; its ACK is lost
	if n := len(b.eventsOf(EventRekeyed)); n != 1 {
		t.Fatalf("b finished %d rekeys", n)
	}
	now := t0.Add(time.Second)
	if err := ba.Rekey(now, false); err != nil {
		t.Fatal(err)
	}
	up2 := b.collect(ba)
	ack2 := a.deliver(now, up2[0])
	if len(ack2) != 1 || a.lastErr() != nil {
		t.Fatalf("b's second rekey: %d packets, %v", len(ack2), a.lastErr())
	}
	l := &link{}
	l.send(a, b, ack2)
	l.run(t, now)
	// Our answer to the first is retransmitted; b acknowledges it again,
	// and the second goes on.
	for i := 0; i < 10 && (len(a.eventsOf(EventRekeyed)) < 2 || len(b.eventsOf(EventRekeyed)) < 2); i++ {
		now = ab.Deadline()
		if d := ba.Deadline(); !d.IsZero() && d.Before(now) {
			now = d
		}
		l.send(a, b, a.timeout(now))
		l.send(b, a, b.timeout(now))
		l.run(t, now)
	}
	ea, eb := a.eventsOf(EventRekeyed), b.eventsOf(EventRekeyed)
	if len(ea) != 2 || len(eb) != 2 {
		t.Fatalf("rekeys done: a %d, b %d; want 2 each (errors a %v b %v)", len(ea), len(eb), a.errs, b.errs)
	}
	checkSAs(t, ea[1].Outbound, ea[1].Inbound, eb[1].Outbound, eb[1].Inbound)
	if ab.Info().OutSPI != ea[1].Outbound.SPI || ba.Info().OutSPI != eb[1].Outbound.SPI {
		t.Fatalf("SPIs: a sends on %#x, its SA %#x; b on %#x, its SA %#x",
			ab.Info().OutSPI, ea[1].Outbound.SPI, ba.Info().OutSPI, eb[1].Outbound.SPI)
	}
}
