package handshake

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"hipnet.dev/handshake/wire"
)

// Registration, RFC 8003: a registrar announces its services in R1's
// REG_INFO (§3.1), a requester asks in I2 or UPDATE with REG_REQUEST
// (§3.2), and the registrar answers in R2 or UPDATE with REG_RESPONSE
// and REG_FAILED (§3.3). This file holds the state machine's side of it;
// what a registration means (rendezvous, relaying) is the caller's.

// Registrar makes an Endpoint a registrar.
type Registrar struct {
	// Info is announced in every R1: the offered registration types and
	// the lifetime bounds (RFC 8003 §4.2).
	Info wire.RegInfo
	// Decide answers a REG_REQUEST from an authenticated peer. It returns
	// the granted lifetime and types (empty: none) and the refused types
	// with their failure type. It runs on the caller's goroutine, inside
	// Endpoint.Handle. A lifetime of zero in the request is a cancellation
	// (§5), which Decide should grant.
	Decide func(peer wire.HIT, req wire.RegRequest) (granted wire.RegResponse, failed []wire.RegFailed)
	// From returns the transport address the packet being answered came
	// from, as the registrar sees it, for the REG_FROM of the answer: a
	// relay server includes it in its R2 and in every UPDATE answering a
	// registration (RFC 5770 §4.1, RFC 9028 §4.1), and it is how the
	// client learns, authenticated, its server-reflexive address. Nil, or
	// false: no REG_FROM. It runs inside Endpoint.Handle, as Decide.
	//
	// repeat says the packet repeats a registration UPDATE already
	// answered (a retransmission, or a copy). From then reports ok only
	// when the packet came from where the registrar holds the requester to
	// be (the address it verified); if the first answer named another
	// address, the answer is built again with this one (reack). The first
	// copy to arrive may have been an attacker's, sent from an address of
	// its choosing, which a registrar answers there; the requester's own
	// copy, arriving after it as a repeat, must not hear that address as
	// its own.
	From func(peer wire.HIT, repeat bool) (netip.AddrPort, bool)
}

// Registration is a registrar's answer, as reported by EventRegistration:
// to the requester when the answer arrives, to the registrar when it sent
// it.
type Registration struct {
	Lifetime uint8 // granted lifetime code (wire.LifetimeToDuration); 0 cancels
	Granted  []uint8
	Failed   []wire.RegFailed
	// From is the REG_FROM of the answer: the requester's transport
	// address as the registrar saw it (RFC 5770 §5.6); invalid: none.
	From netip.AddrPort
}

// Duration is the granted lifetime.
func (r *Registration) Duration() time.Duration { return wire.LifetimeToDuration(r.Lifetime) }

// RequestRegistration asks, for a base exchange not yet past R1, to
// include a REG_REQUEST in the I2 (RFC 8003 §3.2 "at the earliest
// possibility"). Only the types the registrar's REG_INFO offers are
// requested; if it offers none of them, EventRegistration reports them
// all as failed with type 1 (unavailable).
func (a *Association) RequestRegistration(lifetime uint8, types ...uint8) error {
	if a.state != I1Sent && a.state != Unassociated {
		return fmt.Errorf("%w: registration in I2 needs a base exchange before R1 (state %v); use Register", ErrUnexpected, a.state)
	}
	if a.bex == nil {
		a.bex = &bexState{} // in UNASSOCIATED, for the I2 of the next exchange
	}
	a.bex.regWant = &wire.RegRequest{Lifetime: lifetime, Types: append([]byte(nil), types...)}
	return nil
}

// Register asks an established registrar for types with an UPDATE (RFC
// 8003 §3.2); lifetime 0 cancels them (§5). The answer arrives as an
// EventRegistration.
func (a *Association) Register(now time.Time, lifetime uint8, types ...uint8) error {
	if a.state != Established && a.state != R2Sent {
		return fmt.Errorf("%w: register in %v", ErrUnexpected, a.state)
	}
	if a.upd.outstanding || a.Rekeying() {
		return ErrBusy
	}
	req, ok := a.offered(wire.RegRequest{Lifetime: lifetime, Types: types})
	if !ok && lifetime != 0 {
		return fmt.Errorf("handshake: the registrar offers none of the types %v", types)
	}
	if !ok {
		req = wire.RegRequest{Lifetime: 0, Types: types} // cancelling needs no offer
	}
	var b wire.Builder
	b.Reset(make([]byte, 0, 512), wire.UPDATE, a.e.hit, a.peer)
	b.Add(wire.Seq{UpdateID: a.upd.next})
	b.Add(req)
	pkt, err := a.signAndMAC(&b, a.ourMACKey())
	if err != nil {
		return err
	}
	a.upd.outstanding, a.upd.outID = true, a.upd.next
	a.upd.next++
	a.send(now, pkt, true)
	return nil
}

// PeerRegInfo returns the registrar's latest REG_INFO, if it sent one.
func (a *Association) PeerRegInfo() (wire.RegInfo, bool) {
	if a.regInfo == nil {
		return wire.RegInfo{}, false
	}
	return *a.regInfo, true
}

