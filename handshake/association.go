package handshake

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Association is the state machine of one HIP association (RFC 7401
// §4.4) between this Endpoint and one peer HIT. It is sans-I/O: feed it
// packets with Endpoint.Handle and expiries with HandleTimeout, then
// drain Outgoing and Events. It is not safe for concurrent use.
//
// A node holds one Association per peer for as long as the association
// lasts, mostly ESTABLISHED and idle (a relay one per registered host), so
// the struct holds only what an established association uses: the peer's
// identity, RHASH and the HIP keys that authenticate an UPDATE or CLOSE,
// KEYMAT and the Diffie-Hellman keys a rekey derives from, the SPIs and
// suites, the UPDATE sequence numbers and the timers. What only one phase
// needs — the base exchange, an UPDATE or rekey in flight, a
// retransmission, a CLOSE, ICE — lives in a sub-struct made when the phase
// starts and dropped when it ends (TestIdleAssociationSize).
type Association struct {
	e       *Endpoint
	peerPub *hostid.PublicKey

	// Negotiated.
	rhash  func() hash.Hash // the Responder's RHASH (§2.3)
	dh     dhKey
	km     *keymat // with #I | #J, the salt of a rekey's new KEYMAT
	peerDH []byte  // peer's DH public value, kept for rekeying
	hipMAC keyPair // the HIP_MAC keys; the ENCRYPTED ones are bexState's

	since time.Time
	// stateAt is when the current state ends on its own: R2-SENT to
	// ESTABLISHED, CLOSED and E-FAILED to UNASSOCIATED.
	stateAt time.Time
	peer    wire.HIT

	// Responder: a digest of the I2 we accepted, so that a retransmitted
	// I2 gets the same R2 in R2-SENT (§6.9 step 4) and a replayed one is
	// recognised cheaply, in R2-SENT and after.
	lastI2 [sha256.Size]byte

	upd updateState

	// Phase state, nil outside its phase (see above).
	bex *bexState   // the base exchange, until ESTABLISHED
	rtx *retransmit // the last I1, I2, UPDATE or CLOSE, until answered
	cls *closeState // CLOSING and CLOSED
	nat *natState   // the ICE material, with ICE-STUN-UDP (nat.go)

	regInfo *wire.RegInfo // the registrar's latest REG_INFO (R1 or UPDATE)

	pend *pending // what the caller has not drained yet, nil when drained

	inSPI     uint32
	outSPI    uint32
	espIndex  uint16 // KEYMAT index of the current ESP keys (≤ 0xffff, keymat.at)
	cipherID  uint16
	espSuite  esp.Suite
	natMode   uint16
	ta        uint16 // the negotiated connectivity check pacing, ms (nat.go)
	state     State
	initiator bool  // we sent the I1/I2 of the current base exchange
	repeat    bool  // the packet being handled repeated one already processed (Result.Repeat)
	group     uint8 // dh's group, kept when dh is shed
}

// bexState is what only the base exchange needs: made by Initiate,
// Restart and an accepted I2, dropped by compact once ESTABLISHED and by
// shed when the exchange fails or closes.
type bexState struct {
	i1Groups   []uint8      // the DH_GROUP_LIST we sent (§6.6 step 3)
	solving    *Puzzle      // the R1's puzzle the caller is solving (EventPuzzle)
	notified   *NotifyError // an unbound error NOTIFY, the cause if we time out
	refusedR1  error        // why the last R1 we dropped after its signature was refused, the cause if we time out
	peerHostID []byte       // Initiator: R1's HOST_ID TLV, verbatim, for HIP_MAC_2
	hipEnc     keyPair      // the ENCRYPTED keys: only I2 and R2 carry ENCRYPTED
	// Responder: while in R2-SENT, the R2 we answered the I2 of lastI2
	// with, for a retransmitted I2 (§6.9 step 4).
	lastR2 []byte
	r1Gen  uint64 // Initiator: R1 generation counter of the R1 we answered
	// regWant is the REG_REQUEST to put in the I2 (RequestRegistration);
	// it outlives a failed exchange, for the I2 of the next.
	regWant *wire.RegRequest
}

// pending is what the caller has not drained yet: packets to send and
// events. An association is drained after every call, so it carries the
// pointer, not two slice headers, between calls.
type pending struct {
	out    [][]byte
	events []Event
}

// end ends the base exchange: the ENCRYPTED keys are overwritten, and what
// outlives it is returned, nil if nothing — the request for the next
// exchange's I2.
func (b *bexState) end() *bexState {
	if b == nil {
		return nil
	}
	clear(b.hipEnc)
	if b.regWant == nil {
		return nil
	}
	return &bexState{regWant: b.regWant}
}

// encKeys are the ENCRYPTED keys, nil outside the base exchange.
func (a *Association) encKeys() keyPair {
	if a.bex == nil {
		return nil
	}
	return a.bex.hipEnc
}

// retransmit is the reliable packet in flight: sent again with exponential
// back-off until answered (stopRetransmit) or given up.
type retransmit struct {
	pkt   []byte
	tries int
	rto   time.Duration
	at    time.Time
}

// closeState is the CLOSE bookkeeping of CLOSING and CLOSED (RFC 7401
// Tables 7 and 8), dropped in UNASSOCIATED.
type closeState struct {
	echo []byte // ECHO_REQUEST_SIGNED opaque of our CLOSE
	// The CLOSE_ACK CLOSED answered with, for the peer's retransmitted
	// CLOSE (reackClose): its echo, and when it may be sent again.
	ack, ackEcho []byte
	ackAt        time.Time
}

func newAssociation(e *Endpoint, peer wire.HIT, now time.Time) *Association {
	return &Association{e: e, peer: peer, since: now}
}

// State returns the current state.
func (a *Association) State() State { return a.state }

// PeerHIT returns the peer's HIT (zero while an opportunistic I1 is
// outstanding).
func (a *Association) PeerHIT() wire.HIT { return a.peer }

// PeerIdentity returns the peer's authenticated host identity, or nil
// before the base exchange verified it.
func (a *Association) PeerIdentity() *hostid.PublicKey { return a.peerPub }

// Solving returns the puzzle the caller is solving for this association
// (EventPuzzle), or nil: a search for any other Puzzle can stop, since
// PuzzleSolved would refuse its answer.
func (a *Association) Solving() *Puzzle {
	if a.bex == nil {
		return nil
	}
	return a.bex.solving
}

// Since is when the association entered its current state.
func (a *Association) Since() time.Time { return a.since }

// Outgoing returns and forgets the packets to send to the peer.
func (a *Association) Outgoing() [][]byte {
	p := a.pend
	if p == nil {
		return nil
	}
	o := p.out
	p.out = nil
	if p.events == nil {
		a.pend = nil
	}
	return o
}

// Events returns and forgets what happened since the last call.
func (a *Association) Events() []Event {
	p := a.pend
	if p == nil {
		return nil
	}
	ev := p.events
	p.events = nil
	if p.out == nil {
		a.pend = nil
	}
	return ev
}

// queue adds a packet for Outgoing.
func (a *Association) queue(pkt []byte) {
	p := a.pending()
	p.out = append(p.out, pkt)
}

func (a *Association) pending() *pending {
	if a.pend == nil {
		a.pend = &pending{}
	}
	return a.pend
}

// Info describes the negotiated parameters.
type Info struct {
	State     State
	Initiator bool
	HITSuite  hostid.Suite // the Responder's, which sets RHASH
	DHGroup   uint8
	HIPCipher uint16
	ESPSuite  esp.Suite
	InSPI     uint32
	OutSPI    uint32
	Since     time.Time
}

// Info returns the negotiated parameters.
func (a *Association) Info() Info {
	i := Info{State: a.state, Initiator: a.initiator, HIPCipher: a.cipherID, DHGroup: a.group,
		ESPSuite: a.espSuite, InSPI: a.inSPI, OutSPI: a.outSPI, Since: a.since}
	if a.dh != nil {
		i.DHGroup = a.dh.group()
	}
	if a.initiator {
		i.HITSuite = hostid.Suite(a.peer.OGA())
	} else {
		i.HITSuite = a.e.pub.Suite()
	}
	return i
}

func (a *Association) opportunistic() bool { return a.state == I1Sent && a.peer.IsZero() }

func (a *Association) setState(now time.Time, s State) {
	if a.state != s {
		a.state = s
		a.since = now
	}
	switch s {
	case Established:
		a.compact()
	case Closing, Closed, EFailed:
		a.shed()
	case Unassociated:
		a.forget()
	}
}

// forget drops the last keys when the association is back in
// UNASSOCIATED: nothing recorded from it (a CLOSE, an UPDATE) can be
// verified, or answered, any more (RFC 7401 Table 2: "ANYOTHER: drop").
func (a *Association) forget() {
	a.shed()
	clear(a.hipMAC)
	a.hipMAC, a.peerPub, a.cls, a.rtx = nil, nil, nil, nil
}

// shed releases, on CLOSE, everything but what answering a retransmitted
// CLOSE or CLOSE_ACK needs (RFC 7401 Tables 7 and 8): the peer's identity,
// RHASH, the two HIP_MAC keys and the CLOSE state stay; KEYMAT with #I and
// #J, the Diffie-Hellman keys, the ENCRYPTED keys, the ICE key and
// candidates, the base exchange (but a registration request for the next)
// and the UPDATE state go at once, so that a closed association lingers as
// a small record (TestCloseSheds).
func (a *Association) shed() {
	if a.km != nil {
		a.km.clear()
	}
	a.km, a.dh, a.peerDH = nil, nil, nil
	a.nat.clear()
	a.nat = nil
	a.bex = a.bex.end()
	a.lastI2 = [sha256.Size]byte{}
	a.upd = updateState{next: a.upd.next}
}

// compact drops, once ESTABLISHED, what only the base exchange needed, so
// that an idle ESTABLISHED association stays small: the R2 kept for
// retransmitted I2s, the R1 HOST_ID kept for HIP_MAC_2, the rest of
// bexState, a CLOSE state left from before a Restart, and the expanded
// KEYMAT (it is re-expanded from its PRK if a rekey draws from it). A
// puzzle still being solved goes too: a newer R1 answered in I2-SENT may
// have started one just before the R2 for our first I2 arrived, and the
// exchange that R2 completed leaves nothing for it to do (were it kept,
// its lifetime would fail the association, or its #J restart it).
func (a *Association) compact() {
	a.bex = a.bex.end()
	a.cls = nil // only CLOSING and CLOSED use it, and both set it anew
	if a.km != nil {
		clear(a.km.buf) // the keys drawn from it are copies
		a.km.buf = nil
	}
}

func (a *Association) emit(ev Event) {
	p := a.pending()
	p.events = append(p.events, ev)
}

// weAreG reports whether we are HOST_g, the host with the greater HIT
// (RFC 7401 §6.5).
func (a *Association) weAreG() bool { return a.e.hit.Compare(a.peer) > 0 }

// ourMACKey and peerMACKey are the HIP integrity keys for our outgoing
// packets and the peer's (HIP-gl belongs to HOST_g, §6.5).
func (a *Association) ourMACKey() []byte  { return a.pick(a.hipMAC.gl(), a.hipMAC.lg(), true) }
func (a *Association) peerMACKey() []byte { return a.pick(a.hipMAC.gl(), a.hipMAC.lg(), false) }

// puzzleI and puzzleJ are the #I and #J of the base exchange, kept with
// KEYMAT for a rekey's new KEYMAT (nil without KEYMAT).
func (a *Association) puzzleI() []byte { return a.km.puzzleI() }
func (a *Association) puzzleJ() []byte { return a.km.puzzleJ() }

// pick returns HOST_g's key gl or HOST_l's key lg: ours when ours is set,
// else the peer's.
func (a *Association) pick(gl, lg []byte, ours bool) []byte {
	if a.weAreG() == ours {
		return gl
	}
	return lg
}

// espConfigs draws the ESP keys at index (RFC 7402 §7) and returns the
// inbound and outbound SA configurations.
func (a *Association) espConfigs(index int) (in, out esp.Config, err error) {
	in, out, err = espConfigsFrom(a.km, a.espSuite, index, a.inSPI, a.outSPI, a.weAreG())
	if err == nil {
		a.espIndex = uint16(index) // at refuses indexes past 0xffff
	}
	return in, out, err
}

// espConfigsFrom draws the four ESP keys at index of km: SA-gl is HOST_g's
// outgoing traffic (RFC 7402 §7).
func espConfigsFrom(km *keymat, suite esp.Suite, index int, inSPI, outSPI uint32, weAreG bool) (in, out esp.Config, err error) {
	encLen, authLen := suite.KeyLen()
	k, err := km.espKeysAt(index, encLen, authLen)
	if err != nil {
		return in, out, err
	}
	gl := esp.Config{Suite: suite, EncKey: k.encGL, AuthKey: k.authGL}
	lg := esp.Config{Suite: suite, EncKey: k.encLG, AuthKey: k.authLG}
	if weAreG {
		out, in = gl, lg
	} else {
		out, in = lg, gl
	}
	in.SPI, out.SPI = inSPI, outSPI
	return in, out, nil
}

// allocSPI returns a fresh non-zero inbound SPI.
func (e *Endpoint) allocSPI() (uint32, error) {
	if e.cfg.AllocateSPI != nil {
		return e.cfg.AllocateSPI(), nil
	}
	var b [4]byte
	for {
		if _, err := io.ReadFull(e.cfg.Rand, b[:]); err != nil {
			return 0, err
		}
		// SPIs 1-255 are reserved by IANA (RFC 4303 §2.1).
		if s := binary.BigEndian.Uint32(b[:]); s > 255 {
			return s, nil
		}
	}
}

func (e *Endpoint) random(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(e.cfg.Rand, b)
	return b, err
}

// signAndMAC appends HIP_MAC (when macKey is set) and HIP_SIGNATURE to
// the packet under construction and returns it (RFC 7401 §6.4).
func (a *Association) signAndMAC(b *wire.Builder, macKey []byte) ([]byte, error) {
	if macKey != nil {
		if err := addMAC(b, a.rhash, macKey); err != nil {
			return nil, err
		}
	}
	return a.e.sign(b)
}

// addMAC appends a HIP_MAC over everything built so far (§6.4.1).
func addMAC(b *wire.Builder, newHash func() hash.Hash, key []byte) error {
	return addMACAs(b, newHash, key, func(m []byte) wire.Encoder { return wire.HIPMAC{MAC: m} })
}

// addMACAs appends the parameter param makes of an HMAC over everything
// built so far: HIP_MAC, or RELAY_HMAC, which has its semantics.
func addMACAs(b *wire.Builder, newHash func() hash.Hash, key []byte, param func([]byte) wire.Encoder) error {
	raw, err := b.Bytes()
	if err != nil {
		return err
	}
	b.Add(param(computeMAC(newHash, key, raw, len(raw), nil)))
	return b.Err()
}

// addSignature appends a HIP_SIGNATURE (or, for R1, HIP_SIGNATURE_2)
// over everything built so far (§6.4.2). For HIP_SIGNATURE_2 the caller
// has left the Receiver's HIT, #I and Opaque zero.
func (e *Endpoint) addSignature(b *wire.Builder, typ wire.ParamType) error {
	raw, err := b.Bytes()
	if err != nil {
		return err
	}
	sig, alg, err := e.id.Sign(e.cfg.Rand, raw)
	if err != nil {
		return err
	}
	b.Add(wire.Signature{Type: typ, Alg: uint16(alg), Sig: sig})
	return b.Err()
}

// sign appends HIP_SIGNATURE and returns a copy of the finished packet.
func (e *Endpoint) sign(b *wire.Builder) ([]byte, error) {
	if err := e.addSignature(b, wire.ParamHIPSignature); err != nil {
		return nil, err
	}
	return finish(b)
}

// finish returns a copy of the finished packet.
func finish(b *wire.Builder) ([]byte, error) {
	raw, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), raw...), nil
}

