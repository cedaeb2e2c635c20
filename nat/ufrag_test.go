package nat

import (
	"testing"

	"hipnet.dev/handshake/wire"
)

// TestUfragRFC5770 uses the example of RFC 5770 §5.2. Those HITs are RFC
// 5201 ones (2001:10::/28), outside ORCHIDv2, so they are built with
// HITFromAddr.
func TestUfragRFC5770(t *testing.T) {
	for _, tc := range []struct{ hit, ufrag string }{
		{"2001:15:8ebe:1aa7:42f5:b413:7237:6c0a", "72376c0a"},
		{"2001:18:46fa:97c0:ba5:cd77:51:47b", "0051047b"},
		{"2001:20::", "00000000"},
		{"2001:2f:ffff:ffff:ffff:ffff:ffff:ffff", "ffffffff"},
	} {
		h := wire.HITFromAddr(mustAddr(tc.hit))
		if got := Ufrag(h); got != tc.ufrag {
			t.Errorf("Ufrag(%s) = %q, want %q", tc.hit, got, tc.ufrag)
		}
	}
	local := wire.HITFromAddr(mustAddr("2001:15:8ebe:1aa7:42f5:b413:7237:6c0a"))
	remote := wire.HITFromAddr(mustAddr("2001:18:46fa:97c0:ba5:cd77:51:47b"))
	// The remote host's requests to the local one carry "local:remote".
	if got := username(local, remote); got != "72376c0a:0051047b" {
		t.Errorf("username = %q", got)
	}
}

func TestPassword(t *testing.T) {
	key := []byte{0x00, 0x01, 0x0a, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xcd}
	const want = "00010aff102030405060708090a0b0cd"
	if got := Password(key); got != want {
		t.Errorf("Password = %q, want %q", got, want)
	}
	if len(Password(testKey)) != 32 {
		t.Errorf("password of a 16-octet key is not 32 characters")
	}
}
