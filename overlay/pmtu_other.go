//go:build !linux

package overlay

import "net/netip"

// askRoute cannot ask the route on this platform: the path MTU is unknown
// (MaxDatagram reports false).
func askRoute(netip.AddrPort) (mtu int, local bool) { return 0, false }
