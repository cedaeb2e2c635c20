package overlay

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// askRoute returns the MTU of the kernel's route to a (the interface MTU,
// or the path MTU learnt from ICMP for that destination, whichever is
// lower: IP_MTU, ip(7); IPV6_MTU, ipv6(7)), and whether a is an address of
// this host (the kernel picks a itself as the source). It connects a UDP
// socket, which sends nothing; 0 means the route could not be asked.
func askRoute(a netip.AddrPort) (mtu int, local bool) {
	dst := a.Addr().Unmap()
	family, level, opt := unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_MTU
	var sa unix.Sockaddr
	if dst.Is4() {
		family, level, opt = unix.AF_INET, unix.IPPROTO_IP, unix.IP_MTU
		sa = &unix.SockaddrInet4{Port: int(a.Port()), Addr: dst.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(a.Port()), Addr: dst.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	if unix.Connect(fd, sa) != nil {
		return 0, false
	}
	mtu, err = unix.GetsockoptInt(fd, level, opt)
	if err != nil {
		return 0, false
	}
	switch src, _ := unix.Getsockname(fd); src := src.(type) {
	case *unix.SockaddrInet4:
		local = netip.AddrFrom4(src.Addr) == dst
	case *unix.SockaddrInet6:
		local = netip.AddrFrom16(src.Addr) == dst
	}
	return mtu, local
}
