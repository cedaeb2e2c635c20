package streams

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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
// client's data follows at once: it does not wait for the server's
// answer (optimistic open, answer.go). The server reads the header and
// answers with one octet before any data of its own: 0 (accepted) or 1
// (refused: no listener on the port, or its backlog is full), then, on
// refusal, ends its side with FIN and STOP_SENDING(streamCodeRefused) and
// discards what the client sent. A stream with an unknown version or a
// header that does not arrive within headerTimeout is reset (RESET_STREAM
// and STOP_SENDING with streamCodeBadHeader) without an answer. Either
// way the client's data never reaches an application that did not listen
// for it.
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
	streamCodeAborted   quic.StreamErrorCode = 3 // the dialer gave up on the stream (refused, retried, failed)
)

// Ephemeral ports: source ports of dialed streams and Listen(0) ports
// (RFC 6335 §6: the Dynamic Ports range).
const (
	ephemeralLow  = 49152
	ephemeralHigh = 65535
)

// maxDialAttempts bounds the streams one Dial opens: the first, and the
// retries on another connection (retryable), in Dial or while the answer
// is awaited.
const maxDialAttempts = 3

// Dial opens a stream to port on peer. It uses the connection with peer
// if there is one, or dials one first (the QUIC handshake, after the HIP
// base exchange if need be), then opens the stream, sends the stream
// header and returns: it does not wait for the server's answer, so on an
// existing connection it costs no round trip, and the first bytes written
// leave at once.
//
// The answer is awaited by the conn's first Read or Write, whichever
// comes first: a port with no listener fails there with an error wrapping
// overlay.ErrRefused, and so does every later Read and Write. The first
// Write sends its data right away and returns once the answer is in (or
// its deadline passes, or the conn is closed), so a Write that returns
// without error wrote to a listener.
//
// A Dial that opens a new QUIC connection, with the association's secret,
// sends the header and the first Write as QUIC 0-RTT data (early.go): it
// returns once the base exchange, if it ran one, is done, without waiting
// for the QUIC handshake, whose verdict then comes with the answer.
//
// Dial returns an error wrapping overlay.ErrClosed after Close, the
// context's error when ctx ends first, overlay.ErrUnknownPeer when there
// is no association and Config.Associate cannot make one, and a TLS error
// when the peer's identity does not verify (with 0-RTT, on the first Read
// or Write). ctx bounds the Dial only, not the wait for the answer.
// Errors are *net.OpError.
func (m *Manager) Dial(ctx context.Context, peer wire.HIT, port int) (net.Conn, error) {
	raddr := &overlay.Addr{HIT: peer, Port: port}
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "hip", Addr: raddr, Err: err}
	}
	if port < 1 || port > 0xFFFF {
		return nil, opErr(fmt.Errorf("streams: bad port %d", port))
	}
	if _, err := m.associate(ctx, peer); err != nil {
		return nil, opErr(err)
	}
	src := m.ephemeralPort()
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, opErr(err)
		}
		var first *firstStream // early.go: only a Dial's first attempt
		if attempt == 1 {
			first = &firstStream{port: port, src: src}
		}
		qc, dialed, err := m.conn(ctx, peer, first)
		st := first.take(qc) // aborted if err: qc is nil
		if err != nil {
			return nil, opErr(err)
		}
		if st == nil {
			st, err = m.openStream(ctx, qc, port, src)
		}
		if err == nil {
			c, err := m.newDialedConn(qc, st, port, src, dialed, attempt)
			if err != nil {
				return nil, opErr(err)
			}
			return c, nil
		}
		err = m.whyEnded(err, peer)
		if attempt < maxDialAttempts && ctx.Err() == nil && retryable(err, dialed) {
			m.failConn(qc, err)
			m.release(qc)
			m.log.Debug("streams: retrying dial", "peer", peer, "port", port, "err", err)
			continue
		}
		m.release(qc)
		return nil, opErr(err)
	}
}

