package overlay

import (
	"sync"

	"hipnet.dev/handshake/wire"
)

// Buffer reuse on the data path (wireguard-go's pools.go): two size classes,
// so that the common datagram (a QUIC packet, an MTU-sized write) holds
// 2 KiB while it waits in an inbox, and only a large one holds 64 KiB.
const smallBufLen = 2048

var (
	smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBufLen); return &b }}
	largeBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}
)

// getBuf returns a pooled buffer with capacity for n octets (n <=
// maxDatagram).
func getBuf(n int) *[]byte {
	if n <= smallBufLen {
		return smallBufs.Get().(*[]byte)
	}
	return largeBufs.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	switch cap(*b) {
	case smallBufLen:
		smallBufs.Put(b)
	case maxDatagram:
		largeBufs.Put(b)
	}
}

// inItem is one received inner datagram: (*buf)[off:off+n] from from:port.
// The buffer came from the pool and goes back when the reader copied it.
type inItem struct {
	buf  *[]byte
	off  int
	n    int
	from wire.HIT
	port uint16
}

// inbox is an InnerConn's bounded receive queue: a ring of preallocated
// entries that point to pooled buffers. The read loop pushes without
// blocking (a full inbox drops, counted); readers pop. Neither allocates.
type inbox struct {
	mu     sync.Mutex
	q      [inboxLen]inItem
	head   int
	n      int
	closed bool
	ready  chan struct{} // capacity 1: "something was pushed"
}

func (b *inbox) init() { b.ready = make(chan struct{}, 1) }

// push queues it and reports whether there was room.
func (b *inbox) push(it inItem) bool {
	b.mu.Lock()
	if b.closed || b.n == len(b.q) {
		b.mu.Unlock()
		return false
	}
	b.q[(b.head+b.n)%len(b.q)] = it
	b.n++
	b.mu.Unlock()
	b.signal()
	return true
}

func (b *inbox) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// pop takes the oldest item.
func (b *inbox) pop() (inItem, bool) {
	b.mu.Lock()
	if b.n == 0 {
		b.mu.Unlock()
		return inItem{}, false
	}
	it := b.q[b.head]
	b.q[b.head] = inItem{}
	b.head = (b.head + 1) % len(b.q)
	b.n--
	more := b.n > 0
	b.mu.Unlock()
	if more {
		b.signal() // another reader may be waiting
	}
	return it, true
}

// close refuses further pushes and returns the queued buffers to the pool.
func (b *inbox) close() {
	b.mu.Lock()
	b.closed = true
	for b.n > 0 {
		putBuf(b.q[b.head].buf)
		b.q[b.head] = inItem{}
		b.head = (b.head + 1) % len(b.q)
		b.n--
	}
	b.mu.Unlock()
}
