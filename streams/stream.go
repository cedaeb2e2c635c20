package streams

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// The stream header. Every bidirectional QUIC stream the client opens
// starts with
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    version    |       destination port        |          source port          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// in network byte order: version 1, the port the client dials, and the
// client's ephemeral port for this stream (the server's RemoteAddr). The
// server answers with one octet before any data: 0 (accepted) or 1
// (refused: no listener on the port, or its backlog is full), then, on
// refusal, ends its side with FIN and STOP_SENDING(streamCodeRefused). A
// stream with an unknown version or a header that does not arrive within
// headerTimeout is reset (RESET_STREAM and STOP_SENDING with
// streamCodeBadHeader) without an answer. Either way the client's data
// never reaches an application that did not listen for it.
const (
	headerVersion  = 1
	headerLen      = 5
	answerAccepted = 0
	answerRefused  = 1
	headerTimeout  = 10 * time.Second
)

// Stream error codes (QUIC application error codes of RESET_STREAM and
// STOP_SENDING).
const (
	streamCodeClosed    quic.StreamErrorCode = 0 // the application closed the stream
	streamCodeRefused   quic.StreamErrorCode = 1 // no listener on the destination port
	streamCodeBadHeader quic.StreamErrorCode = 2 // unknown version or no header in time
	streamCodeAborted   quic.StreamErrorCode = 3 // the dialer gave up waiting for the answer
)

// Ephemeral ports: source ports of dialed streams and Listen(0) ports
// (RFC 6335 §6: the Dynamic Ports range).
const (
	ephemeralLow  = 49152
	ephemeralHigh = 65535
)

// aLongTimeAgo is a deadline in the past, to unblock a Read now.
var aLongTimeAgo = time.Unix(1, 0)

// Dial opens a stream to port on peer. It uses the connection with peer
// if there is one (then it costs one round trip, for the answer to the
// stream header) or dials one first. It returns an error wrapping
// overlay.ErrRefused when nothing listens on the port, overlay.ErrClosed
// after Close, the context's error when ctx ends first, and a TLS error
// when the peer's certificate is not bound to its host identity. Errors
// are *net.OpError.
func (m *Manager) Dial(ctx context.Context, peer wire.HIT, port int) (net.Conn, error) {
	raddr := &overlay.Addr{HIT: peer, Port: port}
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "hip", Addr: raddr, Err: err}
	}
	if port < 1 || port > 0xFFFF {
		return nil, opErr(fmt.Errorf("streams: bad port %d", port))
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, opErr(err)
		}
		qc, dialed, err := m.conn(ctx, peer)
		if err != nil {
			return nil, opErr(err)
		}
		c, err := m.openStream(ctx, qc, port)
		if err == nil {
			return c, nil
		}
		m.release(qc)
		if attempt < 3 && ctx.Err() == nil && retryable(err, dialed) {
			m.log.Debug("streams: retrying dial", "peer", peer, "port", port, "err", err)
			continue
		}
		return nil, opErr(err)
	}
}

// retryable reports whether a Dial whose stream failed with err may try
// again on another connection. The header was not answered, so no
// listener saw the stream. Retried: a connection the peer closed as a
// retired duplicate or as idle while our stream was on its way, and a
// connection we found open that turns out dead (the next try dials a
// fresh one), also because its association ended (its packets found no
// SA). A connection this Dial saw being established is not retried: its
// failure is the handshake's verdict (the server rejected our
// certificate).
func retryable(err error, dialed bool) bool {
	var appErr *quic.ApplicationError
	if errors.As(err, &appErr) && appErr.Remote &&
		(appErr.ErrorCode == connCodeRetired || appErr.ErrorCode == connCodeIdle) {
		return true
	}
	if dialed || errors.Is(err, overlay.ErrRefused) {
		return false
	}
	if errors.Is(err, overlay.ErrUnknownPeer) {
		// The connection we found lost its association; the next try
		// associates again and dials a fresh one.
		return true
	}
	var (
		idle  *quic.IdleTimeoutError
		reset *quic.StatelessResetError
	)
	return errors.As(err, &appErr) || errors.As(err, &idle) || errors.As(err, &reset)
}

// openStream opens a stream on qc, sends the header and waits for the
// answer. On success the returned conn holds qc's hold.
func (m *Manager) openStream(ctx context.Context, qc *qconn, port int) (*conn, error) {
	st, err := qc.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	src := m.ephemeralPort()
	var hdr [headerLen]byte
	hdr[0] = headerVersion
	binary.BigEndian.PutUint16(hdr[1:3], uint16(port))
	binary.BigEndian.PutUint16(hdr[3:5], uint16(src))
	if _, err := st.Write(hdr[:]); err != nil {
		st.CancelRead(streamCodeAborted)
		st.CancelWrite(streamCodeAborted)
		return nil, err
	}

	var fired chan struct{}
	if ctx.Done() != nil {
		fired = make(chan struct{})
	}
	stop := context.AfterFunc(ctx, func() {
		st.SetReadDeadline(aLongTimeAgo)
		close(fired)
	})
	var ans [1]byte
	_, err = io.ReadFull(st, ans[:])
	if !stop() && fired != nil {
		<-fired
		st.SetReadDeadline(time.Time{})
		if err != nil {
			err = ctx.Err()
		}
	}
	if err == nil && ans[0] != answerAccepted {
		if ans[0] == answerRefused {
			err = overlay.ErrRefused
		} else {
			err = fmt.Errorf("streams: bad answer %d to the stream header", ans[0])
		}
	}
	if err != nil {
		st.CancelRead(streamCodeAborted)
		st.CancelWrite(streamCodeAborted)
		return nil, err
	}
	return m.newConn(qc, st, &overlay.Addr{HIT: m.local, Port: src}, &overlay.Addr{HIT: qc.peer, Port: port}), nil
}

