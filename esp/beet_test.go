package esp_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"hipnet.dev/esp"
)

var (
	hit1 = netip.MustParseAddr("2001:20::1").As16()
	hit2 = netip.MustParseAddr("2001:20::2").As16()
)

// RFC 7401 Appendix C.3: a TCP SYN between the HITs 2001:20::1 and
// 2001:20::2 has checksum 0x6faa under the HIT pseudo-header.
func TestHITPseudoHeaderRFC7401C3(t *testing.T) {
	seg := []byte{
		0xff, 0xdc, 0x00, 0x16, // ports 65500 -> 22
		0, 0, 0, 1, // sequence number
		0, 0, 0, 0, // acknowledgment number
		0x50, 0x02, 0xff, 0xff, // data offset 5, SYN, window 65535
		0, 0, 0, 0, // checksum, urgent pointer
	}
	if got := esp.HITChecksumForTest(hit1, hit2, 6, seg); got != 0x6faa {
		t.Fatalf("checksum %#04x, want 0x6faa", got)
	}
}

// refChecksum is a plain RFC 1071 16-bit loop, independent of the
// package's 64-bit one.
func refChecksum(src, dst [16]byte, seg []byte) uint16 {
	var b []byte
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(seg)))
	b = append(b, 0, 0, 0, 17)
	b = append(b, seg...)
	if len(b)%2 == 1 {
		b = append(b, 0)
	}
	var s uint32
	for i := 0; i < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestUDPRoundTrip(t *testing.T) {
	for n := 0; n <= 300; n++ {
		payload := seqBytes(byte(n*7), n)
		seg := esp.AppendUDP([]byte("pre"), hit1, hit2, 40000, 8883, payload)[3:]
		if len(seg) != 8+n || binary.BigEndian.Uint16(seg[4:]) != uint16(8+n) {
			t.Fatalf("n=%d: length", n)
		}
		// Independent check: zero the field and recompute.
		c := binary.BigEndian.Uint16(seg[6:])
		z := append([]byte(nil), seg...)
		z[6], z[7] = 0, 0
		want := refChecksum(hit1, hit2, z)
		if want == 0 {
			want = 0xffff
		}
		if c != want {
			t.Fatalf("n=%d: checksum %#04x, reference %#04x", n, c, want)
		}
		sp, dp, p, err := esp.ParseUDP(seg, hit1, hit2)
		if err != nil || sp != 40000 || dp != 8883 || !bytes.Equal(p, payload) {
			t.Fatalf("n=%d: ParseUDP = %d %d %v", n, sp, dp, err)
		}
		// TFC padding after the datagram is ignored (RFC 4303 §2.7).
		if _, _, p, err := esp.ParseUDP(append(seg, 0, 0, 0), hit1, hit2); err != nil || !bytes.Equal(p, payload) {
			t.Fatalf("n=%d: with TFC padding: %v", n, err)
		}
	}
}

func TestParseUDPRejects(t *testing.T) {
	seg := esp.AppendUDP(nil, hit1, hit2, 1, 2, []byte("hello, HIT"))
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), seg...)) }
	cases := []struct {
		name     string
		seg      []byte
		src, dst [16]byte
		want     error
	}{
		{"short", seg[:7], hit1, hit2, esp.ErrShortPacket},
		{"length past end", mod(func(b []byte) []byte { b[5]++; return b }), hit1, hit2, esp.ErrMalformed},
		{"length below 8", mod(func(b []byte) []byte { b[4], b[5] = 0, 7; return b }), hit1, hit2, esp.ErrMalformed},
		{"payload flipped", mod(func(b []byte) []byte { b[9] ^= 1; return b }), hit1, hit2, esp.ErrChecksum},
		{"zero checksum", mod(func(b []byte) []byte { b[6], b[7] = 0, 0; return b }), hit1, hit2, esp.ErrChecksum},
		{"other HIT pair", seg, hit1, hit1, esp.ErrChecksum},
		{"truncated length", mod(func(b []byte) []byte { b[5]--; return b }), hit1, hit2, esp.ErrChecksum},
	}
	for _, c := range cases {
		if _, _, _, err := esp.ParseUDP(c.seg, c.src, c.dst); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// The checksum of a segment is never sent as zero (RFC 768).
func TestUDPChecksumZeroBecomesOnes(t *testing.T) {
	// Find a payload whose computed checksum is 0: adjust two octets.
	for x := 0; x < 1<<16; x++ {
		p := []byte{byte(x >> 8), byte(x)}
		seg := esp.AppendUDP(nil, hit1, hit2, 1, 2, p)
		if binary.BigEndian.Uint16(seg[6:]) == 0xffff {
			if _, _, _, err := esp.ParseUDP(seg, hit1, hit2); err != nil {
				t.Fatalf("all-ones checksum rejected: %v", err)
			}
			return
		}
	}
	t.Fatal("no payload produced a zero checksum")
}
