package nat

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/pion/transport/v5"
)

// errNoSockets is what noNet answers to everything but Interfaces.
var errNoSockets = errors.New("nat: the ICE agent may not open sockets or resolve names")

// noNet is the transport.Net of every agent: it has no interfaces and
// refuses to open a socket, dial or resolve. pion asks its Net for the
// interface list when an agent is built (agent.go:483) and would open
// sockets only to gather candidates (gather.go), for mDNS (disabled here)
// and for remote passive TCP candidates (agent.go:1085; only UDP ones are
// added here) — none of which a session does. With noNet in place a
// mistake there fails instead of quietly opening a socket next to the
// node's; refused counts such attempts, and the tests check it stays zero.
type noNet struct{ refused atomic.Uint64 }

func (n *noNet) refuse() error {
	n.refused.Add(1)
	return errNoSockets
}

func (n *noNet) ListenPacket(string, string) (net.PacketConn, error) { return nil, n.refuse() }
func (n *noNet) ListenUDP(string, *net.UDPAddr) (transport.UDPConn, error) {
	return nil, n.refuse()
}
func (n *noNet) ListenTCP(string, *net.TCPAddr) (transport.TCPListener, error) {
	return nil, n.refuse()
}
func (n *noNet) Dial(string, string) (net.Conn, error) { return nil, n.refuse() }
func (n *noNet) DialUDP(string, *net.UDPAddr, *net.UDPAddr) (transport.UDPConn, error) {
	return nil, n.refuse()
}
func (n *noNet) DialTCP(string, *net.TCPAddr, *net.TCPAddr) (transport.TCPConn, error) {
	return nil, n.refuse()
}
func (n *noNet) ResolveIPAddr(string, string) (*net.IPAddr, error)   { return nil, n.refuse() }
func (n *noNet) ResolveUDPAddr(string, string) (*net.UDPAddr, error) { return nil, n.refuse() }
func (n *noNet) ResolveTCPAddr(string, string) (*net.TCPAddr, error) { return nil, n.refuse() }
func (n *noNet) Interfaces() ([]*transport.Interface, error)         { return nil, nil }
func (n *noNet) InterfaceByIndex(int) (*transport.Interface, error) {
	return nil, transport.ErrInterfaceNotFound
}
func (n *noNet) InterfaceByName(string) (*transport.Interface, error) {
	return nil, transport.ErrInterfaceNotFound
}
func (n *noNet) CreateDialer(*net.Dialer) transport.Dialer { return noDialer{n} }
func (n *noNet) CreateListenConfig(*net.ListenConfig) transport.ListenConfig {
	return noListenConfig{n}
}

type noDialer struct{ n *noNet }

func (d noDialer) Dial(string, string) (net.Conn, error) { return nil, d.n.refuse() }

type noListenConfig struct{ n *noNet }

func (l noListenConfig) Listen(context.Context, string, string) (net.Listener, error) {
	return nil, l.n.refuse()
}
func (l noListenConfig) ListenPacket(context.Context, string, string) (net.PacketConn, error) {
	return nil, l.n.refuse()
}

var _ transport.Net = (*noNet)(nil)
