package handshake

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// tamper returns a copy of pkt with one octet of parameter typ's contents
// flipped at index i (negative: from the end).
func tamper(t *testing.T, pkt []byte, typ wire.ParamType, i int) []byte {
	t.Helper()
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	par, ok := p.Param(typ)
	if !ok {
		t.Fatalf("%v has no %v", p.Type(), typ)
	}
	c := par.Contents()
	if i < 0 {
		i += len(c)
	}
	out := append([]byte(nil), pkt...)
	out[par.Offset()+4+i] ^= 0x01
	return out
}

// i2Of runs I1/R1 and returns the I2 that a produced, undelivered.
func i2Of(t *testing.T, a, b *host) []byte {
	t.Helper()
	var i2 []byte
	l := &link{filter: func(p packet) []byte {
		if ptype(p.b) == wire.I2 {
			i2 = p.b
			return nil
		}
		return p.b
	}}
	l.send(a, b, a.initiate(t0, b.e.HIT()))
	l.run(t, t0)
	if i2 == nil {
		t.Fatal("no I2")
	}
	return i2
}

func pair(t *testing.T) (*host, *host) {
	return newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0))),
		newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
}

// TestI2Rejections: each forged or stale I2 is dropped with the reason,
// creates no state, and the genuine I2 still works afterwards.
func TestI2Rejections(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	// A #J that does not solve the puzzle (at #K=1 half of them do).
	wrongJ := append([]byte(nil), i2...)
	{
		p, _ := wire.ParsePacket(wrongJ)
		s, _ := p.Param(wire.ParamSolution)
		c := s.Contents()
		n := (len(c) - 4) / 2
		for verifyPuzzle(b.e.rhash, c[4:4+n], a.e.HIT(), b.e.HIT(), c[4+n:], int(c[0])) {
			c[4+n]++
		}
	}
	cases := []struct {
		name string
		pkt  []byte
		want error
	}{
		{"wrong solution", wrongJ, ErrBadPuzzle},
		{"wrong #I", tamper(t, i2, wire.ParamSolution, 5), ErrBadPuzzle},
		{"bad HMAC", tamper(t, i2, wire.ParamHIPMAC, 0), ErrBadMAC},
		{"bad signature", tamper(t, i2, wire.ParamHIPSignature, -1), ErrBadSignature},
		{"signed content changed", tamper(t, i2, wire.ParamESPInfo, 11), ErrBadMAC},
		{"truncated", i2[:len(i2)-9], ErrMalformed},
	}
	for _, c := range cases {
		out := b.deliver(t0, c.pkt)
		if !errors.Is(b.lastErr(), c.want) {
			t.Errorf("%s: error %v, want %v", c.name, b.lastErr(), c.want)
		}
		if len(out) != 0 || b.a(a) != nil {
			t.Errorf("%s: created state or answered", c.name)
		}
	}
	if b.e.Stats().Dropped != uint64(len(cases)) {
		t.Errorf("dropped %d, want %d", b.e.Stats().Dropped, len(cases))
	}
	if out := b.deliver(t0, i2); len(out) != 1 || b.a(a) == nil {
		t.Fatalf("genuine I2 rejected: %v", b.lastErr())
	}
}

