package overlay

import (
	"encoding/binary"
	"testing"

	"hipnet.dev/esp"
)

// The STUN header's constants (RFC 8489 §5), for building test messages.
const (
	stunHeaderLen   = 20
	stunMagicCookie = 0x2112A442
)

func stunMessage(attrLen int) []byte {
	b := make([]byte, stunHeaderLen+attrLen)
	binary.BigEndian.PutUint16(b[0:2], 0x0001) // Binding Request
	binary.BigEndian.PutUint16(b[2:4], uint16(attrLen))
	binary.BigEndian.PutUint32(b[4:8], stunMagicCookie)
	return b
}

func TestClassify(t *testing.T) {
	esp8 := []byte{0, 0, 1, 0, 0, 0, 0, 1}
	stunBadLen := stunMessage(8)
	binary.BigEndian.PutUint16(stunBadLen[2:4], 4)
	stunTopBits := stunMessage(0)
	stunTopBits[0] |= 0x80
	for _, c := range []struct {
		name string
		b    []byte
		want Kind
	}{
		{"empty", nil, KindInvalid},
		{"seven octets", make([]byte, 7), KindInvalid},
		{"seven octets non-zero", []byte{1, 2, 3, 4, 5, 6, 7}, KindInvalid},
		{"zero marker, short", make([]byte, 8), KindControl},
		{"zero marker and a header", make([]byte, 44), KindControl},
		{"smallest ESP", esp8, KindESP},
		{"ESP with SPI 0xffffffff", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1}, KindESP},
		{"STUN binding request", stunMessage(0), KindSTUN},
		{"STUN with attributes", stunMessage(8), KindSTUN},
		{"STUN cookie, wrong length", stunBadLen, KindESP},
		{"STUN cookie, top bits set", stunTopBits, KindESP},
		{"STUN cookie, short", stunMessage(0)[:12], KindESP},
	} {
		if got := Classify(c.b); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if KindSTUN.String() != "stun" || Kind(9).String() != "kind(?)" {
		t.Error("Kind.String")
	}
}

// FuzzClassify checks the demux rules on arbitrary datagrams.
func FuzzClassify(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 48))
	f.Add(stunMessage(4))
	f.Add([]byte{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		k := Classify(b)
		switch {
		case len(b) < 8:
			if k != KindInvalid {
				t.Fatalf("%d octets: %v", len(b), k)
			}
		case b[0]|b[1]|b[2]|b[3] == 0:
			if k != KindControl {
				t.Fatalf("zero marker: %v", k)
			}
		default:
			if k != KindESP && k != KindSTUN {
				t.Fatalf("non-zero SPI: %v", k)
			}
			if k == KindSTUN && (b[0]&0xC0 != 0 || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie) {
				t.Fatal("STUN without its markers")
			}
			if _, ok := esp.PeekSPI(b); k == KindESP && !ok {
				t.Fatal("ESP that PeekSPI refuses")
			}
		}
	})
}
