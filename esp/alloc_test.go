package esp_test

import (
	"testing"

	"hipnet.dev/esp"
)

func TestSealOpenZeroAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	for _, s := range allSuites {
		o, in := newPair(t, s, 21)
		payload := seqBytes(0, 1400)
		buf := make([]byte, 0, 1400+s.Overhead(1400))
		out := make([]byte, 0, 1500)
		var pkt []byte
		if a := testing.AllocsPerRun(200, func() {
			pkt, _ = o.Seal(buf[:0], payload, 17)
		}); a != 0 {
			t.Errorf("%v: Seal allocates %.1f times", s, a)
		}
		// Open: a fresh packet each run (a replay would take the error
		// path), sealed outside the measurement into preallocated buffers.
		const runs = 200
		pkts := make([][]byte, runs+1)
		for i := range pkts {
			pkts[i], _ = o.Seal(make([]byte, 0, cap(buf)), payload, 17)
		}
		i := 0
		if a := testing.AllocsPerRun(runs, func() {
			if _, _, err := in.Open(out[:0], pkts[i]); err != nil {
				t.Fatal(err)
			}
			i++
		}); a != 0 {
			t.Errorf("%v: Open allocates %.1f times", s, a)
		}
		// The error paths must not allocate either (a flood of forgeries).
		bad := append([]byte(nil), pkt...)
		bad[len(bad)-1] ^= 1
		if a := testing.AllocsPerRun(100, func() {
			if _, _, err := in.Open(out[:0], bad); err == nil {
				t.Fatal("forgery accepted")
			}
		}); a != 0 {
			t.Errorf("%v: failing Open allocates %.1f times", s, a)
		}
	}
}

func TestUDPZeroAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	payload := seqBytes(0, 1400)
	buf := make([]byte, 0, 1500)
	var seg []byte
	if a := testing.AllocsPerRun(200, func() {
		seg = esp.AppendUDP(buf[:0], hit1, hit2, 1, 2, payload)
	}); a != 0 {
		t.Errorf("AppendUDP allocates %.1f times", a)
	}
	if a := testing.AllocsPerRun(200, func() {
		if _, _, _, err := esp.ParseUDP(seg, hit1, hit2); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("ParseUDP allocates %.1f times", a)
	}
}
