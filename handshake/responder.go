package handshake

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// handleI2 processes an I2 (RFC 7401 §6.9) in the states of §4.4.3.
func (e *Endpoint) handleI2(now time.Time, pkt wire.Packet, a *Association) (Result, error) {
	res := Result{Assoc: a}
	peer := pkt.SenderHIT()
	// §6.9 step 3: silently drop I2s from unsupported HIT suites.
	if !slices.Contains(e.cfg.HITSuites, hostid.Suite(peer.OGA())) {
		return res, fmt.Errorf("%w: Initiator HIT suite %d", ErrUnsupportedHITSuite, peer.OGA())
	}
	if a != nil {
		switch a.state {
		case R2Sent, Established:
			if a.lastI2 == sha256.Sum256(pkt) {
				if a.state == R2Sent {
					// The R2 was lost: answer again (§6.9 step 4).
					a.out = append(a.out, a.lastR2)
					return res, nil
				}
				return res, fmt.Errorf("%w: I2 already processed", ErrReplay)
			}
		case I2Sent:
			if e.hit.Compare(peer) < 0 {
				// Simultaneous initiation: the larger HIT responds, and
				// that is the peer (§6.9 step 5).
				return res, fmt.Errorf("%w: simultaneous I2, the peer's larger HIT responds", ErrUnexpected)
			}
		}
	}
	n, err := e.acceptI2(now, pkt)
	if err != nil {
		if r, ok := err.(*rejectError); ok {
			res.Reply = r.notify
		}
		return res, err
	}
	if a != nil && !a.initiator && a.puzzleI != nil && bytes.Equal(a.puzzleI, n.puzzleI) && bytes.Equal(a.puzzleJ, n.puzzleJ) {
		// The same solution again, in a different packet: a replay, not a
		// new exchange by the peer (which would solve a new puzzle).
		return res, fmt.Errorf("%w: I2 reuses the solution of the current association", ErrReplay)
	}
	e.stats.I2Accepted++
	if a != nil {
		// §6.9 step 20: the old association is replaced by the new one;
		// callers keep their pointer.
		*a = *n
		return Result{Assoc: a}, nil
	}
	return Result{Assoc: n}, nil
}

// generationFor finds the R1 generation an I2 answers: by its echoed
// R1_COUNTER, or by trying the current and previous #I.
func (e *Endpoint) generationFor(pkt wire.Packet, sol wire.Solution) (*r1Gen, error) {
	if p, ok := pkt.Param(wire.ParamR1Counter); ok {
		c, err := wire.ParseR1Counter(p.Contents())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		for _, g := range []*r1Gen{e.cur, e.prev} {
			if g != nil && g.counter == c.Counter {
				return g, nil
			}
		}
		// §6.9 step 7: outside the accepted range.
		return nil, fmt.Errorf("%w: R1 generation %d (current %d)", ErrPuzzleExpired, c.Counter, e.counter)
	}
	for _, g := range []*r1Gen{e.cur, e.prev} {
		if g != nil && hmac.Equal(sol.I, e.puzzleI(g, pkt.SenderHIT())) {
			return g, nil
		}
	}
	return nil, fmt.Errorf("%w: #I matches no current R1", ErrPuzzleExpired)
}

