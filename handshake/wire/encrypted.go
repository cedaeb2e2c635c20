package wire

import "fmt"

// Encrypted is the ENCRYPTED parameter (RFC 7401 §5.2.18):
// Reserved(32) | IV | Encrypted data. The IV length is not on the wire: it
// follows from the HIP_CIPHER chosen (CipherIVLen). The encrypted data holds
// one or more whole parameters (typically HOST_ID) once decrypted, plus the
// cipher's own padding, which TLV lengths do not count; after decrypting,
// walk them with IterParams / CheckParams.
type Encrypted struct {
	IV   []byte
	Data []byte
}

// ParseEncrypted parses ENCRYPTED contents for a cipher whose IV is ivLen
// octets: 4 reserved octets, the IV, and at least one octet of data. IV and
// Data alias contents.
func ParseEncrypted(contents []byte, ivLen int) (Encrypted, error) {
	if ivLen < 0 || len(contents) < 4+ivLen+1 {
		return Encrypted{}, lengthError(ParamEncrypted, len(contents), fmt.Sprintf("at least 4 + IV %d + 1", ivLen))
	}
	iv := contents[4 : 4+ivLen : 4+ivLen]
	return Encrypted{IV: iv, Data: contents[4+ivLen:]}, nil
}

func (Encrypted) ParamType() ParamType { return ParamEncrypted }
func (e Encrypted) Len() int           { return 4 + len(e.IV) + len(e.Data) }
func (e Encrypted) Encode(b []byte) {
	copy(b[4:], e.IV)
	copy(b[4+len(e.IV):], e.Data)
}
func (e Encrypted) validate() error {
	if len(e.Data) < 1 {
		return valueError(ParamEncrypted, "no encrypted data")
	}
	return nil
}
