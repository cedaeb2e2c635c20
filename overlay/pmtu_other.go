//go:build !linux

package overlay

import (
	"net"
	"net/netip"
)

// routes cannot ask the route on this platform: the path MTU is unknown
// (MaxDatagram reports false).
type routes struct{}

func newRoutes(*net.UDPConn) *routes { return &routes{} }

func (*routes) ask(netip.AddrPort) (mtu int, local bool) { return 0, false }

func (*routes) close() {}
