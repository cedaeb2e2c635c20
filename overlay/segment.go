package overlay

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/wire"
)

// Inner segments other than UDP. ESP in BEET mode carries a transport
// segment whose IPv6 addresses are the two HITs, implied by the SA (RFC
// 7402 §1.1, App. B): an upper layer with a transport of its own (the
// optional userspace TCP of package streams/netstack) hands its segments
// to WriteSegment and gets the peer's from the handler it registered for
// the protocol. The SA that opened a segment names its sender: that HIT,
// never anything inside the segment, is what the handler is told.

// SegmentHandler receives an inbound segment of its protocol: src is the
// HIT the ESP SA authenticated, seg is valid only during the call. It runs
// on the read loop, so it must not block.
type SegmentHandler func(src wire.HIT, seg []byte)

// segments is the table of handlers by protocol, copied on write so that
// the read loop looks a protocol up without a lock.
type segments struct {
	mu sync.Mutex
	m  atomic.Pointer[map[uint8]segHandler]
	// pending says a flush is owed to protocol pendingFor at the end of
	// the read loop's batch (the read loop's own fields: deliverSegment
	// and endBatch run only there).
	pending    bool
	pendingFor uint8
	// reopens holds SetSegmentReopens' predicates, under mu: WriteSegment
	// asks only on its slow path, when there is no outbound SA.
	reopens map[uint8]func(seg []byte) bool
}

// segHandler is a protocol's handler, and its flush if it has one
// (HandleSegmentBatches).
type segHandler struct {
	h     SegmentHandler
	flush func()
}

func (t *segments) lookup(proto uint8) segHandler {
	if m := t.m.Load(); m != nil {
		return (*m)[proto]
	}
	return segHandler{}
}

// endBatch calls the flush owed for the batch the read loop has just
// delivered, if any.
func (t *segments) endBatch() {
	if !t.pending {
		return
	}
	t.pending = false
	if f := t.lookup(t.pendingFor).flush; f != nil {
		f()
	}
}

// ErrProtocol is returned for an inner protocol the stack does not carry
// as a segment: UDP (which goes through ListenInner's ports), ESP's
// "no next header", or a protocol another handler already has.
var ErrProtocol = errors.New("hip: protocol not available for segments")

// HandleSegments registers h for inbound ESP payloads of IP protocol
// proto (6 for TCP); a nil h removes the handler. Without a handler such
// payloads are dropped and counted (Stats.Drops.NotUDP).
func (s *Stack) HandleSegments(proto uint8, h SegmentHandler) error {
	return s.HandleSegmentBatches(proto, h, nil)
}

