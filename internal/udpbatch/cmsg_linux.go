package udpbatch

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ctrlSize is the room for control messages per received message: the
// UDP_GRO one takes CMSG_SPACE(4) (24 octets on 64-bit), the rest leaves
// room for one more option someone sets on the socket.
const ctrlSize = 64

// parseGRO finds the UDP_GRO control message in control (msg_controllen
// octets of a received message) and returns its segment size: the length
// of every datagram of a super-packet but the last. found is false when
// there is none, which is the case for a datagram that was not coalesced.
// It trusts no length in control: a malformed header ends the walk.
func parseGRO(control []byte) (size int, found bool) {
	hdrLen := unix.CmsgLen(0)
	for len(control) >= hdrLen {
		var h unix.Cmsghdr
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr), control)
		l := uint64(h.Len)
		if l < uint64(hdrLen) || l > uint64(len(control)) {
			return 0, false
		}
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO {
			return groSize(control[hdrLen:l]), true
		}
		next := cmsgAlign(int(l))
		if next >= len(control) {
			return 0, false
		}
		control = control[next:]
	}
	return 0, false
}

// groSize reads the segment size: udp_cmsg_recv puts an int; a uint16 is
// taken too. A size that is not positive means no splitting.
func groSize(data []byte) int {
	switch {
	case len(data) >= 4:
		return max(int(int32(binary.NativeEndian.Uint32(data))), 0)
	case len(data) >= 2:
		return int(binary.NativeEndian.Uint16(data))
	}
	return 0
}

// cmsgAlign rounds n up as CMSG_ALIGN does, to the size of a long.
func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}
