package wire

import "fmt"

// maxMACLen bounds a received HMAC: 64 octets, the longest natural hash
// output a suite could use. The suites of RFC 7401 give 20, 32 and 48.
const maxMACLen = 64

// HIPMAC is the HIP_MAC parameter (RFC 7401 §5.2.12): an HMAC over the
// packet up to this parameter, with RHASH as the hash; its size is the
// natural output size of that hash. The HMAC itself is computed by the
// caller over AppendCovered (§6.4.1).
type HIPMAC struct {
	MAC []byte
}

// HIPMAC2 is the HIP_MAC_2 parameter of R2 (RFC 7401 §5.2.13), laid out as
// HIP_MAC but computed with the Responder's HOST_ID appended
// (AppendMAC2Covered, §6.4.1).
type HIPMAC2 struct {
	MAC []byte
}

// ParseHIPMAC parses HIP_MAC contents: 1 to 64 octets of HMAC. MAC aliases
// contents. The caller checks the length against its RHASH.
func ParseHIPMAC(contents []byte) (HIPMAC, error) {
	if err := checkMACLen(ParamHIPMAC, contents); err != nil {
		return HIPMAC{}, err
	}
	return HIPMAC{MAC: contents}, nil
}

// ParseHIPMAC2 parses HIP_MAC_2 contents, as ParseHIPMAC.
func ParseHIPMAC2(contents []byte) (HIPMAC2, error) {
	if err := checkMACLen(ParamHIPMAC2, contents); err != nil {
		return HIPMAC2{}, err
	}
	return HIPMAC2{MAC: contents}, nil
}

func checkMACLen(t ParamType, b []byte) error {
	if len(b) < 1 || len(b) > maxMACLen {
		return lengthError(t, len(b), fmt.Sprintf("1..%d", maxMACLen))
	}
	return nil
}

func (HIPMAC) ParamType() ParamType  { return ParamHIPMAC }
func (m HIPMAC) Len() int            { return len(m.MAC) }
func (m HIPMAC) Encode(b []byte)     { copy(b, m.MAC) }
func (m HIPMAC) validate() error     { return validateMAC(ParamHIPMAC, m.MAC) }
func (HIPMAC2) ParamType() ParamType { return ParamHIPMAC2 }
func (m HIPMAC2) Len() int           { return len(m.MAC) }
func (m HIPMAC2) Encode(b []byte)    { copy(b, m.MAC) }
func (m HIPMAC2) validate() error    { return validateMAC(ParamHIPMAC2, m.MAC) }

func validateMAC(t ParamType, mac []byte) error {
	if len(mac) < 1 || len(mac) > maxMACLen {
		return valueError(t, fmt.Sprintf("HMAC of %d octets, want 1..%d", len(mac), maxMACLen))
	}
	return nil
}
