package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var (
	hitI = MustParseHIT("2001:21:af77:fa8f:b5a3:4b86:271e:89d1")
	hitR = MustParseHIT("2001:22:d151:dc17:6482:4e2:a7dc:b16d")
)

// fill returns n octets of a recognisable non-zero pattern.
func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)*7 + 1
	}
	return b
}

// Parameter values shared by the packet compositions of RFC 7401 §5.3 and
// RFC 7402 §5.2.1.
var (
	pR1Counter  = R1Counter{Counter: 0x0102030405060708}
	pPuzzle     = Puzzle{K: 10, Lifetime: 37, Opaque: [2]byte{0xab, 0xcd}, I: fill(32, 1)}
	pSolution   = Solution{K: 10, Opaque: [2]byte{0xab, 0xcd}, I: fill(32, 1), J: fill(32, 2)}
	pDH         = DiffieHellman{Group: DHGroupP256, Public: fill(65, 3)}
	pDHList     = MakeDHGroupList(DHGroupP256, DHGroupP384, DHGroupMODP1536)
	pCipherR1   = HIPCipher{IDs: MakeU16List(CipherAES128CBC, CipherAES256CBC)}
	pCipherI2   = HIPCipher{IDs: MakeU16List(CipherAES128CBC)}
	pHostID     = HostID{Algorithm: AlgECDSA, HI: append([]byte{0, 1}, fill(65, 4)...), DIType: DITypeFQDN, DI: []byte("\x04host\x07example\x00")}
	pSuiteList  = MakeHITSuiteList(HITSuiteECDSASHA384, HITSuiteRSADSASHA256)
	pTFList     = TransportFormatList{IDs: MakeU16List(TransportFormatESP)}
	pESPTfR1    = ESPTransform{Suites: MakeU16List(ESPSuiteAESGCM16, ESPSuiteAES128CBCSHA256, ESPSuiteNULLSHA256)}
	pESPTfI2    = ESPTransform{Suites: MakeU16List(ESPSuiteAESGCM16)}
	pESPInfo    = ESPInfo{KeymatIndex: 96, OldSPI: 0, NewSPI: 0xdeadbeef}
	pMAC        = HIPMAC{MAC: fill(48, 5)}
	pMAC2       = HIPMAC2{MAC: fill(48, 6)}
	pSig        = Signature{Type: ParamHIPSignature, Alg: AlgECDSA, Sig: fill(64, 7)}
	pSig2       = Signature{Type: ParamHIPSignature2, Alg: AlgECDSA, Sig: fill(64, 8)}
	pSeq        = Seq{UpdateID: 7}
	pAck        = MakeAck(5, 6)
	pEncrypted  = Encrypted{IV: fill(16, 9), Data: fill(112, 10)}
	pNotify1    = Notification{Type: NotifyUnsupportedCriticalParameterType, Data: []byte{0x12, 0x35}}
	pNotify2    = Notification{Type: NotifyI2Acknowledgement}
	pEchoReqS   = Echo{Type: ParamEchoRequestSigned, Opaque: []byte("state")}
	pEchoRespS  = Echo{Type: ParamEchoResponseSigned, Opaque: []byte("state")}
	pEchoReqU   = Echo{Type: ParamEchoRequestUnsigned, Opaque: []byte{1, 2, 3}}
	pEchoRespU  = Echo{Type: ParamEchoResponseUnsigned, Opaque: []byte{1, 2, 3}}
	pEchoReqU2  = Echo{Type: ParamEchoRequestUnsigned, Opaque: []byte{9}}
	pEchoRespU2 = Echo{Type: ParamEchoResponseUnsigned, Opaque: []byte{9}}
)

