package wire

import "testing"

// realisticI2 is an I2 as RFC 7401 §5.3.3 and RFC 7402 §5.2.1.2 compose it,
// with an RSA-3072-sized HOST_ID and signature and a P-256 DH value.
func realisticI2(t testing.TB) []byte {
	return buildPacket(t, I2,
		ESPInfo{KeymatIndex: 96, NewSPI: 0x11223344},
		R1Counter{Counter: 9},
		Solution{K: 10, Opaque: [2]byte{1, 2}, I: fill(32, 1), J: fill(32, 2)},
		DiffieHellman{Group: DHGroupP256, Public: fill(65, 3)},
		HIPCipher{IDs: MakeU16List(CipherAES128CBC)},
		HostID{Algorithm: AlgRSA, HI: fill(388, 4), DIType: DITypeFQDN, DI: []byte("\x04host\x07example\x00")},
		TransportFormatList{IDs: MakeU16List(TransportFormatESP)},
		ESPTransform{Suites: MakeU16List(ESPSuiteAES128CBCSHA256)},
		HIPMAC{MAC: fill(32, 5)},
		Signature{Type: ParamHIPSignature, Alg: AlgRSA, Sig: fill(384, 6)},
	)
}

// parseI2 is what a receiver does with an I2 before any crypto: parse the
// packet, walk every parameter and decode each. It returns a value derived
// from every decoded field so nothing is optimised away.
func parseI2(b []byte) (sum int, err error) {
	p, err := ParsePacket(b)
	if err != nil {
		return 0, err
	}
	it := p.Params()
	for {
		q, ok := it.Next()
		if !ok {
			break
		}
		c := q.Contents()
		switch q.Type() {
		case ParamESPInfo:
			v, err := ParseESPInfo(c)
			if err != nil {
				return 0, err
			}
			sum += int(v.NewSPI & 0xff)
		case ParamR1Counter:
			v, err := ParseR1Counter(c)
			if err != nil {
				return 0, err
			}
			sum += int(v.Counter)
		case ParamSolution:
			v, err := ParseSolution(c)
			if err != nil {
				return 0, err
			}
			sum += len(v.I) + len(v.J)
		case ParamDiffieHellman:
			v, err := ParseDiffieHellman(c)
			if err != nil {
				return 0, err
			}
			sum += len(v.Public)
		case ParamHIPCipher:
			v, err := ParseHIPCipher(c)
			if err != nil {
				return 0, err
			}
			sum += int(v.IDs.At(0))
		case ParamHostID:
			v, err := ParseHostID(c)
			if err != nil {
				return 0, err
			}
			sum += len(v.HI) + len(v.DI)
		case ParamTransportFormatList:
			v, err := ParseTransportFormatList(c)
			if err != nil {
				return 0, err
			}
			if v.IDs.Contains(TransportFormatESP) {
				sum++
			}
		case ParamESPTransform:
			v, err := ParseESPTransform(c)
			if err != nil {
				return 0, err
			}
			sum += v.Suites.Len()
		case ParamHIPMAC:
			v, err := ParseHIPMAC(c)
			if err != nil {
				return 0, err
			}
			sum += len(v.MAC) + q.Offset()
		case ParamHIPSignature:
			v, err := ParseSignature(c)
			if err != nil {
				return 0, err
			}
			sum += len(v.Sig) + int(v.Alg)
		}
	}
	if _, ok := p.Param(ParamHIPSignature); ok {
		sum++
	}
	h := p.SenderHIT()
	return sum + int(h[15]) + int(p.Type()), it.Err()
}

func TestParseI2ZeroAllocs(t *testing.T) {
	b := realisticI2(t)
	want, err := parseI2(b)
	if err != nil {
		t.Fatal(err)
	}
	// ESP_INFO, R1_COUNTER, SOLUTION, DH, HIP_CIPHER, HOST_ID, TFL, ESP_TRANSFORM, HIP_MAC, HIP_SIGNATURE
	if want < 1000 {
		t.Fatalf("parseI2 decoded too little: %d", want)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if got, err := parseI2(b); err != nil || got != want {
			t.Fatal(got, err)
		}
	})
	if allocs != 0 {
		t.Errorf("parsing an I2 allocates %.1f times, want 0", allocs)
	}
}

func BenchmarkParseI2(bm *testing.B) {
	b := realisticI2(bm)
	bm.ReportAllocs()
	bm.SetBytes(int64(len(b)))
	for bm.Loop() {
		if _, err := parseI2(b); err != nil {
			bm.Fatal(err)
		}
	}
}

func BenchmarkBuildI2(bm *testing.B) {
	buf := make([]byte, 0, MaxPacketLen)
	var b Builder
	sol := Solution{K: 10, I: fill(32, 1), J: fill(32, 2)}
	dh := DiffieHellman{Group: DHGroupP256, Public: fill(65, 3)}
	hid := HostID{Algorithm: AlgRSA, HI: fill(388, 4)}
	sig := Signature{Type: ParamHIPSignature, Alg: AlgRSA, Sig: fill(384, 6)}
	bm.ReportAllocs()
	for bm.Loop() {
		b.Reset(buf, I2, hitI, hitR)
		b.Add(ESPInfo{KeymatIndex: 96, NewSPI: 1})
		b.Add(sol)
		b.Add(dh)
		b.Add(hid)
		b.Add(HIPMAC{MAC: sol.I})
		b.Add(sig)
		if _, err := b.Bytes(); err != nil {
			bm.Fatal(err)
		}
	}
}
