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
// PublicKey. The key is in memory (Generate, NewPrivateKey, ParsePEM,
// LoadFile) or held by an external crypto.Signer (FromSigner). It is
// immutable and safe for concurrent use. Its String method prints the
// public part only.
type PrivateKey struct {
	signer crypto.Signer // *ecdsa.PrivateKey, *rsa.PrivateKey, or external (FromSigner)
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
		return nil, fmt.Errorf("%w: %v (want one of %s)", ErrUnsupportedKeyType, t, keyTypeList())
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
// *rsa.PrivateKey (MinRSABits to MaxRSABits bits) as a host identity. For
// a key held elsewhere (TPM, secure element, KMS) see FromSigner.
func NewPrivateKey(key crypto.PrivateKey) (*PrivateKey, error) {
	var (
		pub *PublicKey
		err error
	)
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k == nil {
			return nil, fmt.Errorf("%w: nil %T", ErrUnsupportedKeyType, key)
		}
		pub, err = ownPublicKey(&k.PublicKey, "own key")
	case *rsa.PrivateKey:
		if k == nil {
			return nil, fmt.Errorf("%w: nil %T", ErrUnsupportedKeyType, key)
		}
		pub, err = ownPublicKey(&k.PublicKey, "own key")
	case crypto.Signer:
		// Say what is wrong with the key itself (an Ed25519 key from a
		// PEM file) before pointing at FromSigner.
		if _, err := ownPublicKey(k.Public(), fmt.Sprintf("%T", key)); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %T is not an in-memory ECDSA or RSA key (use FromSigner)", ErrUnsupportedKeyType, key)
	default:
		return nil, fmt.Errorf("%w: %T (want *ecdsa.PrivateKey or *rsa.PrivateKey)", ErrUnsupportedKeyType, key)
	}
	if err != nil {
		return nil, err
	}
	return &PrivateKey{signer: key.(crypto.Signer), pub: pub}, nil
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
// Generate; a key from FromSigner hands it to the signer's Sign method.
func (k *PrivateKey) Sign(rand io.Reader, msg []byte) (sig []byte, alg Algorithm, err error) {
	rand = orDefault(rand)
	switch s := k.signer.(type) {
	case *rsa.PrivateKey:
		sig, err = signRSA(rand, s, msg)
	case *ecdsa.PrivateKey:
		sig, err = signECDSA(rand, k.pub.curve(), s, msg)
	default:
		sig, err = signWithSigner(rand, s, k.pub, msg)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("hostid: signing with %s: %w", k.pub.describe(), err)
	}
	return sig, k.pub.alg, nil
}

// Signer returns the underlying *ecdsa.PrivateKey or *rsa.PrivateKey, or
// the crypto.Signer given to FromSigner, e.g. to bind a TLS certificate to
// the host identity. Its Sign method follows the crypto.Signer contract
// (ASN.1 DER for ECDSA), not HIP's; use PrivateKey.Sign for HIP. The caller
// must not modify it.
func (k *PrivateKey) Signer() crypto.Signer { return k.signer }

// external reports whether the key is held by a signer from FromSigner
// rather than in memory.
func (k *PrivateKey) external() bool {
	switch k.signer.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
		return false
	}
	return true
}

// String describes the public part; it never prints key material.
func (k *PrivateKey) String() string {
	if k == nil {
		return "<nil>"
	}
	if k.external() {
		return fmt.Sprintf("private key in %T, %v", k.signer, k.pub)
	}
	return "private key, " + k.pub.String()
}

// GoString keeps %#v from printing key material.
func (k *PrivateKey) GoString() string { return "hostid.PrivateKey{" + k.String() + "}" }
