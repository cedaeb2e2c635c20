package overlay

import (
	"net/netip"
	"sync"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/wire"
)

// The path MTU of an association (DESIGN.md "Data path"): how large an
// inner datagram may be before its ESP packet no longer fits the path to
// the peer in one IP packet, and the outer IP layer fragments it.
//
// The figure comes from the kernel's route to the peer's locator: the
// interface MTU, lowered by what path MTU discovery has learnt for that
// destination (RFC 1191 §3, RFC 8201 §4: our socket sends with DF below
// the path MTU, so an ICMP Fragmentation Needed or Packet Too Big from a
// router lowers it). A route leaves the host, so beyond its first link we
// see only what ICMP told us; and ICMP is often filtered. A routed path is
// therefore taken at most as routedMTU. A peer at an address of this host
// is reached over the loopback, whose MTU is the whole path.

// routedMTU is the most a path through a router is assumed to carry: an
// Ethernet-class underlay (1500) less 52 octets for what may wrap our
// packets on the way without telling us (PPPoE 8, a TURN Send indication
// 36 for an IPv6 peer, or both). It is the assumption the stream layer
// made before the route was asked (streams.PacketSize).
const routedMTU = 1500 - 52

// pmtuTTL is how long a path MTU is kept before the route is asked again:
// Linux expires a learnt path MTU after 10 minutes (net.ipv4.route.
// mtu_expires).
const pmtuTTL = 10 * time.Minute

// pmtuCacheMax bounds the cache: beyond it, the figures go and are asked
// again.
const pmtuCacheMax = 1024

// pmtuCache holds the path MTU of the destinations asked lately. It is
// asked once per QUIC connection, not per packet: a mutex is enough.
type pmtuCache struct {
	mu sync.Mutex
	m  map[netip.Addr]pathMTU
}

// pathMTU is the path MTU of a destination as last asked of the route.
type pathMTU struct {
	mtu int   // IP packet size, headers included; 0: unknown
	at  int64 // Stack.clock when asked
}

// MaxDatagram returns the largest inner datagram a WriteTo to hit carries
// without fragmentation on the association's current path, by the path MTU
// above (pmtu.go), and true; or 0 and false when it is not known: no
// association or locator, or a platform whose routes we cannot ask (then
// the outer IP layer fragments what does not fit, as it always may). It
// accounts for the outer IP and UDP headers, ESP's header, IV, padding,
// trailer and ICV (of the outbound SA's suite, or the largest of the
// supported suites before there is one), and the inner UDP header.
func (s *Stack) MaxDatagram(hit wire.HIT) (int, bool) {
	p := s.lookupPeer(hit)
	if p == nil {
		return 0, false
	}
	to, ok := p.locator()
	if !ok {
		return 0, false
	}
	mtu := s.pathMTUOf(to)
	if mtu == 0 {
		return 0, false
	}
	overhead := maxESPOverhead
	if o := p.out.Load(); o != nil {
		overhead = o.Overhead
	}
	n := min(fitDatagram(mtu-ipHeaderLen(to.Addr())-udpHeaderLen, overhead), MaxPayload)
	return n, n > 0
}

// MaxDatagram is Stack.MaxDatagram, for a user that holds only the
// InnerConn.
func (c *InnerConn) MaxDatagram(hit wire.HIT) (int, bool) { return c.s.MaxDatagram(hit) }

const udpHeaderLen = 8

func ipHeaderLen(a netip.Addr) int {
	if a.Unmap().Is4() {
		return 20
	}
	return 40
}

// fitDatagram is the largest inner datagram whose ESP packet, with the
// given overhead per inner segment (the segment is the datagram and its
// inner UDP header), is at most room octets.
func fitDatagram(room int, overhead func(seg int) int) int {
	// The overhead of an empty segment includes up to a block of padding
	// that a longer one may not need: start a block above it and step
	// down (at most two blocks' steps).
	n := room - udpHeaderLen - overhead(0) + 16
	for n > 0 && udpHeaderLen+n+overhead(udpHeaderLen+n) > room {
		n--
	}
	return max(n, 0)
}

// maxESPOverhead is the largest overhead of the supported suites for a
// seg-octet segment: what an association whose suite is not yet chosen
// may add.
func maxESPOverhead(seg int) int {
	m := 0
	for _, suite := range []esp.Suite{esp.SuiteAESGCM16, esp.SuiteAES128CBCSHA256, esp.SuiteAES256CBCSHA256} {
		m = max(m, suite.Overhead(seg))
	}
	return m
}

// pathMTUOf returns the path MTU to locator to, from the cache or from
// the route. Any goroutine. The route is asked outside the lock: two
// that ask at once both store the same answer.
func (s *Stack) pathMTUOf(to netip.AddrPort) int {
	now, dst := s.clock.Load(), to.Addr()
	s.pmtus.mu.Lock()
	c, ok := s.pmtus.m[dst]
	s.pmtus.mu.Unlock()
	if ok && now-c.at < int64(pmtuTTL) {
		return c.mtu
	}
	mtu, local := s.routeMTU(to)
	if mtu > 0 && !local {
		mtu = min(mtu, routedMTU)
	}
	s.pmtus.mu.Lock()
	if s.pmtus.m == nil || len(s.pmtus.m) >= pmtuCacheMax {
		s.pmtus.m = make(map[netip.Addr]pathMTU)
	}
	s.pmtus.m[dst] = pathMTU{mtu: mtu, at: now}
	s.pmtus.mu.Unlock()
	return mtu
}
