package handshake

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Issue 9, finding 2: the Responder as an oracle.
//
// RFC 7401 §6.9 decrypts ENCRYPTED (step 11) before it checks HIP_MAC
// (step 14), and answers failures from step 9 on with a NOTIFY (§6.9.1).
// Done in that order, the answer to a tampered ENCRYPTED says whether its
// CBC padding decrypted (a padding oracle on the Initiator's HOST_ID,
// §5.2.18), and every NOTIFY costs a signature for an unauthenticated
// packet. hipnet checks HIP_MAC before decrypting and answers nothing
// before HIP_SIGNATURE has verified (responder.go acceptI2).

// oracleParamEnd is the offset just past parameter typ of pkt.
func oracleParamEnd(t *testing.T, pkt []byte, typ wire.ParamType) int {
	t.Helper()
	p, _ := wire.ParsePacket(pkt)
	q, ok := p.Param(typ)
	if !ok {
		t.Fatalf("%v has no %v", p.Type(), typ)
	}
	return q.Offset() + q.TotalLen()
}

// TestI2TamperNoOracle flips every octet of a real I2 after its SOLUTION,
// one at a time, and gives each copy to a Responder that has no state for
// the Initiator. Whatever the octet, the copy is dropped with no
// association and no answer at all (Result.Reply nil: no NOTIFY, no R2);
// ENCRYPTED is never decrypted before HIP_MAC has verified, so an octet
// of its IV or ciphertext gives ErrBadMAC, never a decryption error.
//
// A solution whose I2s failed authentication maxSolutionFailures times is
// unusable (solutions.go): when a copy is dropped as ErrReplay for that,
// the offset is tried again with a fresh I2 from a new exchange.
//
// The padding after the last parameter (HIP_SIGNATURE) is covered by no
// MAC or signature and padding is not checked on receipt (§5.2.1): a copy
// that differs there is the genuine I2, so those octets are skipped.
func TestI2TamperNoOracle(t *testing.T) {
	for _, encrypt := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypt=%v", encrypt), func(t *testing.T) {
			ca := defaultCfg(testKey(t, hostid.ECDSAP256, 0))
			ca.EncryptHostID = encrypt
			a := newHost(t, "a", ca)
			b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
			i2 := i2Of(t, a, b)
			fresh := func() []byte {
				n := i2Of(t, a, b)
				if len(n) != len(i2) {
					t.Fatalf("I2 layout changed: %d octets, was %d", len(n), len(i2))
				}
				return n
			}
			p, _ := wire.ParsePacket(i2)
			start := oracleParamEnd(t, i2, wire.ParamSolution)
			sig, _ := p.Param(wire.ParamHIPSignature)
			end := sig.Offset() + 4 + len(sig.Contents()) // its padding follows
			encFrom, encTo := -1, -1
			if q, ok := p.Param(wire.ParamEncrypted); ok {
				encFrom, encTo = q.Offset()+4+4, q.Offset()+4+len(q.Contents()) // IV and ciphertext
			} else if encrypt {
				t.Fatal("I2 without ENCRYPTED")
			}
			if encrypt == (encFrom < 0) {
				t.Fatal("test premise: ENCRYPTED present iff EncryptHostID")
			}
			errs := map[string]int{}
			exchanges := 1
			for off := start; off < end; off++ {
				for tries := 0; ; tries++ {
					if tries > 1 {
						t.Fatalf("offset %d: a fresh solution is refused as a replay", off)
					}
					pkt := append([]byte(nil), i2...)
					pkt[off] ^= 0xff
					res, err := b.e.Handle(t0, pkt, nil)
					if err == nil || res.Assoc != nil {
						t.Fatalf("offset %d: tampered I2 accepted (err %v)", off, err)
					}
					if res.Reply != nil {
						t.Fatalf("offset %d: tampered I2 answered with %v (%v)", off, ptype(res.Reply), err)
					}
					if errors.Is(err, errDecrypt) {
						t.Fatalf("offset %d: ENCRYPTED decrypted before HIP_MAC verified: %v", off, err)
					}
					if errors.Is(err, ErrReplay) {
						i2 = fresh()
						exchanges++
						continue
					}
					if off >= encFrom && off < encTo && !errors.Is(err, ErrBadMAC) {
						t.Fatalf("offset %d inside ENCRYPTED: %v, want ErrBadMAC", off, err)
					}
					errs[errKind(err)]++
					break
				}
			}
			if len(b.eventsOf(EventEstablished)) != 0 {
				t.Fatal("an association was established")
			}
			t.Logf("%d offsets, %d exchanges, errors %v", end-start, exchanges, errs)
			// The last I2 of the run is still genuine and accepted.
			if out := b.deliver(t0, i2); len(out) != 1 || ptype(out[0]) != wire.R2 {
				t.Fatalf("genuine I2 after the run: %v", b.lastErr())
			}
		})
	}
}

