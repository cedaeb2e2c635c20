package hostid

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
)

// PrivateKey is a node's own host identity: the private key and its
// PublicKey. It is immutable and safe for concurrent use. Its String method
// prints the public part only.
type PrivateKey struct {
	signer crypto.Signer // *ecdsa.PrivateKey or *rsa.PrivateKey
	pub    *PublicKey
}

// Generate makes a new host identity of type t. rand is handed to
// crypto/ecdsa or crypto/rsa; nil means crypto/rand.Reader. (Since Go 1.26
// those packages ignore it and always use a secure source; tests that need
// determinism use testing/cryptotest.SetGlobalRandom.)
func Generate(t KeyType, rand io.Reader) (*PrivateKey, error) {
	rand = orDefault(rand)
	var (
		key crypto.Signer
		err error
	)
	switch t {
	case ECDSAP256:
		key, err = ecdsa.GenerateKey(curveP256.curve, rand)
	case ECDSAP384:
		key, err = ecdsa.GenerateKey(curveP384.curve, rand)
	case RSA2048:
		key, err = rsa.GenerateKey(rand, 2048)
	case RSA3072:
		key, err = rsa.GenerateKey(rand, 3072)
	case RSA4096:
		key, err = rsa.GenerateKey(rand, 4096)
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedKeyType, t)
	}
	if err != nil {
		return nil, fmt.Errorf("hostid: generating %v key: %w", t, err)
	}
	return NewPrivateKey(key)
}

func orDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// NewPrivateKey wraps an existing *ecdsa.PrivateKey (P-256 or P-384) or
// *rsa.PrivateKey (MinRSABits to MaxRSABits bits) as a host identity.
func NewPrivateKey(key crypto.PrivateKey) (*PrivateKey, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		c := curveOf(k.Curve)
		if c == nil {
			return nil, fmt.Errorf("%w: ECDSA on %s", ErrUnsupportedCurve, k.Curve.Params().Name)
		}
		hi, err := encodeECDSAHI(c, &k.PublicKey)
		if err != nil {
			return nil, err
		}
		return &PrivateKey{signer: k, pub: newPublicKey(AlgECDSA, c, &k.PublicKey, hi)}, nil
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return nil, fmt.Errorf("%w: own RSA key of %d bits (accepted: %d to %d)", ErrKeySize, bits, MinRSABits, MaxRSABits)
		}
		// Round-trip through the parser so our keys pass the checks we
		// apply to peers (exponent range, odd modulus).
		hi := encodeRSAHI(&k.PublicKey)
		if _, err := parseRSAHI(hi); err != nil {
			return nil, err
		}
		return &PrivateKey{signer: k, pub: newPublicKey(AlgRSA, nil, &k.PublicKey, hi)}, nil
	}
	return nil, fmt.Errorf("%w: %T", ErrUnsupportedKeyType, key)
}

// Public returns the host identity's public part.
func (k *PrivateKey) Public() *PublicKey { return k.pub }

// HIT returns the host identity's HIT.
func (k *PrivateKey) HIT() [16]byte { return k.pub.hit }

// Sign computes the Signature field of a HIP_SIGNATURE or HIP_SIGNATURE_2
// parameter over msg, the bytes the caller prepared per RFC 7401 §6.4.2,
// and returns it with the SIG alg value to send (the HI algorithm).
//
// RSA: RSASSA-PSS with SHA-256, salt length equal to the hash length (RFC
// 7401 §5.2.9). ECDSA: SHA-256 on P-256, SHA-384 on P-384 (RFC 4754), the
// signature as r|s, each an octet string of the curve size. rand as for
// Generate.
func (k *PrivateKey) Sign(rand io.Reader, msg []byte) (sig []byte, alg Algorithm, err error) {
	rand = orDefault(rand)
	switch s := k.signer.(type) {
	case *rsa.PrivateKey:
		sig, err = signRSA(rand, s, msg)
	case *ecdsa.PrivateKey:
		sig, err = signECDSA(rand, k.pub.curve, s, msg)
	default:
		err = fmt.Errorf("%w: %T", ErrUnsupportedKeyType, s)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("hostid: signing with %s: %w", k.pub.describe(), err)
	}
	return sig, k.pub.alg, nil
}

// Signer returns the underlying *ecdsa.PrivateKey or *rsa.PrivateKey, e.g.
// to bind a TLS certificate to the host identity. The caller must not
// modify it.
func (k *PrivateKey) Signer() crypto.Signer { return k.signer }

// String describes the public part; it never prints key material.
func (k *PrivateKey) String() string {
	if k == nil {
		return "<nil>"
	}
	return "private key, " + k.pub.String()
}

// GoString keeps %#v from printing key material.
func (k *PrivateKey) GoString() string { return "hostid.PrivateKey{" + k.String() + "}" }
