package streams

import (
	"errors"
	"net"

	"hipnet.dev/overlay"
)

// packetConn is the PacketConn handed to quic-go. It hides everything but
// net.PacketConn, so that quic-go treats it as a plain datagram socket (no
// batched reads, no GSO, no DF bit, hence no path MTU discovery), and it
// adapts two behaviours:
//
//   - SetReadBuffer and SetWriteBuffer succeed without doing anything.
//     quic-go tries to enlarge the socket buffers and logs a warning with
//     the standard logger when it cannot; the buffers are the overlay's.
//   - A WriteTo that fails with overlay.ErrQueueFull (a base exchange is
//     running and its queue is full) reports success: QUIC treats the
//     datagram as lost and retransmits it, where an error would tear the
//     connection down.
type packetConn struct {
	net.PacketConn
}

func (c packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(b, addr)
	if err != nil && errors.Is(err, overlay.ErrQueueFull) {
		return len(b), nil
	}
	return n, err
}

func (packetConn) SetReadBuffer(int) error  { return nil }
func (packetConn) SetWriteBuffer(int) error { return nil }
