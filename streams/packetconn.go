package streams

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// packetConn is the PacketConn handed to quic-go. It hides everything but
// net.PacketConn, so that quic-go treats it as a plain datagram socket (no
// batched reads, no GSO, no DF bit, hence no path MTU discovery of its
// own: the packet size comes from the path, pmtu.go), and it adapts three
// behaviours:
//
//   - SetReadBuffer and SetWriteBuffer succeed without doing anything.
//     quic-go tries to enlarge the socket buffers and logs a warning with
//     the standard logger when it cannot; the buffers are the overlay's.
//   - A WriteTo that fails with overlay.ErrQueueFull (a base exchange is
//     running and its queue is full) reports success: QUIC treats the
//     datagram as lost and retransmits it, where an error would tear the
//     connection down.
//   - A datagram whose destination connection ID belongs to another HIT
//     than its sender's never reaches quic-go, nor does one from an
//     address that is not a HIT; a long-header packet we send binds its
//     source connection ID to its destination HIT (cids.go).
//   - Addresses cross to quic-go as *net.UDPAddr whose IP is the peer's
//     HIT (udpAddr), not as *overlay.Addr. quic-go compares the sender of
//     every packet a server connection gets with the connection's peer,
//     and for any address but a *net.UDPAddr it does so by formatting
//     both as strings: two allocations and some 6% of the CPU of a bulk
//     transfer. A small cache gives the same *net.UDPAddr for the same
//     sender, so a read allocates nothing either. The HIT in the address
//     is still the one the ESP SA authenticated: quic-go reports only
//     addresses that ReadFrom gave it or that we dialled (remoteHIT
//     turns them back).
type packetConn struct {
	net.PacketConn
	addrs *addrCache
	gates *gates    // early.go: packets held back while a 0-RTT stream opens
	cids  *cidTable // cids.go: the HIT each connection ID belongs to
}

func newPacketConn(pc net.PacketConn) packetConn {
	return packetConn{PacketConn: pc, addrs: &addrCache{}, gates: &gates{}, cids: newCIDTable()}
}

// addrConn is the allocation-free side of *overlay.InnerConn.
type addrConn interface {
	ReadFromAddr(b []byte) (int, overlay.Addr, error)
	WriteToAddr(b []byte, to overlay.Addr) (int, error)
}

func (c packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		var n int
		var from overlay.Addr
		if ac, ok := c.PacketConn.(addrConn); ok {
			var err error
			if n, from, err = ac.ReadFromAddr(b); err != nil {
				return n, nil, err
			}
		} else {
			m, addr, err := c.PacketConn.ReadFrom(b)
			if err != nil {
				return m, nil, err
			}
			a, ok := addr.(*overlay.Addr)
			if !ok || a == nil { // no connection's peer: every one is a HIT
				c.cids.drop()
				continue
			}
			n, from = m, *a
		}
		if !c.cids.admit(b[:n], from.HIT) {
			continue
		}
		c.gates.pass(from.HIT)
		return n, c.addrs.udp(from), nil
	}
}

func (c packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var n int
	var err error
	if to, ok := hipAddr(addr); ok {
		if !c.cids.sent(b, to.HIT) {
			return len(b), nil // lost, for QUIC: it would name another HIT's connection (cids.go)
		}
		if ac, ok := c.PacketConn.(addrConn); ok {
			n, err = ac.WriteToAddr(b, to)
		} else {
			a := to
			n, err = c.PacketConn.WriteTo(b, &a)
		}
	} else {
		n, err = c.PacketConn.WriteTo(b, addr)
	}
	if err != nil && errors.Is(err, overlay.ErrQueueFull) {
		return len(b), nil
	}
	return n, err
}

func (packetConn) SetReadBuffer(int) error  { return nil }
func (packetConn) SetWriteBuffer(int) error { return nil }

// hipAddr is the HIP address in addr: an *overlay.Addr, or a
// *net.UDPAddr of this package's making (an IPv6 HIT).
func hipAddr(addr net.Addr) (overlay.Addr, bool) {
	switch a := addr.(type) {
	case *overlay.Addr:
		if a != nil {
			return *a, true
		}
	case *net.UDPAddr:
		if a == nil || len(a.IP) != len(wire.HIT{}) {
			break
		}
		if ip, _ := netip.AddrFromSlice(a.IP); !ip.Is4In6() { // net's IPv4 form is 16 octets too
			return overlay.Addr{HIT: wire.HIT(ip.As16()), Port: a.Port}, true
		}
	}
	return overlay.Addr{}, false
}

// remoteHIT is the peer HIT of a QUIC connection's remote address.
func remoteHIT(addr net.Addr) (wire.HIT, bool) {
	a, ok := hipAddr(addr)
	return a.HIT, ok
}

// addrCacheSize is how many senders the cache of a packetConn holds: the
// peers a node exchanges streams with at once, give or take. A miss costs
// one allocation, as every read did before.
const addrCacheSize = 64

// addrCache maps overlay addresses to the *net.UDPAddr quic-go sees,
// direct-mapped by the HIT's last octets (a hash output: ORCHID) and the
// port. An entry is never changed once made, only replaced: quic-go keeps
// the pointers it is given.
type addrCache struct {
	mu    sync.Mutex
	slots [addrCacheSize]struct {
		key overlay.Addr
		udp *net.UDPAddr
	}
}

func (c *addrCache) udp(a overlay.Addr) *net.UDPAddr {
	i := (uint(a.HIT[15]) ^ uint(a.HIT[14])<<3 ^ uint(a.Port)) % addrCacheSize
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[i]
	if s.udp == nil || s.key != a {
		ip := make(net.IP, len(a.HIT))
		copy(ip, a.HIT[:])
		s.key, s.udp = a, &net.UDPAddr{IP: ip, Port: a.Port}
	}
	return s.udp
}
