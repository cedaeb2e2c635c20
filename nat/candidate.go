package nat

import (
	"fmt"
	"net/netip"

	"github.com/pion/ice/v4"

	"hipnet.dev/handshake/wire"
)

// Candidate is one ICE candidate as HIP carries it in a LOCATOR_SET
// transport locator (RFC 5770 §5.7, RFC 9028 §5.7): a UDP transport
// address, its kind and its priority. There is one component (RFC 5770
// §4.6: "only one media stream and component is needed").
type Candidate struct {
	Addr     netip.AddrPort
	Kind     uint8  // wire.KindHost, wire.KindServerReflexive, wire.KindPeerReflexive, wire.KindRelayed
	Priority uint32 // RFC 8445 §5.1.2; 0 means compute it from Kind (see Priority)
}

// Type preferences RFC 8445 §5.1.2.2 recommends.
const (
	prefHost            = 126
	prefPeerReflexive   = 110
	prefServerReflexive = 100
	prefRelayed         = 0
)

// typePreference returns the RFC 8445 §5.1.2.2 type preference of a
// locator Kind; unknown kinds get the lowest, that of relayed candidates.
func typePreference(kind uint8) uint32 {
	switch kind {
	case wire.KindHost:
		return prefHost
	case wire.KindPeerReflexive:
		return prefPeerReflexive
	case wire.KindServerReflexive:
		return prefServerReflexive
	}
	return prefRelayed
}

// Priority returns the RFC 8445 §5.1.2.1 priority of a candidate of the
// given Kind with local preference 65535 (the value for a host with one IP
// address, §5.1.2.1) and component ID 1:
//
//	priority = 2^24 * type preference + 2^8 * local preference + (256 - component ID)
//
// A host candidate gets 2130706431, a server-reflexive one 1694498815.
func Priority(kind uint8) uint32 {
	const localPref, component = 65535, 1
	return typePreference(kind)<<24 | localPref<<8 | (256 - component)
}

// priority returns c.Priority, or Priority(c.Kind) when it is zero.
func (c Candidate) priority() uint32 {
	if c.Priority != 0 {
		return c.Priority
	}
	return Priority(c.Kind)
}

// Locators turns candidates into LOCATOR_SET entries (RFC 5770 §5.7,
// RFC 9028 §5.7): Locator Type 2 (transport address), protocol UDP, the
// given Lifetime (seconds, non-zero per RFC 8046 §4) and SPI (the SPI the
// sender expects in ESP arriving on these locators), the priority computed
// when zero, and Traffic Type "both" (0). Neither RFC states the Traffic
// Type of ICE candidates in so many words; "both" is the one they give the
// locator a Responder may use for the rest of the base exchange (RFC 5770
// §4.8), the ICE-selected pair carries ESP (§4.6) and may carry HIP
// control packets too (§4.10), while "HIP signaling" (1) marks the relay
// addresses that "MUST NOT be used as ICE candidates" (§4.5). The P bit is
// left clear: it is for a locator in R1 (Table 2). IPv4 addresses are
// unmapped, as wire.Locator wants them.
func Locators(c []Candidate, spi uint32, lifetime uint32) []wire.Locator {
	ls := make([]wire.Locator, len(c))
	for i, cand := range c {
		ls[i] = wire.Locator{
			Traffic:  wire.TrafficBoth,
			Type:     wire.LocatorTypeTransport,
			Lifetime: lifetime,
			Port:     cand.Addr.Port(),
			Protocol: wire.ProtocolUDP,
			Kind:     cand.Kind,
			Priority: cand.priority(),
			SPI:      spi,
			Addr:     cand.Addr.Addr().Unmap(),
		}
	}
	return ls
}

// FromLocators picks the ICE candidates out of a LOCATOR_SET, in order:
// transport locators (type 2) of protocol UDP with a known Kind, a valid
// address and a non-zero port. It skips every other locator, and also
// those of Traffic Type "HIP signaling", which name relay servers and
// "MUST NOT be used as ICE candidates" (RFC 5770 §4.5, RFC 9028 §4.5).
// Priority is copied as received (zero stays zero and is computed from Kind
// when the candidate is used).
//
// It also skips what no peer can be reached at, which the peer may still
// list to make us send checks there: the unspecified address (this host,
// on Linux), multicast and the IPv4 broadcast address. And it takes at
// most MaxRemoteCandidates: the list is the peer's, and each candidate
// costs checks (RFC 8445 §19.5.1: an agent must not be made to send
// checks at will).
func FromLocators(ls []wire.Locator) []Candidate {
	var c []Candidate
	for _, l := range ls {
		if l.Type != wire.LocatorTypeTransport || l.Protocol != wire.ProtocolUDP ||
			l.Traffic == wire.TrafficSignaling || l.Kind > wire.KindRelayed ||
			!l.Addr.IsValid() || l.Port == 0 || !reachable(l.Addr.Unmap()) {
			continue
		}
		if len(c) == MaxRemoteCandidates {
			break
		}
		c = append(c, Candidate{
			Addr:     netip.AddrPortFrom(l.Addr.Unmap(), l.Port),
			Kind:     l.Kind,
			Priority: l.Priority,
		})
	}
	return c
}

// MaxRemoteCandidates bounds the peer's candidates a session checks: a
// host announces its interface addresses and one reflexive address per
// relay, per address family, far fewer.
const MaxRemoteCandidates = 16

// reachable reports whether a candidate at a could be a peer's address.
func reachable(a netip.Addr) bool {
	return !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// iceComponent is the one component of ICE-HIP (RFC 9028 §4.6.2: "a
// component ID of 1 on all candidates").
const iceComponent = 1

// remoteICE converts a peer's candidate to a pion remote candidate.
func (c Candidate) remoteICE() (ice.Candidate, error) {
	addr := c.Addr.Addr().Unmap()
	if !addr.IsValid() || c.Addr.Port() == 0 {
		return nil, fmt.Errorf("nat: candidate %v: no address", c.Addr)
	}
	a, port, prio := addr.String(), int(c.Addr.Port()), c.priority()
	switch c.Kind {
	case wire.KindHost:
		return ice.NewCandidateHost(&ice.CandidateHostConfig{
			Network: "udp", Address: a, Port: port, Component: iceComponent, Priority: prio,
		})
	case wire.KindServerReflexive:
		return ice.NewCandidateServerReflexive(&ice.CandidateServerReflexiveConfig{
			Network: "udp", Address: a, Port: port, Component: iceComponent, Priority: prio,
		})
	case wire.KindPeerReflexive:
		return ice.NewCandidatePeerReflexive(&ice.CandidatePeerReflexiveConfig{
			Network: "udp", Address: a, Port: port, Component: iceComponent, Priority: prio,
		})
	case wire.KindRelayed:
		return ice.NewCandidateRelay(&ice.CandidateRelayConfig{
			Network: "udp", Address: a, Port: port, Component: iceComponent, Priority: prio,
		})
	}
	return nil, fmt.Errorf("nat: candidate %v: unknown kind %d", c.Addr, c.Kind)
}
