package udpbatch

import (
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	// gsoMaxSegments is the kernel's UDP_MAX_SEGMENTS: more segments in
	// one message and sendmsg fails with EINVAL.
	gsoMaxSegments = 64

	// gsoMaxBytes bounds the payload of one message, under the 65535
	// octets of an IP datagram with room for the headers.
	gsoMaxBytes = 65000

	// gsoMinPathSegment is the largest segment every IPv6 path carries
	// (1280-octet minimum MTU less 40 for IPv6 and 8 for UDP). A refused
	// segment this small was not too large for the path, so the refusal
	// is GSO's own and turns it off.
	gsoMinPathSegment = 1232
)

// gsoCmsg is one UDP_SEGMENT control message: a cmsghdr and the segment
// size, a native-endian uint16. Go pads it as CMSG_SPACE(2) does.
type gsoCmsg struct {
	hdr  unix.Cmsghdr
	size uint16
}

func (g *gsoCmsg) init() {
	g.hdr.Level = unix.SOL_UDP
	g.hdr.Type = unix.UDP_SEGMENT
	g.hdr.SetLen(unix.CmsgLen(2))
}

// gsoState is a Conn's GSO policy, shared by its Writers.
type gsoState struct {
	// limit is the largest segment size sent with UDP_SEGMENT; 0 turns
	// GSO off.
	limit    atomic.Int32
	refusals atomic.Uint64
}

// refused records that the kernel refused UDP_SEGMENT with errno for
// size-octet segments and then took the same datagrams unsegmented.
//
// EIO means the route cannot take GSO (udp_send_skb wants checksum
// offload on the device and no xfrm on the route), so GSO goes off. A
// segment larger than the path MTU is refused too, which unsegmented
// datagrams survive by IP fragmentation: with EINVAL on older kernels
// and EMSGSIZE on newer ones (6.18 does; TestE2EGSOOverPathMTU). Then
// only smaller segments are coalesced from now on, unless the segment was small enough
// to fit any path.
func (g *gsoState) refused(errno syscall.Errno, size int) {
	g.refusals.Add(1)
	if !tooLong(errno) || size <= gsoMinPathSegment {
		g.limit.Store(0)
		return
	}
	for {
		old := g.limit.Load()
		if old < int32(size) || g.limit.CompareAndSwap(old, int32(size-1)) {
			return
		}
	}
}

// gsoRefusal says whether errno, from a message carrying UDP_SEGMENT, may
// be the kernel refusing segmentation rather than the datagrams.
func gsoRefusal(errno syscall.Errno) bool {
	return errno == unix.EIO || tooLong(errno)
}

// tooLong reports whether errno is how the kernel refuses a GSO segment
// over the path MTU (see refused).
func tooLong(errno syscall.Errno) bool {
	return errno == unix.EINVAL || errno == unix.EMSGSIZE
}

// gsoRun returns how many datagrams from pkts[0] one UDP_SEGMENT message
// can carry: those that go to the same peer and have the size of the
// first, except that a last one may be shorter; at most gsoMaxSegments
// and gsoMaxBytes in all. Segments larger than limit are not coalesced.
func gsoRun(pkts [][]byte, to dests, limit int) int {
	size := len(pkts[0])
	if size == 0 || size > limit {
		return 1
	}
	peer := to.at(0)
	n, total := 1, size
	for n < len(pkts) && n < gsoMaxSegments {
		l := len(pkts[n])
		if l == 0 || l > size || total+l > gsoMaxBytes || to.at(n) != peer {
			break
		}
		n++
		total += l
		if l < size {
			break // a shorter datagram ends the message
		}
	}
	return n
}