// TestExpiredPuzzle: an I2 answering an R1 two generations old is stale.
func TestExpiredPuzzle(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	now := t0.Add(time.Minute)
	if err := b.e.Rotate(now); err != nil {
		t.Fatal(err)
	}
	// One generation back is still accepted (Delta S, §6.7.1) ...
	b2 := *b.e
	if _, err := b2.Handle(now, i2, nil); err != nil {
		t.Fatalf("previous generation rejected: %v", err)
	}
	// ... two are not.
	if err := b.e.Rotate(now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	b.deliver(now, i2)
	mustErr(t, b.lastErr(), ErrPuzzleExpired)
	if b.a(a) != nil {
		t.Fatal("state created")
	}
}

// TestR1Rejections: a forged R1 is dropped and the Initiator keeps waiting.
func TestR1Rejections(t *testing.T) {
	a, b := pair(t)
	r1 := b.deliver(t0, a.initiate(t0, b.e.HIT())[0])[0]
	for _, c := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"bad HIP_SIGNATURE_2", tamper(t, r1, wire.ParamHIPSignature2, -1), ErrBadSignature},
		{"signed DH changed", tamper(t, r1, wire.ParamDiffieHellman, 5), ErrBadSignature},
		{"HOST_ID of another host", tamper(t, r1, wire.ParamHostID, -1), ErrHITMismatch},
	} {
		if out := a.deliver(t0, c.pkt); len(out) != 0 {
			t.Errorf("%s: answered", c.name)
		}
		if !errors.Is(a.lastErr(), c.want) && !errors.Is(a.lastErr(), ErrMalformed) {
			t.Errorf("%s: %v, want %v", c.name, a.lastErr(), c.want)
		}
		if a.a(b).State() != I1Sent {
			t.Errorf("%s: state %v", c.name, a.a(b).State())
		}
	}
	// #I and Opaque are outside the signature (§5.2.15): changing them
	// still verifies, and the Responder then rejects the solution.
	forged := tamper(t, r1, wire.ParamPuzzle, 6)
	out := a.deliver(t0, forged)
	if len(out) != 1 || ptype(out[0]) != wire.I2 {
		t.Fatalf("R1 with other #I not answered: %v", a.lastErr())
	}
	b.deliver(t0, out[0])
	mustErr(t, b.lastErr(), ErrBadPuzzle)
}

// TestBadR2: a forged R2 leaves the Initiator in I2-SENT.
func TestBadR2(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	r2 := b.deliver(t0, i2)[0]
	for _, typ := range []wire.ParamType{wire.ParamHIPMAC2, wire.ParamHIPSignature} {
		a.deliver(t0, tamper(t, r2, typ, -1))
		if a.a(b).State() != I2Sent || a.lastErr() == nil {
			t.Fatalf("tampered %v accepted", typ)
		}
	}
	a.deliver(t0, r2)
	if a.a(b).State() != Established {
		t.Fatalf("genuine R2: %v", a.lastErr())
	}
	// A second R2 is dropped.
	a.deliver(t0, r2)
	mustErr(t, a.lastErr(), ErrUnexpected)
}

func expectFailure(t *testing.T, a, b *host, want error, notify wire.NotifyType) {
	t.Helper()
	l := bex(t, a, b)
	aa := a.a(b)
	if aa.State() != EFailed {
		t.Fatalf("state %v", aa.State())
	}
	ev := a.eventsOf(EventFailed)
	if len(ev) != 1 || !errors.Is(ev[0].Err, want) {
		t.Fatalf("failure events %v, want %v", a.events, want)
	}
	var got []wire.NotifyType
	for _, p := range l.seen {
		if ptype(p.b) != wire.NOTIFY {
			continue
		}
		pk, _ := wire.ParsePacket(p.b)
		n, _ := pk.Param(wire.ParamNotification)
		got = append(got, wire.NotifyType(binary.BigEndian.Uint16(n.Contents()[2:])))
	}
	if len(got) != 1 || got[0] != notify {
		t.Fatalf("NOTIFY %v, want %v", got, notify)
	}
	if !aa.Deadline().IsZero() {
		a.timeout(aa.Deadline())
	}
	if aa.State() != Unassociated || len(aa.Outgoing()) != 0 {
		t.Fatal("failed association did not expire quietly")
	}
}

func TestNoCommonDHGroup(t *testing.T) {
	ca, cb := defaultCfg(testKey(t, hostid.ECDSAP256, 0)), defaultCfg(testKey(t, hostid.ECDSAP256, 1))
	ca.DHGroups, cb.DHGroups = []uint8{wire.DHGroupP384}, []uint8{wire.DHGroupP256}
	a, b := newHost(t, "a", ca), newHost(t, "b", cb)
	refusedUntilTimeout(t, a, b, bex(t, a, b), ErrNoCommonDHGroup)
}

