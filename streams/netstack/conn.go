package netstack

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"

	"hipnet.dev/overlay"
)

// conn is a net.Conn over a connected netstack TCP endpoint, in the
// manner of gonet.TCPConn but with *overlay.Addr addresses, package net's
// errors (net.ErrClosed, io.EOF, os.ErrDeadlineExceeded, errnos), and
// without allocating per Read or Write in the adapter itself: its waiter
// entries are registered once for the conn's life, and the reader and
// writer netstack is given live in the conn.
type conn struct {
	t            *Transport
	ep           tcpip.Endpoint
	wq           *waiter.Queue
	laddr, raddr *overlay.Addr

	readMu   sync.Mutex
	rw       tcpip.SliceWriter // the Read buffer, under readMu
	rEntry   waiter.Entry
	readable chan struct{}

	writeMu  sync.Mutex
	wr       bytes.Reader // the Write data, under writeMu
	wEntry   waiter.Entry
	writable chan struct{}

	rdl, wdl deadline

	done     chan struct{} // closed by shut: Close, or the Transport's
	closed   atomic.Bool   // Close was called
	shutOnce sync.Once
	// left says whether and how the peer ended the association with
	// CLOSE (peerleft.go: leftNot, leftReset, leftAfterFIN).
	left atomic.Uint32
	// gen is the association generation c rides, as far as its peer's
	// watch knows (watchPeerOf); under t.mu.
	gen uint64
	// endMu orders the endpoint's Close (release) and its reset when the
	// peer left, which must not follow Close.
	endMu    sync.Mutex
	released bool
	aborted  bool
}

var _ net.Conn = (*conn)(nil)

// newConn wraps a connected endpoint whose peer is raddr, and tracks it
// so that Transport.Close ends it.
func (t *Transport) newConn(ep tcpip.Endpoint, wq *waiter.Queue, raddr *overlay.Addr) (*conn, error) {
	c := &conn{
		t:     t,
		ep:    ep,
		wq:    wq,
		laddr: &overlay.Addr{HIT: t.local},
		raddr: raddr,
		rdl:   newDeadline(),
		wdl:   newDeadline(),
		done:  make(chan struct{}),
	}
	if a, err := ep.GetLocalAddress(); err == nil {
		c.laddr.Port = int(a.Port)
	}
	// Hang-up and error wake both directions: a reset must end a
	// blocked Read and a blocked Write.
	c.rEntry, c.readable = waiter.NewChannelEntry(waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr)
	c.wEntry, c.writable = waiter.NewChannelEntry(waiter.WritableEvents | waiter.EventHUp | waiter.EventErr)
	wq.EventRegister(&c.rEntry)
	wq.EventRegister(&c.wEntry)
	if err := t.track(c); err != nil {
		c.shut()
		c.release()
		return nil, err
	}
	return c, nil
}

// Read reads data the peer sent. It returns io.EOF after the peer's FIN,
// a timeout error (os.ErrDeadlineExceeded) at the read deadline, and
// net.ErrClosed after Close.
func (c *conn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.isDone() {
		return 0, c.opErr("read", errClosed)
	}
	if c.rdl.Passed() {
		return 0, c.opErr("read", os.ErrDeadlineExceeded)
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.rw = b
	defer func() { c.rw = nil }()
	for {
		res, terr := c.ep.Read(&c.rw, tcpip.ReadOptions{})
		switch terr.(type) {
		case nil:
			c.ep.ModerateRecvBuf(res.Count)
			return res.Count, nil
		case *tcpip.ErrWouldBlock:
			if c.left.Load() == leftReset {
				c.reset() // drained (peerleft.go)
				return 0, c.opErr("read", errPeerLeft)
			}
			select {
			case <-c.readable:
				continue
			case <-c.done:
				return 0, c.opErr("read", errClosed)
			case <-c.rdl.Wait():
				return 0, c.opErr("read", os.ErrDeadlineExceeded)
			}
		case *tcpip.ErrClosedForReceive:
			if c.left.Load() == leftReset {
				return 0, c.opErr("read", errPeerLeft) // not a FIN
			}
			return 0, io.EOF
		default:
			return 0, c.opErr("read", c.mapError("read", terr))
		}
	}
}

// Write writes all of b unless an error (the write deadline, a reset,
// Close) stops it, and returns how much netstack took.
func (c *conn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.isDone() {
		return 0, c.opErr("write", errClosed)
	}
	if c.wdl.Passed() {
		return 0, c.opErr("write", os.ErrDeadlineExceeded)
	}
	defer c.wr.Reset(nil)
	written := 0
	for written < len(b) {
		if c.left.Load() != leftNot {
			return written, c.opErr("write", errPeerLeftWrite) // peerleft.go
		}
		c.wr.Reset(b[written:])
		n, terr := c.ep.Write(&c.wr, tcpip.WriteOptions{})
		written += int(n)
		switch terr.(type) {
		case nil:
		case *tcpip.ErrWouldBlock:
			// The send buffer is full; the writable entry is
			// registered for the conn's life, so a notification
			// between Write and here is not lost.
			select {
			case <-c.writable:
			case <-c.done:
				return written, c.opErr("write", errClosed)
			case <-c.wdl.Wait():
				return written, c.opErr("write", os.ErrDeadlineExceeded)
			}
		default:
			return written, c.opErr("write", c.mapError("write", terr))
		}
	}
	return written, nil
}

// Close closes the connection: netstack sends FIN after the data still
// queued (RST if received data was left unread, as Linux does) and keeps
// the endpoint through TIME-WAIT on its own. Blocked Reads and Writes
// return net.ErrClosed.
func (c *conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.opErr("close", errClosed)
	}
	c.shut()
	c.t.forget(c)
	c.release()
	return nil
}