// send queues pkt and, when reliable, arms its retransmission.
func (a *Association) send(now time.Time, pkt []byte, reliable bool) {
	a.queue(pkt)
	if reliable {
		rto := a.e.cfg.RetransmitTimeout
		a.rtx = &retransmit{pkt: pkt, rto: rto, at: now.Add(rto)}
	}
}

func (a *Association) stopRetransmit() { a.rtx = nil }

// Deadline is when HandleTimeout must next be called (zero: no timer).
func (a *Association) Deadline() time.Time {
	var d time.Time
	if a.rtx != nil {
		d = a.rtx.at
	}
	if p := a.Solving(); p != nil && (d.IsZero() || p.Deadline.Before(d)) {
		d = p.Deadline
	}
	if !a.stateAt.IsZero() && (d.IsZero() || a.stateAt.Before(d)) {
		d = a.stateAt
	}
	if u := a.upd.ph; u != nil && u.rekeying && !u.rekeyBy.IsZero() && (d.IsZero() || u.rekeyBy.Before(d)) {
		d = u.rekeyBy
	}
	return d
}

// HandleTimeout runs the timers due at now: retransmission with
// exponential back-off and give-up, and the timed state changes.
func (a *Association) HandleTimeout(now time.Time) {
	if p := a.Solving(); p != nil && !now.Before(p.Deadline) {
		// §6.8 step 12: the puzzle's lifetime is over.
		a.bex.solving = nil
		if a.state == I1Sent || a.state == I2Sent {
			a.fail(now, errPuzzleUnsolved)
		}
	}
	a.handleRekeyTimeout(now)
	if r := a.rtx; r != nil && !now.Before(r.at) {
		if r.tries >= a.e.cfg.Retries && a.state != Closing {
			// CLOSING retransmits its CLOSE until UAL+MSL has passed
			// (RFC 7401 Table 7): its stateAt ends it.
			a.giveUp(now)
		} else {
			r.tries++
			r.rto = min(2*r.rto, a.e.cfg.MaxRetransmitTimeout)
			r.at = now.Add(r.rto)
			a.queue(r.pkt)
		}
	}
	if !a.stateAt.IsZero() && !now.Before(a.stateAt) {
		a.stateAt = time.Time{}
		switch a.state {
		case R2Sent:
			// §4.4.3 Table 5: "Exchange Complete Timeout".
			a.setState(now, Established)
		case Closing:
			// Table 7: "timeout sum greater than UAL+MSL".
			a.stopRetransmit()
			a.setState(now, Unassociated)
			a.emit(Event{Kind: EventClosed, Err: ErrTimeout})
		case Closed, EFailed:
			a.setState(now, Unassociated)
			a.stopRetransmit()
		}
	}
	a.updIdle(now)
}

