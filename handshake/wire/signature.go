package wire

import (
	"encoding/binary"
	"fmt"
)

// Signature is the HIP_SIGNATURE (RFC 7401 §5.2.14) or HIP_SIGNATURE_2
// (§5.2.15) parameter: SIG alg(16) | Signature. SIG alg takes the HI
// algorithm values (AlgRSA, AlgECDSA, ...). The signature covers
// AppendCovered (HIP_SIGNATURE) or AppendSignature2Covered (HIP_SIGNATURE_2)
// of the packet (§6.4.2); computing and checking it is the caller's job.
type Signature struct {
	Type ParamType // ParamHIPSignature or ParamHIPSignature2
	Alg  uint16
	Sig  []byte
}

// ParseSignature parses HIP_SIGNATURE contents: the algorithm and at least
// one octet of signature. Sig aliases contents. Type is set to
// ParamHIPSignature.
func ParseSignature(contents []byte) (Signature, error) {
	return parseSignature(ParamHIPSignature, contents)
}

// ParseSignature2 parses HIP_SIGNATURE_2 contents; Type is set to
// ParamHIPSignature2.
func ParseSignature2(contents []byte) (Signature, error) {
	return parseSignature(ParamHIPSignature2, contents)
}

func parseSignature(t ParamType, contents []byte) (Signature, error) {
	if len(contents) < 3 {
		return Signature{}, lengthError(t, len(contents), "at least 3")
	}
	return Signature{Type: t, Alg: binary.BigEndian.Uint16(contents), Sig: contents[2:]}, nil
}

// ParamType returns s.Type, or ParamHIPSignature if it is unset.
func (s Signature) ParamType() ParamType {
	if s.Type == 0 {
		return ParamHIPSignature
	}
	return s.Type
}
func (s Signature) Len() int { return 2 + len(s.Sig) }
func (s Signature) Encode(b []byte) {
	binary.BigEndian.PutUint16(b, s.Alg)
	copy(b[2:], s.Sig)
}
func (s Signature) validate() error {
	if t := s.ParamType(); t != ParamHIPSignature && t != ParamHIPSignature2 {
		return valueError(t, "Signature.Type must be HIP_SIGNATURE or HIP_SIGNATURE_2")
	}
	if len(s.Sig) < 1 || len(s.Sig) > 0xffff-2 {
		return valueError(s.ParamType(), fmt.Sprintf("signature of %d octets", len(s.Sig)))
	}
	return nil
}
