package overlay

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/locator"
	"hipnet.dev/nat"
)

// The locators of an association (DESIGN.md "Mobility, multihoming,
// failover" and "NAT traversal and relays"): each peer has a locator.Set,
// owned by the control goroutine, which alone decides where the
// association's packets go: to a direct locator (configured, announced,
// the source of the peer's packets), to the pair ICE nominated, or
// through the relay. This file turns what the stack sees into the Set's
// events and the Set's decisions into packets:
//
//   - the data path counts, in atomics, the authenticated packets that
//     come from the current locator (the relay's address while the relay
//     is current) and the data packets it sends (receive.go, send.go);
//     the control goroutine reads the counts every pathSyncEvery while the
//     association is in use, and reports them as Set.Received and Set.Sent
//     (feedPath). Authenticated ESP from another address is handed over
//     through p.foreign and a poke: a NAT rebinding candidate, which the
//     Set verifies before any traffic goes there, or the ICE pair coming
//     back after the relay took over;
//   - the peer's LOCATOR_SET (an UPDATE, handshake EventLocatorSet) goes to
//     Set.ApplyLocatorSet (direct associations);
//   - the relay an association runs through (path.go tookRelayed,
//     dialRelayed) is Set.RelayUp when the Set is built, and again when
//     the registration comes back (relayBack); its loss is Set.RelayDown
//     (relayDown); ICE's nominated pair, handed over from the session's
//     goroutine through p.nominated and a poke, is Set.Nominated, and
//     Set.NominationLost when it is gone (pathPoke);
//   - SendProbe becomes an UPDATE with ECHO_REQUEST_SIGNED and a fresh
//     nonce (RFC 8046 §5.4), to the address under test, or through the
//     relay for the relay locator, paid for first with Set.AllowProbe; the
//     signed ECHO_RESPONSE with that nonce, wherever it arrives from, is
//     Set.Verified;
//   - SendKeepalive becomes an ESP dummy packet (sendDummy);
//   - Switch moves p.addr, where the data path sends, and p.relayed, which
//     says whether control packets go through the relay (path.go
//     sendPeer); it is logged ("path switch", or "path" with the path's
//     name for an association through a relay) and counted. A switch from
//     a direct locator to the relay rekeys through the relay, which
//     forwards ESP by SPI and did not see the rekeys of the direct path.
//
// The Set is built when the association is first used and dropped when
// it is idle and can be built again as it is (idle): an association that
// is never used costs no Set. Meanwhile its one path, if direct, gets the
// NAT keepalive its Set would send (keepIdle); a relayed one needs none
// (the relay client keeps the mapping to the relay alive). The
// associations of a relay server and those with our relays have no Set:
// the relay client keeps those alive (relayclient.go).

// pathSyncEvery is how often the data path's counts reach the Sets of the
// associations in use. It adds at most this much to the detection of a
// dead path (locator doc.go "Timing": 850 ms), which stays under a second.
const pathSyncEvery = 50 * time.Millisecond

// pathIdleAfter is how long an association may carry nothing, with no
// check of the Set in flight, before its counts stop being read: the data
// path's next packet wakes it (pokePath).
const pathIdleAfter = 2 * time.Second

// peerDoubtFor is how long a probe of the peer's on our current path
// keeps our copies of what we send: longer than its check (850 ms).
const peerDoubtFor = 2 * time.Second

// maxProbes bounds the nonces of unanswered probes kept per peer: a
// verification, a liveness check and a standby check in flight, each with
// its retransmissions.
const maxProbes = 12

// probeKeep is how long the nonce of an unanswered probe is kept: beyond
// the longest check of the Set (ProbeCount probes, each waited for at
// most 1.5 × the 2 s RTT cap), an answer is no longer waited for. Until
// then the peer's path stays watched (feedPath): a probe that is never
// answered must not keep it so for the association's lifetime.
const probeKeep = 10 * time.Second

// probeRec is a probe sent: its nonce, where it went, and when (unix
// nanoseconds).
type probeRec struct {
	nonce [16]byte
	to    netip.AddrPort
	sent  int64
}

// expireProbes forgets the probes of ps sent before now-probeKeep.
func (ps *pathState) expireProbes(now time.Time) {
	old := now.Add(-probeKeep).UnixNano()
	n := 0
	for _, r := range ps.probes {
		if r.sent > old {
			ps.probes[n] = r
			n++
		}
	}
	ps.probes = ps.probes[:n]
}

