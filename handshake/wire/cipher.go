package wire

import "fmt"

// HIP cipher IDs for the ENCRYPTED parameter (RFC 7401 §5.2.8). 0 and 3 are
// reserved. AES-128-CBC is mandatory; NULL is for testing only and MUST NOT
// be offered or accepted unless configured.
const (
	CipherNULL      uint16 = 1 // RFC 2410
	CipherAES128CBC uint16 = 2 // RFC 3602
	CipherAES256CBC uint16 = 4 // RFC 3602
)

// CipherName returns a short name of a HIP cipher ID, for printing.
func CipherName(id uint16) string {
	switch id {
	case CipherNULL:
		return "NULL"
	case CipherAES128CBC:
		return "AES-128-CBC"
	case CipherAES256CBC:
		return "AES-256-CBC"
	}
	return fmt.Sprintf("cipher%d", id)
}

// CipherIVLen returns the IV length the ENCRYPTED parameter carries for a
// HIP cipher ("the length of the IV is inferred from the HIP_CIPHER",
// §5.2.18): the AES block size for AES-CBC (RFC 3602 §3), none for NULL.
func CipherIVLen(id uint16) (int, bool) {
	switch id {
	case CipherNULL:
		return 0, true
	case CipherAES128CBC, CipherAES256CBC:
		return 16, true
	}
	return 0, false
}

// HIPCipher is the HIP_CIPHER parameter (RFC 7401 §5.2.8): 16-bit cipher IDs
// in order of preference in R1, the single chosen one in I2.
type HIPCipher struct {
	IDs U16List
}

// ParseHIPCipher parses HIP_CIPHER contents: a non-empty whole number of
// 16-bit IDs. A sender MUST NOT send more than six; "a recipient MUST be
// prepared to handle ... more than six Cipher IDs by accepting the first six
// Cipher IDs and dropping the rest" (§5.2.8), so IDs holds at most six.
// IDs aliases contents.
func ParseHIPCipher(contents []byte) (HIPCipher, error) {
	l, err := parseU16List(ParamHIPCipher, contents)
	if err != nil {
		return HIPCipher{}, err
	}
	if len(l) > 2*MaxListIDs {
		l = l[: 2*MaxListIDs : 2*MaxListIDs]
	}
	return HIPCipher{IDs: l}, nil
}

func (HIPCipher) ParamType() ParamType { return ParamHIPCipher }
func (c HIPCipher) Len() int           { return len(c.IDs) }
func (c HIPCipher) Encode(b []byte)    { copy(b, c.IDs) }
func (c HIPCipher) validate() error    { return validateU16List(ParamHIPCipher, c.IDs, MaxListIDs) }
