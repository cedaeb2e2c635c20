package streamcheck

import "time"

// deadliner is what Stop needs of a net.Conn or a net.PacketConn to
// unblock the goroutines reading and writing it.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	Close() error
}

// runner is the two goroutines of a Checker or a PacketProbe.
type runner struct {
	stop         chan struct{} // closed by halt: the writer ends
	wdone, rdone chan struct{} // closed by the writer and the reader as they end
}

func newRunner() runner {
	return runner{stop: make(chan struct{}), wdone: make(chan struct{}), rdone: make(chan struct{})}
}

// halt stops the writer, waits until linger has passed since the call for
// the reader to end by itself, then unblocks whichever is still blocked by
// setting c's deadline to the past (closing c if that fails), and waits
// for both. finish tells the reader that the writer is done and reports
// whether it has everything already (it is blocked, then, with nothing to
// come); forced is called before halt unblocks anything, so that the
// errors that follow are not taken for the connection's. It clears the
// deadlines it set.
func (r runner) halt(c deadliner, linger time.Duration, finish func() bool, forced func()) {
	deadline := time.NewTimer(linger)
	defer deadline.Stop()
	var setR, setW, expired bool
	close(r.stop)
	select {
	case <-r.wdone:
	case <-deadline.C:
		expired = true
		forced()
		setW = unblock(c.SetWriteDeadline, c)
		<-r.wdone
	}
	if finish() || expired {
		forced()
		setR = unblock(c.SetReadDeadline, c)
	} else {
		select {
		case <-r.rdone:
		case <-deadline.C:
			forced()
			setR = unblock(c.SetReadDeadline, c)
		}
	}
	<-r.rdone
	if setW {
		c.SetWriteDeadline(time.Time{})
	}
	if setR {
		c.SetReadDeadline(time.Time{})
	}
}

// unblock sets a deadline in the past, or closes c if it cannot; it
// reports whether it set the deadline.
func unblock(set func(time.Time) error, c deadliner) bool {
	if set(time.Unix(1, 0)) != nil {
		c.Close()
		return false
	}
	return true
}
