package handshake

import (
	"fmt"
	"testing"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

func TestBaseExchange(t *testing.T) {
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
	l := bex(t, a, b)

	var types []wire.PacketType
	for _, p := range l.seen {
		types = append(types, ptype(p.b))
	}
	if fmt.Sprint(types) != fmt.Sprint([]wire.PacketType{wire.I1, wire.R1, wire.I2, wire.R2}) {
		t.Fatalf("packets %v", types)
	}
	for _, h := range []*host{a, b} {
		for i, err := range h.errs {
			if err != nil {
				t.Fatalf("%s: packet %d: %v", h.name, i, err)
			}
		}
	}
	aa, ba := a.a(b), b.a(a)
	if aa.State() != Established || ba.State() != R2Sent {
		t.Fatalf("states %v / %v", aa.State(), ba.State())
	}
	if !aa.PeerIdentity().Equal(b.e.Identity()) || !ba.PeerIdentity().Equal(a.e.Identity()) {
		t.Fatal("peer identities not learnt")
	}
	ea, eb := a.eventsOf(EventEstablished), b.eventsOf(EventEstablished)
	if len(ea) != 1 || len(eb) != 1 || len(a.eventsOf(EventInboundSA)) != 1 {
		t.Fatalf("events a %v b %v", a.events, b.events)
	}
	if a.eventsOf(EventInboundSA)[0].Inbound.SPI != ea[0].Inbound.SPI {
		t.Fatal("early inbound SA differs from the established one")
	}
	checkSAs(t, ea[0].Outbound, ea[0].Inbound, eb[0].Outbound, eb[0].Inbound)
	ia, ib := aa.Info(), ba.Info()
	if ia.ESPSuite != esp.SuiteAESGCM16 || ia.DHGroup != wire.DHGroupP256 || ia.HIPCipher != wire.CipherAES128CBC ||
		ia.HITSuite != hostid.SuiteECDSASHA384 || ib.ESPSuite != ia.ESPSuite || !ia.Initiator || ib.Initiator {
		t.Fatalf("negotiated %+v / %+v", ia, ib)
	}

	// R2-SENT ends with data, or with the timer.
	ba.DataReceived(t0.Add(time.Millisecond))
	if ba.State() != Established {
		t.Fatalf("responder after data: %v", ba.State())
	}
	if d := aa.Deadline(); !d.IsZero() {
		t.Fatalf("initiator still has a timer at %v", d)
	}
}

func TestResponderR2SentTimer(t *testing.T) {
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
	bex(t, a, b)
	ba := b.a(a)
	d := ba.Deadline()
	if d.IsZero() {
		t.Fatal("no R2-SENT timer")
	}
	b.timeout(d.Add(-time.Nanosecond))
	if ba.State() != R2Sent {
		t.Fatal("left R2-SENT early")
	}
	b.timeout(d)
	if ba.State() != Established {
		t.Fatalf("after timer: %v", ba.State())
	}
}

// TestNegotiation runs the exchange over every identity type, DH group,
// HIP cipher and ESP suite, in the clear and with ENCRYPTED HOST_ID.
func TestNegotiation(t *testing.T) {
	cases := []struct {
		ka, kb  hostid.KeyType
		group   uint8
		cipher  uint16
		suite   esp.Suite
		encrypt bool
	}{
		{hostid.ECDSAP256, hostid.ECDSAP256, wire.DHGroupP256, wire.CipherAES128CBC, esp.SuiteAESGCM16, false},
		{hostid.ECDSAP256, hostid.ECDSAP384, wire.DHGroupP384, wire.CipherAES256CBC, esp.SuiteAES128CBCSHA256, true},
		{hostid.ECDSAP384, hostid.RSA2048, wire.DHGroupMODP1536, wire.CipherAES128CBC, esp.SuiteAES256CBCSHA256, true},
		{hostid.RSA2048, hostid.ECDSAP256, wire.DHGroupP256, wire.CipherNULL, esp.SuiteNullSHA256, true},
		{hostid.RSA2048, hostid.RSA2048, wire.DHGroupMODP3072, wire.CipherAES256CBC, esp.SuiteAESGCM16, false},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%v-%v-g%d-c%d-%v-enc%v", c.ka, c.kb, c.group, c.cipher, c.suite, c.encrypt)
		t.Run(name, func(t *testing.T) {
			ca := defaultCfg(testKey(t, c.ka, 0))
			cb := defaultCfg(testKey(t, c.kb, 1))
			// A prefers something else first; B offers exactly one.
			ca.DHGroups = []uint8{wire.DHGroupP256, c.group, wire.DHGroupMODP1536}
			cb.DHGroups = []uint8{c.group}
			ca.HIPCiphers = []uint16{c.cipher, wire.CipherAES128CBC}
			cb.HIPCiphers = []uint16{c.cipher}
			ca.ESPSuites = []esp.Suite{c.suite}
			cb.ESPSuites = []esp.Suite{c.suite, esp.SuiteAES128CBCSHA256}
			ca.EncryptHostID = c.encrypt
			a, b := newHost(t, "a", ca), newHost(t, "b", cb)
			l := bex(t, a, b)
			if a.a(b).State() != Established {
				t.Fatalf("a: %v, errors a %v b %v", a.a(b).State(), a.errs, b.errs)
			}
			ia := a.a(b).Info()
			if ia.DHGroup != c.group || ia.HIPCipher != c.cipher || ia.ESPSuite != c.suite {
				t.Fatalf("negotiated %+v", ia)
			}
			i2 := l.seen[2].b
			p, _ := wire.ParsePacket(i2)
			_, hasEnc := p.Param(wire.ParamEncrypted)
			_, hasHID := p.Param(wire.ParamHostID)
			if hasEnc != c.encrypt || hasHID == c.encrypt {
				t.Fatalf("I2 ENCRYPTED %v HOST_ID %v", hasEnc, hasHID)
			}
			ea, eb := a.eventsOf(EventEstablished)[0], b.eventsOf(EventEstablished)[0]
			checkSAs(t, ea.Outbound, ea.Inbound, eb.Outbound, eb.Inbound)
		})
	}
}

func TestOpportunistic(t *testing.T) {
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
	l := &link{}
	l.send(a, b, a.initiate(t0, wire.HIT{}))
	l.run(t, t0)
	aa := a.a(b)
	if aa == nil || aa.State() != Established || aa.PeerHIT() != b.e.HIT() {
		t.Fatalf("opportunistic exchange: %v", a.assoc)
	}
}

// TestRetransmitAndGiveUp: an unanswered I1 is sent 1+Retries times with
// doubling timeouts, then the association fails and later expires.
func TestRetransmitAndGiveUp(t *testing.T) {
	cfg := defaultCfg(testKey(t, hostid.ECDSAP256, 0))
	cfg.Retries = 3
	a := newHost(t, "a", cfg)
	peer := testKey(t, hostid.ECDSAP256, 1).HIT()
	sent := len(a.initiate(t0, peer))
	aa := a.assoc[peer]
	now := t0
	var gaps []time.Duration
	for i := 0; i < 10 && aa.State() == I1Sent; i++ {
		d := aa.Deadline()
		gaps = append(gaps, d.Sub(now))
		now = d
		for _, p := range a.timeout(now) {
			if ptype(p) != wire.I1 {
				t.Fatalf("retransmitted %v", ptype(p))
			}
			sent++
		}
	}
	if sent != 4 {
		t.Fatalf("sent %d I1s, want 4", sent)
	}
	if fmt.Sprint(gaps) != "[1s 2s 4s 8s]" {
		t.Fatalf("back-off %v", gaps)
	}
	if aa.State() != EFailed {
		t.Fatalf("state %v", aa.State())
	}
	ev := a.eventsOf(EventFailed)
	if len(ev) != 1 {
		t.Fatalf("events %v", a.events)
	}
	mustErr(t, ev[0].Err, ErrTimeout)
	a.timeout(aa.Deadline())
	if aa.State() != Unassociated {
		t.Fatalf("E-FAILED did not expire: %v", aa.State())
	}
	// Data to send restarts the exchange.
	aa.Restart(now)
	if aa.State() != I1Sent || len(aa.Outgoing()) != 1 {
		t.Fatal("restart did not send I1")
	}
}

func TestI2RetransmitAndGiveUp(t *testing.T) {
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
	l := &link{filter: func(p packet) []byte {
		if ptype(p.b) == wire.I2 {
			return nil
		}
		return p.b
	}}
	l.send(a, b, a.initiate(t0, b.e.HIT()))
	l.run(t, t0)
	aa := a.a(b)
	if aa.State() != I2Sent {
		t.Fatalf("state %v", aa.State())
	}
	n := 0
	for aa.State() == I2Sent {
		for _, p := range a.timeout(aa.Deadline()) {
			if ptype(p) != wire.I2 {
				t.Fatalf("retransmitted %v", ptype(p))
			}
			n++
		}
	}
	if n != 5 || aa.State() != EFailed {
		t.Fatalf("%d I2 retransmissions, state %v", n, aa.State())
	}
}

// TestLostR2: the Responder answers the retransmitted I2 with the same R2.
func TestLostR2(t *testing.T) {
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
	var r2s [][]byte
	l := &link{filter: func(p packet) []byte {
		if ptype(p.b) == wire.R2 {
			r2s = append(r2s, p.b)
			if len(r2s) == 1 {
				return nil
			}
		}
		return p.b
	}}
	l.send(a, b, a.initiate(t0, b.e.HIT()))
	l.run(t, t0)
	aa := a.a(b)
	if aa.State() != I2Sent || b.a(a).State() != R2Sent {
		t.Fatalf("states %v %v", aa.State(), b.a(a).State())
	}
	now := aa.Deadline()
	l.send(a, b, a.timeout(now))
	l.run(t, now)
	if aa.State() != Established {
		t.Fatalf("after retransmission: %v (errs %v)", aa.State(), a.errs)
	}
	if len(r2s) != 2 || string(r2s[0]) != string(r2s[1]) {
		t.Fatal("the second R2 differs from the first")
	}
	if len(b.eventsOf(EventEstablished)) != 1 {
		t.Fatal("responder established twice")
	}
}

// TestReplayedI2: once established, a replayed I2 changes nothing.
func TestReplayedI2(t *testing.T) {
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
	l := bex(t, a, b)
	ba := b.a(a)
	ba.DataReceived(t0)
	before := ba.Info()
	i2 := l.seen[2].b
	if out := b.deliver(t0.Add(time.Second), i2); len(out) != 0 {
		t.Fatalf("replayed I2 answered with %d packets", len(out))
	}
	mustErr(t, b.lastErr(), ErrReplay)
	if b.a(a) != ba || ba.State() != Established || ba.Info() != before {
		t.Fatal("replayed I2 changed the association")
	}
	// Replay with a fresh signature is impossible without the key; a
	// re-signed copy is what a state-losing Initiator sends, and it
	// reuses no solution. A replay into R2-SENT re-sends R2 instead:
	c := newHost(t, "c", defaultCfg(testKey(t, hostid.ECDSAP256, 2)))
	l = bex(t, a, c)
	if out := c.deliver(t0, l.seen[2].b); len(out) != 1 || ptype(out[0]) != wire.R2 {
		t.Fatal("I2 retransmission into R2-SENT not answered with R2")
	}
}

func TestSimultaneousInitiation(t *testing.T) {
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
	l := &link{}
	i1a := a.initiate(t0, b.e.HIT())
	i1b := b.initiate(t0, a.e.HIT())
	l.send(a, b, i1a)
	l.send(b, a, i1b)
	l.run(t, t0)
	small, large := a, b
	if a.e.HIT().Compare(b.e.HIT()) > 0 {
		small, large = b, a
	}
	if small.a(large).State() != Established {
		t.Fatalf("smaller HIT: %v", small.a(large).State())
	}
	if st := large.a(small).State(); st != R2Sent {
		t.Fatalf("larger HIT should have responded: %v", st)
	}
	if !small.a(large).Info().Initiator || large.a(small).Info().Initiator {
		t.Fatal("roles: the larger HIT must be the Responder")
	}
	es, el := small.eventsOf(EventEstablished), large.eventsOf(EventEstablished)
	checkSAs(t, es[len(es)-1].Outbound, es[len(es)-1].Inbound, el[len(el)-1].Outbound, el[len(el)-1].Inbound)
}