// compositions are the packets of RFC 7401 §5.3 with the additions of
// RFC 7402 §5.2.1, every optional parameter present, in ascending type order.
var compositions = []struct {
	t      PacketType
	params []Encoder
}{
	{I1, []Encoder{pDHList}},
	{R1, []Encoder{pR1Counter, pPuzzle, pDHList, pDH, pCipherR1, pHostID, pSuiteList, pEchoReqS, pTFList, pESPTfR1, pSig2, pEchoReqU, pEchoReqU2}},
	{I2, []Encoder{pESPInfo, pR1Counter, pSolution, pDH, pCipherI2, pEncrypted, pEchoRespS, pTFList, pESPTfI2, pMAC, pSig, pEchoRespU, pEchoRespU2}},
	{I2, []Encoder{pESPInfo, pSolution, pDH, pCipherI2, pHostID, pTFList, pESPTfI2, pMAC, pSig}},
	{R2, []Encoder{pESPInfo, pMAC2, pSig}},
	{UPDATE, []Encoder{pESPInfo, pSeq, pAck, pDH, pMAC, pSig}},
	// §5.3.6 lists <NOTIFICATION>i, [HOST_ID,] HIP_SIGNATURE, but HOST_ID
	// (705) sorts before NOTIFICATION (832) on the wire (§5.2.1).
	{NOTIFY, []Encoder{pHostID, pNotify1, pNotify2, pSig}},
	{CLOSE, []Encoder{pEchoReqS, pMAC, pSig}},
	{CLOSE_ACK, []Encoder{pEchoRespS, pMAC, pSig}},
}

func buildPacket(t testing.TB, pt PacketType, params ...Encoder) []byte {
	t.Helper()
	b := NewBuilder(nil, pt, hitI, hitR)
	for _, p := range params {
		b.Add(p)
	}
	out, err := b.Bytes()
	if err != nil {
		t.Fatalf("build %v: %v", pt, err)
	}
	return out
}

// decodeAs parses contents with the ParseXxx of the parameter's Go type and
// returns the struct, so a round trip can be compared with reflect.
func decodeAs(t testing.TB, want Encoder, q Param) Encoder {
	t.Helper()
	c := q.Contents()
	var (
		got Encoder
		err error
	)
	switch want := want.(type) {
	case R1Counter:
		got, err = ParseR1Counter(c)
	case Puzzle:
		got, err = ParsePuzzle(c)
	case Solution:
		got, err = ParseSolution(c)
	case DiffieHellman:
		got, err = ParseDiffieHellman(c)
	case DHGroupList:
		got, err = ParseDHGroupList(c)
	case HIPCipher:
		got, err = ParseHIPCipher(c)
	case HostID:
		got, err = ParseHostID(c)
	case HITSuiteList:
		got, err = ParseHITSuiteList(c)
	case TransportFormatList:
		got, err = ParseTransportFormatList(c)
	case ESPTransform:
		got, err = ParseESPTransform(c)
	case ESPInfo:
		got, err = ParseESPInfo(c)
	case HIPMAC:
		got, err = ParseHIPMAC(c)
	case HIPMAC2:
		got, err = ParseHIPMAC2(c)
	case Signature:
		if q.Type() == ParamHIPSignature2 {
			got, err = ParseSignature2(c)
		} else {
			got, err = ParseSignature(c)
		}
	case Seq:
		got, err = ParseSeq(c)
	case Ack:
		got, err = ParseAck(c)
	case Encrypted:
		got, err = ParseEncrypted(c, len(want.IV))
	case Notification:
		got, err = ParseNotification(c)
	case Echo:
		got, err = ParseEchoParam(q)
	default:
		t.Fatalf("no decoder for %T", want)
	}
	if err != nil {
		t.Fatalf("%v: %v", q.Type(), err)
	}
	return got
}

// normalize renders a struct with empty and nil slices alike.
func normalize(e Encoder) string { return strings.ReplaceAll(fmt.Sprintf("%#v", e), "(nil)", "{}") }

