package handshake

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Issue 9, finding 6 (Responder side): #K that follows the load.
//
// RFC 7401 §4.1.1 lets a Responder under attack raise the puzzle
// difficulty, announced in fresh R1s (§6.7.1). The load is the rate of I2s
// whose puzzle solution is correct — each costs the Responder a
// Diffie-Hellman computation. load.go measures it in windows of 250 ms:
// above Config.LoadThreshold per second #K rises by 2 per window up to
// Config.MaxLoadDifficulty; after 2 s under a quarter of the threshold it
// steps down by 1 per window to Config.PuzzleDifficulty.

// floodI2 is what an attacker who solves puzzles but has no key sends:
// for a HIT of its own choosing it asks for an R1, solves the R1's puzzle
// and sends an I2 with that solution and the rest copied from a recorded
// I2, so its HIP_MAC cannot verify. It returns the I2 and the R1's #K.
func floodI2(t *testing.T, b *host, template []byte, hit wire.HIT, now time.Time) ([]byte, uint8) {
	t.Helper()
	group := uint8(wire.DHGroupP256)
	if tp, err := wire.ParsePacket(template); err == nil {
		if q, ok := tp.Param(wire.ParamDiffieHellman); ok {
			if dh, err := wire.ParseDiffieHellman(q.Contents()); err == nil {
				group = dh.Group // the template's: the R1 is for it
			}
		}
	}
	var i1 wire.Builder
	i1.Reset(nil, wire.I1, hit, b.e.HIT())
	i1.Add(wire.DHGroupList{Groups: []uint8{group}})
	raw, _ := i1.Bytes()
	res, err := b.e.Handle(now, raw, nil)
	if err != nil || res.Reply == nil {
		t.Fatalf("I1: %v", err)
	}
	r1, _ := wire.ParsePacket(res.Reply)
	pzP, _ := r1.Param(wire.ParamPuzzle)
	pz, err := wire.ParsePuzzle(pzP.Contents())
	if err != nil {
		t.Fatal(err)
	}
	ctr, _ := r1.Param(wire.ParamR1Counter)
	start := make([]byte, len(pz.I))
	copy(start, hit[8:])
	j, err := solvePuzzle(b.e.rhash, pz.I, hit, b.e.HIT(), int(pz.K), start, 1<<(pz.K+8), nil)
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := wire.ParsePacket(template)
	var i2 wire.Builder
	i2.Reset(nil, wire.I2, hit, b.e.HIT())
	it := tp.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		switch q.Type() {
		case wire.ParamR1Counter:
			i2.AddParam(ctr)
		case wire.ParamSolution:
			i2.Add(wire.Solution{K: pz.K, Opaque: pz.Opaque, I: pz.I, J: j})
		default:
			i2.AddParam(q)
		}
	}
	out, err := i2.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), out...), pz.K
}

// flood sends b n I2s like template with correct solutions from changing
// HITs (floodI2), one every interval from t0, and runs b's HandleLoad
// whenever it is due.
func flood(t *testing.T, a, b *host, template []byte, n int, every time.Duration) {
	t.Helper()
	for i := range n {
		now := t0.Add(time.Duration(i) * every)
		if d := b.e.LoadDeadline(); !d.IsZero() && !now.Before(d) {
			if _, err := b.e.HandleLoad(now); err != nil {
				t.Fatal(err)
			}
		}
		hit := a.e.HIT()
		binary.BigEndian.PutUint64(hit[8:], uint64(i)+1)
		i2, _ := floodI2(t, b, template, hit, now)
		if _, err := b.e.Handle(now, i2, nil); !errors.Is(err, ErrBadMAC) {
			t.Fatal(err)
		}
	}
}

type kPoint struct {
	at time.Duration
	k  uint8
}

