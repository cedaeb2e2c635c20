package netstack

import (
	"bytes"
	"encoding/binary"
	"testing"

	"hipnet.dev/handshake/wire"
)

// packet builds an IPv6 packet from src to dst with next header nh
// around payload.
func packet(src, dst wire.HIT, nh uint8, payload []byte) []byte {
	p := make([]byte, ipv6HeaderLen+len(payload))
	putIPv6(p, src, dst, nh, len(payload))
	copy(p[ipv6HeaderLen:], payload)
	return p
}

func TestStripIPv6(t *testing.T) {
	local, peer := testHIT(1), testHIT(2)
	tcp := make([]byte, 32)
	tcp[12] = 8 << 4
	valid := packet(local, peer, protoTCP, tcp)
	mod := func(f func(p []byte) []byte) []byte { return f(bytes.Clone(valid)) }

	tests := []struct {
		name string
		pkt  []byte
		want dropReason
	}{
		{"valid", valid, dropNone},
		{"empty", nil, dropMalformed},
		{"header only", valid[:ipv6HeaderLen], dropMalformed},
		{"short TCP", packet(local, peer, protoTCP, tcp[:19]), dropMalformed},
		{"IPv4", mod(func(p []byte) []byte { p[0] = 0x45; return p }), dropMalformed},
		{"payload length long", mod(func(p []byte) []byte { p[5]++; return p }), dropMalformed},
		{"payload length short", mod(func(p []byte) []byte { p[5]--; return p }), dropMalformed},
		{"trailing octet", append(bytes.Clone(valid), 0), dropMalformed},
		{"jumbogram length", mod(func(p []byte) []byte { p[4], p[5] = 0, 0; return p }), dropMalformed},
		{"hop-by-hop", packet(local, peer, 0, tcp), dropExtension},
		{"routing", packet(local, peer, 43, tcp), dropExtension},
		{"fragment", packet(local, peer, 44, tcp), dropExtension},
		{"destination options", packet(local, peer, 60, tcp), dropExtension},
		{"ESP", packet(local, peer, 50, tcp), dropExtension},
		{"HIP", packet(local, peer, 139, tcp), dropExtension},
		{"ICMPv6", packet(local, peer, 58, tcp), dropProtocol},
		{"UDP", packet(local, peer, 17, tcp), dropProtocol},
		{"no next header", packet(local, peer, 59, tcp), dropProtocol},
		{"foreign source", packet(peer, local, protoTCP, tcp), dropSource},
	}
	for _, tt := range tests {
		dst, seg, why := stripIPv6(tt.pkt, local)
		if why != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, why, tt.want)
			continue
		}
		if why != dropNone {
			if seg != nil {
				t.Errorf("%s: refused but returned a segment", tt.name)
			}
			continue
		}
		if dst != peer || !bytes.Equal(seg, tcp) || &seg[0] != &tt.pkt[ipv6HeaderLen] {
			t.Errorf("%s: dst %v seg %x", tt.name, dst, seg)
		}
	}
}

func TestPutIPv6(t *testing.T) {
	src, dst := testHIT(3), testHIT(4)
	h := make([]byte, ipv6HeaderLen)
	for i := range h {
		h[i] = 0xff // every octet must be written
	}
	putIPv6(h, src, dst, protoTCP, 1288)
	want := []byte{0x60, 0, 0, 0, 0x05, 0x08, 6, 64}
	want = append(want, src[:]...)
	want = append(want, dst[:]...)
	if !bytes.Equal(h, want) {
		t.Fatalf("header\n%x\nwant\n%x", h, want)
	}
}

// FuzzStripIPv6: stripIPv6 never panics, refuses with no segment, and
// accepts only a packet it could have rebuilt itself: version 6, TCP, the
// exact length, from local; the segment is the packet after the header.
func FuzzStripIPv6(f *testing.F) {
	local := testHIT(1)
	tcp := make([]byte, 20)
	tcp[12] = 5 << 4
	f.Add(packet(local, testHIT(2), protoTCP, tcp))
	f.Add(packet(local, testHIT(2), 0, tcp))
	f.Add(packet(local, testHIT(2), 58, tcp))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		dst, seg, why := stripIPv6(pkt, local)
		if why != dropNone {
			if seg != nil || dst != (wire.HIT{}) {
				t.Fatalf("refused (%v) but returned %v %x", why, dst, seg)
			}
			return
		}
		if len(pkt) < ipv6HeaderLen+tcpMinHeaderLen || pkt[0]>>4 != 6 || pkt[6] != protoTCP {
			t.Fatalf("accepted %x", pkt)
		}
		if int(binary.BigEndian.Uint16(pkt[4:6])) != len(seg) || len(seg) != len(pkt)-ipv6HeaderLen ||
			&seg[0] != &pkt[ipv6HeaderLen] {
			t.Fatalf("segment of %d octets from a packet of %d", len(seg), len(pkt))
		}
		rebuilt := packet(local, dst, protoTCP, seg)
		if !bytes.Equal(rebuilt[4:7], pkt[4:7]) || !bytes.Equal(rebuilt[8:], pkt[8:]) {
			t.Fatalf("accepted %x, which rebuilds as %x", pkt, rebuilt)
		}
	})
}
