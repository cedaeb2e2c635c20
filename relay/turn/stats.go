package turn

import "sync/atomic"

// Stats are the server's counters since NewServer. Every request that
// carries credentials (MESSAGE-INTEGRITY and a fresh NONCE) is counted in
// AuthOK or in exactly one Refused field; a request without them gets the
// 401 challenge of RFC 8489 §9.2.4, the normal first leg of every
// Allocate, and is not counted.
type Stats struct {
	Allocations      uint64 // relayed sockets open now: the allocations (and, for a moment, pion's EVEN-PORT probes)
	AllocationsTotal uint64 // allocations made since NewServer

	AuthOK      uint64 // requests whose credentials were accepted
	AuthRefused uint64 // requests whose credentials were refused: the sum of the four below

	RefusedBadMAC        uint64 // MESSAGE-INTEGRITY did not verify: wrong password, secret or realm
	RefusedExpired       uint64 // username's expiry not in the future (Config.Now)
	RefusedNotRegistered uint64 // username's HIT not Config.Allowed
	RefusedMalformed     uint64 // username not "<expiry>:<HIT>" in the one spelling Credentials makes

	RefusedCapacity uint64 // Allocate refused with 508: MaxAllocations reached
	RelayFailed     uint64 // Allocate refused with 508: no relayed socket (TCP or the other address family asked, RelayListen failed, server closing)
	RefusedPeer     uint64 // permissions and channel bindings refused with 403 (Config.PeerAllowed)
}

// counters are the atomics behind Stats.
type counters struct {
	allocations, allocationsTotal atomic.Uint64
	authOK                        atomic.Uint64
	refusedBadMAC, refusedExpired atomic.Uint64
	refusedNotRegistered          atomic.Uint64
	refusedMalformed              atomic.Uint64
	refusedCapacity, relayFailed  atomic.Uint64
	refusedPeer                   atomic.Uint64
}

func (c *counters) snapshot() Stats {
	st := Stats{
		Allocations:          c.allocations.Load(),
		AllocationsTotal:     c.allocationsTotal.Load(),
		AuthOK:               c.authOK.Load(),
		RefusedBadMAC:        c.refusedBadMAC.Load(),
		RefusedExpired:       c.refusedExpired.Load(),
		RefusedNotRegistered: c.refusedNotRegistered.Load(),
		RefusedMalformed:     c.refusedMalformed.Load(),
		RefusedCapacity:      c.refusedCapacity.Load(),
		RelayFailed:          c.relayFailed.Load(),
		RefusedPeer:          c.refusedPeer.Load(),
	}
	st.AuthRefused = st.RefusedBadMAC + st.RefusedExpired + st.RefusedNotRegistered + st.RefusedMalformed
	return st
}
