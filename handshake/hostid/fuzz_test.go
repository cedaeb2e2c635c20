package hostid

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseHostIdentity: the parser never panics, classifies every failure
// with one of its sentinel errors, and every HI it accepts keeps its bytes,
// yields the HIT of those bytes, parses again to an Equal key and refuses a
// zero signature. The seeds in testdata/fuzz include the Host Identities of
// the cutehip captures (RSA-2048 and ECDSA P-384 as 0x04|x|y, and the same
// point as x|y).
func FuzzParseHostIdentity(f *testing.F) {
	f.Add(uint16(AlgECDSA), testKey(f, ECDSAP256).Public().HI())
	f.Add(uint16(AlgECDSA), testKey(f, ECDSAP384).Public().HI())
	f.Add(uint16(AlgRSA), testKey(f, RSA2048).Public().HI())
	sentinels := []error{ErrUnsupportedAlgorithm, ErrUnsupportedCurve, ErrMalformedHostIdentity, ErrInvalidKey, ErrKeySize}
	f.Fuzz(func(t *testing.T, alg uint16, hi []byte) {
		p, err := ParseHostIdentity(Algorithm(alg), hi)
		if err != nil {
			for _, s := range sentinels {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("unclassified error: %v", err)
		}
		if p.Algorithm() != Algorithm(alg) || !bytes.Equal(p.HI(), hi) || p.HILen() != len(hi) {
			t.Fatal("accepted HI not kept as received")
		}
		if p.HIT() != HITFromHI(p.Suite(), hi) || p.HIT()[0] != 0x20 {
			t.Fatalf("HIT %x is not the ORCHID of the HI", p.HIT())
		}
		p2, err := ParseHostIdentity(Algorithm(alg), p.HI())
		if err != nil || !p2.Equal(p) {
			t.Fatalf("re-parse: %v", err)
		}
		n := p.SignatureLen()
		if n <= 0 {
			t.Fatal("no signature length")
		}
		if err := p.Verify([]byte("msg"), make([]byte, n), Algorithm(alg)); !errors.Is(err, ErrInvalidSignature) {
			t.Fatalf("zero signature: err = %v", err)
		}
		if p.String() == "" {
			t.Fatal("empty String")
		}
	})
}
