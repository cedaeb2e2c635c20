package nat

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5/deadline"
)

// inboundQueue bounds the STUN packets waiting for the agent on one
// virtual conn. Connectivity checks are a few packets per pacing interval
// (RFC 5770 §4.6), so a full queue means a flood, and Deliver drops.
const inboundQueue = 64

// packet is one datagram queued in a vconn, or for the pacer.
type packet struct {
	b    []byte
	addr netip.AddrPort // source (inbound) or destination (outbound)
}

// vconn is the net.PacketConn behind a session's local host candidate
// (ice.Agent.AddVirtualCandidate). It owns no socket: WriteTo goes out
// through the session (and from there the node's Send), ReadFrom returns
// the packets the session's Deliver queued. pion's candidate reads it in
// a goroutine of its own (recvLoop, started at candidate_base.go:263)
// until Close, which pion calls when the agent closes (abortIO,
// candidate_base.go:445: a deadline in the past, then Close).
//
// It also implements ice.AddrPortReaderWriter, which pion prefers over
// ReadFrom and WriteTo (asAddrPortReaderWriter, addr.go:183), so no
// net.Addr is built per packet.
type vconn struct {
	local *net.UDPAddr
	write func(b []byte, to netip.AddrPort) (int, error)
	in    chan packet
	drops *atomic.Uint64 // the session's count of dropped inbound packets

	rd        *deadline.Deadline
	closed    chan struct{}
	closeOnce sync.Once
}

func newVconn(local netip.AddrPort, write func([]byte, netip.AddrPort) (int, error), drops *atomic.Uint64) *vconn {
	return &vconn{
		local:  net.UDPAddrFromAddrPort(local),
		write:  write,
		in:     make(chan packet, inboundQueue),
		drops:  drops,
		rd:     deadline.New(),
		closed: make(chan struct{}),
	}
}

// deliver queues a copy of pkt for the agent without blocking. It returns
// false when the conn is closed; a packet that finds the queue full is
// dropped and counted, and deliver still returns true (it was for us).
func (c *vconn) deliver(pkt []byte, from netip.AddrPort) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	p := packet{b: append([]byte(nil), pkt...), addr: from}
	select {
	case c.in <- p:
	default:
		c.drops.Add(1)
	}
	return true
}

// ReadFromAddrPort returns the next delivered packet.
func (c *vconn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	select {
	case <-c.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	case <-c.rd.Done():
		return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
	case p := <-c.in:
		return copy(b, p.b), p.addr, nil
	}
}

// WriteToAddrPort sends b to addr through the session.
func (c *vconn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	return c.write(b, addr)
}

// ReadFrom implements net.PacketConn.
func (c *vconn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// WriteTo implements net.PacketConn.
func (c *vconn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: net.UnknownNetworkError(addr.Network())}
	}
	return c.WriteToAddrPort(b, ua.AddrPort())
}

// Close implements net.PacketConn; it unblocks a pending read.
func (c *vconn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// LocalAddr implements net.PacketConn: the address of the host candidate.
func (c *vconn) LocalAddr() net.Addr { return c.local }

// SetDeadline implements net.PacketConn. Only the read deadline means
// anything: writes hand the packet to the session and do not block.
func (c *vconn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (c *vconn) SetReadDeadline(t time.Time) error {
	c.rd.Set(t)
	return nil
}

// SetWriteDeadline implements net.PacketConn; writes do not block.
func (c *vconn) SetWriteDeadline(time.Time) error { return nil }
