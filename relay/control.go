package relay

import (
	"net/netip"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// The forwarder's side of overlay.Forwarder: what the stack hands it and
// what it does with it. Control packets not addressed to the relay go one
// of three ways, by what the host they concern registered:
//
//   - from a RELAY_UDP_HIP host, with RELAY_TO and a RELAY_HMAC its
//     association with us verifies: stripped of both and sent to the
//     RELAY_TO address (RFC 5770 §4.5 steps 4 and 8; relayOut), never to
//     the relay itself nor, for hosts elsewhere, to its machine (self.go);
//   - to a RELAY_UDP_HIP host: RELAY_FROM (its observed source) and
//     RELAY_HMAC added, sent to the host (steps 2 and 6; relayIn);
//   - an I1 to a RENDEZVOUS host: FROM and RVS_HMAC added, sent to the
//     host, which answers the Initiator directly (RFC 8004 §3.3, §4.3.2;
//     rendezvous).
//
// Everything else not for us is dropped and counted: nothing is forwarded
// to or for an unregistered HIT (no open relay).

var _ overlay.Forwarder = (*forwarder)(nil)
var _ overlay.ForwarderReport = (*forwarder)(nil)

// Control implements overlay.Forwarder: pkt's Receiver's HIT is neither
// ours nor zero.
func (r *forwarder) Control(h overlay.Host, now time.Time, b []byte, pkt wire.Packet, from netip.AddrPort) bool {
	if _, ok := pkt.Param(wire.ParamRelayTo); ok {
		r.relayOut(h, now, b, pkt, from)
		return true
	}
	recv := pkt.ReceiverHIT()
	switch {
	case r.reg.serves(recv, wire.RegTypeRelayUDPHIP, now):
		r.relayIn(h, now, b, pkt, from)
	case r.reg.serves(recv, wire.RegTypeRendezvous, now):
		r.rendezvous(h, now, b, pkt, from)
	default:
		r.drop(&r.unregistered, "receiver not registered", from, recv)
	}
	return true
}

// relayOut forwards a registered host's packet to where its RELAY_TO says
// (RFC 5770 §4.5 steps 4 and 8), after checking the RELAY_HMAC with the
// host's association: only the host can make us send for it. Even the
// host cannot make us send to ourselves, nor, from elsewhere, to our
// machine (self.go sendable).
func (r *forwarder) relayOut(h overlay.Host, now time.Time, b []byte, pkt wire.Packet, from netip.AddrPort) {
	sender := pkt.SenderHIT()
	a, at, ok := h.Association(sender)
	if !ok || !r.reg.serves(sender, wire.RegTypeRelayUDPHIP, now) {
		r.drop(&r.unregistered, "sender not registered", from, sender)
		return
	}
	inner, to, err := a.OpenRelayed(b)
	if err != nil {
		r.drop(&r.forged, "relay_to", from, sender)
		return
	}
	if !sendable(to.AddrPort(), from, r.self.Load(), r.seenLocal(to.AddrPort(), now)) {
		r.drop(&r.forged, "relay_to not sendable", from, sender)
		return
	}
	if innerPkt, err := wire.ParsePacket(inner); err == nil {
		r.activate(sender, innerPkt, at, to.AddrPort(), now)
	}
	r.controlForwarded.Add(1) // before the send: whoever sees its effect sees it counted
	h.Send(inner, to.AddrPort())
}

// relayIn forwards a packet to a RELAY_UDP_HIP host with RELAY_FROM and
// RELAY_HMAC (RFC 5770 §4.5 steps 2 and 6).
func (r *forwarder) relayIn(h overlay.Host, now time.Time, b []byte, pkt wire.Packet, from netip.AddrPort) {
	recv := pkt.ReceiverHIT()
	a, at, ok := r.toHost(h, now, pkt, from)
	if !ok {
		return
	}
	if t := pkt.Type(); t == wire.R1 || t == wire.I2 {
		// RFC 5770 §4.5: a relay MUST drop an R1 or I2 without
		// NAT_TRAVERSAL_MODE.
		if _, ok := pkt.Param(wire.ParamNATTraversalMode); !ok {
			r.drop(&r.forged, "no nat_traversal_mode", from, recv)
			return
		}
	}
	ta := wire.TransportAddress{Type: wire.ParamRelayFrom, Port: from.Port(), Protocol: wire.ProtocolUDP, Addr: from.Addr().Unmap()}
	out, err := a.AppendRelayed(b, ta)
	if err != nil {
		r.drop(&r.forged, "append relay_from", from, recv)
		return
	}
	r.hold(recv, pkt, from, now)
	r.noteLocal(from, now) // its answer may name it (self.go)
	r.controlForwarded.Add(1)
	h.Send(out, at)
}

// rendezvous forwards an I1 to a RENDEZVOUS host with FROM and RVS_HMAC
// (RFC 8004 §3.3, §4.3.2); the host answers the Initiator directly, so
// nothing else goes through us and no ESP is forwarded for it.
func (r *forwarder) rendezvous(h overlay.Host, now time.Time, b []byte, pkt wire.Packet, from netip.AddrPort) {
	recv := pkt.ReceiverHIT()
	if pkt.Type() != wire.I1 {
		// §3.3: an RVS relays I1s; the rest of the exchange is direct.
		r.drop(&r.unregistered, "rendezvous forwards only i1", from, recv)
		return
	}
	a, at, ok := r.toHost(h, now, pkt, from)
	if !ok {
		return
	}
	out, err := a.AppendRendezvous(b, from)
	if err != nil {
		r.drop(&r.forged, "append from", from, recv)
		return
	}
	r.rendezvoused.Add(1)
	h.Send(out, at)
}

// toHost returns the association with, and the address of, the registered
// host pkt is for, after applying what relaying and rendezvous both
// require: relay and rendezvous parameters are ours to add, never the
// sender's, and I1s are rate limited per host and source.
func (r *forwarder) toHost(h overlay.Host, now time.Time, pkt wire.Packet, from netip.AddrPort) (*handshake.Association, netip.AddrPort, bool) {
	recv := pkt.ReceiverHIT()
	a, at, ok := h.Association(recv)
	if !ok {
		r.drop(&r.unregistered, "receiver has no association", from, recv)
		return nil, at, false
	}
	return a, at, r.admissible(now, pkt, from)
}

func (r *forwarder) admissible(now time.Time, pkt wire.Packet, from netip.AddrPort) bool {
	recv := pkt.ReceiverHIT()
	_, relayAddr := handshake.RelayAddr(pkt)
	_, relayHMAC := pkt.Param(wire.ParamRelayHMAC)
	if relayAddr || relayHMAC || handshake.HasRendezvous(pkt) {
		r.drop(&r.forged, "relay parameters from outside", from, recv)
		return false
	}
	if pkt.Type() == wire.I1 && !r.allow(recv, from.Addr(), now) {
		r.drop(&r.rateLimited, "i1 rate", from, recv)
		return false
	}
	return true
}

// ESP implements overlay.Forwarder: the read loop's lookup for an SPI
// that is not the relay's. It allocates nothing.
func (r *forwarder) ESP(spi uint32, from netip.AddrPort, now int64) (netip.AddrPort, bool) {
	to, ok := r.lookup(spi, from, now)
	if ok {
		r.espForwarded.Add(1)
	}
	return to, ok
}

// Ended implements overlay.Forwarder: a host's registrations end with its
// association.
func (r *forwarder) Ended(peer wire.HIT) { r.reg.ended(peer) }

// Prune implements overlay.Forwarder.
func (r *forwarder) Prune(now time.Time) { r.prune(now) }

// Registrations implements overlay.ForwarderReport.
func (r *forwarder) Registrations() []overlay.Registration { return r.reg.list(time.Now()) }

// ForwardStats implements overlay.ForwarderReport.
func (r *forwarder) ForwardStats() overlay.RelayStats { return r.stats() }

func (r *forwarder) drop(ctr interface{ Add(uint64) uint64 }, reason string, from netip.AddrPort, h wire.HIT) {
	ctr.Add(1)
	r.log.Debug("relay drop", "reason", reason, "from", from, "host", h.String())
}

// forwardable says whether a relay sends to a: not to unspecified,
// multicast or broadcast addresses, whatever RELAY_TO says. sendable
// (self.go) adds what depends on where the relay and the sender are.
func forwardable(a netip.AddrPort) bool {
	ip := a.Addr()
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsMulticast() && a.Port() != 0 &&
		ip != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}
