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
// conflicts and RFC 7402 §6.8 requires while rekeying; the peer's SEQs are
// always acknowledged, whatever of ours is outstanding (§6.12.1 step 6).
//
// The struct holds the sequence numbers, which last as long as the
// association; the rest hangs off it only while it is needed (ph, lim) or
// once there is something to keep (ack), so that an association that never
// saw an UPDATE, or whose UPDATEs are over, carries three nil pointers.
type updateState struct {
	next  uint32    // our next Update ID (§6.11 step 1: the first is 0)
	acked uint32    // the peer's last processed Update ID
	win   seqWindow // the peer's Update IDs (§6.12.1 steps 1-2, 5)

	outstanding bool
	outID       uint32

	ack  *ackCache    // our answer to the peer's latest SEQ
	echo *echoState   // SEQ-less echo UPDATEs: limits, our probes' nonces (mobility.go)
	ph   *updatePhase // a rekey, a deferred answer or a waiting LOCATOR_SET
}

// ackCache is our acknowledgement of the peer's latest SEQ, resent when
// that SEQ is retransmitted (§6.12.1 step 2), and the limit on doing so.
// It is kept, not dropped when idle: the peer retransmits on its own
// schedule, and the cached ACK may carry what a new one would not (our
// ESP_INFO, a REG_RESPONSE).
type ackCache struct {
	pkt     []byte
	reackAt time.Time // no re-acknowledgement before this (§6.12.1 step 2 rate limit)
}

// echoState is what SEQ-less echo UPDATEs (mobility.go) need: the limits
// on those that come in, and the nonces of our probes waiting for their
// answers. It is made by the first such UPDATE or probe and dropped
// (updIdle) once both buckets are full again, which is what a missing
// one stands for, and no probe waits.
type echoState struct {
	probesIn rateLimit
	echoesIn rateLimit
	probes   sentProbes
}

// updatePhase is the state of an UPDATE exchange in flight beyond the
// outstanding SEQ: made by the first rekey, deferred answer or waiting
// LOCATOR_SET, dropped by updIdle when none is left.
type updatePhase struct {
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
	// rekeyBy is when a rekey of ours that has not completed is given up
	// and started again; rekeyTries counts those attempts.
	rekeyBy    time.Time
	rekeyTries int
	rekeyNewDH bool
	// deferred is a rekey the peer started while a non-rekey UPDATE of
	// ours was outstanding, or while we finished its previous rekey:
	// acknowledged at once, answered with our ESP_INFO as soon as ours
	// is acknowledged (updateAcked), or the rekey done (maybeFinishRekey).
	deferred *peerRekey

	// Mobility (mobility.go): a LOCATOR_SET waiting for the outstanding
	// UPDATE or rekey to finish.
	locs       []wire.Locator
	locsQueued bool // locs is waiting (an empty set is a valid announcement)
}

// phase returns the UPDATE phase state, made on first use.
func (u *updateState) phase() *updatePhase {
	if u.ph == nil {
		u.ph = &updatePhase{}
	}
	return u.ph
}

// ackCache returns the ACK cache, made on first use.
func (u *updateState) ackCache() *ackCache {
	if u.ack == nil {
		u.ack = &ackCache{}
	}
	return u.ack
}

// echoes returns the echo state, made on first use (full buckets).
func (u *updateState) echoes() *echoState {
	if u.echo == nil {
		u.echo = &echoState{}
	}
	return u.echo
}

// probes returns our probes' nonces; nil if there is no echo state.
func (u *updateState) probes() *sentProbes {
	if u.echo == nil {
		return nil
	}
	return &u.echo.probes
}

// locsQueued reports whether a LOCATOR_SET waits to be sent.
func (u *updateState) locsQueued() bool { return u.ph != nil && u.ph.locsQueued }

