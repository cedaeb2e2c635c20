package overlay

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake"
)

// The security associations on the control goroutine: inbound SAs into
// the data path's SPI table (and out of it, through a short retirement
// after two rekeys), outbound SAs onto their peer, the switch to a
// rekeyed outbound SA (RFC 7402 §6.10), rekeys started for the data path,
// idle SAs trimmed, and inbound SPIs allocated unique on the node.

// installInbound puts an inbound SA in the data path's table. A rekey keeps
// the previous SA, which the peer may still send on (RFC 7402 §3.3.2: it
// switches when it sees our data on the new one, or after a grace), for
// prevLife, and retires the one before it; a new base exchange replaces
// them all.
func (c *control) installInbound(p *peer, cfg esp.Config, rekey bool, now time.Time) {
	if p.in != nil && p.in.sa.SPI() == cfg.SPI {
		return // the Initiator's EventEstablished repeats EventInboundSA's SA
	}
	sa, err := esp.NewInbound(cfg)
	if err != nil {
		c.s.log.Error("inbound sa", "peer", p.hit.String(), "err", err)
		return
	}
	e := &inboundSA{sa: sa, p: p}
	if rekey {
		if p.prev != nil {
			c.retire(p, p.prev, now)
		}
		p.prev = p.in
		if p.prev != nil {
			// Its data would not end R2-SENT or a rekey now: the new SA's does.
			p.prev.notify.Store(false)
			c.prevs = append(c.prevs, prevSA{e: p.prev, until: now.Add(prevLife * c.switchGrace)})
		}
	} else {
		c.removeInbound(p)
	}
	p.in = e
	c.s.spis.set(cfg.SPI, e)
	delete(c.spiRes, cfg.SPI)
	c.s.keylog(p, cfg)
}

func (c *control) newOutbound(p *peer, cfg esp.Config) *esp.Outbound {
	if c.s.cfg.RekeyAfter != 0 {
		cfg.RekeyAfter = c.s.cfg.RekeyAfter
	}
	o, err := esp.NewOutbound(cfg)
	if err != nil {
		c.s.log.Error("outbound sa", "peer", p.hit.String(), "err", err)
		return nil
	}
	c.s.keylog(p, cfg)
	return o
}

// trimSAs frees the cipher state of SAs no packet used since the last
// call (every R1 rotation): an idle association then costs its keys, not
// its AES-GCM tables (esp.Inbound.Trim). The next packet rebuilds them.
func (c *control) trimSAs() {
	for _, p := range c.s.peerList() {
		for _, e := range []*inboundSA{p.in, p.prev} {
			if e != nil {
				e.sa.Trim()
			}
		}
		if o := p.out.Load(); o != nil {
			o.Trim()
		}
	}
}

// switchOut starts sending on a rekeyed outbound SA. A rekey owed while
// it waited (rekey) is asked for again now, through a poke: switchOut may
// run inside the handling of the peer's own rekey, where ours cannot
// start.
func (c *control) switchOut(p *peer, o *esp.Outbound) {
	p.out.Store(o)
	p.outboundSince(time.Now())
	p.clearNextOut()
	if p.in != nil {
		p.in.notify.Store(false)
	}
	p.rekeyAsked.Store(false)
	if p.x.rekeyOwed {
		c.s.poke(p, pokeRekey)
	}
}

// peerFinishedRekey switches to a rekeyed outbound SA still waiting for
// proof that the peer installed its inbound half, when a new rekey of the
// peer's is that proof: a host starts no rekey while one of its own is
// outstanding (RFC 7402 §6.8), so the peer finished the previous one and
// holds its SA. Switching here, before the answer leaves, matters: the
// peer keeps two inbound SAs, and once this rekey completes it retires
// the older, which is the one we would still be sending on.
func (c *control) peerFinishedRekey(p *peer) {
	if p.x.nextOut != nil {
		c.switchOut(p, p.x.nextOut)
	}
}

func (c *control) removeInbound(p *peer) {
	for _, e := range []*inboundSA{p.in, p.prev} {
		if e != nil {
			c.s.spis.remove(e.sa.SPI(), e)
		}
	}
	p.in, p.prev = nil, nil
	c.dropRetired(p)
}

// prevSA is an inbound SA one rekey old and when it is retired, if it is
// still p.prev then (tick).
type prevSA struct {
	e     *inboundSA
	until time.Time
}

// prevLife, in switch graces, is how long an SA one rekey old stays the
// peer's previous one: the peer switches to the new SA when it sees our
// data there, and after its own grace at the latest (RFC 7402 §3.3.2), so
// that what it seals with the old one after the rekey is at most a grace's
// worth, plus the path's delay. Then the SA is retired, and so ends twice
// a grace later. Before, it stayed until the next rekey, an hour or more,
// with its replay window frozen: what an attacker on the path had held
// back of the peer's last packets on it was taken as new however late it
// came.
const prevLife = 3

// expirePrevs retires the previous SAs whose time is up (tick).
func (c *control) expirePrevs(now time.Time) {
	kept := c.prevs[:0]
	for _, ps := range c.prevs {
		switch p := ps.e.p; {
		case p.prev != ps.e:
			// retired or removed already
		case !now.Before(ps.until):
			c.retire(p, ps.e, now)
			p.prev = nil
		default:
			kept = append(kept, ps)
		}
	}
	clear(c.prevs[len(kept):])
	c.prevs = kept
}

