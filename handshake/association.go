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
type Association struct {
	e         *Endpoint
	state     State
	peer      wire.HIT
	initiator bool // we sent the I1/I2 of the current base exchange
	since     time.Time

	peerPub    *hostid.PublicKey
	peerHostID []byte // Initiator: R1's HOST_ID TLV, verbatim, for HIP_MAC_2

	// Negotiated.
	rhash    func() hash.Hash // the Responder's RHASH (§2.3)
	dh       dhKey
	group    uint8  // dh's group, kept when dh is shed
	peerDH   []byte // peer's DH public value, kept for rekeying
	cipherID uint16
	espSuite esp.Suite
	puzzleI  []byte
	puzzleJ  []byte
	r1Gen    uint64 // R1 generation counter of the R1 we answered
	km       *keymat
	hip      hipKeys
	espIndex int // KEYMAT index of the current ESP keys
	inSPI    uint32
	outSPI   uint32

	// Initiator bookkeeping.
	i1Groups []uint8      // the DH_GROUP_LIST we sent (§6.6 step 3)
	solving  *Puzzle      // the R1's puzzle the caller is solving (EventPuzzle)
	notified *NotifyError // an unbound error NOTIFY, the cause if we time out

	// Responder bookkeeping: a digest of the I2 we accepted and, while in
	// R2-SENT, the R2 we answered, so a retransmitted I2 gets the same R2
	// (§6.9 step 4) and a replayed one is recognised cheaply.
	lastI2 [sha256.Size]byte
	lastR2 []byte

	upd updateState
	reg regState

	// NAT traversal (nat.go).
	natMode   uint16
	peerCands []wire.Locator
	iceKey    []byte

	closeEcho []byte // ECHO_REQUEST_SIGNED opaque of our CLOSE
	// The CLOSE_ACK CLOSED answered with, for the peer's retransmitted
	// CLOSE (reackClose): its echo, and when it may be sent again.
	closeAck, closeAckEcho []byte
	closeAckAt             time.Time

	// Retransmission of the last I1, I2, UPDATE or CLOSE.
	rtx      []byte
	rtxTries int
	rtxRTO   time.Duration
	rtxAt    time.Time
	// stateAt is when the current state ends on its own: R2-SENT to
	// ESTABLISHED, CLOSED and E-FAILED to UNASSOCIATED.
	stateAt time.Time

	out    [][]byte
	events []Event
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
func (a *Association) Solving() *Puzzle { return a.solving }

// Since is when the association entered its current state.
func (a *Association) Since() time.Time { return a.since }

// Outgoing returns and forgets the packets to send to the peer.
func (a *Association) Outgoing() [][]byte {
	o := a.out
	a.out = nil
	return o
}

// Events returns and forgets what happened since the last call.
func (a *Association) Events() []Event {
	ev := a.events
	a.events = nil
	return ev
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
	a.hip, a.peerPub, a.closeEcho, a.rtx = hipKeys{}, nil, nil, nil
	a.closeAck, a.closeAckEcho = nil, nil
}

// shed releases, on CLOSE, everything but what answering a retransmitted
// CLOSE or CLOSE_ACK needs (RFC 7401 Tables 7 and 8): the peer's identity,
// RHASH and the two HIP_MAC keys stay; KEYMAT, the Diffie-Hellman keys, the
// puzzle, the ENCRYPTED keys, the ICE key and candidates and the UPDATE
// state go at once, so that a closed association lingers as a small record
// (TestClosedAssociationSize).
func (a *Association) shed() {
	a.compact()
	if a.km != nil {
		clear(a.km.prk) // a function of the Diffie-Hellman secret
	}
	clear(a.hip.encGL)
	clear(a.hip.encLG)
	clear(a.iceKey)
	a.km, a.dh, a.peerDH = nil, nil, nil
	a.puzzleI, a.puzzleJ = nil, nil
	a.hip.encGL, a.hip.encLG = nil, nil
	a.peerCands, a.iceKey = nil, nil
	a.solving, a.notified = nil, nil
	a.lastI2 = [sha256.Size]byte{}
	a.upd = updateState{next: a.upd.next}
}

// compact drops what only the base exchange needed, so that an idle
// ESTABLISHED association stays small: the R2 kept for retransmitted
// I2s, the R1 HOST_ID kept for HIP_MAC_2, and the expanded KEYMAT (it is
// re-expanded from its PRK if a rekey draws from it).
func (a *Association) compact() {
	a.lastR2 = nil
	a.peerHostID = nil
	if a.km != nil {
		clear(a.km.buf) // the keys drawn from it are copies
		a.km.buf = nil
	}
}

func (a *Association) emit(ev Event) { a.events = append(a.events, ev) }

// weAreG reports whether we are HOST_g, the host with the greater HIT
// (RFC 7401 §6.5).
func (a *Association) weAreG() bool { return a.e.hit.Compare(a.peer) > 0 }

// ourMACKey and peerMACKey are the HIP integrity keys for our outgoing
// packets and the peer's (HIP-gl belongs to HOST_g, §6.5).
func (a *Association) ourMACKey() []byte  { return a.pick(a.hip.macGL, a.hip.macLG, true) }
func (a *Association) peerMACKey() []byte { return a.pick(a.hip.macGL, a.hip.macLG, false) }

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
		a.espIndex = index
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
	a.out = append(a.out, pkt)
	if reliable {
		a.rtx = pkt
		a.rtxTries = 0
		a.rtxRTO = a.e.cfg.RetransmitTimeout
		a.rtxAt = now.Add(a.rtxRTO)
	}
}

