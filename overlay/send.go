package overlay

import (
	"errors"
	"fmt"
	"net"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/wire"
)

// The outbound data path (DESIGN.md "Data path"): peer lookup, then either
// seal with the peer's outbound SA and send to its locator, or queue
// (bounded) while the base exchange runs.

// send carries payload from inner port srcPort to dst:dstPort.
func (s *Stack) send(dst wire.HIT, srcPort, dstPort uint16, payload []byte) error {
	p, err := s.sendPeer(dst)
	if err != nil {
		return err
	}
	if o := p.out.Load(); o != nil {
		return s.seal(p, o, srcPort, dstPort, payload)
	}
	return s.enqueue(p, s.pendingUDP(p, srcPort, dstPort, payload))
}

// pendingUDP builds the inner UDP segment of a datagram that waits for
// p's outbound SA, in a buffer of its own.
func (s *Stack) pendingUDP(p *peer, srcPort, dstPort uint16, payload []byte) pendingSeg {
	seg := esp.AppendUDP(make([]byte, 0, 8+len(payload)), s.hit, p.hit, srcPort, dstPort, payload)
	return pendingSeg{b: seg, proto: esp.ProtoUDP}
}

// sendPeer returns the peer struct to send to dst through.
func (s *Stack) sendPeer(dst wire.HIT) (*peer, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	p := s.lookupPeer(dst)
	if p == nil && len(s.relays) > 0 {
		p = s.ensurePeer(dst) // reached through a relay (path.go)
	}
	if p == nil {
		return nil, noPeer(dst)
	}
	return p, nil
}

// pendingSeg is an inner segment written while the base exchange runs:
// built, not yet sealed.
type pendingSeg struct {
	b     []byte
	proto uint8
}

// payloadLen is the application payload of the segment, for the
// counters: an inner UDP datagram's, or a whole segment of another
// protocol.
func (g pendingSeg) payloadLen() int {
	if g.proto == esp.ProtoUDP {
		return len(g.b) - 8
	}
	return len(g.b)
}

// seal builds the BEET inner UDP segment between the two HITs, seals it with
// o and sends it to the peer's locator. The segment is built in the pooled
// buffer the packet goes out in, where Seal wants its payload, so the
// datagram is copied once (from the caller) and encrypted in place. With
// a *net.UDPConn socket it allocates nothing.
func (s *Stack) seal(p *peer, o *esp.Outbound, srcPort, dstPort uint16, payload []byte) error {
	n := 8 + len(payload)
	out := getBuf(n + o.Overhead(n))
	off := o.PayloadOffset()
	seg := esp.AppendUDP((*out)[off:off], s.hit, p.hit, srcPort, dstPort, payload)
	return s.sealInto(p, o, esp.ProtoUDP, out, seg, len(payload))
}

// sealSegment seals seg, an inner segment of protocol proto whose
// application payload is payloadLen octets (for the counters), with o and
// sends it to the peer's locator. It does not keep seg.
func (s *Stack) sealSegment(p *peer, o *esp.Outbound, proto uint8, seg []byte, payloadLen int) error {
	return s.sealInto(p, o, proto, getBuf(len(seg)+o.Overhead(len(seg))), seg, payloadLen)
}

// sealInto is sealSegment with the pooled buffer out to seal into given
// (seg may already sit in it at o.PayloadOffset()); out is sealInto's.
func (s *Stack) sealInto(p *peer, o *esp.Outbound, proto uint8, out *[]byte, seg []byte, payloadLen int) error {
	to, ok := p.locator()
	if !ok {
		putBuf(out)
		return fmt.Errorf("%w: %v", ErrUnknownPeer, p.hit)
	}
	n, err := sealBuf(o, out, seg, proto)
	if err != nil {
		if errors.Is(err, esp.ErrSequenceExhausted) {
			s.askRekey(p)
		}
		return err
	}
	if p.suspect.Load() {
		// Loaded once: the control goroutine may end the check and drop
		// the ring (resetPath) between the two loads.
		if h := p.held.Load(); h != nil {
			h.keep((*out)[:n]) // inflight.go: sent again if the path is given up
		}
	}
	if err = s.transmit(out, n, to); err != nil { // tx.go; out is its now
		s.ctr.sendErrors.Add(1)
		if errors.Is(err, net.ErrClosed) || errors.Is(err, ErrClosed) {
			return err
		}
		// The network refused this datagram (no route, no source address:
		// a link going down, a renumbering): it is lost, as on the wire.
		// The connection above must not end on it (quic-go closes on any
		// write error but "message too long"), and the locator checks must
		// see that we sent (locators.go), or a dead path would look idle.
		p.pktsOut.Add(1)
		return nil
	}
	s.countSent(p, n, payloadLen)
	if t := s.clock.Load(); p.lastOut.Load() != t {
		p.lastOut.Store(t) // read first: no shared write per packet
	}
	if p.pathIdle.Load() && p.pathIdle.CompareAndSwap(true, false) {
		s.poke(p, pokePath) // in use again: the locators watch the path (locators.go)
	}
	if o.NeedsRekey() {
		s.askRekey(p)
	}
	return nil
}

