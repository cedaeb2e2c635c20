package wire

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// appendixCI1 is the I1 of RFC 7401 Appendix C (bytes as in CODEPOINTS.md
// §16), with the checksum field zero.
func appendixCI1(t *testing.T) []byte {
	t.Helper()
	s := strings.NewReplacer(" ", "", "|", "").Replace(
		"3b 05 01 21 0000 0000 | 20010020000000000000000000000001 | 20010020000000000000000000000002 | 01ff 0003 03 04 08 00")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChecksumAppendixC(t *testing.T) {
	pkt := appendixCI1(t)
	if len(pkt) != 48 {
		t.Fatalf("vector is %d octets, Appendix C says 48", len(pkt))
	}

	// The same packet built from structs must be byte-identical.
	s, r := MustParseHIT("2001:20::1"), MustParseHIT("2001:20::2")
	b := NewBuilder(nil, I1, s, r)
	b.Add(MakeDHGroupList(DHGroupMODP1536, DHGroupMODP3072, DHGroupP384))
	built, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, pkt) {
		t.Fatalf("built I1\n%x\nwant\n%x", built, pkt)
	}

	for _, tc := range []struct {
		name     string
		src, dst string
		want     uint16
	}{
		{"C.1 IPv6", "2001:db8::1", "2001:db8::2", 0x1a5e},
		{"C.2 IPv4", "192.0.2.1", "192.0.2.2", 0xf1ce},
		{"C.2 IPv4-mapped", "::ffff:192.0.2.1", "::ffff:192.0.2.2", 0xf1ce},
	} {
		src, dst := netip.MustParseAddr(tc.src), netip.MustParseAddr(tc.dst)
		if got := Checksum(pkt, src, dst); got != tc.want {
			t.Errorf("%s: Checksum = 0x%04x, want 0x%04x", tc.name, got, tc.want)
		}
		// The checksum field is taken as zero: a filled-in field must not change the result.
		q := bytes.Clone(pkt)
		FillChecksum(q, src, dst)
		if got := Checksum(q, src, dst); got != tc.want {
			t.Errorf("%s: Checksum with field set = 0x%04x, want 0x%04x", tc.name, got, tc.want)
		}
		p, err := ParsePacket(q)
		if err != nil {
			t.Fatal(err)
		}
		if p.Checksum() != tc.want || !p.VerifyChecksum(src, dst) {
			t.Errorf("%s: VerifyChecksum false for field 0x%04x", tc.name, p.Checksum())
		}
		q[len(q)-2] ^= 0x01 // padding octet changes the sum
		if p.VerifyChecksum(src, dst) {
			t.Errorf("%s: VerifyChecksum true after corrupting the packet", tc.name)
		}
	}
	// A wrong address must fail.
	p, _ := ParsePacket(pkt)
	p.SetChecksum(0x1a5e)
	if p.VerifyChecksum(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::3")) {
		t.Error("VerifyChecksum true with a different destination address")
	}
}
