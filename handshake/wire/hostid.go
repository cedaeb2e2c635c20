package wire

import (
	"encoding/binary"
	"fmt"
)

// HI algorithms of the HOST_ID Algorithm field (RFC 7401 §5.2.9), also the
// SIG alg values of HIP_SIGNATURE (§5.2.14): the one table of these
// codepoints, with the RFC's requirement level for each. Which of them
// hipnet implements is package hostid's to say (hostid.Algorithm).
const (
	AlgDSA      uint16 = 3  // RFC 7401: RECOMMENDED
	AlgRSA      uint16 = 5  // RFC 7401: REQUIRED; signatures use PSS padding
	AlgECDSA    uint16 = 7  // RFC 7401: REQUIRED
	AlgECDSALow uint16 = 9  // RFC 7401: RECOMMENDED
	AlgEdDSA    uint16 = 13 // RFC 9374 §3.4.1
)

// AlgName returns a short name of an HI algorithm, for printing.
func AlgName(a uint16) string {
	switch a {
	case AlgDSA:
		return "DSA"
	case AlgRSA:
		return "RSA"
	case AlgECDSA:
		return "ECDSA"
	case AlgECDSALow:
		return "ECDSA_LOW"
	case AlgEdDSA:
		return "EdDSA"
	}
	return fmt.Sprintf("Algorithm(%d)", a)
}

// ECC curve labels: the first 16 bits of an ECDSA or ECDSA_LOW Host Identity
// (RFC 7401 §5.2.9), and of an EdDSA one (RFC 9374 §3.4.1.1).
const (
	CurveP256      uint16 = 1 // with AlgECDSA
	CurveP384      uint16 = 2 // with AlgECDSA
	CurveSECP160R1 uint16 = 1 // with AlgECDSALow
	CurveEd25519   uint16 = 1 // with AlgEdDSA
	CurveEd448     uint16 = 3 // with AlgEdDSA
)

// DI-Types of the HOST_ID Domain Identifier (RFC 7401 §5.2.9).
const (
	DITypeNone uint8 = 0
	DITypeFQDN uint8 = 1 // RFC 1035 §3.1 binary format
	DITypeNAI  uint8 = 2 // RFC 4282
)

// HIT suites (RFC 7401 §5.2.10, Table 10): the 4-bit OGA ID of a HIT and the
// high nibble of a HIT_SUITE_LIST entry. The suite's hash is RHASH. The one
// table of these codepoints; hostid.Suite adds their hash functions.
const (
	HITSuiteRSADSASHA256 uint8 = 1 // RSA or DSA HI, SHA-256
	HITSuiteECDSASHA384  uint8 = 2 // ECDSA HI, SHA-384
	HITSuiteECDSALowSHA1 uint8 = 3 // ECDSA_LOW HI, SHA-1
	HITSuiteEdDSACSHAKE  uint8 = 5 // EdDSA HI, cSHAKE128 (RFC 9374 §3.4.2)
)

// HITSuiteName returns a short name of a HIT suite, for printing.
func HITSuiteName(s uint8) string {
	switch s {
	case HITSuiteRSADSASHA256:
		return "RSA,DSA/SHA-256"
	case HITSuiteECDSASHA384:
		return "ECDSA/SHA-384"
	case HITSuiteECDSALowSHA1:
		return "ECDSA_LOW/SHA-1"
	case HITSuiteEdDSACSHAKE:
		return "EdDSA/cSHAKE128"
	}
	return fmt.Sprintf("Suite(%d)", s)
}

// HostID is the HOST_ID parameter (RFC 7401 §5.2.9):
//
//	HI Length(16) | DI-Type(4) DI Length(12) | Algorithm(16) | HI | DI
//
// HI is the Host Identity in the encoding of its algorithm (RFC 3110 for
// RSA, RFC 2536 for DSA, ECC Curve(16) | public key for ECDSA) and is the
// input of the HIT (§3.2). DI is the optional Domain Identifier.
type HostID struct {
	Algorithm uint16
	HI        []byte
	DIType    uint8 // 4 bits
	DI        []byte
}

// ParseHostID parses HOST_ID contents. HI Length and DI Length must account
// for every octet after the 6-octet fixed part. HI and DI alias contents.
// A DI-Type of 0 with a non-zero DI Length (a sender error, §5.2.9) is
// returned as is.
func ParseHostID(contents []byte) (HostID, error) {
	if len(contents) < 6 {
		return HostID{}, lengthError(ParamHostID, len(contents), "at least 6")
	}
	hiLen := int(binary.BigEndian.Uint16(contents))
	diLen := int(binary.BigEndian.Uint16(contents[2:]) & 0x0fff)
	if hiLen == 0 || 6+hiLen+diLen != len(contents) {
		return HostID{}, &ParamError{Type: ParamHostID, Offset: -1, Err: ErrParamLength,
			Detail: fmt.Sprintf("HI Length %d and DI Length %d do not match the %d octets after the fixed part", hiLen, diLen, len(contents)-6)}
	}
	hiEnd := 6 + hiLen
	return HostID{
		Algorithm: binary.BigEndian.Uint16(contents[4:]),
		HI:        contents[6:hiEnd:hiEnd],
		DIType:    contents[2] >> 4,
		DI:        contents[hiEnd:],
	}, nil
}

// ECC splits an ECDSA, ECDSA_LOW or EdDSA Host Identity into its curve label
// and public key octets (§5.2.9). ok is false for other algorithms or an HI
// too short to hold a curve and a key.
func (h HostID) ECC() (curve uint16, pub []byte, ok bool) {
	switch h.Algorithm {
	case AlgECDSA, AlgECDSALow, AlgEdDSA:
	default:
		return 0, nil, false
	}
	if len(h.HI) < 3 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(h.HI), h.HI[2:], true
}

func (HostID) ParamType() ParamType { return ParamHostID }
func (h HostID) Len() int           { return 6 + len(h.HI) + len(h.DI) }
func (h HostID) Encode(b []byte) {
	binary.BigEndian.PutUint16(b, uint16(len(h.HI)))
	binary.BigEndian.PutUint16(b[2:], uint16(h.DIType)<<12|uint16(len(h.DI)))
	binary.BigEndian.PutUint16(b[4:], h.Algorithm)
	copy(b[6:], h.HI)
	copy(b[6+len(h.HI):], h.DI)
}
func (h HostID) validate() error {
	switch {
	case len(h.HI) < 1 || len(h.HI) > 0xffff:
		return valueError(ParamHostID, fmt.Sprintf("HI of %d octets", len(h.HI)))
	case h.DIType > 0x0f:
		return valueError(ParamHostID, fmt.Sprintf("DI-Type %d does not fit in 4 bits", h.DIType))
	case len(h.DI) > 0x0fff:
		return valueError(ParamHostID, fmt.Sprintf("DI of %d octets does not fit in 12 bits", len(h.DI)))
	case h.DIType == DITypeNone && len(h.DI) != 0:
		return valueError(ParamHostID, "DI-Type none with a Domain Identifier")
	}
	return nil
}
