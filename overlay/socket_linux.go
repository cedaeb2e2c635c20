package overlay

import (
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
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
