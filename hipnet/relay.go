package hipnet

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"hipnet.dev/overlay"
)

// Relay is a HIP relay (cmd/hip-relay) as an entry of Config.Relays or
// HIPNET_RELAYS names it; ParseRelay reads that form.
type Relay struct {
	// HIT is the relay's HIT, which authenticates it. It is the zero HIT
	// in the opportunistic mode ("host:port" with no HIT): the node then
	// learns the HIT from the relay's R1 (RFC 7401 §4.1.8), trusting
	// whoever answers at Addr.
	HIT HIT

	// Addr is the relay's UDP address, a host name resolved.
	Addr netip.AddrPort
}

// Opportunistic reports whether the relay's HIT is unknown, to be learnt
// from its R1.
func (r Relay) Opportunistic() bool { return r.HIT.IsZero() }

// String returns the form ParseRelay reads: "HIT@host:port", or
// "host:port" in the opportunistic mode.
func (r Relay) String() string {
	if r.Opportunistic() {
		return r.Addr.String()
	}
	return r.HIT.String() + "@" + r.Addr.String()
}

// ParseRelay parses an entry of Config.Relays: "HIT@host:port", or
// "host:port" for the opportunistic mode. A host name is resolved now; the
// port must not be 0.
func ParseRelay(s string) (Relay, error) {
	var r Relay
	h, a, ok := strings.Cut(strings.TrimSpace(s), "@")
	if !ok {
		a = h
	} else {
		hit, err := ParseHIT(h)
		if err != nil {
			return Relay{}, fmt.Errorf("hipnet: relay %q: %w", s, err)
		}
		r.HIT = hit
	}
	if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" || port == "0" {
		return Relay{}, fmt.Errorf("hipnet: relay %q: want host:port with a host and a port", s)
	}
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", a)
		if rerr != nil {
			return Relay{}, fmt.Errorf("hipnet: relay %q: %w", s, rerr)
		}
		ap = ua.AddrPort()
	}
	r.Addr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return r, nil
}

// relayAddr is r as the stack takes it.
func (r Relay) relayAddr() overlay.RelayAddr { return overlay.RelayAddr{HIT: r.HIT, Addr: r.Addr} }
