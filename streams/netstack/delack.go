package netstack

import (
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"hipnet.dev/handshake/wire"
)

// Delayed ACKs (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2, RFC 5681 §4.2).
//
// gVisor's TCP acknowledges every batch of segments it processes at once
// (tcp/connect.go, handleSegmentsLocked): it has no delayed-ACK timer. In
// a request and its answer that doubles the packets: the receiver of a
// one-octet request sends a bare ACK, and a moment later the answer,
// which acknowledges the same octet again. Each ESP packet costs a seal,
// a system call at each end, an open and a pass through the peer's TCP;
// a one-octet echo over this transport sent two packets each way to
// QUIC's one, and took half as long again in CPU.
//
// The ackDelayer does at the interface what a kernel's delayed ACK does
// inside TCP, for the case RFC 5681 §4.2 permits: it holds back the bare
// ACK of a single small segment (the request) for at most Config.AckDelay,
// and drops it if another segment of the connection that acknowledges as
// much leaves first (the answer, or the next ACK: one ACK then covers two
// segments, as §4.2's "at least every second full-sized segment"
// allows). Otherwise it sends it when the delay ends. Only an ACK that
// acknowledges exactly the end of a small segment just received (or a
// SYN-ACK's SYN, or the peer's FIN before ours) is held, so that:
//   - bulk transfer is untouched: a connection that received a
//     full-sized segment in the last bulkWindow has no ACK held, not even
//     that of the short segment that ends each Write (receivedBulk);
//   - the last ACK of a connection, of the peer's FIN after ours, which
//     nothing would carry, leaves at once;
//   - a duplicate ACK (RFC 5681 §4.2: out-of-order data is acknowledged
//     at once), a window update and a keep-alive's answer acknowledge
//     something else, and leave at once, as does any ACK carrying SACK
//     blocks;
//   - the ACK that completes a Dial's handshake waits for the first data,
//     which carries it, as Linux's does when a write is pending.
//
// Held ACKs are delayed, never reordered before the segment that
// supersedes them: a segment that does not supersede one is sent after it
// on the same goroutine. The one race left is the timer sending a held
// ACK while the connection sends its answer: the peer may then see the
// ACK after the answer, a harmless duplicate.
type ackDelayer struct {
	delay time.Duration
	send  func(dst wire.HIT, seg []byte) // endpoint.sendSegment

	// n is live, so that writePacket skips the delayer with one atomic
	// load when no connection has anything to hold.
	n atomic.Int32

	mu sync.Mutex
	// flows keeps a connection's entry once made: its values change in
	// place, because a map insert after a delete allocates (an entry
	// that is not live costs a lookup, never a packet). Entries are
	// deleted once stale (expire, room).
	flows     map[flowKey]ackFlow
	live      int // entries with pending data or a held ACK
	holding   int // entries with a held ACK: expire has work
	timer     *time.Timer
	armed     bool
	closed    bool
	lastPurge time.Time

	held, saved atomic.Uint64 // Stats.AcksDelayed, AcksSaved
}

// flowKey names a connection from this end: the peer's HIT and the two
// ports.
type flowKey struct {
	peer          wire.HIT
	local, remote uint16
}

// ackFlow is what the delayer knows of one connection: the acknowledgment
// number that would acknowledge exactly the small segments received since
// its last ACK left (expect, when pending > 0), and the bare ACK it holds.
type ackFlow struct {
	expect  uint32
	pending int // octets (and SYN, FIN) received since the last ACK left
	at      time.Time
	bulkAt  time.Time // the last full-sized segment received (receivedBulk)
	finSent bool      // we sent our FIN: the ACK of the peer's is sent at once

	held    bool
	heldAck uint32
	due     time.Time
	n       uint8
	seg     [tcpMinHeaderLen + tcpMaxOptions]byte
}

