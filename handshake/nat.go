package handshake

import (
	"fmt"
	"time"

	"hipnet.dev/handshake/wire"
)

// NAT traversal mode negotiation and ICE material (RFC 5770 §4.3, §4.5,
// §5.2).
//
//   - R1 offers Config.NATModes in NAT_TRAVERSAL_MODE; the Initiator picks
//     the Responder's first mode it also supports and names it in I2; a
//     Responder refuses an I2 naming a mode it did not offer with NOTIFY
//     NO_VALID_NAT_TRAVERSAL_MODE_PARAMETER (§5.10).
//   - With ICE-STUN-UDP each side sends its ICE candidates (Config.
//     Candidates) as LOCATOR_SET transport locators in I2 and R2 (§4.5
//     steps 5 and 7). This package puts them inside ENCRYPTED, so the
//     private addresses of a host behind NAT are not shown to every
//     observer on the path or to the relay; the hosts already share the
//     ENCRYPTED keys when I2 is built.
//   - The ICE password is "a 128-bit key drawn from the DH keying material
//     ... after ESP keys if ESP transform was successfully negotiated"
//     (§5.2): both sides draw it right after the ESP keys of the base
//     exchange, so later KEYMAT indexes (rekeying without a new DH) skip it.

// iceKeyLen is the STUN password key of RFC 5770 §5.2: 128 bits.
const iceKeyLen = 16

// natState is the ICE material of an association with ICE-STUN-UDP,
// made when the base exchange brings it and kept until CLOSE (the caller
// runs ICE after the exchange); nil without ICE.
type natState struct {
	peerCands []wire.Locator
	iceKey    []byte
}

// clear overwrites the ICE key.
func (n *natState) clear() {
	if n != nil {
		clear(n.iceKey)
	}
}

// natState returns the ICE material, made on first use.
func (a *Association) natState() *natState {
	if a.nat == nil {
		a.nat = &natState{}
	}
	return a.nat
}

// NATMode is the NAT traversal mode the base exchange selected (0: none).
func (a *Association) NATMode() uint16 { return a.natMode }

// Pacing is the least time between two connectivity checks that both
// hosts use with ICE-STUN-UDP: the higher of the two TRANSACTION_PACING
// values, UnannouncedTa for a host that sent none (RFC 5770 §4.4, §4.6);
// zero without ICE-STUN-UDP.
func (a *Association) Pacing() time.Duration { return time.Duration(a.ta) * time.Millisecond }

func (a *Association) setTa(d time.Duration) { a.ta = uint16(min(d, maxMinTa) / time.Millisecond) }

// pacing is our TRANSACTION_PACING: Config.MinTa, raised to peer's (the
// Initiator "MUST NOT propose a smaller value than what the Responder
// offered", §4.4), which also makes it the higher of the two.
func (e *Endpoint) pacing(peer time.Duration) wire.TransactionPacing {
	return wire.TransactionPacing{MinTa: uint32(max(e.cfg.MinTa, min(peer, maxMinTa)) / time.Millisecond)}
}

// peerTa is the Ta a peer's R1 or I2 announces: its TRANSACTION_PACING,
// or UnannouncedTa without one (or with one that does not parse).
func peerTa(pkt wire.Packet) time.Duration {
	p, ok := pkt.Param(wire.ParamTransactionPacing)
	if !ok {
		return UnannouncedTa
	}
	tp, err := wire.ParseTransactionPacing(p.Contents())
	if err != nil {
		return UnannouncedTa
	}
	return tp.Duration()
}

// PeerCandidates returns the ICE candidates the peer sent in I2 or R2, as
// LOCATOR_SET locators (nil without ICE-STUN-UDP).
func (a *Association) PeerCandidates() []wire.Locator {
	if a.nat == nil {
		return nil
	}
	return a.nat.peerCands
}

// ICEKey returns the 16-octet STUN key drawn from KEYMAT after the ESP
// keys (RFC 5770 §5.2); nil unless ICE-STUN-UDP was selected.
func (a *Association) ICEKey() []byte {
	if a.nat == nil {
		return nil
	}
	return a.nat.iceKey
}

