package hostid

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// PublicKey is a Host Identity: a public key together with the exact Host
// Identity field that stands for it in HOST_ID and the HIT derived from
// that field. It is immutable and safe for concurrent use.
//
// The key is held as that Host Identity field and nothing else: the field
// is checked once, when the PublicKey is made, and decoded again each time
// the key itself is needed (Verify, CryptoPublicKey). A node holds one
// PublicKey per peer for as long as the association lasts (a relay one per
// registered host), and a decoded key would cost it some 250 octets of big
// integers and curve point more than the 67 of a P-256 field
// (TestPeerKeySize); the key is used for the rare signed UPDATE, CLOSE or
// NOTIFY, where decoding (under a microsecond for P-256) is lost in the
// signature check (some 60 µs).
type PublicKey struct {
	hi    []byte // the Host Identity field: as received, or our encoding
	hit   [16]byte
	alg   Algorithm
	suite Suite
}

// ParseHostIdentity decodes the Algorithm and Host Identity fields of a
// HOST_ID parameter (RFC 7401 §5.2.9). hi is exactly the HI Length octets
// of the Host Identity field, without the Domain Identifier.
//
// RSA (5) is decoded per RFC 3110 §2; ECDSA (7) as ECC Curve | Public Key
// with curve 1 (P-256) or 2 (P-384) and the point as 0x04|x|y or x|y.
// Points must be on the curve; RSA moduli must have MinPeerRSABits to
// MaxRSABits bits. DSA, ECDSA_LOW, EdDSA and unknown algorithms give
// ErrUnsupportedAlgorithm.
//
// The result keeps a copy of hi: HI returns those bytes and HIT is derived
// from them, so the HIT is the one the sender computed over what it sent.
func ParseHostIdentity(alg Algorithm, hi []byte) (*PublicKey, error) {
	if _, err := decodeHI(alg, hi); err != nil {
		return nil, err
	}
	return newPublicKey(alg, bytes.Clone(hi)), nil
}

// decodeHI decodes and checks a Host Identity field: an *rsa.PublicKey or
// an *ecdsa.PublicKey.
func decodeHI(alg Algorithm, hi []byte) (crypto.PublicKey, error) {
	switch alg {
	case AlgRSA:
		return parseRSAHI(hi)
	case AlgECDSA:
		_, pub, err := parseECDSAHI(hi)
		return pub, err
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, alg)
}

// newPublicKey makes the PublicKey of hi, an HI that decodeHI accepts.
func newPublicKey(alg Algorithm, hi []byte) *PublicKey {
	p := &PublicKey{alg: alg, hi: hi, suite: suiteOf(alg)}
	p.hit = HITFromHI(p.suite, hi)
	return p
}

// key decodes the key again. The HI was checked when p was made, so this
// fails only for a PublicKey that was not made by this package.
func (p *PublicKey) key() (crypto.PublicKey, error) { return decodeHI(p.alg, p.hi) }

// curve is the ECDSA curve of the HI's ECC Curve field; nil for RSA.
func (p *PublicKey) curve() *ecCurve {
	if p.alg != AlgECDSA || len(p.hi) < 2 {
		return nil
	}
	return curveByID(binary.BigEndian.Uint16(p.hi))
}

// suiteOf maps an HI algorithm to its HIT suite (RFC 7401 §5.2.10 Table
// 10): RSA and DSA to 1, ECDSA (every curve) to 2, ECDSA_LOW to 3.
func suiteOf(alg Algorithm) Suite {
	switch alg {
	case AlgRSA, AlgDSA:
		return SuiteRSADSASHA256
	case AlgECDSA:
		return SuiteECDSASHA384
	case AlgECDSALow:
		return SuiteECDSALowSHA1
	}
	return 0
}

// Algorithm returns the HI algorithm (HOST_ID Algorithm field).
func (p *PublicKey) Algorithm() Algorithm { return p.alg }

