package overlay

import (
	"net/netip"
	"slices"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// Rendezvous (RFC 8004), both ends a node plays; the server's side is
// package relay's.
//
//   - As a rendezvous client (we registered RENDEZVOUS, Stack.Register):
//     our server forwards an I1 for us with FROM and RVS_HMAC. We check
//     the RVS_HMAC with our association with the server (§4.3.2: MUST drop
//     on failure), take the Initiator's address from FROM, and answer it
//     directly with an R1 that carries VIA_RVS (§4.3.3). The rest of the
//     exchange is direct.
//   - As an Initiator whose I1 went to a rendezvous server (its address
//     given as the peer's locator): the R1 comes from the Responder's own
//     address, with VIA_RVS naming the server we sent the I1 to (§4.3.4);
//     once the R1 is accepted (signed by the peer we dialled), the I2 and
//     everything after go to where the R1 came from.

// rendezvous is the server a rendezvous I1 came through and the Initiator's
// address it reported (FROM).
type rendezvous struct {
	server    *peer
	initiator netip.AddrPort
}

// openRendezvous checks and strips the FROM and RVS_HMAC of pk, which must
// be an I1 from a rendezvous server we hold a RENDEZVOUS registration with.
// It reports false when the packet must be dropped: RVS_HMAC from anyone
// else, our relays included (RFC 9028 §7.8: a relay client MUST drop it),
// is refused.
func (c *control) openRendezvous(now time.Time, pk *ctrlPacket, pkt *wire.Packet) (rendezvous, bool) {
	s := c.s
	rp := c.rendezvousAt(pk.from, now)
	if rp == nil {
		s.drop(&s.ctr.controlRejected, "rvs_hmac not from our rendezvous server", pk.from, nil)
		return rendezvous{}, false
	}
	if pkt.Type() != wire.I1 {
		s.drop(&s.ctr.controlRejected, "rendezvous packet not an i1", pk.from, nil)
		return rendezvous{}, false
	}
	inner, from, err := rp.assoc.OpenRendezvous(pk.b)
	if err != nil {
		s.drop(&s.ctr.controlRejected, "rvs_hmac", pk.from, err)
		return rendezvous{}, false
	}
	np, err := wire.ParsePacket(inner)
	if err != nil {
		s.drop(&s.ctr.malformed, "malformed control", pk.from, err)
		return rendezvous{}, false
	}
	if np.ReceiverHIT().IsZero() {
		// §4.3.2: an opportunistic I1 through a rendezvous server is
		// dropped (§5: no opportunistic mode via an RVS).
		s.drop(&s.ctr.controlRejected, "opportunistic i1 via rendezvous", pk.from, nil)
		return rendezvous{}, false
	}
	pk.b, *pkt = inner, np
	return rendezvous{server: rp, initiator: from}, true
}

// rendezvousAt returns the peer at a that we hold a live RENDEZVOUS
// registration with, if any. Only those peers are looked at, so a flood of
// forged rendezvous I1s costs no walk over every peer.
func (c *control) rendezvousAt(a netip.AddrPort, now time.Time) *peer {
	for p := range c.rvs {
		if at, ok := p.locator(); ok && at == a && p.assoc != nil && now.Before(p.x.rvsUntil) {
			return p
		}
	}
	return nil
}

// replyRendezvous sends the R1 answering a rendezvous I1 straight to the
// Initiator, with VIA_RVS naming the server (RFC 8004 §4.3.3).
func (c *control) replyRendezvous(r1 []byte, rv rendezvous) {
	at, _ := rv.server.locator()
	out, err := handshake.AppendViaRVS(append(make([]byte, 0, len(r1)+24), r1...), at.Addr())
	if err != nil {
		out = r1 // not an R1 (a NOTIFY): sent as it is
	}
	c.sendControl(out, rv.initiator)
}

// followRendezvous moves p's locator to where its accepted R1 came from
// when that R1 answers an I1 we sent to a rendezvous server: VIA_RVS names
// the address our I1 went to (RFC 8004 §4.3.4). Only the first R1 of the
// exchange can do it, and only once its signature has been checked.
func (c *control) followRendezvous(p *peer, pkt wire.Packet, from netip.AddrPort) {
	rvs, ok := handshake.ViaRVS(pkt)
	at, known := p.locator()
	if !ok || !known || at.Addr().Unmap() != rvs.Unmap() || at == from || p.x.relay != nil {
		return
	}
	p.setLocator(from)
	c.s.log.Info("rendezvous", "peer", p.hit.String(), "server", at, "locator", from)
}

// rendezvousGranted keeps, on the requester, how long our RENDEZVOUS
// registration with p lasts (regEvent): until then p's FROM-carrying I1s
// are accepted.
func (c *control) rendezvousGranted(p *peer, r Registration) {
	if !slices.Contains(r.Granted, wire.RegTypeRendezvous) {
		return
	}
	if !r.Expires.IsZero() || !p.x.rvsUntil.IsZero() {
		p.mut().rvsUntil = r.Expires // zero when cancelled
	}
	if r.Expires.IsZero() {
		delete(c.rvs, p)
		return
	}
	if c.rvs == nil {
		c.rvs = map[*peer]struct{}{}
	}
	c.rvs[p] = struct{}{}
}