// TestLoadAdaptiveDifficulty floods a Responder (base #K 2, threshold 40
// I2s/s, cap 10) with 50 I2s/s carrying correct solutions from changing
// HITs for 2 s, then nothing, calling HandleLoad whenever LoadDeadline is
// due on a fake clock. #K must rise by 2 per window to the cap during the
// flood, hold while the flood lasts and for 2 s after, then step down by 1
// per window to the base, after which the meter goes idle (zero
// LoadDeadline). An honest Initiator completes its exchange while #K is
// raised above its inline limit (EventPuzzle, solved by the harness).
func TestLoadAdaptiveDifficulty(t *testing.T) {
	const base, maxK, thr = 2, 10, 40
	cb := defaultCfg(testKey(t, hostid.ECDSAP256, 1))
	cb.PuzzleDifficulty, cb.MaxLoadDifficulty, cb.LoadThreshold = base, maxK, thr
	b := newHost(t, "b", cb)
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	template := i2Of(t, a, b)
	if !b.e.LoadDeadline().IsZero() {
		t.Fatal("load measured before any I2")
	}

	const tick = 20 * time.Millisecond // one I2 a tick: 50/s
	floodEnd := 2 * time.Second
	series := []kPoint{{0, b.e.PuzzleDifficulty()}}
	t.Logf("FIGURE puzzle-k t=%v k=%d", time.Duration(0), b.e.PuzzleDifficulty())
	var honest bool
	sent := 0
	for el := time.Duration(0); el < 20*time.Second; el += tick {
		now := t0.Add(el)
		// The caller's timer: HandleLoad exactly at each LoadDeadline.
		for d := b.e.LoadDeadline(); !d.IsZero() && !now.Before(d); d = b.e.LoadDeadline() {
			before := b.e.PuzzleDifficulty()
			changed, err := b.e.HandleLoad(d)
			if err != nil {
				t.Fatal(err)
			}
			k := b.e.PuzzleDifficulty()
			if changed != (k != before) {
				t.Fatalf("HandleLoad reported change %v, #K %d -> %d", changed, before, k)
			}
			series = append(series, kPoint{d.Sub(t0), k})
			t.Logf("FIGURE puzzle-k t=%v k=%d", d.Sub(t0), k)
		}
		if el >= floodEnd && b.e.LoadDeadline().IsZero() {
			break
		}
		if el < floodEnd {
			hit := a.e.HIT()
			binary.BigEndian.PutUint64(hit[8:], uint64(sent)+1)
			i2, k := floodI2(t, b, template, hit, now)
			if k != b.e.PuzzleDifficulty() {
				t.Fatalf("R1 announces #K %d, current %d", k, b.e.PuzzleDifficulty())
			}
			if _, err := b.e.Handle(now, i2, nil); !errors.Is(err, ErrBadMAC) {
				t.Fatalf("flood I2 %d: %v, want ErrBadMAC (Diffie-Hellman done)", sent, err)
			}
			sent++
		}
		if !honest && b.e.PuzzleDifficulty() == maxK {
			// An honest exchange at the peak, #K above the inline limit.
			c := newHost(t, "c", defaultCfg(testKey(t, hostid.ECDSAP256, 2)))
			l := &link{}
			l.send(c, b, c.initiate(now, b.e.HIT()))
			l.run(t, now)
			if c.a(b).State() != Established || len(c.eventsOf(EventPuzzle)) != 1 {
				t.Fatalf("honest exchange at #K %d: %v, events %v", maxK, c.a(b).State(), c.events)
			}
			honest = true
		}
	}
	if !honest {
		t.Fatal("#K never reached the cap")
	}
	if !b.e.LoadDeadline().IsZero() || b.e.PuzzleDifficulty() != base {
		t.Fatalf("after the flood: #K %d, load deadline %v", b.e.PuzzleDifficulty(), b.e.LoadDeadline())
	}

	// The shape: up by 2 to the cap while flooded, never above it, held
	// for 2 s of calm, then down by 1 per window.
	var peakAt, lastBusy, downFrom time.Duration
	for i := 1; i < len(series); i++ {
		p, q := series[i-1], series[i]
		if q.k > maxK {
			t.Fatalf("#K %d above the cap at %v", q.k, q.at)
		}
		switch {
		case q.k > p.k:
			if q.k-p.k != loadStep && q.k != maxK || q.at > floodEnd+loadWindow {
				t.Fatalf("#K %d -> %d at %v", p.k, q.k, q.at)
			}
			if q.k == maxK {
				peakAt = q.at
			}
		case q.k < p.k:
			if p.k-q.k != 1 {
				t.Fatalf("#K stepped down %d -> %d at %v", p.k, q.k, q.at)
			}
			if downFrom == 0 {
				downFrom = q.at
			}
		}
		if q.at <= floodEnd+loadWindow {
			lastBusy = q.at
		}
	}
	if peakAt == 0 || peakAt > 5*loadWindow {
		t.Fatalf("#K reached %d at %v, want within %v", maxK, peakAt, 5*loadWindow)
	}
	if downFrom < lastBusy+loadCalm {
		t.Fatalf("#K came down at %v, less than %v after the flood's last window at %v", downFrom, loadCalm, lastBusy)
	}
	if want := uint64((maxK-base)/loadStep + (maxK - base)); b.e.Stats().DifficultyChanges != want {
		t.Fatalf("%d difficulty changes, want %d", b.e.Stats().DifficultyChanges, want)
	}
	t.Logf("%d flood I2s, %d windows", sent, len(series)-1)
}

// TestLoadBelowThreshold: I2s at the threshold's rate do not raise #K,
// and the meter goes idle once they stop.
func TestLoadBelowThreshold(t *testing.T) {
	cb := defaultCfg(testKey(t, hostid.ECDSAP256, 1))
	cb.PuzzleDifficulty, cb.LoadThreshold = 2, 40
	b := newHost(t, "b", cb)
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	flood(t, a, b, i2Of(t, a, b), 40, 25*time.Millisecond) // 40/s for 1 s: not above the threshold
	for now := t0.Add(time.Second); !b.e.LoadDeadline().IsZero(); now = now.Add(loadWindow) {
		if now.After(t0.Add(time.Minute)) {
			t.Fatal("load meter never went idle")
		}
		if _, err := b.e.HandleLoad(now); err != nil {
			t.Fatal(err)
		}
	}
	if k := b.e.PuzzleDifficulty(); k != 2 || b.e.Stats().DifficultyChanges != 0 {
		t.Fatalf("#K %d after %d changes", k, b.e.Stats().DifficultyChanges)
	}
}

// TestLoadWeighsGroup: an attacker who offers only MODP-1536 makes each
// solved puzzle cost the Responder eleven times a P-256 computation
// (dhCost), and is counted so: 4 such I2s a second, a tenth of the
// threshold of 40 in I2s, raise #K.
func TestLoadWeighsGroup(t *testing.T) {
	cb := defaultCfg(testKey(t, hostid.ECDSAP256, 1))
	cb.PuzzleDifficulty, cb.LoadThreshold = 2, 40
	b := newHost(t, "b", cb)
	ca := defaultCfg(testKey(t, hostid.ECDSAP256, 0))
	ca.DHGroups = []uint8{wire.DHGroupMODP1536}
	a := newHost(t, "a", ca)
	flood(t, a, b, i2Of(t, a, b), 8, 250*time.Millisecond) // 4/s for 2 s
	if b.e.Stats().DifficultyChanges == 0 || b.e.PuzzleDifficulty() <= 2 {
		t.Fatalf("#K %d after a MODP flood at a tenth of the threshold", b.e.PuzzleDifficulty())
	}
}
