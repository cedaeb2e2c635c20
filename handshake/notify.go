package handshake

import (
	"fmt"
	"time"

	"hipnet.dev/handshake/wire"
)

// buildNotify builds a signed NOTIFY (RFC 7401 §5.3.6) carrying our
// HOST_ID, so that a peer without state can still authenticate it.
func (e *Endpoint) buildNotify(peer wire.HIT, t wire.NotifyType, data []byte) ([]byte, error) {
	var b wire.Builder
	b.Reset(make([]byte, 0, 512), wire.NOTIFY, e.hit, peer)
	// HOST_ID (705) precedes NOTIFICATION (832): parameters go in
	// ascending type order whatever order §5.3.6 lists them in.
	b.AddRaw(wire.ParamHostID, hostIDContents(e.hostID))
	b.Add(wire.Notification{Type: t, Data: data})
	return e.sign(&b)
}

// notifyAndFail tells the peer why the base exchange cannot go on and
// fails it cleanly.
func (a *Association) notifyAndFail(now time.Time, t wire.NotifyType, err error) {
	if n, nerr := a.e.buildNotify(a.peer, t, nil); nerr == nil {
		a.out = append(a.out, n)
	}
	a.fail(now, err)
}

// handleNotify processes a NOTIFY (RFC 7401 §6.13). Each NOTIFICATION is
// reported as an EventNotify. NOTIFY is informational and does not change
// state — except that an error from the authenticated peer while our
// base exchange is in flight ends it at once instead of after every
// retransmission (the peer has told us, signed, that it will not
// proceed).
func (a *Association) handleNotify(now time.Time, pkt wire.Packet) error {
	if err := checkCritical(pkt, wire.ParamHostID, wire.ParamHIPSignature); err != nil {
		return err
	}
	pub := a.peerPub
	if pub == nil {
		p, ok := pkt.Param(wire.ParamHostID)
		if !ok {
			return fmt.Errorf("%w: NOTIFY from unknown host without HOST_ID", ErrUnexpected)
		}
		var err error
		if pub, err = parseHostID(p.Contents()); err != nil {
			return err
		}
		if pkt.SenderHIT() != a.peer || a.peer.IsZero() || pub.HIT() != a.peer {
			return fmt.Errorf("%w: NOTIFY", ErrHITMismatch)
		}
	}
	if err := verifySignature(pub, pkt, wire.ParamHIPSignature); err != nil {
		return err
	}
	var first *NotifyError
	it := pkt.Params()
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		if p.Type() != wire.ParamNotification {
			continue
		}
		n, err := wire.ParseNotification(p.Contents())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		ne := &NotifyError{Type: wire.NotifyType(n.Type), Data: append([]byte(nil), n.Data...)}
		a.emit(Event{Kind: EventNotify, Err: ne})
		if first == nil && n.Type < 16384 {
			first = ne
		}
	}
	if first != nil && (a.state == I1Sent || a.state == I2Sent) {
		a.fail(now, first)
	}
	return nil
}