// pathState is the control goroutine's part of a peer's locators.
type pathState struct {
	set *locator.Set
	// configured is the AddPeer list the Set was last given.
	configured *[]netip.AddrPort
	// The data path's counts as last reported to the Set.
	seenIn, seenKA, seenOut, seenBytes uint64
	quietSince                         time.Time // last sync that saw no change
	syncing                            bool      // in control.pathBusy
	probes                             []probeRec
	// peerDoubts: until then the peer is checking the path we send on
	// (its probes reached us), so what we send is kept (inflight.go).
	peerDoubts time.Time
	// withdrawn is a locator the peer's LOCATOR_SET left out while it was
	// current: removed once traffic has moved off it.
	withdrawn netip.AddrPort
	// lastProof is when the current locator last carried an authenticated
	// packet, and outAtProof the data packets sent by then: on a failover,
	// what was sent into the dead path since is counted as lost.
	lastProof  time.Time
	outAtProof uint64
	// pair is the pair ICE nominated as the Set was last told
	// (iceChanged); invalid: none.
	pair netip.AddrPort
}

// managed reports whether p's path is the Set's: an association of a
// plain node, direct or through a relay, but not with a relay of ours.
func (c *control) managed(p *peer) bool {
	s := c.s
	return s.cfg.Forwarder == nil && !s.isRelay(p.hit)
}

// pathSet returns p's Set, creating it and giving it the configured
// locators; nil when p's path is not managed here, or when it has no Set
// and no association to build one for yet.
//
// A Set is built only once the base exchange has chosen the address it
// runs over (R2-SENT or ESTABLISHED): the exchange alone picks it, from
// the locator that answered a dial (followAnswer) or the source of an R1
// through a rendezvous server (followRendezvous). A Set built while the
// exchange runs would make a configured address current (Configure) and
// move the association back there, to a locator that never answered, or
// to the rendezvous server, which forwards no ESP.
func (c *control) pathSet(p *peer, now time.Time) *locator.Set {
	if !c.managed(p) {
		if p.located.Load() {
			c.resetPath(p)
		}
		return nil
	}
	if p.set() == nil && !established(p) {
		return nil
	}
	if p.path == nil {
		p.path = &pathState{}
	}
	ps := p.path
	if ps.set == nil {
		cfg := c.s.cfg.Locator
		if cfg.KeepaliveInterval == 0 {
			cfg.KeepaliveInterval = c.s.keepaliveInterval()
		}
		ps.set = locator.New(cfg)
		ps.configured = nil
		p.located.Store(true)
		c.initSet(p, now)
	}
	if cf := p.configured.Load(); cf != ps.configured {
		ps.configured = cf
		if cf != nil {
			for _, a := range *cf {
				c.act(p, now, ps.set.Configure(now, a))
			}
		}
	}
	return ps.set
}

// initSet gives p's new Set what the association runs over: the pair ICE
// nominated and the relay, if it runs through one, and the address it
// was established over. The path in use goes in first, so that a Set
// built again for an association on the ICE pair, or on a configured
// address though a relay took its base exchange, starts there without
// passing by the relay.
func (c *control) initSet(p *peer, now time.Time) {
	r := p.x.relay
	if r == nil {
		c.establishSet(p, now)
		return
	}
	ps := p.path
	if n := p.nominated.Load(); n != nil {
		ps.pair = *n
		c.act(p, now, ps.set.Nominated(now, *n))
	}
	relayUp := func() {
		if at, ok := r.locator(); ok {
			c.act(p, now, ps.set.RelayUp(now, r.hit, at))
		}
	}
	if p.relayed.Load() {
		relayUp() // before the address, which is the relay's
		c.establishSet(p, now)
		return
	}
	c.establishSet(p, now)
	relayUp()
}

// iceChanged gives p's Set the pair ICE nominated since it last looked,
// or the loss of the one it had.
func (c *control) iceChanged(p *peer, now time.Time) {
	ps := p.path
	var n netip.AddrPort
	if a := p.nominated.Load(); a != nil {
		n = *a
	}
	if n == ps.pair || p.x.relay == nil {
		return
	}
	old := ps.pair
	ps.pair = n
	if n.IsValid() {
		c.act(p, now, ps.set.Nominated(now, n))
	}
	if old.IsValid() {
		c.act(p, now, ps.set.NominationLost(now, old))
	}
}