// pickNATMode reads R1's NAT_TRAVERSAL_MODE: the first of the Responder's
// modes that we support, 0 if none or the parameter is absent.
func (e *Endpoint) pickNATMode(r1 wire.Packet) uint16 {
	p, ok := r1.Param(wire.ParamNATTraversalMode)
	if !ok || len(e.cfg.NATModes) == 0 {
		return 0
	}
	m, err := wire.ParseNATTraversalMode(p.Contents())
	if err != nil {
		return 0
	}
	for i := 0; i < m.Modes.Len(); i++ {
		for _, x := range e.cfg.NATModes {
			if m.Modes.At(i) == x {
				return x
			}
		}
	}
	return 0
}

// checkNATMode reads I2's NAT_TRAVERSAL_MODE: exactly one mode, one we
// offered; absent means none.
func (e *Endpoint) checkNATMode(i2 wire.Packet) (uint16, error) {
	p, ok := i2.Param(wire.ParamNATTraversalMode)
	if !ok {
		return 0, nil
	}
	m, err := wire.ParseNATTraversalMode(p.Contents())
	if err == nil && m.Modes.Len() == 1 {
		for _, x := range e.cfg.NATModes {
			if m.Modes.At(0) == x {
				return x, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: I2 selects a NAT traversal mode we did not offer", ErrMalformed)
}

// ourEncKey and peerEncKey are the ENCRYPTED keys of our packets and the
// peer's (HIP-gl belongs to HOST_g, RFC 7401 §6.5).
func (a *Association) ourEncKey() []byte  { return a.pick(a.encKeys().gl(), a.encKeys().lg(), true) }
func (a *Association) peerEncKey() []byte { return a.pick(a.encKeys().gl(), a.encKeys().lg(), false) }

// candidateTLV returns our ICE candidates for the peer as a LOCATOR_SET
// TLV, or nil when ICE is not selected or there are none.
func (a *Association) candidateTLV() ([]byte, error) {
	if a.natMode != wire.NATModeICESTUNUDP || a.e.cfg.Candidates == nil {
		return nil, nil
	}
	locs := a.e.cfg.Candidates(a.peer)
	if len(locs) == 0 {
		return nil, nil
	}
	var b wire.Builder
	b.Reset(nil, wire.I2, a.e.hit, a.peer)
	b.Add(wire.LocatorSet{Locators: locs})
	raw, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return raw[wire.HeaderLen:], nil
}

// addEncrypted appends ENCRYPTED holding the TLVs of plain (already in
// ascending order), encrypted with our key.
func (a *Association) addEncrypted(b *wire.Builder, plain []byte) error {
	iv, ct, err := encryptParams(a.cipherID, a.ourEncKey(), a.e.cfg.Rand, plain)
	if err != nil {
		return err
	}
	b.Add(wire.Encrypted{IV: iv, Data: ct})
	return b.Err()
}

// openEncrypted decrypts the peer's ENCRYPTED in pkt, if any, and returns
// the TLVs inside (nil, nil without it). A failure to decrypt is answered
// with ENCRYPTION_FAILED by the callers that may (§5.2.18).
func (a *Association) openEncrypted(pkt wire.Packet) ([]byte, error) {
	p, ok := pkt.Param(wire.ParamEncrypted)
	if !ok {
		return nil, nil
	}
	enc, err := wire.ParseEncrypted(p.Contents(), cipherIVLen(a.cipherID))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return decryptParams(a.cipherID, a.peerEncKey(), enc.IV, enc.Data)
}

// takeCandidates keeps the transport locators of a LOCATOR_SET found
// inside ENCRYPTED.
func (a *Association) takeCandidates(inner wire.Param) error {
	v, err := wire.ParseLocatorSet(inner.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	a.natState().peerCands = v.LocatorSet().Locators
	return nil
}

// drawICEKey draws the STUN key right after the ESP keys of the base
// exchange, when ICE-STUN-UDP was selected.
func (a *Association) drawICEKey() error {
	if a.natMode != wire.NATModeICESTUNUDP {
		return nil
	}
	k, err := a.km.draw(iceKeyLen)
	a.natState().iceKey = k
	return err
}
