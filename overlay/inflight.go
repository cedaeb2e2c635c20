package overlay

import (
	"net/netip"
	"sync"
)

// Packets in flight on a suspect path. When the current locator stops
// answering while we send, the locator Set probes it (locators.go); while
// it does, the data path keeps a copy of each ESP packet it sends there.
// If the path is then declared dead and traffic switches, those packets
// are sent again, unchanged, on the new path: the transport above (QUIC)
// has backed off its retransmission timer during the outage, and without
// them it would wait a growing PTO before anything crossed the new path.
// Sending the same ciphertext again reuses no key and nonce: it is the
// same packet, which the peer's anti-replay window accepts once (RFC 4303
// §3.4.3) — it never saw it — and drops if it somehow did.

// inflightSlots bounds the copies kept per peer: the retransmission
// probes of a stalled transport during a check of under a second are a
// few; what a steady stream sends meanwhile beyond that is retransmitted
// by the transport anyway.
const inflightSlots = 16

// inflight is a peer's ring of copies, used only while its path is
// suspect (peer.suspect).
type inflight struct {
	mu   sync.Mutex
	bufs [inflightSlots][]byte
	n    int // copies held
	next int // slot of the next copy
}

// keep copies pkt into the ring (data path, while suspect). It allocates
// only the first time a slot is used for a packet that large.
func (r *inflight) keep(pkt []byte) {
	r.mu.Lock()
	b := r.bufs[r.next]
	r.bufs[r.next] = append(b[:0], pkt...)
	r.next = (r.next + 1) % inflightSlots
	r.n = min(r.n+1, inflightSlots)
	r.mu.Unlock()
}

// resend sends the copies, oldest first, to to and empties the ring; it
// returns how many went.
func (r *inflight) resend(s *Stack, to netip.AddrPort) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	sent := 0
	for i := r.n; i > 0; i-- {
		b := r.bufs[(r.next-i+inflightSlots)%inflightSlots]
		if err := s.sock.writeTo(b, to); err == nil {
			s.ctr.packetsOut.Add(1)
			s.ctr.bytesOut.Add(uint64(len(b)))
			sent++
		}
	}
	r.n = 0
	return sent
}

// clear empties the ring and lets go of its buffers.
func (r *inflight) clear() {
	r.mu.Lock()
	r.bufs = [inflightSlots][]byte{}
	r.n, r.next = 0, 0
	r.mu.Unlock()
}
