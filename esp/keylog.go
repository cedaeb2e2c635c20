package esp

import (
	"encoding/hex"
	"strconv"
)

// Wireshark's ESP dissector reads its security associations from the
// "esp_sa" UAT file in the personal configuration directory
// ($XDG_CONFIG_HOME/wireshark/esp_sa, usually ~/.config/wireshark/esp_sa),
// or from "-o uat:esp_sa:<line>" on the tshark command line. A line has
// eight quoted, comma-separated fields:
//
//	"Protocol","Src IP","Dest IP","SPI","Encryption","Encryption Key","Authentication","Authentication Key"
//
// The algorithm names must match the dissector's value strings exactly;
// they were checked against tshark 4.0.17, which decrypts packets sealed by
// this package with them (tshark_test.go).
//
// Extended sequence numbers: tshark 4.0 has no ESN setting. It decrypts
// correctly (neither CBC nor GCM decryption needs the high bits) but its
// optional ICV check (esp.enable_authentication_check) reports every HIP
// ICV as bad, because the high-order bits are part of the HMAC input and
// of the GCM AAD (RFC 4303 §2.2.1, RFC 4106 §5). Later Wireshark releases
// added two columns, "SN" and "ESN High Bits", which take their defaults
// (32-bit, 0) when a line stops after eight fields; tshark 4.0 in turn
// discards extra fields with a "More fields than required" warning. The
// value strings of the SN column could not be checked against an installed
// Wireshark, so lines stay at the eight fields every version reads; leave
// the ICV check off.

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
