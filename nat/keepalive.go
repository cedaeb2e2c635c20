package nat

import (
	"crypto/rand"
	"encoding/binary"

	"github.com/pion/stun/v4"
)

// Keepalive appends an RFC 5770 §5.3 keepalive to dst and returns the
// extended slice: a STUN Binding Indication (RFC 8489 §5) with a random
// transaction ID and only the FINGERPRINT attribute (§14.7), which the
// keepalive "MUST contain" while it "SHOULD NOT contain any other STUN
// attributes and SHOULD NOT utilize any authentication mechanism". It is
// sent as it is on the node socket, with no non-ESP marker before it.
// RFC 5770 §4.7: a host sends one at least every 15 seconds when the
// channel is idle. It writes in dst's spare capacity, so it allocates only
// when dst lacks room.
func Keepalive(dst []byte) []byte {
	m := stun.Message{Raw: dst[len(dst):]}
	m.Type = stun.MessageType{Method: stun.MethodBinding, Class: stun.ClassIndication}
	_, _ = rand.Read(m.TransactionID[:]) // crypto/rand never fails (Go 1.24)
	m.WriteHeader()
	// FINGERPRINT by hand rather than stun.Fingerprint.AddTo, which
	// allocates its 4-octet value: "the CRC-32 of the STUN message up to
	// (but excluding) the FINGERPRINT attribute itself, XOR'ed with
	// 0x5354554e" (RFC 8489 §14.7; stun.FingerprintValue), with the
	// header's length already counting the attribute.
	m.Raw = binary.BigEndian.AppendUint16(m.Raw, uint16(stun.AttrFingerprint))
	m.Raw = binary.BigEndian.AppendUint16(m.Raw, 4)
	binary.BigEndian.PutUint16(m.Raw[2:4], 8) // Message Length
	m.Raw = binary.BigEndian.AppendUint32(m.Raw, stun.FingerprintValue(m.Raw[:stunHeaderLen]))
	return append(dst, m.Raw...)
}

// keepaliveLen is the length of a keepalive: the STUN header and a
// FINGERPRINT attribute (4 octets of type and length, 4 of CRC).
const keepaliveLen = stunHeaderLen + 8

// IsKeepalive reports whether b is exactly what Keepalive builds: a
// Binding Indication holding only a correct FINGERPRINT (RFC 5770 §5.3).
// It allocates nothing.
func IsKeepalive(b []byte) bool {
	if len(b) != keepaliveLen || !IsSTUN(b) {
		return false
	}
	var t stun.MessageType
	t.ReadValue(binary.BigEndian.Uint16(b[0:2]))
	return t.Method == stun.MethodBinding && t.Class == stun.ClassIndication &&
		stun.AttrType(binary.BigEndian.Uint16(b[20:])) == stun.AttrFingerprint &&
		binary.BigEndian.Uint16(b[22:]) == 4 &&
		binary.BigEndian.Uint32(b[24:]) == stun.FingerprintValue(b[:20])
}
