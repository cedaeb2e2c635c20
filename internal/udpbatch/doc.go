// Package udpbatch is batched I/O on one UDP socket: the layer under the
// stack's ESP data path, which moves many datagrams per system call and
// allocates nothing per datagram.
//
// # What the room holds
//
//   - Conn (conn_linux.go): New wraps a *net.UDPConn and finds at run
//     time which kernel features it has; Caps reports them (conn.go).
//   - Writer (writer_linux.go): WriteBatch and WriteBatchTo lay a batch
//     out as messages over the caller's buffers, one iovec per datagram,
//     and send them with sendmmsg; the GSO policy (gso_linux.go) decides
//     which datagrams share a message and what a refusal turns off.
//   - Reader (reader_linux.go): Read fills its own buffers with recvmmsg
//     and splits GRO super-packets by the segment size the UDP_GRO control
//     message carries (cmsg_linux.go); Datagram(i) gives each datagram.
//   - The system calls and struct mmsghdr (mmsg_linux.go), and sockaddrs
//     to and from netip.AddrPort (sockaddr_linux.go).
//   - Elsewhere (conn_other.go): the same API over one WriteToUDPAddrPort
//     or ReadFromUDPAddrPort per datagram.
//
// # Kernel features, and why
//
//   - recvmmsg (Linux 2.6.33) and sendmmsg (3.0): one system call moves a
//     whole batch, so the per-call cost (the syscall, the netpoller) is
//     paid once per batch rather than once per datagram. Without them
//     each call moves one message with recvmsg or sendmsg.
//   - UDP_SEGMENT, generic segmentation offload (4.18): datagrams of one
//     size to one peer leave as one message of up to 64 segments; the
//     stack walks the routing and netfilter path once for all of them,
//     and a NIC that segments in hardware does the rest. The kernel
//     refuses it with EIO where the device lacks checksum offload, and
//     with EINVAL (EMSGSIZE on newer kernels) for a segment over the path
//     MTU; the Writer then resends those datagrams unsegmented and, if the
//     kernel takes them, turns GSO off (Caps().GSO) or, for a segment over
//     the path MTU and larger than 1232 octets, keeps it for smaller
//     segments only.
//   - UDP_GRO, generic receive offload (5.0): the kernel may deliver
//     consecutive datagrams of one flow as one super-packet, so one
//     message (and one copy to user space) carries up to 64 of them. The
//     segment size comes in a control message; buffers are 64 KiB so that
//     a super-packet always fits.
//
// Each feature falls back on its own: a kernel without UDP_GRO still
// batches and segments.
//
// # What it must not do
//
// It starts no goroutines and reads no clocks: it blocks only in the
// RawConn's Read and Write, which the socket's deadlines bound. It never
// keeps a caller's buffer after a call returns (the iovecs that point at
// them are cleared), and it decides nothing about what is sent: which
// datagrams make a batch, and to whom, are the caller's. It logs nothing;
// what changed at run time shows in Caps. It imports nothing of hipnet.
package udpbatch
