package overlay

import (
	"fmt"
	"net"
	"strconv"

	"hipnet.dev/handshake/wire"
)

// Addr is an endpoint named by a HIT: the host and a port of the inner
// transport (UDP datagrams or a stream's destination). It is what
// RemoteAddr and ReadFrom return for every connection of the stack, and
// what package hipnet exports as hipnet.Addr.
type Addr struct {
	HIT  wire.HIT
	Port int
}

// Network returns "hip".
func (a *Addr) Network() string { return "hip" }

// String returns `[HIT]:port`, the form net.SplitHostPort understands.
func (a *Addr) String() string {
	if a == nil {
		return "<nil>"
	}
	return "[" + a.HIT.String() + "]:" + strconv.Itoa(a.Port)
}

// ParseAddr parses `[HIT]:port` (or "HIT:port" forms net.SplitHostPort
// accepts). The HIT must be an ORCHIDv2.
func ParseAddr(s string) (*Addr, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return nil, err
	}
	hit, err := wire.ParseHIT(host)
	if err != nil {
		return nil, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("hip: bad port %q", port)
	}
	return &Addr{HIT: hit, Port: int(p)}, nil
}
