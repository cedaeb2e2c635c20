package handshake

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// Issue 9, finding 1: a recorded I2 accepted again.
//
// #I is derived from the HIT pair and the R1 generation, and the
// generation's Diffie-Hellman key serves every Initiator (RFC 7401 §6.7.1),
// so a recorded I2 verifies for as long as its generation is accepted. If
// the Responder accepted it again it would install SAs with the SPIs and
// keys of the recorded association and restart its ESP sequence numbers
// under the same key: for AES-GCM a repeated (key, nonce) pair (RFC 4106
// §8.1). The only copy of an accepted I2 the Responder may answer is a
// retransmission while it is in R2-SENT, with the same R2 (§6.9 step 4).

// replayExchange runs a complete base exchange from a to b at now and
// returns the I2 it carried.
func replayExchange(t *testing.T, a, b *host, now time.Time) []byte {
	t.Helper()
	l := &link{}
	l.send(a, b, a.initiate(now, b.e.HIT()))
	l.run(t, now)
	if st := a.a(b).State(); st != Established {
		t.Fatalf("exchange at %v: initiator %v (errors a %v b %v)", now, st, a.errs, b.errs)
	}
	for _, p := range l.seen {
		if ptype(p.b) == wire.I2 {
			return p.b
		}
	}
	t.Fatal("no I2 on the link")
	return nil
}

// replayClose has a close the association with b and b answer (§6.14).
func replayClose(t *testing.T, a, b *host, now time.Time) {
	t.Helper()
	a.a(b).Close(now)
	l := &link{}
	l.send(a, b, a.collect(a.a(b)))
	l.run(t, now)
	if st := b.a(a).State(); st != Closed {
		t.Fatalf("peer after CLOSE: %v", st)
	}
}

func solutionOf(t *testing.T, i2 []byte) wire.Solution {
	t.Helper()
	p, err := wire.ParsePacket(i2)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := p.Param(wire.ParamSolution)
	if !ok {
		t.Fatal("I2 without SOLUTION")
	}
	sol, err := wire.ParseSolution(s.Contents())
	if err != nil {
		t.Fatal(err)
	}
	return sol
}

// TestReplayedI2AfterClose: once the association is closed, the Responder
// keeps no digest of the I2 (shed), but the solution it spent is still
// recorded by its R1 generation. A replay, into the CLOSED association
// (Table 8, "Receive I2, process") or after the association is gone
// (Table 2), is dropped as ErrReplay: no association, no R2, and so no
// EventEstablished that would reinstall the recorded ESP keys.
func TestReplayedI2AfterClose(t *testing.T) {
	a, b := pair(t)
	i2 := replayExchange(t, a, b, t0)
	b.a(a).DataReceived(t0)
	now := t0.Add(time.Second)
	replayClose(t, a, b, now)
	ba := b.a(a)
	before := b.e.Stats()
	b.events = nil

	// Into the CLOSED association.
	now = now.Add(time.Second)
	if out := b.deliver(now, i2); len(out) != 0 {
		t.Fatalf("replayed I2 answered with %v", ptype(out[0]))
	}
	mustErr(t, b.lastErr(), ErrReplay)
	if b.a(a) != ba || ba.State() != Closed {
		t.Fatalf("replayed I2 changed the CLOSED association: %v", ba.State())
	}

	// With no association: the caller forgot it.
	res, err := b.e.Handle(now, i2, nil)
	mustErr(t, err, ErrReplay)
	if res.Assoc != nil || res.Reply != nil {
		t.Fatal("replayed I2 without association created state or was answered")
	}

	// The previous generation is still accepted for I2s (§6.7.1 "Delta
	// S"), and its record with it.
	if err := b.e.Rotate(now); err != nil {
		t.Fatal(err)
	}
	res, err = b.e.Handle(now, i2, nil)
	mustErr(t, err, ErrReplay)
	if res.Assoc != nil || res.Reply != nil {
		t.Fatal("replay into the previous generation created state or was answered")
	}

	if n := len(b.eventsOf(EventEstablished)); n != 0 {
		t.Fatalf("%d EventEstablished after the replays: ESP keys reinstalled", n)
	}
	st := b.e.Stats()
	if st.Replays != before.Replays+3 || st.I2Accepted != before.I2Accepted {
		t.Fatalf("stats before %+v after %+v, want 3 more replays and no I2 accepted", before, st)
	}
}

