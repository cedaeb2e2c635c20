package netmon

import (
	"net/netip"
	"slices"
)

// ifAddr is one address as a source reads it, with what the filter needs
// to know about it and its interface. Sources fill what their system
// tells them and leave the rest zero.
type ifAddr struct {
	Addr netip.Addr
	// Up: the interface is up and running (IFF_UP and IFF_RUNNING, or
	// net.FlagUp and net.FlagRunning where netlink is not used).
	Up bool
	// Loopback: the interface is a loopback interface.
	Loopback bool
	// Flags are the address's IFA_F_* flags (Linux netlink); 0 where the
	// system does not say.
	Flags uint32
	// Scope is the address's RT_SCOPE_* (Linux netlink); 0, universe,
	// where the system does not say.
	Scope uint8
}

// The address flags and scopes that make an address unusable, with the
// values of linux/if_addr.h and linux/rtnetlink.h (netlink_linux_test.go
// checks them against golang.org/x/sys/unix). Kept here, not taken from
// package unix, so that the filter builds and is tested on every system.
const (
	flagDADFailed  = 0x08 // IFA_F_DADFAILED: duplicate address detection found another holder
	flagDeprecated = 0x20 // IFA_F_DEPRECATED: preferred lifetime over, not for new sessions
	flagTentative  = 0x40 // IFA_F_TENTATIVE: duplicate address detection still running

	scopeHost = 254 // RT_SCOPE_HOST: valid only inside this host
)

// usable reports whether a is an address a peer could reach this host at:
// a unicast address that is not loopback or link-local, on an interface
// that is up and not a loopback, and neither tentative, failed in
// duplicate address detection, deprecated, nor of host scope.
func usable(a ifAddr) bool {
	ip := a.Addr.Unmap()
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsLoopback(), ip.IsMulticast(),
		ip.IsLinkLocalUnicast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return false
	case !a.Up, a.Loopback:
		return false
	case a.Flags&(flagTentative|flagDADFailed|flagDeprecated) != 0:
		return false
	case a.Scope >= scopeHost:
		return false
	}
	return true
}

// usableSet returns the usable addresses of list, IPv4-mapped IPv6
// addresses unmapped, zones dropped, without duplicates (one address on
// two interfaces counts once), sorted by netip.Addr.Compare: IPv4 before
// IPv6, then by value.
func usableSet(list []ifAddr) []netip.Addr {
	set := make([]netip.Addr, 0, len(list))
	for _, a := range list {
		if usable(a) {
			set = append(set, a.Addr.Unmap().WithZone(""))
		}
	}
	slices.SortFunc(set, netip.Addr.Compare)
	return slices.Compact(set)
}

// sameSet reports whether two sets from usableSet hold the same addresses.
func sameSet(a, b []netip.Addr) bool { return slices.Equal(a, b) }
