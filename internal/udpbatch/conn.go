package udpbatch

import "net/netip"

// Caps says which kernel features a Conn uses; see doc.go for what each
// one buys. The zero Caps is one datagram per system call.
type Caps struct {
	// Batch: recvmmsg and sendmmsg move many messages per system call.
	Batch bool
	// GSO: runs of equal-size datagrams to one peer leave as one message
	// with UDP_SEGMENT. It turns false when the kernel refuses it (EIO, or
	// EINVAL for a segment small enough to fit any path).
	GSO bool
	// GRO: UDP_GRO is on, so one received message may carry several
	// datagrams of one peer, which the Reader splits.
	GRO bool
	// GSOErrors counts UDP_SEGMENT sends the kernel refused and the Writer
	// resent unsegmented.
	GSOErrors uint64
}

const (
	// MaxBatch is the largest maxBatch NewReader and NewWriter take
	// (larger values are cut to it): the kernel caps sendmmsg and
	// recvmmsg at UIO_MAXIOV messages per call.
	MaxBatch = 1024

	// BufferSize is the size of each receive buffer a Reader holds: the
	// largest UDP payload (65507 octets over IPv4, 65527 over IPv6) and a
	// GRO super-packet both fit, so nothing is ever truncated.
	BufferSize = 1 << 16
)

// dests is where a batch goes: one peer for all, or one per datagram. A
// value rather than an interface, so that WriteBatch allocates nothing.
type dests struct {
	one  netip.AddrPort
	many []netip.AddrPort
}

func (d dests) at(i int) netip.AddrPort {
	if d.many != nil {
		return d.many[i]
	}
	return d.one
}

// checkDests panics when WriteBatch is given mismatched slices, a
// programming error in the caller.
func checkDests(pkts [][]byte, to []netip.AddrPort) {
	if len(to) != len(pkts) {
		panic("udpbatch: WriteBatch needs one destination per datagram")
	}
}
