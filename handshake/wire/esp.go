package wire

import (
	"encoding/binary"
	"fmt"
)

// TransportFormatESP is the transport format type of ESP in
// TRANSPORT_FORMAT_LIST: the type number of ESP_TRANSFORM (RFC 7402 §4.1.1).
const TransportFormatESP uint16 = 4095

// ESP transform suite IDs (RFC 7402 §5.1.2). 0 is reserved and 2-6 are
// deprecated. Suite 8 is mandatory; 7 SHOULD be supported.
const (
	ESPSuiteAES128CBCSHA1   uint16 = 1
	ESPSuiteNULLSHA256      uint16 = 7
	ESPSuiteAES128CBCSHA256 uint16 = 8
	ESPSuiteAES256CBCSHA256 uint16 = 9
	ESPSuiteAESCCM8         uint16 = 10
	ESPSuiteAESCCM16        uint16 = 11
	ESPSuiteAESGCM8         uint16 = 12 // 8-octet ICV, RFC 4106
	ESPSuiteAESGCM16        uint16 = 13 // 16-octet ICV, RFC 4106
	ESPSuiteAESCMAC96       uint16 = 14
	ESPSuiteAESGMAC         uint16 = 15
)

// ESPSuiteName returns a short name of an ESP suite ID, for printing.
func ESPSuiteName(id uint16) string {
	switch id {
	case ESPSuiteAES128CBCSHA1:
		return "AES-128-CBC/HMAC-SHA1"
	case ESPSuiteNULLSHA256:
		return "NULL/HMAC-SHA-256"
	case ESPSuiteAES128CBCSHA256:
		return "AES-128-CBC/HMAC-SHA-256"
	case ESPSuiteAES256CBCSHA256:
		return "AES-256-CBC/HMAC-SHA-256"
	case ESPSuiteAESCCM8:
		return "AES-CCM-8"
	case ESPSuiteAESCCM16:
		return "AES-CCM-16"
	case ESPSuiteAESGCM8:
		return "AES-GCM-8"
	case ESPSuiteAESGCM16:
		return "AES-GCM-16"
	case ESPSuiteAESCMAC96:
		return "AES-CMAC-96"
	case ESPSuiteAESGMAC:
		return "AES-GMAC"
	}
	return fmt.Sprintf("suite%d", id)
}

// ESPInfo is the ESP_INFO parameter (RFC 7402 §5.1.1):
// Reserved(16) | KEYMAT Index(16) | OLD SPI(32) | NEW SPI(32), Length 12.
type ESPInfo struct {
	KeymatIndex uint16 // octet index in KEYMAT where ESP keys are drawn
	OldSPI      uint32 // zero on initial setup
	NewSPI      uint32 // the SPI the peer is to use towards the sender
}

const espInfoLen = 12

// ParseESPInfo parses ESP_INFO contents (exactly 12 octets).
func ParseESPInfo(contents []byte) (ESPInfo, error) {
	if len(contents) != espInfoLen {
		return ESPInfo{}, lengthError(ParamESPInfo, len(contents), "12")
	}
	return ESPInfo{
		KeymatIndex: binary.BigEndian.Uint16(contents[2:]),
		OldSPI:      binary.BigEndian.Uint32(contents[4:]),
		NewSPI:      binary.BigEndian.Uint32(contents[8:]),
	}, nil
}

func (ESPInfo) ParamType() ParamType { return ParamESPInfo }
func (ESPInfo) Len() int             { return espInfoLen }
func (e ESPInfo) Encode(b []byte) {
	binary.BigEndian.PutUint16(b[2:], e.KeymatIndex)
	binary.BigEndian.PutUint32(b[4:], e.OldSPI)
	binary.BigEndian.PutUint32(b[8:], e.NewSPI)
}

// ESPTransform is the ESP_TRANSFORM parameter (RFC 7402 §5.1.2):
// Reserved(16) then 16-bit suite IDs, in order of preference in R1, the one
// selected in I2.
type ESPTransform struct {
	Suites U16List
}

// ParseESPTransform parses ESP_TRANSFORM contents: 2 reserved octets and at
// least one suite ID. A sender MUST NOT send more than six, and a recipient
// "MUST be prepared to handle" more; unlike HIP_CIPHER the text does not say
// to drop the rest, so all are kept. Suites aliases contents.
func ParseESPTransform(contents []byte) (ESPTransform, error) {
	if len(contents) < 4 || len(contents)%2 != 0 {
		return ESPTransform{}, lengthError(ParamESPTransform, len(contents), "2 reserved octets and a non-zero multiple of 2")
	}
	return ESPTransform{Suites: U16List(contents[2:])}, nil
}

func (ESPTransform) ParamType() ParamType { return ParamESPTransform }
func (e ESPTransform) Len() int           { return 2 + len(e.Suites) }
func (e ESPTransform) Encode(b []byte)    { copy(b[2:], e.Suites) }
func (e ESPTransform) validate() error {
	return validateU16List(ParamESPTransform, e.Suites, MaxListIDs)
}
