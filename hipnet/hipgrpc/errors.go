package hipgrpc

import "errors"

// Errors from the credentials' handshakes, usable with errors.Is. gRPC
// reports them inside its own connection errors.
var (
	// ErrNotHIP: the connection's RemoteAddr is not a *hipnet.Addr with a
	// HIT, so nothing authenticated the peer (a plain TCP connection, for
	// one).
	ErrNotHIP = errors.New("hipgrpc: not a hipnet connection")
	// ErrWrongPeer: the authority names a HIT other than the one the
	// connection authenticated.
	ErrWrongPeer = errors.New("hipgrpc: authority names another HIT")
)
