package hipnet

import (
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// Errors returned by a Node, usable with errors.Is. Dial, Listen and I/O
// errors come wrapped in *net.OpError as in package net.
var (
	ErrUnknownPeer      = overlay.ErrUnknownPeer      // no locator is known for the HIT
	ErrHandshakeTimeout = overlay.ErrHandshakeTimeout // the peer did not answer the base exchange
	ErrHandshakeFailed  = overlay.ErrHandshakeFailed  // the base exchange failed (no common suite, bad signature, ...)
	ErrRefused          = overlay.ErrRefused          // no listener on the destination port
	ErrNotAuthorized    = overlay.ErrNotAuthorized    // Config.Authorize refused the peer
	ErrClosed           = overlay.ErrClosed           // the node or connection is closed
	ErrPortInUse        = overlay.ErrPortInUse        // Listen or ListenPacket: the inner port is taken (or reserved for streams)
	ErrQueueFull        = overlay.ErrQueueFull        // a datagram write while the base exchange runs found its bounded queue full; retry
	ErrBadHIT           = wire.ErrBadHIT              // ParseHIT, Dial: the text is not a HIT (and no resolver knows it as a name)
	ErrPeerLeft         = overlay.ErrPeerLeft         // a stream's peer ended the association with CLOSE (its node closed); with ECONNRESET or EPIPE
)

// DialError is how a dial that timed out says what it saw (wrapped in the
// *net.OpError of DialContext): the locators the base exchange was sent
// to, and a host that answered with another HIT, if one did. It unwraps
// to ErrHandshakeTimeout, and its Timeout method reports true, so
// errors.As(err, &netErr) && netErr.Timeout() holds as for a net.Dialer.
type DialError = overlay.DialError
