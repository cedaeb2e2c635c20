package overlay

import (
	"net"
	"net/netip"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/nat"
)

// Paths to a peer (DESIGN.md "NAT traversal and relays").
//
// A peer is reached directly at its locator, or through a relay:
//   - we dial a HIT with no known locator through a relay we are
//     registered with: our control packets go to the relay, which forwards
//     them by Receiver's HIT to the registered peer;
//   - a peer dials us through our relay: its packets arrive from the relay
//     with RELAY_FROM (checked with our association with the relay), and
//     ours go back through the relay with RELAY_TO (RFC 5770 §4.5, §4.10).
//
// ESP goes to the relay at first (it forwards by SPI, package relay), so
// data flows as soon as the base exchange completes; with ICE-STUN-UDP the
// two ends then run connectivity checks (nat/) on their one socket, and
// ESP moves to the nominated pair; when that pair goes dark, ESP goes back
// to the relay, and returns when the pair works again. The association,
// its SAs and the application's connections stay. Which of the two
// carries the ESP is not decided here: the relay and the pair are
// locators of the association's locator.Set, like the locators of a direct
// association, and locators.go carries out its decisions. This file
// records the relay an association runs through (tookRelayed,
// dialRelayed), hands ICE's nomination to the control goroutine
// (nominated), tells the Sets when a relay registration is lost and comes
// back (relayDown, relayBack), and sends control packets on the path the
// ESP takes (sendPeer).

// via is the relay a control packet came through, and the address the
// relay saw its sender at (RELAY_FROM), as openRelayed found them.
type via struct {
	relay *peer
	from  netip.AddrPort
}

// openRelayed checks and strips the RELAY_FROM and RELAY_HMAC that one of
// our relays added to pk (RFC 5770 §4.5 step 3) and returns the relay and
// where it saw the sender (a zero via for a direct packet). It reports
// false when the packet must be dropped.
func (c *control) openRelayed(pk *ctrlPacket, pkt *wire.Packet) (via, bool) {
	s := c.s
	if _, ok := pkt.Param(wire.ParamRelayFrom); !ok {
		return via{}, true
	}
	rp := s.relayAt(pk.from)
	if rp == nil {
		s.drop(&s.ctr.controlRejected, "relay_from not from our relay", pk.from, nil)
		return via{}, false
	}
	inner, from, err := rp.assoc.OpenRelayed(pk.b)
	if err != nil {
		s.drop(&s.ctr.controlRejected, "relay_hmac", pk.from, err)
		return via{}, false
	}
	np, err := wire.ParsePacket(inner)
	if err != nil {
		s.drop(&s.ctr.malformed, "malformed control", pk.from, err)
		return via{}, false
	}
	pk.b, *pkt = inner, np
	return via{relay: rp, from: from.AddrPort()}, true
}

// reply sends a direct answer (R1, NOTIFY) to the packet in: back through
// the relay it came through, or to its source.
func (c *control) reply(pkt []byte, in *inbound) {
	if in.rvs.server != nil {
		c.replyRendezvous(pkt, in.rvs)
		return
	}
	if in.via.relay != nil {
		c.sendVia(pkt, in.via.relay, in.via.from)
		return
	}
	c.sendControl(pkt, in.from)
}

// sendVia sends pkt through relay r to the peer it saw at to, with
// RELAY_TO and RELAY_HMAC.
func (c *control) sendVia(pkt []byte, r *peer, to netip.AddrPort) {
	s := c.s
	at, ok := r.locator()
	if !ok || r.assoc == nil {
		return
	}
	ta := wire.TransportAddress{Type: wire.ParamRelayTo, Port: to.Port(), Protocol: wire.ProtocolUDP, Addr: to.Addr().Unmap()}
	out, err := r.assoc.AppendRelayed(append(make([]byte, 0, len(pkt)+64), pkt...), ta)
	if err != nil {
		s.log.Debug("relay_to failed", "relay", r.hit.String(), "err", err)
		return
	}
	c.sendControl(out, at)
}