// resetPath forgets p's Set: its association ended, and the next one
// starts from the configured locators.
func (c *control) resetPath(p *peer) {
	delete(c.pathBusy, p)
	c.unsuspect(p)
	p.held.Store(nil)
	p.path = nil
	p.located.Store(false)
	p.pathIdle.Store(false)
	p.foreign.Store(nil)
}

// pathEstablished tells the Set that the base exchange completed over the
// current address. A peer with configured locators gets its Set now, with
// them as standby locators; one with nothing but the address the
// exchange ran over, or the relay it ran through, gets one when the
// association is first used (pokePath): an association that is never
// used costs no Set, and a direct path without one is kept alive by
// keepIdle.
func (c *control) pathEstablished(p *peer, now time.Time) {
	if !c.managed(p) {
		return
	}
	switch {
	case p.set() != nil:
		c.establishSet(p, now)
	case p.configured.Load() != nil:
		c.pathSet(p, now) // initSet tells it of the exchange
	default:
		p.pathIdle.Store(true)
		return
	}
	c.busy(p, now)
}

// established reports whether p's association has completed its base
// exchange, on our side: ESTABLISHED, or R2-SENT for the Responder.
func established(p *peer) bool {
	a := p.assoc
	return a != nil && (a.State() == handshake.Established || a.State() == handshake.R2Sent)
}

// establishSet tells a Set the association exists, over the current
// address, if it does.
func (c *control) establishSet(p *peer, now time.Time) {
	if !established(p) {
		return
	}
	at, ok := p.locator()
	if !ok {
		return
	}
	c.act(p, now, p.path.set.Established(now, at))
	p.path.seenIn, p.path.seenKA = p.inCur.Load(), p.inKA.Load()
	p.path.seenOut, p.path.seenBytes = p.pktsOut.Load(), p.bytesIn.Load()
}

// busy makes the control goroutine read p's counts every pathSyncEvery.
func (c *control) busy(p *peer, now time.Time) {
	if p.set() == nil {
		return
	}
	p.pathIdle.Store(false)
	if !p.path.syncing {
		p.path.syncing = true
		p.path.quietSince = now
		c.pathBusy[p] = struct{}{}
	}
	if c.nextPathSync.IsZero() {
		c.nextPathSync = now.Add(pathSyncEvery)
	}
}

// syncPaths reads the counts of every association in use (every
// pathSyncEvery while there is one).
func (c *control) syncPaths(now time.Time) {
	c.nextPathSync = time.Time{}
	for p := range c.pathBusy {
		c.feedPath(p, now)
		if p.path != nil && p.path.syncing {
			c.sync(p)
		}
	}
	if len(c.pathBusy) > 0 {
		c.nextPathSync = now.Add(pathSyncEvery)
	}
}

// feedPath reports the data path's counts since the last call to p's Set,
// as one Sent and one Received (or ReceivedKeepalive) at now. Sends first:
// within one period the order is unknown, and a reply is the likelier last
// event on a path that works.
func (c *control) feedPath(p *peer, now time.Time) {
	ps := p.path
	set := ps.set
	cur, ok := set.Current()
	if !ok || p.assoc == nil {
		c.idle(p)
		return
	}
	ps.expireProbes(now)
	out, in, ka, bytes := p.pktsOut.Load(), p.inCur.Load(), p.inKA.Load(), p.bytesIn.Load()
	changed := false
	if out != ps.seenOut {
		ps.seenOut, changed = out, true
		set.Sent(now, cur.Addr)
	}
	n := int(min(bytes-ps.seenBytes, 1<<30))
	ps.seenBytes = bytes
	if (in != ps.seenIn || ka != ps.seenKA) && !now.Before(ps.peerDoubts) {
		c.unsuspect(p) // the path answers after all
	}
	switch {
	case in != ps.seenIn:
		ps.seenIn, ps.seenKA, changed = in, ka, true
		ps.lastProof, ps.outAtProof = now, out
		c.act(p, now, set.Received(now, cur.Addr, n))
	case ka != ps.seenKA:
		ps.seenKA = ka
		ps.lastProof, ps.outAtProof = now, out
		c.act(p, now, set.ReceivedKeepalive(now, cur.Addr, n))
	}
	// A new source after what the current locator carried: the Set
	// judges a rebinding by which came last.
	if f := p.foreign.Swap(nil); f != nil && c.fromPeer(p, f.addr) {
		changed = true
		n := int(min(f.n.Load(), 1<<30))
		if f.data.Load() {
			c.act(p, now, set.Received(now, f.addr, n))
		} else {
			c.act(p, now, set.ReceivedKeepalive(now, f.addr, n))
		}
	}
	if changed {
		ps.quietSince = now
		return
	}
	// Quiet, and no check of the path under way, ours (no probe in
	// flight) or the peer's (its doubts have had peerDoubtFor): idle. The
	// check is over, and nothing was sent for pathIdleAfter, so the
	// copies kept for a switch (inflight.go) are stale. They go, and so
	// does the suspicion, or it would outlive the check on an association
	// that receives nothing more, and keep its Set (rebuildable).
	if now.Sub(ps.quietSince) >= pathIdleAfter && len(ps.probes) == 0 && !now.Before(ps.peerDoubts) {
		c.unsuspect(p)
		c.idle(p)
	}
}

