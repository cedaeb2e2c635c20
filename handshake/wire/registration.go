package wire

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Registration Types (RFC 8003 §7; CODEPOINTS.md §9): the services a
// registrar offers in REG_INFO and a requester asks for in REG_REQUEST.
// 201-255 are for private use.
const (
	RegTypeRendezvous         uint8 = 1 // RFC 8004 §4.1
	RegTypeRelayUDPHIP        uint8 = 2 // control relay, RFC 5770 §5.9, RFC 9028 §5.9
	RegTypeRelayUDPESP        uint8 = 3 // data relay, RFC 9028 §5.9
	RegTypeCandidateDiscovery uint8 = 4 // server-reflexive candidates, RFC 9028 §4.2
)

// Registration Failure Types of REG_FAILED (RFC 8003 §4.5 and §7, RFC 9028
// §7.8). §4.5's table lists 0-3 and calls 9-200 unassigned; §7 registers
// 4-8. 201-255 are for private use.
const (
	RegFailureCredentialsRequired   uint8 = 0 // registration requires additional credentials
	RegFailureTypeUnavailable       uint8 = 1 // registration type unavailable
	RegFailureInsufficientResources uint8 = 2 // MUST NOT retry immediately
	RegFailureInvalidCertificate    uint8 = 3 // MUST NOT retry with the same certificate
	RegFailureBadCertificate        uint8 = 4
	RegFailureUnsupportedCert       uint8 = 5
	RegFailureCertificateExpired    uint8 = 6
	RegFailureCertificateOther      uint8 = 7
	RegFailureUnknownCA             uint8 = 8
	RegFailureRendezvousAndRelay    uint8 = 9 // simultaneous rendezvous and control relay usage prohibited, RFC 9028 §7.8
)

// RegTypeName returns the RFC name of a Registration Type, for printing.
func RegTypeName(t uint8) string {
	switch t {
	case RegTypeRendezvous:
		return "RENDEZVOUS"
	case RegTypeRelayUDPHIP:
		return "RELAY_UDP_HIP"
	case RegTypeRelayUDPESP:
		return "RELAY_UDP_ESP"
	case RegTypeCandidateDiscovery:
		return "CANDIDATE_DISCOVERY"
	}
	return fmt.Sprintf("regtype%d", t)
}

// RegFailureName returns a short description of a Registration Failure
// Type, for printing.
func RegFailureName(f uint8) string {
	switch f {
	case RegFailureCredentialsRequired:
		return "additional credentials required"
	case RegFailureTypeUnavailable:
		return "registration type unavailable"
	case RegFailureInsufficientResources:
		return "insufficient resources"
	case RegFailureInvalidCertificate:
		return "invalid certificate"
	case RegFailureBadCertificate:
		return "bad certificate"
	case RegFailureUnsupportedCert:
		return "unsupported certificate"
	case RegFailureCertificateExpired:
		return "certificate expired"
	case RegFailureCertificateOther:
		return "certificate other"
	case RegFailureUnknownCA:
		return "unknown CA"
	case RegFailureRendezvousAndRelay:
		return "simultaneous rendezvous and control relay prohibited"
	}
	return fmt.Sprintf("failure%d", f)
}

// LifetimeToDuration decodes a registration lifetime octet (RFC 8003 §4.1):
// 0 is a lifetime of zero seconds, which requests or grants cancellation;
// any other x is 2^((x-64)/8) seconds, from about 4.2 ms (x = 1) to about
// 178 days (x = 255). It is computed in float64: exact for powers of two
// (x a multiple of 8), within a few nanoseconds otherwise.
func LifetimeToDuration(x uint8) time.Duration {
	if x == 0 {
		return 0
	}
	return time.Duration(math.Round(math.Exp2(float64(int(x)-64)/8) * float64(time.Second)))
}

// DurationToLifetime encodes d as a registration lifetime octet: the
// smallest x whose LifetimeToDuration is at least d, so a requested or
// granted lifetime is never shorter than d. d <= 0 gives 0 (cancel) and d
// beyond the largest lifetime gives 255. RFC 8003 §5's baseline of 10 s is
// 91 (about 10.4 s) and 120 s is 120 (exactly 128 s); the text does not say
// how to round, and rounding down would turn the 10 s minimum both sides
// MUST support into 9.5 s.
func DurationToLifetime(d time.Duration) uint8 {
	if d <= 0 {
		return 0
	}
	i := sort.Search(255, func(i int) bool { return LifetimeToDuration(uint8(i+1)) >= d })
	if i == 255 {
		return 255
	}
	return uint8(i + 1)
}

