package wire

import (
	"math"
	"testing"
	"time"
)

// lifetimeFormula is RFC 8003 §4.1 written out again: 0 is zero seconds,
// any other x is 2^((x-64)/8) seconds.
func lifetimeFormula(x uint8) time.Duration {
	if x == 0 {
		return 0
	}
	secs := math.Pow(2, (float64(x)-64)/8)
	return time.Duration(math.Round(secs * 1e9))
}

func TestLifetimeToDuration(t *testing.T) {
	for x := range 256 {
		got, want := LifetimeToDuration(uint8(x)), lifetimeFormula(uint8(x))
		// float64 holds 2^(191/8) s in ns to about 2 ns: allow 1e-15 relative.
		if d := math.Abs(float64(got - want)); d > 1+1e-15*float64(want) {
			t.Errorf("LifetimeToDuration(%d) = %v, formula %v", x, got, want)
		}
		if x > 1 && got <= LifetimeToDuration(uint8(x-1)) {
			t.Errorf("not increasing at %d", x)
		}
	}
	for _, c := range []struct {
		x    uint8
		want time.Duration
	}{
		{0, 0},                   // cancel (§4.1)
		{64, time.Second},        // 2^0
		{72, 2 * time.Second},    // 2^1
		{120, 128 * time.Second}, // 2^7
		{56, 500 * time.Millisecond},
	} {
		if got := LifetimeToDuration(c.x); got != c.want {
			t.Errorf("LifetimeToDuration(%d) = %v, want %v", c.x, got, c.want)
		}
	}
	// §4.1: "~4 ms" for 1 and "~178 days" for 255.
	if d := LifetimeToDuration(1); d < 4*time.Millisecond || d > 5*time.Millisecond {
		t.Errorf("lifetime 1 = %v", d)
	}
	if d := LifetimeToDuration(255); d < 178*24*time.Hour || d > 179*24*time.Hour {
		t.Errorf("lifetime 255 = %v", d)
	}
}

func TestDurationToLifetime(t *testing.T) {
	// The smallest x whose duration is at least d, found from the formula.
	ceil := func(d time.Duration) uint8 {
		if d <= 0 {
			return 0
		}
		for x := 1; x <= 255; x++ {
			if lifetimeFormula(uint8(x)) >= d {
				return uint8(x)
			}
		}
		return 255
	}
	for _, d := range []time.Duration{
		-time.Second, 0, 1, time.Millisecond, 4 * time.Millisecond, 5 * time.Millisecond,
		time.Second, 10 * time.Second, 15 * time.Second, 60 * time.Second, 120 * time.Second,
		time.Hour, 24 * time.Hour, 178 * 24 * time.Hour, 179 * 24 * time.Hour, math.MaxInt64,
	} {
		if got, want := DurationToLifetime(d), ceil(d); got != want {
			t.Errorf("DurationToLifetime(%v) = %d, want %d", d, got, want)
		}
	}
	// RFC 8003 §5: 10 s is the minimum both sides MUST support; 120 s the
	// maximum they SHOULD support at least. x = 64 + 8*log2(seconds).
	ten := DurationToLifetime(10 * time.Second)
	if want := uint8(math.Ceil(64 + 8*math.Log2(10))); ten != want || ten != 91 {
		t.Errorf("10 s = %d, want %d", ten, want)
	}
	if LifetimeToDuration(ten) < 10*time.Second || LifetimeToDuration(ten-1) >= 10*time.Second {
		t.Errorf("10 s: %d is %v, %d is %v", ten, LifetimeToDuration(ten), ten-1, LifetimeToDuration(ten-1))
	}
	oneTwenty := DurationToLifetime(120 * time.Second)
	if want := uint8(math.Ceil(64 + 8*math.Log2(120))); oneTwenty != want || oneTwenty != 120 {
		t.Errorf("120 s = %d, want %d", oneTwenty, want)
	}
	// Every code round-trips through its own duration.
	for x := range 256 {
		if got := DurationToLifetime(LifetimeToDuration(uint8(x))); got != uint8(x) {
			t.Errorf("DurationToLifetime(LifetimeToDuration(%d)) = %d", x, got)
		}
	}
}

func TestRegistrationParams(t *testing.T) {
	info, err := ParseRegInfo([]byte{91, 120, RegTypeRelayUDPHIP, RegTypeRelayUDPESP})
	if err != nil || info.MinLifetime != 91 || info.MaxLifetime != 120 || string(info.Types) != "\x02\x03" {
		t.Errorf("REG_INFO %+v %v", info, err)
	}
	// An empty REG_INFO announces that no service is available now (§3.1).
	if info, err := ParseRegInfo([]byte{1, 2}); err != nil || len(info.Types) != 0 {
		t.Errorf("empty REG_INFO %+v %v", info, err)
	}
	req, err := ParseRegRequest([]byte{0, RegTypeRendezvous})
	if err != nil || req.Lifetime != 0 || req.Types[0] != RegTypeRendezvous {
		t.Errorf("REG_REQUEST %+v %v", req, err)
	}
	resp, err := ParseRegResponse([]byte{120, RegTypeRelayUDPHIP})
	if err != nil || resp.Lifetime != 120 || resp.Types[0] != RegTypeRelayUDPHIP {
		t.Errorf("REG_RESPONSE %+v %v", resp, err)
	}
	failed, err := ParseRegFailed([]byte{RegFailureInsufficientResources, RegTypeRelayUDPESP, RegTypeCandidateDiscovery})
	if err != nil || failed.FailureType != 2 || len(failed.Types) != 2 {
		t.Errorf("REG_FAILED %+v %v", failed, err)
	}
	// Min above max cannot be built.
	b := NewBuilder(nil, R1, hitI, hitR)
	b.Add(RegInfo{MinLifetime: 121, MaxLifetime: 120})
	if _, err := b.Bytes(); err == nil {
		t.Error("REG_INFO with min > max built")
	}
	for _, n := range []struct {
		got, want string
	}{
		{RegTypeName(RegTypeRendezvous), "RENDEZVOUS"},
		{RegTypeName(RegTypeRelayUDPHIP), "RELAY_UDP_HIP"},
		{RegTypeName(RegTypeRelayUDPESP), "RELAY_UDP_ESP"},
		{RegTypeName(RegTypeCandidateDiscovery), "CANDIDATE_DISCOVERY"},
		{RegTypeName(201), "regtype201"},
		{RegFailureName(RegFailureUnknownCA), "unknown CA"},
		{RegFailureName(200), "failure200"},
	} {
		if n.got != n.want {
			t.Errorf("%q, want %q", n.got, n.want)
		}
	}
}