// serveStream reads the header of a stream the peer opened and hands the
// stream to the listener of its port, or refuses it.
func (m *Manager) serveStream(qc *qconn, st *quic.Stream) {
	defer m.wg.Done()
	reset := func(code quic.StreamErrorCode) {
		st.CancelRead(code)
		st.CancelWrite(code)
		m.release(qc)
	}
	var hdr [headerLen]byte
	st.SetReadDeadline(time.Now().Add(headerTimeout))
	if _, err := io.ReadFull(st, hdr[:]); err != nil {
		reset(streamCodeBadHeader)
		return
	}
	st.SetReadDeadline(time.Time{})
	if hdr[0] != headerVersion {
		m.log.Debug("streams: unknown stream header version", "peer", qc.peer, "version", hdr[0])
		reset(streamCodeBadHeader)
		return
	}
	dst := int(binary.BigEndian.Uint16(hdr[1:3]))
	src := int(binary.BigEndian.Uint16(hdr[3:5]))

	l := m.reserve(dst)
	if l == nil {
		if _, err := st.Write([]byte{answerRefused}); err != nil {
			reset(streamCodeRefused)
			return
		}
		st.Close()
		st.CancelRead(streamCodeRefused)
		m.release(qc)
		return
	}
	c := m.newConn(qc, st, &overlay.Addr{HIT: m.local, Port: dst}, &overlay.Addr{HIT: qc.peer, Port: src})
	if _, err := st.Write([]byte{answerAccepted}); err != nil {
		l.unreserve()
		c.abort(streamCodeAborted)
		return
	}
	l.deliver(c)
}

// ephemeralPort returns the next port of the dynamic range, in turn.
func (m *Manager) ephemeralPort() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.nextEphemeralLocked()
}

func (m *Manager) nextEphemeralLocked() int {
	p := m.nextPort
	m.nextPort++
	if m.nextPort > ephemeralHigh {
		m.nextPort = ephemeralLow
	}
	return p
}

// conn is a stream as a net.Conn.
type conn struct {
	st            *quic.Stream
	local, remote *overlay.Addr
	release       func()

	closed    atomic.Bool
	closeOnce sync.Once
	writeMu   sync.Mutex // serialises Write, CloseWrite and the FIN of Close
}

var _ net.Conn = (*conn)(nil)

func (m *Manager) newConn(qc *qconn, st *quic.Stream, local, remote *overlay.Addr) *conn {
	return &conn{st: st, local: local, remote: remote, release: func() { m.release(qc) }}
}

func (c *conn) opErr(op string, err error) error {
	if c.closed.Load() {
		err = errClosed
	}
	return &net.OpError{Op: op, Net: "hip", Source: c.local, Addr: c.remote, Err: err}
}

// Read reads from the stream; io.EOF after the peer's CloseWrite. Errors
// other than io.EOF are *net.OpError; a deadline's is a net.Error whose
// Timeout is true and which wraps os.ErrDeadlineExceeded.
func (c *conn) Read(b []byte) (int, error) {
	n, err := c.st.Read(b)
	if err != nil && err != io.EOF {
		err = c.opErr("read", err)
	}
	return n, err
}

// Write writes to the stream. It returns when the data is queued; a
// deadline error may come with n > 0.
func (c *conn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed.Load() {
		return 0, c.opErr("write", errClosed)
	}
	n, err := c.st.Write(b)
	if err != nil {
		err = c.opErr("write", err)
	}
	return n, err
}

// Close closes both directions. Data already written is still delivered
// (Close sends FIN after it) unless a Write is blocked at the time, in
// which case the send side is reset and the Write returns an error. The
// receive side is cancelled (STOP_SENDING): the peer's further writes
// fail, as they would on a TCP connection answered with RST.
func (c *conn) Close() error {
	err := errClosed
	c.closeOnce.Do(func() {
		err = nil
		c.closed.Store(true)
		c.st.CancelRead(streamCodeClosed)
		if c.writeMu.TryLock() {
			c.st.Close()
			c.writeMu.Unlock()
		} else {
			c.st.CancelWrite(streamCodeClosed)
		}
		c.release()
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
		c.st.CancelRead(code)
		c.st.CancelWrite(code)
		c.release()
	})
}

// CloseWrite shuts down the sending side (FIN), as (*net.TCPConn).CloseWrite:
// the peer reads io.EOF after the data, and can still write back.
func (c *conn) CloseWrite() error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed.Load() {
		return c.opErr("close", errClosed)
	}
	if err := c.st.Close(); err != nil {
		return c.opErr("close", err)
	}
	return nil
}

// CloseRead shuts down the receiving side (STOP_SENDING), as
// (*net.TCPConn).CloseRead.
func (c *conn) CloseRead() error {
	if c.closed.Load() {
		return c.opErr("close", errClosed)
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

func (c *conn) SetDeadline(t time.Time) error      { return c.st.SetDeadline(t) }
func (c *conn) SetReadDeadline(t time.Time) error  { return c.st.SetReadDeadline(t) }
func (c *conn) SetWriteDeadline(t time.Time) error { return c.st.SetWriteDeadline(t) }
