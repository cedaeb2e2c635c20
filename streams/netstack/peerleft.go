package netstack

import (
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"hipnet.dev/handshake/wire"
)

// Connections whose peer left. A node that closes resets its connections
// (RST) and then ends each association with CLOSE (RFC 7401 §5.3.7). The
// RST is one ESP packet and may be lost; the CLOSE is retransmitted until
// it is acknowledged or gives up. Were the RST lost, a connection that
// waits for data would only learn of it from keep-alive, minutes later,
// and its own segments could not even reach the peer: after the peer's
// CLOSE only a SYN may start a new base exchange (reopenLink). So every
// peer with open connections is watched, on a Link that reports on its
// associations (peerLink): once the association ends with the peer's
// CLOSE, its connections that still expect data from it are reset here,
// as the lost RST would have reset them, and fail with errPeerLeft on
// Read (ECONNRESET) and errPeerLeftWrite on Write (EPIPE), as a QUIC
// stream of package streams does when its peer leaves.
//
// Only the peer's CLOSE counts (Link ClosedByPeer), never our own Close
// of the association or its loss, after which TCP carries on over the
// next association as it would over a route that came back. An
// association with open connections is not closed for idleness while
// keep-alive runs (Config.KeepAlive, 15 s, well under the overlay's
// idle timeout), so with keep-alive on, a CLOSE from the peer means that
// the peer's node, or the peer's application, ended it.

// peerConns are the open connections with one peer, and the stop of the
// goroutine that watches that peer's association.
type peerConns struct {
	conns map[*conn]struct{}
	stop  chan struct{}
}

// watchPeerOf adds c to its peer's watched connections, starting the
// watch if c is the first; t.mu is held.
func (t *Transport) watchPeerOf(c *conn) {
	l, ok := t.link.(peerLink)
	if !ok {
		return
	}
	peer := c.raddr.HIT
	pc := t.peers[peer]
	if pc == nil {
		pc = &peerConns{conns: make(map[*conn]struct{}), stop: make(chan struct{})}
		t.peers[peer] = pc
		t.wg.Add(1)
		go t.watchPeer(l, peer, pc)
	}
	pc.conns[c] = struct{}{}
}

// unwatchPeerOf removes c from its peer's watched connections, and stops
// the watch after the last; t.mu is held.
func (t *Transport) unwatchPeerOf(c *conn) {
	peer := c.raddr.HIT
	pc := t.peers[peer]
	if pc == nil {
		return
	}
	delete(pc.conns, c)
	if len(pc.conns) == 0 {
		close(pc.stop)
		delete(t.peers, peer)
	}
}

// watchPeer waits until the association with peer ends with the peer's
// CLOSE, and then resets the connections with it. It ends then, when the
// last of them is closed, or with the Transport. A connection is
// established over a live association, so a CLOSE seen from the start is
// that association's, or a later one's: never the CLOSED record of an
// association before it.
func (t *Transport) watchPeer(l peerLink, peer wire.HIT, pc *peerConns) {
	defer t.wg.Done()
	for {
		live, changed := l.WatchAssociation(peer)
		if !live && l.ClosedByPeer(peer) {
			t.peerLeft(peer, pc)
			return
		}
		select {
		case <-changed:
		case <-pc.stop:
			return
		case <-t.done:
			return
		}
	}
}

// peerLeft resets the connections with peer that the watch pc holds. The
// next connection with peer starts a watch of its own.
func (t *Transport) peerLeft(peer wire.HIT, pc *peerConns) {
	t.mu.Lock()
	if t.peers[peer] != pc {
		t.mu.Unlock()
		return // the last connection closed meanwhile
	}
	delete(t.peers, peer)
	conns := make([]*conn, 0, len(pc.conns))
	for c := range pc.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	n := 0
	for _, c := range conns {
		if c.peerLeft() {
			n++
		}
	}
	t.log.Debug("netstack: peer closed the association", "peer", peer, "reset", n)
}

// peerLeft resets c, as the peer's lost RST would have, if c still
// expects data from the peer; it reports whether it did. A connection
// whose peer's FIN came (CLOSE-WAIT, and after) is left as it is: what
// the peer sent can still be read, up to io.EOF.
func (c *conn) peerLeft() bool {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	if c.released {
		return false
	}
	switch tcp.EndpointState(c.ep.State()) {
	case tcp.StateEstablished, tcp.StateSynRecv, tcp.StateFinWait1, tcp.StateFinWait2:
	default:
		return false
	}
	c.left.Store(true) // before Abort wakes a blocked Read or Write
	c.ep.Abort()
	return true
}
