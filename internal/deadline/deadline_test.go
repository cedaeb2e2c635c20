package deadline

import (
	"testing"
	"time"
)

// TestDeadline: a deadline passes at its time, wakes a waiter that waits
// already, can be moved before it passes and cleared after, and one in the
// past wakes at once.
func TestDeadline(t *testing.T) {
	d := New()
	if d.Passed() {
		t.Fatal("a new deadline has passed")
	}
	w := d.Wait()
	d.Set(time.Now().Add(20 * time.Millisecond))
	select {
	case <-w:
	case <-time.After(2 * time.Second):
		t.Fatal("the deadline did not wake a waiter that was already waiting")
	}
	if !d.Passed() {
		t.Fatal("a deadline that passed by its timer has not passed")
	}
	d.Set(time.Time{})
	if d.Passed() {
		t.Fatal("a cleared deadline has passed")
	}
	d.Set(time.Now().Add(time.Hour))
	d.Set(time.Now().Add(-time.Second))
	if !d.Passed() {
		t.Fatal("a deadline in the past has not passed")
	}
	var z Deadline
	z.Init()
	z.Set(time.Now().Add(time.Hour))
	if z.Passed() {
		t.Fatal("a deadline an hour away has passed")
	}
	z.Set(time.Time{})
}

// TestDeadlinePassedConcurrent: Passed, which reads without the lock when
// no deadline is set, against Set from another goroutine (run with -race).
// Once Set has returned, Passed agrees with it.
func TestDeadlinePassedConcurrent(t *testing.T) {
	d := New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			d.Passed()
		}
	}()
	for i := range 1000 {
		if i%2 == 0 {
			d.Set(time.Now().Add(-time.Second))
			if !d.Passed() {
				t.Fatal("a deadline in the past has not passed")
			}
		} else {
			d.Set(time.Time{})
			if d.Passed() {
				t.Fatal("a cleared deadline has passed")
			}
		}
	}
	<-done
}
