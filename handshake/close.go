package handshake

import (
	"bytes"
	"fmt"
	"time"

	"hipnet.dev/handshake/wire"
)

// Close ends the association (RFC 7401 §5.3.7): with keys, it sends a
// CLOSE and waits in CLOSING for the CLOSE_ACK; without, it simply
// returns to UNASSOCIATED. An EventClosed follows either way.
func (a *Association) Close(now time.Time) {
	switch a.state {
	case I2Sent, R2Sent, Established:
		a.beginClose(now)
	case Closing, Closed, Unassociated:
	default:
		a.stopRetransmit()
		if a.bex != nil {
			a.bex.solving = nil
		}
		a.setState(now, Unassociated)
		a.emit(Event{Kind: EventClosed, Err: ErrClosed})
	}
}

func (a *Association) beginClose(now time.Time) {
	echo, err := a.e.random(8)
	if err != nil {
		return
	}
	var b wire.Builder
	b.Reset(make([]byte, 0, 256), wire.CLOSE, a.e.hit, a.peer)
	b.Add(wire.Echo{Type: wire.ParamEchoRequestSigned, Opaque: echo})
	pkt, err := a.signAndMAC(&b, a.ourMACKey())
	if err != nil {
		return
	}
	a.closeState().echo = echo
	if a.dh != nil {
		a.group = a.dh.group()
	}
	a.setState(now, Closing)
	a.stateAt = now.Add(a.e.cfg.UAL + a.e.cfg.MSL) // Table 7
	a.send(now, pkt, true)
}

// closeState returns the CLOSE state, made on first use.
func (a *Association) closeState() *closeState {
	if a.cls == nil {
		a.cls = &closeState{}
	}
	return a.cls
}

// verifyControl checks HIP_MAC and HIP_SIGNATURE of a packet from the
// established peer.
func (a *Association) verifyControl(pkt wire.Packet) error {
	if len(a.hipMAC) == 0 || a.peerPub == nil {
		return fmt.Errorf("%w: %v without keys", ErrUnexpected, pkt.Type())
	}
	if err := verifyMAC(a.rhash, a.peerMACKey(), pkt, wire.ParamHIPMAC, nil); err != nil {
		return err
	}
	return verifySignature(a.peerPub, pkt, wire.ParamHIPSignature)
}

// handleClose answers a CLOSE with a CLOSE_ACK and moves to CLOSED
// (RFC 7401 §6.14), also when our own CLOSE crossed it.
func (a *Association) handleClose(now time.Time, pkt wire.Packet) error {
	switch a.state {
	case I2Sent, R2Sent, Established, Closing, Closed: // Tables 4-8
	default:
		return fmt.Errorf("%w: CLOSE in %v", ErrUnexpected, a.state)
	}
	if err := checkCritical(pkt, wire.ParamEchoRequestSigned, wire.ParamHIPMAC, wire.ParamHIPSignature); err != nil {
		return err
	}
	p, ok := pkt.Param(wire.ParamEchoRequestSigned)
	if !ok {
		return fmt.Errorf("%w: CLOSE without ECHO_REQUEST_SIGNED", ErrMalformed)
	}
	if c := a.cls; a.state == Closed && c != nil && c.ack != nil && bytes.Equal(p.Contents(), c.ackEcho) {
		return a.reackClose(now, pkt)
	}
	if err := a.verifyControl(pkt); err != nil {
		return err
	}
	var b wire.Builder
	b.Reset(make([]byte, 0, 256), wire.CLOSE_ACK, a.e.hit, a.peer)
	b.Add(wire.Echo{Type: wire.ParamEchoResponseSigned, Opaque: p.Contents()})
	ack, err := a.signAndMAC(&b, a.ourMACKey())
	if err != nil {
		return err
	}
	a.queue(ack)
	c := a.closeState()
	c.ack, c.ackEcho = ack, append([]byte(nil), p.Contents()...)
	c.ackAt = now.Add(a.e.cfg.RetransmitTimeout)
	if a.state != Closed {
		if a.dh != nil {
			a.group = a.dh.group()
		}
		a.stopRetransmit()
		a.setState(now, Closed)
		a.stateAt = now.Add(a.e.cfg.UAL + 2*a.e.cfg.MSL) // Table 8
		a.emit(Event{Kind: EventClosed, Err: ErrClosed})
	}
	return nil
}

// reackClose answers a retransmission of the CLOSE that CLOSED answered
// (its CLOSE_ACK was lost; Table 8: "send CLOSE_ACK and stay at CLOSED"):
// HIP_MAC proves the peer, and the cached CLOSE_ACK goes again, at most
// once a retransmission timeout, so that a recorded CLOSE replayed for the
// UAL+2MSL that CLOSED lasts costs neither a signature check nor a
// signature (as for UPDATE, §6.12.1 step 2).
func (a *Association) reackClose(now time.Time, pkt wire.Packet) error {
	if err := verifyMAC(a.rhash, a.peerMACKey(), pkt, wire.ParamHIPMAC, nil); err != nil {
		return err
	}
	c := a.cls
	if now.Before(c.ackAt) {
		return fmt.Errorf("%w: CLOSE already acknowledged (rate-limited)", ErrReplay)
	}
	c.ackAt = now.Add(a.e.cfg.RetransmitTimeout)
	a.queue(c.ack)
	a.repeat = true
	return nil
}

// handleCloseAck completes our CLOSE (RFC 7401 §6.15).
func (a *Association) handleCloseAck(now time.Time, pkt wire.Packet) error {
	if a.state != Closing && a.state != Closed {
		return fmt.Errorf("%w: CLOSE_ACK in %v", ErrUnexpected, a.state)
	}
	if err := checkCritical(pkt, wire.ParamEchoResponseSigned, wire.ParamHIPMAC, wire.ParamHIPSignature); err != nil {
		return err
	}
	if err := a.verifyControl(pkt); err != nil {
		return err
	}
	p, ok := pkt.Param(wire.ParamEchoResponseSigned)
	if !ok || a.cls == nil || a.cls.echo == nil || !bytes.Equal(p.Contents(), a.cls.echo) {
		return fmt.Errorf("%w: CLOSE_ACK does not answer our CLOSE", ErrReplay)
	}
	wasClosing := a.state == Closing
	a.stopRetransmit()
	a.stateAt = time.Time{}
	a.setState(now, Unassociated) // drops the CLOSE state (forget)
	if wasClosing {
		a.emit(Event{Kind: EventClosed, Err: ErrClosed})
	}
	return nil
}
