package udpbatch

import (
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Conn is one UDP socket with the kernel features New found on it. It is
// safe for concurrent use; its Readers and Writers are not.
type Conn struct {
	rc     syscall.RawConn
	err    error // from SyscallConn; every call returns it
	family int   // AF_INET or AF_INET6: the socket's, which fixes the sockaddrs we build
	gro    bool  // UDP_GRO is set on the socket
	batch  atomic.Bool
	gso    gsoState

	// fault, when not 0, is the errno every UDP_SEGMENT send fails with:
	// the tests' stand-in for a NIC without checksum offload.
	fault syscall.Errno
}

// options turn features off for the tests of the fallback paths.
type options struct {
	noBatch, noGSO, noGRO bool
}

// New wraps u, which must not be nil, for batched I/O. It finds at run time
// what the kernel offers (sendmmsg and recvmmsg, UDP_SEGMENT, UDP_GRO) and
// uses each feature it finds; Caps reports which.
//
// New sets UDP_GRO on u: from then on read u only through Readers, since
// a plain read would take a GRO super-packet as one datagram.
func New(u *net.UDPConn) *Conn {
	return newConn(u, options{})
}

func newConn(u *net.UDPConn, o options) *Conn {
	c := &Conn{family: unix.AF_INET6}
	if a, ok := u.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		c.family = unix.AF_INET
	}
	c.rc, c.err = u.SyscallConn()
	if c.err != nil {
		return c
	}
	// A closed socket fails Control; its Conn then has no features and
	// every call returns net.ErrClosed from the RawConn.
	c.rc.Control(func(fd uintptr) { c.probe(int(fd), o) })
	return c
}

// probe detects each feature on fd and turns on those o allows.
func (c *Conn) probe(fd int, o options) {
	if f, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil {
		c.family = f // more reliable than the local address (Linux 2.6.32)
	}
	if !o.noBatch {
		// A call with no messages sends nothing and tells whether the
		// system call exists (Linux 3.0; seccomp filters may refuse it).
		_, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), 0, 0, 0, 0, 0)
		c.batch.Store(e == 0)
	}
	if !o.noGSO {
		// Reading the option succeeds where UDP_SEGMENT exists (4.18).
		if _, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT); err == nil {
			c.gso.limit.Store(gsoMaxBytes)
		}
	}
	if !o.noGRO {
		c.gro = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil // 5.0
	}
}

// Caps reports the features in use now.
func (c *Conn) Caps() Caps {
	return Caps{
		Batch:     c.batch.Load(),
		GSO:       c.gso.limit.Load() > 0,
		GRO:       c.gro,
		GSOErrors: c.gso.refusals.Load(),
	}
}

// clampBatch brings a caller's maxBatch into [1, MaxBatch].
func clampBatch(n int) int {
	return min(max(n, 1), MaxBatch)
}
