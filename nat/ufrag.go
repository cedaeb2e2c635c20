package nat

import (
	"encoding/hex"

	"hipnet.dev/handshake/wire"
)

// ufragLen is the length of an RFC 5770 §5.2 username fragment: 32 bits as
// lowercase hex, leading zeros kept.
const ufragLen = 8

// KeyLen is the length of the STUN key drawn from KEYMAT (RFC 5770 §5.2:
// "Both hosts draw a 128-bit key from the DH keying material").
const KeyLen = 16

// Ufrag returns the RFC 5770 §5.2 ICE username fragment of a HIT: its last
// 32 bits as 8 lowercase hex digits, leading zeros kept ("so that the
// username's size is fixed"). For 2001:15:8ebe:1aa7:42f5:b413:7237:6c0a it
// is "72376c0a"; for 2001:18:46fa:97c0:ba5:cd77:51:47b, "0051047b".
func Ufrag(h wire.HIT) string {
	var b [ufragLen]byte
	hex.Encode(b[:], h[12:])
	return string(b[:])
}

// Password formats the 16-octet STUN key drawn from KEYMAT as 32 lowercase
// hex digits (RFC 5770 §5.2). It is both the local and the peer password of
// the connectivity checks, and the key of their MESSAGE-INTEGRITY (STUN
// short-term credentials, RFC 8489 §9.1).
func Password(key []byte) string { return hex.EncodeToString(key) }

// username returns the USERNAME of a Binding request that the owner of
// recipient receives from the owner of sender: "<recipient>:<sender>"
// (RFC 8445 §7.2.2, RFC 5770 §5.2).
func username(recipient, sender wire.HIT) string {
	return Ufrag(recipient) + ":" + Ufrag(sender)
}
