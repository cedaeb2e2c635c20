package handshake

import (
	"fmt"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/wire"
)

// updateState is the UPDATE bookkeeping of RFC 7401 §6.11-6.12 and the
// ESP rekeying of RFC 7402 §6.8-6.10. One UPDATE of ours is outstanding at
// a time, which RFC 7401 §6.11 offers as the simple way to avoid
// conflicts and RFC 7402 §6.8 requires while rekeying.
type updateState struct {
	next     uint32 // our next Update ID (§6.11 step 1: the first is 0)
	peerNext uint32 // the peer's next expected Update ID
	seenPeer bool   // we processed a SEQ from the peer
	acked    uint32 // the peer's last processed Update ID
	lastAck  []byte // our answer to it, resent on retransmission (§6.12.1 step 2)

	outstanding bool
	outID       uint32

	// Rekeying: what we sent and what the peer sent.
	rekeying  bool
	ourAcked  bool
	sentInfo  wire.ESPInfo
	sentDH    dhKey
	peerInfo  *wire.ESPInfo
	peerNewDH []byte
	// pending is the outcome, derived as soon as both ESP_INFOs are known,
	// so the new inbound SA can be installed before the exchange ends.
	pending *rekeyResult
}

// rekeyResult is what a rekey will install.
type rekeyResult struct {
	in, out esp.Config
	km      *keymat
	local   dhKey
	peerPub []byte
	index   int
}

// Rekey starts an ESP rekeying UPDATE (RFC 7402 §6.8): new SPIs and keys
// drawn further along KEYMAT, or, with newDH, a new Diffie-Hellman
// exchange and a fresh KEYMAT. EventRekeyed reports the new SAs; the old
// ones stay usable until then.
func (a *Association) Rekey(now time.Time, newDH bool) error {
	if a.state != Established && a.state != R2Sent {
		return fmt.Errorf("%w: rekey in %v", ErrUnexpected, a.state)
	}
	if a.upd.outstanding || a.upd.rekeying {
		return ErrBusy
	}
	spi, err := a.e.allocSPI()
	if err != nil {
		return err
	}
	info := wire.ESPInfo{KeymatIndex: uint16(a.km.next), OldSPI: a.inSPI, NewSPI: spi}
	var key dhKey
	if newDH {
		if key, err = lookupGroup(a.dh.group()).generate(a.e.cfg.Rand); err != nil {
			return err
		}
		info.KeymatIndex = 0 // RFC 7402 §6.8 step 2
	} else if _, err := a.km.at(a.km.next, a.rekeyLen()); err != nil {
		return err // KEYMAT exhausted: the caller must ask for a new DH
	}
	pkt, err := a.buildUpdate(info, key, nil)
	if err != nil {
		return err
	}
	a.upd.rekeying, a.upd.ourAcked = true, false
	a.upd.sentInfo, a.upd.sentDH = info, key
	a.upd.peerInfo, a.upd.peerNewDH, a.upd.pending = nil, nil, nil
	a.send(now, pkt, true)
	return nil
}

// Rekeying reports whether an ESP rekeying exchange is in progress.
func (a *Association) Rekeying() bool { return a.upd.rekeying }

func (a *Association) rekeyLen() int {
	enc, auth := a.espSuite.KeyLen()
	return 2 * (enc + auth)
}

// buildUpdate builds an UPDATE with our next SEQ, ESP_INFO, optional
// DIFFIE_HELLMAN and an ACK of ack, and marks the SEQ outstanding.
func (a *Association) buildUpdate(info wire.ESPInfo, key dhKey, ack []uint32) ([]byte, error) {
	var b wire.Builder
	b.Reset(make([]byte, 0, 512), wire.UPDATE, a.e.hit, a.peer)
	b.Add(info)
	b.Add(wire.Seq{UpdateID: a.upd.next})
	if len(ack) > 0 {
		b.Add(wire.MakeAck(ack...))
	}
	if key != nil {
		b.Add(wire.DiffieHellman{Group: key.group(), Public: key.public()})
	}
	pkt, err := a.signAndMAC(&b, a.ourMACKey())
	if err != nil {
		return nil, err
	}
	a.upd.outstanding, a.upd.outID = true, a.upd.next
	a.upd.next++
	return pkt, nil
}

// buildAck builds an UPDATE that acknowledges (§5.3.5), carrying the
// answer to a registration request if there is one (RFC 8003 §3.3).
func (a *Association) buildAck(id uint32, reg *Registration) ([]byte, error) {
	var b wire.Builder
	b.Reset(make([]byte, 0, 256), wire.UPDATE, a.e.hit, a.peer)
	b.Add(wire.MakeAck(id))
	addRegAnswer(&b, reg)
	return a.signAndMAC(&b, a.ourMACKey())
}

