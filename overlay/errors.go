package overlay

import (
	"errors"
	"net"
)

// Errors of the stack, exported again by package hipnet. Each wrapping
// error the stack returns satisfies errors.Is with one of them.
var (
	// ErrUnknownPeer: no locator is known for the HIT.
	ErrUnknownPeer = errors.New("hip: unknown peer (no locator for this HIT)")
	// ErrHandshakeTimeout: the peer did not complete the base exchange.
	ErrHandshakeTimeout = errors.New("hip: handshake timed out")
	// ErrHandshakeFailed: the base exchange failed (NOTIFY, no common
	// suite, bad signature, ...).
	ErrHandshakeFailed = errors.New("hip: handshake failed")
	// ErrRefused: no listener on the destination port.
	ErrRefused = errors.New("hip: connection refused")
	// ErrNotAuthorized: the peer's HIT is refused by Config.Authorize.
	ErrNotAuthorized = errors.New("hip: peer not authorized")
	// ErrClosed: the stack or the connection is closed. errors.Is(err,
	// net.ErrClosed) holds for it too, as for a closed socket's errors in
	// package net, so that code written for net (an accept loop, quic-go's
	// read loop) stops on it.
	ErrClosed error = closedError{}
	// ErrPortInUse: the inner port is taken.
	ErrPortInUse = errors.New("hip: port in use")
	// ErrQueueFull: a base exchange is running and its bounded send queue
	// is full; the write may be retried.
	ErrQueueFull = errors.New("hip: send queue full while the handshake runs")
)

// ErrPeerLeft: the peer ended the association with CLOSE (ClosedByPeer).
// WriteSegment returns it for a segment that may not start a new one
// (SetSegmentReopens); the stream transports above wrap it in the error
// of a stream or Dial that the peer's leaving ended, where it is also
// syscall.ECONNRESET.
var ErrPeerLeft = errors.New("hip: peer closed the association")

// closedError is ErrClosed's type: comparable, so that ErrClosed == err
// and errors.Is(err, ErrClosed) hold for every copy.
type closedError struct{}

func (closedError) Error() string { return "hip: use of closed network connection" }

func (closedError) Is(target error) bool { return target == net.ErrClosed }