// idle stops reading p's counts until the data path pokes (pokePath).
// A Set that can be built again as it is (rebuildable) is dropped too,
// memory an idle association need not keep: the next use rebuilds it.
func (c *control) idle(p *peer) {
	delete(c.pathBusy, p)
	p.path.syncing = false
	if c.rebuildable(p) {
		c.resetPath(p)
	}
	p.pathIdle.Store(true)
}

// rebuildable reports whether p's Set holds nothing that pathSet would not
// give a new one: one Active locator in use and no check under way; the
// address the base exchange ran over or was configured with, of a direct
// association, or the relay of an association with no ICE pair. A Set
// with an ICE pair stays: it keeps the pair alive and watches it while
// the association is idle (locator Config.PairSilence).
func (c *control) rebuildable(p *peer) bool {
	ps := p.path
	set := ps.set
	if set.Len() != 1 || len(ps.probes) > 0 || p.suspect.Load() {
		return false
	}
	l, ok := set.Current()
	if !ok || l.State != locator.Active {
		return false
	}
	switch l.Origin {
	case locator.OriginConfig:
		return p.x.relay == nil
	case locator.OriginRelay:
		return p.x.relay != nil && l.Relay == p.x.relay.hit && p.nominated.Load() == nil && !ps.pair.IsValid()
	}
	return false
}

// pathPoke serves pokePath: p's association is in use again, or its ESP
// came from an address other than the current locator's.
func (c *control) pathPoke(p *peer, now time.Time) {
	c.takeConfigured(p, now) // dial.go: after AddPeer
	set := c.pathSet(p, now)
	if set == nil || p.assoc == nil {
		return
	}
	c.iceChanged(p, now)
	c.busy(p, now)
	c.feedPath(p, now)
	c.sync(p)
}

// pathTimeout runs p's Set timers (from the timer heap, sync).
func (c *control) pathTimeout(p *peer, now time.Time) {
	set := p.set()
	if set == nil || !c.managed(p) {
		return
	}
	if d := set.Deadline(); d.IsZero() || now.Before(d) {
		return
	}
	if p.path.syncing {
		c.feedPath(p, now)
		if p.set() != set {
			return // idle, and dropped (idle)
		}
	}
	c.act(p, now, set.HandleTimeout(now))
}

// pathReceived reports an authenticated control packet of n octets from
// the peer at from (through p's relay: from is the relay's address).
func (c *control) pathReceived(p *peer, now time.Time, from netip.AddrPort, n int) {
	if set := c.pathSet(p, now); set != nil && p.assoc != nil && c.fromPeer(p, from) {
		c.act(p, now, set.Received(now, from, n))
	}
}

// fromPeer reports whether an authenticated packet of p's association
// from from may be reported to p's Set. What comes from one of our relays
// is the relay locator's: when the Set does not hold it (the registration
// was lost), the relay's address is not taken for a new address of the
// peer's, to be probed there and moved to.
func (c *control) fromPeer(p *peer, from netip.AddrPort) bool {
	if _, ok := p.set().Lookup(from); ok {
		return true
	}
	return !c.s.relayAddr(unmapPort(from))
}