// handleUpdate processes an UPDATE (RFC 7401 §6.12, RFC 7402 §6.9).
func (a *Association) handleUpdate(now time.Time, pkt wire.Packet) error {
	if a.state != Established && a.state != R2Sent {
		return fmt.Errorf("%w: UPDATE in %v", ErrUnexpected, a.state)
	}
	if err := checkCritical(pkt, wire.ParamESPInfo, wire.ParamSeq, wire.ParamAck,
		wire.ParamDiffieHellman, wire.ParamHIPMAC, wire.ParamHIPSignature); err != nil {
		return err
	}
	// ESP_INFO and REG_REQUEST in one UPDATE would need two answers in
	// one; we never send that, and answer only the rekey if a peer does.
	var seq *wire.Seq
	if p, ok := pkt.Param(wire.ParamSeq); ok {
		s, err := wire.ParseSeq(p.Contents())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		seq = &s
	}
	var ack wire.Ack
	hasAck := false
	if p, ok := pkt.Param(wire.ParamAck); ok {
		var err error
		if ack, err = wire.ParseAck(p.Contents()); err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		hasAck = true
	}
	if seq == nil && !hasAck {
		return fmt.Errorf("%w: UPDATE without SEQ or ACK", ErrMalformed)
	}
	ackNew := hasAck && a.upd.outstanding && ack.IDs.Contains(a.upd.outID)
	if seq == nil && !ackNew {
		// §6.12.2 step 1: an ACK of nothing outstanding.
		return fmt.Errorf("%w: ACK of no outstanding UPDATE", ErrReplay)
	}
	if seq != nil && a.upd.seenPeer && seqBefore(seq.UpdateID, a.upd.peerNext) {
		// An old SEQ: re-acknowledge the latest after verifying the MAC
		// (§6.12.1 step 2); older ones are dropped.
		if err := a.verifyControl(pkt); err != nil {
			return err
		}
		if seq.UpdateID == a.upd.acked && a.upd.lastAck != nil {
			a.out = append(a.out, a.upd.lastAck)
			return nil
		}
		return fmt.Errorf("%w: UPDATE SEQ %d already processed", ErrReplay, seq.UpdateID)
	}
	if err := a.verifyControl(pkt); err != nil {
		return err
	}
	a.DataReceived(now) // an UPDATE ends R2-SENT (§4.4.3 Table 5)

	if ackNew {
		a.upd.outstanding = false
		a.stopRetransmit()
		if a.upd.rekeying {
			a.upd.ourAcked = true
		}
	}
	// Registration (RFC 8003): a registrar's new REG_INFO, and its answer
	// to our REG_REQUEST.
	if err := a.noteRegInfo(pkt); err != nil {
		return err
	}
	if reg, err := readRegAnswer(pkt); err != nil {
		return err
	} else if reg != nil {
		a.emit(Event{Kind: EventRegistration, Registration: reg})
	}
	if seq == nil {
		return a.maybeFinishRekey(now)
	}

	a.upd.seenPeer = true
	a.upd.acked = seq.UpdateID
	a.upd.peerNext = seq.UpdateID + 1
	var info *wire.ESPInfo
	if p, ok := pkt.Param(wire.ParamESPInfo); ok {
		ei, err := wire.ParseESPInfo(p.Contents())
		if err != nil || ei.NewSPI == 0 {
			return fmt.Errorf("%w: bad ESP_INFO", ErrMalformed)
		}
		info = &ei
	}
	var peerDH []byte
	if p, ok := pkt.Param(wire.ParamDiffieHellman); ok {
		dh, err := wire.ParseDiffieHellman(p.Contents())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		// RFC 7402 §6.9 step 1.
		if dh.Group != a.dh.group() || info == nil || info.KeymatIndex != 0 {
			return fmt.Errorf("%w: DIFFIE_HELLMAN in UPDATE must keep group %d with KEYMAT index 0", ErrMalformed, a.dh.group())
		}
		peerDH = append([]byte(nil), dh.Public...)
	}

	if info == nil || a.upd.rekeying {
		// Nothing to answer but the ACK; if we are rekeying, this is the
		// peer's half (RFC 7402 §6.9 step 3).
		if info != nil {
			a.upd.peerInfo, a.upd.peerNewDH = info, peerDH
		}
		var reg *Registration
		if info == nil {
			var err error
			if reg, err = a.e.decide(a.peer, pkt); err != nil {
				return err
			}
		}
		ackPkt, err := a.buildAck(seq.UpdateID, reg)
		if err != nil {
			return err
		}
		a.upd.lastAck = ackPkt
		a.out = append(a.out, ackPkt)
		if reg != nil {
			a.emit(Event{Kind: EventRegistration, Registration: reg})
		}
		return a.maybeFinishRekey(now)
	}

	// The peer starts rekeying (RFC 7402 §6.9.1): answer with our
	// ESP_INFO, a DIFFIE_HELLMAN if it sent one (§4.1.3), and the ACK.
	spi, err := a.e.allocSPI()
	if err != nil {
		return err
	}
	mine := wire.ESPInfo{KeymatIndex: max(info.KeymatIndex, uint16(a.km.next)), OldSPI: a.inSPI, NewSPI: spi}
	var key dhKey
	if peerDH != nil {
		if key, err = lookupGroup(a.dh.group()).generate(a.e.cfg.Rand); err != nil {
			return err
		}
		mine.KeymatIndex = 0
	}
	if a.upd.outstanding {
		// A non-rekey UPDATE of ours is still in flight; one at a time.
		return ErrBusy
	}
	reply, err := a.buildUpdate(mine, key, []uint32{seq.UpdateID})
	if err != nil {
		return err
	}
	a.upd.rekeying, a.upd.ourAcked = true, false
	a.upd.sentInfo, a.upd.sentDH = mine, key
	a.upd.peerInfo, a.upd.peerNewDH = info, peerDH
	a.upd.lastAck = reply
	a.send(now, reply, true)
	// Both ESP_INFOs are known now: the new inbound SA can be ready before
	// the peer, which finishes first, starts sending on it (RFC 7402 §6.10
	// step 4, "prepares to start receiving data on the new incoming SA").
	r, err := a.deriveRekey()
	if err != nil {
		return err
	}
	a.upd.pending = r
	a.emit(Event{Kind: EventRekeyInbound, Inbound: r.in})
	return nil
}

