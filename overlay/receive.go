package overlay

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// The inbound path: the read loop demultiplexes each datagram (demux.go);
// control packets are copied to the control goroutine; ESP is opened here,
// on the read loop, and its inner UDP queued to the InnerConn of its port.

// readLoop is the one goroutine reading the socket. It ends when the socket
// is closed.
func (s *Stack) readLoop(r *reader) {
	defer close(s.readDone)
	fails := 0
	for {
		n, err := r.read()
		for i := 0; i < n; i++ {
			s.receive(r.datagram(i))
		}
		s.segs.endBatch() // segment.go: a transport may hold a batch's segments until here
		if err == nil {
			fails = 0
			continue
		}
		if errors.Is(err, net.ErrClosed) || s.closed.Load() {
			return
		}
		// Transient errors (ICMP-induced ECONNREFUSED and the like): go on,
		// without spinning if they persist.
		s.log.Debug("read failed", "err", err)
		if fails++; fails > 100 {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// receive takes one datagram from the socket. It never blocks and never
// keeps b.
func (s *Stack) receive(b []byte, from netip.AddrPort) {
	s.ctr.packetsIn.Add(1)
	s.ctr.bytesIn.Add(uint64(len(b)))
	switch Classify(b) {
	case KindESP:
		s.receiveESP(b, from)
	case KindControl:
		s.receiveControl(b, from)
	case KindSTUN:
		s.receiveSTUN(b, from) // stun.go
	default:
		s.drop(&s.ctr.short, "short", from, nil)
	}
}

// receiveESP is the ESP receive path: SPI → SA (lock-free table) → Open
// (anti-replay inside) into a pooled buffer → BEET inner UDP checked between
// the two HITs → the port's inbox. It allocates nothing.
func (s *Stack) receiveESP(b []byte, from netip.AddrPort) {
	spi, _ := esp.PeekSPI(b)
	in := s.spis.lookup(spi)
	if in == nil {
		if s.forwardESP(b, spi, from) {
			return
		}
		s.drop(&s.ctr.unknownSPI, "unknown spi", from, nil)
		return
	}
	bp := getBuf(len(b))
	pt, nh, err := in.sa.Open((*bp)[:0], b)
	if err != nil {
		putBuf(bp)
		switch {
		case errors.Is(err, esp.ErrReplay), errors.Is(err, esp.ErrTooOld):
			s.drop(&s.ctr.replay, "replay", from, err)
		case errors.Is(err, esp.ErrAuth):
			s.drop(&s.ctr.authFailure, "auth failure", from, err)
		default:
			s.drop(&s.ctr.malformed, "malformed esp", from, err)
		}
		return
	}
	s.ctr.espIn.Add(1)
	p := in.p
	if t := s.clock.Load(); p.lastSeen.Load() != t {
		p.lastSeen.Store(t) // the coarse clock: one write a second at most
	}
	if in.notify.Load() && in.notify.CompareAndSwap(true, false) {
		s.poke(p, pokeData) // once: R2-SENT → ESTABLISHED, or the peer finished a rekey
	}
	if p.located.Load() {
		s.pathIn(p, from, nh == esp.NextHeaderNone, len(b))
	} else if p.pathIdle.Load() && p.pathIdle.CompareAndSwap(true, false) {
		s.poke(p, pokePath) // first use of an association with no locator Set yet (locators.go)
	}
	if nh == esp.NextHeaderNone {
		putBuf(bp)
		s.ctr.keepalivesIn.Add(1) // a keepalive (path.go sendDummy)
		return
	}
	if nh != esp.ProtoUDP {
		if !s.deliverSegment(p, nh, pt) { // segment.go
			s.drop(&s.ctr.notUDP, "not udp", from, nil)
		}
		putBuf(bp)
		return
	}
	srcPort, dstPort, payload, err := esp.ParseUDP(pt, p.hit, s.hit)
	if err != nil {
		putBuf(bp)
		s.drop(&s.ctr.malformed, "malformed inner udp", from, err)
		return
	}
	p.pktsIn.Add(1)
	p.bytesIn.Add(uint64(len(payload)))
	c := s.inner(dstPort)
	if c == nil {
		putBuf(bp)
		s.drop(&s.ctr.noListener, "no listener", from, nil)
		return
	}
	off := cap(*bp) - cap(payload) // payload aliases *bp
	if !c.in.push(inItem{buf: bp, off: off, n: len(payload), from: p.hit, port: srcPort}) {
		putBuf(bp)
		s.drop(&s.ctr.inboxFull, "inbox full", from, nil)
		return
	}
	s.ctr.delivered.Add(1)
}

// receiveControl checks the framing (zero marker, zero checksum, a well
// formed header and TLV chain) without allocating, then hands a copy to
// the control goroutine, or drops it if that goroutine is behind.
func (s *Stack) receiveControl(b []byte, from netip.AddrPort) {
	pkt, err := wire.ParseUDPControl(b)
	if err != nil {
		s.drop(&s.ctr.malformed, "malformed control", from, err)
		return
	}
	s.ctr.controlIn.Add(1)
	if !s.admitI1(pkt, from) {
		s.drop(&s.ctr.rateLimited, "r1 rate limit", from, nil)
		return
	}
	if pkt.Type() == wire.NOTIFY && !s.ntflim.allow(pkt.SenderHIT(), time.Now()) {
		s.drop(&s.ctr.rateLimited, "notify rate limit", from, nil)
		return
	}
	// Packets that claim a peer we know (other than I1s) wait in a queue
	// of their own, which the control goroutine serves first: a flood of
	// I2s and other packets from unknown HITs then cannot crowd out the
	// UPDATEs, CLOSEs, R1s and R2s of our associations and exchanges. (A
	// flood that spoofs a known HIT only shares that queue; each packet
	// still has to pass the state machine's checks.)
	ch := s.ctrlIn
	if pkt.Type() != wire.I1 && s.lookupPeer(pkt.SenderHIT()) != nil {
		ch = s.ctrlPrio
	}
	select {
	case ch <- ctrlPacket{b: append([]byte(nil), pkt...), from: from}:
	default:
		s.drop(&s.ctr.controlBacklog, "control backlog", from, nil)
	}
}

// admitI1 applies the R1 rate limits (ratelimit.go) to an I1 we would
// answer, here on the read loop, so that an I1 flood is shed before it is
// copied and queued for the control goroutine, where it would crowd out
// the packets of honest exchanges. A relayed I1 (RELAY_FROM) or one a
// rendezvous server forwarded (FROM, RVS_HMAC) is limited on the control
// goroutine instead, by the address the relay or server saw, once its
// RELAY_HMAC or RVS_HMAC is checked: by the source it arrived from, the
// server's, one busy Initiator would shut out all the others.
func (s *Stack) admitI1(pkt wire.Packet, from netip.AddrPort) bool {
	if pkt.Type() != wire.I1 {
		return true
	}
	if r := pkt.ReceiverHIT(); r != s.hit && !r.IsZero() {
		return true // for a host registered with our relay (package relay)
	}
	if _, relayed := pkt.Param(wire.ParamRelayFrom); relayed {
		return true
	}
	if handshake.HasRendezvous(pkt) {
		// Through a rendezvous server (RFC 8004): its source is the
		// server, which forwards the I1s of every Initiator. Limited on
		// the control goroutine instead, by the FROM address, once
		// RVS_HMAC is checked (inbound.go).
		return true
	}
	return s.i1lim.allow(from, time.Now())
}

// drop counts a dropped datagram and logs it at Debug.
func (s *Stack) drop(c *atomic.Uint64, reason string, from netip.AddrPort, err error) {
	c.Add(1)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("drop", "reason", reason, "from", from, "err", err)
	}
}

// pathIn counts authenticated ESP from p for its locator Set
// (locators.go): from the current locator (the relay's address while the
// relay carries the association), in the counts the control goroutine
// reads; from elsewhere, handed over: a NAT rebinding candidate, or the
// ICE pair coming back. The first packet after a quiet spell wakes the control
// goroutine. Steady state: two atomic loads and an add. n is the
// packet's length: what comes from elsewhere pays for the probe that
// checks that address (credit, RFC 8046 §5.6): the packets were
// authenticated and fresh (the ICV and the replay window passed), so
// answering that many octets there amplifies nothing. Without it, a
// peer that sends little (a sensor behind a NAT that rebinds) has too
// little credit on the old path for the probe, and is never followed.
func (s *Stack) pathIn(p *peer, from netip.AddrPort, keepalive bool, n int) {
	from = unmapPort(from)
	if a := p.addr.Load(); a != nil && *a == from {
		if keepalive {
			p.inKA.Add(1)
		} else {
			p.inCur.Add(1)
		}
		if p.pathIdle.Load() && p.pathIdle.CompareAndSwap(true, false) {
			s.poke(p, pokePath)
		}
		return
	}
	f := p.foreign.Load()
	if f != nil && f.addr == from {
		f.n.Add(uint64(n))
		if !keepalive && !f.data.Load() {
			f.data.Store(true)
		}
		return
	}
	nf := &foreignSource{addr: from} // a new source: rare
	nf.n.Store(uint64(n))
	nf.data.Store(!keepalive)
	p.foreign.Store(nf) // taken by the control goroutine at most every pathSyncEvery
	if f == nil {
		s.poke(p, pokePath)
	}
}

// unmapPort returns a with an IPv4-mapped address unmapped, as locators
// are kept.
func unmapPort(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}