// pathSent reports a control packet of ours to to (sendPeer).
func (c *control) pathSent(p *peer, now time.Time, to netip.AddrPort) {
	if set := p.set(); set != nil && c.managed(p) {
		set.Sent(now, to)
	}
}

// act carries out the Set's decisions.
func (c *control) act(p *peer, now time.Time, ds []locator.Decision) {
	if len(ds) == 0 {
		return
	}
	ds = append(c.decisions[:0], ds...) // the Set reuses its slice
	c.decisions = ds[:0]
	for _, d := range ds {
		switch d.Action {
		case locator.SendProbe:
			if c.suspicious(p, d) {
				c.suspect(p)
			}
			c.probe(p, now, d)
		case locator.SendKeepalive:
			// To the relay too: it forwards ESP by SPI (the passive
			// keepalive of a one-way flow through it; the Set asks no NAT
			// keepalive of a relayed path).
			if c.s.sendDummy(p, d.To) {
				p.lastOut.Store(now.UnixNano())
			}
		case locator.Switch:
			c.switchPath(p, now, d)
		}
	}
}

// switchPath moves p's traffic to d.To.
func (c *control) switchPath(p *peer, now time.Time, d locator.Decision) {
	s := c.s
	if !d.To.IsValid() {
		s.log.Warn("path lost", "peer", p.hit.String(), "locator", d.From, "reason", d.Reason.String())
		return
	}
	wasRelayed := p.relayed.Load()
	relayed := d.Kind == locator.Relayed
	if d.From.IsValid() {
		s.ctr.pathSwitches.Add(1)
		if d.Reason == locator.ReasonFailed || d.Reason == locator.ReasonFallback {
			// What went into the dead path since its last sign of life.
			ps := p.path
			s.ctr.pathLost.Add(p.pktsOut.Load() - ps.outAtProof)
		}
	}
	prev, _ := p.locator()
	p.setLocator(d.To)
	p.relayed.Store(relayed)
	if relayed && !wasRelayed && d.From.IsValid() {
		// Back on the relay: it forwards ESP by SPI, learnt from the
		// UPDATEs it relays, and did not see the rekeys of the direct
		// path. A rekey through it (sendPeer follows p.relayed) teaches it
		// the SPIs in use; owed (sas.go), so that a switch to a rekeyed
		// SA still waiting delays it rather than drops it.
		c.oweRekey(p)
	}
	// The Set's first choice (no From) is no move when it names the
	// address the association already runs on: the base exchange and the
	// data that woke the Set just went there, so the peer needs no sign
	// of the path, and a keepalive would be one more packet, and one more
	// wake-up of the peer, in the first round trips of every association.
	c.resendHeld(p, d.To, d.From.IsValid() || prev != d.To)
	if w := p.path.withdrawn; w == d.From {
		p.path.withdrawn = netip.AddrPort{}
		p.set().Remove(now, w) // withdrawn by the peer while it was current (withdrawn)
	}
	p.path.seenIn, p.path.seenKA = p.inCur.Load(), p.inKA.Load()
	p.path.lastProof, p.path.outAtProof = now, p.pktsOut.Load()
	lvl := slog.LevelInfo
	if !d.From.IsValid() {
		lvl = slog.LevelDebug // the first locator: not a switch
	}
	if p.x.relay != nil {
		// An association through a relay: which of the relay and the
		// direct pair carries it, as before there were locators.
		s.log.Log(context.Background(), lvl, "path", "peer", p.hit.String(), "path", p.pathName(),
			"reason", d.Reason.String(), "from", d.From, "locator", d.To, "kind", d.Kind.String())
		return
	}
	s.log.Log(context.Background(), lvl, "path switch", "peer", p.hit.String(), "from", d.From, "to", d.To,
		"kind", d.Kind.String(), "reason", d.Reason.String())
}

