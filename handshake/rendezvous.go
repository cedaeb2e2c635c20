package handshake

import (
	"crypto/hmac"
	"fmt"
	"net/netip"

	"hipnet.dev/handshake/wire"
)

// The rendezvous service's integrity protection (RFC 8004).
//
// A rendezvous server (RVS) forwards an I1 addressed to a registered
// client's HIT to the client's current address (§3.3, §4.3.2). Because it
// rewrites the IP source, it MUST append a FROM with the Initiator's
// address, protected by an RVS_HMAC keyed with the integrity key of the
// rendezvous registration (§4.2.1, §4.2.2, §4.3.1): here the outgoing HIP
// integrity key of the association between the RVS and the client, as for
// RELAY_HMAC in relay.go. The client MUST drop a FROM whose RVS_HMAC does
// not verify (§4.3.2), strips both, and answers the Initiator directly
// with an R1 that ends in VIA_RVS (§4.2.3, §4.3.3). FROM (65498), RVS_HMAC
// (65500) and VIA_RVS (65502) all come after HIP_SIGNATURE_2 (61633), so
// neither the I1 (which has no MAC or signature) nor the R1's signature
// is disturbed.
//
// Extension: HIP runs over UDP here (RFC 9028), and an Initiator sends
// from an ephemeral port (RFC 9028 §4.1 recommends random source ports),
// but FROM carries an address only. When the I1 did not come from the HIP
// port, the RVS also appends a RELAY_FROM (63998, RFC 9028 §5.6) with the
// address and the port, before FROM so that the RVS_HMAC covers it too;
// its address must equal FROM's. A client that does not know this
// extension still verifies the RVS_HMAC, which covers the RELAY_FROM
// (non-critical), and answers FROM's address at port 10500. Chains of
// RVSs (several FROMs, §4.2.2) are outside RFC 8004's scope (§4.2.3) and
// are refused.
//
// RVS_HMAC and RELAY_HMAC are keyed alike, and both cover the packet up to
// themselves: with a RELAY_FROM present, renaming the RVS_HMAC of a
// forwarded I1 to RELAY_HMAC yields a packet OpenRelayed accepts over the
// same association, with the same address. That is RFC 9028 §7.8's
// cross-protocol case; its mitigation, one of RENDEZVOUS and
// RELAY_UDP_HIP per association, is the registrar's to enforce.

// hipUDPPort is the UDP port of HIP over UDP (RFC 9028 §8): an I1 from
// it needs no port beside FROM's address.
const hipUDPPort = 10500

// AppendRendezvous forwards pkt, a finished I1 received from the
// Initiator at from, to the client at the other end of a (RFC 8004
// §4.3.1): it appends a RELAY_FROM with from when from's port is not
// hipUDPPort, a FROM with from's address, and an RVS_HMAC keyed with our
// outgoing HIP integrity key of a (§4.2.1). pkt's spare capacity is
// reused and its Checksum zeroed (HIP over UDP; raw HIP must fill it in
// again, §3.3). a must have its keys (R2-SENT or later). A pkt that
// already carries relay or rendezvous parameters is refused: only I1s
// straight from the Initiator are forwarded. The packet type is not
// checked: an RVS forwards I1s only (§4.3.2), which its caller decides.
func (a *Association) AppendRendezvous(pkt []byte, from netip.AddrPort) ([]byte, error) {
	if len(a.hipMAC) == 0 {
		return nil, fmt.Errorf("%w: no keys with %v to protect a rendezvous packet", ErrUnexpected, a.peer)
	}
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if t, ok := forwardedParam(p); ok {
		return nil, fmt.Errorf("%w: already carries %v; only first-hop I1s are forwarded", ErrMalformed, t)
	}
	var b wire.Builder
	b.Extend(p)
	if from.Port() != hipUDPPort {
		b.Add(wire.TransportAddress{Type: wire.ParamRelayFrom, Port: from.Port(), Protocol: wire.ProtocolUDP, Addr: from.Addr()})
	}
	b.Add(wire.From{Addr: from.Addr()})
	if err := addMACAs(&b, a.rhash, a.ourMACKey(), func(m []byte) wire.Encoder { return wire.RVSHMAC{MAC: m} }); err != nil {
		return nil, err
	}
	return b.Bytes()
}

