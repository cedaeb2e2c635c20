package handshake

import (
	"errors"
	"fmt"

	"hipnet.dev/handshake/wire"
)

// Errors returned by the state machines. A packet that fails a check is
// dropped and the association carries on in its state; the error says
// why, for the caller's drop counters and logs.
var (
	ErrMalformed           = errors.New("handshake: malformed packet")
	ErrUnexpected          = errors.New("handshake: packet not expected in this state")
	ErrNotForUs            = errors.New("handshake: receiver HIT is not ours")
	ErrHITMismatch         = errors.New("handshake: host identity does not hash to the sender's HIT")
	ErrBadSignature        = errors.New("handshake: signature verification failed")
	ErrBadMAC              = errors.New("handshake: HIP_MAC verification failed")
	ErrBadPuzzle           = errors.New("handshake: puzzle solution rejected")
	ErrPuzzleExpired       = errors.New("handshake: puzzle generation expired")
	ErrUnsupportedHITSuite = errors.New("handshake: HIT suite not supported")
	ErrNoCommonDHGroup     = errors.New("handshake: no common Diffie-Hellman group")
	ErrDowngrade           = errors.New("handshake: Diffie-Hellman group downgrade detected")
	ErrNoCommonCipher      = errors.New("handshake: no common HIP cipher")
	ErrNoCommonESPSuite    = errors.New("handshake: no common ESP transform")
	ErrNoTransportFormat   = errors.New("handshake: no common transport format")
	ErrUnsupportedCritical = errors.New("handshake: unsupported critical parameter")
	ErrTimeout             = errors.New("handshake: peer did not answer")
	ErrClosed              = errors.New("handshake: association closed")
	ErrBusy                = errors.New("handshake: an UPDATE is already outstanding")
	ErrReplay              = errors.New("handshake: replayed or stale packet")
)

// NotifyError is a failure the peer reported in a NOTIFY packet.
type NotifyError struct {
	Type wire.NotifyType
	Data []byte
}

func (e *NotifyError) Error() string {
	return fmt.Sprintf("handshake: peer reported %v", e.Type)
}
