package overlay

import (
	"errors"
	"runtime"
	"time"

	"hipnet.dev/handshake"
)

// Puzzles too hard to solve inside the state machine (handshake
// EventPuzzle, #K above handshake Config.InlinePuzzle) are solved here, on
// solver goroutines, so that a Responder raising #K under load never holds
// up the control goroutine: other associations' packets and timers go on
// while the search runs. At most maxSolvers searches run at once; each
// stops at the puzzle's lifetime (RFC 7401 §6.8 step 12) or when the stack
// closes, and its outcome returns to the control goroutine on s.solved,
// which hands it to Association.PuzzleSolved.

type puzzleResult struct {
	p   *peer
	pz  *handshake.Puzzle
	j   []byte
	err error
}

// maxSolvers is one search per core: enough for every dial a node makes,
// and never more CPU than the machine has.
func maxSolvers() int { return max(1, runtime.GOMAXPROCS(0)) }

// solve starts the search for p's puzzle. The solver stops when the
// puzzle's lifetime ends, when the stack closes, or when p's association
// no longer waits for this puzzle (it restarted, closed or failed); while
// all solvers are busy it waits for one, under the same conditions.
func (c *control) solve(p *peer, pz *handshake.Puzzle) {
	s := c.s
	p.puzzle.Store(pz)
	stale := func() bool {
		return s.closed.Load() || p.puzzle.Load() != pz || !time.Now().Before(pz.Deadline)
	}
	s.solving.Add(1)
	go func() {
		defer s.solving.Done()
		r := puzzleResult{p: p, pz: pz}
		if acquireSolver(s, stale) {
			r.j, r.err = pz.Solve(stale)
			<-s.solvers
		} else {
			r.err = errSolverGaveUp
		}
		select {
		case s.solved <- r:
		case <-s.ctrlDone:
		}
	}()
}

// errSolverGaveUp: the puzzle went stale while waiting for a free solver.
var errSolverGaveUp = errors.New("hip: puzzle no longer wanted, or its lifetime ended, before a solver was free")

// solverPoll is how often a solver waiting for a core looks whether its
// puzzle is still wanted.
const solverPoll = 50 * time.Millisecond

// acquireSolver takes one of the solver slots, or reports false once stale
// does (or the stack closes) first.
func acquireSolver(s *Stack, stale func() bool) bool {
	t := time.NewTicker(solverPoll)
	defer t.Stop()
	for {
		select {
		case s.solvers <- struct{}{}:
			return true
		case <-s.closing:
			return false
		case <-t.C:
			if stale() {
				return false
			}
		}
	}
}

// puzzleSolved gives a solver's outcome to its association: the I2 goes
// out, or the exchange fails.
func (c *control) puzzleSolved(now time.Time, r puzzleResult) {
	a := r.p.assoc
	if a == nil || c.s.lookupPeer(r.p.hit) != r.p && !r.p.hit.IsZero() {
		return // the association went meanwhile
	}
	if err := a.PuzzleSolved(now, r.pz, r.j, r.err); err != nil {
		c.s.log.Debug("puzzle", "peer", r.p.hit.String(), "err", err)
	}
	c.process(r.p, now)
}
