package handshake

import (
	"bytes"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// Issue 9, finding 8: CLOSE timers and what a closed association keeps.
//
// RFC 7401 §4.4.3 Table 7: CLOSING retransmits its CLOSE until "timeout
// sum greater than UAL+MSL", then goes UNASSOCIATED. Table 8: CLOSED
// answers every retransmitted CLOSE with a CLOSE_ACK until "timeout
// UAL+2MSL". Both used to last a fixed 10 s, CLOSING gave up after
// Config.Retries, and a closed association kept all its keys. UAL and MSL
// default to 15 and 2 minutes (Config.UAL, Config.MSL); the tests use the
// defaults, spelled out.
const (
	closeUAL = 15 * time.Minute
	closeMSL = 2 * time.Minute
)

func echoOf(t *testing.T, pkt []byte, typ wire.ParamType) []byte {
	t.Helper()
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	q, ok := p.Param(typ)
	if !ok {
		t.Fatalf("%v without %v", p.Type(), typ)
	}
	return q.Contents()
}

// TestClosingUntilUALMSL: a CLOSE that is never answered is retransmitted,
// with the back-off capped at MaxRetransmitTimeout, far more often than
// Config.Retries, until UAL+MSL after the close; then the association is
// UNASSOCIATED, with EventClosed(ErrTimeout), and has no timer left.
func TestClosingUntilUALMSL(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	aa.Close(t0)
	sent := a.collect(aa)
	if len(sent) != 1 || ptype(sent[0]) != wire.CLOSE {
		t.Fatal("no CLOSE")
	}
	end := t0.Add(closeUAL + closeMSL)
	now, n := t0, 0
	for i := 0; aa.State() == Closing; i++ {
		d := aa.Deadline()
		if d.IsZero() || d.After(end) || i > 1000 {
			t.Fatalf("CLOSING timer %v (close at %v, end %v)", d, t0, end)
		}
		if gap := d.Sub(now); gap > 8*time.Second {
			t.Fatalf("retransmission gap %v above MaxRetransmitTimeout", gap)
		}
		now = d
		for _, p := range a.timeout(now) {
			if !bytes.Equal(p, sent[0]) {
				t.Fatalf("sent %v, want the same CLOSE", ptype(p))
			}
			n++
		}
		if now.Before(end) && aa.State() != Closing {
			t.Fatalf("left CLOSING at %v, before UAL+MSL", now.Sub(t0))
		}
	}
	if !now.Equal(end) || aa.State() != Unassociated {
		t.Fatalf("CLOSING ended at %v in %v, want UNASSOCIATED at UAL+MSL %v", now.Sub(t0), aa.State(), end.Sub(t0))
	}
	if n < 100 {
		t.Fatalf("CLOSE retransmitted %d times, want until UAL+MSL (> 100 at 8 s)", n)
	}
	ev := a.eventsOf(EventClosed)
	if len(ev) != 1 {
		t.Fatalf("%d EventClosed", len(ev))
	}
	mustErr(t, ev[0].Err, ErrTimeout)
	if !aa.Deadline().IsZero() || len(a.timeout(end.Add(time.Hour))) != 0 {
		t.Fatal("timer or packets after UNASSOCIATED")
	}
	t.Logf("%d retransmissions in %v", n, end.Sub(t0))
}

// TestClosedUntilUAL2MSL: the peer that received the CLOSE stays CLOSED
// for UAL+2MSL and answers each retransmitted CLOSE with a CLOSE_ACK that
// echoes it (§6.14, §6.15), with a single EventClosed; the closer accepts
// such a late CLOSE_ACK. Then CLOSED expires to UNASSOCIATED.
func TestClosedUntilUAL2MSL(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	aa.Close(t0)
	cl := a.collect(aa)[0]
	if out := b.deliver(t0, cl); len(out) != 1 || ptype(out[0]) != wire.CLOSE_ACK {
		t.Fatalf("CLOSE: %v", b.lastErr())
	}
	end := t0.Add(closeUAL + 2*closeMSL)
	if ba.State() != Closed || !ba.Deadline().Equal(end) {
		t.Fatalf("peer %v until %v, want CLOSED until UAL+2MSL", ba.State(), ba.Deadline())
	}
	var last []byte
	for _, at := range []time.Duration{time.Second, time.Minute, closeUAL, closeUAL + 2*closeMSL - time.Second} {
		now := t0.Add(at)
		b.timeout(now)
		out := b.deliver(now, cl)
		if ba.State() != Closed || len(out) != 1 || ptype(out[0]) != wire.CLOSE_ACK {
			t.Fatalf("CLOSE retransmitted after %v: state %v, %d packets, %v", at, ba.State(), len(out), b.lastErr())
		}
		if !bytes.Equal(echoOf(t, out[0], wire.ParamEchoResponseSigned), echoOf(t, cl, wire.ParamEchoRequestSigned)) {
			t.Fatal("CLOSE_ACK does not echo the CLOSE")
		}
		last = out[0]
	}
	if n := len(b.eventsOf(EventClosed)); n != 1 {
		t.Fatalf("%d EventClosed at the peer", n)
	}
	// The closer, still CLOSING (its CLOSE and the ACKs were "lost"),
	// accepts the last CLOSE_ACK.
	a.deliver(t0.Add(closeUAL), last)
	if aa.State() != Unassociated || a.lastErr() != nil {
		t.Fatalf("closer after the late CLOSE_ACK: %v, %v", aa.State(), a.lastErr())
	}
	b.timeout(end.Add(-time.Nanosecond))
	if ba.State() != Closed {
		t.Fatal("CLOSED ended early")
	}
	b.timeout(end)
	if ba.State() != Unassociated || !ba.Deadline().IsZero() {
		t.Fatalf("after UAL+2MSL: %v, timer %v", ba.State(), ba.Deadline())
	}
}

// TestCloseSheds: entering CLOSING or CLOSED drops KEYMAT, the
// Diffie-Hellman keys, the puzzle, the ENCRYPTED keys, the ICE key and the
// I2 digest — nothing a retransmitted CLOSE or CLOSE_ACK needs — while the
// HIP_MAC keys and the peer's identity stay, so both are still answered
// and verified.
func TestCloseSheds(t *testing.T) {
	a, b := established(t)
	aa, ba := a.a(b), b.a(a)
	group := aa.Info().DHGroup
	aa.Close(t0)
	cl := a.collect(aa)[0]
	b.deliver(t0, cl)
	if aa.State() != Closing || ba.State() != Closed {
		t.Fatalf("states %v %v", aa.State(), ba.State())
	}
	for _, x := range []struct {
		name string
		as   *Association
	}{{"closer (CLOSING)", aa}, {"peer (CLOSED)", ba}} {
		as := x.as
		if as.km != nil || as.dh != nil || as.peerDH != nil || as.puzzleI() != nil || as.puzzleJ() != nil ||
			as.encKeys().gl() != nil || as.encKeys().lg() != nil || as.ICEKey() != nil || as.PeerCandidates() != nil ||
			as.lastI2 != ([32]byte{}) || (as.bex != nil && as.bex.lastR2 != nil) {
			t.Errorf("%s keeps keys: km %v dh %v peerDH %v #I %v #J %v enc %v/%v", x.name, as.km != nil, as.dh != nil,
				as.peerDH != nil, as.puzzleI() != nil, as.puzzleJ() != nil, as.encKeys().gl() != nil, as.encKeys().lg() != nil)
		}
		if as.hipMAC.gl() == nil || as.hipMAC.lg() == nil || as.peerPub == nil {
			t.Errorf("%s lost what CLOSE/CLOSE_ACK need", x.name)
		}
		if as.Info().DHGroup != group {
			t.Errorf("%s reports DH group %d, was %d", x.name, as.Info().DHGroup, group)
		}
	}
	// Still answered and verified after shedding.
	now := t0.Add(5 * time.Minute)
	out := b.deliver(now, cl)
	if len(out) != 1 || ptype(out[0]) != wire.CLOSE_ACK {
		t.Fatalf("retransmitted CLOSE after shed: %v", b.lastErr())
	}
	if !b.repeat {
		t.Error("retransmitted CLOSE not reported as a repeat (Result.Repeat)")
	}
	a.deliver(now, out[0])
	if aa.State() != Unassociated || a.lastErr() != nil {
		t.Fatalf("CLOSE_ACK after shed: %v, %v", aa.State(), a.lastErr())
	}
}

// TestCloseForgedReplayedEstablished: a CLOSE with a bad HIP_MAC, and a
// genuine CLOSE of an earlier association between the same hosts
// replayed into a newer ESTABLISHED one, are dropped: no CLOSE_ACK, no
// state change, no event (§6.14: authenticated by HIP_MAC and signature).
func TestCloseForgedReplayedEstablished(t *testing.T) {
	a, b := established(t)
	a.a(b).Close(t0)
	old := a.collect(a.a(b))[0]
	l := &link{}
	l.send(a, b, [][]byte{old})
	l.run(t, t0)
	b.timeout(b.a(a).Deadline())

	now := t0.Add(time.Hour)
	l = &link{}
	l.send(a, b, a.initiate(now, b.e.HIT()))
	l.run(t, now)
	ba := b.a(a)
	ba.DataReceived(now)
	if a.a(b).State() != Established || ba.State() != Established {
		t.Fatalf("second association: %v / %v", a.a(b).State(), ba.State())
	}
	a.events, b.events = nil, nil
	info := ba.Info()

	cp := *a.a(b) // a CLOSE of the current association, from a copy that is not closed
	cp.Close(now)
	fresh := cp.Outgoing()[0]
	for _, c := range []struct {
		name string
		pkt  []byte
	}{
		{"bad HIP_MAC", tamper(t, fresh, wire.ParamHIPMAC, 0)},
		{"bad signature", tamper(t, fresh, wire.ParamHIPSignature, 3)},
		{"previous association's CLOSE", old},
	} {
		if out := b.deliver(now, c.pkt); len(out) != 0 {
			t.Fatalf("%s answered", c.name)
		}
		if b.lastErr() == nil || ba.State() != Established || ba.Info() != info || len(b.events) != 0 {
			t.Fatalf("%s: %v, state %v, events %v", c.name, b.lastErr(), ba.State(), b.events)
		}
	}
}

// TestClosedRecordNotRevived: once CLOSED has expired the association is
// UNASSOCIATED and a CLOSE for it must be dropped (Table 2; §6.14 "If there
// is no corresponding HIP association, the CLOSE packet is dropped"; §6.15
// the state is discarded on UNASSOCIATED). Likewise an exchange restarted
// on the same Association (I1-SENT, Table 3: "Receive ANYOTHER: drop") must
// not be ended by the old association's CLOSE. (Both used to be processed:
// the MAC keys and identity kept by shed outlived CLOSED and handleClose
// did not look at the state, so one recorded CLOSE could be replayed
// forever, each time costing a signed CLOSE_ACK.)
func TestClosedRecordNotRevived(t *testing.T) {
	a, b := established(t)
	a.a(b).Close(t0)
	cl := a.collect(a.a(b))[0]
	b.deliver(t0, cl)
	ba := b.a(a)
	b.timeout(ba.Deadline())
	if ba.State() != Unassociated {
		t.Fatalf("state %v", ba.State())
	}
	b.events = nil
	now := t0.Add(time.Hour)
	if out := b.deliver(now, cl); len(out) != 0 || ba.State() != Unassociated || len(b.events) != 0 {
		t.Errorf("CLOSE in UNASSOCIATED: %d packets, state %v, events %v", len(out), ba.State(), b.events)
	}
	if ba.State() == Closed {
		b.timeout(ba.Deadline())
	}
	ba.Restart(now)
	b.collect(ba)
	if out := b.deliver(now, cl); len(out) != 0 || ba.State() != I1Sent {
		t.Errorf("old CLOSE in I1-SENT: %d packets, state %v", len(out), ba.State())
	}
}
