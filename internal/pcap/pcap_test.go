package pcap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	t0 := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	for _, lt := range []uint32{LinkTypeEthernet, LinkTypeRaw, LinkTypeLinuxSLL} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, lt)
		if err != nil {
			t.Fatal(err)
		}
		s4 := netip.MustParseAddrPort("10.0.0.1:10500")
		d4 := netip.MustParseAddrPort("10.0.0.2:4500")
		s6 := netip.MustParseAddrPort("[2001:db8::1]:10500")
		d6 := netip.MustParseAddrPort("[2001:db8::2]:10501")
		odd := []byte("odd-length payload")
		must(t, w.WriteUDP(t0, s4, d4, odd))
		must(t, w.WriteUDP(t0.Add(time.Second), s6, d6, odd[:7]))
		must(t, w.WriteIP(t0, s4.Addr(), d4.Addr(), ProtoESP, []byte{1, 2, 3, 4}))
		must(t, w.WriteIP(t0, s6.Addr(), d6.Addr(), ProtoHIP, []byte{5, 6}))
		if err := w.WriteIP(t0, s4.Addr(), d6.Addr(), ProtoHIP, nil); err == nil {
			t.Error("mixed families accepted")
		}

		r, err := NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		want := []Frame{
			{Src: s4.Addr(), Dst: d4.Addr(), Proto: ProtoUDP, SrcPort: 10500, DstPort: 4500, Payload: odd},
			{Src: s6.Addr(), Dst: d6.Addr(), Proto: ProtoUDP, SrcPort: 10500, DstPort: 10501, Payload: odd[:7]},
			{Src: s4.Addr(), Dst: d4.Addr(), Proto: ProtoESP, Payload: []byte{1, 2, 3, 4}},
			{Src: s6.Addr(), Dst: d6.Addr(), Proto: ProtoHIP, Payload: []byte{5, 6}},
		}
		for i, wf := range want {
			p, err := r.Next()
			if err != nil {
				t.Fatalf("link %d packet %d: %v", lt, i, err)
			}
			if p.LinkType != lt {
				t.Errorf("link type %d, want %d", p.LinkType, lt)
			}
			if i == 0 && !p.Time.Equal(t0) {
				t.Errorf("time %v, want %v", p.Time, t0)
			}
			f, err := Decode(p)
			if err != nil {
				t.Fatalf("link %d packet %d: %v", lt, i, err)
			}
			if f.Src != wf.Src || f.Dst != wf.Dst || f.Proto != wf.Proto || f.SrcPort != wf.SrcPort || f.DstPort != wf.DstPort || !bytes.Equal(f.Payload, wf.Payload) {
				t.Errorf("link %d packet %d: got %+v, want %+v", lt, i, f, wf)
			}
			checkChecksums(t, p, f)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Errorf("after last packet: %v, want io.EOF", err)
		}
	}
}

// checkChecksums verifies the IPv4 header checksum and, for IPv6, the UDP
// checksum, independently of the writer's code paths: a valid one's
// complement checksum sums to 0xffff over the covered bytes.
func checkChecksums(t *testing.T, p Packet, f Frame) {
	t.Helper()
	ipStart := map[uint32]int{LinkTypeEthernet: 14, LinkTypeRaw: 0, LinkTypeLinuxSLL: 16}[p.LinkType]
	ip := p.Data[ipStart:]
	if f.Src.Is4() {
		if s := onesSum(ip[:20]); s != 0xffff {
			t.Errorf("IPv4 header checksum does not verify (sum %#x)", s)
		}
		if f.Proto == ProtoUDP && binary.BigEndian.Uint16(ip[26:]) != 0 {
			t.Errorf("IPv4 UDP checksum not zero")
		}
		return
	}
	if f.Proto != ProtoUDP {
		return
	}
	seg := ip[40:]
	var ph []byte
	s, d := f.Src.As16(), f.Dst.As16()
	ph = append(ph, s[:]...)
	ph = append(ph, d[:]...)
	ph = binary.BigEndian.AppendUint32(ph, uint32(len(seg)))
	ph = append(ph, 0, 0, 0, 17)
	ph = append(ph, seg...)
	if len(ph)%2 == 1 {
		ph = append(ph, 0)
	}
	if s := onesSum(ph); s != 0xffff {
		t.Errorf("IPv6 UDP checksum does not verify (sum %#x)", s)
	}
}

