package netstack

import (
	"sync"
	"time"
)

// deadline is one direction's deadline of a conn: a channel that is
// closed when the deadline passes. A blocked Read or Write selects on
// it; moving the deadline before it passes keeps the channel (a waiter
// keeps waiting, now for the new time), and moving it after it passed
// makes a new one. This is how package net behaves: a deadline applies
// to operations already blocked as well as to later ones.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{}
}

func newDeadline() deadline { return deadline{cancel: make(chan struct{})} }

// set moves the deadline to t; the zero t means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer has fired; wait until it closed cancel
	}
	d.timer = nil
	passed := isClosed(d.cancel)
	if t.IsZero() {
		if passed {
			d.cancel = make(chan struct{})
		}
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		if !passed {
			close(d.cancel)
		}
		return
	}
	if passed {
		d.cancel = make(chan struct{})
	}
	cancel := d.cancel
	d.timer = time.AfterFunc(wait, func() { close(cancel) })
}

// wait returns the channel that is closed when the deadline passes.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// stop releases the timer.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
