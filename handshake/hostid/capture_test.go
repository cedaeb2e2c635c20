package hostid

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The cutehip captures in shared/interop hold HOST_ID parameters, HITs and
// signatures written by an independent HIPv2 implementation. A tiny reader
// here (classic little-endian pcap, Ethernet, IPv4 protocol 139, HIP TLVs)
// keeps this test free of the other packages.

const interopDir = "../../../shared/interop"

var cutehipCaptures = []string{
	"cutehip-bex-rsa.pcap",
	"cutehip-bex-rsa-ecdsa.pcap",
	"cutehip-bex-ecdsa-init.pcap",
}

// HIP parameter and packet types used here (RFC 7401 §5.2, §5.3).
const (
	paramPuzzle     = 257
	paramHostID     = 705
	paramSignature2 = 61633
	paramSignature  = 61697
	pktR1           = 2
)

type hipParam struct {
	typ      uint16
	value    []byte
	off, end int // the whole TLV with padding: hip[off:end]
}

// readHIPPackets returns the HIP packets (IPv4 payloads of protocol 139)
// of a capture, or skips the test when shared/ is not beside the repo.
func readHIPPackets(t *testing.T, name string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(interopDir, name))
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("capture %s not found (shared/ not beside the repository)", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 24 || binary.LittleEndian.Uint32(data) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian classic pcap", name)
	}
	var out [][]byte
	for off := 24; off+16 <= len(data); {
		incl := int(binary.LittleEndian.Uint32(data[off+8:]))
		off += 16
		if off+incl > len(data) {
			t.Fatalf("%s: truncated record", name)
		}
		frame := data[off : off+incl]
		off += incl
		if len(frame) < 34 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ip[9] != 139 || total > len(ip) || ihl < 20 || total < ihl+40 {
			continue
		}
		out = append(out, ip[ihl:total])
	}
	if len(out) == 0 {
		t.Fatalf("%s: no HIP packets", name)
	}
	return out
}

func hipParams(t *testing.T, hip []byte) []hipParam {
	t.Helper()
	hlen := (int(hip[1]) + 1) * 8
	if hlen > len(hip) {
		t.Fatalf("HIP header length %d > packet %d", hlen, len(hip))
	}
	var ps []hipParam
	for off := 40; off < hlen; {
		if off+4 > hlen {
			t.Fatalf("truncated TLV at %d", off)
		}
		typ := binary.BigEndian.Uint16(hip[off:])
		l := int(binary.BigEndian.Uint16(hip[off+2:]))
		end := off + (4+l+7)/8*8
		if end > hlen {
			t.Fatalf("TLV %d overruns the packet", typ)
		}
		ps = append(ps, hipParam{typ, hip[off+4 : off+4+l], off, end})
		off = end
	}
	return ps
}

// hostIDFields splits a HOST_ID value (RFC 7401 §5.2.9) into its Algorithm
// and Host Identity fields.
func hostIDFields(t *testing.T, v []byte) (Algorithm, []byte) {
	t.Helper()
	hiLen := int(binary.BigEndian.Uint16(v))
	if 6+hiLen > len(v) {
		t.Fatalf("HOST_ID HI Length %d > parameter", hiLen)
	}
	return Algorithm(binary.BigEndian.Uint16(v[4:])), v[6 : 6+hiLen]
}

// TestCaptureHITs parses every HOST_ID of the captures and checks that the
// HIT we derive from the Host Identity is the sender HIT of the packet that
// carried it: our ORCHIDv2 reading (Context ID, hash per suite, middle 96
// bits) and both HI encodings agree with an independent implementation.
func TestCaptureHITs(t *testing.T) {
	seen := map[string]bool{}
	for _, name := range cutehipCaptures {
		for _, hip := range readHIPPackets(t, name) {
			var sender [16]byte
			copy(sender[:], hip[8:24])
			for _, p := range hipParams(t, hip) {
				if p.typ != paramHostID {
					continue
				}
				alg, hi := hostIDFields(t, p.value)
				pub, err := ParseHostIdentity(alg, hi)
				if err != nil {
					t.Fatalf("%s: HOST_ID of %s: %v", name, hitString(sender), err)
				}
				if pub.HIT() != sender {
					t.Fatalf("%s: HIT from HI %s, sender HIT %s", name, hitString(pub.HIT()), hitString(sender))
				}
				oga := Suite(sender[3] & 0x0f)
				if pub.Suite() != oga {
					t.Fatalf("%s: Suite %v, OGA of sender HIT %v", name, pub.Suite(), oga)
				}
				if HITFromHI(oga, hi) != sender {
					t.Fatalf("%s: HITFromHI(%v) != sender HIT", name, oga)
				}
				seen[pub.String()] = true
			}
		}
	}
	// The captures hold two RSA-2048 identities and one ECDSA P-384 one
	// (0x04|x|y); both suites 1 and 2 must have been checked.
	var rsa, p384 int
	for s := range seen {
		switch s[:6] {
		case "RSA-20":
			rsa++
		case "ECDSA ":
			p384++
		}
		t.Log(s)
	}
	if rsa != 2 || p384 != 1 {
		t.Fatalf("identities seen: %v", seen)
	}
}

