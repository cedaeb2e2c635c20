package udpbatch

import (
	"io"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Writer sends batches on its Conn. It owns the scratch a send needs
// (mmsghdrs, iovecs, sockaddrs, UDP_SEGMENT control messages), so a
// WriteBatch allocates nothing; one goroutine uses it at a time.
type Writer struct {
	c     *Conn
	msgs  []mmsghdr
	iovs  []unix.Iovec // one per datagram: the caller's buffer, never copied
	addrs []unix.RawSockaddrInet6
	cmsgs []gsoCmsg
	first []int // first[m]: the datagram message m begins with
	zones zoneIndex

	// The system call's arguments and results, passed through fields to
	// sendFn, which is created once so that no call allocates.
	sendFn     func(fd uintptr) bool
	start, end int
	took       int
	errno      syscall.Errno

	messages, datagrams uint64 // sent, for the tests
}

// NewWriter returns a Writer that sends up to maxBatch datagrams per
// system call (cut to [1, MaxBatch]); with GSO a run of up to 64 of them
// to one peer takes one message.
func (c *Conn) NewWriter(maxBatch int) *Writer {
	k := clampBatch(maxBatch)
	w := &Writer{
		c:     c,
		msgs:  make([]mmsghdr, k),
		iovs:  make([]unix.Iovec, k),
		addrs: make([]unix.RawSockaddrInet6, k),
		cmsgs: make([]gsoCmsg, k),
		first: make([]int, k+1),
	}
	for i := range w.cmsgs {
		w.cmsgs[i].init()
	}
	w.sendFn = w.send
	return w
}

// WriteBatch sends pkts[i] to to[i]; to must be as long as pkts. It blocks
// until the socket takes them all (or its write deadline passes) and
// returns how many it took: on an error, pkts[:n] were sent and pkts[n]
// was refused, or was not tried when the socket itself failed (closed:
// the error satisfies errors.Is(err, net.ErrClosed)). It keeps no
// reference to pkts or to after it returns.
func (w *Writer) WriteBatch(pkts [][]byte, to []netip.AddrPort) (int, error) {
	checkDests(pkts, to)
	return w.write(pkts, dests{many: to})
}

// WriteBatchTo is WriteBatch with one peer for all datagrams.
func (w *Writer) WriteBatchTo(pkts [][]byte, to netip.AddrPort) (int, error) {
	return w.write(pkts, dests{one: to})
}

// write sends pkts in chunks of up to len(w.msgs) datagrams.
func (w *Writer) write(pkts [][]byte, to dests) (int, error) {
	if w.c.err != nil {
		return 0, w.c.err
	}
	sent := 0
	for sent < len(pkts) {
		k := min(len(pkts)-sent, len(w.msgs))
		n, err := w.writeChunk(pkts[sent:sent+k], to.from(sent))
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// writeChunk sends up to len(w.msgs) datagrams, coalesced where GSO may.
func (w *Writer) writeChunk(pkts [][]byte, to dests) (int, error) {
	defer clear(w.iovs) // the caller's buffers are not ours to keep
	nmsg, npkt, perr := w.pack(pkts, to, int(w.c.gso.limit.Load()))
	m, errno, err := w.sendAll(nmsg)
	if errno == 0 || w.msgs[m].hdr.Controllen == 0 || !gsoRefusal(errno) {
		return w.first[m], w.sendErr(errno, err, perr)
	}
	return w.resend(pkts[:npkt], to, w.first[m], errno, perr)
}

// resend sends pkts[p:] unsegmented after the kernel refused, with
// refusal, the UDP_SEGMENT message that began with pkts[p]. If the kernel
// takes that datagram now, segmentation was at fault.
func (w *Writer) resend(pkts [][]byte, to dests, p int, refusal syscall.Errno, perr error) (int, error) {
	size := len(pkts[p])
	nmsg, _, _ := w.pack(pkts[p:], to.from(p), 0)
	m, errno, err := w.sendAll(nmsg)
	if m > 0 {
		w.c.gso.refused(refusal, size)
	}
	return p + m, w.sendErr(errno, err, perr)
}

// sendErr picks the error writeChunk returns: the socket's, the kernel's,
// or that of a destination pack could not write.
func (w *Writer) sendErr(errno syscall.Errno, err, perr error) error {
	switch {
	case err != nil:
		return err
	case errno != 0:
		name := "sendmmsg"
		if !w.c.batch.Load() {
			name = "sendmsg"
		}
		return os.NewSyscallError(name, errno)
	}
	return perr
}

// sendAll sends msgs[:nmsg] and returns how many the kernel took before
// the first errno (or socket error).
func (w *Writer) sendAll(nmsg int) (int, syscall.Errno, error) {
	done := 0
	for done < nmsg {
		w.start, w.end = done, nmsg
		if err := w.c.rc.Write(w.sendFn); err != nil {
			return done, 0, err
		}
		for i := done; i < done+w.took; i++ {
			w.messages++
			w.datagrams += uint64(w.msgs[i].hdr.Iovlen)
		}
		done += w.took
		if w.errno != 0 {
			return done, w.errno, nil
		}
		if w.took == 0 {
			return done, 0, io.ErrNoProgress // the kernel never does this
		}
	}
	return done, 0, nil
}

// send is the RawConn callback: one system call on w.msgs[w.start:w.end].
// It returns false to wait until the socket is writable.
func (w *Writer) send(fd uintptr) bool {
	msgs := w.msgs[w.start:w.end]
	if w.c.fault != 0 && msgs[0].hdr.Controllen != 0 {
		w.took, w.errno = 0, w.c.fault
		return true
	}
	for {
		batch := w.c.batch.Load()
		n, e := sendmsgs(fd, msgs, batch)
		switch {
		case e == unix.EAGAIN:
			return false
		case e == unix.EINTR:
			continue
		case e == unix.ENOSYS && batch:
			w.c.batch.Store(false) // filtered out after the probe
			continue
		}
		w.took, w.errno = n, e
		return true
	}
}

// pack lays out pkts as messages in w.msgs, one per datagram or, when
// limit > 0, one per GSO run. It returns the messages and datagrams laid
// out, and an error when it stopped at a destination it cannot write.
func (w *Writer) pack(pkts [][]byte, to dests, limit int) (nmsg, npkt int, err error) {
	i, m := 0, 0
	for ; i < len(pkts); m++ {
		w.first[m] = i
		n, err := w.packMsg(m, pkts[i:], to.from(i), limit)
		if err != nil {
			return m, i, err
		}
		i += n
	}
	w.first[m] = i
	return m, i, nil
}

// packMsg makes message m of as many datagrams from pkts[0] as one GSO
// message may carry (one when limit is 0) and returns how many.
func (w *Writer) packMsg(m int, pkts [][]byte, to dests, limit int) (int, error) {
	hdr := &w.msgs[m].hdr
	namelen, err := putSockaddr(&w.addrs[m], w.c.family, to.at(0), &w.zones)
	if err != nil {
		return 0, err
	}
	hdr.Name, hdr.Namelen = (*byte)(unsafe.Pointer(&w.addrs[m])), namelen
	n := 1
	if limit > 0 {
		n = gsoRun(pkts, to, limit)
	}
	iovs := w.iovs[w.first[m]:]
	for j, b := range pkts[:n] {
		iovs[j].Base = unsafe.SliceData(b)
		iovs[j].SetLen(len(b))
	}
	hdr.Iov = &iovs[0]
	hdr.SetIovlen(n)
	hdr.Control, hdr.Controllen = nil, 0
	if n > 1 {
		w.cmsgs[m].size = uint16(len(pkts[0]))
		hdr.Control = (*byte)(unsafe.Pointer(&w.cmsgs[m]))
		hdr.SetControllen(int(unsafe.Sizeof(w.cmsgs[m])))
	}
	return n, nil
}

// from returns the destinations of the datagrams from i on.
func (d dests) from(i int) dests {
	if d.many != nil {
		return dests{many: d.many[i:]}
	}
	return d
}
