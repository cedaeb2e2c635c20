package hipnet

import (
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// HIT is a Host Identity Tag: an ORCHIDv2 (RFC 7343) hash of a host's
// public key, 128 bits written as an IPv6 address (2001:2x::/28). HITs
// compare with ==.
type HIT = wire.HIT

// ParseHIT parses a HIT in IPv6 text form.
func ParseHIT(s string) (HIT, error) { return wire.ParseHIT(s) }

// Addr is a HIT and a port; like net.UDPAddr for HIP. Network() is "hip"
// and String() is "[HIT]:port". Every RemoteAddr and ReadFrom of a Node's
// connections returns a *Addr whose HIT was authenticated by the base
// exchange.
type Addr = overlay.Addr

// ParseAddr parses "[HIT]:port".
func ParseAddr(s string) (*Addr, error) { return overlay.ParseAddr(s) }

// PeerInfo describes one association: peer HIT, state, path ("direct" or
// "relayed"), remote locator, negotiated suites, bytes and packets in and
// out, and since when.
type PeerInfo = overlay.PeerInfo
