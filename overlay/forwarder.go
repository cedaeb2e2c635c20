package overlay

import (
	"net/netip"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// Forwarder is what a relay server (package relay) plugs into the stack
// with Config.Forwarder: the stack hands it what reaches the socket but is
// not addressed to the stack, and tells it when an association ends.
// A plain node has none, so its receive path holds no relay-server code: ESP
// with an SPI that is not ours is dropped as UnknownSPI, and a control
// packet for another HIT goes to the Endpoint, which refuses it.
type Forwarder interface {
	// Control is offered, on the control goroutine, each well-formed HIP
	// control packet whose Receiver's HIT is neither ours nor zero (RFC
	// 5770 §4.5, RFC 8004 §4.3.2: a relay or rendezvous server looks such
	// packets up in its registrations). b is the packet, pkt its parsed
	// view, from its UDP source. It reports whether it took the packet;
	// one it leaves goes on to the Endpoint. h is valid only during the
	// call.
	Control(h Host, now time.Time, b []byte, pkt wire.Packet, from netip.AddrPort) bool
	// ESP is asked, on the read loop, where ESP with an SPI that is not
	// ours goes (RFC 5770's relayed data); now is the stack's coarse clock
	// (unix nanoseconds). The stack writes the packet there. It must not
	// block or allocate.
	ESP(spi uint32, from netip.AddrPort, now int64) (to netip.AddrPort, ok bool)
	// Ended reports, on the control goroutine, that the association with
	// peer closed, failed or was abandoned: what was granted on it ends
	// with it.
	Ended(peer wire.HIT)
	// Prune runs on the control goroutine at each R1 rotation, for the
	// forwarder's housekeeping (idle entries, rate-limit state).
	Prune(now time.Time)
}

// Host is the stack as a Forwarder sees it during Control. Its methods run
// on the control goroutine, the owner of every association; a Host must
// not be kept past the call that received it.
type Host struct{ c *control }

// Association returns the association with peer and where the peer is,
// when one exists and has keys (R2-SENT or later): the keys that
// RELAY_HMAC and RVS_HMAC use (handshake.Association.AppendRelayed,
// OpenRelayed, AppendRendezvous).
func (h Host) Association(peer wire.HIT) (*handshake.Association, netip.AddrPort, bool) {
	p := h.c.s.lookupPeer(peer)
	if p == nil || p.assoc == nil {
		return nil, netip.AddrPort{}, false
	}
	switch p.assoc.State() {
	case handshake.R2Sent, handshake.Established, handshake.Closing:
	default:
		return nil, netip.AddrPort{}, false
	}
	at, ok := p.locator()
	return p.assoc, at, ok
}

// Send sends a control packet to to from the stack's socket, counted as
// the stack's own.
func (h Host) Send(b []byte, to netip.AddrPort) { h.c.sendControl(b, to) }

// forwardControl offers pkt, not addressed to us, to the Forwarder.
func (c *control) forwardControl(now time.Time, pk ctrlPacket, pkt wire.Packet) bool {
	f := c.s.cfg.Forwarder
	if f == nil {
		return false
	}
	if recv := pkt.ReceiverHIT(); recv == c.s.hit || recv.IsZero() {
		return false
	}
	return f.Control(Host{c}, now, pk.b, pkt, pk.from)
}

// forwardESP is the read loop's path for ESP with an SPI that is not ours:
// the Forwarder says where it goes. It allocates nothing.
func (s *Stack) forwardESP(b []byte, spi uint32, from netip.AddrPort) bool {
	f := s.cfg.Forwarder
	if f == nil {
		return false
	}
	to, ok := f.ESP(spi, from, s.clock.Load())
	if !ok {
		return false
	}
	if err := s.sock.writeTo(b, to); err != nil {
		s.ctr.sendErrors.Add(1)
		return true
	}
	s.ctr.packetsOut.Add(1)
	s.ctr.bytesOut.Add(uint64(len(b)))
	return true
}

// assocEnded forgets what ended with p's association: our rendezvous
// registration with it, and, on a relay, its grants (the Forwarder).
func (c *control) assocEnded(p *peer) {
	delete(c.rvs, p) // a registration ends with its association (rendezvous.go)
	if !p.x.rvsUntil.IsZero() {
		p.x.rvsUntil = time.Time{} // p.x is p's own: it was set
	}
	if f := c.s.cfg.Forwarder; f != nil {
		f.Ended(p.hit)
	}
}

// ForwarderReport is implemented by a Forwarder whose work shows in the
// stack's Status and Stats (package relay's does): the relay server's
// registrations and counters, reported in the stack's vocabulary so that
// an operator reads one Status whatever the node's role.
type ForwarderReport interface {
	// Registrations returns the live registrations, in HIT order.
	Registrations() []Registration
	// ForwardStats returns the forwarding counters.
	ForwardStats() RelayStats
}

// RelayStats counts a relay server's work (Stats.Relay), as its
// ForwarderReport gives them.
type RelayStats struct {
	ControlForwarded uint64 // control packets relayed (either direction)
	ESPForwarded     uint64 // ESP packets forwarded by SPI
	Rendezvoused     uint64 // I1s forwarded to RENDEZVOUS hosts with FROM (RFC 8004)
	Forwards         uint64 // ESP forwarding entries now
	// Drops by reason.
	Unregistered uint64 // to or for a HIT without a relay registration
	Forged       uint64 // RELAY_TO whose RELAY_HMAC did not verify, or relay parameters from outside
	RateLimited  uint64 // I1s over a registered host's rate
	TableFull    uint64 // ESP forwarding entries refused: table full
}
