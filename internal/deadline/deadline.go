package deadline

import (
	"sync"
	"sync/atomic"
	"time"
)

// Deadline is one direction's deadline. Its zero value must be
// initialised with Init (or made by New) before use; it must not be copied
// after first use.
type Deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes
	// armed is whether a deadline is set, passed or not. Passed reads it
	// without the lock, so that a conn with no deadline, the common case
	// on a data path, checks for one at the cost of an atomic load.
	armed atomic.Bool
}

// New returns a Deadline with none set.
func New() Deadline { return Deadline{cancel: make(chan struct{})} }

// Init prepares a zero Deadline: none set.
func (d *Deadline) Init() { d.cancel = make(chan struct{}) }

// Set moves the deadline to t; the zero time means none. A deadline in the
// past wakes the waiters now.
func (d *Deadline) Set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.armed.Store(!t.IsZero()) // after the channel is made or closed
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait until its function closed cancel
	}
	d.timer = nil
	closed := Closed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// Stop releases the timer of a pending deadline without waking anyone:
// for a conn that is closed, whose waiters end by other means.
func (d *Deadline) Stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}

// Wait returns a channel closed when the deadline has passed.
func (d *Deadline) Wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// Passed reports whether the deadline has passed. With none set it takes
// no lock.
func (d *Deadline) Passed() bool {
	return d.armed.Load() && Closed(d.Wait())
}

// Closed reports whether c is closed, without blocking. For an open,
// empty channel it takes no lock (a select with a default over several
// channels locks them all).
func Closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
