package streams

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/quic-go/quic-go"
)

// What a closed stream owes its peer. A QUIC CONNECTION_CLOSE, sent or
// received, ends every stream of the connection at once, and quic-go's
// Read then gives the close error before any data still buffered: what
// the peer's QUIC acknowledged but its application had not read yet is
// lost. A kernel's TCP keeps a closed socket (FIN-WAIT) until the peer
// closes too, and so delivers all of it. So a stream the application
// closed (conn.Close) keeps its hold on the connection until the peer has
// finished with it, its FIN or reset: the connection is then neither
// closed as idle (armIdle), nor as a retired duplicate (closeRetired),
// and Manager.Close waits for it (linger, at most closeLinger), as the
// netstack transport lets closed connections deliver.
//
// The wait is bounded: by drainLimit; by the connection's own end; and by
// the peer's data. A peer that still writes to the closed stream gets
// STOP_SENDING at its first octet, and its writes fail, as TCP answers
// data for a closed socket with RST (RFC 9293 §3.10.7.1; a write after
// the peer's close fails with EPIPE in package net); its answer (a
// RESET_STREAM) ends the wait. One goroutine per closed stream, for that
// time: in a request and answer the peer's FIN is there already or on
// its way, and it returns at once.

// drainLimit bounds how long a closed stream waits for its peer.
const drainLimit = 10 * time.Second

// drain waits in the background for the peer to finish with st, c's
// stream, which c just closed, and then lets go of qc (release).
func (m *Manager) drain(c *conn, st *quic.Stream, qc *qconn) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		st.CancelRead(streamCodeClosed)
		m.release(qc)
		return
	}
	m.wg.Add(1)
	m.draining++
	m.mu.Unlock()
	// A Read in progress returns now (net.ErrClosed: c is closed); the
	// drain reads once it has: it takes c.readMu once, after which every
	// Read sees c closed under that lock and leaves the stream alone. It
	// does not hold the lock while it waits, or a Read that came just
	// after Close would wait with it.
	st.SetReadDeadline(time.Unix(1, 0))
	go func() {
		defer m.wg.Done()
		c.readMu.Lock() // the Read in progress has returned
		st.SetReadDeadline(time.Time{})
		c.readMu.Unlock()
		stop := time.AfterFunc(drainLimit, func() { st.CancelRead(streamCodeClosed) })
		finished := drainStream(st)
		stop.Stop()
		if !finished {
			st.CancelRead(streamCodeClosed)
		}
		m.mu.Lock()
		m.draining--
		m.mu.Unlock()
		m.release(qc)
	}()
}

// drainStream waits for the peer's FIN or reset on st, and reports
// whether it came before any data (or a local end: drainLimit, the
// connection's close).
func drainStream(st *quic.Stream) bool {
	var b [1]byte
	for {
		n, err := st.Read(b[:])
		if n > 0 {
			return false
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// An application's deadline, set as Close ran (SetReadDeadline
			// checks closed without readMu): the drain has its own bound.
			st.SetReadDeadline(time.Time{})
			continue
		}
		if err == io.EOF {
			return true
		}
		var se *quic.StreamError
		return errors.As(err, &se) && se.Remote
	}
}

// busyDraining reports whether a closed stream still waits for its peer.
func (m *Manager) busyDraining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.draining > 0
}
