package handshake

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"slices"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Initiate starts a base exchange with peer (RFC 7401 §6.6): it returns a
// new association in I1-SENT whose Outgoing holds the I1. A zero peer HIT
// starts opportunistic mode (§4.1.8): the Responder's HIT is learnt from
// its R1 and returned by PeerHIT once known.
func (e *Endpoint) Initiate(now time.Time, peer wire.HIT) *Association {
	a := newAssociation(e, peer, now)
	a.restartI1(now)
	return a
}

// Restart begins a new base exchange on an association that is
// UNASSOCIATED, E-FAILED, CLOSING or CLOSED, e.g. because data must be
// sent (§4.4.3 Tables 7 and 8). It does nothing in other states.
func (a *Association) Restart(now time.Time) {
	switch a.state {
	case Unassociated, EFailed, Closing, Closed:
		a.restartI1(now)
	}
}

func (a *Association) restartI1(now time.Time) {
	e := a.e
	a.initiator = true
	a.stateAt = time.Time{}
	// A new base exchange: only a registration request for its I2 is
	// kept from the last.
	bex := &bexState{i1Groups: e.cfg.DHGroups}
	if a.bex != nil {
		bex.regWant = a.bex.regWant
	}
	a.bex = bex
	a.lastI2 = [sha256.Size]byte{}
	a.upd = updateState{}
	raw := e.BuildI1(make([]byte, 0, 64), a.peer)
	a.setState(now, I1Sent)
	a.send(now, raw, true)
}

// BuildI1 builds in buf (from its start) an I1 to peer (§5.3.1:
// DH_GROUP_LIST only), as an association's base exchange sends it. Sent
// alone, with no association, it asks whether peer is at an address:
// only peer can answer with its R1, and an I1 creates no state at the
// Responder.
func (e *Endpoint) BuildI1(buf []byte, peer wire.HIT) []byte {
	var b wire.Builder
	b.Reset(buf, wire.I1, e.hit, peer)
	b.Add(wire.DHGroupList{Groups: e.cfg.DHGroups})
	raw, _ := b.Bytes()
	return raw
}

// r1Offer is what an R1 offered and we chose from it (RFC 7401 §6.8), kept
// while the puzzle is solved: everything the I2 needs but #J and the keys.
type r1Offer struct {
	r1       []byte // the R1, copied: the I2 echoes R1_COUNTER and ECHO_REQUESTs
	sender   wire.HIT
	pub      *hostid.PublicKey
	hostID   []byte // the R1's HOST_ID TLV, verbatim, for HIP_MAC_2
	rhash    func() hash.Hash
	counter  uint64
	dh       wire.DiffieHellman
	cipherID uint16
	suite    esp.Suite
	natMode  uint16
	ta       time.Duration // the Responder's TRANSACTION_PACING (UnannouncedTa if none)
	pz       wire.Puzzle
}

// handleR1 processes an R1 in I1-SENT or I2-SENT (RFC 7401 §6.8): the
// checks of steps 1-11 and 14-15 in order, then the puzzle of step 12,
// solved at once when it is easy and by the caller otherwise
// (EventPuzzle), then the keys and the I2 (r1Finish).
func (a *Association) handleR1(now time.Time, pkt wire.Packet) error {
	o, err := a.r1Identity(pkt)
	if err != nil {
		return err
	}
	for _, step := range []func(time.Time, wire.Packet, *r1Offer) error{a.r1Suites, a.r1Group, a.r1Transforms, a.r1Puzzle} {
		if err := step(now, pkt, o); err == errExchangeFailed {
			return nil // failed, with a NOTIFY where §6.8 steps 6, 7, 14, 15 ask
		} else if err != nil {
			return err
		}
	}
	o.r1 = append([]byte(nil), pkt...)
	a.bex.solving = nil
	if o.pz.K > a.e.cfg.InlinePuzzle {
		// Hard: the caller solves it off its control loop, within the
		// puzzle's lifetime, and calls PuzzleSolved.
		p, err := a.newPuzzle(now, o)
		if err != nil {
			return err
		}
		a.bex.solving = p
		a.stopRetransmit() // the R1 answered our I1
		a.emit(Event{Kind: EventPuzzle, Puzzle: p})
		return nil
	}
	start, err := a.e.random(len(o.pz.I))
	if err != nil {
		return err
	}
	// 2^(K+5) tries fail with probability e^-32; easy puzzles end far
	// inside any lifetime.
	j, err := solvePuzzle(o.rhash, o.pz.I, a.e.hit, o.sender, int(o.pz.K), start, 1<<(o.pz.K+5), nil)
	if err != nil {
		a.fail(now, err)
		return nil
	}
	return a.r1Finish(now, o, j)
}

