package wire

import (
	"errors"
	"testing"
)

// lengthCase is one contents length a ParseXxx must accept or reject.
type lengthCase struct {
	n  int
	ok bool
}

// TestParamLengths checks, per decoder, the shortest accepted contents, one
// octet less, and over-long or misaligned contents.
func TestParamLengths(t *testing.T) {
	parsers := []struct {
		t     ParamType
		parse func([]byte) error
		cases []lengthCase
	}{
		{ParamR1Counter, func(c []byte) error { _, err := ParseR1Counter(c); return err },
			[]lengthCase{{11, false}, {12, true}, {13, false}, {0, false}}},
		{ParamPuzzle, func(c []byte) error { _, err := ParsePuzzle(c); return err },
			[]lengthCase{{4, false}, {5, true}, {12, true}, {36, true}, {68, true}, {69, false}}},
		{ParamSolution, func(c []byte) error { _, err := ParseSolution(c); return err },
			[]lengthCase{{5, false}, {6, true}, {7, false}, {20, true}, {68, true}, {69, false}, {132, true}, {134, false}}},
		{ParamDHGroupList, func(c []byte) error { _, err := ParseDHGroupList(c); return err },
			[]lengthCase{{0, false}, {1, true}, {255, true}}},
		{ParamHIPCipher, func(c []byte) error { _, err := ParseHIPCipher(c); return err },
			[]lengthCase{{0, false}, {1, false}, {2, true}, {3, false}, {12, true}, {14, true}}},
		{ParamHITSuiteList, func(c []byte) error { _, err := ParseHITSuiteList(c); return err },
			[]lengthCase{{0, false}, {1, true}, {16, true}}},
		{ParamTransportFormatList, func(c []byte) error { _, err := ParseTransportFormatList(c); return err },
			[]lengthCase{{0, false}, {1, false}, {2, true}, {5, false}, {6, true}}},
		{ParamESPTransform, func(c []byte) error { _, err := ParseESPTransform(c); return err },
			[]lengthCase{{2, false}, {3, false}, {4, true}, {5, false}, {14, true}, {16, true}}},
		{ParamESPInfo, func(c []byte) error { _, err := ParseESPInfo(c); return err },
			[]lengthCase{{11, false}, {12, true}, {13, false}, {16, false}}},
		{ParamHIPMAC, func(c []byte) error { _, err := ParseHIPMAC(c); return err },
			[]lengthCase{{0, false}, {1, true}, {64, true}, {65, false}}},
		{ParamHIPMAC2, func(c []byte) error { _, err := ParseHIPMAC2(c); return err },
			[]lengthCase{{0, false}, {1, true}, {64, true}, {65, false}}},
		{ParamHIPSignature, func(c []byte) error { _, err := ParseSignature(c); return err },
			[]lengthCase{{2, false}, {3, true}, {514, true}}},
		{ParamHIPSignature2, func(c []byte) error { _, err := ParseSignature2(c); return err },
			[]lengthCase{{2, false}, {3, true}}},
		{ParamSeq, func(c []byte) error { _, err := ParseSeq(c); return err },
			[]lengthCase{{3, false}, {4, true}, {5, false}, {8, false}}},
		{ParamAck, func(c []byte) error { _, err := ParseAck(c); return err },
			[]lengthCase{{0, false}, {3, false}, {4, true}, {6, false}, {8, true}}},
		{ParamEncrypted, func(c []byte) error { _, err := ParseEncrypted(c, 16); return err },
			[]lengthCase{{20, false}, {21, true}, {200, true}}},
		{ParamNotification, func(c []byte) error { _, err := ParseNotification(c); return err },
			[]lengthCase{{3, false}, {4, true}, {100, true}}},
		{ParamEchoRequestSigned, func(c []byte) error { _, err := ParseEcho(c); return err },
			[]lengthCase{{0, true}, {1, true}, {100, true}}},
	}
	for _, p := range parsers {
		for _, c := range p.cases {
			err := p.parse(make([]byte, c.n))
			switch {
			case c.ok && err != nil:
				t.Errorf("%v: %d octets rejected: %v", p.t, c.n, err)
			case !c.ok && !errors.Is(err, ErrParamLength):
				t.Errorf("%v: %d octets: error %v, want ErrParamLength", p.t, c.n, err)
			}
		}
	}
}