// probe sends the check the Set asked for: an UPDATE with
// ECHO_REQUEST_SIGNED and a fresh nonce (RFC 8046 §5.4), straight to d.To,
// or through the relay when d.To is the relay's (as relayMoved's probe),
// within the Set's credit for that address.
func (c *control) probe(p *peer, now time.Time, d locator.Decision) {
	s := c.s
	a := p.assoc
	if a == nil || d.Kind == locator.Relayed && (p.x.relay == nil || p.x.relay.hit != d.Relay) {
		return
	}
	r, pkt, err := newProbe(a, now, c.probeBuf[:0], d.To)
	if err != nil {
		s.log.Debug("probe", "peer", p.hit.String(), "err", err)
		return
	}
	c.probeBuf = pkt[:0]
	if !p.set().AllowProbe(now, d.To, len(pkt)+wire.NonESPMarkerLen+28) {
		s.ctr.probesRefused.Add(1)
		return
	}
	ps := p.path
	if len(ps.probes) == maxProbes {
		ps.probes = append(ps.probes[:0], ps.probes[1:]...)
	}
	ps.probes = append(ps.probes, r)
	s.ctr.probesOut.Add(1)
	if d.Kind == locator.Relayed {
		c.sendRelayed(p, pkt) // path.go
		return
	}
	c.sendControl(pkt, d.To)
}

// echoAnswered matches an authenticated ECHO_RESPONSE_SIGNED to the probe
// that carried its nonce: that probe's address is verified.
func (c *control) echoAnswered(p *peer, now time.Time, echo []byte, in *inbound) {
	if c.relayProbeAnswered(p, echo) {
		return
	}
	ps := p.path
	if ps == nil {
		return
	}
	for i, r := range ps.probes {
		if string(r.nonce[:]) != string(echo) || now.UnixNano()-r.sent > int64(probeKeep) {
			continue // not this probe's, or too late: held back, maybe
		}
		ps.probes = append(ps.probes[:i], ps.probes[i+1:]...)
		c.s.ctr.probesAnswered.Add(1)
		if in != nil && (in.via.relay == nil || in.via.relay == p.x.relay) && in.rvs.server == nil {
			// The answer to a probe still waiting, fresh therefore: a
			// sign of life of the path it came on (handlePacket does not
			// count answers, which anyone can replay).
			c.pathReceived(p, now, in.from, in.size)
		}
		if cur, ok := p.locator(); ok && cur == unmapPort(r.to) && !now.Before(ps.peerDoubts) {
			// The current path carried the probe and its answer: it
			// works both ways, and what was kept need not be sent again.
			c.unsuspect(p)
		}
		if set := ps.set; set != nil && c.managed(p) {
			c.act(p, now, set.Verified(now, r.to))
		}
		return
	}
}

// locatorSet applies the peer's LOCATOR_SET from an authenticated UPDATE
// that came from in.
func (c *control) locatorSet(p *peer, now time.Time, raw []byte, in *inbound) {
	s := c.s
	set := c.pathSet(p, now)
	if set == nil || in == nil || in.via.relay != nil || p.x.relay != nil {
		return // only direct associations announce and follow addresses (mobility.go)
	}
	v, err := wire.ParseLocatorSet(raw)
	if err != nil {
		s.drop(&s.ctr.malformed, "malformed locator_set", in.from, err)
		return
	}
	s.log.Info("locators", "peer", p.hit.String(), "n", v.Len(), "from", in.from)
	c.act(p, now, set.ApplyLocatorSet(now, v, in.from.Port()))
	c.withdrawn(p, now, v, unmapPort(in.from))
	c.busy(p, now)
}

// withdrawn removes the peer's direct locators that its LOCATOR_SET left
// out, when the set is complete: when the UPDATE came from an address the
// set lists, no NAT stands between us on that path, so the peer knows
// every address it can be reached at (RFC 8046 §5.2: "it needs to
// continue to include all active locators", §5.3: the others are
// deprecated). Behind a NAT the set lists private addresses and the one we
// reach the peer at is the NAT's, which must stay: the Set keeps
// configured and packet-source locators for that reason, and so does this
// when the sender is not listed.
func (c *control) withdrawn(p *peer, now time.Time, v wire.LocatorSetView, from netip.AddrPort) {
	listed := func(a netip.Addr) bool {
		for k := 0; k < v.Len(); k++ {
			if l := v.At(k); l.Type != wire.LocatorTypeTransport && l.Addr.Unmap() == a {
				return true
			}
		}
		return false
	}
	if !listed(from.Addr()) {
		return
	}
	if w := p.path.withdrawn; w.IsValid() && w.Port() == from.Port() && listed(w.Addr()) {
		// Announced again (an interface that came back before the path
		// moved): the latest set decides, and it keeps the address.
		p.path.withdrawn = netip.AddrPort{}
	}
	set := p.set()
	cur, _ := set.Current()
	for _, l := range set.Locators(c.locBuf[:0]) {
		if l.Kind != locator.Direct || l.Addr.Port() != from.Port() || listed(l.Addr.Addr()) {
			continue
		}
		if l.Addr == cur.Addr {
			// Still carrying the traffic: it goes once the path has moved
			// to a verified one (switchPath), never leaving none.
			p.path.withdrawn = l.Addr
			continue
		}
		set.Remove(now, l.Addr) // not current: no decision follows
	}
}

