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
// stack closes or when p's association no longer waits for this puzzle
// (it restarted, closed or failed, its lifetime ended: the association's
// deadline in the timer heap); while all solvers are busy it waits for
// one, under the same conditions. The control goroutine tells it so by
// closing its cancel channel (dropPuzzle): no clock of its own.
func (c *control) solve(p *peer, pz *handshake.Puzzle) {
	s := c.s
	c.dropPuzzle(p)
	cancel := make(chan struct{})
	p.puzzle.Store(pz)
	p.mut().solveCancel = cancel
	stale := func() bool {
		select {
		case <-cancel:
			return true
		case <-s.closing:
			return true
		default:
			return false
		}
	}
	s.solving.Add(1)
	go func() {
		defer s.solving.Done()
		r := puzzleResult{p: p, pz: pz}
		if acquireSolver(s, cancel) {
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

// dropPuzzle stops the search for p's puzzle, if one runs.
func (c *control) dropPuzzle(p *peer) {
	p.puzzle.Store(nil)
	if p.x.solveCancel != nil {
		close(p.x.solveCancel)
		p.x.solveCancel = nil // p.x is p's own: it held the channel
	}
}

// errSolverGaveUp: the puzzle went stale while waiting for a free solver.
var errSolverGaveUp = errors.New("hip: puzzle no longer wanted, or its lifetime ended, before a solver was free")

// acquireSolver takes one of the solver slots, or reports false once the
// puzzle is no longer wanted (cancel) or the stack closes.
func acquireSolver(s *Stack, cancel <-chan struct{}) bool {
	select {
	case s.solvers <- struct{}{}:
		return true
	case <-s.closing:
		return false
	case <-cancel:
		return false
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
