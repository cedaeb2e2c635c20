package streams

import (
	"errors"
	"time"

	"hipnet.dev/handshake/wire"
)

// Limits on what one peer may make a Manager hold. A peer is any host
// with an association, and an identity costs nothing to make; these
// bound what each one costs, not how many there are.
//
//   - Connections it dialed to us: at most maxInboundPerPeer at once,
//     handshaking or up. Two suffice (the current one and one retiring
//     after a simultaneous open, addConn); a hostile peer dialing more
//     would hold their streams, goroutines and QUIC state.
//   - New connection attempts: a token bucket per peer (attemptBurst,
//     attemptRate a second), checked before the server's flight, which
//     costs a signature when the client asks for certificates.
const (
	maxInboundPerPeer = 4
	attemptBurst      = 8
	attemptRate       = 2
	// attemptsKept bounds the buckets kept (ratelimit.Table).
	attemptsKept = 4096
)

// errTooManyConns refuses a peer's connection attempt beyond the limits.
var errTooManyConns = errors.New("streams: too many connections from this peer")

// allowAttempt takes a token from peer's bucket; m.mu is held.
func (m *Manager) allowAttempt(peer wire.HIT, now time.Time) bool {
	return m.attempts.Take(peer, now)
}

// admitInbound counts a connection peer dialed to us, or refuses it
// beyond maxInboundPerPeer; m.mu is held. A counted connection is
// uncounted once (doneInbound).
func (m *Manager) admitInbound(qc *qconn) bool {
	if m.inbound[qc.peer] >= maxInboundPerPeer {
		return false
	}
	if m.inbound == nil {
		m.inbound = make(map[wire.HIT]int)
	}
	m.inbound[qc.peer]++
	qc.inbound = true
	return true
}

// doneInbound uncounts qc, if it was counted; m.mu is held.
func (m *Manager) doneInbound(qc *qconn) {
	if !qc.inbound {
		return
	}
	qc.inbound = false
	if m.inbound[qc.peer]--; m.inbound[qc.peer] <= 0 {
		delete(m.inbound, qc.peer)
	}
}
