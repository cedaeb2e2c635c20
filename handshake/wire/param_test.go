package wire

import (
	"errors"
	"strings"
	"testing"
)

// TestInnerParams: the decrypted contents of ENCRYPTED are a bare TLV chain
// (§5.2.18), walked with IterParams and validated with CheckParams.
func TestInnerParams(t *testing.T) {
	pkt := buildPacket(t, I2, pHostID, pEchoRespS)
	inner := pkt[HeaderLen:]
	if err := CheckParams(inner); err != nil {
		t.Fatal(err)
	}
	it := IterParams(inner)
	q, ok := it.Next()
	if !ok || q.Type() != ParamHostID || q.Offset() != 0 {
		t.Fatalf("first inner param: %v at %d", q.Type(), q.Offset())
	}
	h, err := ParseHostID(q.Contents())
	if err != nil || h.Algorithm != pHostID.Algorithm {
		t.Fatalf("inner HOST_ID: %+v %v", h, err)
	}
	q, ok = it.Next()
	if !ok || q.Type() != ParamEchoResponseSigned || q.Offset() != TLVLen(pHostID.Len()) {
		t.Fatalf("second inner param: %v at %d", q.Type(), q.Offset())
	}
	if _, ok := it.Next(); ok || it.Err() != nil {
		t.Fatalf("end of chain: %v", it.Err())
	}
	if err := CheckParams(nil); err != nil {
		t.Errorf("empty chain: %v", err)
	}
	var zero ParamIter
	if _, ok := zero.Next(); ok {
		t.Error("zero iterator yields")
	}

	// Leftover octets that are not a whole TLV (e.g. cipher padding not
	// removed) are an error that IterParams reports through Err.
	bad := append(append([]byte{}, inner...), 1, 2, 3)
	if err := CheckParams(bad); !errors.Is(err, ErrParamLength) {
		t.Errorf("3 trailing octets: %v", err)
	}
	it = IterParams(bad)
	n := 0
	for {
		if _, ok := it.Next(); !ok {
			break
		}
		n++
	}
	if n != 2 || !errors.Is(it.Err(), ErrParamLength) {
		t.Errorf("iterated %d, err %v", n, it.Err())
	}
	// Out of order.
	rev := append(append([]byte{}, inner[TLVLen(pHostID.Len()):]...), inner[:TLVLen(pHostID.Len())]...)
	if err := CheckParams(rev); !errors.Is(err, ErrParamOrder) {
		t.Errorf("reversed: %v", err)
	}
}

func TestErrorText(t *testing.T) {
	good := buildPacket(t, UPDATE, pSeq, pMAC, pSig)
	good[HeaderLen+8+2] = 0xff // HIP_MAC's Length high octet: the TLV overruns the packet
	_, err := ParsePacket(good)
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Type != ParamHIPMAC || pe.Offset != HeaderLen+8 {
		t.Fatalf("error %v", err)
	}
	for _, want := range []string{"HIP_MAC", "offset 48", "bad parameter length"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	_, err = ParseSeq([]byte{1})
	if !strings.Contains(err.Error(), "SEQ: contents are 1 octets, want 4") {
		t.Errorf("ParseSeq error %q", err)
	}
}

func TestTLVLen(t *testing.T) {
	// 11 + Length - (Length + 3) % 8 (§5.2.1): the TLV header plus contents
	// rounded up to a multiple of 8.
	for n := 0; n < 100; n++ {
		want := (4 + n + 7) / 8 * 8
		if got := TLVLen(n); got != want {
			t.Errorf("TLVLen(%d) = %d, want %d", n, got, want)
		}
	}
}
