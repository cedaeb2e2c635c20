package pcap

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Capture is one pcap that several recording sockets write into (tests:
// what a capture on the loopback would show of the stacks' real sockets).
type Capture struct {
	mu      sync.Mutex
	w       *Writer
	file    io.Closer // CreateCapture's file; nil for NewCapture
	stopped bool
}

// NewCapture records into w.
func NewCapture(w *Writer) *Capture { return &Capture{w: w} }

// CreateCapture records into a new Ethernet capture file at path; Close
// ends it.
func CreateCapture(path string) (*Capture, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w, err := NewWriter(f, LinkTypeEthernet)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Capture{w: w, file: f}, nil
}

// Close stops the recording and closes CreateCapture's file, so that it
// can be read while the sockets still run.
func (c *Capture) Close() error {
	c.Stop()
	if c.file == nil {
		return nil
	}
	return c.file.Close()
}

// Stop ends the recording: later datagrams are not written, so the file
// can be closed and read while the sockets still run.
func (c *Capture) Stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}

// Conn wraps pc so that every UDP datagram it sends and receives is
// written into the capture.
func (c *Capture) Conn(pc net.PacketConn) net.PacketConn { return &recordingConn{pc, c} }

func (c *Capture) record(src, dst net.Addr, b []byte) {
	s, ok1 := src.(*net.UDPAddr)
	d, ok2 := dst.(*net.UDPAddr)
	if !ok1 || !ok2 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped {
		c.w.WriteUDP(time.Now(), s.AddrPort(), d.AddrPort(), b)
	}
}

type recordingConn struct {
	net.PacketConn
	c *Capture
}

func (r *recordingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := r.PacketConn.ReadFrom(b)
	if err == nil {
		r.c.record(from, r.LocalAddr(), b[:n])
	}
	return n, from, err
}

func (r *recordingConn) WriteTo(b []byte, to net.Addr) (int, error) {
	r.c.record(r.LocalAddr(), to, b)
	return r.PacketConn.WriteTo(b, to)
}