func TestNoCommonESPSuite(t *testing.T) {
	ca, cb := defaultCfg(testKey(t, hostid.ECDSAP256, 0)), defaultCfg(testKey(t, hostid.ECDSAP256, 1))
	ca.ESPSuites, cb.ESPSuites = []esp.Suite{esp.SuiteAES128CBCSHA256}, []esp.Suite{esp.SuiteAESGCM16}
	expectFailure(t, newHost(t, "a", ca), newHost(t, "b", cb), ErrNoCommonESPSuite, wire.NotifyNoESPProposalChosen)
}

func TestNoCommonCipher(t *testing.T) {
	ca, cb := defaultCfg(testKey(t, hostid.ECDSAP256, 0)), defaultCfg(testKey(t, hostid.ECDSAP256, 1))
	ca.HIPCiphers, cb.HIPCiphers = []uint16{wire.CipherAES256CBC}, []uint16{wire.CipherAES128CBC}
	expectFailure(t, newHost(t, "a", ca), newHost(t, "b", cb), ErrNoCommonCipher, wire.NotifyNoHIPProposalChosen)
}

// TestUnknownHITSuite: the Responder does not accept the Initiator's HIT
// suite (ECDSA), or the Initiator does not accept the Responder's (RSA).
func TestUnknownHITSuite(t *testing.T) {
	ca, cb := defaultCfg(testKey(t, hostid.ECDSAP256, 0)), defaultCfg(testKey(t, hostid.RSA2048, 0))
	cb.HITSuites = []hostid.Suite{hostid.SuiteRSADSASHA256}
	expectFailure(t, newHost(t, "a", ca), newHost(t, "b", cb), ErrUnsupportedHITSuite, wire.NotifyUnsupportedHITSuite)

	ca, cb = defaultCfg(testKey(t, hostid.ECDSAP256, 0)), defaultCfg(testKey(t, hostid.RSA2048, 0))
	ca.HITSuites = []hostid.Suite{hostid.SuiteECDSASHA384}
	expectFailure(t, newHost(t, "a", ca), newHost(t, "b", cb), ErrUnsupportedHITSuite, wire.NotifyUnsupportedHITSuite)

	// The Responder silently drops an I2 from an unaccepted suite.
	a, b := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0))), newHost(t, "b", defaultCfg(testKey(t, hostid.RSA2048, 0)))
	i2 := i2Of(t, a, b)
	b.e.cfg.HITSuites = []hostid.Suite{hostid.SuiteRSADSASHA256}
	if out := b.deliver(t0, i2); len(out) != 0 {
		t.Fatal("answered")
	}
	mustErr(t, b.lastErr(), ErrUnsupportedHITSuite)
}

// TestResponderRejectsUnofferedESP: an Initiator that picks an ESP suite
// the Responder did not offer gets a NOTIFY and fails at once.
func TestResponderRejectsUnofferedESP(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	b.e.cfg.ESPSuites = []esp.Suite{esp.SuiteAES128CBCSHA256} // policy changed since R1
	out := b.deliver(t0, i2)
	mustErr(t, b.lastErr(), ErrNoCommonESPSuite)
	if len(out) != 1 || ptype(out[0]) != wire.NOTIFY || b.a(a) != nil {
		t.Fatalf("expected one NOTIFY and no state, got %d packets", len(out))
	}
	a.deliver(t0, out[0])
	if a.a(b).State() != EFailed {
		t.Fatalf("initiator after NOTIFY: %v (%v)", a.a(b).State(), a.lastErr())
	}
	var ne *NotifyError
	if ev := a.eventsOf(EventFailed); len(ev) != 1 || !errors.As(ev[0].Err, &ne) || ne.Type != wire.NotifyInvalidESPTransformChosen {
		t.Fatalf("events %v", a.events)
	}
}

