package overlay

import (
	"testing"
	"time"
)

// TestAfter: a wake-up from the timer heap comes no sooner than asked and
// in order with the others, and a closing stack releases every waiter.
func TestAfter(t *testing.T) {
	s := newTestStack(t, 0, nil)
	start := time.Now()
	late, early := s.after(120*time.Millisecond), s.after(40*time.Millisecond)
	<-early
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("40 ms wake-up after %v", d)
	}
	select {
	case <-late:
		t.Fatal("120 ms wake-up came with the 40 ms one")
	default:
	}
	<-late
	if d := time.Since(start); d < 120*time.Millisecond {
		t.Fatalf("120 ms wake-up after %v", d)
	}
	long := s.after(time.Hour)
	s.Close()
	select {
	case <-long:
	case <-time.After(5 * time.Second):
		t.Fatal("a waiter stayed blocked after Close")
	}
	select {
	case <-s.after(time.Hour):
	case <-time.After(time.Second):
		t.Fatal("after on a closed stack blocks")
	}
}

// funcCmd runs a function on the control goroutine (tests only).
type funcCmd func(c *control, now time.Time)

func (f funcCmd) run(c *control, now time.Time) { f(c, now) }

// TestAfterWhileControlWaits: the control goroutine may wait for a
// goroutine that is asking for a wake-up (an ICE session's Close waits for
// its pacer, which calls after): the request must not wait for the control
// goroutine. A blocking hand-off here once stalled a node's control
// goroutine until Close (hip ping through a relay, after ICE).
func TestAfterWhileControlWaits(t *testing.T) {
	s := newTestStack(t, 0, nil)
	res := make(chan bool, 1)
	s.cmds <- funcCmd(func(c *control, _ time.Time) {
		asked := make(chan (<-chan struct{}))
		go func() { asked <- s.after(10 * time.Millisecond) }()
		select {
		case w := <-asked:
			res <- w != nil
		case <-time.After(5 * time.Second):
			res <- false
		}
	})
	if !<-res {
		t.Fatal("after blocked while the control goroutine waited for its caller")
	}
	select {
	case <-s.after(10 * time.Millisecond):
	case <-time.After(5 * time.Second):
		t.Fatal("a wake-up asked for while the control goroutine was busy never came")
	}
}
