package overlay

import (
	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// The association's secret for the layers above: the stream layer keys
// its QUIC connections with it (TLS 1.3 PSK), so that a connection is
// bound to exactly this association and needs no second public-key
// handshake (streams/doc.go).

// secretLen is the length of the exported secret: 256 bits.
const secretLen = 32

// secretLabel names the exported secret (handshake.Association.Export).
// Changing it makes nodes of different versions fall back to the stream
// layer's certificate handshake, which still works.
const secretLabel = "streams psk 1"

// exportSecret keeps the secret of p's newly established association
// (or, on the Initiator, of the one whose I2 is leaving: keyed). It stays
// until the association's SAs go (removeSAs): a rekey leaves it, so that
// both ends keep agreeing on it. A relay server's stack
// (Config.Forwarder) keeps none: no stream layer runs above it, and it
// holds an association per registered host. Control goroutine.
func (c *control) exportSecret(p *peer, a *handshake.Association) {
	if c.s.cfg.Forwarder != nil {
		return
	}
	b, err := a.Export(secretLabel, secretLen)
	if err != nil {
		c.s.log.Debug("no association secret", "peer", p.hit.String(), "err", err)
		p.secret.Store(nil)
		return
	}
	var k [secretLen]byte
	copy(k[:], b)
	clear(b)
	p.secret.Store(&k)
}

// keyed is the Initiator's moment between R1 and R2: it has verified the
// R1's signature over the Responder's Diffie-Hellman value and drawn
// KEYMAT, so the secret it exports now is the one the Responder will
// export on accepting the I2 (RFC 7401 §6.5: "The Initiator has Kij
// during the creation of the I2 packet"; KEYMAT depends only on Kij, the
// HITs and the puzzle's #I and #J, all fixed by the I2). It
// exports it and answers the ConnectKeyed callers, whose first packets
// then wait in p's queue until R2 installs the outbound SA
// (sendAssociated): nothing keyed by the secret leaves before the
// Responder has authenticated us. An R1 answered again gives a new
// KEYMAT and a new export; a failed exchange removes it (removeSAs).
// Without a secret (a relay server's stack, a failed export) the callers
// wait for the exchange's end, as Connect's do. Control goroutine.
func (c *control) keyed(p *peer, a *handshake.Association) {
	c.exportSecret(p, a)
	if p.secret.Load() != nil {
		c.wakeKeyWaiters(p, nil)
	}
}

// AssociationSecret returns a 32-octet secret that both hosts of the
// current association with hit, and no one else, know: exported from the
// association's Diffie-Hellman keying material (RFC 7401 §6.5) when its
// base exchange completed, the same on both sides until the association
// ends. The Initiator has it from the moment it sends its I2 (keyed;
// ConnectKeyed waits for that). It returns false when there is no such
// association, and always on a relay server's stack (Config.Forwarder). The
// slice is the caller's own copy. Safe for concurrent use.
func (s *Stack) AssociationSecret(hit wire.HIT) ([]byte, bool) {
	p := s.lookupPeer(hit)
	if p == nil {
		return nil, false
	}
	k := p.secret.Load()
	if k == nil {
		return nil, false
	}
	return append([]byte(nil), k[:]...), true
}
