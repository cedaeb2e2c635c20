package netstack

import (
	"errors"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"

	"hipnet.dev/overlay"
)

// errClosed is returned for operations on a closed Transport, Listener or
// conn: overlay.ErrClosed, which satisfies errors.Is with net.ErrClosed
// too, so code written for package net recognises it.
var errClosed = overlay.ErrClosed

// errRefused is a Dial answered by RST: nothing listens on the port. It
// is overlay.ErrRefused for hipnet and ECONNREFUSED for code written for
// package net.
var errRefused error = refusedError{}

type refusedError struct{}

func (refusedError) Error() string { return overlay.ErrRefused.Error() }

func (refusedError) Is(target error) bool {
	return target == overlay.ErrRefused || target == syscall.ECONNREFUSED
}

// errPeerLeft is a Dial whose peer ended the association with CLOSE
// before it answered the SYN (leaveWatch), and the Read of a connection
// reset because its peer did (peerleft.go). It is overlay.ErrPeerLeft,
// and ECONNRESET for code written for package net, as the QUIC
// transport's streams say it then; errPeerLeftWrite, a Write's, is
// EPIPE, as a TCP socket's Write after a reset.
var (
	errPeerLeft      error = peerLeftError{syscall.ECONNRESET}
	errPeerLeftWrite error = peerLeftError{syscall.EPIPE}
)

type peerLeftError struct{ errno syscall.Errno }

func (peerLeftError) Error() string { return overlay.ErrPeerLeft.Error() }

func (e peerLeftError) Is(target error) bool {
	return target == overlay.ErrPeerLeft || target == e.errno
}

// errBadPort is a Dial or Listen with a port outside 0..65535 (Dial: 1..).
var errBadPort = errors.New("netstack: bad port")

// tcpipError is a netstack error with no better equivalent; its text is
// netstack's.
type tcpipError struct{ e tcpip.Error }

func (e tcpipError) Error() string { return "netstack: " + e.e.String() }

// mapError turns a netstack error into the error package net would give
// for the same condition, so that errors.Is with syscall errnos, io.EOF
// handling and net.Error.Timeout work as callers expect.
func mapError(e tcpip.Error) error {
	switch e.(type) {
	case nil:
		return nil
	case *tcpip.ErrConnectionRefused:
		return errRefused
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted:
		return syscall.ECONNABORTED
	case *tcpip.ErrClosedForSend:
		return syscall.EPIPE
	case *tcpip.ErrTimeout:
		// Retransmissions or keep-alive probes went unanswered;
		// ETIMEDOUT is a net.Error whose Timeout is true, as on Linux.
		return syscall.ETIMEDOUT
	case *tcpip.ErrPortInUse:
		return overlay.ErrPortInUse
	case *tcpip.ErrNotConnected, *tcpip.ErrInvalidEndpointState:
		return syscall.ENOTCONN
	}
	return tcpipError{e}
}
