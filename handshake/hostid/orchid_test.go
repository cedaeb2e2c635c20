package hostid

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"net/netip"
	"testing"
)

func hitString(h [16]byte) string { return netip.AddrFrom16(h).String() }

// HITFromHI against an independent computation: hash Context ID | HI with
// the suite's hash and keep the middle 96 bits, at offsets written out
// here from RFC 7343 §2 (drop (L-96)/2 bits on each side).
func TestHITFromHIIndependent(t *testing.T) {
	ctx := []byte{0xF0, 0xEF, 0xF0, 0x2F, 0xBF, 0xF4, 0x3D, 0x0F, 0xE7, 0x93, 0x0C, 0x3C, 0x6E, 0x61, 0x74, 0xEA}
	inputs := [][]byte{nil, []byte("a host identity"), testKey(t, ECDSAP256).Public().HI()}
	for _, hi := range inputs {
		in := append(append([]byte{}, ctx...), hi...)
		s256 := sha256.Sum256(in)
		s384 := sha512.Sum384(in)
		s1 := sha1.Sum(in)
		for _, tc := range []struct {
			suite  Suite
			prefix string
			middle []byte
		}{
			{SuiteRSADSASHA256, "2001:21:", s256[10:22]}, // (256-96)/2 = 80 bits = 10 octets
			{SuiteECDSASHA384, "2001:22:", s384[18:30]},  // (384-96)/2 = 144 bits = 18 octets
			{SuiteECDSALowSHA1, "2001:23:", s1[4:16]},    // (160-96)/2 = 32 bits = 4 octets
		} {
			var want [16]byte
			copy(want[:], []byte{0x20, 0x01, 0x00, 0x20 | byte(tc.suite)})
			copy(want[4:], tc.middle)
			got := HITFromHI(tc.suite, hi)
			if got != want {
				t.Fatalf("suite %v: HITFromHI = %x, want %x", tc.suite, got, want)
			}
			if s := hitString(got); s[:len(tc.prefix)] != tc.prefix {
				t.Fatalf("suite %v: HIT %s lacks prefix %s", tc.suite, s, tc.prefix)
			}
			if !netip.MustParsePrefix("2001:20::/28").Contains(netip.AddrFrom16(got)) {
				t.Fatalf("HIT %s outside 2001:20::/28", hitString(got))
			}
		}
	}
	for _, s := range []Suite{0, 4, 15} {
		if h := HITFromHI(s, []byte("x")); h != ([16]byte{}) {
			t.Fatalf("undefined suite %d gave HIT %x", s, h)
		}
	}
}
