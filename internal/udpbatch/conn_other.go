//go:build !linux

package udpbatch

import (
	"net"
	"net/netip"
)

// Conn is one UDP socket. Without Linux's system calls it moves one
// datagram per call through package net; Caps reports nothing.
type Conn struct {
	u *net.UDPConn
}

// New wraps u, which must not be nil.
func New(u *net.UDPConn) *Conn { return &Conn{u: u} }

// Caps reports the features in use: none here.
func (c *Conn) Caps() Caps { return Caps{} }

// Writer sends batches on its Conn, one datagram per call.
type Writer struct {
	c *Conn
}

// NewWriter returns a Writer; maxBatch only matters on Linux.
func (c *Conn) NewWriter(maxBatch int) *Writer { return &Writer{c: c} }

// WriteBatch sends pkts[i] to to[i]; to must be as long as pkts. On an
// error, pkts[:n] were sent and pkts[n] was refused.
func (w *Writer) WriteBatch(pkts [][]byte, to []netip.AddrPort) (int, error) {
	checkDests(pkts, to)
	return w.write(pkts, dests{many: to})
}

// WriteBatchTo is WriteBatch with one peer for all datagrams.
func (w *Writer) WriteBatchTo(pkts [][]byte, to netip.AddrPort) (int, error) {
	return w.write(pkts, dests{one: to})
}

func (w *Writer) write(pkts [][]byte, to dests) (int, error) {
	for i, b := range pkts {
		if _, err := w.c.u.WriteToUDPAddrPort(b, to.at(i)); err != nil {
			return i, err
		}
	}
	return len(pkts), nil
}

// Reader receives one datagram per Read into a buffer of BufferSize octets.
type Reader struct {
	c    *Conn
	buf  []byte
	n    int
	from netip.AddrPort
}

// NewReader returns a Reader; maxBatch only matters on Linux.
func (c *Conn) NewReader(maxBatch int) *Reader {
	return &Reader{c: c, buf: make([]byte, BufferSize)}
}

// Read blocks for the next datagram and returns 1, or an error.
func (r *Reader) Read() (int, error) {
	n, from, err := r.c.u.ReadFromUDPAddrPort(r.buf)
	if err != nil {
		return 0, err
	}
	r.n, r.from = n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	return 1, nil
}

// Datagram returns the datagram of the last Read (i must be 0), valid
// until the next Read.
func (r *Reader) Datagram(i int) ([]byte, netip.AddrPort) {
	if i != 0 {
		panic("udpbatch: Datagram index out of range")
	}
	return r.buf[:r.n:r.n], r.from
}
