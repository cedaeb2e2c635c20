package handshake

import (
	"bytes"
	"errors"
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

// errExchangeFailed tells handleR1 that a step failed the exchange (the
// failure is reported by EventFailed, not as a dropped packet).
var errExchangeFailed = errors.New("handshake: exchange failed")

// notifyAndFail tells the peer why the base exchange cannot go on and
// fails it cleanly.
func (a *Association) notifyAndFail(now time.Time, t wire.NotifyType, err error) error {
	if n, nerr := a.e.buildNotify(a.peer, t, nil); nerr == nil {
		a.queue(n)
	}
	a.fail(now, err)
	return errExchangeFailed
}

// RefuseI2 builds the signed NOTIFY BLOCKED_BY_POLICY that answers an
// authenticated I2 whose Initiator the caller's policy refuses (RFC 7401
// §5.2.19). Like every NOTIFY that answers an I2 it is bound to that I2
// (see handleNotify), so that the Initiator can fail its exchange at once
// and a replay of it fails nothing.
func (e *Endpoint) RefuseI2(i2 []byte) ([]byte, error) {
	pkt, err := wire.ParsePacket(i2)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	p, ok := pkt.Param(wire.ParamSolution)
	if !ok {
		return nil, fmt.Errorf("%w: I2 without SOLUTION", ErrMalformed)
	}
	sol, err := wire.ParseSolution(p.Contents())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return e.buildNotify(pkt.SenderHIT(), wire.NotifyBlockedByPolicy, sol.J)
}

// handleNotify processes a NOTIFY (RFC 7401 §6.13). Each NOTIFICATION is
// reported as an EventNotify. NOTIFY carries no freshness, so it is
// informational and changes no state by itself (§6.13), with one
// exception: an error that answers our I2 — signed by the Responder and
// carrying that I2's #J as its data, which only this exchange has — ends
// the exchange at once instead of after every retransmission. hipnet
// Responders bind the NOTIFYs they send for an I2 that way (i2Negotiate,
// RefuseI2). Any other error, an unbound one or a replayed one, is kept
// as the cause to report if the exchange then times out.
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
	var bound *NotifyError
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
		if n.Type >= 16384 || (a.state != I1Sent && a.state != I2Sent) {
			continue // status, or no exchange of ours to fail
		}
		if a.state == I2Sent && len(n.Data) > 0 && bytes.Equal(n.Data, a.puzzleJ()) {
			bound = ne
		} else if a.bex.notified == nil {
			a.bex.notified = ne
		}
	}
	if bound != nil {
		a.fail(now, bound)
	}
	return nil
}