// sendPeer sends a control packet of p's association on p's path, where
// its ESP goes: to the current locator, or through the relay while that
// is the current locator (RFC 5770 §4.10 lets control packets use the
// nominated pair). Never both: a duplicate arriving by the other path in
// the middle of crossing rekeys confuses which UPDATE answers which. The
// relay therefore does not see the rekeys of a direct path; a switch back
// to it rekeys at once, so that it learns the SPIs it must forward
// (locators.go switchPath).
func (c *control) sendPeer(p *peer, pkt []byte) {
	now := time.Now()
	if p.x.relay != nil && p.relayed.Load() {
		c.sendRelayed(p, pkt)
		if at, ok := p.x.relay.locator(); ok {
			c.pathSent(p, now, at) // locators.go
		}
		c.dialSent(p, pkt, netip.AddrPort{}, now)
		return
	}
	if to, ok := p.locator(); ok {
		c.sendControl(pkt, to)
		c.pathSent(p, now, to)      // locators.go
		c.dialSent(p, pkt, to, now) // dial.go
	}
}

// sendRelayed sends a control packet of p's association through p's
// relay: with RELAY_TO when we are the registered end (the relay saw the
// peer at p.x.relayTo), else straight to the relay, which forwards it by
// Receiver's HIT to the peer registered with it.
func (c *control) sendRelayed(p *peer, pkt []byte) {
	switch {
	case p.x.relay == nil:
	case p.x.relayTo.IsValid():
		c.sendVia(pkt, p.x.relay, p.x.relayTo)
	default:
		if at, ok := p.x.relay.locator(); ok {
			c.sendControl(pkt, at)
		}
	}
}

// throughRelay reports whether in, a packet of p's association, came
// through p's relay: with RELAY_FROM when we are the end registered with
// it, or from its address when the peer is (the relay forwards a packet
// with RELAY_TO as it is, RFC 5770 §4.5).
func (c *control) throughRelay(p *peer, in *inbound) bool {
	r := p.x.relay
	if r == nil {
		return false
	}
	if in.via.relay != nil {
		return in.via.relay == r
	}
	at, ok := r.locator()
	return ok && at == unmapPort(in.from)
}

// tookRelayed records that p's new association (an I2 just accepted)
// runs through the relay the I2 came through, if it did. Its locator Set
// starts afresh: the next one is built with the relay (locators.go
// pathSet, RelayUp) when the association is first used.
func (c *control) tookRelayed(p *peer, v via) {
	if v.relay == nil || v.relay == p {
		return
	}
	c.resetPath(p) // locators.go
	x := p.mut()
	x.relay, x.relayTo = v.relay, v.from
	if !p.static.Load() || p.relayed.Load() {
		if at, ok := v.relay.locator(); ok {
			p.setLocator(at)
			p.relayed.Store(true)
		}
	}
}

// relayMoved is called for an authenticated UPDATE with a SEQ that came
// through p's relay: if the relay saw it come from another address than
// the one our RELAY_TO names, the registered peer behind the relay may
// have moved (its NAT mapping changed and it registered again). RELAY_TO
// follows only once the new address has answered a signed probe sent
// through the relay to it: a copy of the peer's UPDATE that an attacker
// sends through the relay from elsewhere must not move it (RFC 8046 §5.4,
// applied to the relayed path).
func (c *control) relayMoved(p *peer, now time.Time, in *inbound) {
	if p == nil || p.x.relay == nil || p.x.relay != in.via.relay || !p.x.relayTo.IsValid() ||
		in.via.from == p.x.relayTo || p.assoc == nil || p.x.relayCheck != nil && now.Before(p.x.relayCheck.at.Add(relayProbeEvery)) {
		return
	}
	r, pkt, err := newProbe(p.assoc, now, nil, in.via.from) // locators.go
	if err != nil {
		return
	}
	p.mut().relayCheck = &relayCheck{probeRec: r, at: now}
	c.s.ctr.probesOut.Add(1)
	c.sendVia(pkt, p.x.relay, r.to)
}

// relayCheck is relayMoved's probe and when it went.
type relayCheck struct {
	probeRec
	at time.Time
}

// relayProbeEvery bounds the probes relayMoved sends per peer: the
// peer's UPDATE is retransmitted until answered, and each copy must not
// cost a signature.
const relayProbeEvery = 500 * time.Millisecond

