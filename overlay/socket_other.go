//go:build !linux

package overlay

import "net"

// newBatchConn: x/net batches only on Linux; elsewhere ReadBatch reads one
// message per call, so the plain ReadFromUDPAddrPort path is used instead.
func newBatchConn(*net.UDPConn) batchConn { return nil }

// growBuffers asks for larger socket buffers where the platform allows.
func growBuffers(u *net.UDPConn, size int) {
	u.SetReadBuffer(size)
	u.SetWriteBuffer(size)
}