// forwardedParam returns the first relay or rendezvous parameter of p, if
// any: the mark of a packet some relay or RVS has already handled.
func forwardedParam(p wire.Packet) (wire.ParamType, bool) {
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		switch t := q.Type(); t {
		case wire.ParamRelayFrom, wire.ParamRelayTo, wire.ParamFrom, wire.ParamRVSHMAC, wire.ParamRelayHMAC:
			return t, true
		}
	}
	return 0, false
}

// rendezvousParams is what AppendRendezvous added to a packet: the packet
// the Initiator sent ends at cut, where the RELAY_FROM (if any) or else
// the FROM starts; the RVS_HMAC starts at hmacOff.
type rendezvousParams struct {
	cut, fromOff, hmacOff int
	relay                 wire.TransportAddress // RELAY_FROM; Type 0 when absent
	from                  netip.Addr
	mac                   []byte
}

// OpenRendezvous checks the RVS_HMAC of pkt with the peer's (the RVS's)
// HIP integrity key of a and returns pkt without its RELAY_FROM, FROM and
// RVS_HMAC (in place: the Header Length is rewritten), as the Initiator
// sent it, and the Initiator's address: FROM's, with RELAY_FROM's port or
// else hipUDPPort. Errors wrap ErrNotRelayed when FROM or RVS_HMAC is
// missing; ErrBadMAC when the RVS_HMAC was not made by a's peer, and the
// packet MUST be dropped (RFC 8004 §4.3.2); ErrMalformed for anything
// else wrong; ErrUnexpected when a has no keys yet.
func (a *Association) OpenRendezvous(pkt []byte) ([]byte, netip.AddrPort, error) {
	var none netip.AddrPort
	if len(a.hipMAC) == 0 {
		return nil, none, fmt.Errorf("%w: no keys with %v to check a rendezvous packet", ErrUnexpected, a.peer)
	}
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		return nil, none, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !HasRendezvous(p) {
		return nil, none, fmt.Errorf("%w: no FROM or RVS_HMAC", ErrNotRelayed)
	}
	r, err := findRendezvous(p)
	if err != nil {
		return nil, none, err
	}
	// Authenticate before interpreting: an RVS_HMAC that verifies means
	// our RVS wrote every address it covers (§4.2.1).
	if !hmac.Equal(computeMAC(a.rhash, a.peerMACKey(), p, r.hmacOff, nil), r.mac) {
		return nil, none, fmt.Errorf("%w: RVS_HMAC does not verify", ErrBadMAC)
	}
	from, err := r.initiator()
	if err != nil {
		return nil, none, err
	}
	out := pkt[:r.cut]
	out[1] = uint8(r.cut/8 - 1)
	return out, from, nil
}

// findRendezvous checks that p ends in the parameters AppendRendezvous
// appends, [RELAY_FROM] FROM RVS_HMAC, with no other relay parameter
// before them, and parses them.
func findRendezvous(p wire.Packet) (rendezvousParams, error) {
	r := rendezvousParams{cut: -1, fromOff: -1, hmacOff: -1}
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		if err := r.step(q); err != nil {
			return r, err
		}
	}
	if err := it.Err(); err != nil {
		return r, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch {
	case r.fromOff < 0:
		return r, fmt.Errorf("%w: no FROM", ErrNotRelayed)
	case r.hmacOff < 0:
		return r, fmt.Errorf("%w: FROM without RVS_HMAC", ErrNotRelayed)
	case r.cut < 0:
		r.cut = r.fromOff
	}
	return r, nil
}

