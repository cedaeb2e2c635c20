package esp

import "strconv"

// Suite is an ESP transform suite ID from the HIP ESP_TRANSFORM parameter
// (RFC 7402 §5.1.2).
type Suite uint16

// The suites this package implements.
const (
	// SuiteNullSHA256 is NULL encryption (RFC 2410) with
	// HMAC-SHA-256-128: integrity only. Never offered by default.
	SuiteNullSHA256 Suite = 7
	// SuiteAES128CBCSHA256 is AES-128-CBC with HMAC-SHA-256-128, the
	// suite RFC 7402 §5.1.2 makes mandatory to implement.
	SuiteAES128CBCSHA256 Suite = 8
	// SuiteAES256CBCSHA256 is AES-256-CBC with HMAC-SHA-256-128.
	SuiteAES256CBCSHA256 Suite = 9
	// SuiteAESGCM16 is AES-128-GCM with a 16-octet ICV (RFC 4106), the
	// preferred default: one pass, and Go has assembly for it.
	SuiteAESGCM16 Suite = 13
)

// Framing constants (RFC 4303 §2).
const (
	headerLen  = 8  // SPI + low 32 bits of the sequence number
	icvLen     = 16 // every supported suite has a 16-octet ICV
	trailerLen = 2  // Pad Length + Next Header
	saltLen    = 4  // RFC 4106 §4 nonce salt
	gcmIVLen   = 8  // RFC 4106 §3.1 explicit IV
	cbcIVLen   = 16 // RFC 3602 §2.1: IV is one AES block
)

// NextHeaderNone is IPv6 "No Next Header" (59): RFC 4303 §2.6 marks dummy
// packets (traffic flow confidentiality) with it; receivers drop them.
const NextHeaderNone uint8 = 59

// String returns the suite's name as RFC 7402 §5.1.2 lists it.
func (s Suite) String() string {
	switch s {
	case SuiteNullSHA256:
		return "NULL with HMAC-SHA-256"
	case SuiteAES128CBCSHA256:
		return "AES-128-CBC with HMAC-SHA-256"
	case SuiteAES256CBCSHA256:
		return "AES-256-CBC with HMAC-SHA-256"
	case SuiteAESGCM16:
		return "AES-128-GCM with 16-octet ICV"
	}
	return "Suite(" + strconv.Itoa(int(s)) + ")"
}

// Supported reports whether this package implements s.
func (s Suite) Supported() bool {
	switch s {
	case SuiteNullSHA256, SuiteAES128CBCSHA256, SuiteAES256CBCSHA256, SuiteAESGCM16:
		return true
	}
	return false
}

// KeyLen returns how many octets of KEYMAT the suite draws for the
// encryption key and for the authentication key (RFC 7402 §7: the
// "natural" sizes, RFC 7401 §6.5). HMAC-SHA-256 keys are 32 octets
// (RFC 4868 §2.1.1).
//
// For AES-GCM RFC 7402 is silent (CODEPOINTS §12 lists it as unverified).
// This package follows RFC 4106 §8.1, as IKEv2 does: the "encryption key"
// is the 16-octet AES key followed by the 4-octet nonce salt, 20 octets,
// and there is no separate authentication key.
func (s Suite) KeyLen() (enc, auth int) {
	switch s {
	case SuiteNullSHA256:
		return 0, 32
	case SuiteAES128CBCSHA256:
		return 16, 32
	case SuiteAES256CBCSHA256:
		return 32, 32
	case SuiteAESGCM16:
		return 16 + saltLen, 0
	}
	return 0, 0
}

// ICVLen returns the ICV length: 16 octets for every supported suite
// (HMAC-SHA-256-128 truncates to 128 bits, RFC 4868 §2.1.1; the GCM suite
// is the 16-octet-ICV variant). Unsupported suites return 0.
func (s Suite) ICVLen() int {
	if !s.Supported() {
		return 0
	}
	return icvLen
}

// ivLen is the length of the IV carried in each packet.
func (s Suite) ivLen() int {
	switch s {
	case SuiteAES128CBCSHA256, SuiteAES256CBCSHA256:
		return cbcIVLen
	case SuiteAESGCM16:
		return gcmIVLen
	}
	return 0 // NULL has no IV (RFC 2410 §2)
}

// align is the multiple the encrypted part (payload, padding, Pad Length,
// Next Header) must reach: the cipher block size for CBC (RFC 3602 §2.4),
// otherwise the 4-octet alignment RFC 4303 §2.4 requires so the ICV starts
// on a 4-octet boundary (RFC 4106 §3.2 for GCM, RFC 2410 for NULL).
func (s Suite) align() int {
	switch s {
	case SuiteAES128CBCSHA256, SuiteAES256CBCSHA256:
		return 16
	}
	return 4
}

// encLen is the length of the encrypted part for an n-octet payload.
func (s Suite) encLen(n int) int {
	a := s.align()
	return (n + trailerLen + a - 1) &^ (a - 1)
}

// minLen is the shortest packet the suite can produce (empty payload).
func (s Suite) minLen() int {
	return headerLen + s.ivLen() + s.encLen(0) + icvLen
}

// Overhead returns exactly how many octets Seal adds to a payloadLen-octet
// payload: header, IV, padding, Pad Length, Next Header and ICV. It
// returns 0 for an unsupported suite or a negative length.
func (s Suite) Overhead(payloadLen int) int {
	if !s.Supported() || payloadLen < 0 {
		return 0
	}
	return headerLen + s.ivLen() + s.encLen(payloadLen) - payloadLen + icvLen
}

// DefaultSuites returns the suites a node offers when not configured
// otherwise, most preferred first: AES-GCM, then the mandatory
// AES-128-CBC. AES-256-CBC and NULL are offered only when configured.
func DefaultSuites() []Suite {
	return []Suite{SuiteAESGCM16, SuiteAES128CBCSHA256}
}