// RegInfo is the REG_INFO parameter (RFC 8003 §4.2): Min Lifetime(8) | Max
// Lifetime(8) | Reg Type(8)..., the services a registrar offers, in R1
// (where HIP_SIGNATURE_2 covers it) or UPDATE. An empty list is valid and
// means no service is available now (§3.1). Lifetimes are encoded as
// LifetimeToDuration decodes them.
type RegInfo struct {
	MinLifetime uint8
	MaxLifetime uint8
	Types       []byte // Registration Types (RegTypeRendezvous, ...)
}

// ParseRegInfo parses REG_INFO contents: the two lifetimes and zero or more
// Registration Types. Types aliases contents. Min > Max is not judged.
func ParseRegInfo(contents []byte) (RegInfo, error) {
	if len(contents) < 2 {
		return RegInfo{}, lengthError(ParamRegInfo, len(contents), "at least 2")
	}
	return RegInfo{MinLifetime: contents[0], MaxLifetime: contents[1], Types: contents[2:]}, nil
}

func (RegInfo) ParamType() ParamType { return ParamRegInfo }
func (r RegInfo) Len() int           { return 2 + len(r.Types) }
func (r RegInfo) Encode(b []byte) {
	b[0], b[1] = r.MinLifetime, r.MaxLifetime
	copy(b[2:], r.Types)
}
func (r RegInfo) validate() error {
	if r.MinLifetime > r.MaxLifetime {
		return valueError(ParamRegInfo, fmt.Sprintf("Min Lifetime %d above Max Lifetime %d", r.MinLifetime, r.MaxLifetime))
	}
	return nil
}

// RegRequest is the REG_REQUEST parameter (RFC 8003 §4.3): Lifetime(8) |
// Reg Type(8)..., in I2 or UPDATE, covered by HIP_SIGNATURE. Lifetime 0
// cancels the listed registrations (§5). A requester MUST NOT send more
// than one; a registrar MUST process several.
type RegRequest struct {
	Lifetime uint8
	Types    []byte // in order of preference
}

// RegResponse is the REG_RESPONSE parameter (RFC 8003 §4.4), laid out as
// REG_REQUEST: the granted lifetime and the granted types, in R2 or UPDATE.
// A requester MUST accept any lifetime, including one outside REG_INFO's
// bounds.
type RegResponse struct {
	Lifetime uint8
	Types    []byte
}

// RegFailed is the REG_FAILED parameter (RFC 8003 §4.5): Failure Type(8) |
// Reg Type(8)..., the types that failed for that reason, in R2 or UPDATE.
// A packet may carry several, one per Failure Type.
type RegFailed struct {
	FailureType uint8 // RegFailureCredentialsRequired, ...
	Types       []byte
}

// ParseRegRequest parses REG_REQUEST contents: the lifetime and zero or
// more Registration Types (RFC 8003 does not require one). Types aliases
// contents.
func ParseRegRequest(contents []byte) (RegRequest, error) {
	if len(contents) < 1 {
		return RegRequest{}, lengthError(ParamRegRequest, 0, "at least 1")
	}
	return RegRequest{Lifetime: contents[0], Types: contents[1:]}, nil
}

// ParseRegResponse parses REG_RESPONSE contents, as ParseRegRequest.
func ParseRegResponse(contents []byte) (RegResponse, error) {
	if len(contents) < 1 {
		return RegResponse{}, lengthError(ParamRegResponse, 0, "at least 1")
	}
	return RegResponse{Lifetime: contents[0], Types: contents[1:]}, nil
}

// ParseRegFailed parses REG_FAILED contents: the Failure Type and zero or
// more Registration Types. Types aliases contents.
func ParseRegFailed(contents []byte) (RegFailed, error) {
	if len(contents) < 1 {
		return RegFailed{}, lengthError(ParamRegFailed, 0, "at least 1")
	}
	return RegFailed{FailureType: contents[0], Types: contents[1:]}, nil
}

func (RegRequest) ParamType() ParamType  { return ParamRegRequest }
func (r RegRequest) Len() int            { return 1 + len(r.Types) }
func (r RegRequest) Encode(b []byte)     { b[0] = r.Lifetime; copy(b[1:], r.Types) }
func (RegResponse) ParamType() ParamType { return ParamRegResponse }
func (r RegResponse) Len() int           { return 1 + len(r.Types) }
func (r RegResponse) Encode(b []byte)    { b[0] = r.Lifetime; copy(b[1:], r.Types) }
func (RegFailed) ParamType() ParamType   { return ParamRegFailed }
func (r RegFailed) Len() int             { return 1 + len(r.Types) }
func (r RegFailed) Encode(b []byte)      { b[0] = r.FailureType; copy(b[1:], r.Types) }
