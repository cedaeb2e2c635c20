package esp

import (
	"encoding/hex"
	"strconv"
)

// Wireshark's ESP dissector reads its security associations from the
// "esp_sa" UAT file in the Wireshark configuration directory
// (~/.config/wireshark/esp_sa). Each line has eight quoted, comma-separated
// fields:
//
//	"Protocol","Src IP","Dest IP","SPI","Encryption","Encryption Key","Authentication","Authentication Key"
//
// The algorithm names must match the dissector's value strings exactly
// (checked against tshark 4.0). Wireshark releases that added the "SN" and
// "ESN High Bits" columns fill them with their defaults ("32-bit", 0) when
// a line has only eight fields. The dissector then assumes 32-bit sequence
// numbers, which decrypts correctly (CBC and GCM need no ESN to decrypt)
// but makes its optional ICV check fail once the ESN high bits count: HIP
// ESP always uses ESN (RFC 7402 §3.3.6), so leave
// esp.enable_authentication_check off.

// AppendWiresharkSA appends one line of Wireshark's esp_sa file describing
// the SA c, newline included, and returns the extended slice. ipFamily is
// "IPv4" or "IPv6" (anything else becomes "Any"); source and destination
// are wildcards so the line keeps matching when the peer moves (RFC 8046).
// For an unsupported suite dst is returned unchanged.
//
// The line holds key material: write it only to a debugging key log.
func AppendWiresharkSA(dst []byte, ipFamily string, c Config) []byte {
	var encAlg, authAlg string
	switch c.Suite {
	case SuiteNullSHA256:
		encAlg, authAlg = "NULL", "HMAC-SHA-256-128 [RFC4868]"
	case SuiteAES128CBCSHA256, SuiteAES256CBCSHA256:
		// One name for both key sizes: the dissector picks AES-128 or
		// AES-256 from the key length.
		encAlg, authAlg = "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"
	case SuiteAESGCM16:
		// The key is the AES key followed by the 4-octet salt, the layout
		// of Suite.KeyLen (RFC 4106 §8.1), which is also what Wireshark
		// expects for this algorithm.
		encAlg, authAlg = "AES-GCM with 16 octet ICV [RFC4106]", "NULL"
	default:
		return dst
	}
	switch ipFamily {
	case "IPv4", "IPv6":
	default:
		ipFamily = "Any"
	}
	dst = appendQuoted(dst, ipFamily)
	dst = append(dst, `,"*","*","0x`...)
	var spi [8]byte
	s := strconv.AppendUint(spi[:0], uint64(c.SPI), 16)
	for range 8 - len(s) {
		dst = append(dst, '0')
	}
	dst = append(dst, s...)
	dst = append(dst, `",`...)
	dst = appendQuoted(dst, encAlg)
	dst = append(dst, ',')
	dst = appendHexKey(dst, c.EncKey)
	dst = append(dst, ',')
	dst = appendQuoted(dst, authAlg)
	dst = append(dst, ',')
	dst = appendHexKey(dst, c.AuthKey)
	return append(dst, '\n')
}

func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendHexKey writes "0x<hex>", or "" for an empty key.
func appendHexKey(dst []byte, k []byte) []byte {
	dst = append(dst, '"')
	if len(k) > 0 {
		dst = append(dst, "0x"...)
		dst = hex.AppendEncode(dst, k)
	}
	return append(dst, '"')
}
