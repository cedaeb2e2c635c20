package overlay

import (
	"net"
	"net/netip"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// routes asks the kernel for the route to a locator (pmtu.go), in the
// network namespace of the node's socket: the route that socket's packets
// take. That need not be the namespace of the goroutine that asks, nor of
// the process (a socket made inside another namespace, as the end-to-end
// tests and some container setups do).
//
// It holds one unbound UDP socket per address family, made in that
// namespace, and connects it to each address it is asked about:
// connecting a UDP socket sends nothing, and makes the kernel resolve the
// route and choose the source address.
type routes struct {
	udp *net.UDPConn // the node's socket; nil: use this thread's namespace

	mu       sync.Mutex
	made     bool
	fd4, fd6 int // -1: could not be made
	closed   bool
}

// newRoutes makes the sockets at once when the node's socket is a UDP
// socket, while the node starts: some 30 µs, which a first contact would
// otherwise pay on its critical path (the first SYN or QUIC packet asks).
// Otherwise they are made on first use, in the asking thread's namespace.
func newRoutes(udp *net.UDPConn) *routes {
	r := &routes{udp: udp, fd4: -1, fd6: -1}
	if udp != nil {
		r.made = true
		r.fd4, r.fd6 = r.sockets()
	}
	return r
}

// ask returns the MTU of the route to a (the interface MTU, or the path
// MTU learnt from ICMP for that destination, whichever is lower: IP_MTU,
// ip(7); IPV6_MTU, ipv6(7)), and whether a is an address of this host (the
// kernel picks a itself as the source); 0 when the route cannot be asked.
func (r *routes) ask(a netip.AddrPort) (mtu int, local bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, false
	}
	if !r.made {
		r.made = true
		r.fd4, r.fd6 = r.sockets()
	}
	dst := a.Addr().Unmap()
	fd, level, opt := r.fd6, unix.IPPROTO_IPV6, unix.IPV6_MTU
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(a.Port()), Addr: dst.As16()}
	if dst.Is4() {
		fd, level, opt = r.fd4, unix.IPPROTO_IP, unix.IP_MTU
		sa = &unix.SockaddrInet4{Port: int(a.Port()), Addr: dst.As4()}
	}
	if fd < 0 || unix.Connect(fd, sa) != nil {
		return 0, false
	}
	mtu, err := unix.GetsockoptInt(fd, level, opt)
	if err != nil {
		return 0, false
	}
	switch src, _ := unix.Getsockname(fd); src := src.(type) {
	case *unix.SockaddrInet4:
		local = netip.AddrFrom4(src.Addr) == dst
	case *unix.SockaddrInet6:
		local = netip.AddrFrom16(src.Addr) == dst
	}
	return mtu, local
}

// sockets makes the two sockets in the namespace of r.udp: on a thread
// that enters it (setns(2)) when it is not the namespace of this one.
func (r *routes) sockets() (fd4, fd6 int) {
	make2 := func() (int, int) {
		return udpSocket(unix.AF_INET), udpSocket(unix.AF_INET6)
	}
	ns := r.socketNamespace()
	if ns < 0 {
		return make2()
	}
	defer unix.Close(ns)
	if sameNamespace(ns) {
		return make2()
	}
	done := make(chan [2]int, 1)
	go func() {
		runtime.LockOSThread()
		fds := [2]int{-1, -1}
		defer func() { done <- fds }()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			return
		}
		defer unix.Close(home)
		if unix.Setns(ns, unix.CLONE_NEWNET) != nil {
			runtime.UnlockOSThread()
			return
		}
		fds[0], fds[1] = make2()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked, and ends with this goroutine
	}()
	fds := <-done
	return fds[0], fds[1]
}

// socketNamespace returns a descriptor of the namespace of r.udp
// (SIOCGSKNS), or -1.
func (r *routes) socketNamespace() int {
	if r.udp == nil {
		return -1
	}
	rc, err := r.udp.SyscallConn()
	if err != nil {
		return -1
	}
	ns := -1
	rc.Control(func(fd uintptr) {
		if n, err := unix.IoctlRetInt(int(fd), unix.SIOCGSKNS); err == nil {
			ns = n
		}
	})
	return ns
}

// sameNamespace reports whether ns is this thread's network namespace.
func sameNamespace(ns int) bool {
	var a, b unix.Stat_t
	if unix.Fstat(ns, &a) != nil || unix.Stat("/proc/thread-self/ns/net", &b) != nil {
		return true // cannot tell: stay where we are
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func udpSocket(family int) int {
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1
	}
	return fd
}

// close releases the sockets; ask answers 0 from then on.
func (r *routes) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, fd := range []int{r.fd4, r.fd6} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	r.fd4, r.fd6 = -1, -1
}