// offered narrows req to the types the registrar's REG_INFO lists.
func (a *Association) offered(req wire.RegRequest) (wire.RegRequest, bool) {
	if a.regInfo == nil {
		return req, false
	}
	var types []byte
	for _, t := range req.Types {
		if bytes.IndexByte(a.regInfo.Types, t) >= 0 {
			types = append(types, t)
		}
	}
	return wire.RegRequest{Lifetime: req.Lifetime, Types: types}, len(types) > 0
}

// noteRegInfo records a REG_INFO from the registrar (R1 or UPDATE).
func (a *Association) noteRegInfo(pkt wire.Packet) error {
	p, ok := pkt.Param(wire.ParamRegInfo)
	if !ok {
		return nil
	}
	ri, err := wire.ParseRegInfo(p.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	ri.Types = append([]byte(nil), ri.Types...)
	a.regInfo = &ri
	return nil
}

// i2Request is the REG_REQUEST to put in I2, if any; when nothing asked
// for is offered it reports the failure at once.
func (a *Association) i2Request() *wire.RegRequest {
	if a.bex == nil || a.bex.regWant == nil {
		return nil
	}
	want := *a.bex.regWant
	a.bex.regWant = nil
	req, ok := a.offered(want)
	if !ok {
		a.emit(Event{Kind: EventRegistration, Registration: &Registration{
			Failed: []wire.RegFailed{{FailureType: wire.RegFailureTypeUnavailable, Types: want.Types}}}})
		return nil
	}
	return &req
}

// decide runs the registrar's policy on every REG_REQUEST of pkt and
// returns the parameters to answer with (RFC 8003 §3.3, §4.3: several
// REG_REQUESTs must be processed).
func (e *Endpoint) decide(peer wire.HIT, pkt wire.Packet) (*Registration, error) {
	var reg *Registration
	it := pkt.Params()
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		if p.Type() != wire.ParamRegRequest {
			continue
		}
		req, err := wire.ParseRegRequest(p.Contents())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if reg == nil {
			reg = &Registration{}
		}
		r := e.cfg.Registrar
		if r == nil || r.Decide == nil {
			// Not a registrar: every type is unavailable (§4.5).
			reg.Failed = append(reg.Failed, wire.RegFailed{FailureType: wire.RegFailureTypeUnavailable, Types: append([]byte(nil), req.Types...)})
			continue
		}
		granted, failed := r.Decide(peer, req)
		if len(granted.Types) > 0 {
			reg.Lifetime = granted.Lifetime
			reg.Granted = append(reg.Granted, granted.Types...)
		}
		for _, f := range failed {
			reg.Failed = append(reg.Failed, wire.RegFailed{FailureType: f.FailureType, Types: append([]byte(nil), f.Types...)})
		}
	}
	if r := e.cfg.Registrar; reg != nil && r != nil && r.From != nil {
		if from, ok := r.From(peer, false); ok {
			reg.From = from
		}
	}
	return reg, nil
}

// addRegAnswer appends REG_RESPONSE (if anything was granted or
// cancelled), REG_FAILED and REG_FROM parameters.
func addRegAnswer(b *wire.Builder, reg *Registration) {
	if reg == nil {
		return
	}
	if len(reg.Granted) > 0 {
		b.Add(wire.RegResponse{Lifetime: reg.Lifetime, Types: reg.Granted})
	}
	for _, f := range reg.Failed {
		b.Add(f)
	}
	if reg.From.IsValid() {
		b.Add(wire.TransportAddress{Type: wire.ParamRegFrom, Port: reg.From.Port(), Protocol: wire.ProtocolUDP, Addr: reg.From.Addr()})
	}
}

// readRegAnswer turns the REG_RESPONSE, REG_FAILED and REG_FROM parameters of an
// R2 or UPDATE into a Registration (nil if there are none).
func readRegAnswer(pkt wire.Packet) (*Registration, error) {
	var reg *Registration
	var from netip.AddrPort
	it := pkt.Params()
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		switch p.Type() {
		case wire.ParamRegResponse:
			r, err := wire.ParseRegResponse(p.Contents())
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			if reg == nil {
				reg = &Registration{}
			}
			reg.Lifetime = r.Lifetime
			reg.Granted = append(reg.Granted, r.Types...)
		case wire.ParamRegFailed:
			f, err := wire.ParseRegFailed(p.Contents())
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			if reg == nil {
				reg = &Registration{}
			}
			reg.Failed = append(reg.Failed, wire.RegFailed{FailureType: f.FailureType, Types: append([]byte(nil), f.Types...)})
		case wire.ParamRegFrom:
			a, err := wire.ParseRegFrom(p.Contents())
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			from = a.AddrPort()
		}
	}
	if reg != nil && from.Addr().IsValid() && from.Port() != 0 {
		reg.From = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	}
	return reg, nil
}

// reFrom returns the registration answer of the cached ACK ack, with the
// REG_FROM the registrar gives for a repeat of its request, when the two
// differ (Registrar.From says why); nil when the cached ACK stands.
func (a *Association) reFrom(ack []byte) *Registration {
	r := a.e.cfg.Registrar
	if r == nil || r.From == nil {
		return nil
	}
	reg, err := readRegAnswer(wire.Packet(ack))
	if err != nil || reg == nil || !reg.From.IsValid() {
		return nil
	}
	from, ok := r.From(a.peer, true)
	if !ok || from == reg.From {
		return nil
	}
	reg.From = from
	return reg
}
