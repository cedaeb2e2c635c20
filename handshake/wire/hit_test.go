package wire

import (
	"errors"
	"testing"
)

func TestHIT(t *testing.T) {
	h, err := ParseHIT("2001:21:af77:fa8f:b5a3:4b86:271e:89d1")
	if err != nil {
		t.Fatal(err)
	}
	if h.String() != "2001:21:af77:fa8f:b5a3:4b86:271e:89d1" || h.OGA() != HITSuiteRSADSASHA256 || !h.IsORCHIDv2() || h.IsZero() {
		t.Errorf("%v: oga %d", h, h.OGA())
	}
	if MustParseHIT("2001:2f::1").OGA() != 15 || MustParseHIT("2001:20::").OGA() != 0 {
		t.Error("OGA nibble")
	}
	for _, bad := range []string{
		"", "nonsense", "192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "2001:30::1", "2001:10::1", "2001:2::1",
		"fe80::1%eth0", "2001:20::1%1",
	} {
		if _, err := ParseHIT(bad); !errors.Is(err, ErrBadHIT) {
			t.Errorf("ParseHIT(%q): %v", bad, err)
		}
	}
	if _, err := ParseHIT("2001:2f:ffff:ffff:ffff:ffff:ffff:ffff"); err != nil {
		t.Errorf("top of the prefix: %v", err)
	}
	a, b := MustParseHIT("2001:20::1"), MustParseHIT("2001:20::2")
	hi := MustParseHIT("2001:2f::")
	if a.Compare(b) != -1 || b.Compare(a) != 1 || a.Compare(a) != 0 || hi.Compare(b) != 1 || b.Compare(hi) != -1 {
		t.Error("Compare")
	}
	// Unsigned: a top bit set must compare greater.
	var x, y HIT
	x[0], y[15] = 0x80, 0xff
	if x.Compare(y) != 1 {
		t.Error("Compare is not unsigned")
	}
	if !(HIT{}).IsZero() || (HIT{}).IsORCHIDv2() {
		t.Error("zero HIT")
	}
	if HITFromAddr(a.Addr()) != a {
		t.Error("Addr round trip")
	}
}
