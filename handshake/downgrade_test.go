package handshake

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Issue 9, finding 3: Diffie-Hellman downgrade.
//
// The I1's DH_GROUP_LIST is not protected (I1 carries no signature), so an
// attacker can trim it to a weak group. RFC 7401 §4.1.7 and §5.2.6 make
// the R1's DH_GROUP_LIST, which is signed, the Responder's own preference
// list: the Initiator checks that the Responder chose the first group of
// that list that its I1 offered (§6.8 step 7), and otherwise answers
// INVALID_DH_CHOSEN. A Responder that rewrote its list to start with the
// group it chose hid the trimming.

// dhGroupsOf returns the groups of pkt's DH_GROUP_LIST.
func dhGroupsOf(t *testing.T, pkt []byte) []uint8 {
	t.Helper()
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	q, ok := p.Param(wire.ParamDHGroupList)
	if !ok {
		t.Fatalf("%v without DH_GROUP_LIST", p.Type())
	}
	l, err := wire.ParseDHGroupList(q.Contents())
	if err != nil {
		t.Fatal(err)
	}
	return append([]uint8(nil), l.Groups...)
}

func dhGroupOf(t *testing.T, pkt []byte) uint8 {
	t.Helper()
	p, _ := wire.ParsePacket(pkt)
	q, ok := p.Param(wire.ParamDiffieHellman)
	if !ok {
		t.Fatalf("%v without DIFFIE_HELLMAN", p.Type())
	}
	dh, err := wire.ParseDiffieHellman(q.Contents())
	if err != nil {
		t.Fatal(err)
	}
	return dh.Group
}

// rewriteI1Groups rebuilds an I1 with its DH_GROUP_LIST (type 511)
// replaced by groups and every other parameter kept. The harness carries
// HIP over UDP, where the checksum is zero (RFC 5770 §5.1), and an I1 has
// no MAC or signature: the rewritten packet is as valid as the original.
func rewriteI1Groups(t *testing.T, i1 []byte, groups ...uint8) []byte {
	t.Helper()
	p, err := wire.ParsePacket(i1)
	if err != nil {
		t.Fatal(err)
	}
	var b wire.Builder
	b.Reset(nil, wire.I1, p.SenderHIT(), p.ReceiverHIT())
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		if q.Type() == wire.ParamDHGroupList {
			b.Add(wire.DHGroupList{Groups: groups})
		} else {
			b.AddParam(q)
		}
	}
	raw, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), raw...)
}

// notifyTypesOn lists the NOTIFICATION types of the NOTIFYs from h.
func notifyTypesOn(l *link, from *host) []wire.NotifyType {
	var got []wire.NotifyType
	for _, p := range l.seen {
		if p.from != from || ptype(p.b) != wire.NOTIFY {
			continue
		}
		pk, _ := wire.ParsePacket(p.b)
		n, _ := pk.Param(wire.ParamNotification)
		got = append(got, wire.NotifyType(binary.BigEndian.Uint16(n.Contents()[2:])))
	}
	return got
}

