package udpbatch

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSockaddr(t *testing.T) {
	lo, err := net.InterfaceByIndex(1)
	if err != nil {
		t.Skip(err)
	}
	for _, tc := range []struct {
		family int
		in     string
		n      uint32
		out    string // what parseSockaddr gives back
	}{
		{unix.AF_INET, "192.0.2.1:4500", unix.SizeofSockaddrInet4, "192.0.2.1:4500"},
		{unix.AF_INET, "[::ffff:192.0.2.1]:4500", unix.SizeofSockaddrInet4, "192.0.2.1:4500"},
		{unix.AF_INET6, "192.0.2.1:4500", unix.SizeofSockaddrInet6, "192.0.2.1:4500"},
		{unix.AF_INET6, "[2001:db8::1]:10500", unix.SizeofSockaddrInet6, "[2001:db8::1]:10500"},
		{unix.AF_INET6, "[fe80::1%1]:1", unix.SizeofSockaddrInet6, "[fe80::1%" + lo.Name + "]:1"},
		{unix.AF_INET6, "[fe80::1%" + lo.Name + "]:1", unix.SizeofSockaddrInet6, "[fe80::1%" + lo.Name + "]:1"},
	} {
		var sa unix.RawSockaddrInet6
		var zi zoneIndex
		var zn zoneName
		n, err := putSockaddr(&sa, tc.family, netip.MustParseAddrPort(tc.in), &zi)
		if err != nil || n != tc.n {
			t.Errorf("%s on family %d: length %d, %v", tc.in, tc.family, n, err)
			continue
		}
		if got := (*[4]byte)(unsafe.Pointer(&sa))[2:4]; int(got[0])<<8|int(got[1]) != int(netip.MustParseAddrPort(tc.in).Port()) {
			t.Errorf("%s: port octets %x are not in network order", tc.in, got)
		}
		if got := parseSockaddr(&sa, n, &zn); got.String() != tc.out {
			t.Errorf("%s on family %d: back as %v, want %s", tc.in, tc.family, got, tc.out)
		}
	}
	var sa unix.RawSockaddrInet6
	for _, bad := range []netip.AddrPort{{}, netip.MustParseAddrPort("[::1]:1")} {
		if _, err := putSockaddr(&sa, unix.AF_INET, bad, new(zoneIndex)); !errors.Is(err, errDestination) {
			t.Errorf("%v on an IPv4 socket: %v, want errDestination", bad, err)
		}
	}
	if _, err := putSockaddr(&sa, unix.AF_INET6, netip.AddrPort{}, new(zoneIndex)); !errors.Is(err, errDestination) {
		t.Errorf("no address on an IPv6 socket: %v, want errDestination", err)
	}
	if got := parseSockaddr(&sa, 0, new(zoneName)); got.IsValid() {
		t.Errorf("no name: %v, want none", got)
	}
}
