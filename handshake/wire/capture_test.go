package wire

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"hipnet.dev/internal/pcap"
)

// interopDir is where CI keeps /work/shared: beside the repository.
const interopDir = "../../../shared/interop"

type capturedHIP struct {
	frame    int // 1-based frame number, as tshark counts
	src, dst netip.Addr
	udp      bool
	payload  []byte // IP payload (raw HIP) or UDP payload
}

// readCapture returns every raw-HIP (IPv4/IPv6 protocol 139) packet and every
// UDP payload to or from port 10500 in a capture file.
func readCapture(t testing.TB, name string) []capturedHIP {
	t.Helper()
	f, err := os.Open(filepath.Join(interopDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcap.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []capturedHIP
	for n := 1; ; n++ {
		pk, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s frame %d: %v", name, n, err)
		}
		fr, err := pcap.Decode(pk)
		if errors.Is(err, pcap.ErrNotIP) {
			continue
		}
		if err != nil {
			t.Fatalf("%s frame %d: %v", name, n, err)
		}
		switch {
		case fr.Proto == pcap.ProtoHIP:
			out = append(out, capturedHIP{n, fr.Src, fr.Dst, false, fr.Payload})
		case fr.Proto == pcap.ProtoUDP && (fr.SrcPort == 10500 || fr.DstPort == 10500):
			out = append(out, capturedHIP{n, fr.Src, fr.Dst, true, fr.Payload})
		}
	}
	return out
}

func skipWithoutInterop(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(interopDir); err != nil {
		t.Skipf("interop captures not found at %s (CI keeps /work/shared beside the repository): %v", interopDir, err)
	}
}

// rebuild re-encodes a parsed packet from its header fields and raw
// parameters, with the checksum recomputed for the capture's addresses.
func rebuild(t testing.TB, p Packet, src, dst netip.Addr) []byte {
	t.Helper()
	b := NewBuilder(nil, p.Type(), p.SenderHIT(), p.ReceiverHIT())
	b.SetControls(p.Controls())
	for it := p.Params(); ; {
		q, ok := it.Next()
		if !ok {
			break
		}
		b.AddParam(q)
	}
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if src.IsValid() {
		FillChecksum(out, src, dst)
	}
	return out
}

// TestCaptureCuteHIP: every HIPv2 packet written by cutehip parses, verifies
// its checksum, decodes every known parameter, and re-encodes byte for byte
// from its TLVs, which proves the framing (lengths, zero padding, order).
func TestCaptureCuteHIP(t *testing.T) {
	skipWithoutInterop(t)
	want := map[string]map[PacketType]int{
		// I1, R1, I2, R2, two UPDATE SEQ/ACK pairs, then a CLOSE from each
		// side and one CLOSE_ACK (frames 3-6, 17-20, 329-331); the second
		// CLOSE comes back quoted in an ICMP error (frame 332, protocol 1,
		// not counted).
		"cutehip-bex-rsa.pcap":        {I1: 1, R1: 1, I2: 1, R2: 1, UPDATE: 4, CLOSE: 2, CLOSE_ACK: 1},
		"cutehip-bex-rsa-ecdsa.pcap":  {I1: 1, R1: 1, I2: 1, R2: 1, UPDATE: 4, CLOSE: 2, CLOSE_ACK: 1},
		"cutehip-bex-ecdsa-init.pcap": {I1: 1, R1: 1, I2: 1, R2: 1, UPDATE: 4, CLOSE: 2, CLOSE_ACK: 1},
	}
	for name, wantTypes := range want {
		t.Run(name, func(t *testing.T) {
			got := map[PacketType]int{}
			for _, c := range readCapture(t, name) {
				if c.udp {
					t.Fatalf("frame %d: unexpected UDP 10500 in a raw HIP capture", c.frame)
				}
				p, err := ParsePacket(c.payload)
				if err != nil {
					t.Fatalf("frame %d: ParsePacket: %v", c.frame, err)
				}
				if len(p) != len(c.payload) {
					t.Errorf("frame %d: packet is %d octets, IP payload %d", c.frame, len(p), len(c.payload))
				}
				got[p.Type()]++
				if !p.VerifyChecksum(c.src, c.dst) {
					t.Errorf("frame %d: checksum 0x%04x does not verify, computed 0x%04x", c.frame, p.Checksum(), Checksum(p, c.src, c.dst))
				}
				checkAllParams(t, p)
				if re := rebuild(t, p, c.src, c.dst); !bytes.Equal(re, c.payload) {
					t.Errorf("frame %d: re-encoding differs\n got %x\nwant %x\n%s", c.frame, re, []byte(c.payload), Format(p))
				}
				if s := Format(p); len(s) == 0 {
					t.Errorf("frame %d: empty Format", c.frame)
				}
				if testing.Verbose() {
					t.Logf("frame %d %v→%v\n%s", c.frame, c.src, c.dst, Format(p))
				}
			}
			for pt, n := range wantTypes {
				if got[pt] != n {
					t.Errorf("%v packets: got %d, want %d (all: %v)", pt, got[pt], n, got)
				}
			}
			if len(got) != len(wantTypes) {
				t.Errorf("packet types seen: %v, want %v", got, wantTypes)
			}
		})
	}
}

// TestCaptureOpenHIPUDP: OpenHIP speaks version 1 (RFC 5201) inside the
// RFC 5770 framing. Every control packet has the zero marker and must be
// rejected as version 1; every ESP packet must be told apart by its
// non-zero SPI.
func TestCaptureOpenHIPUDP(t *testing.T) {
	skipWithoutInterop(t)
	var control, esp int
	for _, c := range readCapture(t, "openhip-bex-udp.pcap") {
		if !c.udp {
			t.Fatalf("frame %d: raw HIP in a UDP capture", c.frame)
		}
		if !HasNonESPMarker(c.payload) {
			esp++
			if _, err := ParseUDPControl(c.payload); !errors.Is(err, ErrMarker) {
				t.Errorf("frame %d: ESP payload: ParseUDPControl error %v, want ErrMarker", c.frame, err)
			}
			continue
		}
		control++
		_, err := ParseUDPControl(c.payload)
		if !errors.Is(err, ErrVersion) {
			t.Errorf("frame %d: ParseUDPControl error %v, want ErrVersion", c.frame, err)
			continue
		}
		if want := "HIP version 1 (RFC 5201) not supported"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("frame %d: error %q does not say %q", c.frame, err, want)
		}
		// The framing itself is RFC 5770's: a zero checksum after the marker.
		if ck := uint16(c.payload[8])<<8 | uint16(c.payload[9]); ck != 0 {
			t.Errorf("frame %d: HIP checksum 0x%04x over UDP", c.frame, ck)
		}
	}
	if control != 4 || esp != 12 {
		t.Errorf("got %d control and %d ESP packets, want 4 (I1 R1 I2 R2) and 12", control, esp)
	}
}