// step takes in the next parameter, q. Types are sorted (ParsePacket
// checked), so RELAY_FROM, FROM and RVS_HMAC come in this order, and
// anything after RVS_HMAC (VIA_RVS, RELAY_HMAC) or between them breaks
// the layout.
func (r *rendezvousParams) step(q wire.Param) error {
	t := q.Type()
	switch {
	case r.hmacOff >= 0:
		return fmt.Errorf("%w: %v after RVS_HMAC", ErrMalformed, t)
	case r.relay.Type != 0 && r.fromOff < 0 && t != wire.ParamFrom:
		return fmt.Errorf("%w: %v between RELAY_FROM and FROM", ErrMalformed, t)
	case r.fromOff >= 0 && t != wire.ParamRVSHMAC:
		// FROM again (chained RVSs, out of scope: RFC 8004 §4.2.3), or
		// something between FROM and RVS_HMAC.
		return fmt.Errorf("%w: %v after FROM", ErrMalformed, t)
	}
	var err error
	switch t {
	case wire.ParamRelayFrom:
		r.cut = q.Offset()
		r.relay, err = wire.ParseRelayFrom(q.Contents())
	case wire.ParamRelayTo:
		// AppendRendezvous refuses such a packet: no RVS made this.
		return fmt.Errorf("%w: RELAY_TO in a rendezvous packet", ErrMalformed)
	case wire.ParamFrom:
		var f wire.From
		f, err = wire.ParseFrom(q.Contents())
		r.fromOff, r.from = q.Offset(), f.Addr
	case wire.ParamRVSHMAC:
		var m wire.RVSHMAC
		m, err = wire.ParseRVSHMAC(q.Contents())
		r.hmacOff, r.mac = q.Offset(), m.MAC
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// initiator returns the Initiator's transport address from the
// authenticated FROM and RELAY_FROM, which must agree on the address; a
// RELAY_FROM is a UDP one, as AppendRendezvous writes it.
func (r *rendezvousParams) initiator() (netip.AddrPort, error) {
	switch {
	case r.relay.Type == 0:
		return netip.AddrPortFrom(r.from, hipUDPPort), nil
	case r.relay.Protocol != wire.ProtocolUDP:
		return netip.AddrPort{}, fmt.Errorf("%w: RELAY_FROM with protocol %d, not UDP", ErrMalformed, r.relay.Protocol)
	case r.relay.Addr != r.from:
		return netip.AddrPort{}, fmt.Errorf("%w: RELAY_FROM address %v is not FROM's %v", ErrMalformed, r.relay.Addr, r.from)
	}
	return r.relay.AddrPort(), nil
}

// HasRendezvous reports whether pkt carries a FROM or an RVS_HMAC: a
// packet forwarded by an RVS, for OpenRendezvous. A relay client MUST
// drop such a packet from its control relay server (RFC 9028 §7.8).
func HasRendezvous(pkt wire.Packet) bool {
	_, from := pkt.Param(wire.ParamFrom)
	_, mac := pkt.Param(wire.ParamRVSHMAC)
	return from || mac
}

// AppendViaRVS appends a VIA_RVS with the address of the RVS that
// forwarded the I1 at the end of r1, the R1 that answers it (RFC 8004
// §4.2.3, §4.3.3: "MUST append"). VIA_RVS follows HIP_SIGNATURE_2, which
// stays valid. r1's spare capacity is reused and its Checksum zeroed (raw
// HIP must fill it in again).
func AppendViaRVS(r1 []byte, rvs netip.Addr) ([]byte, error) {
	p, err := wire.ParsePacket(r1)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if p.Type() != wire.R1 {
		return nil, fmt.Errorf("%w: VIA_RVS goes in an R1, not an %v", ErrMalformed, p.Type())
	}
	if _, ok := p.Param(wire.ParamViaRVS); ok {
		return nil, fmt.Errorf("%w: R1 already has VIA_RVS", ErrMalformed)
	}
	var b wire.Builder
	b.Extend(p)
	b.Add(wire.MakeViaRVS(rvs))
	return b.Bytes()
}

// ViaRVS returns the first address of pkt's VIA_RVS, the RVS its I1 went
// through (RFC 8004 §4.3.4), if it has a well-formed one.
func ViaRVS(pkt wire.Packet) (netip.Addr, bool) {
	q, ok := pkt.Param(wire.ParamViaRVS)
	if !ok {
		return netip.Addr{}, false
	}
	v, err := wire.ParseViaRVS(q.Contents())
	if err != nil {
		return netip.Addr{}, false
	}
	return v.Addrs.At(0), true
}