// retryable reports whether a stream that failed with err before it was
// answered may be tried again on another connection (Dial, and the conn
// awaiting the answer: retryAllowed adds what the application wrote).
// The header was not answered, so no listener saw the stream. Retried: a
// connection the peer closed as a retired duplicate or as idle while our
// stream was on its way (undelivered), and a connection we found open
// that turns out dead (the next try dials a fresh one), also because its
// association ended (its packets found no SA). Not retried: a connection
// the peer ended on purpose (peerLeft). A connection this Dial
// saw being established is not retried: its failure is the handshake's
// verdict (the server rejected our certificate).
func retryable(err error, dialed bool) bool {
	if undelivered(err) {
		return true
	}
	if dialed || errors.Is(err, overlay.ErrRefused) || peerLeft(err) {
		return false
	}
	if errors.Is(err, overlay.ErrUnknownPeer) {
		// The connection we found lost its association; the next try
		// associates again and dials a fresh one.
		return true
	}
	var (
		appErr *quic.ApplicationError
		idle   *quic.IdleTimeoutError
		reset  *quic.StatelessResetError
	)
	return errors.As(err, &appErr) || errors.As(err, &idle) || errors.As(err, &reset)
}

// peerLeft reports whether err is the end of a connection that the peer
// ended on purpose: its Manager closed it (its node is closing), or it
// ended the HIP association with CLOSE. A dial retried then would start a
// base exchange with a host that is gone, and wait for it to time out
// (half a minute) before it failed anyway; the stream fails at once, as a
// TCP connection reset by its peer does. A connection whose association
// was lost (no CLOSE: the peer restarted, the SAs expired) is retried.
func peerLeft(err error) bool {
	var appErr *quic.ApplicationError
	if errors.Is(err, overlay.ErrPeerLeft) {
		return true
	}
	if !errors.As(err, &appErr) {
		return false
	}
	if appErr.Remote {
		return appErr.ErrorCode == connCodeClosed
	}
	return appErr.ErrorCode == connCodeLeft
}

// whyEnded is err, the error of a stream to peer, or overlay.ErrPeerLeft when
// the peer ended the association with CLOSE: the connection's close
// (connCodeLeft) races with the failure of a packet sent after the
// association ended (ErrUnknownPeer), which alone would say nothing of
// why it ended.
func (m *Manager) whyEnded(err error, peer wire.HIT) error {
	if err == nil || peerLeft(err) {
		return err
	}
	if pc, ok := m.assoc.(peerCloses); ok && pc.ClosedByPeer(peer) {
		return fmt.Errorf("%w (%w)", overlay.ErrPeerLeft, err)
	}
	return err
}

// undelivered reports whether err proves that the peer never gave the
// stream to a listener, so that data written to it can be written again
// elsewhere:
//
//   - it closed the connection as a retired duplicate or as idle, which it
//     does only when no stream is on it (closeRetired, armIdle);
//   - it rejected 0-RTT, and with it discarded everything sent in 0-RTT
//     (RFC 9001 §4.6.2);
//   - it could not verify our PSK binder, and aborted the handshake before
//     it derived the keys of early data (RFC 8446 §4.2.11).
func undelivered(err error) bool {
	if errors.Is(err, quic.Err0RTTRejected) || pskRejected(err) {
		return true
	}
	var appErr *quic.ApplicationError
	return errors.As(err, &appErr) && appErr.Remote &&
		(appErr.ErrorCode == connCodeRetired || appErr.ErrorCode == connCodeIdle)
}

// openStream opens a stream on qc and sends the header for port, from
// src. It does not wait for the answer. NextConnection first waits for
// the handshake to complete (firstStream says why no other stream may be
// created before), and makes a connection whose 0-RTT the peer rejected
// usable again: quic-go refuses new streams on it until then. On any
// other connection it changes nothing.
func (m *Manager) openStream(ctx context.Context, qc *qconn, port, src int) (*quic.Stream, error) {
	if _, err := qc.c.NextConnection(ctx); err != nil {
		return nil, err
	}
	st, err := qc.c.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	if err := writeHeader(st, port, src); err != nil {
		abortStream(st)
		return nil, err
	}
	return st, nil
}

// writeHeader writes the stream header for port, from src.
func writeHeader(st *quic.Stream, port, src int) error {
	var hdr [headerLen]byte
	hdr[0] = headerVersion
	binary.BigEndian.PutUint16(hdr[1:3], uint16(port))
	binary.BigEndian.PutUint16(hdr[3:5], uint16(src))
	_, err := st.Write(hdr[:])
	return err
}

// abortStream resets both directions of a dialed stream we give up on.
func abortStream(st *quic.Stream) {
	st.CancelRead(streamCodeAborted)
	st.CancelWrite(streamCodeAborted)
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
