package udpbatch

import (
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// groMaxSegments is the kernel's UDP_GRO_CNT_MAX: the most datagrams one
// GRO super-packet holds, which sizes the datagram table up front.
const groMaxSegments = 64

// Reader receives batches from its Conn into buffers it owns; one
// goroutine uses it at a time.
type Reader struct {
	c       *Conn
	bufSize int
	bufs    []byte // active buffers of bufSize octets
	// active is how many of msgs a system call fills: 1 at first, all of
	// them once datagrams have been waiting for growStreak Reads in a row
	// (grow). A socket that never sees a burst (an idle node, a device, a
	// handshake) holds one 64 KiB buffer instead of len(msgs), and a
	// node's start allocates and clears that much less (8 × 64 KiB in
	// the overlay's case).
	active int
	waited bool   // this Read found nothing at first and waited
	streak int    // Reads in a row that found datagrams waiting
	ctrl   []byte // len(msgs) control buffers of ctrlSize octets
	msgs   []mmsghdr
	iovs   []unix.Iovec
	addrs  []unix.RawSockaddrInet6
	from   []netip.AddrPort // per message
	dgrams []datagram       // what the last Read returned
	zones  zoneName

	// The system call's results, passed through fields from recvFn,
	// which is created once so that no call allocates.
	recvFn func(fd uintptr) bool
	took   int
	errno  syscall.Errno

	truncated, superPackets uint64 // for the tests
}

// datagram is one datagram of the last Read: bufs[off:off+n] from the
// peer of message msg.
type datagram struct {
	off, n, msg int32
}

// NewReader returns a Reader that takes up to maxBatch messages per system
// call (cut to [1, MaxBatch]; 1 without Caps().Batch), each into a buffer
// of BufferSize octets: 64 KiB × maxBatch in all.
func (c *Conn) NewReader(maxBatch int) *Reader {
	return c.newReader(maxBatch, BufferSize)
}

// newReader takes the buffer size too, so that the tests can truncate.
func (c *Conn) newReader(maxBatch, bufSize int) *Reader {
	k := clampBatch(maxBatch)
	if !c.batch.Load() {
		k = 1
	}
	segs := 1
	if c.gro {
		segs = groMaxSegments
	}
	r := &Reader{
		c:       c,
		bufSize: bufSize,
		bufs:    make([]byte, bufSize),
		active:  1,
		ctrl:    make([]byte, k*ctrlSize),
		msgs:    make([]mmsghdr, k),
		iovs:    make([]unix.Iovec, k),
		addrs:   make([]unix.RawSockaddrInet6, k),
		from:    make([]netip.AddrPort, k),
		dgrams:  make([]datagram, 0, k*segs),
	}
	for i := range r.msgs {
		h := &r.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.addrs[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		if c.gro {
			h.Control = &r.ctrl[i*ctrlSize]
		}
	}
	r.point()
	r.recvFn = r.recv
	return r
}

// growStreak is how many Reads in a row must find datagrams already
// waiting (a backlog: they came faster than one at a time is read) before
// the Reader takes a buffer for every message. One datagram a round trip,
// a handshake's or a keepalive's, never builds a streak.
const growStreak = 4

// point aims the active messages' iovecs at their buffers.
func (r *Reader) point() {
	for i := range r.active {
		r.iovs[i].Base = &r.bufs[i*r.bufSize]
		r.iovs[i].SetLen(r.bufSize)
	}
}

// grow gives every message a buffer, once datagrams keep arriving faster
// than one Read takes them (growStreak). It runs before a Read's
// system call, when the datagrams of the last Read are no longer valid;
// it allocates once in the Reader's life.
func (r *Reader) grow() {
	r.active = len(r.msgs)
	r.bufs = make([]byte, r.active*r.bufSize)
	r.point()
}

// Read blocks until datagrams arrive (or the read deadline passes) and
// returns how many; Datagram(i) gives each. It returns at least one
// datagram or an error, which satisfies errors.Is(err, net.ErrClosed)
// once the socket is closed. Truncated datagrams are dropped.
func (r *Reader) Read() (int, error) {
	if r.c.err != nil {
		return 0, r.c.err
	}
	for {
		if r.streak >= growStreak && r.active < len(r.msgs) {
			r.grow()
		}
		r.reset()
		r.waited = false
		if err := r.c.rc.Read(r.recvFn); err != nil {
			return 0, err
		}
		if r.errno != 0 {
			name := "recvmmsg"
			if !r.c.batch.Load() {
				name = "recvmsg"
			}
			return 0, os.NewSyscallError(name, r.errno)
		}
		if n := r.split(); n > 0 {
			return n, nil
		}
	}
}

// Datagram returns datagram i < n of the last Read and its sender, with
// an IPv4-mapped address unmapped. The bytes are the Reader's: valid until
// the next Read, and capped so that appending to them copies.
func (r *Reader) Datagram(i int) ([]byte, netip.AddrPort) {
	d := r.dgrams[i]
	end := int(d.off + d.n)
	return r.bufs[d.off:end:end], r.from[d.msg]
}

// reset restores what the kernel wrote back into the headers.
func (r *Reader) reset() {
	ctrl := 0
	if r.c.gro {
		ctrl = ctrlSize
	}
	for i := range r.active {
		h := &r.msgs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.SetControllen(ctrl)
		h.Flags = 0
	}
}

// recv is the RawConn callback: one system call into r.msgs. It returns
// false to wait until the socket is readable.
func (r *Reader) recv(fd uintptr) bool {
	for {
		batch := r.c.batch.Load()
		n, e := recvmsgs(fd, r.msgs[:r.active], batch)
		switch {
		case e == unix.EAGAIN:
			r.waited = true
			return false
		case e == unix.EINTR:
			continue
		case e == unix.ENOSYS && batch:
			r.c.batch.Store(false) // filtered out after the probe
			continue
		}
		r.took, r.errno = n, e
		return true
	}
}

// split turns the messages of the last system call into datagrams: each
// GRO super-packet into its segments, a truncated message into none.
func (r *Reader) split() int {
	r.dgrams = r.dgrams[:0]
	if !r.waited && r.took == r.active {
		r.streak++ // waiting already, and as many as we could take
	} else {
		r.streak = 0
	}
	for i := range r.msgs[:r.took] {
		h := &r.msgs[i].hdr
		if h.Flags&unix.MSG_TRUNC != 0 {
			r.truncated++
			continue
		}
		seg := 0
		if r.c.gro {
			var found bool
			seg, found = parseGRO(r.ctrl[i*ctrlSize : i*ctrlSize+min(int(h.Controllen), ctrlSize)])
			if !found && h.Flags&unix.MSG_CTRUNC != 0 {
				r.truncated++ // a super-packet whose segment size is lost
				continue
			}
		}
		r.from[i] = parseSockaddr(&r.addrs[i], h.Namelen, &r.zones)
		r.add(i, int(r.msgs[i].n), seg)
	}
	return len(r.dgrams)
}

// add records message i's n octets as datagrams of seg octets (the last
// shorter), or as one datagram when seg is 0.
func (r *Reader) add(i, n, seg int) {
	off := i * r.bufSize
	if seg <= 0 || seg >= n {
		r.dgrams = append(r.dgrams, datagram{int32(off), int32(n), int32(i)})
		return
	}
	r.superPackets++
	for s := 0; s < n; s += seg {
		r.dgrams = append(r.dgrams, datagram{int32(off + s), int32(min(seg, n-s)), int32(i)})
	}
}
