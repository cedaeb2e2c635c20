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

// exportSecret keeps the secret of p's newly established association.
// It stays until the association's SAs go (removeSAs): a rekey leaves it,
// so that both ends keep agreeing on it. A relay server's stack
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

// AssociationSecret returns a 32-octet secret that both hosts of the
// current association with hit, and no one else, know: exported from the
// association's Diffie-Hellman keying material (RFC 7401 §6.5) when its
// base exchange completed, the same on both sides until the association
// ends. It returns false when there is no established association, and
// always on a relay server's stack (Config.Forwarder). The
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