// maybeFinishRekey installs the new SAs once our ESP_INFO is acknowledged
// and the peer's has arrived (RFC 7402 §6.10).
func (a *Association) maybeFinishRekey(now time.Time) error {
	u := &a.upd
	if !u.rekeying || !u.ourAcked || u.peerInfo == nil {
		return nil
	}
	r := u.pending
	if r == nil {
		var err error
		if r, err = a.deriveRekey(); err != nil {
			return err
		}
	}
	a.km, a.dh, a.peerDH, a.espIndex = r.km, r.local, r.peerPub, r.index
	a.inSPI, a.outSPI = u.sentInfo.NewSPI, u.peerInfo.NewSPI
	u.rekeying, u.ourAcked, u.peerInfo, u.peerNewDH, u.sentDH, u.pending = false, false, nil, nil, nil, nil
	a.emit(Event{Kind: EventRekeyed, Inbound: r.in, Outbound: r.out})
	_ = now
	return nil
}

// deriveRekey computes the outcome of the rekey in progress without
// changing the association (RFC 7402 §6.10 steps 1-3): a new KEYMAT if
// either side sent a new Diffie-Hellman key — the old key standing in for
// a side that sent none, salt and info as in RFC 7401 §6.5 — and the ESP
// keys from the greater KEYMAT index, or from 0 with a new KEYMAT.
func (a *Association) deriveRekey() (*rekeyResult, error) {
	u := &a.upd
	r := &rekeyResult{km: a.km, local: a.dh, peerPub: a.peerDH,
		index: int(max(u.sentInfo.KeymatIndex, u.peerInfo.KeymatIndex))}
	if u.sentDH != nil || u.peerNewDH != nil {
		if u.sentDH != nil {
			r.local = u.sentDH
		}
		if u.peerNewDH != nil {
			r.peerPub = u.peerNewDH
		}
		kij, err := r.local.shared(r.peerPub)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		hitI, hitR := a.e.hit, a.peer
		if !a.initiator {
			hitI, hitR = hitR, hitI
		}
		if r.km, err = newKeymat(a.rhash, kij, a.puzzleI, a.puzzleJ, hitI, hitR); err != nil {
			return nil, err
		}
		r.index = 0
	}
	var err error
	r.in, r.out, err = espConfigsFrom(r.km, a.espSuite, r.index, u.sentInfo.NewSPI, u.peerInfo.NewSPI, a.weAreG())
	if err != nil {
		return nil, err
	}
	return r, nil
}

// seqBefore compares Update IDs in circular sequence space (§6.12).
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }
