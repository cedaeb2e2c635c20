package netstack

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
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
// CLOSE, its connections fail as the lost RST would have failed them:
// Read with errPeerLeft (ECONNRESET) once what came before is read, or
// io.EOF after the peer's FIN; Write with errPeerLeftWrite (EPIPE). So
// does a QUIC stream of package streams when its peer leaves.
//
// Only the peer's CLOSE counts (AssocWatch.LeftGen), never our own Close
// of the association or its loss, after which TCP carries on over the
// next association as it would over a route that came back. A CLOSE
// from the peer says that its node closed, or that it gave the
// association up as broken (an UPDATE or a rekey went unanswered: RFC
// 7401 §6.11 step 4); either way the connections over it end, as a QUIC
// stream of package streams ends. It never says that the association
// was idle while a connection used it: keep-alive (Config.KeepAlive, 15
// s by default) keeps it busy, far below the overlay's idle timeout.
// With keep-alive off a connection may idle that long, and the peer's
// idle close must not end it: nothing is watched then, and a connection
// ends by TCP's own timers, as before.

// peerConns are the open connections with one peer, and the stop of the
// goroutine that watches that peer's association.
type peerConns struct {
	conns map[*conn]struct{}
	stop  chan struct{}
}

// watchPeerOf adds c to its peer's watched connections, starting the
// watch if c is the first; t.mu is held. c rides the association the
// peer's record names now (AssocWatch.Gen): c is established, and an
// association is live before a segment crosses it, so that is c's
// association or a later one; a CLOSE of it, or of any later one, ends c.
func (t *Transport) watchPeerOf(c *conn) {
	l, ok := t.link.(peerLink)
	if !ok || t.cfg.KeepAlive < 0 {
		return
	}
	peer := c.raddr.HIT
	w, _ := l.WatchAssociation(peer)
	c.gen = w.Gen
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
	pc := t.peers[c.raddr.HIT]
	if pc == nil {
		return
	}
	if _, ok := pc.conns[c]; ok {
		delete(pc.conns, c)
		t.endWatch(c.raddr.HIT, pc)
	}
}

// endWatch stops the watch pc of peer if it holds no connection; t.mu is
// held.
func (t *Transport) endWatch(peer wire.HIT, pc *peerConns) bool {
	if len(pc.conns) > 0 {
		return false
	}
	close(pc.stop)
	delete(t.peers, peer)
	return true
}

// watchPeer waits until the peer ends, with its CLOSE, an association
// that connections with it ride, and then resets those connections. It
// looks at the association's generations (overlay.AssocWatch), not at
// its state alone, so that a CLOSE the next association followed before
// the watch could look is not missed. It ends when the last connection
// it watches is closed or reset, or with the Transport.
func (t *Transport) watchPeer(l peerLink, peer wire.HIT, pc *peerConns) {
	defer t.wg.Done()
	for {
		w, changed := l.WatchAssociation(peer)
		if w.LeftGen != 0 && t.peerLeft(peer, pc, w) {
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

// peerLeft resets the connections of pc that ride an association the
// peer has since ended with its CLOSE (w.LeftSince their generation),
// and reports whether none is left to watch. A connection with the peer
// made after that CLOSE rides a later association, and carries on.
func (t *Transport) peerLeft(peer wire.HIT, pc *peerConns, w overlay.AssocWatch) (ended bool) {
	t.mu.Lock()
	if t.peers[peer] != pc {
		t.mu.Unlock()
		return true // the last connection closed meanwhile
	}
	var conns []*conn
	for c := range pc.conns {
		if w.LeftSince(c.gen) {
			conns = append(conns, c)
			delete(pc.conns, c)
		}
	}
	ended = t.endWatch(peer, pc)
	t.mu.Unlock()
	n := 0
	for _, c := range conns {
		if c.peerLeft() {
			n++
		}
	}
	if len(conns) > 0 {
		t.log.Debug("netstack: peer closed the association", "peer", peer, "reset", n)
	}
	return ended
}

// How a connection's peer left (conn.left).
const (
	leftNot uint32 = iota
	// leftReset: before its FIN. What it sent is still read; then Read
	// fails with errPeerLeft and the endpoint is reset (reset).
	leftReset
	// leftAfterFIN: after its FIN (CLOSE-WAIT and after): Read gives what
	// came, up to io.EOF, as before.
	leftAfterFIN
)

// peerLeft marks c as a connection whose peer left, if it is still open,
// and reports whether it was. Its Writes fail with errPeerLeftWrite from
// here on: nothing but a SYN can reach the peer now. A connection with
// nothing left to read and no FIN from the peer is reset at once, as the
// peer's RST would have reset it; data the peer sent before it left is
// not thrown away (an RST does not throw it away either): Read returns
// it first (conn.Read).
func (c *conn) peerLeft() bool {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	if c.released {
		return false
	}
	how := leftReset
	switch tcp.EndpointState(c.ep.State()) {
	case tcp.StateEstablished, tcp.StateSynRecv, tcp.StateFinWait1, tcp.StateFinWait2:
	case tcp.StateCloseWait, tcp.StateClosing, tcp.StateLastAck:
		how = leftAfterFIN
	default:
		return false // TIME-WAIT, or closed or reset already
	}
	c.left.Store(how) // before a blocked Read or Write wakes
	if n, _ := c.ep.GetSockOptInt(tcpip.ReceiveQueueSizeOption); how == leftReset && n == 0 {
		c.abortLocked()
		return true
	}
	c.wq.Notify(waiter.ReadableEvents | waiter.WritableEvents)
	return true
}

// reset resets c's endpoint (RST), unless it was released: a
// connection whose peer left, once Read has drained it, and every open
// connection when the Transport closes.
func (c *conn) reset() {
	c.endMu.Lock()
	defer c.endMu.Unlock()
	if !c.released {
		c.abortLocked()
	}
}

// abortLocked resets the endpoint, once: its RST goes nowhere (the Link
// refuses it after the peer's CLOSE), and netstack wakes whoever waits;
// c.endMu is held.
func (c *conn) abortLocked() {
	if !c.aborted {
		c.aborted = true
		c.ep.Abort()
	}
}
