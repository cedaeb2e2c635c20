package streams

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/overlay"
)

// conn is a stream as a net.Conn.
type conn struct {
	m             *Manager
	local, remote *overlay.Addr

	// st is the stream and qc the connection it is on, whose hold the
	// conn has (nil once let go). A dialed stream may move to another
	// connection while its answer is pending (answer.go); they change
	// only then, under mu, and are fixed once ans is settled, when they
	// are read without mu.
	mu sync.Mutex
	st *quic.Stream
	qc *qconn

	ans *answer // dialed streams; nil for accepted ones

	closed    atomic.Bool
	closeOnce sync.Once
	writeMu   sync.Mutex  // serialises Write, CloseWrite and the FIN of Close
	shutWrite atomic.Bool // CloseWrite was called
	woke      atomic.Bool // CloseWrite ended a Write blocked on the stream (wakeWriter)
	finSent   atomic.Bool // CloseWrite sent the FIN
	readMu    sync.Mutex  // serialises Read and the drain after Close (drain.go)
}

var _ net.Conn = (*conn)(nil)

func (m *Manager) newConn(qc *qconn, st *quic.Stream, local, remote *overlay.Addr) *conn {
	return &conn{m: m, st: st, qc: qc, local: local, remote: remote}
}

// opErr wraps err, the error of op on the stream, as package net does;
// quic-go's errors become the errno a TCP socket gives for the same event
// (streamError).
func (c *conn) opErr(op string, err error) error {
	if c.closed.Load() {
		err = errClosed
	} else {
		err = streamError(err, op == "read")
	}
	return &net.OpError{Op: op, Net: "hip", Source: c.local, Addr: c.remote, Err: err}
}

// Read reads from the stream; io.EOF after the peer's CloseWrite. On a
// dialed stream the first Read waits for the server's answer; a refusal
// is an error wrapping overlay.ErrRefused. Errors other than io.EOF are
// *net.OpError; a deadline's is a net.Error whose Timeout is true and
// which wraps os.ErrDeadlineExceeded. A stream that ended abruptly fails
// as a TCP socket does (streamError): with syscall.ECONNRESET when the
// peer reset it or left, ECONNABORTED when the association was lost,
// ETIMEDOUT when the peer stopped answering; Write says EPIPE where Read
// says ECONNRESET.
func (c *conn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		// As package net: not io.EOF, even after the peer's FIN was read.
		return 0, c.opErr("read", errClosed)
	}
	if a := c.ans; a != nil {
		if err := a.wait(&a.rd); err != nil {
			return 0, c.opErr("read", err)
		}
	}
	c.readMu.Lock()
	if c.closed.Load() {
		// Closed since the check above: the drain owns the stream now
		// (drain.go). Checked under readMu, which the drain takes once
		// after Close, so no Read reaches the stream after that.
		c.readMu.Unlock()
		return 0, c.opErr("read", errClosed)
	}
	n, err := c.st.Read(b)
	c.readMu.Unlock()
	if err != nil && (err != io.EOF || c.closed.Load()) {
		err = c.opErr("read", err)
	}
	return n, err
}

// Write writes to the stream. It returns when the data is queued; a
// deadline error may come with n > 0. On a dialed stream whose answer is
// still pending, the data leaves at once and Write then waits for the
// answer (writePending): a refusal is an error wrapping
// overlay.ErrRefused, with n = 0, for no listener got the data.
func (c *conn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed.Load() {
		return 0, c.opErr("write", errClosed)
	}
	var n int
	var err error
	if a := c.ans; a != nil && !a.settled.Load() {
		n, err = c.writePending(b)
	} else if a != nil && a.err != nil {
		return 0, c.opErr("write", a.err)
	} else {
		n, err = c.write(b)
	}
	if err != nil && !c.closed.Load() && (c.finSent.Load() || c.woke.Load() && errors.Is(err, os.ErrDeadlineExceeded)) {
		// CloseWrite ended it (wakeWriter), or came before it: as on a
		// TCP socket, what was queued goes before the FIN, and the rest
		// is refused. Other errors (a refusal, a reset) stay as they are.
		err = &net.OpError{Op: "write", Net: "hip", Source: c.local, Addr: c.remote, Err: syscall.EPIPE}
	}
	return n, err
}

func (c *conn) write(b []byte) (int, error) {
	n, err := c.st.Write(b)
	if err != nil {
		err = c.opErr("write", err)
	}
	return n, err
}

// Close closes both directions. Data already written is still delivered
// (Close sends FIN after it) unless a Write is blocked at the time, in
// which case the send side is reset and the Write returns an error. A
// Read or Write in progress, or waiting for the answer, returns
// net.ErrClosed. The stream then waits, in the background and for a
// bounded time, for the peer to finish with it, so that what it was sent
// is not lost with the connection (drain.go). The receive side is
// cancelled (STOP_SENDING) if the peer sends more: its further writes
// fail, as they would on a TCP connection answered with RST.
func (c *conn) Close() error {
	err := errClosed
	c.closeOnce.Do(func() {
		err = nil
		c.closed.Store(true)
		answered := c.ans == nil || c.ans.settled.Load()
		st, qc := c.detach()
		if c.writeMu.TryLock() {
			st.Close()
			c.writeMu.Unlock()
		} else {
			st.CancelWrite(streamCodeClosed)
		}
		if qc == nil || !answered {
			// No answer yet: the peer has not taken the stream, and the
			// answer's reader still reads it; nothing to wait for.
			st.CancelRead(streamCodeClosed)
			if qc != nil {
				c.m.release(qc)
			}
			return
		}
		c.m.drain(c, st, qc)
	})
	if err != nil {
		return c.opErr("close", err)
	}
	return nil
}