// signedBytes rebuilds the bytes a HIP_SIGNATURE or HIP_SIGNATURE_2 at
// index i covers (RFC 7401 §6.4.2): the header with Checksum zero and the
// Header Length up to the signature, and the parameters before it. For
// HIP_SIGNATURE_2 in R1 also the receiver HIT and PUZZLE Opaque and #I are
// zeroed (§5.2.15).
func signedBytes(hip []byte, ps []hipParam, i int) []byte {
	msg := append([]byte(nil), hip[:ps[i].off]...)
	msg[1] = byte(len(msg)/8 - 1)
	msg[4], msg[5] = 0, 0
	if ps[i].typ == paramSignature2 && hip[2]&0x7f == pktR1 {
		clear(msg[24:40])
		for _, p := range ps[:i] {
			if p.typ == paramPuzzle {
				clear(msg[p.off+4+2 : p.off+4+len(p.value)]) // Opaque and Random #I
			}
		}
	}
	return msg
}

// TestCaptureSignatures verifies every HIP_SIGNATURE and HIP_SIGNATURE_2 of
// the captures (R1, I2, R2, UPDATE, CLOSE, CLOSE_ACK) with the sender's
// Host Identity from its HOST_ID: RSASSA-PSS/SHA-256 and ECDSA P-384 r|s
// with SHA-384 as another implementation wrote them. A flipped bit in the
// signed bytes must then fail.
func TestCaptureSignatures(t *testing.T) {
	for _, name := range cutehipCaptures {
		t.Run(name, func(t *testing.T) {
			pkts := readHIPPackets(t, name)
			keys := map[[16]byte]*PublicKey{}
			for _, hip := range pkts {
				for _, p := range hipParams(t, hip) {
					if p.typ == paramHostID {
						alg, hi := hostIDFields(t, p.value)
						pub, err := ParseHostIdentity(alg, hi)
						if err != nil {
							t.Fatal(err)
						}
						keys[pub.HIT()] = pub
					}
				}
			}
			verified := map[string]int{}
			byType := map[byte]int{}
			for n, hip := range pkts {
				var sender [16]byte
				copy(sender[:], hip[8:24])
				ps := hipParams(t, hip)
				for i, p := range ps {
					if p.typ != paramSignature && p.typ != paramSignature2 {
						continue
					}
					pub := keys[sender]
					if pub == nil {
						t.Fatalf("packet %d: no HOST_ID seen for sender %s", n, hitString(sender))
					}
					alg := Algorithm(binary.BigEndian.Uint16(p.value))
					sig := p.value[2:]
					msg := signedBytes(hip, ps, i)
					if err := pub.Verify(msg, sig, alg); err != nil {
						t.Fatalf("packet %d (type %d) param %d from %v: %v", n, hip[2]&0x7f, p.typ, pub, err)
					}
					msg[len(msg)-1] ^= 1
					if err := pub.Verify(msg, sig, alg); !errors.Is(err, ErrInvalidSignature) {
						t.Fatalf("packet %d: altered bytes still verify (%v)", n, err)
					}
					verified[pub.describe()]++
					byType[hip[2]&0x7f]++
				}
			}
			t.Logf("verified signatures: %v, by packet type: %v", verified, byType)
			// Each capture has R1 (HIP_SIGNATURE_2), I2, R2, two UPDATE
			// pairs, CLOSE and CLOSE_ACK: ten signatures.
			if total := byType[2] + byType[3] + byType[4] + byType[16] + byType[18] + byType[19]; total != 10 || byType[2] != 1 || byType[3] != 1 {
				t.Fatalf("verified %v signatures by packet type, want 10 including R1 and I2", byType)
			}
		})
	}
}
