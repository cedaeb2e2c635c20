package udpbatch

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr: a msghdr and the octets the kernel moved for
// it. Go pads it as C does (64 octets on 64-bit, 32 on 32-bit).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// sendmsgs sends msgs with one sendmmsg, or only msgs[0] with sendmsg when
// batch is false, and returns how many messages the kernel took. fd is
// non-blocking: EAGAIN comes back to the RawConn callback, which waits.
func sendmsgs(fd uintptr, msgs []mmsghdr, batch bool) (int, syscall.Errno) {
	if !batch {
		n, _, e := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&msgs[0].hdr)), 0)
		if e != 0 {
			return 0, e
		}
		msgs[0].n = uint32(n)
		return 1, 0
	}
	n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// recvmsgs fills msgs with one recvmmsg, or only msgs[0] with recvmsg when
// batch is false, and returns how many messages arrived. With no timeout
// and no flags recvmmsg takes what is queued and returns; it fails with
// EAGAIN only when nothing is.
func recvmsgs(fd uintptr, msgs []mmsghdr, batch bool) (int, syscall.Errno) {
	if !batch {
		n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msgs[0].hdr)), 0)
		if e != 0 {
			return 0, e
		}
		msgs[0].n = uint32(n)
		return 1, 0
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}
