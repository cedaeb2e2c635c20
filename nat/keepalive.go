package nat

import (
	"crypto/rand"
	"encoding/binary"
	"hash/crc32"
)

// keepaliveLen is the length of a keepalive: the STUN header and a
// FINGERPRINT attribute (4 octets of type and length, 4 of CRC).
const keepaliveLen = stunHeaderLen + 8

// Keepalive appends an RFC 5770 §5.3 keepalive to dst and returns the
// extended slice: a STUN Binding Indication (RFC 8489 §5) with a random
// transaction ID and only the FINGERPRINT attribute (§14.7), which the
// keepalive "MUST contain" while it "SHOULD NOT contain any other STUN
// attributes and SHOULD NOT utilize any authentication mechanism". It is
// sent as it is on the node socket, with no non-ESP marker before it.
// RFC 5770 §4.7: a host sends one at least every 15 seconds when the
// channel is idle. It allocates only when dst lacks room.
func Keepalive(dst []byte) []byte {
	off := len(dst)
	dst = append(dst, make([]byte, keepaliveLen)...)
	b := dst[off:]
	binary.BigEndian.PutUint16(b[0:], 0x0011) // Binding, class indication
	binary.BigEndian.PutUint16(b[2:], 8)      // Message Length: the FINGERPRINT
	binary.BigEndian.PutUint32(b[4:], stunMagicCookie)
	_, _ = rand.Read(b[8:20]) // never fails (crypto/rand, Go 1.24)
	binary.BigEndian.PutUint16(b[20:], attrFingerprint)
	binary.BigEndian.PutUint16(b[22:], 4)
	// "the CRC-32 of the STUN message up to (but excluding) the
	// FINGERPRINT attribute itself, XOR'ed with the 32-bit value
	// 0x5354554e" (RFC 8489 §14.7); the header's length already counts it.
	binary.BigEndian.PutUint32(b[24:], crc32.ChecksumIEEE(b[:20])^fingerprintXOR)
	return dst
}
