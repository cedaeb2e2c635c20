package handshake

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
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
	a.i1Groups = e.cfg.DHGroups
	a.lastI2, a.lastR2 = [sha256.Size]byte{}, nil
	a.upd = updateState{}
	var b wire.Builder
	b.Reset(make([]byte, 0, 64), wire.I1, e.hit, a.peer)
	b.Add(wire.DHGroupList{Groups: a.i1Groups})
	raw, _ := b.Bytes()
	a.setState(now, I1Sent)
	a.send(now, append([]byte(nil), raw...), true)
}

// handleR1 processes an R1 in I1-SENT or I2-SENT (RFC 7401 §6.8).
func (a *Association) handleR1(now time.Time, pkt wire.Packet) error {
	e := a.e
	switch a.state {
	case I1Sent, I2Sent, Closing, Closed:
	default:
		return fmt.Errorf("%w: R1 in %v", ErrUnexpected, a.state)
	}
	if a.state != I1Sent && !a.initiator {
		return fmt.Errorf("%w: R1 but we did not initiate", ErrUnexpected)
	}
	if err := checkCritical(pkt, wire.ParamR1Counter, wire.ParamPuzzle, wire.ParamDHGroupList,
		wire.ParamDiffieHellman, wire.ParamHIPCipher, wire.ParamHostID, wire.ParamHITSuiteList,
		wire.ParamEchoRequestSigned, wire.ParamTransportFormatList, wire.ParamESPTransform,
		wire.ParamHIPSignature2, wire.ParamEchoRequestUnsigned); err != nil {
		return err
	}
	sender := pkt.SenderHIT()
	if !a.peer.IsZero() && sender != a.peer {
		return fmt.Errorf("%w: R1 from %v, expected %v", ErrUnexpected, sender, a.peer)
	}

	// The Responder's identity: its HI must hash to its HIT (§6.8 step
	// 10) — that binding is what dialling by HIT means — and its
	// HIP_SIGNATURE_2 must verify (step 4) before anything else is used.
	hidP, ok := pkt.Param(wire.ParamHostID)
	if !ok {
		return fmt.Errorf("%w: R1 without HOST_ID", ErrMalformed)
	}
	pub, err := parseHostID(hidP.Contents())
	if err != nil {
		return err
	}
	if wire.HIT(pub.HIT()) != sender {
		return fmt.Errorf("%w: R1 from %v", ErrHITMismatch, sender)
	}
	if err := verifySignature(pub, pkt, wire.ParamHIPSignature2); err != nil {
		return err
	}
	if err := a.noteRegInfo(pkt); err != nil {
		return err
	}

	var counter uint64
	if p, ok := pkt.Param(wire.ParamR1Counter); ok {
		c, err := wire.ParseR1Counter(p.Contents())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		counter = c.Counter
	}
	if a.state == I2Sent && counter <= a.r1Gen {
		// Only a newer R1 generation restarts I2 (§6.8 step 8).
		return fmt.Errorf("%w: R1 generation %d is not newer than %d", ErrReplay, counter, a.r1Gen)
	}

	// HIT suites (§6.8 step 6): ours must be in the Responder's list, and
	// we must support the Responder's.
	rsuite := hostid.Suite(sender.OGA())
	if !slices.Contains(e.cfg.HITSuites, rsuite) {
		a.notifyAndFail(now, wire.NotifyUnsupportedHITSuite, fmt.Errorf("%w: Responder uses suite %d", ErrUnsupportedHITSuite, rsuite))
		return nil
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
		a.notifyAndFail(now, wire.NotifyUnsupportedHITSuite, fmt.Errorf("%w: Responder does not accept suite %d", ErrUnsupportedHITSuite, e.pub.Suite()))
		return nil
	}
	rhash := rsuite.NewHash

	// Diffie-Hellman (§6.8 step 7): the chosen group must be the
	// Responder's first preference and one we offered.
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
	if !slices.Contains(a.i1Groups, dh.Group) || lookupGroup(dh.Group) == nil {
		a.notifyAndFail(now, wire.NotifyNoDHProposalChosen, fmt.Errorf("%w: Responder chose group %d", ErrNoCommonDHGroup, dh.Group))
		return nil
	}
	if gl.Groups[0] != dh.Group {
		// The DH_GROUP_LIST of our I1 was probably tampered with (§4.1.7).
		a.notifyAndFail(now, wire.NotifyInvalidDHChosen, fmt.Errorf("%w: group %d is not the Responder's first choice %d (downgrade?)", ErrNoCommonDHGroup, dh.Group, gl.Groups[0]))
		return nil
	}

	// HIP_CIPHER (§6.8 step 14): our first preference that is offered.
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
		a.notifyAndFail(now, wire.NotifyNoHIPProposalChosen, ErrNoCommonCipher)
		return nil
	}

	// Transport format and ESP transform (§6.8 step 15, RFC 7402 §4.1.2):
	// the Responder's preference among the suites we allow.
	tP, ok := pkt.Param(wire.ParamTransportFormatList)
	if !ok {
		return fmt.Errorf("%w: R1 without TRANSPORT_FORMAT_LIST", ErrMalformed)
	}
	tl, err := wire.ParseTransportFormatList(tP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if !tl.IDs.Contains(wire.TransportFormatESP) {
		a.notifyAndFail(now, wire.NotifyNoESPProposalChosen, ErrNoTransportFormat)
		return nil
	}
	eP, ok := pkt.Param(wire.ParamESPTransform)
	if !ok {
		a.notifyAndFail(now, wire.NotifyNoESPProposalChosen, fmt.Errorf("%w: R1 without ESP_TRANSFORM", ErrNoCommonESPSuite))
		return nil
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
		a.notifyAndFail(now, wire.NotifyNoESPProposalChosen, ErrNoCommonESPSuite)
		return nil
	}

	// Puzzle (§6.8 step 12), with the Responder's RHASH.
	pzP, ok := pkt.Param(wire.ParamPuzzle)
	if !ok {
		return fmt.Errorf("%w: R1 without PUZZLE", ErrMalformed)
	}
	pz, err := wire.ParsePuzzle(pzP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(pz.I) != rhash().Size() {
		return fmt.Errorf("%w: puzzle #I of %d octets for RHASH of %d", ErrMalformed, len(pz.I), rhash().Size())
	}
	if pz.K > e.cfg.MaxPuzzleDifficulty {
		a.fail(now, fmt.Errorf("%w: difficulty %d above our limit %d", ErrBadPuzzle, pz.K, e.cfg.MaxPuzzleDifficulty))
		return nil
	}
	start, err := e.random(len(pz.I))
	if err != nil {
		return err
	}
	// 2^(K+5) tries fail with probability e^-32: the count bound stands in
	// for the lifetime bound, since this package has no clock.
	j, err := solvePuzzle(rhash, pz.I, e.hit, sender, int(pz.K), start, 1<<(pz.K+5))
	if err != nil {
		a.fail(now, err)
		return nil
	}

	// Keys (§6.8 step 13, §6.5).
	key, err := lookupGroup(dh.Group).generate(e.cfg.Rand)
	if err != nil {
		return err
	}
	kij, err := key.shared(dh.Public)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	km, err := newKeymat(rhash, kij, pz.I, j, e.hit, sender)
	if err != nil {
		return err
	}
	encLen, _ := cipherKeyLen(cipherID)
	hk, err := km.drawHIPKeys(encLen, rhash().Size())
	if err != nil {
		return err
	}
	spi, err := e.allocSPI()
	if err != nil {
		return err
	}

	a.peer = sender
	a.peerPub = pub
	a.peerHostID = append([]byte(nil), hidP.TLV()...)
	a.rhash = rhash
	a.dh = key
	a.peerDH = append([]byte(nil), dh.Public...)
	a.cipherID = cipherID
	a.espSuite = suite
	a.puzzleI = append([]byte(nil), pz.I...)
	a.puzzleJ = j
	a.r1Gen = counter
	a.km = km
	a.hip = hk
	a.inSPI = spi
	a.natMode = e.pickNATMode(pkt)

	i2, err := a.buildI2(pkt, pz, dh.Group, key.public())
	if err != nil {
		return err
	}
	a.setState(now, I2Sent)
	a.send(now, i2, true)
	// We can already open the Responder's ESP: its keys are ours too.
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
	b.Add(wire.Solution{K: pz.K, Opaque: pz.Opaque, I: a.puzzleI, J: a.puzzleJ})
	b.Add(wire.DiffieHellman{Group: group, Public: pubDH})
	b.Add(wire.HIPCipher{IDs: wire.MakeU16List(a.cipherID)})
	if a.natMode != 0 {
		b.Add(wire.MakeNATTraversalMode(a.natMode)) // RFC 5770 §4.5 step 5
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
	if err := verifyMAC(a.rhash, a.peerMACKey(), pkt, wire.ParamHIPMAC2, a.peerHostID); err != nil {
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
	in, out, err := a.espConfigs(a.espIndex)
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
