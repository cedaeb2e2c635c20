package esp_test

import (
	"bytes"
	"testing"

	"hipnet.dev/esp"
)

// TestTrim: an idle GCM SA drops its cipher state, a used one keeps it,
// and packets after a trim still seal and open (the state is rebuilt)
// without disturbing the sequence numbers or the anti-replay window.
func TestTrim(t *testing.T) {
	out, in := newPair(t, esp.SuiteAESGCM16, 0x1234)
	if out.Trim() || in.Trim() {
		t.Fatal("trimmed state that was never built")
	}
	roundTrip := func(msg string) {
		t.Helper()
		pkt := mustSeal(t, out, []byte(msg), 17)
		pt, nh, err := in.Open(nil, pkt)
		if err != nil || nh != 17 || !bytes.Equal(pt, []byte(msg)) {
			t.Fatalf("open %q: %q %d %v", msg, pt, nh, err)
		}
	}
	roundTrip("one")
	if out.Trim() || in.Trim() {
		t.Fatal("trimmed state used since the last trim")
	}
	if !out.Trim() || !in.Trim() {
		t.Fatal("idle state not trimmed")
	}
	roundTrip("two")
	replay := mustSeal(t, out, []byte("three"), 17)
	if _, _, err := in.Open(nil, replay); err != nil {
		t.Fatal(err)
	}
	out.Trim()
	in.Trim()
	if !in.Trim() {
		t.Fatal("second idle trim")
	}
	if _, _, err := in.Open(nil, replay); err != esp.ErrReplay {
		t.Fatalf("replay after trim: %v", err)
	}
	if out.Seq() != 3 {
		t.Fatalf("seq %d", out.Seq())
	}
	// A CBC SA has nothing to trim.
	co, ci := newPair(t, esp.SuiteAES128CBCSHA256, 0x99)
	if co.Trim() || ci.Trim() {
		t.Fatal("CBC trimmed")
	}
}

// TestTransformSize: the per-direction state of a GCM SA stays at 48
// octets (a relay holds two per registered host); the CBC-HMAC suites'
// keyed state lives apart.
func TestTransformSize(t *testing.T) {
	if s := esp.TransformSizeForTest(); s > 48 {
		t.Errorf("transform is %d octets, want at most 48", s)
	}
	for _, suite := range []esp.Suite{esp.SuiteAESGCM16, esp.SuiteAES128CBCSHA256} {
		out, in := newPair(t, suite, 0x1234)
		if got, want := out.KeyedForTest() && in.KeyedForTest(), suite != esp.SuiteAESGCM16; got != want {
			t.Errorf("%v: keyed state %v, want %v", suite, got, want)
		}
	}
}