func TestCompositionsRoundTrip(t *testing.T) {
	for _, c := range compositions {
		t.Run(c.t.String(), func(t *testing.T) {
			raw := buildPacket(t, c.t, c.params...)
			p, err := ParsePacket(raw)
			if err != nil {
				t.Fatalf("ParsePacket: %v", err)
			}
			if p.Type() != c.t || p.SenderHIT() != hitI || p.ReceiverHIT() != hitR ||
				p.Version() != 2 || p.NextHeader() != NextHeaderNone || p.Checksum() != 0 || p.Controls() != 0 {
				t.Fatalf("header fields wrong:\n%s", Format(p))
			}
			if raw[2]&0x80 != 0 || raw[3]&0x0f != 0x01 {
				t.Errorf("fixed bits: byte2=0x%02x byte3=0x%02x, want 0 and ...1 (§5.1)", raw[2], raw[3])
			}
			if p.Len() != len(raw) || len(raw)%8 != 0 {
				t.Errorf("length %d, header says %d", len(raw), p.Len())
			}
			it := p.Params()
			off := HeaderLen
			for i, want := range c.params {
				q, ok := it.Next()
				if !ok {
					t.Fatalf("param %d (%v) missing", i, want.ParamType())
				}
				if q.Type() != want.ParamType() || q.Offset() != off || len(q.Contents()) != want.Len() {
					t.Fatalf("param %d: %v at %d len %d, want %v at %d len %d", i, q.Type(), q.Offset(), len(q.Contents()), want.ParamType(), off, want.Len())
				}
				if q.TotalLen()%8 != 0 || q.TotalLen() != TLVLen(want.Len()) {
					t.Errorf("%v: total length %d", q.Type(), q.TotalLen())
				}
				for j, b := range q.TLV()[paramHeaderLen+want.Len():] {
					if b != 0 {
						t.Errorf("%v: padding octet %d is 0x%02x, MUST be zero (§5.2.1)", q.Type(), j, b)
					}
				}
				if got := decodeAs(t, want, q); normalize(got) != normalize(want) {
					t.Errorf("%v round trip:\n got %s\nwant %s", q.Type(), normalize(got), normalize(want))
				}
				off += q.TotalLen()
			}
			if q, ok := it.Next(); ok {
				t.Errorf("extra parameter %v", q.Type())
			}
			if off != len(raw) {
				t.Errorf("parameters end at %d, packet at %d", off, len(raw))
			}
			// Param finds the first of a type; later duplicates are reachable by iteration.
			for _, want := range c.params {
				if q, ok := p.Param(want.ParamType()); !ok || q.Type() != want.ParamType() {
					t.Errorf("Param(%v) not found", want.ParamType())
				}
			}
			if _, ok := p.Param(ParamType(1000)); ok {
				t.Error("Param found an absent type")
			}
			if s := Format(p); !strings.Contains(s, c.t.String()) {
				t.Errorf("Format lacks the type:\n%s", s)
			}
		})
	}
}

// TestParamRoundTripStructs checks that ParseXxx(Encode(x)) == x for each
// struct, including unusual but valid sizes.
func TestParamRoundTripStructs(t *testing.T) {
	cases := []Encoder{
		R1Counter{}, R1Counter{Counter: ^uint64(0)},
		Puzzle{K: 1, Lifetime: 0, I: fill(1, 0)}, Puzzle{K: 255, Lifetime: 255, Opaque: [2]byte{1, 2}, I: fill(64, 3)}, Puzzle{I: fill(20, 1)}, Puzzle{I: fill(48, 1)},
		Solution{K: 1, I: fill(1, 0), J: fill(1, 9)}, Solution{K: 20, Opaque: [2]byte{3, 4}, I: fill(48, 0), J: fill(48, 9)}, Solution{I: fill(64, 1), J: fill(64, 2)},
		DiffieHellman{Group: DHGroupMODP1536, Public: fill(192, 1)}, DiffieHellman{Group: 255, Public: []byte{4}},
		MakeDHGroupList(3), MakeDHGroupList(7, 8, 9, 3, 4, 11, 10),
		HIPCipher{IDs: MakeU16List(1)}, HIPCipher{IDs: MakeU16List(4, 2, 1, 9, 10, 11)},
		HostID{Algorithm: AlgRSA, HI: fill(260, 1)}, HostID{Algorithm: AlgEdDSA, HI: fill(34, 2), DIType: DITypeNAI, DI: []byte("user@example.org")},
		MakeHITSuiteList(1), MakeHITSuiteList(2, 1, 3, 5),
		TransportFormatList{IDs: MakeU16List(4095, 2050)},
		ESPTransform{Suites: MakeU16List(8)}, ESPTransform{Suites: MakeU16List(13, 12, 9, 8, 7, 1)},
		ESPInfo{}, ESPInfo{KeymatIndex: 0xffff, OldSPI: 1, NewSPI: 0xffffffff},
		HIPMAC{MAC: fill(20, 0)}, HIPMAC{MAC: fill(64, 0)}, HIPMAC2{MAC: fill(32, 0)},
		Signature{Type: ParamHIPSignature, Alg: AlgRSA, Sig: fill(512, 1)}, Signature{Type: ParamHIPSignature2, Alg: AlgDSA, Sig: fill(41, 2)},
		Seq{}, Seq{UpdateID: 0xffffffff},
		MakeAck(0), MakeAck(1, 2, 3, 4),
		Encrypted{IV: fill(16, 0), Data: fill(1, 1)}, Encrypted{IV: nil, Data: fill(24, 1)},
		Notification{Type: NotifyInvalidSyntax}, Notification{Type: NotifyType(65535), Data: fill(100, 1)},
		Echo{Type: ParamEchoRequestSigned}, Echo{Type: ParamEchoResponseSigned, Opaque: fill(3, 1)},
		Echo{Type: ParamEchoRequestUnsigned, Opaque: fill(17, 1)}, Echo{Type: ParamEchoResponseUnsigned, Opaque: fill(8, 1)},
	}
	for _, want := range cases {
		b := NewBuilder(nil, UPDATE, hitI, hitR)
		b.Add(want)
		raw, err := b.Bytes()
		if err != nil {
			t.Errorf("%T %v: %v", want, want.ParamType(), err)
			continue
		}
		p, err := ParsePacket(raw)
		if err != nil {
			t.Errorf("%T: ParsePacket: %v", want, err)
			continue
		}
		q, _ := p.Params().nextOrZero()
		if got := decodeAs(t, want, q); normalize(got) != normalize(want) {
			t.Errorf("%v round trip:\n got %s\nwant %s", q.Type(), normalize(got), normalize(want))
		}
	}
}

