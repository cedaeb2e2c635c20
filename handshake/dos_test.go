package handshake

import (
	"errors"
	"math/big"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// Regression tests from the security review of the issue 9 work: each
// failed before its fix.

// rebuildI2NoHostID re-emits i2 without HOST_ID (and without MAC and
// signature), then adds a HIP_MAC that verifies under the Initiator's
// key: what any sender that chose its own DH key can do.
func rebuildI2NoHostID(t *testing.T, i2 []byte, a *Association) []byte {
	t.Helper()
	p, err := wire.ParsePacket(i2)
	if err != nil {
		t.Fatal(err)
	}
	var b wire.Builder
	b.Reset(nil, wire.I2, p.SenderHIT(), p.ReceiverHIT())
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		switch q.Type() {
		case wire.ParamHostID, wire.ParamHIPMAC, wire.ParamHIPSignature:
			continue
		}
		b.AddParam(q)
	}
	if err := addMAC(&b, a.rhash, a.ourMACKey()); err != nil {
		t.Fatal(err)
	}
	out, err := finish(&b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// chargedAfter delivers forged n times and requires that it is refused as
// a replay, before any Diffie-Hellman work, from the try after
// maxSolutionFailures on.
func chargedAfter(t *testing.T, b *host, forged []byte) {
	t.Helper()
	for i := 0; i < 20; i++ {
		before := b.e.load.count
		_, err := b.e.Handle(t0, forged, nil)
		if err == nil {
			t.Fatal("forged I2 accepted")
		}
		if i < maxSolutionFailures {
			if errors.Is(err, ErrReplay) {
				t.Fatalf("try %d refused as a replay already: %v", i, err)
			}
			continue
		}
		if !errors.Is(err, ErrReplay) || b.e.load.count != before {
			t.Fatalf("try %d: %v, Diffie-Hellman work %d: one solution must buy at most %d", i, err, b.e.load.count-before, maxSolutionFailures)
		}
	}
}

// TestSolutionChargedWhateverFails: an I2 whose HIP_MAC verifies (its
// sender chose its own DH key) but whose HOST_ID is missing fails after
// the Diffie-Hellman work, before the signature; it is charged to its
// solution all the same, so one solved puzzle buys at most
// maxSolutionFailures such computations (§4.1.1).
func TestSolutionChargedWhateverFails(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	chargedAfter(t, b, rebuildI2NoHostID(t, i2, a.a(b)))
}

// TestSolutionChargedBadMODP: the same through the DH step itself: a MODP
// public value that fails the RFC 2785 check costs a full 1536-bit
// exponentiation, and is charged too.
func TestSolutionChargedBadMODP(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	b.e.r1For(t0, a.e.HIT(), []byte{wire.DHGroupMODP1536}) // an I1 asking for group 3 builds its R1
	g := lookupGroup(wire.DHGroupMODP1536).(*modpGroup)
	y := new(big.Int).Sub(g.p, big.NewInt(2)).FillBytes(make([]byte, g.len))
	p, _ := wire.ParsePacket(i2)
	var bl wire.Builder
	bl.Reset(nil, wire.I2, p.SenderHIT(), p.ReceiverHIT())
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		if q.Type() == wire.ParamDiffieHellman {
			bl.Add(wire.DiffieHellman{Group: wire.DHGroupMODP1536, Public: y})
			continue
		}
		bl.AddParam(q)
	}
	forged, err := bl.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	chargedAfter(t, b, forged)
}

// TestClosedReplayRateLimited: a recorded CLOSE replayed into CLOSED,
// which lasts UAL+2MSL, is answered with the cached CLOSE_ACK at most once
// a retransmission timeout, not with a fresh signature for every copy.
func TestClosedReplayRateLimited(t *testing.T) {
	a, b := established(t)
	aa := a.a(b)
	aa.Close(t0)
	cl := a.collect(aa)[0]
	first := b.deliver(t0, cl)
	if len(first) != 1 || ptype(first[0]) != wire.CLOSE_ACK {
		t.Fatalf("CLOSE answered with %d packets", len(first))
	}
	answered := 0
	for i := 1; i <= 200; i++ { // 200 copies in 200 ms
		out := b.deliver(t0.Add(time.Duration(i)*time.Millisecond), cl)
		answered += len(out)
		for _, o := range out {
			if string(o) != string(first[0]) {
				t.Fatal("a replayed CLOSE was answered with a new CLOSE_ACK, not the cached one")
			}
		}
	}
	if answered > 0 {
		t.Fatalf("%d copies within the retransmission timeout answered", answered)
	}
	// After the timeout, a retransmission is answered again (Table 8).
	if out := b.deliver(t0.Add(2*time.Second), cl); len(out) != 1 {
		t.Fatalf("retransmitted CLOSE after the timeout answered with %d packets", len(out))
	}
}

// TestR1DoesNotReviveClosed: an R1 solicited by someone else (an I1 with
// our HIT, which the peer answers statelessly) and injected into a CLOSED
// association does not restart the exchange that was closed.
func TestR1DoesNotReviveClosed(t *testing.T) {
	a, b := established(t)
	ba := b.a(a)
	ba.Close(t0)
	cl := b.collect(ba)[0]
	ack := a.deliver(t0, cl)
	b.deliver(t0, ack[0])
	aa := a.a(b)
	if aa.State() != Closed {
		t.Fatalf("a: %v", aa.State())
	}
	var ib wire.Builder
	ib.Reset(nil, wire.I1, a.e.HIT(), b.e.HIT())
	ib.Add(wire.DHGroupList{Groups: []uint8{wire.DHGroupP256}})
	i1, _ := ib.Bytes()
	now := t0.Add(time.Minute)
	res, err := b.e.Handle(now, i1, nil)
	if err != nil || res.Reply == nil {
		t.Fatal(err)
	}
	out := a.deliver(now, res.Reply)
	mustErr(t, a.lastErr(), ErrUnexpected)
	if aa.State() != Closed || len(out) != 0 {
		t.Fatalf("injected R1: a %v, sent %d packets", aa.State(), len(out))
	}
}

// TestLoadKeepsManualBase: the load returns #K to what the caller set with
// SetPuzzleDifficulty, not below it to Config's.
func TestLoadKeepsManualBase(t *testing.T) {
	a, b := hardPair(t, 12)
	bex(t, a, b) // one I2 reaches DH: the meter starts
	now := t0
	for i := 0; i < 100 && !b.e.LoadDeadline().IsZero(); i++ {
		now = b.e.LoadDeadline()
		b.e.HandleLoad(now)
	}
	if k := b.e.PuzzleDifficulty(); k != 12 {
		t.Fatalf("SetPuzzleDifficulty(12) undone by the load after %v of calm: #K %d", now.Sub(t0), k)
	}
}