// HI returns a copy of the Host Identity field for HOST_ID (RFC 7401
// §5.2.9). For a key from ParseHostIdentity these are the bytes as
// received; for our own keys, our encoding (RFC 3110 for RSA, ECC Curve |
// 0x04|x|y for ECDSA). Either way HITFromHI(p.Suite(), p.HI()) == p.HIT().
func (p *PublicKey) HI() []byte { return bytes.Clone(p.hi) }

// HILen returns len(p.HI()) without copying.
func (p *PublicKey) HILen() int { return len(p.hi) }

// Suite returns the HIT suite of the key (RFC 7401 Table 10).
func (p *PublicKey) Suite() Suite { return p.suite }

// HIT returns the Host Identity Tag: the ORCHIDv2 of HI() (see HITFromHI).
func (p *PublicKey) HIT() [16]byte { return p.hit }

// SignatureLen returns the length of the Signature field this key's
// signatures have: the modulus size for RSA, twice the curve size for
// ECDSA.
func (p *PublicKey) SignatureLen() int {
	switch p.alg {
	case AlgRSA:
		return rsaModulusLen(p.hi)
	case AlgECDSA:
		if c := p.curve(); c != nil {
			return 2 * c.size
		}
	}
	return 0
}

// Verify checks the Signature field sig of a HIP_SIGNATURE or
// HIP_SIGNATURE_2 parameter whose SIG alg is alg, over msg, the bytes
// rebuilt per RFC 7401 §6.4.2. It returns ErrAlgorithmMismatch when alg is
// not the key's HI algorithm and ErrInvalidSignature for a signature of the
// wrong length or one that does not verify. RSA signatures are RSASSA-PSS
// with SHA-256 and any salt length; ECDSA signatures are r|s with SHA-256
// (P-256) or SHA-384 (P-384).
func (p *PublicKey) Verify(msg, sig []byte, alg Algorithm) error {
	if alg != p.alg {
		return fmt.Errorf("%w: SIG alg %v, host identity %v", ErrAlgorithmMismatch, alg, p.alg)
	}
	// The signature's length is checked before the key is decoded: a
	// signature of the wrong length costs no decoding.
	switch p.alg {
	case AlgRSA:
		if n := rsaModulusLen(p.hi); len(sig) != n {
			return fmt.Errorf("%w: RSA signature of %d octets, want %d", ErrInvalidSignature, len(sig), n)
		}
		k, err := parseRSAHI(p.hi)
		if err != nil {
			return err
		}
		return verifyRSA(k, msg, sig)
	case AlgECDSA:
		c := p.curve()
		if c == nil {
			break
		}
		if err := checkECDSASigLen(c, sig); err != nil {
			return err
		}
		_, k, err := parseECDSAHI(p.hi)
		if err != nil {
			return err
		}
		return verifyECDSA(c, k, msg, sig)
	}
	return fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, p.alg)
}

// CryptoPublicKey returns the key as a *rsa.PublicKey or *ecdsa.PublicKey,
// e.g. to match the key of a TLS certificate. Each call decodes the key
// anew (see PublicKey), so the caller may keep or modify what it gets.
func (p *PublicKey) CryptoPublicKey() crypto.PublicKey {
	k, err := p.key()
	if err != nil {
		return nil
	}
	return k
}

// Equal reports whether p and o are the same Host Identity: same algorithm
// and byte-identical HI, hence the same key and the same HIT. (One ECDSA key
// received once as x|y and once as 0x04|x|y gives two different HITs and is
// not Equal; compare CryptoPublicKey values to ask about the key alone.)
func (p *PublicKey) Equal(o *PublicKey) bool {
	if p == nil || o == nil {
		return p == o
	}
	return p.alg == o.alg && bytes.Equal(p.hi, o.hi)
}

// String describes the key and its HIT, e.g.
// "ECDSA P-256 (HIT 2001:22:…)".
func (p *PublicKey) String() string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s (HIT %s)", p.describe(), netip.AddrFrom16(p.hit))
}

func (p *PublicKey) describe() string {
	switch p.alg {
	case AlgRSA:
		return fmt.Sprintf("RSA-%d", rsaModulusBits(p.hi))
	case AlgECDSA:
		if c := p.curve(); c != nil {
			return "ECDSA " + c.name
		}
	}
	return p.alg.String()
}
