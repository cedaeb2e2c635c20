package overlay

import (
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// blockedNotify builds the signed NOTIFY BLOCKED_BY_POLICY (RFC 7401
// §5.2.19, §5.3.6) that answers an I2 from a peer Config.Authorize refuses.
// Like the state machine's own NOTIFYs it carries our HOST_ID, so that the
// Initiator can verify it; HIP_SIGNATURE covers the packet up to itself with
// the checksum zero (§6.4.2), which is what the builder holds at that point.
// The Initiator then fails its base exchange at once instead of after every
// I2 retransmission.
func blockedNotify(id *hostid.PrivateKey, self, peer wire.HIT) ([]byte, error) {
	pub := id.Public()
	var b wire.Builder
	b.Reset(make([]byte, 0, 512), wire.NOTIFY, self, peer)
	b.Add(wire.HostID{Algorithm: uint16(pub.Algorithm()), HI: pub.HI()})
	b.Add(wire.Notification{Type: wire.NotifyBlockedByPolicy})
	raw, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	sig, alg, err := id.Sign(nil, raw)
	if err != nil {
		return nil, err
	}
	b.Add(wire.Signature{Type: wire.ParamHIPSignature, Alg: uint16(alg), Sig: sig})
	raw, err = b.Bytes()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), raw...), nil
}