// retiredSA is an inbound SA two rekeys old, still in the SPI table until
// until.
type retiredSA struct {
	e     *inboundSA
	until time.Time
}

// retire takes e, two rekeys old, out of p's SAs but leaves it in the SPI
// table for twice the switch grace (ended by the first tick after that,
// so at most a tick, a second, longer). The peer stopped sealing with it when
// it switched, but what it sealed before may still be on the way: in its
// transmit queue behind the control packet that let us install the next
// SA (control packets do not wait in that queue), or reordered on the
// path. One retired SA a peer at most: a third rekey within the hold ends
// the oldest at once. The list lives on the control goroutine, not in the
// peer, so that an association pays nothing for it between rekeys.
func (c *control) retire(p *peer, e *inboundSA, now time.Time) {
	c.dropRetired(p)
	c.retired = append(c.retired, retiredSA{e: e, until: now.Add(2 * c.switchGrace)})
}

// dropRetired ends p's retired SA, if it has one.
func (c *control) dropRetired(p *peer) {
	c.expireRetired(func(r retiredSA) bool { return r.e.p == p })
}

// expireRetired ends the retired SAs for which done says so (tick: those
// whose hold has passed).
func (c *control) expireRetired(done func(retiredSA) bool) {
	kept := c.retired[:0]
	for _, r := range c.retired {
		if done(r) {
			c.s.spis.remove(r.e.sa.SPI(), r.e)
			continue
		}
		kept = append(kept, r)
	}
	clear(c.retired[len(kept):])
	c.retired = kept
}

// removeSAs takes p out of the data path: no inbound SA, no outbound SA
// (writers queue and restart the base exchange).
func (c *control) removeSAs(p *peer) {
	c.removeInbound(p)
	p.out.Store(nil)
	p.clearNextOut()
	p.secret.Store(nil) // bound to the keys just dropped (secret.go)
}

// rekey starts an ESP rekeying UPDATE (RFC 7402 §6.8): from KEYMAT, or with
// a new Diffie-Hellman exchange when KEYMAT is used up.
func (c *control) rekey(p *peer, now time.Time) {
	if !c.canRekey(p) {
		// An owed rekey (owe) stays owed: switchOut asks again. One
		// the data path asked for lapses; the switch replaces the SA
		// that asked.
		return
	}
	if p.x.rekeyOwed { // p.x may be the shared empty noExt: write only when set
		p.x.rekeyOwed = false
	}
	a := p.assoc
	err := a.Rekey(now, false)
	if err != nil && !errors.Is(err, handshake.ErrBusy) {
		err = a.Rekey(now, true)
	}
	if errors.Is(err, handshake.ErrBusy) {
		// Another UPDATE of ours is outstanding (mobility, a
		// registration): the rekey is owed, and processPacket asks again
		// once that UPDATE is answered. Dropped, it would lapse for good:
		// the data path asks once (rekeyAsked) and waits.
		p.mut().rekeyOwed = true
		c.s.log.Debug("rekey waits for an outstanding update", "peer", p.hit.String())
		return
	}
	if err != nil {
		c.s.log.Warn("rekey failed", "peer", p.hit.String(), "err", err)
		p.rekeyAsked.Store(false)
		return
	}
	c.s.log.Debug("rekey started", "peer", p.hit.String())
	c.process(p, now)
}

// oweRekey asks for a rekey that must not be lost: the one through a
// relay the association moved to, which teaches the relay the SPIs in use
// (it forwards ESP by SPI and saw none of the direct path's rekeys). It
// starts through a poke, once the caller is done: the caller may be
// handling a packet of p's. If a switch to a rekeyed SA waits (canRekey),
// it stays owed and starts after the switch (switchOut).
func (c *control) oweRekey(p *peer) {
	p.mut().rekeyOwed = true
	c.s.poke(p, pokeRekey)
}

// canRekey: p's association can start a rekey now. Not while a rekey
// runs, and not while the last one waits to switch our outbound SA
// (nextOut): the peer's answer to a new rekey would let it drop the
// inbound SA we still send on (it keeps two). That switch replaces the
// outbound SA whose use asked for the rekey anyway; switchOut clears
// rekeyAsked, so the new SA asks again when its own time comes.
func (c *control) canRekey(p *peer) bool {
	a := p.assoc
	return a != nil && (a.State() == handshake.Established || a.State() == handshake.R2Sent) &&
		!a.Rekeying() && p.x.nextOut == nil && p.out.Load() != nil
}

// allocSPI is the Endpoint's SPI allocator: random, above the IANA-reserved
// 1-255 (RFC 4303 §2.1), and unique among installed and handed-out SPIs.
func (c *control) allocSPI() uint32 {
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		spi := binary.BigEndian.Uint32(b[:])
		if spi <= 255 || c.s.spis.lookup(spi) != nil {
			continue
		}
		if _, ok := c.spiRes[spi]; ok {
			continue
		}
		c.spiRes[spi] = time.Now()
		return spi
	}
}

func (c *control) pruneSPIs(now time.Time) {
	for spi, t := range c.spiRes {
		if now.Sub(t) > spiResLife {
			delete(c.spiRes, spi)
		}
	}
}
