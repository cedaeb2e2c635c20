package streams

import (
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"hipnet.dev/internal/deadline"
	"hipnet.dev/overlay"
)

// backlog is how many accepted streams a listener holds for Accept. A
// stream that finds the backlog full is refused, as a full accept queue
// refuses connections.
const backlog = 256

// listener is the net.Listener of one port.
type listener struct {
	m     *Manager
	addr  *overlay.Addr
	queue chan *conn        // capacity backlog
	done  chan struct{}     // closed by close
	dl    deadline.Deadline // Accept's (SetDeadline)

	mu       sync.Mutex
	reserved int // slots of queue promised to streams being answered
	closed   bool
}

var _ net.Listener = (*listener)(nil)

// Listen accepts the streams peers open to port. Port 0 picks a free
// ephemeral port (see Addr). A port that is taken gives an error wrapping
// overlay.ErrPortInUse.
func (m *Manager) Listen(port int) (net.Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: "hip", Addr: &overlay.Addr{HIT: m.local, Port: port}, Err: err}
	}
	if port < 0 || port > 0xFFFF {
		return nil, opErr(fmt.Errorf("streams: bad port %d", port))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, opErr(errClosed)
	}
	if port == 0 {
		for range ephemeralHigh - ephemeralLow + 1 {
			if p := m.nextEphemeralLocked(); m.listeners[p] == nil {
				port = p
				break
			}
		}
		if port == 0 {
			return nil, opErr(overlay.ErrPortInUse)
		}
	} else if m.listeners[port] != nil {
		return nil, opErr(overlay.ErrPortInUse)
	}
	l := &listener{
		m:     m,
		addr:  &overlay.Addr{HIT: m.local, Port: port},
		queue: make(chan *conn, backlog),
		done:  make(chan struct{}),
		dl:    deadline.New(),
	}
	m.listeners[port] = l
	return l, nil
}

// reserve returns the listener of port with a slot of its queue held for
// a stream, or nil if there is no listener or its queue is full.
func (m *Manager) reserve(port int) *listener {
	m.mu.Lock()
	l := m.listeners[port]
	m.mu.Unlock()
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.queue)+l.reserved >= cap(l.queue) {
		return nil
	}
	l.reserved++
	return l
}

func (l *listener) unreserve() {
	l.mu.Lock()
	l.reserved--
	l.mu.Unlock()
}

// deliver queues c, for which a slot was reserved.
func (l *listener) deliver(c *conn) {
	l.mu.Lock()
	l.reserved--
	if l.closed {
		l.mu.Unlock()
		c.abort(streamCodeRefused)
		return
	}
	l.queue <- c // never blocks: the slot was reserved
	l.mu.Unlock()
}

// Accept waits for the next stream to the listener's port. After Close it
// returns an error wrapping net.ErrClosed and overlay.ErrClosed; once the
// deadline (SetDeadline) passes, one wrapping os.ErrDeadlineExceeded.
func (l *listener) Accept() (net.Conn, error) {
	for {
		if deadline.Closed(l.done) {
			return nil, l.opErr(errClosed)
		}
		if l.dl.Passed() {
			return nil, l.opErr(os.ErrDeadlineExceeded)
		}
		select {
		case <-l.done:
		case c := <-l.queue:
			return c, nil
		case <-l.dl.Wait(): // passed, or moved: looked at again
		}
	}
}

// SetDeadline sets the deadline of Accept, as *net.TCPListener's; the
// zero time means none.
func (l *listener) SetDeadline(t time.Time) error {
	if deadline.Closed(l.done) {
		return l.opErr(errClosed)
	}
	l.dl.Set(t)
	return nil
}

func (l *listener) opErr(err error) error {
	return &net.OpError{Op: "accept", Net: "hip", Addr: l.addr, Err: err}
}

// Close stops listening: blocked Accepts return, and the streams queued
// but not accepted are reset.
func (l *listener) Close() error {
	if !l.close() {
		return &net.OpError{Op: "close", Net: "hip", Addr: l.addr, Err: errClosed}
	}
	return nil
}

func (l *listener) close() bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return false
	}
	l.closed = true
	close(l.done)
	l.dl.Stop()
	l.mu.Unlock()

	l.m.mu.Lock()
	if l.m.listeners[l.addr.Port] == l {
		delete(l.m.listeners, l.addr.Port)
	}
	l.m.mu.Unlock()

	for {
		select {
		case c := <-l.queue:
			c.abort(streamCodeRefused)
		default:
			return true
		}
	}
}

// Addr returns the local HIT and the listening port, an *overlay.Addr.
func (l *listener) Addr() net.Addr { return l.addr }
