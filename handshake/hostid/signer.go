package hostid

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// Host identities whose private key lives outside the process: in a TPM, a
// secure element, a PKCS#11 token or a cloud KMS. Such keys reach Go code as
// a crypto.Signer; FromSigner makes a host identity of one, and Sign then
// goes through the signer's Sign method, converting between what a
// crypto.Signer returns and what HIP sends (RFC 7401 §5.2.14):
//
//   - ECDSA: crypto.Signer returns the ASN.1 DER ECDSA-Sig-Value of RFC
//     3279 §2.2.3; HIP sends r|s as fixed-size octet strings (RFC 4754 §7).
//     ecdsaRawFromDER converts.
//   - RSA: the signer is asked for RSASSA-PSS with SHA-256 and a salt of the
//     hash length (*rsa.PSSOptions), the same signature signRSA makes.
//
// Each signature from an external signer is verified with the identity's
// public key before it is used: a signer that signs with another key than
// its Public method names, or returns garbage, fails here with an error
// that says so, instead of at the peer, which drops the packet in silence.
// The cost is small next to the signer's own (a TPM or a KMS takes
// milliseconds); in-memory keys skip it.

// FromSigner makes a host identity of a crypto.Signer whose Public method
// returns an *ecdsa.PublicKey on NIST P-256 or P-384 or an *rsa.PublicKey of
// MinRSABits to MaxRSABits bits. Other keys (EdDSA's ed25519.PublicKey,
// other curves, smaller RSA moduli) give ErrUnsupportedKeyType,
// ErrUnsupportedCurve or ErrKeySize with the type named.
//
// An *ecdsa.PrivateKey or *rsa.PrivateKey is taken as NewPrivateKey takes
// it: signed with in memory and exportable with MarshalPEM. Any other
// signer is used only through its Public and Sign methods; MarshalPEM and
// SaveFile refuse such a key with ErrNotExportable. The signer must be
// safe for concurrent use and must accept the crypto.SignerOpts of the
// identity's algorithm: crypto.SHA256 or crypto.SHA384 for ECDSA on P-256
// or P-384, *rsa.PSSOptions with crypto.SHA256 for RSA.
func FromSigner(s crypto.Signer) (*PrivateKey, error) {
	switch s.(type) {
	case nil:
		return nil, fmt.Errorf("%w: nil crypto.Signer", ErrUnsupportedKeyType)
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
		return NewPrivateKey(s)
	}
	pub, err := ownPublicKey(s.Public(), fmt.Sprintf("%T signer", s))
	if err != nil {
		return nil, err
	}
	return &PrivateKey{signer: s, pub: pub}, nil
}

// ownPublicKey makes the PublicKey of one of our own keys, checking it as
// the parser checks a peer's: what the HOST_ID we send says must be a key
// we would accept. what names the key's holder for errors.
func ownPublicKey(key crypto.PublicKey, what string) (*PublicKey, error) {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return nil, fmt.Errorf("%w: %s has a nil ECDSA public key", ErrInvalidKey, what)
		}
		c := curveOf(k.Curve)
		if c == nil {
			return nil, fmt.Errorf("%w: %s: ECDSA on %s (supported: P-256, P-384)", ErrUnsupportedCurve, what, k.Curve.Params().Name)
		}
		hi, err := encodeECDSAHI(c, k)
		if err != nil {
			return nil, err
		}
		if _, _, err := parseECDSAHI(hi); err != nil {
			return nil, err
		}
		return newPublicKey(AlgECDSA, hi), nil
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return nil, fmt.Errorf("%w: %s has a nil RSA public key", ErrInvalidKey, what)
		}
		if bits := k.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return nil, fmt.Errorf("%w: %s: RSA key of %d bits (accepted: %d to %d)", ErrKeySize, what, bits, MinRSABits, MaxRSABits)
		}
		// Round-trip through the parser so our keys pass the checks we
		// apply to peers (exponent range, odd modulus).
		hi := encodeRSAHI(k)
		if _, err := parseRSAHI(hi); err != nil {
			return nil, err
		}
		return newPublicKey(AlgRSA, hi), nil
	case ed25519.PublicKey:
		return nil, fmt.Errorf("%w: %s: ed25519.PublicKey (EdDSA host identities, RFC 9374, are not implemented; use ECDSA P-256 or P-384, or RSA)", ErrUnsupportedKeyType, what)
	}
	return nil, fmt.Errorf("%w: %s: public key of type %T (want *ecdsa.PublicKey or *rsa.PublicKey)", ErrUnsupportedKeyType, what, key)
}