// keepIdle sends p the NAT keepalive (RFC 5770 §4.7) that its Set would
// send if it had one (tick): an association without a Set is idle on its
// one locator, verified by the base exchange, and gets a keepalive
// KeepaliveInterval after the last packet we sent it, unless that locator
// is the relay (the relay client keeps the mapping to it alive). t is
// now, in unix ns.
func (c *control) keepIdle(p *peer, t int64) {
	if p.set() != nil || p.relayed.Load() || p.out.Load() == nil || !c.managed(p) {
		return
	}
	to, ok := p.locator()
	if ok && t-p.lastOut.Load() >= int64(c.s.keepaliveInterval()) && c.s.sendDummy(p, to) {
		p.lastOut.Store(t)
	}
}

// keepaliveFrom counts an RFC 5770 §5.3 keepalive (read loop), a STUN
// Binding Indication, from another implementation. Anyone can send one,
// so it proves nothing about a path; ours are ESP (sendDummy).
func (s *Stack) keepaliveFrom(b []byte, from netip.AddrPort) bool {
	if !nat.IsKeepalive(b) {
		return false
	}
	s.ctr.keepalivesIn.Add(1)
	return true
}

// sendDummy sends a keepalive to p at to: an ESP dummy packet (Next
// Header 59, RFC 4303 §2.6) on p's outbound SA. It refreshes the NAT
// mappings on the path like the STUN Binding Indication of RFC 5770 §5.3,
// and, being authenticated, it proves the path alive to the peer's Set
// (Received), which an indication anyone can forge must not.
func (s *Stack) sendDummy(p *peer, to netip.AddrPort) bool {
	o := p.out.Load()
	if o == nil {
		return false
	}
	bp := getBuf(o.Overhead(0))
	pkt, err := o.Seal((*bp)[:0], nil, esp.NextHeaderNone)
	if err == nil {
		err = s.sock.writeTo(pkt, to)
	}
	putBuf(bp)
	if err != nil {
		s.ctr.sendErrors.Add(1)
		return false
	}
	s.ctr.packetsOut.Add(1)
	s.ctr.bytesOut.Add(uint64(len(pkt)))
	s.ctr.keepalivesOut.Add(1)
	return true
}

// locatorsCmd asks for the locators of every peer with a Set (Peers).
type locatorsCmd struct {
	reply chan map[wire.HIT][]locator.Locator
}

func (m locatorsCmd) run(c *control, _ time.Time) {
	out := map[wire.HIT][]locator.Locator{}
	for p := range c.pathPeers() {
		out[p.hit] = p.set().Locators(nil)
	}
	m.reply <- out
}

// pathPeers returns the peers whose path a Set decides.
func (c *control) pathPeers() map[*peer]struct{} {
	ps := map[*peer]struct{}{}
	for _, p := range c.s.peerList() {
		if p.set() != nil && c.managed(p) {
			ps[p] = struct{}{}
		}
	}
	return ps
}

// peerLocators returns the Sets' locators by peer (Peers), or nil if the
// control goroutine has stopped or does not answer within a second (a
// report is not worth a caller stuck behind a busy control plane).
func (s *Stack) peerLocators() map[wire.HIT][]locator.Locator {
	reply := make(chan map[wire.HIT][]locator.Locator, 1)
	give := time.NewTimer(time.Second)
	defer give.Stop()
	select {
	case s.cmds <- locatorsCmd{reply}:
	case <-s.ctrlDone:
		return nil
	case <-give.C:
		return nil
	}
	select {
	case m := <-reply:
		return m
	case <-s.ctrlDone:
		return nil
	case <-give.C:
		return nil
	}
}

