package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errDestination is returned for a destination the socket cannot reach:
// not valid, or IPv6 on an IPv4 socket.
var errDestination = errors.New("udpbatch: destination address not valid for this socket")

// putSockaddr writes ap into sa as a sockaddr of the socket's family and
// returns its length. An IPv6 (and so dual-stack) socket reaches an IPv4
// peer by its IPv4-mapped address; an IPv4 socket takes mapped addresses
// unmapped.
func putSockaddr(sa *unix.RawSockaddrInet6, family int, ap netip.AddrPort, zones *zoneIndex) (uint32, error) {
	a := ap.Addr()
	if family == unix.AF_INET {
		a = a.Unmap()
		if !a.Is4() {
			return 0, errDestination
		}
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.As4()}
		putPort(&s4.Port, ap.Port())
		return unix.SizeofSockaddrInet4, nil
	}
	if !a.IsValid() {
		return 0, errDestination
	}
	*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16(), Scope_id: zones.index(a.Zone())}
	putPort(&sa.Port, ap.Port())
	return unix.SizeofSockaddrInet6, nil
}

// parseSockaddr reads the peer address the kernel wrote into sa (n
// octets), with an IPv4-mapped address unmapped so that one peer has one
// spelling whatever the socket's family.
func parseSockaddr(sa *unix.RawSockaddrInet6, n uint32, zones *zoneName) netip.AddrPort {
	if n < unix.SizeofSockaddrInet4 {
		return netip.AddrPort{}
	}
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), getPort(&s4.Port))
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}
		}
		a := netip.AddrFrom16(sa.Addr).Unmap()
		if sa.Scope_id != 0 && a.Is6() {
			a = a.WithZone(zones.name(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, getPort(&sa.Port))
	}
	return netip.AddrPort{}
}

// putPort and getPort handle sin_port and sin6_port, which hold the port
// in network byte order whatever the host's.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// zoneIndex turns a zone (an interface name or number) into a scope ID,
// remembering the last one so that a link-local peer costs one look-up.
type zoneIndex struct {
	zone string
	idx  uint32
}

func (z *zoneIndex) index(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if zone != z.zone {
		z.zone, z.idx = zone, 0
		if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
			z.idx = uint32(n)
		} else if ifi, err := net.InterfaceByName(zone); err == nil {
			z.idx = uint32(ifi.Index)
		}
	}
	return z.idx
}

// zoneName turns a scope ID into a zone, the interface's name where it has
// one, remembering the last one.
type zoneName struct {
	idx  uint32
	zone string
}

func (z *zoneName) name(idx uint32) string {
	if idx != z.idx || z.zone == "" {
		z.idx, z.zone = idx, strconv.FormatUint(uint64(idx), 10)
		if ifi, err := net.InterfaceByIndex(int(idx)); err == nil {
			z.zone = ifi.Name
		}
	}
	return z.zone
}
