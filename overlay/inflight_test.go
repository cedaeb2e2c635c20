package overlay

import (
	"testing"
	"time"
)

// flipSuspect is a command the control goroutine runs: n times, start a
// check of p's path (copies kept) and end p's association's path state
// (resetPath: the association closed, failed, or was replaced).
type flipSuspect struct {
	p    *peer
	n    int
	done chan struct{}
}

func (m flipSuspect) run(c *control, _ time.Time) {
	for range m.n {
		c.suspect(m.p)
		c.resetPath(m.p)
	}
	close(m.done)
}

// TestHeldWhileReset: the data path keeps copies of what it sends while
// the path is suspect, and the control goroutine drops the ring when the
// association's path state is reset; a writer between the two must
// neither race (go test -race) nor find the ring gone after it saw the
// path suspect (a nil dereference in the application's goroutine).
func TestHeldWhileReset(t *testing.T) {
	a, b := connected(t, nil, nil)
	c := listen(t, a, 9)
	p := a.lookupPeer(b.HIT())
	stop, wrote := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(wrote)
		buf := make([]byte, 100)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.WriteToAddr(buf, Addr{HIT: b.HIT(), Port: 9})
		}
	}()
	done := make(chan struct{})
	a.cmds <- flipSuspect{p: p, n: 20000, done: done}
	<-done
	close(stop)
	<-wrote
}
