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

var errSolverClosed = errors.New("hip: stack closed while solving a puzzle")

// maxSolvers is one search per core: enough for every dial a node makes,
// and never more CPU than the machine has.
func maxSolvers() int { return max(1, runtime.GOMAXPROCS(0)) }

// solve starts the search for p's puzzle.
func (c *control) solve(p *peer, pz *handshake.Puzzle) {
	s := c.s
	s.solving.Add(1)
	go func() {
		defer s.solving.Done()
		r := puzzleResult{p: p, pz: pz}
		wait := time.NewTimer(time.Until(pz.Deadline))
		select {
		case s.solvers <- struct{}{}:
			wait.Stop()
			r.j, r.err = pz.Solve(func() bool { return s.closed.Load() || time.Now().After(pz.Deadline) })
			<-s.solvers
		case <-wait.C:
			r.err = errors.New("hip: no solver free within the puzzle's lifetime")
		case <-s.closing:
			wait.Stop()
			r.err = errSolverClosed
		}
		select {
		case s.solved <- r:
		case <-s.ctrlDone:
		}
	}()
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