// relayProbeAnswered moves RELAY_TO to the address a relayed probe
// verified, if echo is its nonce.
func (c *control) relayProbeAnswered(p *peer, echo []byte) bool {
	if p.x.relayCheck == nil {
		return false
	}
	r := p.x.relayCheck.probeRec
	if string(r.nonce[:]) != string(echo) {
		return false
	}
	p.x.relayCheck = nil // p.x is p's own: it held the check
	c.s.ctr.probesAnswered.Add(1)
	if p.x.relay != nil && p.x.relayTo != r.to {
		c.s.log.Info("path switch", "peer", p.hit.String(), "from", p.x.relayTo, "to", r.to, "kind", "relayed", "reason", "rebinding")
		c.s.ctr.pathSwitches.Add(1)
		p.x.relayTo = r.to // p.x is p's own: it has a relay
	}
	return true
}

// dialRelayed prepares p, which has no locator, to be reached through a
// relay we are registered with. It reports false if there is none. As in
// tookRelayed, p's locator Set starts afresh, with the relay.
func (c *control) dialRelayed(p *peer) bool {
	r := c.s.registeredRelay()
	if r == nil || r == p {
		return false
	}
	at, _ := r.locator()
	c.resetPath(p) // locators.go
	x := p.mut()
	x.relay, x.relayTo = r, netip.AddrPort{}
	p.setLocator(at)
	p.relayed.Store(true)
	return true
}

// relayBack serves relayBackCmd: we registered with relay h (again). The
// Sets of the associations through it have the relay back (RelayUp), and
// those whose ESP goes through it rekey: a relay that restarted forwards
// their ESP again once it has seen the SPIs in the UPDATEs (package
// relay). A first registration finds none; associations on a direct path
// rekey when they fall back to the relay (locators.go switchPath).
func (c *control) relayBack(now time.Time, h wire.HIT) {
	r := c.s.lookupPeer(h)
	if r == nil {
		return
	}
	at, ok := r.locator()
	for _, p := range c.s.peerList() {
		if p.x.relay != r {
			continue
		}
		if set := p.set(); set != nil && ok && c.managed(p) {
			c.act(p, now, set.RelayUp(now, h, at)) // locators.go
			c.sync(p)
		}
		if p.relayed.Load() && p.assoc != nil && p.out.Load() != nil {
			c.s.log.Info("rekey through a re-registered relay", "peer", p.hit.String(), "relay", h.String())
			c.oweRekey(p)
		}
	}
}

// relayDown serves relayDownCmd: our registration with relay h is lost
// (relayclient.go). The Sets of the associations through it lose the
// relay locator (RelayDown); one whose traffic went there moves to the
// ICE pair if that works, or, having nothing better, keeps sending to the
// relay's address until the relay is back (relayBack).
func (c *control) relayDown(now time.Time, h wire.HIT) {
	for _, p := range c.s.peerList() {
		if p.x.relay == nil || p.x.relay.hit != h || !c.managed(p) {
			continue
		}
		if set := p.set(); set != nil {
			c.act(p, now, set.RelayDown(now, h)) // locators.go
			c.sync(p)
		}
	}
}

// clearPath forgets p's relay path and ICE session (its association is
// gone).
func (c *control) clearPath(p *peer) {
	if p.x.ice != nil {
		_ = p.x.ice.Close() // no callback runs after it returns
		p.x.ice = nil       // p.x is p's own: it held the session
	}
	p.nominated.Store(nil)
	if p.x.relay != nil && !p.static.Load() {
		p.addr.Store(nil)
	}
	if p.x.relay != nil || p.x.relayTo.IsValid() {
		p.x.relay, p.x.relayTo = nil, netip.AddrPort{} // p.x is p's own: it had a relay
	}
	p.relayed.Store(false)
}

// candidates is handshake.Config.Candidates: our ICE candidates for a
// relayed base exchange — the socket's host addresses and the
// server-reflexive ones the relays' STUN services reported.
func (c *control) candidates(peer wire.HIT) []wire.Locator {
	s := c.s
	p := s.lookupPeer(peer)
	if (c.handling == nil || c.handling.via.relay == nil) && (p == nil || p.x.relay == nil) {
		return nil
	}
	var cs []nat.Candidate
	for _, a := range s.hostAddrs() {
		cs = append(cs, nat.Candidate{Addr: a, Kind: wire.KindHost})
	}
	for _, a := range s.srflxCandidates() {
		cs = append(cs, nat.Candidate{Addr: a, Kind: wire.KindServerReflexive})
	}
	return nat.Locators(cs, 0, uint32(relayLifetime/time.Second))
}