// signWithSigner makes the signature signECDSA or signRSA would make, but
// through an external crypto.Signer, and verifies it.
func signWithSigner(rand io.Reader, s crypto.Signer, pub *PublicKey, msg []byte) ([]byte, error) {
	var sig []byte
	switch pub.alg {
	case AlgECDSA:
		c := pub.curve()
		der, err := s.Sign(rand, ecDigest(c, msg), c.hash)
		if err != nil {
			return nil, fmt.Errorf("%T: %w", s, err)
		}
		if sig, err = ecdsaRawFromDER(der, c.size); err != nil {
			return nil, fmt.Errorf("%T: %w", s, err)
		}
	case AlgRSA:
		d := sha256.Sum256(msg)
		var err error
		sig, err = s.Sign(rand, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: rsaSigHash})
		if err != nil {
			return nil, fmt.Errorf("%T: %w", s, err)
		}
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, pub.alg)
	}
	if err := pub.Verify(msg, sig, pub.alg); err != nil {
		return nil, fmt.Errorf("%T made a signature its own public key does not verify (does it sign with another key than its Public method returns?): %w", s, err)
	}
	return sig, nil
}

// ecdsaRawFromDER converts the ECDSA signature a crypto.Signer returns, the
// ASN.1 DER ECDSA-Sig-Value of RFC 3279 §2.2.3,
//
//	SEQUENCE { r INTEGER, s INTEGER }
//
// to the r|s of HIP (RFC 7401 §5.2.14, RFC 4754 §7), r and s each an
// unsigned big-endian octet string of size octets. A DER INTEGER is
// minimal and signed: it has a leading zero octet when the high bit of the
// value's first octet is set (half of all signatures) and is shorter than
// size when the value has leading zero octets (one in 256); both are
// padded or stripped here. Anything that is not strict DER, a zero or
// negative value, or a value longer than size octets is refused.
func ecdsaRawFromDER(der []byte, size int) ([]byte, error) {
	seq, rest, ok := derTLV(der, 0x30)
	if !ok || len(rest) != 0 {
		return nil, fmt.Errorf("%w: ECDSA signature is not one DER SEQUENCE (%d octets)", ErrInvalidSignature, len(der))
	}
	out := make([]byte, 2*size)
	for i, name := range []string{"r", "s"} {
		var v []byte
		if v, seq, ok = derTLV(seq, 0x02); !ok {
			return nil, fmt.Errorf("%w: ECDSA signature: %s is not a DER INTEGER", ErrInvalidSignature, name)
		}
		if err := putDERUint(out[i*size:(i+1)*size], v); err != nil {
			return nil, fmt.Errorf("%w: ECDSA signature: %s %s", ErrInvalidSignature, name, err)
		}
	}
	if len(seq) != 0 {
		return nil, fmt.Errorf("%w: ECDSA signature: %d octets after s", ErrInvalidSignature, len(seq))
	}
	return out, nil
}

// derTLV splits off one DER element with the given tag, returning its
// contents and what follows. It takes the short length form and the
// one-octet long form (lengths 128 to 255, enough for every ECDSA curve
// up to P-521), each only where DER allows it.
func derTLV(b []byte, tag byte) (val, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, off := int(b[1]), 2
	switch {
	case n < 0x80:
	case n == 0x81 && len(b) > 2 && b[2] >= 0x80:
		n, off = int(b[2]), 3
	default:
		return nil, nil, false
	}
	if len(b)-off < n {
		return nil, nil, false
	}
	return b[off : off+n], b[off+n:], true
}

// putDERUint writes the contents v of a DER INTEGER into dst as an
// unsigned big-endian number, left-padded with zeros. The value must be
// positive, minimally encoded and fit in dst.
func putDERUint(dst, v []byte) error {
	switch {
	case len(v) == 0:
		return errors.New("is empty")
	case v[0]&0x80 != 0:
		return errors.New("is negative")
	case len(v) > 1 && v[0] == 0 && v[1]&0x80 == 0:
		return errors.New("has a superfluous leading zero octet (not DER)")
	}
	if v[0] == 0 {
		v = v[1:]
	}
	if len(v) == 0 {
		return errors.New("is zero")
	}
	if len(v) > len(dst) {
		return fmt.Errorf("has %d octets, more than the curve's %d", len(v), len(dst))
	}
	clear(dst[:len(dst)-len(v)])
	copy(dst[len(dst)-len(v):], v)
	return nil
}
