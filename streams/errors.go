package streams

import (
	"errors"
	"syscall"

	"github.com/quic-go/quic-go"

	"hipnet.dev/overlay"
)

// errClosed is returned for operations on a closed Manager, Listener or
// stream: overlay.ErrClosed, which satisfies errors.Is with net.ErrClosed
// too, so code written for package net recognises it.
var errClosed = overlay.ErrClosed

// endedError is the error of a Read or Write on a stream that ended
// abruptly: the errno a TCP socket of package net (and the netstack
// transport) gives for the same event, for errors.Is, with quic-go's
// account of it, for errors.As (*quic.StreamError, *quic.ApplicationError,
// *quic.IdleTimeoutError, ...) and the message. quic-go's errors are not
// on the Unwrap chain: each of them satisfies errors.Is with
// net.ErrClosed, which says the local side closed, and would mislead code
// that stops on it (a server's accept loop) when the peer reset the
// stream.
type endedError struct {
	errno syscall.Errno
	cause error
}

func (e *endedError) Error() string { return e.errno.Error() + ": " + e.cause.Error() }
func (e *endedError) Unwrap() error { return e.errno }

// Is finds overlay.ErrPeerLeft in a stream the peer's CLOSE ended, as in
// netstack's Dial of the same fate: whyEnded's error, or the connection
// closed with connCodeLeft.
func (e *endedError) Is(target error) bool {
	if target != overlay.ErrPeerLeft {
		return false
	}
	var ae *quic.ApplicationError
	return errors.Is(e.cause, overlay.ErrPeerLeft) ||
		errors.As(e.cause, &ae) && !ae.Remote && ae.ErrorCode == connCodeLeft
}
func (e *endedError) As(target any) bool { return errors.As(e.cause, target) }
func (e *endedError) Timeout() bool      { return e.errno.Timeout() }
func (e *endedError) Temporary() bool    { return e.errno.Temporary() }

// streamError maps the error quic-go gave a stream's Read (read true) or
// Write to what a TCP socket gives for the same event:
//
//   - the peer ended it: it reset the stream or stopped reading it
//     (RESET_STREAM, STOP_SENDING); it closed the connection
//     (CONNECTION_CLOSE: its node is closing; before the handshake was
//     confirmed, a TransportError with code APPLICATION_ERROR or NO_ERROR,
//     RFC 9000 §10.2.3); it reset the connection statelessly (it
//     restarted); or it ended the HIP association with CLOSE
//     (connCodeLeft). ECONNRESET on Read and EPIPE on Write, as after an
//     RST (gVisor's TCP, and Linux's for a Write once the reset was read);
//   - the association was lost without a CLOSE (failed, expired), or the
//     Manager gave up the connection (retired, idle): ECONNABORTED;
//   - the peer stopped answering (QUIC's idle timeout): ETIMEDOUT, whose
//     Timeout is true, as TCP's retransmission or keep-alive timeout;
//   - our own Manager closed (Close): errClosed.
//
// Anything else (a TLS verdict in a TransportError, a deadline, io.EOF,
// overlay's errors) is returned as it is.
func streamError(err error, read bool) error {
	var (
		se    *quic.StreamError
		ae    *quic.ApplicationError
		te    *quic.TransportError
		idle  *quic.IdleTimeoutError
		hto   *quic.HandshakeTimeoutError
		reset *quic.StatelessResetError
		ended *endedError
	)
	peerReset := syscall.EPIPE
	if read {
		peerReset = syscall.ECONNRESET
	}
	switch {
	case errors.As(err, &ended):
		return err
	case errors.Is(err, overlay.ErrPeerLeft):
		return &endedError{peerReset, err}
	case errors.As(err, &se):
		if se.Remote {
			return &endedError{peerReset, err}
		}
	case errors.As(err, &ae):
		switch {
		case ae.Remote || ae.ErrorCode == connCodeLeft:
			return &endedError{peerReset, err}
		case ae.ErrorCode == connCodeClosed:
			return errClosed
		default:
			return &endedError{syscall.ECONNABORTED, err}
		}
	case errors.As(err, &te):
		if te.Remote && (te.ErrorCode == quic.ApplicationErrorErrorCode || te.ErrorCode == quic.NoError) {
			return &endedError{peerReset, err}
		}
	case errors.As(err, &idle), errors.As(err, &hto):
		return &endedError{syscall.ETIMEDOUT, err}
	case errors.As(err, &reset):
		return &endedError{peerReset, err}
	}
	return err
}
