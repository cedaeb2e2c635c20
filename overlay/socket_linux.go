package overlay

import (
	"net"

	"golang.org/x/sys/unix"
)

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