const (
	// DefaultAckDelay is Config.AckDelay's default: long enough for a
	// server to read a request and write its answer, short against any
	// round trip beyond the loopback and far under RFC 9293's 0.5 s.
	DefaultAckDelay = time.Millisecond
	// smallSegment is the longest payload whose ACK may be held. It is
	// under a full-sized segment on any path (an IPv6 path of 1280 octets
	// leaves some 1,150 after IPv6, UDP, ESP, and TCP with options), so
	// that the segments of a bulk transfer are never delayed, whatever
	// their path: a sender short of window would wait for the delay.
	smallSegment = 1024
	// maxAckFlows bounds the delayer's table (176 octets an entry with
	// its key, some 180 KiB when full, against a peer that sends small
	// segments on many ports); a connection beyond it has its ACKs sent
	// at once.
	maxAckFlows = 1024
	// staleFlow is when an entry whose ACK never left (a connection reset
	// in between) may be purged.
	staleFlow = time.Second
	// bulkWindow is how long after a full-sized segment a connection's
	// ACKs are not held (receivedBulk).
	bulkWindow = 10 * time.Millisecond
	// tooMuch marks an entry whose next ACK must not be held.
	tooMuch = 2*smallSegment + 1
)

func newAckDelayer(delay time.Duration, send func(wire.HIT, []byte)) *ackDelayer {
	return &ackDelayer{delay: delay, send: send, flows: make(map[flowKey]ackFlow)}
}

// received notes seg, a segment the Link delivered from src, before
// netstack sees it.
func (d *ackDelayer) received(src wire.HIT, seg []byte) {
	if d.delay <= 0 || len(seg) < tcpMinHeaderLen {
		return
	}
	t := header.TCP(seg)
	off := int(t.DataOffset())
	flags := t.Flags()
	if off < tcpMinHeaderLen || off > len(seg) ||
		flags&header.TCPFlagRst != 0 || (flags&header.TCPFlagSyn != 0 && flags&header.TCPFlagAck == 0) {
		return // a SYN is answered by a SYN-ACK, not a bare ACK
	}
	bulk := len(seg)-off > smallSegment
	span := len(seg) - off
	if flags&header.TCPFlagSyn != 0 {
		span++
	}
	if flags&header.TCPFlagFin != 0 {
		span++
	}
	if span == 0 {
		return
	}
	k, now := flowKey{src, t.DestinationPort(), t.SourcePort()}, time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.entry(k, now)
	switch {
	case !ok:
	case bulk:
		f.receivedBulk(now)
		d.flows[k] = f
	case now.Sub(f.bulkAt) < bulkWindow:
		// In a bulk transfer: its ACK covers full-sized segments too.
	case flags&header.TCPFlagFin != 0 && f.finSent:
		// Our FIN went first: this ACK is the connection's last, and
		// nothing of ours will follow to carry it.
		if f.live() && !f.held {
			f.pending = tooMuch
			d.flows[k] = f
		}
	default:
		if !f.live() {
			d.setLive(+1)
		}
		f.expect = t.SequenceNumber() + uint32(span)
		f.pending += span
		f.at = now
		d.flows[k] = f
	}
}

// receivedBulk notes a full-sized segment: for bulkWindow the flow's ACKs
// are not held. Its short segments (the end of each Write) come among
// full-sized ones, and the ACK that acknowledges one of them also
// acknowledges those before it that arrived since the last ACK, perhaps
// in an earlier receive batch that netstack has not yet processed: held,
// it could stall a sender short of window (RFC 5681 §4.2: an ACK at least
// every second full-sized segment).
func (f *ackFlow) receivedBulk(now time.Time) {
	f.bulkAt, f.at = now, now
	if f.live() && !f.held {
		f.pending = tooMuch // this ACK covers the full-sized segment
	}
}

// live reports whether the entry has something to acknowledge.
func (f *ackFlow) live() bool { return f.pending > 0 || f.held }

// setLive counts an entry becoming live (+1) or not (-1); under d.mu.
func (d *ackDelayer) setLive(delta int) {
	d.live += delta
	d.n.Store(int32(d.live))
}