// giveUp handles retries exhausted for the packet in flight.
func (a *Association) giveUp(now time.Time) {
	a.stopRetransmit()
	switch a.state {
	case I1Sent, I2Sent:
		if a.bex != nil && a.bex.notified != nil {
			// The peer said something on the way, unbound to this
			// exchange (handleNotify): the cause, not the verdict.
			a.fail(now, fmt.Errorf("%w (the peer had reported: %w)", ErrTimeout, a.bex.notified))
			return
		}
		if a.bex != nil && a.bex.refusedR1 != nil {
			a.fail(now, fmt.Errorf("%w (an R1 was refused: %w)", ErrTimeout, a.bex.refusedR1))
			return
		}
		a.fail(now, ErrTimeout)
	case Established, R2Sent:
		// An UPDATE went unanswered: the association is considered
		// broken (RFC 7401 §6.11 step 4).
		a.upd = updateState{next: a.upd.next, win: a.upd.win, acked: a.upd.acked}
		a.beginClose(now)
		a.emit(Event{Kind: EventClosed, Err: ErrTimeout})
	}
}

// fail moves to E-FAILED and reports err.
func (a *Association) fail(now time.Time, err error) {
	a.stopRetransmit()
	a.setState(now, EFailed)
	a.stateAt = now.Add(a.e.cfg.CloseLinger)
	a.emit(Event{Kind: EventFailed, Err: err})
}

// DataReceived tells the association that ESP data arrived on its inbound
// SA: in R2-SENT that completes the exchange (§4.4.3 Table 5).
func (a *Association) DataReceived(now time.Time) {
	if a.state == R2Sent {
		a.setState(now, Established)
		a.stateAt = time.Time{}
	}
}

// handle processes a packet for an existing association.
func (a *Association) handle(now time.Time, pkt wire.Packet) error {
	switch pkt.Type() {
	case wire.R1:
		return a.handleR1(now, pkt)
	case wire.R2:
		return a.handleR2(now, pkt)
	case wire.UPDATE:
		err := a.handleUpdate(now, pkt)
		// Only an UPDATE ends what holds a LOCATOR_SET back (mobility.go).
		if ferr := a.flushLocators(now); err == nil {
			err = ferr
		}
		a.updIdle(now)
		return err
	case wire.NOTIFY:
		return a.handleNotify(now, pkt)
	case wire.CLOSE:
		return a.handleClose(now, pkt)
	case wire.CLOSE_ACK:
		return a.handleCloseAck(now, pkt)
	}
	return ErrUnexpected
}
