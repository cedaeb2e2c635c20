package overlay

import (
	"context"
	"testing"
	"time"
)

// TestHardPuzzleDoesNotStall: a Responder asking a puzzle far above the
// inline limit makes the Initiator solve it on a solver goroutine; its
// control goroutine meanwhile completes a base exchange with another,
// easy Responder (issue 9 finding 6: the search used to run inline and
// block every other association's packets and timers). The hard exchange
// then completes too.
func TestHardPuzzleDoesNotStall(t *testing.T) {
	a := newTestStack(t, 0, func(c *Config) { c.Handshake.RetransmitTimeout = time.Second })
	hard := newTestStack(t, 1, func(c *Config) {
		c.Handshake.PuzzleDifficulty = 20 // about a million hashes: a second or more
		c.Handshake.RetransmitTimeout = time.Second
	})
	easy := newTestStack(t, 2, nil)
	introduce(a, hard)
	introduce(a, easy)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	hardDone := make(chan error, 1)
	start := time.Now()
	go func() { hardDone <- a.Connect(ctx, hard.HIT()) }()
	// Wait until the hard R1 has arrived and its search is under way.
	for len(a.solvers) == 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatal("no solver started for the hard puzzle")
		}
		time.Sleep(time.Millisecond)
	}
	if err := a.Connect(ctx, easy.HIT()); err != nil {
		t.Fatalf("easy exchange while solving: %v", err)
	}
	easyAt := time.Since(start)
	select {
	case err := <-hardDone:
		t.Fatalf("the hard exchange ended (%v) before the easy one was checked; raise its #K", err)
	default:
	}
	if err := <-hardDone; err != nil {
		t.Fatalf("hard exchange: %v", err)
	}
	t.Logf("easy exchange done after %v, hard one (K=20) after %v", easyAt, time.Since(start))
	if st := a.Stats(); st.BEX.Completed < 2 {
		t.Fatalf("completed %d exchanges", st.BEX.Completed)
	}
}

// TestStalePuzzleSolverStops: when the association that waits for a hard
// puzzle goes (here dropped; likewise closed, restarted or failed), its
// solver stops at once instead of keeping a core busy until the puzzle's
// lifetime ends.
func TestStalePuzzleSolverStops(t *testing.T) {
	a := newTestStack(t, 0, func(c *Config) { c.Handshake.RetransmitTimeout = time.Second })
	hard := newTestStack(t, 1, func(c *Config) {
		c.Handshake.PuzzleDifficulty = 24 // seconds of search: the most an Initiator accepts
		c.Handshake.RetransmitTimeout = time.Second
	})
	introduce(a, hard)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Connect(ctx, hard.HIT()) }()
	waitFor(t, 10*time.Second, "a solver searching", func() bool { return len(a.solvers) == 1 })
	a.dropAssociation(hard.HIT())
	if err := <-done; err == nil {
		t.Fatal("Connect succeeded")
	}
	waitFor(t, time.Second, "the solver to stop", func() bool { return len(a.solvers) == 0 })
}
