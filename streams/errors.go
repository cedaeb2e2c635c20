package streams

import (
	"net"

	"hipnet.dev/overlay"
)

// errClosed is returned for operations on a closed Manager, Listener or
// stream. It satisfies errors.Is with both overlay.ErrClosed and
// net.ErrClosed, so code written for package net recognises it.
var errClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string { return overlay.ErrClosed.Error() }

func (closedError) Is(target error) bool {
	return target == overlay.ErrClosed || target == net.ErrClosed
}
