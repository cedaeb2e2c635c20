//go:build !linux

package overlay

import "net"

// growBuffers asks for larger socket buffers where the platform allows.
func growBuffers(u *net.UDPConn, size int) {
	u.SetReadBuffer(size)
	u.SetWriteBuffer(size)
}
