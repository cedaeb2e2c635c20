package handshake

import (
	"crypto/hmac"
	"errors"
	"fmt"

	"hipnet.dev/handshake/wire"
)

// The HIP control relay's integrity protection (RFC 5770 §4.5, §5.8).
//
// A relay forwards a packet to a host registered with it after appending
// RELAY_FROM (where the packet came from) and a RELAY_HMAC; the registered
// host answers through the relay with RELAY_TO (where to forward it) and a
// RELAY_HMAC. RELAY_HMAC has "the same semantics as RVS_HMAC" (§5.8): an
// HMAC over the packet up to itself, keyed with the HIP integrity key of
// the association between the relay and the registered host (RFC 8004
// §4.2.1). Each side keys what it sends with its own outgoing key, the one
// its HIP_MAC uses, and checks what it receives with the peer's, so a
// relayed packet proves which end of that association added the address.
// Both parameters come after HIP_SIGNATURE (types 63998, 64002 and 65520),
// so neither the original sender's HIP_MAC nor its signature covers them
// and stripping them restores the packet the sender signed.

// ErrNotRelayed: the packet carries no RELAY_FROM or RELAY_TO, or no
// RELAY_HMAC after it.
var ErrNotRelayed = errors.New("handshake: packet carries no relay parameters")

// AppendRelayed appends the relay address parameter addr (RELAY_FROM on a
// relay, RELAY_TO on a registered host) and a RELAY_HMAC keyed with our
// outgoing HIP integrity key of a, the association with the other end of
// the relay hop. pkt must be a finished packet without relay parameters;
// its spare capacity is reused. a must have its keys (R2-SENT or later).
func (a *Association) AppendRelayed(pkt []byte, addr wire.TransportAddress) ([]byte, error) {
	if len(a.hipMAC) == 0 {
		return nil, fmt.Errorf("%w: no keys with %v to protect a relayed packet", ErrUnexpected, a.peer)
	}
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		return nil, err
	}
	var b wire.Builder
	b.Extend(p)
	b.Add(addr)
	if err := addMACAs(&b, a.rhash, a.ourMACKey(), func(m []byte) wire.Encoder { return wire.RelayHMAC{MAC: m} }); err != nil {
		return nil, err
	}
	return b.Bytes()
}

// OpenRelayed checks the RELAY_HMAC of pkt with the peer's HIP integrity
// key of a and returns its RELAY_FROM or RELAY_TO, and pkt without the
// relay parameters (in place: the Header Length is rewritten), as the
// original sender built it. An error wrapping ErrNotRelayed means pkt has
// no relay parameters; ErrBadMAC, that they were not added by a's peer.
func (a *Association) OpenRelayed(pkt []byte) ([]byte, wire.TransportAddress, error) {
	var none wire.TransportAddress
	if len(a.hipMAC) == 0 {
		return nil, none, fmt.Errorf("%w: no keys with %v to check a relayed packet", ErrUnexpected, a.peer)
	}
	p, err := wire.ParsePacket(pkt)
	if err != nil {
		return nil, none, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	cut, hmacOff := -1, -1
	var addr wire.TransportAddress
	var mac []byte
	it := p.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		switch q.Type() {
		case wire.ParamRelayFrom, wire.ParamRelayTo:
			if cut >= 0 {
				return nil, none, fmt.Errorf("%w: two relay addresses", ErrMalformed)
			}
			if addr, err = parseRelayAddr(q); err != nil {
				return nil, none, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			cut = q.Offset()
		case wire.ParamRelayHMAC:
			hmacOff, mac = q.Offset(), q.Contents()
		case wire.ParamFrom, wire.ParamRVSHMAC:
			// RFC 9028 §7.8: RVS_HMAC and RELAY_HMAC share a key, so a
			// rendezvous packet renamed into a relayed one would verify;
			// rendezvous parameters never travel in a relayed packet.
			return nil, none, fmt.Errorf("%w: %v in a relayed packet", ErrMalformed, q.Type())
		default:
			if hmacOff >= 0 {
				return nil, none, fmt.Errorf("%w: %v after RELAY_HMAC", ErrMalformed, q.Type())
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, none, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if cut < 0 || hmacOff < cut {
		return nil, none, ErrNotRelayed
	}
	if !hmac.Equal(computeMAC(a.rhash, a.peerMACKey(), p, hmacOff, nil), mac) {
		return nil, none, fmt.Errorf("%w: RELAY_HMAC does not verify", ErrBadMAC)
	}
	out := pkt[:cut]
	out[1] = uint8(cut/8 - 1)
	return out, addr, nil
}

// RelayAddr returns the RELAY_FROM or RELAY_TO of pkt without checking
// anything else: a relay reads the RELAY_TO of a packet from a registered
// host before it knows which association keys it.
func RelayAddr(pkt wire.Packet) (wire.TransportAddress, bool) {
	for _, t := range []wire.ParamType{wire.ParamRelayTo, wire.ParamRelayFrom} {
		if q, ok := pkt.Param(t); ok {
			if addr, err := parseRelayAddr(q); err == nil {
				return addr, true
			}
		}
	}
	return wire.TransportAddress{}, false
}

func parseRelayAddr(q wire.Param) (wire.TransportAddress, error) {
	if q.Type() == wire.ParamRelayTo {
		return wire.ParseRelayTo(q.Contents())
	}
	return wire.ParseRelayFrom(q.Contents())
}
