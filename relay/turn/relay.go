package turn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	pturn "github.com/pion/turn/v5"
)

// Why an Allocate found no relayed socket; pion answers each with 508
// Insufficient Capacity (RFC 8656 §7.2).
var (
	errCapacity   = errors.New("turn: MaxAllocations reached")
	errClosing    = errors.New("turn: server closing")
	errFamily     = errors.New("turn: relayed address family not offered")
	errNoTCPRelay = errors.New("turn: TCP relaying (RFC 6062) not offered")
)

// relayGenerator is the pion RelayAddressGenerator of the server: every
// relayed socket is opened, counted and bounded here, and closed through
// relayConn, so the count of open sockets is exact however an allocation
// ends (lifetime expiry, Refresh with LIFETIME 0, Revoke, Close).
type relayGenerator struct{ s *Server }

var _ pturn.RelayAddressGenerator = relayGenerator{}

func (relayGenerator) Validate() error { return nil } // Config.settings did

// AllocatePacketConn opens the relayed UDP socket of a new allocation.
func (g relayGenerator) AllocatePacketConn(conf pturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	s := g.s
	network := "udp6"
	if s.cfg.relayIP.Is4() {
		network = "udp4"
	}
	if conf.Network != network {
		s.stats.relayFailed.Add(1)
		return nil, nil, fmt.Errorf("%w: %s asked, %s offered", errFamily, conf.Network, network)
	}
	if conf.RequestedPort < 0 || conf.RequestedPort > 0xffff {
		s.stats.relayFailed.Add(1)
		return nil, nil, fmt.Errorf("turn: requested port %d out of range", conf.RequestedPort)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		s.stats.relayFailed.Add(1)
		return nil, nil, errClosing
	case len(s.relays) >= s.cfg.maxAllocations:
		s.stats.refusedCapacity.Add(1)
		s.cfg.log.Warn("turn: allocation refused", "hit", conf.UserID, "reason", errCapacity, "max", s.cfg.maxAllocations)
		return nil, nil, errCapacity
	}
	pc, err := s.cfg.relayListen(network, netip.AddrPortFrom(s.cfg.relayIP, uint16(conf.RequestedPort)).String())
	if err != nil {
		s.stats.relayFailed.Add(1)
		s.cfg.log.Warn("turn: relayed socket not opened", "hit", conf.UserID, "err", err)
		return nil, nil, err
	}
	local, err := netip.ParseAddrPort(pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		s.stats.relayFailed.Add(1)
		return nil, nil, fmt.Errorf("turn: relayed socket address %v: %w", pc.LocalAddr(), err)
	}
	rc := &relayConn{PacketConn: pc, s: s, hit: conf.UserID}
	s.relays[rc] = struct{}{}
	s.stats.allocations.Add(1)
	return rc, &net.UDPAddr{IP: s.cfg.relayIP.AsSlice(), Port: int(local.Port())}, nil
}

// AllocateListener would open the relayed TCP listener of RFC 6062; a HIP
// host needs UDP only (ESP and HIP control ride UDP, RFC 5770 §5.1).
func (g relayGenerator) AllocateListener(pturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	g.s.stats.relayFailed.Add(1)
	return nil, nil, errNoTCPRelay
}

// AllocateConn would dial a peer for an RFC 6062 Connect; see AllocateListener.
func (relayGenerator) AllocateConn(pturn.AllocateConnConfig) (net.Conn, error) {
	return nil, errNoTCPRelay
}

// relayConn is a relayed socket as pion holds it: its reads are counted
// for Close's wait, and closing it (once) takes it off the server's books.
type relayConn struct {
	net.PacketConn
	s    *Server
	hit  string // the allocation's userID: the HIT in text form
	once sync.Once
	err  error
}

func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.s.reads.enter()
	defer c.s.reads.leave()
	return c.PacketConn.ReadFrom(p)
}

// Close closes the socket the first time and returns that result every
// time: pion's allocation manager stops closing the rest of its
// allocations at the first error, and the socket may already have been
// closed by Revoke or Server.Close.
func (c *relayConn) Close() error {
	c.once.Do(func() {
		c.err = c.PacketConn.Close()
		c.s.mu.Lock()
		delete(c.s.relays, c)
		c.s.mu.Unlock()
		c.s.stats.allocations.Add(^uint64(0))
	})
	return c.err
}