// TestEncryptedIVLen: the IV length comes from the cipher, not the wire.
func TestEncryptedIVLen(t *testing.T) {
	c := fill(4+16+32, 0)
	e, err := ParseEncrypted(c, 16)
	if err != nil || len(e.IV) != 16 || len(e.Data) != 32 || e.IV[0] != c[4] || e.Data[0] != c[20] {
		t.Errorf("AES: %v %d %d", err, len(e.IV), len(e.Data))
	}
	e, err = ParseEncrypted(c, 0)
	if err != nil || len(e.IV) != 0 || len(e.Data) != 48 {
		t.Errorf("NULL: %v %d %d", err, len(e.IV), len(e.Data))
	}
	if _, err := ParseEncrypted(c, -1); !errors.Is(err, ErrParamLength) {
		t.Errorf("negative IV length: %v", err)
	}
	for id, want := range map[uint16]int{CipherNULL: 0, CipherAES128CBC: 16, CipherAES256CBC: 16} {
		if n, ok := CipherIVLen(id); !ok || n != want {
			t.Errorf("CipherIVLen(%d) = %d, %v", id, n, ok)
		}
	}
	if _, ok := CipherIVLen(3); ok {
		t.Error("CipherIVLen(3) known")
	}
}

// TestDiffieHellmanValues: the Public Value Length must match the contents
// exactly; a second value (RFC 5201 style) is rejected.
func TestDiffieHellmanValues(t *testing.T) {
	for _, c := range []struct {
		b  []byte
		ok bool
	}{
		{[]byte{7, 0, 1, 4}, true},
		{[]byte{7, 0, 0}, false},                // too short
		{[]byte{7, 0, 0, 4}, false},             // zero length value
		{[]byte{7, 0, 2, 4}, false},             // length beyond contents
		{[]byte{7, 0, 1, 4, 9}, false},          // trailing octet
		{[]byte{7, 0, 1, 4, 8, 0, 1, 5}, false}, // v1 two-value form
	} {
		d, err := ParseDiffieHellman(c.b)
		if c.ok != (err == nil) {
			t.Errorf("% x: %v", c.b, err)
		}
		if err != nil && !errors.Is(err, ErrParamLength) {
			t.Errorf("% x: error %v is not ErrParamLength", c.b, err)
		}
		if c.ok && (d.Group != 7 || len(d.Public) != 1 || d.Public[0] != 4) {
			t.Errorf("% x: %+v", c.b, d)
		}
	}
}

// TestHostIDFields checks the HI Length / DI-Type / DI Length split.
func TestHostIDFields(t *testing.T) {
	c := []byte{0, 3, 0x10, 2, 0, 7, 0, 1, 9, 'a', 'b'} // HI 3, DI-Type 1, DI 2
	h, err := ParseHostID(c)
	if err != nil {
		t.Fatal(err)
	}
	if h.Algorithm != AlgECDSA || string(h.HI) != "\x00\x01\x09" || h.DIType != DITypeFQDN || string(h.DI) != "ab" {
		t.Errorf("%+v", h)
	}
	if curve, pub, ok := h.ECC(); !ok || curve != 1 || len(pub) != 1 {
		t.Errorf("ECC: %d %x %v", curve, pub, ok)
	}
	if _, _, ok := (HostID{Algorithm: AlgRSA, HI: c}).ECC(); ok {
		t.Error("ECC on RSA")
	}
	// 12-bit DI Length: a DI-Type nibble must not leak into it.
	c2 := []byte{0, 1, 0xf0, 0, 0, 5, 1}
	if h, err := ParseHostID(c2); err != nil || h.DIType != 15 || len(h.DI) != 0 {
		t.Errorf("DI-Type 15: %+v %v", h, err)
	}
	for _, bad := range [][]byte{
		{0, 1, 0, 0, 0, 5},          // HI Length beyond contents
		{0, 0, 0, 0, 0, 5, 1},       // zero HI Length, trailing octet
		{0, 1, 0, 0, 0, 5, 1, 2},    // trailing octet
		{0, 1, 0x10, 2, 0, 5, 1, 2}, // DI Length beyond contents
		{0, 1, 0, 0, 0},             // shorter than the fixed part
	} {
		if _, err := ParseHostID(bad); !errors.Is(err, ErrParamLength) {
			t.Errorf("% x: %v", bad, err)
		}
	}
}