// pathEvent handles the association events of mobility (handshake
// EventLocatorSet, EventEchoRequest, EventEchoResponse).
func (c *control) pathEvent(p *peer, ev handshake.Event, now time.Time, in *inbound) {
	switch ev.Kind {
	case handshake.EventLocatorSet:
		c.locatorSet(p, now, ev.LocatorSet, in)
	case handshake.EventEchoRequest:
		// The answer goes back where the request came from: that is the
		// address the peer is verifying (RFC 8046 §5.4).
		if in == nil {
			return
		}
		c.s.ctr.echoAnswers.Add(1)
		c.reply(ev.Reply, in)
		if cur, ok := p.locator(); ok && cur == unmapPort(in.from) && p.set() != nil {
			// The peer checks the path we send on: it hears nothing from
			// us, though we hear it (a path that lost one direction).
			// Keep what we send until it has decided (inflight.go).
			p.path.peerDoubts = now.Add(peerDoubtFor)
			c.suspect(p)
			c.busy(p, now) // until the doubts are over (feedPath)
		}
	case handshake.EventEchoResponse:
		c.echoAnswered(p, now, ev.Echo, in)
	}
}

// locatorInfo is PeerInfo.Locators: the current locator first.
func locatorInfo(ls []locator.Locator, cur netip.AddrPort) []LocatorInfo {
	if len(ls) == 0 {
		return nil
	}
	out := make([]LocatorInfo, 0, len(ls))
	for _, l := range ls {
		li := LocatorInfo{Addr: l.Addr, State: l.State.String(), Origin: l.Origin.String(), Current: l.Addr == cur,
			Preferred: l.Preferred, RTT: l.RTT, LastReceived: l.LastReceived}
		if li.Current {
			out = append([]LocatorInfo{li}, out...)
		} else {
			out = append(out, li)
		}
	}
	return out
}

// suspect starts keeping copies of what p's data path sends (inflight.go):
// the current path is being checked.
func (c *control) suspect(p *peer) {
	if p.held.Load() == nil {
		p.held.Store(&inflight{})
	}
	p.suspect.Store(true)
}

// unsuspect stops keeping copies and drops them.
func (c *control) unsuspect(p *peer) {
	if h := p.held.Load(); p.suspect.Swap(false) && h != nil {
		h.clear()
	}
}

// resendHeld sends what was kept during the check of the path just left to
// the new one, and, if moved, a keepalive: either way the peer sees our
// authenticated packets arrive from the new path at once, and can verify
// it and follow (RFC 8046 §5.4) without waiting for our next data.
func (c *control) resendHeld(p *peer, to netip.AddrPort, moved bool) {
	n := 0
	if h := p.held.Load(); p.suspect.Swap(false) && h != nil {
		n = h.resend(c.s, to)
		h.clear()
	}
	p.path.peerDoubts = time.Time{}
	c.s.ctr.pathResent.Add(uint64(n))
	// And a keepalive, which is new to the peer even when the copies were
	// not (a path that lost only our direction delivered them).
	if moved && c.s.sendDummy(p, to) {
		p.lastOut.Store(time.Now().UnixNano())
	}
}

// suspicious reports whether probe d puts the current path in doubt: a
// liveness check of it, or the verification of a new source of the peer's
// packets, which may be a NAT rebinding that the path is about to follow.
func (c *control) suspicious(p *peer, d locator.Decision) bool {
	switch d.Purpose {
	case locator.ProbeLiveness:
		return true
	case locator.ProbeVerify:
		l, ok := p.set().Lookup(d.To)
		return ok && l.Origin == locator.OriginPacket && d.Attempt == 1
	}
	return false
}

// newProbe draws a fresh nonce and appends to dst the probe that carries
// it (an UPDATE with ECHO_REQUEST_SIGNED, RFC 8046 §5.4) for address to.
func newProbe(a *handshake.Association, now time.Time, dst []byte, to netip.AddrPort) (probeRec, []byte, error) {
	r := probeRec{to: to, sent: now.UnixNano()}
	if _, err := rand.Read(r.nonce[:]); err != nil {
		return r, nil, err
	}
	pkt, err := a.AppendProbe(now, dst, r.nonce[:])
	return r, pkt, err
}
