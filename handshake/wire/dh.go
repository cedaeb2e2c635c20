package wire

import (
	"encoding/binary"
	"fmt"
)

// DH Group IDs (RFC 7401 §5.2.7). Every group uses HKDF as its KDF. 1, 2, 5
// and 6 are deprecated; 3 MUST be implemented; 4 and 8 SHOULD.
const (
	DHGroupMODP1536  uint8 = 3  // 1536-bit MODP, RFC 3526
	DHGroupMODP3072  uint8 = 4  // 3072-bit MODP, RFC 3526
	DHGroupP256      uint8 = 7  // NIST P-256, RFC 5903
	DHGroupP384      uint8 = 8  // NIST P-384, RFC 5903
	DHGroupP521      uint8 = 9  // NIST P-521, RFC 5903
	DHGroupSECP160R1 uint8 = 10 // SECG secp160r1, Appendix D
	DHGroupMODP2048  uint8 = 11 // 2048-bit MODP, RFC 3526
)

// DHGroupName returns a short name of a DH Group ID, for printing.
func DHGroupName(g uint8) string {
	switch g {
	case DHGroupMODP1536:
		return "MODP-1536"
	case DHGroupMODP3072:
		return "MODP-3072"
	case DHGroupP256:
		return "P-256"
	case DHGroupP384:
		return "P-384"
	case DHGroupP521:
		return "P-521"
	case DHGroupSECP160R1:
		return "SECP160R1"
	case DHGroupMODP2048:
		return "MODP-2048"
	}
	return fmt.Sprintf("group%d", g)
}

// DiffieHellman is the DIFFIE_HELLMAN parameter (RFC 7401 §5.2.7):
// Group ID(8) | Public Value Length(16) | Public Value.
//
// HIPv2 carries a single public value per parameter ("A single
// DIFFIE_HELLMAN parameter may be included ... based on the DH Group ID
// selected"); HIPv1 (RFC 5201 §5.2.6) allowed a second Group ID and value to
// follow, which this package rejects as trailing octets.
type DiffieHellman struct {
	Group  uint8
	Public []byte
}

// ParseDiffieHellman parses DIFFIE_HELLMAN contents: the Public Value Length
// must be non-zero and account for every octet after the first three.
// Public aliases contents.
func ParseDiffieHellman(contents []byte) (DiffieHellman, error) {
	if len(contents) < 4 {
		return DiffieHellman{}, lengthError(ParamDiffieHellman, len(contents), "at least 4")
	}
	n := int(binary.BigEndian.Uint16(contents[1:]))
	if n == 0 || 3+n != len(contents) {
		return DiffieHellman{}, &ParamError{Type: ParamDiffieHellman, Offset: -1, Err: ErrParamLength,
			Detail: fmt.Sprintf("Public Value Length %d does not match the %d octets after it (one value per parameter in HIPv2)", n, len(contents)-3)}
	}
	return DiffieHellman{Group: contents[0], Public: contents[3:]}, nil
}

func (DiffieHellman) ParamType() ParamType { return ParamDiffieHellman }
func (d DiffieHellman) Len() int           { return 3 + len(d.Public) }
func (d DiffieHellman) Encode(b []byte) {
	b[0] = d.Group
	binary.BigEndian.PutUint16(b[1:], uint16(len(d.Public)))
	copy(b[3:], d.Public)
}
func (d DiffieHellman) validate() error {
	if len(d.Public) < 1 || len(d.Public) > 0xffff-3 {
		return valueError(ParamDiffieHellman, fmt.Sprintf("public value of %d octets", len(d.Public)))
	}
	return nil
}