// updIdle drops the UPDATE phase state once nothing is left in it — no
// rekey, no deferred answer, no waiting LOCATOR_SET; what remains then is
// never read before a new phase sets it — and the echo limits once both
// buckets are full again. It runs after every UPDATE and timeout.
func (a *Association) updIdle(now time.Time) {
	u := &a.upd
	if p := u.ph; p != nil && !p.rekeying && p.deferred == nil && !p.locsQueued {
		u.ph = nil
	}
	if l := u.echo; l != nil && !l.probesIn.full.After(now) && !l.echoesIn.full.After(now) && l.probes.none(now) {
		u.echo = nil
	}
}

// peerRekey is the peer's half of a rekey: its ESP_INFO and, if it sent
// one, its new Diffie-Hellman public value.
type peerRekey struct {
	info wire.ESPInfo
	dh   []byte
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
// ones stay usable until then. A rekey that has not completed by its
// deadline is started again, up to Config.Retries times, and then the
// association is closed (see rekeyTimeout).
func (a *Association) Rekey(now time.Time, newDH bool) error {
	if a.state != Established && a.state != R2Sent {
		return fmt.Errorf("%w: rekey in %v", ErrUnexpected, a.state)
	}
	if a.upd.outstanding || a.Rekeying() {
		return ErrBusy
	}
	if err := a.startRekey(now, newDH); err != nil {
		return err
	}
	a.upd.ph.rekeyTries = 0
	return nil
}

// startRekey sends our rekeying UPDATE and arms the rekey deadline.
func (a *Association) startRekey(now time.Time, newDH bool) error {
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
	pkt, err := a.buildUpdate(info, key, nil, nil)
	if err != nil {
		return err
	}
	a.beginRekey(now, info, key)
	u := a.upd.ph
	u.rekeyNewDH = newDH
	u.peerInfo, u.peerNewDH, u.pending = nil, nil, nil
	a.send(now, pkt, true)
	return nil
}

// beginRekey records our half of a rekey and its deadline.
func (a *Association) beginRekey(now time.Time, info wire.ESPInfo, key dhKey) {
	u := a.upd.phase()
	u.rekeying, u.ourAcked = true, false
	u.sentInfo, u.sentDH = info, key
	u.rekeyBy = now.Add(a.rekeyTimeout())
}

// rekeyTimeout is how long a rekey may take: every retransmission of its
// UPDATE, and as long again for the peer's ESP_INFO after its ACK (RFC
// 7402 §6.9.1 has the peer answer at once; a peer that acknowledges
// without ever sending it must not leave us rekeying forever).
func (a *Association) rekeyTimeout() time.Duration {
	return 2 * a.e.cfg.MaxRetransmitTimeout * time.Duration(a.e.cfg.Retries)
}

// handleRekeyTimeout gives up a rekey that did not complete in time and
// starts it again; after Config.Retries attempts the association is
// considered broken, as when an UPDATE goes unanswered (§6.11 step 4).
func (a *Association) handleRekeyTimeout(now time.Time) {
	u := a.upd.ph
	if u == nil || !u.rekeying || u.rekeyBy.IsZero() || now.Before(u.rekeyBy) {
		return
	}
	tries, newDH := u.rekeyTries+1, u.rekeyNewDH
	u.rekeying, u.ourAcked, u.peerInfo, u.peerNewDH, u.sentDH, u.pending = false, false, nil, nil, nil, nil
	u.rekeyBy = time.Time{}
	if a.upd.outstanding {
		a.upd.outstanding = false // our rekey UPDATE: its retries are long over
		a.stopRetransmit()
	}
	if tries > a.e.cfg.Retries {
		a.beginClose(now)
		a.emit(Event{Kind: EventClosed, Err: fmt.Errorf("%w: rekey did not complete", ErrTimeout)})
		return
	}
	if err := a.startRekey(now, newDH); err != nil {
		a.beginClose(now)
		a.emit(Event{Kind: EventClosed, Err: err})
		return
	}
	u.rekeyTries = tries
}

// Rekeying reports whether an ESP rekeying exchange is in progress.
func (a *Association) Rekeying() bool { return a.upd.ph != nil && a.upd.ph.rekeying }

func (a *Association) rekeyLen() int {
	enc, auth := a.espSuite.KeyLen()
	return 2 * (enc + auth)
}

// buildUpdate builds an UPDATE with our next SEQ, ESP_INFO, optional
// DIFFIE_HELLMAN and an ACK of ack, with the ECHO_RESPONSE_SIGNED of
// echo if the acknowledged UPDATE asked for one, and marks the SEQ
// outstanding.
func (a *Association) buildUpdate(info wire.ESPInfo, key dhKey, ack []uint32, echo []byte) ([]byte, error) {
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
	addEchoResponse(&b, echo)
	pkt, err := a.signAndMAC(&b, a.ourMACKey())
	if err != nil {
		return nil, err
	}
	a.seqSent()
	return pkt, nil
}

// seqSent marks our next Update ID, just built into an UPDATE, as the
// outstanding one (§6.11 steps 1-2).
func (a *Association) seqSent() {
	a.upd.outstanding, a.upd.outID = true, a.upd.next
	a.upd.next++
}

// buildAck builds an UPDATE that acknowledges (§5.3.5), carrying the
// answer to a registration request if there is one (RFC 8003 §3.3) and
// the ECHO_RESPONSE_SIGNED of echo if the acknowledged UPDATE asked for
// one (RFC 7401 §5.2.20, RFC 8046 §3.2.1 step 3: "UPDATE(ACK,
// ECHO_RESPONSE)").
func (a *Association) buildAck(id uint32, reg *Registration, echo []byte) ([]byte, error) {
	var b wire.Builder
	b.Reset(make([]byte, 0, 256), wire.UPDATE, a.e.hit, a.peer)
	b.Add(wire.MakeAck(id))
	addRegAnswer(&b, reg)
	addEchoResponse(&b, echo)
	return a.signAndMAC(&b, a.ourMACKey())
}

// updateMsg is a parsed UPDATE: its SEQ and ACK (§5.3.5) and the
// parameters of RFC 8046 mobility (mobility.go).
type updateMsg struct {
	pkt    wire.Packet
	seq    *wire.Seq
	ack    wire.Ack
	hasAck bool
	ackNew bool // it acknowledges our outstanding UPDATE
	// The contents of ECHO_REQUEST_SIGNED and ECHO_RESPONSE_SIGNED, nil
	// when absent (Param.Contents is never nil, even when empty).
	echoReq, echoResp []byte
}

// handleUpdate processes an UPDATE (RFC 7401 §6.12, RFC 7402 §6.9): the
// SEQ window and retransmissions first (§6.12.1 steps 1-2), then HIP_MAC
// and the signature (steps 3-4), the ACK (§6.12.2), and the SEQ's
// contents, always acknowledged (§6.12.1 steps 5-6). One with neither SEQ
// nor ACK is an address probe or its answer (handleEchoUpdate).
func (a *Association) handleUpdate(now time.Time, pkt wire.Packet) error {
	m, err := a.parseUpdate(pkt)
	if err != nil {
		return err
	}
	if m.seq == nil && !m.hasAck {
		return a.handleEchoUpdate(now, m) // a probe or its answer (mobility.go)
	}
	if m.seq != nil {
		switch a.upd.win.check(m.seq.UpdateID) {
		case seqTooFar:
			return fmt.Errorf("%w: UPDATE SEQ %d beyond the window", ErrReplay, m.seq.UpdateID)
		case seqTooOld:
			return fmt.Errorf("%w: UPDATE SEQ %d is old", ErrReplay, m.seq.UpdateID)
		case seqSeen:
			return a.reack(now, m)
		}
	} else if !m.ackNew {
		// §6.12.2 step 1: an ACK of nothing outstanding.
		return fmt.Errorf("%w: ACK of no outstanding UPDATE", ErrReplay)
	}
	if err := a.verifyControl(pkt); err != nil {
		return err
	}
	a.DataReceived(now) // an UPDATE ends R2-SENT (§4.4.3 Table 5)
	if m.ackNew {
		if err := a.updateAcked(now); err != nil {
			return err
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
	if m.seq == nil {
		if err := a.maybeFinishRekey(now); err != nil {
			return err
		}
		return a.ackEchoes(now, m)
	}
	a.upd.win.mark(m.seq.UpdateID) // §6.12.1 step 5
	a.upd.acked = m.seq.UpdateID
	return a.updateSeq(now, m)
}

// parseUpdate reads SEQ, ACK and the echo parameters. An UPDATE needs a
// SEQ or an ACK (§5.3.5), except a probe or its answer, which has an echo
// parameter instead (mobility.go).
func (a *Association) parseUpdate(pkt wire.Packet) (updateMsg, error) {
	m := updateMsg{pkt: pkt}
	if a.state != Established && a.state != R2Sent {
		return m, fmt.Errorf("%w: UPDATE in %v", ErrUnexpected, a.state)
	}
	if err := checkCritical(pkt, wire.ParamESPInfo, wire.ParamLocatorSet, wire.ParamSeq, wire.ParamAck,
		wire.ParamDiffieHellman, wire.ParamEchoRequestSigned, wire.ParamEchoResponseSigned,
		wire.ParamHIPMAC, wire.ParamHIPSignature); err != nil {
		return m, err
	}
	if err := checkOnce(pkt); err != nil {
		return m, err
	}
	if p, ok := pkt.Param(wire.ParamSeq); ok {
		s, err := wire.ParseSeq(p.Contents())
		if err != nil {
			return m, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		m.seq = &s
	}
	if p, ok := pkt.Param(wire.ParamAck); ok {
		var err error
		if m.ack, err = wire.ParseAck(p.Contents()); err != nil {
			return m, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		m.hasAck = true
	}
	if p, ok := pkt.Param(wire.ParamEchoRequestSigned); ok {
		m.echoReq = p.Contents()
	}
	if p, ok := pkt.Param(wire.ParamEchoResponseSigned); ok {
		m.echoResp = p.Contents()
	}
	if err := checkSeqless(m); err != nil {
		return m, err
	}
	m.ackNew = m.hasAck && a.upd.outstanding && m.ack.IDs.Contains(a.upd.outID)
	return m, nil
}

// reack answers a retransmitted UPDATE (§6.12.1 step 2): after verifying
// HIP_MAC, the cached acknowledgement of the latest, or a new ACK for an
// older one still in the window; at most one a retransmission timeout, so
// that replays cannot make us sign without bound.
//
// One answer passes the rate limit: a registrar's whose REG_FROM the
// repeat corrects (Registrar.From). An attacker who answered its copy
// from elsewhere could otherwise send a second copy first and take the
// window, and the requester's own repeat would never be answered. It is
// signed at most once for each REG_FROM a fresh request drew: once
// corrected, the cached answer names the address the repeat came from.
func (a *Association) reack(now time.Time, m updateMsg) error {
	if err := verifyMAC(a.rhash, a.peerMACKey(), m.pkt, wire.ParamHIPMAC, nil); err != nil {
		return err
	}
	c := a.upd.ackCache()
	ack := c.pkt
	latest := m.seq.UpdateID == a.upd.acked && ack != nil
	var reg *Registration
	if latest {
		reg = a.reFrom(ack)
	}
	if reg == nil && now.Before(c.reackAt) {
		return fmt.Errorf("%w: UPDATE SEQ %d already acknowledged (rate-limited)", ErrReplay, m.seq.UpdateID)
	}
	c.reackAt = now.Add(a.e.cfg.RetransmitTimeout)
	switch {
	case !latest:
		var err error
		// An echo request in it is answered again too: HIP_MAC shows the
		// peer sent it, and this path is rate-limited.
		if ack, err = a.buildAck(m.seq.UpdateID, nil, m.echoReq); err != nil {
			return err
		}
	case reg != nil:
		var err error
		if ack, err = a.buildAck(m.seq.UpdateID, reg, m.echoReq); err != nil {
			return err
		}
		c.pkt = ack
	}
	a.queue(ack)
	a.repeat = true
	return nil
}

// updateAcked handles the ACK of our outstanding UPDATE (§6.12.2): its
// retransmission stops, a rekey of ours has its half acknowledged, and a
// rekey the peer started meanwhile gets our ESP_INFO now.
func (a *Association) updateAcked(now time.Time) error {
	a.upd.outstanding = false
	a.stopRetransmit()
	u := a.upd.ph
	if u == nil {
		return nil
	}
	if u.rekeying {
		u.ourAcked = true
	}
	if d := u.deferred; d != nil && !u.rekeying {
		u.deferred = nil
		return a.answerRekey(now, d, nil)
	}
	return nil
}

// updateSeq processes a new SEQ's contents and acknowledges it: ESP_INFO
// before LOCATOR_SET (RFC 8046 §5.3), then the echo parameters.
func (a *Association) updateSeq(now time.Time, m updateMsg) error {
	info, err := a.seqESPInfo(m.pkt)
	if err != nil {
		return a.ackAnyway(m, err)
	}
	var peerDH []byte
	if p, ok := m.pkt.Param(wire.ParamDiffieHellman); ok {
		dh, err := wire.ParseDiffieHellman(p.Contents())
		// RFC 7402 §6.9 step 1.
		if err != nil || dh.Group != a.dh.group() || info == nil || info.KeymatIndex != 0 {
			return a.ackAnyway(m, fmt.Errorf("%w: DIFFIE_HELLMAN in UPDATE must keep group %d with KEYMAT index 0", ErrMalformed, a.dh.group()))
		}
		peerDH = append([]byte(nil), dh.Public...)
	}
	locs, err := seqLocatorSet(m.pkt)
	if err != nil {
		return a.ackAnyway(m, err)
	}
	err = a.updateESP(now, m, info, peerDH)
	a.reportMobility(m, locs)
	return err
}

// seqESPInfo reads a SEQ's ESP_INFO: nil if there is none or if it only
// names the current SA (RFC 8046 §5.3 case 1, OLD SPI = NEW SPI: "no
// rekeying is necessary"), so that a LOCATOR_SET announcement never
// starts or disturbs a rekey.
func (a *Association) seqESPInfo(pkt wire.Packet) (*wire.ESPInfo, error) {
	p, ok := pkt.Param(wire.ParamESPInfo)
	if !ok {
		return nil, nil
	}
	ei, err := wire.ParseESPInfo(p.Contents())
	if err != nil || ei.NewSPI == 0 {
		return nil, fmt.Errorf("%w: bad ESP_INFO", ErrMalformed)
	}
	if ei.OldSPI != ei.NewSPI {
		return &ei, nil // a rekey (RFC 8046 §5.3 case 2, RFC 7402 §6.9)
	}
	// The peer's inbound SA is our outbound one; while a rekey is under
	// way the peer may already name its new one.
	if u := a.upd.ph; ei.NewSPI == a.outSPI || (u != nil && u.peerInfo != nil && ei.NewSPI == u.peerInfo.NewSPI) {
		return nil, nil
	}
	// "If none of the above cases apply, a protocol error has occurred"
	// (RFC 8046 §5.3).
	return nil, fmt.Errorf("%w: ESP_INFO OLD SPI = NEW SPI %#x names no SA of the peer", ErrMalformed, ei.NewSPI)
}

// updateESP acts on a SEQ's ESP_INFO, if it starts a rekey, and
// acknowledges the SEQ.
func (a *Association) updateESP(now time.Time, m updateMsg, info *wire.ESPInfo, peerDH []byte) error {
	switch {
	case info == nil:
		// Nothing to answer but the ACK, and a registration decision.
		reg, err := a.e.decide(a.peer, m.pkt)
		if err != nil {
			return a.ackAnyway(m, err)
		}
		if err := a.sendAck(m.seq.UpdateID, reg, m.echoReq); err != nil {
			return err
		}
		if reg != nil {
			a.emit(Event{Kind: EventRegistration, Registration: reg})
		}
		return a.maybeFinishRekey(now)
	case a.Rekeying() && a.upd.ph.peerInfo != nil && info.OldSPI == a.upd.ph.peerInfo.NewSPI:
		// The peer's half of the rekey under way is in already, and this
		// one's OLD SPI is that half's NEW: the peer finished the current
		// rekey (our ACK of its ESP_INFO is on its way, or lost and to be
		// resent) and starts its next. Taken as the current one's half it
		// would pair that one's keys with this one's SPI. Acknowledged
		// now, answered once ours is done (maybeFinishRekey). (A peer
		// that restarts the current rekey names its old SA as OLD SPI:
		// that is the current half anew, below.)
		a.upd.ph.deferred = &peerRekey{info: *info, dh: peerDH}
		return a.sendAck(m.seq.UpdateID, nil, m.echoReq)
	case a.Rekeying():
		// Crossing rekeys: this is the peer's half (RFC 7402 §6.9 step 3).
		a.upd.ph.peerInfo, a.upd.ph.peerNewDH = info, peerDH
		if err := a.sendAck(m.seq.UpdateID, nil, m.echoReq); err != nil {
			return err
		}
		return a.maybeFinishRekey(now)
	case a.upd.outstanding:
		// A non-rekey UPDATE of ours is in flight and one of ours may be
		// outstanding at a time: acknowledge now, answer with our
		// ESP_INFO when ours is acknowledged (updateAcked).
		a.upd.phase().deferred = &peerRekey{info: *info, dh: peerDH}
		return a.sendAck(m.seq.UpdateID, nil, m.echoReq)
	}
	return a.answerRekey(now, &peerRekey{info: *info, dh: peerDH}, &m)
}

// ackAnyway acknowledges a SEQ whose contents we reject: the peer must not
// retransmit it forever (§6.12.1 step 6), and the error is still reported.
func (a *Association) ackAnyway(m updateMsg, err error) error {
	if aerr := a.sendAck(m.seq.UpdateID, nil, m.echoReq); aerr != nil {
		return aerr
	}
	return err
}

// sendAck sends an ACK-only UPDATE for id (with the ECHO_RESPONSE_SIGNED
// of echo, if not nil) and caches it for retransmissions.
func (a *Association) sendAck(id uint32, reg *Registration, echo []byte) error {
	ack, err := a.buildAck(id, reg, echo)
	if err != nil {
		return err
	}
	a.upd.ackCache().pkt = ack
	a.queue(ack)
	return nil
}

// answerRekey answers a rekey the peer started (RFC 7402 §6.9.1) with our
// ESP_INFO, a DIFFIE_HELLMAN if it sent one (§4.1.3), and, when ack is
// not nil, the ACK of its SEQ (and the answer to its ECHO_REQUEST_SIGNED).
// Both ESP_INFOs are then known, so the new inbound SA is ready before the
// peer, which finishes first, sends on it (RFC 7402 §6.10 step 4).
func (a *Association) answerRekey(now time.Time, r *peerRekey, ack *updateMsg) error {
	spi, err := a.e.allocSPI()
	if err != nil {
		return err
	}
	mine := wire.ESPInfo{KeymatIndex: max(r.info.KeymatIndex, uint16(a.km.next)), OldSPI: a.inSPI, NewSPI: spi}
	var key dhKey
	if r.dh != nil {
		if key, err = lookupGroup(a.dh.group()).generate(a.e.cfg.Rand); err != nil {
			return err
		}
		mine.KeymatIndex = 0
	}
	var acks []uint32
	var echo []byte
	if ack != nil {
		acks, echo = []uint32{ack.seq.UpdateID}, ack.echoReq
	}
	reply, err := a.buildUpdate(mine, key, acks, echo)
	if err != nil {
		return err
	}
	a.beginRekey(now, mine, key)
	u := a.upd.ph
	u.rekeyTries, u.rekeyNewDH = 0, r.dh != nil
	info := r.info
	u.peerInfo, u.peerNewDH = &info, r.dh
	if ack != nil {
		a.upd.ackCache().pkt = reply
	}
	a.send(now, reply, true)
	res, err := a.deriveRekey()
	if err != nil {
		return err
	}
	u.pending = res
	a.emit(Event{Kind: EventRekeyInbound, Inbound: res.in})
	return nil
}

// maybeFinishRekey installs the new SAs once our ESP_INFO is acknowledged
// and the peer's has arrived (RFC 7402 §6.10).
func (a *Association) maybeFinishRekey(now time.Time) error {
	u := a.upd.ph
	if u == nil || !u.rekeying || !u.ourAcked || u.peerInfo == nil {
		return nil
	}
	r := u.pending
	if r == nil {
		var err error
		if r, err = a.deriveRekey(); err != nil {
			return err
		}
	}
	a.km, a.dh, a.peerDH, a.espIndex = r.km, r.local, r.peerPub, uint16(r.index)
	a.inSPI, a.outSPI = u.sentInfo.NewSPI, u.peerInfo.NewSPI
	u.rekeying, u.ourAcked, u.peerInfo, u.peerNewDH, u.sentDH, u.pending = false, false, nil, nil, nil, nil
	u.rekeyBy, u.rekeyTries = time.Time{}, 0
	a.emit(Event{Kind: EventRekeyed, Inbound: r.in, Outbound: r.out})
	if d := u.deferred; d != nil && !a.upd.outstanding {
		u.deferred = nil
		return a.answerRekey(now, d, nil) // the peer's next rekey
	}
	return nil
}

// deriveRekey computes the outcome of the rekey in progress without
// changing the association (RFC 7402 §6.10 steps 1-3): a new KEYMAT if
// either side sent a new Diffie-Hellman key — the old key standing in for
// a side that sent none, salt and info as in RFC 7401 §6.5 — and the ESP
// keys from the greater KEYMAT index, or from 0 with a new KEYMAT.
func (a *Association) deriveRekey() (*rekeyResult, error) {
	u := a.upd.ph
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
		if r.km, err = newKeymat(a.rhash, kij, a.puzzleI(), a.puzzleJ(), hitI, hitR); err != nil {
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

// seqWindow is the receive window for the peer's Update IDs (§6.12.1):
// the highest processed and a bitmap of the seqWindowSize before it, so
// that a retransmission of a recent UPDATE is recognised and acknowledged
// again, an older one is dropped, and a new one is accepted only within
// seqWindowSize of the highest (step 1). Update IDs start at 0 (§6.11
// step 1), so the first SEQ may be anywhere in [0, seqWindowSize).
type seqWindow struct {
	seen    bool
	highest uint32
	bits    uint64 // bit i: highest-i was processed
}

const seqWindowSize = 64

type seqVerdict uint8

const (
	seqNew seqVerdict = iota
	seqSeen
	seqTooOld
	seqTooFar
)

func (w *seqWindow) check(id uint32) seqVerdict {
	if !w.seen {
		if id >= seqWindowSize {
			return seqTooFar
		}
		return seqNew
	}
	if seqBefore(w.highest, id) {
		if id-w.highest > seqWindowSize {
			return seqTooFar
		}
		return seqNew
	}
	back := w.highest - id
	switch {
	case back >= seqWindowSize:
		return seqTooOld
	case w.bits&(1<<back) != 0:
		return seqSeen
	}
	return seqNew // within the window and not yet processed: reordered
}

func (w *seqWindow) mark(id uint32) {
	if !w.seen {
		w.seen, w.highest, w.bits = true, id, 1
		return
	}
	if seqBefore(w.highest, id) {
		shift := id - w.highest
		if shift >= seqWindowSize {
			w.bits = 0
		} else {
			w.bits <<= shift
		}
		w.highest, w.bits = id, w.bits|1
		return
	}
	w.bits |= 1 << (w.highest - id)
}