func onesSum(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return s
}

func TestByteOrdersAndNano(t *testing.T) {
	for _, tc := range []struct {
		order interface {
			binary.ByteOrder
			binary.AppendByteOrder
		}
		magic uint32
		nano  bool
	}{
		{binary.LittleEndian, 0xa1b2c3d4, false},
		{binary.BigEndian, 0xa1b2c3d4, false},
		{binary.LittleEndian, 0xa1b23c4d, true},
		{binary.BigEndian, 0xa1b23c4d, true},
	} {
		var b []byte
		b = tc.order.AppendUint32(b, tc.magic)
		b = tc.order.AppendUint16(b, 2)
		b = tc.order.AppendUint16(b, 4)
		b = append(b, make([]byte, 8)...)
		b = tc.order.AppendUint32(b, 65535)
		b = tc.order.AppendUint32(b, LinkTypeRaw)
		b = tc.order.AppendUint32(b, 1000)
		b = tc.order.AppendUint32(b, 999)
		b = tc.order.AppendUint32(b, 3)
		b = tc.order.AppendUint32(b, 3)
		b = append(b, 0x45, 0, 0)
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		wantNs := 999 * 1000
		if tc.nano {
			wantNs = 999
		}
		if p.Time.Unix() != 1000 || p.Time.Nanosecond() != wantNs || p.LinkType != LinkTypeRaw || len(p.Data) != 3 {
			t.Errorf("%v nano=%v: got %v %d %d bytes", tc.order, tc.nano, p.Time, p.LinkType, len(p.Data))
		}
		if _, err := Decode(p); !errors.Is(err, ErrFormat) {
			t.Errorf("truncated IPv4 decoded: %v", err)
		}
	}
	if _, err := NewReader(bytes.NewReader(make([]byte, 24))); !errors.Is(err, ErrFormat) {
		t.Errorf("zero magic: %v", err)
	}
}

func TestTruncatedRecord(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, LinkTypeRaw)
	must(t, w.WritePacket(time.Unix(1, 0), []byte{0x45, 1, 2, 3, 4}))
	b := buf.Bytes()[:buf.Len()-2]
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated record: %v, want io.ErrUnexpectedEOF", err)
	}
}

// TestInterop reads the captures written by other HIP implementations:
// every frame must decode; the cutehip captures carry raw HIP (139) and
// raw ESP (50) over Ethernet/IPv4, the OpenHIP one UDP on port 10500.
func TestInterop(t *testing.T) {
	files, _ := filepath.Glob("../../../shared/interop/*.pcap")
	if len(files) == 0 {
		t.Skip("no interop captures in ../shared/interop beside the repository")
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			fh, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			r, err := NewReader(fh)
			if err != nil {
				t.Fatal(err)
			}
			protos := map[uint8]int{}
			udp10500, notIP := 0, 0
			for n := 0; ; n++ {
				p, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("packet %d: %v", n, err)
				}
				f, err := Decode(p)
				if errors.Is(err, ErrNotIP) {
					notIP++ // ARP in these captures
					continue
				}
				if err != nil {
					t.Fatalf("packet %d: %v", n, err)
				}
				protos[f.Proto]++
				if f.Proto == ProtoUDP && (f.SrcPort == 10500 || f.DstPort == 10500) {
					udp10500++
				}
			}
			switch base := filepath.Base(name); {
			case base[:7] == "cutehip":
				if protos[ProtoHIP] < 4 || protos[ProtoESP] == 0 {
					t.Errorf("protocols %v: want HIP (139) and ESP (50)", protos)
				}
			case base[:7] == "openhip":
				if udp10500 < 5 {
					t.Errorf("%d UDP/10500 packets, protocols %v", udp10500, protos)
				}
			}
			t.Logf("protocols %v, %d non-IP frames", protos, notIP)
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(uint32(1), []byte{})
	f.Add(uint32(101), []byte{0x60, 0, 0, 0, 0, 8, 0, 64})
	f.Fuzz(func(t *testing.T, lt uint32, data []byte) {
		_, _ = Decode(Packet{Data: data, LinkType: lt})
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
