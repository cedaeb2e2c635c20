package overlay

import (
	"net/netip"
	"sync"
	"time"
)

// The transmit queue (DESIGN.md "ESP I/O is batched"). Writers seal on
// their own goroutine, so sealing runs on as many cores as there are
// writers; the sealed packets then go out one of two ways:
//
//   - inline: a packet that comes alone (no other send for txBurstGap, the
//     queue empty, no flush running, and no bulk transfer under way) is
//     written by its writer at once. A request, a reply, a keepalive: no
//     hand-off, no added latency.
//   - queued: a packet that comes in a burst joins the queue, and the
//     sender goroutine writes the queue in batches (sendmmsg, and UDP GSO
//     for runs to one destination: socket.go). The writer returns as soon
//     as its packet is queued and seals the next one meanwhile, on another
//     core.
//
// A bulk transfer is a writer that comes in bursts: a burst fills the
// queue, then the writer waits (for a window, a pacer, the peer's ACKs)
// and the next burst starts "alone". Written inline, that first packet
// would cost the writer a system call of its own, and the burst's other
// packets a second one, while the writer waits on the first instead of
// sealing. So once the sender has taken a batch of txBulkBatch packets,
// every packet goes through the queue for txBulkHold: the bursts of a
// transfer leave in one batch each, and the writer never makes the
// system call. A lone packet in that window waits for the sender to
// wake: the cost, to traffic beside a transfer, of a transfer's speed.
//
// The queue is bounded (txQueueMax): a writer that finds it full waits, as
// it would on a full socket buffer, so a fast writer cannot take all the
// memory. Packets leave in the order they were queued. A send error is
// counted (Stats.Drops.SendErrors); the writer of a queued packet has
// already returned, as a datagram socket's would have returned before the
// network lost the packet.

// txQueueMax bounds the queue: some 700 KiB of sealed 1400-octet packets,
// enough to keep GSO batches full while a writer seals ahead.
const txQueueMax = 512

// txBurstGap is how close to the previous send a packet must come to
// count as part of a burst and go through the queue.
const txBurstGap = 20 * time.Microsecond

// txBulkBatch and txBulkHold define a bulk transfer (above): a batch of
// txBulkBatch packets or more queues every packet for txBulkHold after
// it, longer than a loopback or LAN round trip, so that the bursts of a
// transfer paced by the peer's ACKs stay in it.
const (
	txBulkBatch = 8
	txBulkHold  = time.Millisecond
)

// txPacket is a sealed packet in the queue: (*buf)[:n] to to.
type txPacket struct {
	buf *[]byte
	n   int
	to  netip.AddrPort
}

type txQueue struct {
	mu      sync.Mutex
	pkts    []txPacket // queued, oldest first
	spare   []txPacket // the sender's last batch, reused
	sending bool       // a writer or the sender goroutine is writing
	closed  bool
	last    int64         // unix ns of the last send request
	bulk    int64         // unix ns until which no packet is sent inline
	inline  uint64        // packets their writer wrote (Stats.IO.SentInline)
	queued  uint64        // packets the sender wrote (Stats.IO.SentQueued)
	batches uint64        // the sender's batches (Stats.IO.Batches)
	room    sync.Cond     // signalled when the sender took the queue
	wake    chan struct{} // capacity 1: the sender has work
}

func (q *txQueue) init() {
	q.room.L = &q.mu
	q.wake = make(chan struct{}, 1)
	// pkts and spare grow by append as bursts need them (at most
	// txQueueMax each, then reused): a node that never queues much does
	// not hold 2 × 512 entries from its start.
}

// transmit sends (*buf)[:n] to to, inline or through the queue, and gives
// buf back to the pool once it is sent. It returns the error of an inline
// write, ErrClosed after Close, and nil for a queued packet.
func (s *Stack) transmit(buf *[]byte, n int, to netip.AddrPort) error {
	q := &s.tx
	now := time.Now().UnixNano()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		putBuf(buf)
		return ErrClosed
	}
	if q.writeInline(now) {
		q.mu.Unlock()
		err := s.sock.writeTo((*buf)[:n], to)
		putBuf(buf)
		q.mu.Lock()
		q.handOff()
		q.mu.Unlock()
		return err
	}
	for len(q.pkts) >= txQueueMax && !q.closed {
		q.room.Wait()
	}
	if q.closed {
		q.mu.Unlock()
		putBuf(buf)
		return ErrClosed
	}
	q.pkts = append(q.pkts, txPacket{buf: buf, n: n, to: to})
	if !q.sending {
		q.sending = true
		q.kick()
	}
	q.mu.Unlock()
	return nil
}

// writeInline says whether a packet sent at now (unix ns) is written by
// its writer at once, and if so marks the queue sending: it comes alone,
// nothing is queued or being written, and no bulk transfer is under way.
// q.mu is held.
func (q *txQueue) writeInline(now int64) bool {
	alone := now-q.last > int64(txBurstGap) && now >= q.bulk
	q.last = now
	if !alone || q.sending || len(q.pkts) > 0 {
		return false
	}
	q.sending = true
	q.inline++
	return true
}

// take hands the queued packets to the sender, and marks a bulk transfer
// when they make a burst. q.mu is held.
func (q *txQueue) take() []txPacket {
	batch := q.pkts
	q.pkts, q.spare = q.spare[:0], nil
	q.queued += uint64(len(batch))
	q.batches++
	if len(batch) >= txBulkBatch {
		// The time of the burst's last packet is close enough to now
		// (no clock read here).
		q.bulk = q.last + int64(txBulkHold)
	}
	q.room.Broadcast()
	return batch
}

// handOff ends an inline write: packets queued meanwhile go to the sender
// goroutine. q.mu is held.
func (q *txQueue) handOff() {
	if len(q.pkts) > 0 {
		q.kick() // sending stays true: the sender goroutine has it now
		return
	}
	q.sending = false
}

func (q *txQueue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// sendLoop is the sender goroutine: it writes the queue in batches until
// the stack closes, then frees what is left.
func (s *Stack) sendLoop() {
	defer close(s.sendDone)
	q := &s.tx
	w := s.sock.newWriter(txQueueMax)
	for {
		select {
		case <-q.wake:
		case <-s.closing:
			q.drain()
			return
		}
		for s.sendBatch(q, w) {
		}
	}
}

// sendBatch takes the queue and writes it; false when it was empty (the
// sender then waits for the next kick).
func (s *Stack) sendBatch(q *txQueue, w *writer) bool {
	q.mu.Lock()
	if len(q.pkts) == 0 {
		q.sending = false
		q.mu.Unlock()
		return false
	}
	batch := q.take()
	q.mu.Unlock()

	sent, err := w.write(batch)
	if err != nil {
		s.ctr.sendErrors.Add(uint64(len(batch) - sent))
		s.log.Debug("send failed", "packets", len(batch)-sent, "err", err)
	}
	for i := range batch {
		putBuf(batch[i].buf)
		batch[i] = txPacket{}
	}
	q.mu.Lock()
	q.spare = batch[:0]
	q.mu.Unlock()
	return true
}

// drain refuses further packets and frees the queued ones (Close).
func (q *txQueue) drain() {
	q.mu.Lock()
	q.closed = true
	for i := range q.pkts {
		putBuf(q.pkts[i].buf)
	}
	q.pkts = q.pkts[:0]
	q.room.Broadcast()
	q.mu.Unlock()
}