func (it ParamIter) nextOrZero() (Param, bool) { return it.Next() }

// TestParseHeaderErrors covers the checks ParsePacket makes at the door.
func TestParseHeaderErrors(t *testing.T) {
	good := buildPacket(t, I1, pDHList) // 48 octets
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTooShort},
		{"39 octets", good[:39], ErrTooShort},
		{"version 1", mod(func(b []byte) []byte { b[3] = 0x11; return b }), ErrVersion},
		{"version 3", mod(func(b []byte) []byte { b[3] = 0x31; return b }), ErrVersion},
		{"header length 3", mod(func(b []byte) []byte { b[1] = 3; return b }), ErrBadLength},
		{"header length 0", mod(func(b []byte) []byte { b[1] = 0; return b }), ErrBadLength},
		{"header length beyond data", mod(func(b []byte) []byte { b[1] = 6; return b }), ErrBadLength},
		{"truncated packet", good[:40], ErrBadLength},
		{"type 0", mod(func(b []byte) []byte { b[2] = 0; return b }), ErrUnknownType},
		{"type 5", mod(func(b []byte) []byte { b[2] = 5; return b }), ErrUnknownType},
		{"type 20", mod(func(b []byte) []byte { b[2] = 20; return b }), ErrUnknownType},
		{"type 127", mod(func(b []byte) []byte { b[2] = 0x7f; return b }), ErrUnknownType},
	}
	for _, c := range cases {
		_, err := ParsePacket(c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
	}
	_, err := ParsePacket(cases[2].b)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Version != 1 || !strings.Contains(err.Error(), "HIP version 1 (RFC 5201) not supported") {
		t.Errorf("version 1 error: %v", err)
	}
}