// TestI2EncryptedMACFirst: the padding-oracle probe itself. Each octet of
// the IV and ciphertext of an I2's ENCRYPTED (holding the Initiator's
// HOST_ID, §5.3.3) flipped in turn: the Responder must report ErrBadMAC and
// answer nothing — it never decrypts what HIP_MAC has not authenticated,
// so whether the CBC padding was valid (§5.2.18, PKCS#5) cannot leak
// through an ENCRYPTION_FAILED NOTIFY or a different error.
func TestI2EncryptedMACFirst(t *testing.T) {
	ca := defaultCfg(testKey(t, hostid.ECDSAP256, 0))
	ca.EncryptHostID = true
	a := newHost(t, "a", ca)
	b := newHost(t, "b", defaultCfg(testKey(t, hostid.ECDSAP256, 1)))
	i2 := i2Of(t, a, b)
	p, _ := wire.ParsePacket(i2)
	q, ok := p.Param(wire.ParamEncrypted)
	if !ok {
		t.Fatal("I2 without ENCRYPTED")
	}
	for off := q.Offset() + 4 + 4; off < q.Offset()+4+len(q.Contents()); off++ {
		pkt := append([]byte(nil), i2...)
		pkt[off] ^= 0xff
		res, err := b.e.Handle(t0, pkt, nil)
		if errors.Is(err, ErrReplay) { // this solution failed too often: a new one
			i2 = i2Of(t, a, b)
			pkt = append(pkt[:0], i2...)
			pkt[off] ^= 0xff
			res, err = b.e.Handle(t0, pkt, nil)
		}
		if !errors.Is(err, ErrBadMAC) || res.Reply != nil || res.Assoc != nil {
			t.Fatalf("ENCRYPTED octet %d: %v (answered %v), want ErrBadMAC and silence", off-q.Offset()-4, err, res.Reply != nil)
		}
	}
}

func errKind(err error) string {
	for _, e := range []error{ErrBadMAC, ErrBadSignature, ErrMalformed, ErrNoCommonCipher,
		ErrNoCommonDHGroup, ErrUnsupportedCritical, ErrReplay} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	return err.Error()
}

// TestI2UnofferedCipherSilent: an I2 whose HIP_CIPHER is not one we
// offered cannot have its HIP_MAC checked (the HIP keys are drawn for the
// cipher, §6.5), so it is dropped before anything is answered: no NOTIFY
// (§6.9 step 9's NOTIFY would be signed for an unauthenticated packet).
func TestI2UnofferedCipherSilent(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b) // a chose AES-128-CBC, b's first
	b.e.cfg.HIPCiphers = []uint16{wire.CipherAES256CBC}
	res, err := b.e.Handle(t0, i2, nil)
	mustErr(t, err, ErrNoCommonCipher)
	if res.Reply != nil || res.Assoc != nil {
		t.Fatal("I2 with a cipher we did not offer answered or created state")
	}
}

// TestI2NegotiationNotifyBound: once HIP_MAC and HIP_SIGNATURE have
// verified, a negotiation failure (here an ESP transform the Responder no
// longer offers, RFC 7402 §6.5) is answered with exactly one signed NOTIFY
// (§6.9.1) whose NOTIFICATION data is the I2's #J, which binds it to that
// I2 (notify.go). The same I2 with a broken signature or MAC, or sent
// again, is answered with nothing.
func TestI2NegotiationNotifyBound(t *testing.T) {
	a, b := pair(t)
	i2 := i2Of(t, a, b)
	b.e.cfg.ESPSuites = []esp.Suite{esp.SuiteAES128CBCSHA256} // a chose AES-GCM in R1's order

	for _, c := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"bad signature", tamper(t, i2, wire.ParamHIPSignature, -1), ErrBadSignature},
		{"bad HIP_MAC", tamper(t, i2, wire.ParamHIPMAC, 0), ErrBadMAC},
	} {
		res, err := b.e.Handle(t0, c.pkt, nil)
		if !errors.Is(err, c.want) || res.Reply != nil || res.Assoc != nil {
			t.Fatalf("%s: error %v, reply %v: want %v and no answer", c.name, err, res.Reply != nil, c.want)
		}
	}

	res, err := b.e.Handle(t0, i2, nil)
	mustErr(t, err, ErrNoCommonESPSuite)
	if res.Assoc != nil || res.Reply == nil || ptype(res.Reply) != wire.NOTIFY {
		t.Fatalf("authenticated I2 refused without exactly one NOTIFY (assoc %v)", res.Assoc != nil)
	}
	n, _ := wire.ParsePacket(res.Reply)
	if err := verifySignature(b.e.Identity(), n, wire.ParamHIPSignature); err != nil {
		t.Fatalf("NOTIFY not signed by the Responder: %v", err)
	}
	var notes []wire.Notification
	it := n.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		if q.Type() == wire.ParamNotification {
			v, err := wire.ParseNotification(q.Contents())
			if err != nil {
				t.Fatal(err)
			}
			notes = append(notes, v)
		}
	}
	if len(notes) != 1 || wire.NotifyType(notes[0].Type) != wire.NotifyInvalidESPTransformChosen {
		t.Fatalf("NOTIFICATIONs %+v", notes)
	}
	if j := solutionOfI2(t, i2).J; !bytes.Equal(notes[0].Data, j) {
		t.Fatalf("NOTIFICATION data %x, want the I2's #J %x", notes[0].Data, j)
	}
	if n.ReceiverHIT() != a.e.HIT() {
		t.Fatal("NOTIFY not addressed to the Initiator")
	}

	// Sent again, the I2's solution is spent: no second NOTIFY.
	res, err = b.e.Handle(t0, i2, nil)
	mustErr(t, err, ErrReplay)
	if res.Reply != nil || res.Assoc != nil {
		t.Fatal("the refused I2 sent again was answered")
	}
}

func solutionOfI2(t *testing.T, i2 []byte) wire.Solution {
	t.Helper()
	p, _ := wire.ParsePacket(i2)
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