// HandleSegmentBatches is HandleSegments with a flush: flush is called on
// the read loop after the last segment of proto that one receive batch
// (one recvmmsg, GRO super-packets split) delivered to h, before the read
// loop waits for more. A handler may so hold the segments of a batch and
// hand them on together (netstack coalesces TCP segments with it); it
// must not hold any past its flush.
func (s *Stack) HandleSegmentBatches(proto uint8, h SegmentHandler, flush func()) error {
	if proto == esp.ProtoUDP || proto == esp.NextHeaderNone {
		return ErrProtocol
	}
	t := &s.segs
	t.mu.Lock()
	defer t.mu.Unlock()
	old := map[uint8]segHandler{}
	if m := t.m.Load(); m != nil {
		old = *m
	}
	if h != nil && old[proto].h != nil {
		return ErrProtocol
	}
	m := make(map[uint8]segHandler, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	if h == nil {
		delete(m, proto)
	} else {
		m[proto] = segHandler{h: h, flush: flush}
	}
	t.m.Store(&m)
	return nil
}

// WriteSegment seals seg, a transport segment of IP protocol proto whose
// inner addresses are this node's HIT and dst, in the ESP SA with dst and
// sends it; without an association it queues the segment and starts the
// base exchange, as a datagram write does. seg is not kept. With an
// association it allocates nothing.
func (s *Stack) WriteSegment(dst wire.HIT, proto uint8, seg []byte) error {
	if proto == esp.ProtoUDP || proto == esp.NextHeaderNone {
		return ErrProtocol
	}
	if len(seg) > MaxSegment {
		// It could not leave in one UDP datagram: refused here, before it
		// uses up a sequence number, not lost on the socket in silence.
		return fmt.Errorf("hip: segment of %d octets exceeds %d: %w", len(seg), MaxSegment, syscall.EMSGSIZE)
	}
	p, err := s.sendPeer(dst)
	if err != nil {
		return err
	}
	if o := p.out.Load(); o != nil {
		return s.sealSegment(p, o, proto, seg, len(seg))
	}
	if !s.segs.mayReopen(proto, seg) && s.ClosedByPeer(dst) {
		return fmt.Errorf("%w: %v", ErrPeerLeft, dst)
	}
	return s.enqueue(p, pendingSeg{b: append([]byte(nil), seg...), proto: proto})
}

// SetSegmentReopens says which segments of protocol proto may start a base
// exchange with a peer that ended the association with CLOSE
// (ClosedByPeer): those for which reopens returns true; nil, the default,
// lets every one. The others fail with ErrPeerLeft. A transport above
// passes what opens a connection (TCP's SYN), so that the rest of a
// connection to a peer that left (a retransmission, a keep-alive probe, an
// RST whose peer is gone) does not start a base exchange with a host that
// is gone, as InnerConn.SetAutoConnect(false) does for QUIC's packets.
func (s *Stack) SetSegmentReopens(proto uint8, reopens func(seg []byte) bool) {
	t := &s.segs
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.reopens == nil {
		t.reopens = map[uint8]func([]byte) bool{}
	}
	if reopens == nil {
		delete(t.reopens, proto)
		return
	}
	t.reopens[proto] = reopens
}

// mayReopen reports whether seg may start a base exchange with a peer that
// closed the association (SetSegmentReopens).
func (t *segments) mayReopen(proto uint8, seg []byte) bool {
	t.mu.Lock()
	f := t.reopens[proto]
	t.mu.Unlock()
	return f == nil || f(seg)
}

// mayReopenPending keeps, of what is queued for p, whose association
// the peer ended with CLOSE, only the segments that may start a new one
// (SetSegmentReopens), and reports whether any is left. WriteSegment
// checks the same before it queues, and the record says CLOSED before the
// SAs go (control.go, EventClosed); this is the same rule where the
// exchange would start, whatever queued the segment. Inner UDP datagrams
// are kept: InnerConn's auto-connect rule decided for them. Control
// goroutine only.
func (s *Stack) mayReopenPending(p *peer) bool {
	p.mu.Lock()
	q := p.pending
	p.pending = nil
	p.mu.Unlock()
	kept := q[:0]
	for _, seg := range q {
		if seg.proto == esp.ProtoUDP || s.segs.mayReopen(seg.proto, seg.b) {
			kept = append(kept, seg)
		}
	}
	if n := len(q) - len(kept); n > 0 {
		s.ctr.queueDiscarded.Add(uint64(n))
	}
	p.mu.Lock()
	p.pending = append(kept, p.pending...) // and what came meanwhile, after
	left := len(p.pending) > 0
	p.mu.Unlock()
	return left
}

// deliverSegment hands an opened segment of protocol nh to its handler;
// false if there is none.
func (s *Stack) deliverSegment(p *peer, nh uint8, seg []byte) bool {
	e := s.segs.lookup(nh)
	if e.h == nil {
		return false
	}
	p.pktsIn.Add(1)
	p.bytesIn.Add(uint64(len(seg)))
	e.h(p.hit, seg)
	if t := &s.segs; e.flush != nil {
		if t.pending && t.pendingFor != nh {
			t.endBatch() // another protocol's segments came first
		}
		t.pending, t.pendingFor = true, nh
	}
	s.ctr.delivered.Add(1)
	return true
}
