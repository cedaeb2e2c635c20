package handshake

import (
	"time"

	"hipnet.dev/handshake/wire"
)

// Puzzle difficulty that follows the load, in the manner of WireGuard's
// cookies under load: RFC 7401 §4.1.1 lets the Responder raise #K when it
// is attacked, and §6.7.1 has it announced in fresh R1s.
//
// The load is the rate of I2s that reached Diffie-Hellman work, i.e. that
// carried a correct puzzle solution (i2Keys). It is measured in windows of
// loadWindow. A window above Config.LoadThreshold raises #K by loadStep, up
// to Config.MaxLoadDifficulty; once the rate has stayed under a quarter of
// the threshold for loadCalm, #K steps back down by one per window until it
// is its base again: Config.PuzzleDifficulty, or what the caller last set
// with SetPuzzleDifficulty. Raising #K re-signs the current R1 generation;
// the earlier generations keep
// their #K and stay acceptable (up to maxPrevGens of them, for one
// R1Lifetime after they expire), so exchanges in flight are not lost while
// #K ramps, unless their R1 is older than two load windows.

const (
	loadWindow = 250 * time.Millisecond
	loadStep   = 2
	loadCalm   = 2 * time.Second
)

type loadMeter struct {
	start     time.Time // of the current window
	next      time.Time // its end; zero while idle at the base #K
	count     int       // I2s with a correct solution in it
	calmSince time.Time // since when every window was under threshold/4
}

// note counts an I2 whose Diffie-Hellman in group gid is about to be
// computed, as dhCost P-256 ones.
func (m *loadMeter) note(now time.Time, gid uint8) {
	if m.next.IsZero() {
		m.start, m.next = now, now.Add(loadWindow)
	}
	m.count += dhCost(gid)
}

// dhCost is what the Responder's Diffie-Hellman computation for an I2
// costs in group gid, in P-256 computations (BenchmarkShared, amd64:
// P-256 69 µs, P-384 538 µs, MODP-1536 777 µs, MODP-3072 2.8 ms). The
// Initiator chooses the group among ours by its I1 (§6.7 step 4), so
// without it an attacker would buy eleven to forty times the work with
// one solved puzzle.
func dhCost(gid uint8) int {
	switch gid {
	case wire.DHGroupP384:
		return 8
	case wire.DHGroupMODP1536:
		return 11
	case wire.DHGroupMODP3072:
		return 40
	}
	return 1
}

// LoadDeadline is when HandleLoad must next be called: the end of the
// current load window, or zero while nothing is measured and #K is at its
// base.
func (e *Endpoint) LoadDeadline() time.Time { return e.load.next }

// HandleLoad closes the load window due at now and adapts #K. It returns
// whether #K changed; a change re-signs an R1 (one signature).
func (e *Endpoint) HandleLoad(now time.Time) (bool, error) {
	m := &e.load
	if m.next.IsZero() || now.Before(m.next) {
		return false, nil
	}
	rate := float64(m.count) / max(now.Sub(m.start), loadWindow).Seconds()
	busy := m.count > 0
	m.start, m.count = now, 0
	thr := float64(e.cfg.LoadThreshold)
	k := e.k
	switch {
	case rate > thr:
		k = min(e.k+loadStep, max(e.cfg.MaxLoadDifficulty, e.k))
		m.calmSince = time.Time{}
	case rate > thr/4:
		m.calmSince = time.Time{}
	case m.calmSince.IsZero():
		m.calmSince = now
	case now.Sub(m.calmSince) >= loadCalm && e.k > e.baseK:
		k = e.k - 1 // one step a window, once calm
	}
	if busy || k > e.baseK {
		m.next = now.Add(loadWindow)
	} else {
		m.next, m.calmSince = time.Time{}, time.Time{}
	}
	if k == e.k {
		return false, nil
	}
	e.stats.DifficultyChanges++
	return true, e.setPuzzleDifficulty(now, k)
}