// TestListSemantics: HIP_CIPHER keeps the first six IDs (§5.2.8), the
// accessors read in place, HIT_SUITE_LIST uses the high nibble (§5.2.10).
func TestListSemantics(t *testing.T) {
	c, err := ParseHIPCipher(MakeU16List(4, 2, 1, 9, 9, 9, 7, 8))
	if err != nil {
		t.Fatal(err)
	}
	if c.IDs.Len() != 6 || c.IDs.At(0) != 4 || c.IDs.At(5) != 9 || c.IDs.Contains(7) || !c.IDs.Contains(1) || c.IDs.Index(2) != 1 || c.IDs.Index(8) != -1 {
		t.Errorf("HIP_CIPHER with 8 IDs: %x", []byte(c.IDs))
	}
	e, _ := ParseESPTransform(append([]byte{0xff, 0xff}, MakeU16List(1, 2, 3, 4, 5, 6, 7)...))
	if e.Suites.Len() != 7 || e.Suites.At(0) != 1 || !e.Suites.Contains(7) {
		t.Errorf("ESP_TRANSFORM with 7 IDs and non-zero reserved: %x", []byte(e.Suites))
	}
	l, _ := ParseHITSuiteList([]byte{0x20, 0x10, 0x31})
	if l.Len() != 3 || l.Suite(0) != 2 || !l.ContainsSuite(1) || l.ContainsSuite(3) || !l.HasReservedBits() {
		t.Errorf("HIT_SUITE_LIST: %+v", l)
	}
	if MakeHITSuiteList(1, 2).IDs[1] != 0x20 {
		t.Error("MakeHITSuiteList does not shift")
	}
	d, _ := ParseDHGroupList([]byte{7, 3})
	if d.Len() != 2 || d.At(1) != 3 || !d.Contains(7) || d.Contains(8) {
		t.Errorf("DH_GROUP_LIST: %+v", d)
	}
	a, _ := ParseAck(MakeU32List(1, 0xffffffff))
	if a.IDs.Len() != 2 || a.IDs.At(1) != 0xffffffff || !a.IDs.Contains(1) || a.IDs.Contains(2) {
		t.Errorf("ACK: %x", []byte(a.IDs))
	}
}

func TestPuzzleLifetime(t *testing.T) {
	for v, want := range map[uint8]string{32: "1s", 37: "32s", 31: "500ms", 0: "0s", 64: "1193046h28m16s", 255: "2562047h47m16.854775807s"} {
		p := Puzzle{Lifetime: v}
		if got := p.LifetimeDuration().String(); got != want {
			t.Errorf("lifetime %d: %s, want %s", v, got, want)
		}
	}
	s, _ := ParseSolution(fill(4+96, 0))
	if len(s.I) != 48 || len(s.J) != 48 || s.J[0] != fill(100, 0)[52] {
		t.Errorf("SOLUTION halves: %d %d", len(s.I), len(s.J))
	}
	// Appending to I must not overwrite J (the slices are capped).
	_ = append(s.I, 0xff)
	if s.J[0] == 0xff && fill(100, 0)[52] != 0xff {
		t.Error("append to I clobbered J")
	}
}
