package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestUDPControl(t *testing.T) {
	pkt := buildPacket(t, I1, pDHList)
	FillChecksum(pkt, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"))
	if Packet(pkt).Checksum() == 0 {
		t.Fatal("test needs a non-zero checksum")
	}
	orig := bytes.Clone(pkt)

	payload := AppendUDPControl([]byte("prefix"), pkt)
	if !bytes.Equal(pkt, orig) {
		t.Error("AppendUDPControl modified its input")
	}
	if string(payload[:6]) != "prefix" || !HasNonESPMarker(payload[6:]) || len(payload) != 6+4+len(pkt) {
		t.Fatalf("payload %x", payload)
	}
	p, err := ParseUDPControl(payload[6:])
	if err != nil {
		t.Fatal(err)
	}
	if p.Checksum() != 0 || p.Type() != I1 || !bytes.Equal(p[6:], pkt[6:]) {
		t.Errorf("parsed %x", []byte(p))
	}

	bad := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(payload[6:])) }
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTooShort},
		{"3 octets", []byte{0, 0, 0}, ErrTooShort},
		{"marker only", []byte{0, 0, 0, 0}, ErrTooShort},
		{"ESP SPI", bad(func(b []byte) []byte { b[3] = 1; return b }), ErrMarker},
		{"STUN-like", bad(func(b []byte) []byte { b[0] = 0x01; return b }), ErrMarker},
		{"non-zero HIP checksum", bad(func(b []byte) []byte { b[4+4] = 0x12; return b }), ErrChecksum},
		{"version 1", bad(func(b []byte) []byte { b[4+3] = 0x11; return b }), ErrVersion},
		{"bad length", bad(func(b []byte) []byte { b[4+1] = 9; return b }), ErrBadLength},
	} {
		if _, err := ParseUDPControl(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if HasNonESPMarker([]byte{0, 0, 0}) || HasNonESPMarker([]byte{0, 0, 0, 1}) {
		t.Error("HasNonESPMarker")
	}
}
