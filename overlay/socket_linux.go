package overlay

import (
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// newBatchConn wraps u for recvmmsg/sendmmsg: ipv4 for a socket bound to an
// IPv4 address, ipv6 for IPv6 and dual-stack sockets (IPv4 peers then
// appear as IPv4-mapped addresses, which addrPortOf unmaps).
func newBatchConn(u *net.UDPConn) batchConn {
	if a, ok := u.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		return ipv4.NewPacketConn(u)
	}
	return ipv6.NewPacketConn(u)
}

// growBuffers asks for socket buffers of size octets. SO_RCVBUFFORCE and
// SO_SNDBUFFORCE pass the net.core.rmem_max/wmem_max caps when we have
// CAP_NET_ADMIN; otherwise the plain options give what the caps allow. A
// bulk QUIC stream outruns the default 208 KiB receive buffer and the
// kernel drops datagrams, which QUIC then has to recover.
func growBuffers(u *net.UDPConn, size int) {
	rc, err := u.SyscallConn()
	if err != nil {
		return
	}
	var forcedR, forcedW bool
	rc.Control(func(fd uintptr) {
		forcedR = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) == nil
		forcedW = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) == nil
	})
	if !forcedR {
		u.SetReadBuffer(size)
	}
	if !forcedW {
		u.SetWriteBuffer(size)
	}
}
