package hostid

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"io"
	"math/big"
)

// RSA key size limits, in bits of the modulus.
const (
	// MinRSABits is the smallest modulus accepted for our own keys:
	// 112 bits of security strength, as RFC 7401 §5.2.9 asks for.
	MinRSABits = 2048
	// MinPeerRSABits is the smallest modulus accepted in a peer's HI. It is
	// lower than MinRSABits because a weak peer key endangers only that
	// peer's own identity (a HIT is bound to its HI by a hash, so nobody can
	// attach a weak key to someone else's HIT), and Go's crypto/rsa refuses
	// anything smaller.
	MinPeerRSABits = 1024
	// MaxRSABits bounds the cost of verifying a peer's signature.
	MaxRSABits = 8192
)

// The hash of HIP RSA signatures: RSASSA-PSS with SHA-256 (RFC 7401
// §5.2.9: PSS MUST be used; §5.2.14 names RSA/SHA-256).
const rsaSigHash = crypto.SHA256

// encodeRSAHI returns the RFC 3110 §2 encoding of pub: exponent length (one
// octet, or a zero octet and two octets when the exponent is longer than
// 255 octets), exponent, modulus, all big-endian without leading zeros
// (RFC 7401 §3.2, Appendix B).
func encodeRSAHI(pub *rsa.PublicKey) []byte {
	e := big.NewInt(int64(pub.E)).Bytes()
	n := pub.N.Bytes()
	out := make([]byte, 0, 3+len(e)+len(n))
	if len(e) > 255 { // cannot happen with an int exponent; kept for the rule
		out = append(out, 0, byte(len(e)>>8), byte(len(e)))
	} else {
		out = append(out, byte(len(e)))
	}
	out = append(out, e...)
	return append(out, n...)
}

// parseRSAHI decodes an RFC 3110 §2 public key. It refuses non-canonical
// encodings (leading zero octets in the exponent or modulus, which RFC 3110
// prohibits, and the three-octet length form for a short exponent), so that
// one key has one HI and hence one HIT.
func parseRSAHI(hi []byte) (*rsa.PublicKey, error) {
	if len(hi) < 1 {
		return nil, fmt.Errorf("%w: empty RSA host identity", ErrMalformedHostIdentity)
	}
	elen, off := int(hi[0]), 1
	if elen == 0 {
		if len(hi) < 3 {
			return nil, fmt.Errorf("%w: truncated RSA exponent length", ErrMalformedHostIdentity)
		}
		elen, off = int(hi[1])<<8|int(hi[2]), 3
		if elen <= 255 {
			return nil, fmt.Errorf("%w: RSA exponent length %d in the three-octet form", ErrMalformedHostIdentity, elen)
		}
	}
	if len(hi)-off <= elen {
		return nil, fmt.Errorf("%w: RSA exponent length %d leaves no modulus in %d octets", ErrMalformedHostIdentity, elen, len(hi))
	}
	eb, nb := hi[off:off+elen], hi[off+elen:]
	if eb[0] == 0 || nb[0] == 0 {
		return nil, fmt.Errorf("%w: leading zero octet in RSA exponent or modulus", ErrMalformedHostIdentity)
	}
	// Go's crypto/rsa takes the exponent as an int and accepts at most
	// 2^31-1; RFC 3110 allows up to 4096 bits, nobody uses more than 2^16+1.
	if elen > 4 {
		return nil, fmt.Errorf("%w: RSA exponent of %d octets is too large", ErrInvalidKey, elen)
	}
	var e uint64
	for _, b := range eb {
		e = e<<8 | uint64(b)
	}
	if e < 3 || e&1 == 0 || e > 1<<31-1 {
		return nil, fmt.Errorf("%w: RSA exponent %d", ErrInvalidKey, e)
	}
	bits := (len(nb)-1)*8 + bitLen8(nb[0])
	if bits < MinPeerRSABits || bits > MaxRSABits {
		return nil, fmt.Errorf("%w: %d-bit modulus (accepted: %d to %d)", ErrKeySize, bits, MinPeerRSABits, MaxRSABits)
	}
	if nb[len(nb)-1]&1 == 0 {
		return nil, fmt.Errorf("%w: even RSA modulus", ErrInvalidKey)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(nb), E: int(e)}, nil
}

// rsaModulus returns the modulus octets of an RFC 3110 HI, nil if the
// exponent length does not leave any.
func rsaModulus(hi []byte) []byte {
	if len(hi) < 1 {
		return nil
	}
	elen, off := int(hi[0]), 1
	if elen == 0 {
		if len(hi) < 3 {
			return nil
		}
		elen, off = int(hi[1])<<8|int(hi[2]), 3
	}
	if len(hi)-off <= elen {
		return nil
	}
	return hi[off+elen:]
}

// rsaModulusLen is the size of the RSA key of an HI in octets, which its
// signatures have (rsa.PublicKey.Size): the modulus has no leading zero
// octet (parseRSAHI).
func rsaModulusLen(hi []byte) int { return len(rsaModulus(hi)) }

// rsaModulusBits is the size of the RSA key of an HI in bits.
func rsaModulusBits(hi []byte) int {
	nb := rsaModulus(hi)
	if len(nb) == 0 {
		return 0
	}
	return (len(nb)-1)*8 + bitLen8(nb[0])
}

func bitLen8(b byte) int {
	n := 0
	for ; b != 0; b >>= 1 {
		n++
	}
	return n
}

// signRSA returns the RSASSA-PSS/SHA-256 signature of msg, salt length equal
// to the hash length.
func signRSA(rand io.Reader, priv *rsa.PrivateKey, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return rsa.SignPSS(rand, priv, rsaSigHash, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
}

// verifyRSA checks an RSASSA-PSS/SHA-256 signature of any salt length.
func verifyRSA(pub *rsa.PublicKey, msg, sig []byte) error {
	if len(sig) != pub.Size() {
		return fmt.Errorf("%w: RSA signature of %d octets, want %d", ErrInvalidSignature, len(sig), pub.Size())
	}
	d := sha256.Sum256(msg)
	if err := rsa.VerifyPSS(pub, rsaSigHash, d[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}); err != nil {
		return fmt.Errorf("%w: RSASSA-PSS: %v", ErrInvalidSignature, err)
	}
	return nil
}