// entry returns k's entry, or a new one if the table has room for it;
// false if it has none. d.mu is held.
func (d *ackDelayer) entry(k flowKey, now time.Time) (ackFlow, bool) {
	f, ok := d.flows[k]
	return f, ok || d.room(now)
}

// room reports whether the table takes one more flow, purging stale
// entries (at most every staleFlow/10) when it is full.
func (d *ackDelayer) room(now time.Time) bool {
	if d.closed {
		return false
	}
	if len(d.flows) < maxAckFlows {
		return true
	}
	if now.Sub(d.lastPurge) < staleFlow/10 {
		return false
	}
	d.lastPurge = now
	for k, f := range d.flows {
		d.purgeStale(k, &f, now)
	}
	return len(d.flows) < maxAckFlows
}

// purgeStale deletes k's entry f if it was untouched for staleFlow and
// holds nothing: a connection that ended, or whose ACK never left (reset
// meanwhile). d.mu is held.
func (d *ackDelayer) purgeStale(k flowKey, f *ackFlow, now time.Time) {
	if !f.held && now.Sub(f.at) > staleFlow {
		if f.live() {
			d.setLive(-1)
		}
		delete(d.flows, k)
	}
}

// wants reports whether outbound must see seg: when some flow has
// something to acknowledge, and for every SYN and FIN, which start and
// end what the delayer knows of a connection. writePacket's fast path.
func (d *ackDelayer) wants(seg []byte) bool {
	return d.n.Load() != 0 || len(seg) > 13 && seg[13]&(tcpFlagSYN|tcpFlagFIN) != 0
}

// active reports whether any flow has something to acknowledge.
func (d *ackDelayer) active() bool { return d.n.Load() != 0 }

// outbound decides about seg, a segment netstack sends to dst. It returns
// hold true if it holds seg (a bare ACK worth delaying). Otherwise seg is
// to be sent, after prev if that is not nil: a held ACK that seg does not
// supersede, which the caller sends and then returns with putHeld.
func (d *ackDelayer) outbound(dst wire.HIT, seg []byte) (hold bool, prev *heldSegment) {
	if len(seg) < tcpMinHeaderLen {
		return false, nil
	}
	t := header.TCP(seg)
	k := flowKey{dst, t.SourcePort(), t.DestinationPort()}
	flags, ack := t.Flags(), t.AckNumber()
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.flows[k]
	switch {
	case flags&header.TCPFlagSyn != 0:
		if ok { // a new connection with the ports of an old one
			d.drop(k, &f)
			d.flows[k] = ackFlow{at: f.at}
		}
		return false, nil
	case !ok:
		if now := time.Now(); flags&header.TCPFlagFin != 0 && d.delay > 0 && d.room(now) {
			d.flows[k] = ackFlow{finSent: true, at: now}
		}
		return false, nil
	case flags&header.TCPFlagFin != 0:
		f.finSent = true
		d.flows[k] = f
	}
	hasAck := flags&header.TCPFlagAck != 0
	bare := flags == header.TCPFlagAck && len(seg) == int(t.DataOffset())
	if f.held {
		if hasAck && !seqBefore(ack, f.heldAck) && !(bare && ack == f.heldAck) {
			d.saved.Add(1) // seg acknowledges as much: the held ACK is not needed
		} else {
			// seg does not carry the held ACK's news (an RST without
			// ACK), or is a second bare ACK of the same number (a window
			// update, or a duplicate ACK the peer must count): the held
			// one goes first.
			prev = heldPool.Get().(*heldSegment)
			*prev = heldSegment{dst: dst, n: f.n, seg: f.seg}
		}
		d.drop(k, &f)
		return false, prev
	}
	if flags&header.TCPFlagRst != 0 {
		// Reset (our answer to data for no connection, or an abort): no
		// ACK of it is owed any more, and an RST that carries none would
		// otherwise leave the entry live, every packet on the slow path,
		// until it went stale.
		d.drop(k, &f)
		delete(d.flows, k)
		return false, nil
	}
	// RFC 5681 §4.2: an ACK for at least every second full-sized segment
	// (here: at most two small ones are acknowledged late).
	if f.pending <= 2*smallSegment && bare && ack == f.expect && int(t.DataOffset()) <= len(f.seg) && !hasSACK(seg) {
		f.held, f.heldAck, f.n = true, ack, uint8(copy(f.seg[:], seg)) // live already: pending > 0
		f.due = time.Now().Add(d.delay)
		d.flows[k] = f
		d.holding++
		d.held.Add(1)
		d.arm()
		return true, nil
	}
	if hasAck && !seqBefore(ack, f.expect) {
		d.drop(k, &f) // acknowledged another way: on the answer, or beyond
	}
	return false, nil
}

