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
