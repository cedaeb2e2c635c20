package overlay

import (
	"net/netip"
	"slices"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// Mobility (RFC 8046 §5.2): when this host's addresses change, it sends
// each peer of a direct association an UPDATE with a LOCATOR_SET that
// lists all of them, an ESP_INFO that keeps the SPIs, and a SEQ, which the
// state machine retransmits until acknowledged (handshake
// AnnounceLocators). The peer verifies each new address before its
// traffic goes there (locators.go on its side). The announcement is not
// what moves the path: the peer's locator Set sees our authenticated
// packets arrive from the new address and verifies it, announcement or
// not; the LOCATOR_SET tells it of addresses it has not seen yet
// (multihoming, RFC 8047) and withdraws those that are gone.

// AddrWatcher reports this host's usable addresses and their changes
// (Config.WatchAddrs; internal/netmon implements it). Changes delivers a
// value after Addrs changed; the control goroutine reads it.
type AddrWatcher interface {
	Addrs() []netip.Addr
	Changes() <-chan struct{}
}

// announceLifetime is the Locator Lifetime of our announced locators:
// unbounded (RFC 8046 §5.1, the maximum value). A host announces again
// whenever its addresses change, which withdraws the ones that went; a
// bounded lifetime would need announcements on a timer too, for nothing.
const announceLifetime = ^uint32(0)

// ourLocators is the LOCATOR_SET of this host: the watcher's addresses
// that the socket can send from, as type 1 locators (SPI and address;
// the handshake fills in the SPI, §5.2), the first preferred. Empty when
// the socket is bound to one address: that address is the only locator
// and the base exchange already told the peer.
func (s *Stack) ourLocators() []wire.Locator {
	w := s.cfg.WatchAddrs
	l := s.sock.local.Addr()
	if w == nil || !l.IsUnspecified() {
		return nil
	}
	var out []wire.Locator
	for _, a := range w.Addrs() {
		a = a.Unmap()
		// What is usable is the watcher's to say (internal/netmon leaves
		// out loopback, link-local and tentative addresses); here only
		// what the socket cannot send from, and what a LOCATOR_SET must
		// not carry (RFC 8046 §5.2: no multicast or broadcast).
		if l.Is4() && !a.Is4() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || a.IsUnspecified() {
			continue
		}
		out = append(out, wire.Locator{Traffic: wire.TrafficBoth, Type: wire.LocatorTypeESP,
			Lifetime: announceLifetime, Preferred: len(out) == 0, Addr: a})
	}
	return out
}

// addrsChanged announces our new addresses to every peer of a direct
// association.
func (c *control) addrsChanged(now time.Time) {
	s := c.s
	locs := s.ourLocators()
	if slices.Equal(locs, c.announced) {
		return
	}
	c.announced = locs
	s.log.Info("local addresses", "n", len(locs))
	if len(locs) == 0 {
		return // nowhere to be reached: the next change will announce
	}
	for _, p := range s.peerList() {
		if c.announce(p, now, locs) {
			c.process(p, now)
		}
	}
}

// announce gives p's association our locators to send, if it is direct;
// the caller processes it (sends the UPDATE).
func (c *control) announce(p *peer, now time.Time, locs []wire.Locator) bool {
	a := p.assoc
	if a == nil || p.x.relay != nil || !c.managed(p) || (a.State() != handshake.Established && a.State() != handshake.R2Sent) {
		return false
	}
	if err := a.AnnounceLocators(now, locs); err != nil {
		c.s.log.Debug("announce", "peer", p.hit.String(), "err", err)
		return false
	}
	c.s.ctr.announcements.Add(1)
	return true
}

// announceNew tells a new association of our other addresses (multihoming,
// RFC 8047 §4.2.1): when there is more than the one the base exchange
// used, the peer can fail over to them. Called from the association's
// events: the UPDATE leaves with its other packets.
func (c *control) announceNew(p *peer, now time.Time) {
	if c.s.cfg.WatchAddrs == nil {
		return
	}
	if c.announced == nil {
		c.announced = c.s.ourLocators()
	}
	if len(c.announced) > 1 {
		c.announce(p, now, c.announced)
	}
}