// TestReplayedI2IntoNewerAssociation: association 1 is closed and a second
// exchange between the same hosts, in the same R1 generation (so with the
// same #I), is ESTABLISHED. Association 1's I2 replayed now must not
// replace association 2 (§6.9 step 20 replaces an association only for a
// genuine new I2): same state, SPIs and keys, no event.
func TestReplayedI2IntoNewerAssociation(t *testing.T) {
	a, b := pair(t)
	i2a := replayExchange(t, a, b, t0)
	b.a(a).DataReceived(t0)
	replayClose(t, a, b, t0.Add(time.Second))

	now := t0.Add(2 * time.Second)
	i2b := replayExchange(t, a, b, now)
	ba := b.a(a)
	ba.DataReceived(now)
	if ba.State() != Established {
		t.Fatalf("association 2 at the Responder: %v", ba.State())
	}
	sa, sb := solutionOf(t, i2a), solutionOf(t, i2b)
	if !bytes.Equal(sa.I, sb.I) || bytes.Equal(sa.J, sb.J) {
		t.Fatal("test premise: both exchanges should answer one #I with different #J")
	}
	info := ba.Info()
	ea, eb := lastEvent(t, a, EventEstablished), lastEvent(t, b, EventEstablished)
	b.events = nil

	now = now.Add(time.Second)
	if out := b.deliver(now, i2a); len(out) != 0 {
		t.Fatalf("replayed I2 answered with %v", ptype(out[0]))
	}
	mustErr(t, b.lastErr(), ErrReplay)
	if b.a(a) != ba || ba.State() != Established || ba.Info() != info {
		t.Fatalf("replay changed association 2: %+v, was %+v", ba.Info(), info)
	}
	if len(b.events) != 0 {
		t.Fatalf("events after the replay: %v", b.events)
	}
	// Association 2's SAs still pair with the Initiator's.
	if eb.Inbound.SPI != info.InSPI || eb.Outbound.SPI != info.OutSPI {
		t.Fatal("association 2's SPIs are not those of its EventEstablished")
	}
	checkSAs(t, ea.Outbound, ea.Inbound, eb.Outbound, eb.Inbound)
}

// TestRetransmittedI2InR2Sent: the exception of §6.9 step 4. While the
// Responder is in R2-SENT, an I2 identical to the one it accepted is a
// retransmission (its R2 was lost) and gets the same R2 — not a replay.
// Another packet with the spent solution is a replay even then.
func TestRetransmittedI2InR2Sent(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	first := b.deliver(t0, i2)
	if len(first) != 1 || ptype(first[0]) != wire.R2 {
		t.Fatalf("genuine I2: %v", b.lastErr())
	}
	ba := b.a(a)
	for i := 1; i <= 3; i++ {
		out := b.deliver(t0.Add(time.Duration(i)*time.Second), i2)
		if len(out) != 1 || !bytes.Equal(out[0], first[0]) {
			t.Fatalf("retransmission %d: %d packets, error %v; want the same R2", i, len(out), b.lastErr())
		}
		if b.lastErr() != nil || b.a(a) != ba || ba.State() != R2Sent {
			t.Fatalf("retransmission %d: %v, state %v", i, b.lastErr(), ba.State())
		}
	}
	if st := b.e.Stats(); st.Replays != 0 || st.I2Accepted != 1 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if n := len(b.eventsOf(EventEstablished)); n != 1 {
		t.Fatalf("%d EventEstablished", n)
	}
	// A different packet with the same solution is no retransmission.
	if out := b.deliver(t0, tamper(t, i2, wire.ParamHIPMAC, 0)); len(out) != 0 {
		t.Fatal("altered copy answered")
	}
	mustErr(t, b.lastErr(), ErrReplay)
	if ba.State() != R2Sent {
		t.Fatalf("state %v", ba.State())
	}
	// The Initiator completes with the retransmitted R2.
	a.deliver(t0, first[0])
	if a.a(b).State() != Established {
		t.Fatalf("initiator: %v", a.lastErr())
	}
}