// hostAddrs returns the socket's address, or every interface address with
// its port when the socket is bound to the unspecified address.
func (s *Stack) hostAddrs() []netip.AddrPort {
	l := s.sock.local
	if !l.Addr().IsUnspecified() {
		return []netip.AddrPort{l}
	}
	if w := s.cfg.WatchAddrs; w != nil {
		// The watcher follows the socket's network namespace;
		// net.InterfaceAddrs reads the calling thread's, which in a
		// namespaced process may be another.
		var out []netip.AddrPort
		for _, a := range w.Addrs() {
			if a = a.Unmap(); !l.Addr().Is4() || a.Is4() {
				out = append(out, netip.AddrPortFrom(a, l.Port()))
			}
		}
		return out
	}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.AddrPort
	for _, ifa := range ifas {
		pfx, err := netip.ParsePrefix(ifa.String())
		if err != nil {
			continue
		}
		a := pfx.Addr()
		if a.IsLoopback() || a.IsLinkLocalUnicast() || (l.Addr().Is4() && !a.Is4()) {
			continue
		}
		out = append(out, netip.AddrPortFrom(a, l.Port()))
	}
	return out
}

// startICE starts the connectivity checks of a relayed association that
// selected ICE-STUN-UDP (RFC 5770 §4.6); the Initiator controls.
func (c *control) startICE(p *peer, a *handshake.Association) {
	s := c.s
	if p.x.ice != nil || p.x.relay == nil || a.NATMode() != wire.NATModeICESTUNUDP || s.iceMux == nil {
		return
	}
	remote := nat.FromLocators(a.PeerCandidates())
	if len(remote) == 0 {
		return
	}
	local := s.sock.local
	if hs := s.hostAddrs(); len(hs) > 0 {
		local = hs[0]
	}
	sess, err := s.iceMux.NewSession(nat.SessionConfig{
		LocalHIT: s.hit, PeerHIT: p.hit, Key: a.ICEKey(), Controlling: a.Info().Initiator,
		Pacing: a.Pacing(), // negotiated in the base exchange (RFC 5770 §4.4)
		Local:  local, Remote: remote, Send: s.sendSTUN, Logger: s.log, After: s.after,
	}, func(remote netip.AddrPort) { s.nominated(p, remote) }, func() {
		s.log.Info("ice failed: staying relayed", "peer", p.hit.String())
		s.nominationLost(p)
	})
	if err != nil {
		s.log.Warn("ice", "peer", p.hit.String(), "err", err)
		return
	}
	p.mut().ice = sess
	s.log.Debug("ice started", "peer", p.hit.String(), "remote", len(remote))
}

// sendSTUN writes an ICE check on the socket.
func (s *Stack) sendSTUN(b []byte, to netip.AddrPort) error {
	if err := s.sock.writeTo(b, to); err != nil {
		s.ctr.sendErrors.Add(1)
		return err
	}
	s.ctr.packetsOut.Add(1)
	s.ctr.bytesOut.Add(uint64(len(b)))
	return nil
}

// nominated hands the pair ICE nominated to the control goroutine (any
// goroutine: ICE's callback): the Set of p's association is told of it
// (Nominated) and moves the ESP there (locators.go pathPoke).
func (s *Stack) nominated(p *peer, remote netip.AddrPort) {
	remote = unmapPort(remote)
	p.nominated.Store(&remote)
	s.poke(p, pokePath)
	s.log.Debug("ice nominated", "peer", p.hit.String(), "remote", remote)
}

// nominationLost tells the control goroutine that p's ICE session failed
// (any goroutine): the pair it nominated, if any, is gone
// (NominationLost).
func (s *Stack) nominationLost(p *peer) {
	if p.nominated.Swap(nil) != nil {
		s.poke(p, pokePath)
	}
}

// pathName is PeerInfo.Path.
func (p *peer) pathName() string {
	if p.relayed.Load() {
		return "relayed"
	}
	return "direct"
}