// TestDowngradeTrimmedI1: both hosts prefer P-256 and also offer MODP-1536
// (group 3). On the way, the I1's list is trimmed to group 3 only; the
// Responder, seeing only that, picks it, and its R1 carries its true signed
// list [7 8 3]. The Initiator detects that 7 should have been chosen: it
// drops the R1 and sends no I2; with every I1 trimmed, its exchange times
// out with ErrDowngrade as the cause.
func TestDowngradeTrimmedI1(t *testing.T) {
	a, b := pair(t)
	rewritten := false
	l := &link{filter: func(p packet) []byte {
		if ptype(p.b) == wire.I1 {
			rewritten = true
			return rewriteI1Groups(t, p.b, wire.DHGroupMODP1536)
		}
		return p.b
	}}
	l.send(a, b, a.initiate(t0, b.e.HIT()))
	l.run(t, t0)
	if !rewritten {
		t.Fatal("no I1 on the link")
	}
	var r1 []byte
	for _, p := range l.seen {
		switch ptype(p.b) {
		case wire.R1:
			r1 = p.b
		case wire.I2:
			t.Fatal("the Initiator answered the downgraded R1 with an I2")
		}
	}
	if r1 == nil || dhGroupOf(t, r1) != wire.DHGroupMODP1536 {
		t.Fatal("test premise: the Responder should have picked group 3 for the trimmed I1")
	}
	if got := dhGroupsOf(t, r1); !bytes.Equal(got, []uint8{wire.DHGroupP256, wire.DHGroupP384, wire.DHGroupMODP1536}) {
		t.Fatalf("R1 DH_GROUP_LIST %v, want the Responder's preference [7 8 3]", got)
	}
	refusedUntilTimeout(t, a, b, l, ErrDowngrade)
	if b.a(a) != nil || len(b.eventsOf(EventEstablished)) != 0 {
		t.Fatal("the Responder has an association")
	}
}

// refusedUntilTimeout checks what an Initiator does with R1s it refuses
// after their signature verified (§6.8 step 7): it drops each (want),
// sends no I2 and no NOTIFY, and waits for an R1 it can use, its I1
// retransmitted, until its exchange times out with want as the cause.
// One R1, which anyone can replay to it, does not end the exchange.
func refusedUntilTimeout(t *testing.T, a, b *host, l *link, want error) {
	t.Helper()
	aa := a.a(b)
	if aa.State() != I1Sent || !errors.Is(a.lastErr(), want) {
		t.Fatalf("Initiator after the R1: %v, %v; want I1-SENT and %v", aa.State(), a.lastErr(), want)
	}
	for i := 0; i < 50 && aa.State() == I1Sent; i++ {
		now := aa.Deadline()
		l.send(a, b, a.timeout(now))
		l.run(t, now)
	}
	ev := a.eventsOf(EventFailed)
	if aa.State() != EFailed || len(ev) != 1 || !errors.Is(ev[0].Err, ErrTimeout) || !errors.Is(ev[0].Err, want) {
		t.Fatalf("state %v, failure events %v; want a timeout caused by %v", aa.State(), ev, want)
	}
	for _, p := range l.seen {
		if p.from == a && (ptype(p.b) == wire.I2 || ptype(p.b) == wire.NOTIFY) {
			t.Fatalf("the Initiator sent %v", ptype(p.b))
		}
	}
}

// TestDowngradeListSigned: the R1's DH_GROUP_LIST is inside HIP_SIGNATURE_2
// (§5.2.15), so an attacker cannot also rewrite it to match the trimmed I1.
func TestDowngradeListSigned(t *testing.T) {
	a, b := pair(t)
	r1 := b.deliver(t0, rewriteI1Groups(t, a.initiate(t0, b.e.HIT())[0], wire.DHGroupMODP1536))[0]
	p, _ := wire.ParsePacket(r1)
	q, _ := p.Param(wire.ParamDHGroupList)
	forged := append([]byte(nil), r1...)
	copy(forged[q.Offset()+4:], []uint8{wire.DHGroupMODP1536, wire.DHGroupP384, wire.DHGroupP256})
	if out := a.deliver(t0, forged); len(out) != 0 {
		t.Fatal("R1 with a rewritten DH_GROUP_LIST answered")
	}
	mustErr(t, a.lastErr(), ErrBadSignature)
	if a.a(b).State() != I1Sent {
		t.Fatalf("state %v", a.a(b).State())
	}
}