// TestUnknownCriticalParameter: a critical parameter we do not know
// makes the packet rejected (§5.2.1); a non-critical one is ignored.
func TestUnknownCriticalParameter(t *testing.T) {
	a, b := pair(t)
	i1 := a.initiate(t0, b.e.HIT())[0]
	withParam := func(typ wire.ParamType) []byte {
		p, _ := wire.ParsePacket(i1)
		var bl wire.Builder
		bl.Reset(nil, wire.I1, p.SenderHIT(), p.ReceiverHIT())
		it := p.Params()
		for q, ok := it.Next(); ok; q, ok = it.Next() {
			bl.AddParam(q)
		}
		bl.AddRaw(typ, []byte{1, 2, 3})
		raw, _ := bl.Bytes()
		return raw
	}
	if out := b.deliver(t0, withParam(4097)); len(out) != 0 {
		t.Fatal("critical unknown parameter accepted")
	}
	mustErr(t, b.lastErr(), ErrUnsupportedCritical)
	if out := b.deliver(t0, withParam(4096)); len(out) != 1 {
		t.Fatalf("non-critical unknown parameter rejected: %v", b.lastErr())
	}
}

func TestPuzzleDifficulty(t *testing.T) {
	a, b := pair(t)
	if err := b.e.SetPuzzleDifficulty(t0, 12); err != nil {
		t.Fatal(err)
	}
	l := bex(t, a, b)
	p, _ := wire.ParsePacket(l.seen[1].b)
	pz, _ := p.Param(wire.ParamPuzzle)
	if pz.Contents()[0] != 12 {
		t.Fatalf("R1 #K %d", pz.Contents()[0])
	}
	if a.a(b).State() != Established {
		t.Fatal("exchange with #K=12 failed")
	}
	// An Initiator refuses puzzles above its limit.
	c := newHost(t, "c", Config{Identity: testKey(t, hostid.ECDSAP256, 2), MaxPuzzleDifficulty: 8})
	bex(t, c, b)
	if st := c.a(b).State(); st != EFailed {
		t.Fatalf("too hard a puzzle: %v", st)
	}
	mustErr(t, c.eventsOf(EventFailed)[0].Err, ErrBadPuzzle)
}

// TestI1Stateless: answering an I1 creates no state and needs no
// signature; R1s for different Initiators differ only in HIT and #I.
func TestI1Stateless(t *testing.T) {
	_, b := pair(t)
	rot := b.e.Stats().R1Rotations
	hits := []wire.HIT{testKey(t, hostid.ECDSAP256, 0).HIT(), testKey(t, hostid.ECDSAP256, 2).HIT()}
	var r1s [][]byte
	for _, h := range hits {
		var bl wire.Builder
		bl.Reset(nil, wire.I1, h, b.e.HIT())
		bl.Add(wire.DHGroupList{Groups: []uint8{wire.DHGroupP256}})
		raw, _ := bl.Bytes()
		res, err := b.e.Handle(t0, raw, nil)
		if err != nil || res.Assoc != nil || res.Reply == nil {
			t.Fatalf("I1: %v %v", err, res)
		}
		r1s = append(r1s, res.Reply)
	}
	if b.e.Stats().R1Rotations != rot {
		t.Fatal("an I1 caused signing")
	}
	if len(r1s[0]) != len(r1s[1]) || string(r1s[0][24:40]) == string(r1s[1][24:40]) {
		t.Fatal("R1s not personalised")
	}
	// An I1 for another host is dropped.
	var bl wire.Builder
	bl.Reset(nil, wire.I1, hits[0], hits[1])
	raw, _ := bl.Bytes()
	_, err := b.e.Handle(t0, raw, nil)
	mustErr(t, err, ErrNotForUs)
}
