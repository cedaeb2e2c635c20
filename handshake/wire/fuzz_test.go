package wire

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParsePacket: ParsePacket never panics; anything it accepts can be
// walked, every known parameter decoded, printed, and rebuilt from its raw
// TLVs into the same bytes (with padding zeroed, as a sender writes it).
func FuzzParsePacket(f *testing.F) {
	addPacketSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			if p != nil {
				t.Fatal("non-nil packet with an error")
			}
			return
		}
		if len(p) > len(b) || len(p) != p.Len() || len(p)%8 != 0 || len(p) < HeaderLen {
			t.Fatalf("view of %d octets from %d, header says %d", len(p), len(b), p.Len())
		}
		_ = Format(p)
		want := bytes.Clone([]byte(p))
		it := p.Params()
		bl := NewBuilder(nil, p.Type(), p.SenderHIT(), p.ReceiverHIT())
		bl.SetControls(p.Controls())
		var last ParamType
		for n := 0; ; n++ {
			q, ok := it.Next()
			if !ok {
				break
			}
			if n > 0 && q.Type() < last {
				t.Fatalf("order violation passed ParsePacket at %d", q.Offset())
			}
			last = q.Type()
			if d, ok := decoders[q.Type()]; ok {
				if v, err := d(q.Contents()); err == nil {
					checkReencode(t, q.Type(), q.Contents(), v)
				}
			}
			_ = FormatParam(q)
			clear(want[q.Offset()+paramHeaderLen+len(q.Contents()) : q.Offset()+q.TotalLen()])
			bl.AddParam(q)
		}
		if it.Err() != nil {
			t.Fatalf("iteration error on a parsed packet: %v", it.Err())
		}
		got, err := bl.Bytes()
		if err != nil {
			t.Fatalf("rebuild: %v", err)
		}
		// The header octets a Builder writes canonically (Next Header, fixed
		// and reserved bits) and the checksum are copied from the input.
		copy(got[0:1], p[0:1])
		copy(got[2:6], p[2:6])
		if !bytes.Equal(got, want) {
			t.Fatalf("rebuilt packet differs\n got %x\nwant %x", got, want)
		}
	})
}

// FuzzParams drives every parameter decoder: the type selects the ParseXxx,
// and whatever it accepts must re-encode through the Builder and decode to
// the same struct.
func FuzzParams(f *testing.F) {
	addParamSeeds(f)
	f.Fuzz(func(t *testing.T, typ uint16, contents []byte) {
		pt := ParamType(typ)
		_, _ = describe(pt, contents)
		if pt == ParamEncrypted {
			for _, iv := range []int{0, 16} {
				if e, err := ParseEncrypted(contents, iv); err == nil {
					checkReencode(t, pt, contents, e)
				}
			}
		}
		d, ok := decoders[pt]
		if !ok {
			// Any type round-trips raw.
			b := NewBuilder(nil, UPDATE, hitI, hitR)
			b.AddRaw(pt, contents)
			if raw, err := b.Bytes(); err == nil {
				p, err := ParsePacket(raw)
				if err != nil {
					t.Fatalf("raw %v: %v", pt, err)
				}
				q, ok := p.Param(pt)
				if !ok || !bytes.Equal(q.Contents(), contents) {
					t.Fatalf("raw %v lost", pt)
				}
			} else if !errors.Is(err, ErrTooLarge) {
				t.Fatal(err)
			}
			return
		}
		v, err := d(contents)
		if err != nil {
			if !errors.Is(err, ErrParamLength) && !errors.Is(err, ErrParamValue) {
				t.Fatalf("%v: error %v wraps no sentinel", pt, err)
			}
			return
		}
		checkReencode(t, pt, contents, v)
	})
}

// checkReencode builds v into a packet, parses it back and checks the
// decoded struct is unchanged, and that the contents are reproduced except
// for reserved fields and the six-ID limit of HIP_CIPHER.
func checkReencode(t *testing.T, pt ParamType, contents []byte, v Encoder) {
	t.Helper()
	if v.ParamType() != pt {
		t.Fatalf("%v decoded as %v", pt, v.ParamType())
	}
	b := NewBuilder(nil, UPDATE, hitI, hitR)
	b.Add(v)
	raw, err := b.Bytes()
	if err != nil {
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrParamValue) {
			// Accepted on receipt, but a sender must not send it: for
			// example a DI-Type of none with a Domain Identifier.
			return
		}
		t.Fatalf("%v: rebuild: %v", pt, err)
	}
	p, err := ParsePacket(raw)
	if err != nil {
		t.Fatalf("%v: %v", pt, err)
	}
	q, _ := p.Param(pt)
	v2, err := decoders[pt](q.Contents())
	if pt == ParamEncrypted {
		v2, err = ParseEncrypted(q.Contents(), len(v.(Encrypted).IV))
	}
	if err != nil {
		t.Fatalf("%v: re-decode: %v", pt, err)
	}
	if normalize(v2) != normalize(v) {
		t.Fatalf("%v: decode(encode(x)) != x\n got %s\nwant %s", pt, normalize(v2), normalize(v))
	}
	got, want := q.Contents(), bytes.Clone(contents)
	switch pt {
	case ParamR1Counter, ParamEncrypted:
		clear(want[:4])
	case ParamSolution:
		want[1] = 0
	case ParamESPInfo, ParamESPTransform, ParamNotification:
		clear(want[:2])
	case ParamHIPCipher:
		if len(want) > 2*MaxListIDs {
			want = want[:2*MaxListIDs]
		}
	case ParamNATTraversalMode:
		clear(want[:2])
		if len(want) > 2+2*MaxListIDs {
			want = want[:2+2*MaxListIDs]
		}
	case ParamRegFrom, ParamRelayFrom, ParamRelayTo, ParamRelayedAddress, ParamMappedAddress:
		want[3] = 0
	case ParamPeerPermission:
		clear(want[5:8])
	case ParamNominate:
		clear(want)
	case ParamLocatorSet:
		want = canonicalLocatorSet(want)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%v: contents\n got %x\nwant %x", pt, got, want)
	}
}

// FuzzParseUDPControl: the UDP demultiplexing entry point never panics and
// accepts only marker + zero checksum + a packet ParsePacket accepts.
func FuzzParseUDPControl(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add(AppendUDPControl(nil, realisticI2(f)))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseUDPControl(b)
		if err != nil {
			return
		}
		if !HasNonESPMarker(b) || p.Checksum() != 0 {
			t.Fatal("accepted without marker or with a checksum")
		}
		if _, err := ParsePacket(b[NonESPMarkerLen:]); err != nil {
			t.Fatalf("ParseUDPControl accepted what ParsePacket rejects: %v", err)
		}
	})
}

// addPacketSeeds adds the §5.3 compositions; the committed corpus under
// testdata/fuzz adds the capture packets.
func addPacketSeeds(f *testing.F) {
	for _, c := range compositions {
		f.Add(buildPacket(f, c.t, c.params...))
	}
	f.Add(realisticI2(f))
}

func addParamSeeds(f *testing.F) {
	for _, c := range compositions {
		for _, e := range c.params {
			b := NewBuilder(nil, UPDATE, hitI, hitR)
			b.Add(e)
			raw, _ := b.Bytes()
			q, _ := Packet(raw).Param(e.ParamType())
			f.Add(uint16(e.ParamType()), bytes.Clone(q.Contents()))
		}
	}
}