// CloseWrite sends FIN after the queued data; the peer's Reads return
// io.EOF and this side can still read, as *net.TCPConn's CloseWrite.
func (c *conn) CloseWrite() error { return c.shutdown(tcpip.ShutdownWrite) }

// CloseRead discards data still to come, as *net.TCPConn's CloseRead.
func (c *conn) CloseRead() error { return c.shutdown(tcpip.ShutdownRead) }

func (c *conn) shutdown(how tcpip.ShutdownFlags) error {
	if c.isDone() {
		return c.opErr("close", errClosed)
	}
	if terr := c.ep.Shutdown(how); terr != nil {
		return c.opErr("close", c.mapError("close", terr))
	}
	return nil
}

// LocalAddr returns the local HIT and port.
func (c *conn) LocalAddr() net.Addr { return c.laddr }

// RemoteAddr returns the peer's HIT, which the ESP SA authenticated, and
// port.
func (c *conn) RemoteAddr() net.Addr { return c.raddr }

// SetDeadline sets the read and write deadlines.
func (c *conn) SetDeadline(t time.Time) error {
	if c.isDone() {
		return c.opErr("set deadline", errClosed)
	}
	c.rdl.Set(t)
	c.wdl.Set(t)
	return nil
}

// SetReadDeadline sets the read deadline.
func (c *conn) SetReadDeadline(t time.Time) error {
	if c.isDone() {
		return c.opErr("set deadline", errClosed)
	}
	c.rdl.Set(t)
	return nil
}

// SetWriteDeadline sets the write deadline.
func (c *conn) SetWriteDeadline(t time.Time) error {
	if c.isDone() {
		return c.opErr("set deadline", errClosed)
	}
	c.wdl.Set(t)
	return nil
}

// shut ends the conn for its user: blocked and later operations fail
// with errClosed. The endpoint lives on until release.
func (c *conn) shut() {
	c.shutOnce.Do(func() {
		close(c.done)
		c.wq.EventUnregister(&c.rEntry)
		c.wq.EventUnregister(&c.wEntry)
		c.rdl.Stop()
		c.wdl.Stop()
	})
}

// release hands the endpoint back to netstack (Close on it), once.
func (c *conn) release() {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	if !c.released {
		c.released = true
		c.ep.Close()
	}
}

func (c *conn) isDone() bool { return isClosed(c.done) }

// mapError is mapError for op, except that an endpoint the Transport
// aborted on Close reports errClosed, and one reset because the peer left
// reports errPeerLeft (errPeerLeftWrite for a write).
func (c *conn) mapError(op string, terr tcpip.Error) error {
	switch {
	case c.isDone() || c.t.isClosed():
		return errClosed
	case c.left.Load() != leftNot && op == "write":
		return errPeerLeftWrite
	case c.left.Load() != leftNot:
		return errPeerLeft
	}
	return mapError(terr)
}

func (c *conn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "hip", Source: c.laddr, Addr: c.raddr, Err: err}
}
