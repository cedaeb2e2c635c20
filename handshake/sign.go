package handshake

import (
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"hash"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// The scopes of HIP_MAC, HIP_MAC_2, HIP_SIGNATURE and HIP_SIGNATURE_2
// (RFC 7401 §6.4): the packet up to the parameter, with the Checksum
// zeroed and the Header Length recomputed to end there.

// scopeOf copies pkt[:end] with the header adjusted, followed by extra
// (the Responder's HOST_ID for HIP_MAC_2), counted in the Header Length.
func scopeOf(pkt []byte, end int, extra []byte) []byte {
	s := make([]byte, 0, end+len(extra))
	s = append(s, pkt[:end]...)
	s = append(s, extra...)
	s[1] = byte(len(s)/8 - 1)
	binary.BigEndian.PutUint16(s[4:6], 0)
	return s
}

// scopeSig2 is the HIP_SIGNATURE_2 scope of an R1 (RFC 7401 §5.2.15,
// §6.4.2): besides the header rules, the Receiver's HIT and the PUZZLE's
// Opaque and #I are zeroed so that R1s can be signed ahead of time.
func scopeSig2(pkt wire.Packet, end int) ([]byte, error) {
	s := scopeOf(pkt, end, nil)
	clear(s[24:40])
	pz, ok := pkt.Param(wire.ParamPuzzle)
	if !ok {
		return nil, fmt.Errorf("%w: R1 without PUZZLE", ErrMalformed)
	}
	// PUZZLE contents: #K(1) Lifetime(1) Opaque(2) #I. Checked here,
	// before the signature is: whoever sends an R1 chooses its length.
	off, n := pz.Offset()+4, len(pz.Contents())
	if n < 4 {
		return nil, fmt.Errorf("%w: PUZZLE of %d octets", ErrMalformed, n)
	}
	if off+n > end {
		return nil, fmt.Errorf("%w: PUZZLE after HIP_SIGNATURE_2", ErrMalformed)
	}
	clear(s[off+2 : off+n])
	return s, nil
}

// computeMAC returns the HMAC for a HIP_MAC (or HIP_MAC_2 when hostID is
// the Responder's HOST_ID TLV as sent in R1) placed at offset end.
func computeMAC(newHash func() hash.Hash, key, pkt []byte, end int, hostID []byte) []byte {
	return macOf(newHash, key, scopeOf(pkt, end, hostID))
}

// verifyMAC checks the HIP_MAC (typ ParamHIPMAC) or HIP_MAC_2 (typ
// ParamHIPMAC2) of pkt.
func verifyMAC(newHash func() hash.Hash, key []byte, pkt wire.Packet, typ wire.ParamType, hostID []byte) error {
	p, ok := pkt.Param(typ)
	if !ok {
		return fmt.Errorf("%w: no %v", ErrBadMAC, typ)
	}
	want := computeMAC(newHash, key, pkt, p.Offset(), hostID)
	if !hmac.Equal(want, p.Contents()) {
		return fmt.Errorf("%w: %v does not verify", ErrBadMAC, typ)
	}
	return nil
}

// verifySignature checks the HIP_SIGNATURE (or HIP_SIGNATURE_2 for R1)
// of pkt against the sender's host identity.
func verifySignature(pub *hostid.PublicKey, pkt wire.Packet, typ wire.ParamType) error {
	p, ok := pkt.Param(typ)
	if !ok {
		return fmt.Errorf("%w: no %v", ErrBadSignature, typ)
	}
	parse := wire.ParseSignature
	if typ == wire.ParamHIPSignature2 {
		parse = wire.ParseSignature2
	}
	sig, err := parse(p.Contents())
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	var scope []byte
	if typ == wire.ParamHIPSignature2 {
		if scope, err = scopeSig2(pkt, p.Offset()); err != nil {
			return err
		}
	} else {
		scope = scopeOf(pkt, p.Offset(), nil)
	}
	if err := pub.Verify(scope, sig.Sig, hostid.Algorithm(sig.Alg)); err != nil {
		return fmt.Errorf("%w: %v: %v", ErrBadSignature, typ, err)
	}
	return nil
}