// TestParseIgnores: what RFC 7401 tells a receiver to ignore must not cause
// a rejection.
func TestParseIgnores(t *testing.T) {
	good := buildPacket(t, R2, pESPInfo, pMAC2, pSig)
	// Fixed bits (§5.1, "MUST be ignored when receiving"), reserved bits,
	// unknown controls, another Next Header.
	b := bytes.Clone(good)
	b[2] |= 0x80
	b[3] = 0x2e // version 2, RES 111, fixed bit 0
	b[6], b[7] = 0xff, 0xff
	b[0] = 6
	p, err := ParsePacket(b)
	if err != nil {
		t.Fatalf("fixed/reserved bits: %v", err)
	}
	if p.Type() != R2 || p.Version() != 2 || !p.Anonymous() || p.NextHeader() != 6 {
		t.Errorf("fields misread:\n%s", Format(p))
	}
	// Trailing octets after the declared length (§5.1) are ignored and
	// excluded from the view.
	b = append(bytes.Clone(good), 1, 2, 3, 4, 5, 6, 7, 8, 9)
	p, err = ParsePacket(b)
	if err != nil {
		t.Fatalf("trailing data: %v", err)
	}
	if len(p) != len(good) || cap(p) < len(good) {
		t.Errorf("view is %d octets, want %d", len(p), len(good))
	}
	// Non-zero padding "SHOULD NOT be checked by the receiver" (§5.2.1).
	b = bytes.Clone(good)
	p, _ = ParsePacket(good)
	mac2, _ := p.Param(ParamHIPMAC2)
	pad := mac2.Offset() + paramHeaderLen + len(mac2.Contents())
	if mac2.TotalLen() == paramHeaderLen+len(mac2.Contents()) {
		t.Fatal("test needs a padded parameter")
	}
	b[pad] = 0x55
	if _, err := ParsePacket(b); err != nil {
		t.Errorf("non-zero padding rejected: %v", err)
	}
}

// TestParseParamChainErrors: TLVs that overrun the packet, and order
// violations (§5.2.1).
func TestParseParamChainErrors(t *testing.T) {
	good := buildPacket(t, UPDATE, pSeq, pAck, pMAC, pSig)
	p, _ := ParsePacket(good)
	offs := map[ParamType]int{}
	for it := p.Params(); ; {
		q, ok := it.Next()
		if !ok {
			break
		}
		offs[q.Type()] = q.Offset()
	}
	setLen := func(b []byte, t ParamType, n int) []byte {
		binary.BigEndian.PutUint16(b[offs[t]+2:], uint16(n))
		return b
	}
	setType := func(b []byte, t ParamType, nt ParamType) []byte {
		binary.BigEndian.PutUint16(b[offs[t]:], uint16(nt))
		return b
	}
	cases := []struct {
		name    string
		b       []byte
		want    error
		wantOff int
	}{
		{"last TLV overruns", setLen(bytes.Clone(good), ParamHIPSignature, 66+8), ErrParamLength, offs[ParamHIPSignature]},
		{"length 0xffff", setLen(bytes.Clone(good), ParamSeq, 0xffff), ErrParamLength, offs[ParamSeq]},
		{"padding overruns", setLen(bytes.Clone(good), ParamHIPSignature, 66+4), ErrParamLength, offs[ParamHIPSignature]},
		// Swap the types of SEQ and ACK: framing intact, order broken.
		{"order: ACK before SEQ", setType(setType(bytes.Clone(good), ParamSeq, ParamAck), ParamAck, ParamSeq), ErrParamOrder, offs[ParamAck]},
		{"order: signature before MAC", setType(bytes.Clone(good), ParamHIPMAC, ParamHIPSignature+2), ErrParamOrder, offs[ParamHIPSignature]},
		{"one trailing octet is ignored", append(bytes.Clone(good), 0), nil, 0},
	}
	// A packet whose declared length ends in the middle of a TLV.
	short := bytes.Clone(good)
	short[1] = uint8((offs[ParamHIPSignature]+8)/8 - 1)
	cases = append(cases, struct {
		name    string
		b       []byte
		want    error
		wantOff int
	}{"declared length cuts a TLV", short, ErrParamLength, offs[ParamHIPSignature]})

	for _, c := range cases {
		_, err := ParsePacket(c.b)
		if c.want == nil {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
			continue
		}
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Offset != c.wantOff {
			t.Errorf("%s: error %v does not locate offset %d", c.name, err, c.wantOff)
		}
	}
	// Equal types are allowed when consecutive (§5.2.1).
	dup := buildPacket(t, NOTIFY, pNotify1, pNotify2, pSig)
	if _, err := ParsePacket(dup); err != nil {
		t.Errorf("two NOTIFICATIONs: %v", err)
	}
}

