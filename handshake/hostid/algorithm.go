package hostid

import (
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"

	"hipnet.dev/handshake/wire"
)

// Algorithm is the HI algorithm of the HOST_ID parameter and the SIG alg of
// HIP_SIGNATURE and HIP_SIGNATURE_2 (RFC 7401 §5.2.9, §5.2.14).
type Algorithm uint16

// HI algorithm values: the codepoints of wire's table (RFC 7401 §5.2.9,
// RFC 9374 §3.4.1), typed. hipnet implements AlgRSA and AlgECDSA; the
// others are named so that errors and logs can say what a peer offered.
const (
	AlgDSA      = Algorithm(wire.AlgDSA)      // not implemented
	AlgRSA      = Algorithm(wire.AlgRSA)      // implemented
	AlgECDSA    = Algorithm(wire.AlgECDSA)    // implemented (P-256, P-384)
	AlgECDSALow = Algorithm(wire.AlgECDSALow) // SECP160R1, not implemented
	AlgEdDSA    = Algorithm(wire.AlgEdDSA)    // not implemented
)

func (a Algorithm) String() string { return wire.AlgName(uint16(a)) }

// ECC curve labels of the ECDSA Host Identity (RFC 7401 §5.2.9).
const (
	CurveP256 = wire.CurveP256 // NIST P-256
	CurveP384 = wire.CurveP384 // NIST P-384
)

// Suite is a HIT Suite ID: the 4-bit ORCHID OGA ID of a HIT (RFC 7401
// §5.2.10, Table 10). It fixes the hash used to derive the HIT and the RHASH
// and HMAC of the associations whose responder owns the HIT.
type Suite uint8

// HIT Suite IDs: the codepoints of wire's table (RFC 7401 §5.2.10 Table
// 10), typed, for the suites whose hash this package provides.
const (
	SuiteRSADSASHA256 = Suite(wire.HITSuiteRSADSASHA256) // RSA, DSA / SHA-256 (REQUIRED)
	SuiteECDSASHA384  = Suite(wire.HITSuiteECDSASHA384)  // ECDSA / SHA-384 (RECOMMENDED)
	SuiteECDSALowSHA1 = Suite(wire.HITSuiteECDSALowSHA1) // ECDSA_LOW / SHA-1 (RECOMMENDED)
)

// Valid reports whether s is a HIT Suite defined by RFC 7401.
func (s Suite) Valid() bool { return s >= SuiteRSADSASHA256 && s <= SuiteECDSALowSHA1 }

// Hash returns the suite's hash function (RHASH): SHA-256, SHA-384 or
// SHA-1; zero for an undefined suite.
func (s Suite) Hash() crypto.Hash {
	switch s {
	case SuiteRSADSASHA256:
		return crypto.SHA256
	case SuiteECDSASHA384:
		return crypto.SHA384
	case SuiteECDSALowSHA1:
		return crypto.SHA1
	}
	return 0
}

// HashLen returns the output length of the suite's hash in octets (32, 48
// or 20); 0 for an undefined suite.
func (s Suite) HashLen() int {
	if !s.Valid() {
		return 0
	}
	return s.Hash().Size()
}

// NewHash returns a new hash.Hash of the suite's hash function, for RHASH
// and for HMAC (hmac.New(s.NewHash, key)); nil for an undefined suite.
func (s Suite) NewHash() hash.Hash {
	switch s {
	case SuiteRSADSASHA256:
		return sha256.New()
	case SuiteECDSASHA384:
		return sha512.New384()
	case SuiteECDSALowSHA1:
		return sha1.New()
	}
	return nil
}

// ListID returns the octet that stands for s in a HIT_SUITE_LIST: the
// suite in the four high-order bits, zero in the four low-order bits (RFC
// 7401 §5.2.10).
func (s Suite) ListID() uint8 { return uint8(s) << 4 }

// SuiteFromListID decodes one HIT_SUITE_LIST octet. It reports false for
// an octet whose four low-order bits are not zero (RFC 7401 §5.2.10: "SHOULD
// be considered as an error") and for suites RFC 7401 does not define.
func SuiteFromListID(b uint8) (Suite, bool) {
	if b&0x0f != 0 {
		return 0, false
	}
	s := Suite(b >> 4)
	return s, s.Valid()
}

func (s Suite) String() string { return wire.HITSuiteName(uint8(s)) }

// KeyType selects the kind of key Generate makes. The zero value is the
// default, ECDSA P-256.
type KeyType int

// Key types for Generate.
const (
	ECDSAP256 KeyType = iota // ECDSA on NIST P-256 (default)
	ECDSAP384                // ECDSA on NIST P-384
	RSA2048                  // RSA, 2048-bit modulus
	RSA3072                  // RSA, 3072-bit modulus
	RSA4096                  // RSA, 4096-bit modulus
)

var keyTypeNames = [...]string{
	ECDSAP256: "ecdsa-p256",
	ECDSAP384: "ecdsa-p384",
	RSA2048:   "rsa2048",
	RSA3072:   "rsa3072",
	RSA4096:   "rsa4096",
}

// KeyTypes returns every key type Generate makes, the default first; for
// help texts and configuration checks.
func KeyTypes() []KeyType {
	ts := make([]KeyType, len(keyTypeNames))
	for i := range ts {
		ts[i] = KeyType(i)
	}
	return ts
}

// String returns the name ParseKeyType accepts, e.g. "ecdsa-p256".
func (t KeyType) String() string {
	if t >= 0 && int(t) < len(keyTypeNames) {
		return keyTypeNames[t]
	}
	return fmt.Sprintf("KeyType(%d)", int(t))
}

// Algorithm returns the HI algorithm of keys of type t, or 0 for an unknown
// type.
func (t KeyType) Algorithm() Algorithm {
	switch t {
	case ECDSAP256, ECDSAP384:
		return AlgECDSA
	case RSA2048, RSA3072, RSA4096:
		return AlgRSA
	}
	return 0
}

// ParseKeyType parses a key type name as printed by KeyType.String
// ("ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa3072", "rsa4096"), ignoring
// case; for command-line flags and configuration.
func ParseKeyType(s string) (KeyType, error) {
	for t, name := range keyTypeNames {
		if strings.EqualFold(s, name) {
			return KeyType(t), nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want one of %s)", ErrUnsupportedKeyType, s, keyTypeList())
}

// keyTypeList names every key type, for errors and help texts.
func keyTypeList() string { return strings.Join(keyTypeNames[:], ", ") }