func (a *Association) stopRetransmit() {
	a.rtx = nil
	a.rtxAt = time.Time{}
}

// Deadline is when HandleTimeout must next be called (zero: no timer).
func (a *Association) Deadline() time.Time {
	d := a.rtxAt
	if a.solving != nil && (d.IsZero() || a.solving.Deadline.Before(d)) {
		d = a.solving.Deadline
	}
	if !a.stateAt.IsZero() && (d.IsZero() || a.stateAt.Before(d)) {
		d = a.stateAt
	}
	if r := a.upd.rekeyBy; a.upd.rekeying && !r.IsZero() && (d.IsZero() || r.Before(d)) {
		d = r
	}
	return d
}

// HandleTimeout runs the timers due at now: retransmission with
// exponential back-off and give-up, and the timed state changes.
func (a *Association) HandleTimeout(now time.Time) {
	if a.solving != nil && !now.Before(a.solving.Deadline) {
		// §6.8 step 12: the puzzle's lifetime is over.
		a.solving = nil
		a.fail(now, errPuzzleUnsolved)
	}
	a.handleRekeyTimeout(now)
	if !a.rtxAt.IsZero() && !now.Before(a.rtxAt) {
		if a.rtxTries >= a.e.cfg.Retries && a.state != Closing {
			// CLOSING retransmits its CLOSE until UAL+MSL has passed
			// (RFC 7401 Table 7): its stateAt ends it.
			a.giveUp(now)
		} else {
			a.rtxTries++
			a.rtxRTO = min(2*a.rtxRTO, a.e.cfg.MaxRetransmitTimeout)
			a.rtxAt = now.Add(a.rtxRTO)
			a.out = append(a.out, a.rtx)
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
}

// giveUp handles retries exhausted for the packet in flight.
func (a *Association) giveUp(now time.Time) {
	a.stopRetransmit()
	switch a.state {
	case I1Sent, I2Sent:
		if a.notified != nil {
			// The peer said something on the way, unbound to this
			// exchange (handleNotify): the cause, not the verdict.
			a.fail(now, fmt.Errorf("%w (the peer had reported: %w)", ErrTimeout, a.notified))
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