// r1Identity is §6.8 steps 1-5, 8, 10 and 11: the state, the HITs, the
// Responder's HI hashing to its HIT — the binding that dialling by HIT
// means — and, in I2-SENT, an R1 generation newer than the one answered
// (cheap, and only ever a reason to drop), then HIP_SIGNATURE_2, before
// anything else in the R1 is used.
func (a *Association) r1Identity(pkt wire.Packet) (*r1Offer, error) {
	// Only in answer to an I1 of ours (§6.8 step 2). Tables 7 and 8 let
	// CLOSING and CLOSED take an R1 too, but we leave them only through
	// Restart, which sends an I1 first; an R1 arriving there can only have
	// been solicited by someone else (an I1 spoofed with our HIT) to bring
	// back an association that was closed.
	switch a.state {
	case I1Sent, I2Sent:
	default:
		return nil, fmt.Errorf("%w: R1 in %v", ErrUnexpected, a.state)
	}
	if a.state != I1Sent && !a.initiator {
		return nil, fmt.Errorf("%w: R1 but we did not initiate", ErrUnexpected)
	}
	if a.bex == nil {
		return nil, fmt.Errorf("%w: R1 without a base exchange of ours", ErrUnexpected)
	}
	if a.bex.solving != nil {
		return nil, fmt.Errorf("%w: R1 while the previous one's puzzle is being solved", ErrUnexpected)
	}
	if err := checkCritical(pkt, wire.ParamR1Counter, wire.ParamPuzzle, wire.ParamDHGroupList,
		wire.ParamDiffieHellman, wire.ParamHIPCipher, wire.ParamHostID, wire.ParamHITSuiteList,
		wire.ParamEchoRequestSigned, wire.ParamTransportFormatList, wire.ParamESPTransform,
		wire.ParamHIPSignature2, wire.ParamEchoRequestUnsigned); err != nil {
		return nil, err
	}
	o := &r1Offer{sender: pkt.SenderHIT()}
	if !a.peer.IsZero() && o.sender != a.peer {
		return nil, fmt.Errorf("%w: R1 from %v, expected %v", ErrUnexpected, o.sender, a.peer)
	}
	hidP, ok := pkt.Param(wire.ParamHostID)
	if !ok {
		return nil, fmt.Errorf("%w: R1 without HOST_ID", ErrMalformed)
	}
	pub, err := parseHostID(hidP.Contents())
	if err != nil {
		return nil, err
	}
	if wire.HIT(pub.HIT()) != o.sender {
		return nil, fmt.Errorf("%w: R1 from %v", ErrHITMismatch, o.sender)
	}
	if p, ok := pkt.Param(wire.ParamR1Counter); ok {
		c, err := wire.ParseR1Counter(p.Contents())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		o.counter = c.Counter
	}
	if a.state == I2Sent && o.counter <= a.bex.r1Gen {
		// Only a newer R1 generation restarts I2 (§6.8 step 8). Checked
		// before the signature: a replayed older R1, or anything that
		// claims an old generation, is dropped for the price of a compare;
		// a newer counter still has to verify.
		return nil, fmt.Errorf("%w: R1 generation %d is not newer than %d", ErrReplay, o.counter, a.bex.r1Gen)
	}
	if err := verifySignature(pub, pkt, wire.ParamHIPSignature2); err != nil {
		return nil, err
	}
	if err := a.noteRegInfo(pkt); err != nil {
		return nil, err
	}
	o.pub, o.hostID = pub, hidP.TLV()
	return o, nil
}