// abort resets both directions with code and lets go of the connection.
func (c *conn) abort(code quic.StreamErrorCode) {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		st, qc := c.detach()
		st.CancelRead(code)
		st.CancelWrite(code)
		if qc != nil {
			c.m.release(qc)
		}
	})
}

// detach ends a pending answer with errClosed and takes the stream and
// the hold on its connection from the conn, for Close and abort.
func (c *conn) detach() (*quic.Stream, *qconn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.ans; a != nil && !a.settled.Load() {
		a.settleLocked(errClosed)
	}
	st, qc := c.st, c.qc
	c.qc = nil
	return st, qc
}

// CloseWrite shuts down the sending side (FIN), as (*net.TCPConn).CloseWrite:
// the peer reads io.EOF after the data, and can still write back. A Write
// blocked meanwhile on flow control returns at once with what it queued
// and EPIPE, as on a TCP socket, and the FIN follows that data. quic-go
// forbids closing a stream during a Write, so the Write is woken (its
// deadline passes) and the FIN waits for it. A Write still waiting for
// the answer of a dialed stream is not woken: the stream it writes to may
// yet be replaced by a retry (answer.go), and CloseWrite waits for it (a
// round trip, or its own deadline), as before.
func (c *conn) CloseWrite() error {
	if c.closed.Load() {
		return c.opErr("close", errClosed)
	}
	c.shutWrite.Store(true)
	if !c.writeMu.TryLock() {
		c.wakeWriter()
		c.writeMu.Lock()
	}
	defer c.writeMu.Unlock()
	if c.closed.Load() {
		return c.opErr("close", errClosed)
	}
	var st *quic.Stream
	if c.ans == nil {
		st = c.st // an accepted stream's never changes
	} else {
		// A dialed stream's may, while a retry moves it (answer.go):
		// sendStream reads it under c.mu.
		var err error
		if st, _, _, err = c.sendStream(false); err != nil {
			return c.opErr("close", err)
		}
	}
	if err := st.Close(); err != nil {
		return c.opErr("close", err)
	}
	c.finSent.Store(true)
	return nil
}

// wakeWriter ends a Write blocked on the flow control of a stream whose
// answer is in: its write deadline passes now. Nothing is written after
// the FIN that follows, so the deadline is not restored.
func (c *conn) wakeWriter() {
	if a := c.ans; a != nil && !a.settled.Load() {
		return // see CloseWrite
	}
	c.woke.Store(true)
	c.st.SetWriteDeadline(time.Unix(1, 0)) // fixed once the answer is in
}

// CloseRead shuts down the receiving side (STOP_SENDING), as
// (*net.TCPConn).CloseRead. Before the answer of a dialed stream is in,
// it takes effect once the answer is read.
func (c *conn) CloseRead() error {
	if c.closed.Load() {
		return c.opErr("close", errClosed)
	}
	if a := c.ans; a != nil && !a.settled.Load() {
		c.mu.Lock()
		pending := !a.settled.Load()
		if pending {
			a.readClosed = true
		}
		c.mu.Unlock()
		if pending {
			return nil
		}
	}
	c.st.CancelRead(streamCodeClosed)
	return nil
}

// LocalAddr returns this host's HIT and the stream's local port: the
// listening port for accepted streams, the ephemeral source port for
// dialed ones.
func (c *conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's HIT, authenticated by HIP and by the QUIC
// handshake, and its port: the dialed port for dialed streams, the peer's
// ephemeral source port for accepted ones.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

func (c *conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets the stream's read deadline, or, while the answer of
// a dialed stream is pending, the deadline of waiting for it, which the
// stream gets once the answer is in (the answer is read with none).
func (c *conn) SetReadDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set", errClosed) // the drain's stream now
	}
	if a := c.ans; a != nil && !a.settled.Load() {
		c.mu.Lock()
		pending := !a.settled.Load()
		if pending {
			a.rdl = t
			a.rd.Set(t)
		}
		c.mu.Unlock()
		if pending {
			return nil
		}
	}
	return c.st.SetReadDeadline(t)
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set", errClosed)
	}
	if a := c.ans; a != nil && !a.settled.Load() {
		c.mu.Lock()
		pending := !a.settled.Load()
		if pending {
			a.wdl = t
			a.wd.Set(t)
			c.st.SetWriteDeadline(t)
		}
		c.mu.Unlock()
		if pending {
			return nil
		}
	}
	return c.st.SetWriteDeadline(t)
}