// acceptI2 runs the checks of §6.9 in the RFC's order — the cheap puzzle
// before any public-key operation — and builds the association.
func (e *Endpoint) acceptI2(now time.Time, pkt wire.Packet) (*Association, error) {
	peer := pkt.SenderHIT()
	if err := checkCritical(pkt, wire.ParamESPInfo, wire.ParamR1Counter, wire.ParamSolution,
		wire.ParamDiffieHellman, wire.ParamHIPCipher, wire.ParamEncrypted, wire.ParamHostID,
		wire.ParamEchoResponseSigned, wire.ParamTransportFormatList, wire.ParamESPTransform,
		wire.ParamHIPMAC, wire.ParamHIPSignature, wire.ParamEchoResponseUnsigned); err != nil {
		return nil, err
	}
	solP, ok := pkt.Param(wire.ParamSolution)
	if !ok {
		return nil, fmt.Errorf("%w: I2 without SOLUTION", ErrMalformed)
	}
	sol, err := wire.ParseSolution(solP.Contents())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	g, err := e.generationFor(pkt, sol)
	if err != nil {
		return nil, err
	}
	// Step 8: the puzzle, with our RHASH and the #K of that generation.
	if sol.K != g.k || !hmac.Equal(sol.I, e.puzzleI(g, peer)) {
		return nil, fmt.Errorf("%w: #I or #K is not the one we sent", ErrBadPuzzle)
	}
	if !verifyPuzzle(e.rhash, sol.I, peer, e.hit, sol.J, int(g.k)) {
		return nil, fmt.Errorf("%w: #J does not solve #I", ErrBadPuzzle)
	}

	a := newAssociation(e, peer, now)
	a.rhash = e.rhash
	a.r1Gen = g.counter
	a.puzzleI = append([]byte(nil), sol.I...)
	a.puzzleJ = append([]byte(nil), sol.J...)

	// The puzzle is solved: from here on failures are worth a NOTIFY
	// (§6.9.1), and a NOTIFY needs a signature, not state.
	fail := func(t wire.NotifyType, err error) (*Association, error) {
		n, _ := e.buildNotify(peer, t, nil)
		return nil, &rejectError{err: err, notify: n}
	}

	// Step 9: one cipher, one we offered.
	cP, ok := pkt.Param(wire.ParamHIPCipher)
	if !ok {
		return nil, fmt.Errorf("%w: I2 without HIP_CIPHER", ErrMalformed)
	}
	cl, err := wire.ParseHIPCipher(cP.Contents())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if cl.IDs.Len() != 1 || !slices.Contains(e.cfg.HIPCiphers, cl.IDs.At(0)) {
		return fail(wire.NotifyInvalidHIPCipherChosen, ErrNoCommonCipher)
	}
	a.cipherID = cl.IDs.At(0)

	// Step 10: Diffie-Hellman with the generation's key for that group.
	dhP, ok := pkt.Param(wire.ParamDiffieHellman)
	if !ok {
		return nil, fmt.Errorf("%w: I2 without DIFFIE_HELLMAN", ErrMalformed)
	}
	dh, err := wire.ParseDiffieHellman(dhP.Contents())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var r1 *r1Packet
	for _, r := range g.r1s {
		if r != nil && r.dh.group() == dh.Group {
			r1 = r
		}
	}
	if r1 == nil {
		return nil, fmt.Errorf("%w: I2 uses group %d", ErrNoCommonDHGroup, dh.Group)
	}
	kij, err := r1.dh.shared(dh.Public)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	a.dh = r1.dh
	a.peerDH = append([]byte(nil), dh.Public...)
	if a.km, err = newKeymat(e.rhash, kij, sol.I, sol.J, peer, e.hit); err != nil {
		return nil, err
	}
	encLen, _ := cipherKeyLen(a.cipherID)
	if a.hip, err = a.km.drawHIPKeys(encLen, e.rhash().Size()); err != nil {
		return nil, err
	}

	// Steps 11-12: the Initiator's HI, possibly inside ENCRYPTED, must
	// hash to its HIT.
	var hid []byte
	if p, ok := pkt.Param(wire.ParamHostID); ok {
		hid = p.Contents()
	}
	// ENCRYPTED may hold the HOST_ID (§5.3.3) and the Initiator's ICE
	// candidates (nat.go).
	plain, err := a.openEncrypted(pkt)
	if err != nil && !errors.Is(err, ErrMalformed) {
		return fail(wire.NotifyEncryptionFailed, err)
	} else if err != nil {
		return nil, err
	}
	it := wire.IterParams(plain)
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		switch p.Type() {
		case wire.ParamHostID:
			if hid == nil {
				hid = p.Contents()
			}
		case wire.ParamLocatorSet:
			if err := a.takeCandidates(p); err != nil {
				return nil, err
			}
		}
	}
	if hid == nil {
		return nil, fmt.Errorf("%w: I2 without HOST_ID", ErrMalformed)
	}
	pub, err := parseHostID(hid)
	if err != nil {
		return nil, err
	}
	if wire.HIT(pub.HIT()) != peer {
		return nil, fmt.Errorf("%w: I2 from %v", ErrHITMismatch, peer)
	}
	a.peerPub = pub

	// Step 13 and RFC 7402 §6.5: the transport format and one ESP
	// transform we offered.
	tP, ok := pkt.Param(wire.ParamTransportFormatList)
	if !ok {
		return nil, fmt.Errorf("%w: I2 without TRANSPORT_FORMAT_LIST", ErrMalformed)
	}
	tl, err := wire.ParseTransportFormatList(tP.Contents())
	if err != nil || !tl.IDs.Contains(wire.TransportFormatESP) {
		return fail(wire.NotifyNoESPProposalChosen, ErrNoTransportFormat)
	}
	etP, ok := pkt.Param(wire.ParamESPTransform)
	if !ok {
		return fail(wire.NotifyNoESPProposalChosen, ErrNoCommonESPSuite)
	}
	et, err := wire.ParseESPTransform(etP.Contents())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if et.Suites.Len() != 1 || !slices.Contains(e.cfg.ESPSuites, esp.Suite(et.Suites.At(0))) {
		return fail(wire.NotifyInvalidESPTransformChosen, ErrNoCommonESPSuite)
	}
	a.espSuite = esp.Suite(et.Suites.At(0))
	if a.natMode, err = e.checkNATMode(pkt); err != nil {
		return fail(wire.NotifyNoValidNATTraversalModeParameter, err)
	}

	// Steps 14-15: HIP_MAC with the Initiator's key, then its signature.
	if err := verifyMAC(e.rhash, a.peerMACKey(), pkt, wire.ParamHIPMAC, nil); err != nil {
		return nil, err
	}
	if err := verifySignature(pub, pkt, wire.ParamHIPSignature); err != nil {
		return nil, err
	}

	eiP, ok := pkt.Param(wire.ParamESPInfo)
	if !ok {
		return nil, fmt.Errorf("%w: I2 without ESP_INFO", ErrMalformed)
	}
	ei, err := wire.ParseESPInfo(eiP.Contents())
	if err != nil || ei.NewSPI == 0 || int(ei.KeymatIndex) < a.km.next {
		return nil, fmt.Errorf("%w: bad ESP_INFO in I2", ErrMalformed)
	}
	a.outSPI = ei.NewSPI
	if a.inSPI, err = e.allocSPI(); err != nil {
		return nil, err
	}
	in, out, err := a.espConfigs(int(ei.KeymatIndex))
	if err != nil {
		return nil, err
	}
	if err := a.drawICEKey(); err != nil {
		return nil, err
	}

	reg, err := e.decide(peer, pkt)
	if err != nil {
		return nil, err
	}
	r2, err := a.buildR2(uint16(ei.KeymatIndex), reg)
	if err != nil {
		return nil, err
	}
	a.lastI2 = sha256.Sum256(pkt)
	a.lastR2 = r2
	a.out = append(a.out, r2)
	a.setState(now, R2Sent)
	// §6.9 step 21: R2-SENT ends on data, an UPDATE, or this timer,
	// which outlasts the Initiator's I2 retransmissions.
	a.stateAt = now.Add(e.cfg.RetransmitTimeout * time.Duration(2*e.cfg.Retries))
	a.emit(Event{Kind: EventEstablished, Inbound: in, Outbound: out})
	if reg != nil {
		a.emit(Event{Kind: EventRegistration, Registration: reg})
	}
	return a, nil
}

// buildR2 builds the R2 (RFC 7401 §5.3.4, RFC 7402 §5.2.1.3).
func (a *Association) buildR2(index uint16, reg *Registration) ([]byte, error) {
	e := a.e
	var b wire.Builder
	b.Reset(make([]byte, 0, 256), wire.R2, e.hit, a.peer)
	b.Add(wire.ESPInfo{KeymatIndex: index, NewSPI: a.inSPI})
	plain, err := a.candidateTLV() // RFC 5770 §4.5 step 7
	if err != nil {
		return nil, err
	}
	if plain != nil {
		if err := a.addEncrypted(&b, plain); err != nil {
			return nil, err
		}
	}
	addRegAnswer(&b, reg) // RFC 8003 §3.3
	raw, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	// HIP_MAC_2 covers our HOST_ID as sent in R1 (§6.4.1).
	b.Add(wire.HIPMAC2{MAC: computeMAC(a.rhash, a.ourMACKey(), raw, len(raw), e.hostID)})
	return e.sign(&b)
}

// rejectError is an I2 rejection that comes with a NOTIFY to send back.
type rejectError struct {
	err    error
	notify []byte
}

func (r *rejectError) Error() string { return r.err.Error() }
func (r *rejectError) Unwrap() error { return r.err }