// TestDHPreferenceVerbatim: Responder [8 7 3], Initiator [7 3]: the first
// group of the Responder's list that the I1 offers is 7, the exchange uses
// it, and R1 carries [8 7 3] exactly as configured, not reordered.
func TestDHPreferenceVerbatim(t *testing.T) {
	ca, cb := defaultCfg(testKey(t, hostid.ECDSAP256, 0)), defaultCfg(testKey(t, hostid.ECDSAP256, 1))
	ca.DHGroups = []uint8{wire.DHGroupP256, wire.DHGroupMODP1536}
	cb.DHGroups = []uint8{wire.DHGroupP384, wire.DHGroupP256, wire.DHGroupMODP1536}
	a, b := newHost(t, "a", ca), newHost(t, "b", cb)
	l := bex(t, a, b)
	if a.a(b).State() != Established {
		t.Fatalf("state %v (errors a %v b %v)", a.a(b).State(), a.errs, b.errs)
	}
	r1 := l.seen[1].b
	if got := dhGroupsOf(t, r1); !bytes.Equal(got, cb.DHGroups) {
		t.Fatalf("R1 DH_GROUP_LIST %v, want %v verbatim", got, cb.DHGroups)
	}
	if g := dhGroupOf(t, r1); g != wire.DHGroupP256 {
		t.Fatalf("R1 DIFFIE_HELLMAN group %d, want 7", g)
	}
	if ia, ib := a.a(b).Info(), b.a(a).Info(); ia.DHGroup != wire.DHGroupP256 || ib.DHGroup != wire.DHGroupP256 {
		t.Fatalf("negotiated groups %d / %d", ia.DHGroup, ib.DHGroup)
	}
	if len(notifyTypesOn(l, a)) != 0 {
		t.Fatal("NOTIFY in an honest exchange")
	}
}

// TestDHNothingShared: when the I1 lists none of the Responder's groups the
// Responder answers with its first (§6.7 step 4) and the Initiator, which
// cannot use it, drops it; its exchange times out with ErrNoCommonDHGroup
// as the cause (§6.8 step 7) — not a downgrade.
func TestDHNothingShared(t *testing.T) {
	ca, cb := defaultCfg(testKey(t, hostid.ECDSAP256, 0)), defaultCfg(testKey(t, hostid.ECDSAP256, 1))
	ca.DHGroups = []uint8{wire.DHGroupP256, wire.DHGroupMODP1536}
	cb.DHGroups = []uint8{wire.DHGroupP384, wire.DHGroupMODP3072}
	a, b := newHost(t, "a", ca), newHost(t, "b", cb)
	l := bex(t, a, b)
	r1 := l.seen[1].b
	if g := dhGroupOf(t, r1); g != wire.DHGroupP384 {
		t.Fatalf("R1 DIFFIE_HELLMAN group %d, want the Responder's first, 8", g)
	}
	refusedUntilTimeout(t, a, b, l, ErrNoCommonDHGroup)
	if errors.Is(a.eventsOf(EventFailed)[0].Err, ErrDowngrade) {
		t.Fatal("nothing shared taken for a downgrade")
	}
}

// TestReplayedR1DoesNotAbort: R1s are signed without the Initiator's HIT
// and #I, so anyone can have the Responder answer an I1 of their own,
// with a group list of their choice, and send us the R1. Such an R1,
// arriving before the Responder's answer to our I1, is dropped; the
// genuine R1 then completes the exchange. Before, the first R1 ended it
// as a downgrade.
func TestReplayedR1DoesNotAbort(t *testing.T) {
	a, b := pair(t)
	i1 := a.initiate(t0, b.e.HIT())[0]
	replayed := b.deliver(t0, rewriteI1Groups(t, i1, wire.DHGroupMODP1536))[0]
	genuine := b.deliver(t0, i1)[0]
	if out := a.deliver(t0, replayed); len(out) != 0 || !errors.Is(a.lastErr(), ErrDowngrade) {
		t.Fatalf("replayed R1 answered with %d packets (%v)", len(out), a.lastErr())
	}
	i2 := a.deliver(t0, genuine)
	if len(i2) != 1 || ptype(i2[0]) != wire.I2 {
		t.Fatalf("genuine R1: %v", a.lastErr())
	}
	a.deliver(t0, b.deliver(t0, i2[0])[0])
	if st := a.a(b).State(); st != Established {
		t.Fatalf("state %v (%v)", st, a.lastErr())
	}
}