// heldSegment is a held ACK on its way out.
type heldSegment struct {
	dst wire.HIT
	n   uint8
	seg [tcpMinHeaderLen + tcpMaxOptions]byte
}

// heldPool keeps outbound's heldSegments: the Link's interface call makes
// a segment escape, and the path of every packet allocates nothing.
var heldPool = sync.Pool{New: func() any { return new(heldSegment) }}

func putHeld(h *heldSegment) { heldPool.Put(h) }

// drop forgets what the entry f of k had to acknowledge; under d.mu.
func (d *ackDelayer) drop(k flowKey, f *ackFlow) {
	if f.live() {
		d.setLive(-1)
	}
	if f.held {
		d.holding--
	}
	d.flows[k] = ackFlow{at: f.at, bulkAt: f.bulkAt, finSent: f.finSent}
}

// arm starts the timer if it is not running; under d.mu.
func (d *ackDelayer) arm() {
	if d.armed || d.closed {
		return
	}
	d.armed = true
	if d.timer == nil {
		d.timer = time.AfterFunc(d.delay, d.expire)
		return
	}
	d.timer.Reset(d.delay)
}

// expire runs on the timer: it sends every held ACK whose delay is over,
// and rearms for the next. Most fire after the answers carried every held
// ACK; those only purge stale entries, at most every staleFlow/10, and
// otherwise do not walk the table.
func (d *ackDelayer) expire() {
	now := time.Now()
	var due []heldSegment
	var next time.Duration
	d.mu.Lock()
	d.armed = false
	purge := now.Sub(d.lastPurge) >= staleFlow/10
	if d.holding > 0 || purge {
		if purge {
			d.lastPurge = now
		}
		for k, f := range d.flows {
			switch {
			case f.held && !now.Before(f.due):
				due = append(due, heldSegment{dst: k.peer, n: f.n, seg: f.seg})
				d.drop(k, &f)
			case f.held:
				if w := f.due.Sub(now); next == 0 || w < next {
					next = w
				}
			case purge:
				d.purgeStale(k, &f, now)
			}
		}
	}
	if next > 0 && !d.closed {
		d.armed = true
		d.timer.Reset(next)
	}
	d.mu.Unlock()
	for i := range due {
		d.send(due[i].dst, due[i].seg[:due[i].n])
	}
}

// close drops what is held (the connections are being reset) and stops
// the timer.
func (d *ackDelayer) close() {
	d.mu.Lock()
	d.closed = true
	clear(d.flows)
	d.live, d.holding = 0, 0
	d.n.Store(0)
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
}

// tcpFlagFIN is the FIN flag in a TCP header's flags octet (RFC 9293 §3.1).
const tcpFlagFIN = 0x01

// seqBefore reports a < b in sequence space (RFC 9293 §3.4).
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

// hasSACK reports whether the TCP segment seg carries a SACK option
// (RFC 2018 §3).
func hasSACK(seg []byte) bool {
	_, _, ok := tcpOption(seg, tcpOptSACK)
	return ok
}