// r1Suites is §6.8 step 6: our HIT suite must be in the Responder's list,
// and we must accept the Responder's, whose hash is RHASH.
func (a *Association) r1Suites(now time.Time, pkt wire.Packet, o *r1Offer) error {
	e := a.e
	rsuite := hostid.Suite(o.sender.OGA())
	if !slices.Contains(e.cfg.HITSuites, rsuite) {
		return a.notifyAndFail(now, wire.NotifyUnsupportedHITSuite, fmt.Errorf("%w: Responder uses suite %d", ErrUnsupportedHITSuite, rsuite))
	}
	lp, ok := pkt.Param(wire.ParamHITSuiteList)
	if !ok {
		return fmt.Errorf("%w: R1 without HIT_SUITE_LIST", ErrMalformed)
	}
	hl, err := wire.ParseHITSuiteList(lp.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !slices.Contains(hl.IDs, e.pub.Suite().ListID()) {
		return a.notifyAndFail(now, wire.NotifyUnsupportedHITSuite, fmt.Errorf("%w: Responder does not accept suite %d", ErrUnsupportedHITSuite, e.pub.Suite()))
	}
	o.rhash = rsuite.NewHash
	return nil
}

// r1Group is §6.8 step 7 with §5.2.6 and §4.1.7: the Responder must have
// chosen the first group of its signed DH_GROUP_LIST that our I1 offered.
// Any other choice means the I1's list was trimmed on the way (a
// downgrade), or that the R1 answers another I1 than ours: R1s are signed
// without the Initiator's HIT and #I, so anyone can ask the Responder for
// one with the group list of its choice and send it to us. Either way the
// R1 is dropped and we wait for the Responder's answer to our own I1
// (step 7 allows this rather than an abort, which would let one
// replayed R1 end any exchange); if none comes, the exchange times out
// with this as the cause.
func (a *Association) r1Group(now time.Time, pkt wire.Packet, o *r1Offer) error {
	dhP, ok := pkt.Param(wire.ParamDiffieHellman)
	if !ok {
		return fmt.Errorf("%w: R1 without DIFFIE_HELLMAN", ErrMalformed)
	}
	dh, err := wire.ParseDiffieHellman(dhP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	glP, ok := pkt.Param(wire.ParamDHGroupList)
	if !ok {
		return fmt.Errorf("%w: R1 without DH_GROUP_LIST", ErrMalformed)
	}
	gl, err := wire.ParseDHGroupList(glP.Contents())
	if err != nil || len(gl.Groups) == 0 {
		return fmt.Errorf("%w: bad DH_GROUP_LIST", ErrMalformed)
	}
	i1Groups := a.bex.i1Groups
	switch want := firstShared(gl.Groups, i1Groups); {
	case want == 0 || !slices.Contains(i1Groups, dh.Group):
		return a.refuseR1(fmt.Errorf("%w: Responder chose group %d of %v", ErrNoCommonDHGroup, dh.Group, gl.Groups))
	case dh.Group != want:
		return a.refuseR1(fmt.Errorf("%w: Responder chose group %d, but its signed list %v and our I1's %v give %d",
			ErrDowngrade, dh.Group, gl.Groups, i1Groups, want))
	}
	o.dh = dh
	return nil
}

// refuseR1 drops an R1 whose signature verified but whose contents we
// refuse, keeping err as the cause should the exchange time out.
func (a *Association) refuseR1(err error) error {
	a.bex.refusedR1 = err
	return err
}

// firstShared is the first group of list that offered contains, or 0.
func firstShared(list, offered []uint8) uint8 {
	for _, g := range list {
		if slices.Contains(offered, g) && lookupGroup(g) != nil {
			return g
		}
	}
	return 0
}

// r1Transforms is §6.8 steps 14-15 and RFC 7402 §4.1.2: our first
// HIP_CIPHER that is offered, the ESP transport format, the Responder's
// preferred ESP transform among ours, and the NAT traversal mode.
func (a *Association) r1Transforms(now time.Time, pkt wire.Packet, o *r1Offer) error {
	e := a.e
	cP, ok := pkt.Param(wire.ParamHIPCipher)
	if !ok {
		return fmt.Errorf("%w: R1 without HIP_CIPHER", ErrMalformed)
	}
	cl, err := wire.ParseHIPCipher(cP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	cipherID, ok := pickU16(e.cfg.HIPCiphers, cl.IDs)
	if !ok {
		return a.notifyAndFail(now, wire.NotifyNoHIPProposalChosen, ErrNoCommonCipher)
	}
	tP, ok := pkt.Param(wire.ParamTransportFormatList)
	if !ok {
		return fmt.Errorf("%w: R1 without TRANSPORT_FORMAT_LIST", ErrMalformed)
	}
	tl, err := wire.ParseTransportFormatList(tP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !tl.IDs.Contains(wire.TransportFormatESP) {
		return a.notifyAndFail(now, wire.NotifyNoESPProposalChosen, ErrNoTransportFormat)
	}
	eP, ok := pkt.Param(wire.ParamESPTransform)
	if !ok {
		return a.notifyAndFail(now, wire.NotifyNoESPProposalChosen, fmt.Errorf("%w: R1 without ESP_TRANSFORM", ErrNoCommonESPSuite))
	}
	et, err := wire.ParseESPTransform(eP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var suite esp.Suite
	for i := 0; i < et.Suites.Len(); i++ {
		if s := esp.Suite(et.Suites.At(i)); slices.Contains(e.cfg.ESPSuites, s) {
			suite = s
			break
		}
	}
	if suite == 0 {
		return a.notifyAndFail(now, wire.NotifyNoESPProposalChosen, ErrNoCommonESPSuite)
	}
	o.cipherID, o.suite, o.natMode = cipherID, suite, e.pickNATMode(pkt)
	o.ta = peerTa(pkt)
	return nil
}

// r1Puzzle reads the PUZZLE of §6.8 step 12: #I of RHASH's length and a
// difficulty within our limit.
func (a *Association) r1Puzzle(now time.Time, pkt wire.Packet, o *r1Offer) error {
	pzP, ok := pkt.Param(wire.ParamPuzzle)
	if !ok {
		return fmt.Errorf("%w: R1 without PUZZLE", ErrMalformed)
	}
	pz, err := wire.ParsePuzzle(pzP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(pz.I) != o.rhash().Size() {
		return fmt.Errorf("%w: puzzle #I of %d octets for RHASH of %d", ErrMalformed, len(pz.I), o.rhash().Size())
	}
	if pz.K > a.e.cfg.MaxPuzzleDifficulty {
		a.fail(now, fmt.Errorf("%w: difficulty %d above our limit %d", ErrBadPuzzle, pz.K, a.e.cfg.MaxPuzzleDifficulty))
		return errExchangeFailed
	}
	o.pz = pz
	o.pz.I = append([]byte(nil), pz.I...)
	return nil
}

// r1Finish is §6.8 step 13 onwards, once #J solves the puzzle: our
// Diffie-Hellman key (fresh for every I2, so no two exchanges share keys),
// KEYMAT, the HIP keys, an inbound SPI, the I2, and I2-SENT. The
// Responder's ESP can be opened from here on: its keys are ours too.
func (a *Association) r1Finish(now time.Time, o *r1Offer, j []byte) error {
	e := a.e
	key, err := lookupGroup(o.dh.Group).generate(e.cfg.Rand)
	if err != nil {
		return err
	}
	kij, err := key.shared(o.dh.Public)
	if err != nil {
		a.fail(now, fmt.Errorf("%w: %w", ErrMalformed, err))
		return nil
	}
	km, err := newKeymat(o.rhash, kij, o.pz.I, j, e.hit, o.sender)
	if err != nil {
		return err
	}
	encLen, _ := cipherKeyLen(o.cipherID)
	hk, err := km.drawHIPKeys(encLen, o.rhash().Size())
	if err != nil {
		return err
	}
	spi, err := e.allocSPI()
	if err != nil {
		return err
	}
	a.peer = o.sender
	a.peerPub = o.pub
	a.bex.peerHostID = append([]byte(nil), o.hostID...)
	a.rhash = o.rhash
	a.dh = key
	a.peerDH = append([]byte(nil), o.dh.Public...)
	a.cipherID = o.cipherID
	a.espSuite = o.suite
	a.bex.r1Gen = o.counter
	a.km = km
	a.hipMAC, a.bex.hipEnc = hk.mac, hk.enc
	a.inSPI = spi
	a.natMode = o.natMode
	if a.natMode == wire.NATModeICESTUNUDP {
		a.setTa(e.pacing(o.ta).Duration())
	}
	a.bex.notified = nil

	r1, err := wire.ParsePacket(o.r1)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	i2, err := a.buildI2(r1, o.pz, o.dh.Group, key.public())
	if err != nil {
		return err
	}
	a.setState(now, I2Sent)
	a.send(now, i2, true)
	in, _, err := a.espConfigs(km.next)
	if err != nil {
		return err
	}
	if err := a.drawICEKey(); err != nil {
		return err
	}
	a.emit(Event{Kind: EventInboundSA, Inbound: in})
	return nil
}

// buildI2 builds the I2 answering r1 (RFC 7401 §5.3.3, RFC 7402 §5.2.1.2).
func (a *Association) buildI2(r1 wire.Packet, pz wire.Puzzle, group uint8, pubDH []byte) ([]byte, error) {
	e := a.e
	var b wire.Builder
	b.Reset(make([]byte, 0, 1024), wire.I2, e.hit, a.peer)
	b.Add(wire.ESPInfo{KeymatIndex: uint16(a.km.next), NewSPI: a.inSPI})
	if p, ok := r1.Param(wire.ParamR1Counter); ok {
		b.AddParam(p) // echoed unmodified (§5.3.3, erratum 6654)
	}
	b.Add(wire.Solution{K: pz.K, Opaque: pz.Opaque, I: a.puzzleI(), J: a.puzzleJ()})
	b.Add(wire.DiffieHellman{Group: group, Public: pubDH})
	b.Add(wire.HIPCipher{IDs: wire.MakeU16List(a.cipherID)})
	if a.natMode != 0 {
		b.Add(wire.MakeNATTraversalMode(a.natMode)) // RFC 5770 §4.5 step 5
	}
	if a.natMode == wire.NATModeICESTUNUDP {
		b.Add(wire.TransactionPacing{MinTa: uint32(a.ta)}) // §4.4: not below the Responder's
	}
	// ENCRYPTED holds our ICE candidates and, if asked, our HOST_ID
	// (§5.3.3), in ascending order.
	plain, err := a.candidateTLV()
	if err != nil {
		return nil, err
	}
	if e.cfg.EncryptHostID {
		plain = append(plain, e.hostID...)
	}
	if plain != nil {
		if err := a.addEncrypted(&b, plain); err != nil {
			return nil, err
		}
	}
	if !e.cfg.EncryptHostID {
		b.AddRaw(wire.ParamHostID, hostIDContents(e.hostID))
	}
	if req := a.i2Request(); req != nil {
		b.Add(*req) // RFC 8003 §3.2
	}
	it := r1.Params()
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		if p.Type() == wire.ParamEchoRequestSigned {
			b.AddRaw(wire.ParamEchoResponseSigned, p.Contents())
		}
	}
	b.Add(wire.TransportFormatList{IDs: wire.MakeU16List(wire.TransportFormatESP)})
	b.Add(wire.ESPTransform{Suites: wire.MakeU16List(uint16(a.espSuite))})
	if err := addMAC(&b, a.rhash, a.ourMACKey()); err != nil {
		return nil, err
	}
	if err := e.addSignature(&b, wire.ParamHIPSignature); err != nil {
		return nil, err
	}
	it = r1.Params()
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		if p.Type() == wire.ParamEchoRequestUnsigned {
			b.AddRaw(wire.ParamEchoResponseUnsigned, p.Contents())
		}
	}
	return finish(&b)
}

// handleR2 completes the base exchange as Initiator (RFC 7401 §6.10).
func (a *Association) handleR2(now time.Time, pkt wire.Packet) error {
	if a.state != I2Sent || !a.initiator {
		return fmt.Errorf("%w: R2 in %v", ErrUnexpected, a.state)
	}
	if err := checkCritical(pkt, wire.ParamESPInfo, wire.ParamEncrypted, wire.ParamHIPMAC2, wire.ParamHIPSignature); err != nil {
		return err
	}
	if err := verifyMAC(a.rhash, a.peerMACKey(), pkt, wire.ParamHIPMAC2, a.bex.peerHostID); err != nil {
		return err
	}
	if err := verifySignature(a.peerPub, pkt, wire.ParamHIPSignature); err != nil {
		return err
	}
	// The Responder's ICE candidates (RFC 5770 §4.5 step 7), inside
	// ENCRYPTED (nat.go).
	plain, err := a.openEncrypted(pkt)
	if err != nil {
		return err
	}
	it := wire.IterParams(plain)
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		if p.Type() == wire.ParamLocatorSet {
			if err := a.takeCandidates(p); err != nil {
				return err
			}
		}
	}
	eiP, ok := pkt.Param(wire.ParamESPInfo)
	if !ok {
		return fmt.Errorf("%w: R2 without ESP_INFO", ErrMalformed)
	}
	ei, err := wire.ParseESPInfo(eiP.Contents())
	if err != nil || ei.NewSPI == 0 {
		return fmt.Errorf("%w: bad ESP_INFO in R2", ErrMalformed)
	}
	a.outSPI = ei.NewSPI
	in, out, err := a.espConfigs(int(a.espIndex))
	if err != nil {
		return err
	}
	reg, err := readRegAnswer(pkt)
	if err != nil {
		return err
	}
	a.stopRetransmit()
	a.setState(now, Established)
	a.emit(Event{Kind: EventEstablished, Inbound: in, Outbound: out})
	if reg != nil {
		a.emit(Event{Kind: EventRegistration, Registration: reg})
	}
	return nil
}

// pickU16 returns the first of ours that the peer's list contains.
func pickU16(ours []uint16, theirs wire.U16List) (uint16, bool) {
	for _, x := range ours {
		if theirs.Contains(x) {
			return x, true
		}
	}
	return 0, false
}

// parseHostID turns HOST_ID contents into a public key.
func parseHostID(contents []byte) (*hostid.PublicKey, error) {
	hid, err := wire.ParseHostID(contents)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	pub, err := hostid.ParseHostIdentity(hostid.Algorithm(hid.Algorithm), hid.HI)
	if err != nil {
		return nil, fmt.Errorf("%w: HOST_ID: %v", ErrMalformed, err)
	}
	return pub, nil
}

// hostIDContents strips the TLV header and padding from a HOST_ID TLV.
func hostIDContents(tlv []byte) []byte {
	return tlv[4 : 4+int(binary.BigEndian.Uint16(tlv[2:]))]
}

func espSuiteIDs(s []esp.Suite) []uint16 {
	ids := make([]uint16, len(s))
	for i, x := range s {
		ids[i] = uint16(x)
	}
	return ids
}
