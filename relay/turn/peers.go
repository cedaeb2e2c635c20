package turn

import (
	"net"
	"net/netip"
)

var broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// defaultPeerAllowed is the peer policy when Config.PeerAllowed is nil: a
// relay on a real address must not be a way into its own host (its
// loopback services, or its own ports, which would make a TURN loop), so
// loopback peers and the relay's address are refused; a relay bound to
// loopback is a test setup and may reach loopback peers.
func defaultPeerAllowed(relayIP netip.Addr) func(netip.Addr) bool {
	if relayIP.IsLoopback() {
		return func(netip.Addr) bool { return true }
	}
	return func(peer netip.Addr) bool { return !peer.IsLoopback() && peer != relayIP }
}

// permit is the pion PermissionHandler: it decides each XOR-PEER-ADDRESS of
// a CreatePermission or ChannelBind (RFC 8656 §10.2, §12.2); pion answers
// 403 Forbidden when it returns false.
func (s *Server) permit(client net.Addr, peerIP net.IP) bool {
	peer, ok := netip.AddrFromSlice(peerIP)
	peer = peer.Unmap()
	if !ok || peer.IsUnspecified() || peer.IsMulticast() || peer == broadcast4 || !s.cfg.peerAllowed(peer) {
		s.stats.refusedPeer.Add(1)
		s.cfg.log.Debug("turn: peer refused", "client", client, "peer", peerIP)
		return false
	}
	return true
}