func TestBuilderErrors(t *testing.T) {
	b := NewBuilder(nil, I2, hitI, hitR)
	b.Add(pSolution)
	b.Add(pESPInfo) // 65 < 321
	b.Add(pMAC)
	if _, err := b.Bytes(); !errors.Is(err, ErrBuilderOrder) || !errors.Is(b.Err(), ErrBuilderOrder) {
		t.Errorf("out of order: %v", err)
	}

	b = NewBuilder(nil, I2, hitI, hitR)
	b.AddRaw(ParamHIPSignature, nil)
	b.AddRaw(ParamHIPMAC, nil)
	if _, err := b.Bytes(); !errors.Is(err, ErrBuilderOrder) {
		t.Errorf("AddRaw out of order: %v", err)
	}

	b = NewBuilder(nil, R1, hitI, hitR)
	b.Add(HostID{Algorithm: AlgRSA, HI: fill(1000, 1)})
	b.Add(Signature{Type: ParamHIPSignature2, Alg: AlgRSA, Sig: fill(1000, 1)})
	if _, err := b.Bytes(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized packet: %v", err)
	}
	// Exactly MaxPacketLen fits: 40 + TLV of 2004 contents = 40 + 2008.
	b = NewBuilder(nil, R1, hitI, hitR)
	b.AddRaw(ParamCert, fill(MaxParamsLen-4, 0))
	if out, err := b.Bytes(); err != nil || len(out) != MaxPacketLen || out[1] != 255 {
		t.Errorf("maximum packet: %d octets, %v", len(out), err)
	}

	b = NewBuilder(nil, R1, hitI, hitR)
	b.AddRaw(ParamCert, make([]byte, 0x10000))
	if !errors.Is(b.Err(), ErrTooLarge) {
		t.Errorf("contents over 16 bits: %v", b.Err())
	}

	for _, bad := range []Encoder{
		HIPCipher{IDs: MakeU16List(1, 2, 3, 4, 5, 6, 7)},
		HIPCipher{},
		HIPCipher{IDs: U16List{1}},
		ESPTransform{Suites: MakeU16List(1, 2, 3, 4, 5, 6, 7)},
		Puzzle{}, Puzzle{I: fill(65, 0)},
		Solution{I: fill(32, 0), J: fill(31, 0)},
		DiffieHellman{Group: 3},
		HostID{Algorithm: AlgRSA},
		HostID{Algorithm: AlgRSA, HI: fill(3, 0), DIType: 16},
		HostID{Algorithm: AlgRSA, HI: fill(3, 0), DI: fill(0x1000, 0), DIType: 1},
		HostID{Algorithm: AlgRSA, HI: fill(3, 0), DI: []byte("x")},
		Signature{Type: ParamHIPMAC, Alg: 5, Sig: fill(3, 0)},
		Signature{Alg: 5},
		HIPMAC{}, HIPMAC2{MAC: fill(65, 0)},
		Ack{}, Ack{IDs: U32List{0, 0, 1}},
		Echo{Type: ParamHIPMAC},
		Encrypted{IV: fill(16, 0)},
		DHGroupList{}, HITSuiteList{}, TransportFormatList{},
	} {
		b := NewBuilder(nil, UPDATE, hitI, hitR)
		b.Add(bad)
		if _, err := b.Bytes(); !errors.Is(err, ErrParamValue) {
			t.Errorf("%#v: error %v, want ErrParamValue", bad, err)
		}
	}
	// An unset Signature.Type means HIP_SIGNATURE.
	if (Signature{Alg: 5, Sig: []byte{1}}).ParamType() != ParamHIPSignature {
		t.Error("zero Signature.Type is not HIP_SIGNATURE")
	}

	// Reset reuses the buffer and the reused octets come back zeroed.
	buf := bytes.Repeat([]byte{0xee}, 512)
	var bb Builder
	bb.Reset(buf, CLOSE, hitI, hitR)
	bb.Add(Echo{Type: ParamEchoRequestSigned, Opaque: []byte{1}})
	out, err := bb.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &buf[0] {
		t.Error("Builder did not append to dst[:0]")
	}
	if want := "01000000"; fmt.Sprintf("%x", out[HeaderLen+4:HeaderLen+8]) != want {
		t.Errorf("contents+padding %x, want %s", out[HeaderLen+4:HeaderLen+8], want)
	}
}