// TestFullSolutionRecordExpiresGeneration: the record of spent solutions is
// bounded (maxSolutions); the generation that fills it is expired at once
// (NextRotation becomes zero, "rotate now"), so that a full record never has
// to forget a solution while its generation still accepts I2s. There is no
// seam to shrink maxSolutions, so the test fills the real record (2^16
// entries, a few milliseconds).
func TestFullSolutionRecordExpiresGeneration(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	g := b.e.cur
	for i := uint64(0); len(g.sols) < maxSolutions-1; i++ {
		var k solutionKey
		binary.BigEndian.PutUint64(k[:], i)
		g.sols[k] = solutionSpent
	}
	if b.e.NextRotation().IsZero() {
		t.Fatal("generation expired before its record was full")
	}
	if out := b.deliver(t0, i2); len(out) != 1 || ptype(out[0]) != wire.R2 {
		t.Fatalf("genuine I2 with one slot left: %v", b.lastErr())
	}
	if !b.e.NextRotation().IsZero() {
		t.Fatalf("full record: next rotation %v, want zero (now)", b.e.NextRotation())
	}
	// Rotating keeps the full generation as the previous one: a replay is
	// still recognised, by the record, not by luck.
	if err := b.e.Rotate(t0); err != nil {
		t.Fatal(err)
	}
	res, err := b.e.Handle(t0, i2, nil)
	mustErr(t, err, ErrReplay)
	if res.Assoc != nil || res.Reply != nil {
		t.Fatal("replay after the early rotation answered")
	}
}

// TestSolutionFailuresSpendIt: an I2 that fails HIP_MAC or HIP_SIGNATURE
// counts against its solution; a genuine I2 still gets through a few
// forged copies injected ahead of it, but after maxSolutionFailures the
// solution is unusable and dropped before any Diffie-Hellman work (one
// solved puzzle buys a bounded amount of the Responder's work, §4.1.1).
func TestSolutionFailuresSpendIt(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	for i := 0; i < maxSolutionFailures-1; i++ {
		b.deliver(t0, tamper(t, i2, wire.ParamHIPMAC, i))
		mustErr(t, b.lastErr(), ErrBadMAC)
	}
	if out := b.deliver(t0, i2); len(out) != 1 || b.a(a) == nil {
		t.Fatalf("genuine I2 after %d forgeries: %v", maxSolutionFailures-1, b.lastErr())
	}

	a, b = pair(t)
	i2 = i2Of(t, a, b)
	for i := 0; i < maxSolutionFailures; i++ {
		b.deliver(t0, tamper(t, i2, wire.ParamHIPSignature, -1-i))
		mustErr(t, b.lastErr(), ErrBadSignature)
	}
	b.deliver(t0, tamper(t, i2, wire.ParamHIPMAC, 0))
	mustErr(t, b.lastErr(), ErrReplay)
	if out := b.deliver(t0, i2); len(out) != 0 || b.a(a) != nil {
		t.Fatal("solution accepted after it failed maxSolutionFailures times")
	}
	mustErr(t, b.lastErr(), ErrReplay)
}

// TestFullRecordStillBoundsFailures: the failure count must keep bounding
// a solution's tries when the generation's record is full: otherwise a
// record filled with failures (2^16 cheap solutions at a low #K) would let
// every further solution of that generation buy unlimited Diffie-Hellman
// computations until the generation rotates.
func TestFullRecordStillBoundsFailures(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	g := b.e.cur
	for i := uint64(0); len(g.sols) < maxSolutions; i++ {
		var k solutionKey
		binary.BigEndian.PutUint64(k[:], i)
		g.sols[k] = 1 // one failed I2 each
	}
	for i := 0; i < maxSolutionFailures; i++ {
		b.deliver(t0, tamper(t, i2, wire.ParamHIPMAC, i))
	}
	b.deliver(t0, tamper(t, i2, wire.ParamHIPMAC, maxSolutionFailures))
	if !errors.Is(b.lastErr(), ErrReplay) && !b.e.NextRotation().IsZero() {
		t.Fatalf("full record: try %d of one solution still costs a Diffie-Hellman (%v), generation not expired",
			maxSolutionFailures+1, b.lastErr())
	}
}