// sealPooled seals seg, of protocol proto, with o into a pooled buffer:
// the packet is (*buf)[:n], and buf is the caller's to transmit or put
// back.
func sealPooled(o *esp.Outbound, seg []byte, proto uint8) (buf *[]byte, n int, err error) {
	out := getBuf(len(seg) + o.Overhead(len(seg)))
	n, err = sealBuf(o, out, seg, proto)
	if err != nil {
		return nil, 0, err
	}
	return out, n, nil
}

// sealBuf seals seg, of protocol proto, with o into the pooled buffer out,
// which has room for it: the packet is (*out)[:n]. On error out is back in
// its pool.
func sealBuf(o *esp.Outbound, out *[]byte, seg []byte, proto uint8) (n int, err error) {
	pkt, err := o.Seal((*out)[:0], seg, proto)
	if err != nil {
		putBuf(out)
		return 0, err
	}
	if &pkt[0] != &(*out)[0] {
		// Seal wrote elsewhere (it never does into a buffer of this
		// size); copy, so that the packet is in the pooled buffer.
		*out = append((*out)[:0], pkt...)
	}
	return len(pkt), nil
}

func (s *Stack) countSent(p *peer, wireLen, payloadLen int) {
	s.ctr.packetsOut.Add(1)
	s.ctr.bytesOut.Add(uint64(wireLen))
	s.ctr.espOut.Add(1)
	p.pktsOut.Add(1)
	p.bytesOut.Add(uint64(payloadLen))
}

// askRekey asks the control goroutine, once, to rekey p's SAs.
func (s *Stack) askRekey(p *peer) {
	if !p.rekeyAsked.Load() && p.rekeyAsked.CompareAndSwap(false, true) {
		s.poke(p, pokeRekey)
	}
}

// enqueue keeps the segment (the caller's to give) until p's outbound SA
// exists and asks the control goroutine to start the base exchange. The
// queue is bounded by Config.QueueLimit: the write beyond it fails with
// ErrQueueFull.
func (s *Stack) enqueue(p *peer, seg pendingSeg) error {
	if _, ok := p.locator(); !ok && len(s.relays) == 0 {
		return fmt.Errorf("%w: %v", ErrUnknownPeer, p.hit)
	}
	if !s.authorized(p.hit) {
		s.ctr.unauthorized.Add(1)
		return fmt.Errorf("%w: %v", ErrNotAuthorized, p.hit)
	}
	queued, err := s.push(p, seg, false)
	if queued {
		s.poke(p, pokeConnect)
	}
	return err
}

// enqueueKeyed queues a datagram for the outbound SA of p's keyed
// exchange (ConnectKeyed), without the poke that would start an exchange.
func (s *Stack) enqueueKeyed(p *peer, srcPort, dstPort uint16, payload []byte) error {
	_, err := s.push(p, s.pendingUDP(p, srcPort, dstPort, payload), true)
	return err
}

// push appends seg to p's queue, or seals and sends it if the SA was
// installed (and the queue flushed) meanwhile; queued says which. keyed
// queues only while p's exchange is keyed, checked under p.mu: a failed
// exchange drops the secret (removeSAs) before it empties the queue
// (discardPending), so what is queued either leaves with the R2 or is
// discarded with the rest, never waits for a later association.
func (s *Stack) push(p *peer, seg pendingSeg, keyed bool) (queued bool, err error) {
	p.mu.Lock()
	if o := p.out.Load(); o != nil {
		p.mu.Unlock()
		return false, s.sealSegment(p, o, seg.proto, seg.b, seg.payloadLen())
	}
	switch {
	case keyed && p.secret.Load() == nil:
		err = fmt.Errorf("%w: no association with %v", ErrUnknownPeer, p.hit)
	case len(p.pending) >= s.queueLimit:
		s.ctr.queueFull.Add(1)
		err = fmt.Errorf("%w: %d datagrams for %v", ErrQueueFull, s.queueLimit, p.hit)
	default:
		p.pending = append(p.pending, seg)
		queued = true
	}
	p.mu.Unlock()
	return queued, err
}

// installOutbound makes o p's outbound SA, first sending what was queued
// during the base exchange, in order and batched. Writers that find no SA
// wait on p.mu meanwhile, so nothing overtakes the queue. Control
// goroutine only.
func (s *Stack) installOutbound(p *peer, o *esp.Outbound) {
	p.mu.Lock()
	defer p.mu.Unlock()
	to, ok := p.locator()
	for _, seg := range p.pending {
		if !ok {
			s.ctr.sendErrors.Add(1)
			continue
		}
		out, n, err := sealPooled(o, seg.b, seg.proto)
		if err != nil {
			s.ctr.queueDiscarded.Add(1)
			continue
		}
		// Through the transmit queue, as every data packet: back to back,
		// they leave in one GSO batch (tx.go).
		if err := s.transmit(out, n, to); err != nil {
			s.ctr.sendErrors.Add(1)
			continue
		}
		s.countSent(p, n, seg.payloadLen())
	}
	p.pending = nil
	p.out.Store(o)
}

// discardPending drops the queue of a failed base exchange, counted.
func (s *Stack) discardPending(p *peer) {
	p.mu.Lock()
	n := len(p.pending)
	p.pending = nil
	p.mu.Unlock()
	if n > 0 {
		s.ctr.queueDiscarded.Add(uint64(n))
	}
}