// TestBuilderBytesMidway: Bytes before HIP_MAC returns the octets HIP_MAC
// covers, and building continues.
func TestBuilderBytesMidway(t *testing.T) {
	b := NewBuilder(nil, UPDATE, hitI, hitR)
	b.Add(pSeq)
	covered, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	covered = bytes.Clone(covered)
	b.Add(pMAC)
	beforeSig, _ := b.Bytes()
	beforeSig = bytes.Clone(beforeSig)
	b.Add(pSig)
	full, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePacket(full)
	if err != nil {
		t.Fatal(err)
	}
	p.SetChecksum(0xbeef) // covered octets have it zero regardless
	mac, _ := p.Param(ParamHIPMAC)
	sig, _ := p.Param(ParamHIPSignature)
	if got := AppendCovered(nil, p, mac.Offset()); !bytes.Equal(got, covered) {
		t.Errorf("AppendCovered(HIP_MAC)\n got %x\nwant %x", got, covered)
	}
	if got := AppendCovered(nil, p, sig.Offset()); !bytes.Equal(got, beforeSig) {
		t.Errorf("AppendCovered(HIP_SIGNATURE)\n got %x\nwant %x", got, beforeSig)
	}
	if p.Checksum() != 0xbeef {
		t.Error("AppendCovered modified the packet")
	}
}

// TestCoveredR1R2 checks HIP_SIGNATURE_2 and HIP_MAC_2 inputs (§6.4).
func TestCoveredR1R2(t *testing.T) {
	// R1 pre-built with zero receiver HIT and zero puzzle fields; the octets
	// before HIP_SIGNATURE_2 are what the Responder signs.
	zp := pPuzzle
	zp.Opaque, zp.I = [2]byte{}, make([]byte, len(pPuzzle.I))
	b := NewBuilder(nil, R1, hitR, HIT{})
	b.Add(pR1Counter)
	b.Add(zp)
	b.Add(pDH)
	b.Add(pHostID)
	signed, _ := b.Bytes()
	signed = bytes.Clone(signed)
	b.Add(pSig2)
	b.Add(pEchoReqU)
	r1, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ParsePacket(r1)
	p.SetReceiverHIT(hitI)
	if !p.SetPuzzle(pPuzzle.Opaque, pPuzzle.I) {
		t.Fatal("SetPuzzle failed")
	}
	if p.SetPuzzle([2]byte{}, fill(20, 0)) {
		t.Error("SetPuzzle accepted a #I of the wrong length")
	}
	p.SetChecksum(0x1234)
	if pz, _ := p.Param(ParamPuzzle); !bytes.Equal(pz.Contents()[4:], pPuzzle.I) {
		t.Fatal("puzzle not set")
	}
	if p.ReceiverHIT() != hitI {
		t.Fatal("receiver HIT not set")
	}
	sig2, _ := p.Param(ParamHIPSignature2)
	if got := AppendSignature2Covered(nil, p, sig2.Offset()); !bytes.Equal(got, signed) {
		t.Errorf("AppendSignature2Covered\n got %x\nwant %x", got, signed)
	}
	if p.ReceiverHIT() != hitI || p.Checksum() != 0x1234 {
		t.Error("AppendSignature2Covered modified the packet")
	}

	// R2: HIP_MAC_2 covers ESP_INFO, then the R1's HOST_ID TLV appended.
	r1p := Packet(r1)
	hid, _ := r1p.Param(ParamHostID)
	r2 := buildPacket(t, R2, pESPInfo, pMAC2, pSig)
	q, _ := ParsePacket(r2)
	mac2, _ := q.Param(ParamHIPMAC2)
	got := AppendMAC2Covered(nil, q, mac2.Offset(), hid.TLV())
	want := buildPacket(t, R2, pESPInfo)
	want = append(want, hid.TLV()...)
	want[1] = uint8(len(want)/8 - 1)
	if !bytes.Equal(got, want) {
		t.Errorf("AppendMAC2Covered\n got %x\nwant %x", got, want)
	}
	if _, err := ParsePacket(got); err != nil {
		t.Errorf("HIP_MAC_2 input does not parse: %v", err)
	}
}
