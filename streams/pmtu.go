package streams

import (
	"github.com/quic-go/quic-go"
	"time"

	"hipnet.dev/handshake/wire"
)

// The QUIC packet size of a connection.
//
// quic-go's path MTU discovery (RFC 8899) runs only on sockets it can set
// the DF bit on, and the PacketConn under a Manager is not one: the outer
// path belongs to the overlay. So each connection's size is fixed when it
// starts, from what the PacketConn knows of the path to the peer
// (overlay's MaxDatagram: the route's MTU, less the outer headers and
// ESP's overhead): as large as fits in one outer IP packet, between
// QUIC's smallest (1200, RFC 9000 §14) and quic-go's largest (1452). A
// PacketConn that cannot say gets PacketSize. Both ends choose for their
// own direction: the client when it dials, the server when the client's
// first packet arrives (GetConfigForClient).

// pathSizer is what a PacketConn offers when it knows the path to a peer,
// as *overlay.InnerConn does.
type pathSizer interface {
	// MaxDatagram is the largest datagram to hit that is not fragmented
	// on the way, and false when that is not known.
	MaxDatagram(hit wire.HIT) (int, bool)
}

// QUIC's packet size limits: RFC 9000 §14 (a path must carry 1200-octet
// UDP payloads), and the most quic-go sends.
const (
	minPacketSize = 1200
	maxPacketSize = 1452
)

// packetSize is the QUIC packet size for a connection with peer.
func (m *Manager) packetSize(peer wire.HIT) uint16 {
	s, ok := m.pc.PacketConn.(pathSizer)
	if !ok {
		return PacketSize
	}
	n, ok := s.MaxDatagram(peer)
	if !ok {
		return PacketSize
	}
	return uint16(min(max(n, minPacketSize), maxPacketSize))
}

// connConfig is the quic.Config of a connection with peer: the Manager's,
// with the packet size of the path unless Config.QUIC set one.
func (m *Manager) connConfig(peer wire.HIT) *quic.Config {
	if m.fixedSize {
		return m.qconf
	}
	q := m.qconf.Clone()
	q.InitialPacketSize = m.packetSize(peer)
	return q
}

// configForClient is the server's GetConfigForClient: the connection's
// size by the client's path (addresses are HITs, packetconn.go), and the
// limit on the peer's connection attempts (limits.go).
func (m *Manager) configForClient(info *quic.ClientInfo) (*quic.Config, error) {
	hit, ok := remoteHIT(info.RemoteAddr)
	if !ok {
		return m.qconf, nil
	}
	m.mu.Lock()
	ok = m.allowAttempt(hit, time.Now())
	m.mu.Unlock()
	if !ok {
		return nil, errTooManyConns // limits.go: refused before our flight
	}
	return m.connConfig(hit), nil
}
