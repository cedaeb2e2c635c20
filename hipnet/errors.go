package hipnet

import "hipnet.dev/overlay"

// Errors returned by a Node, usable with errors.Is. Dial, Listen and I/O
// errors come wrapped in *net.OpError as in package net.
var (
	ErrUnknownPeer      = overlay.ErrUnknownPeer      // no locator is known for the HIT
	ErrHandshakeTimeout = overlay.ErrHandshakeTimeout // the peer did not answer the base exchange
	ErrHandshakeFailed  = overlay.ErrHandshakeFailed  // the base exchange failed (no common suite, bad signature, ...)
	ErrRefused          = overlay.ErrRefused          // no listener on the destination port
	ErrNotAuthorized    = overlay.ErrNotAuthorized    // Config.Authorize refused the peer
	ErrClosed           = overlay.ErrClosed           // the node or connection is closed
)
