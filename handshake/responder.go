package handshake

import (
	"crypto/hmac"
	"crypto/sha256"
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
					a.queue(a.bex.lastR2)
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
	e.stats.I2Accepted++
	if a != nil {
		// §6.9 step 20: the old association is replaced by the new one;
		// callers keep their pointer. A replayed I2 never gets here: its
		// solution is spent (solutions.go).
		*a = *n
		return Result{Assoc: a}, nil
	}
	return Result{Assoc: n}, nil
}

// i2Check carries one I2 through the steps of RFC 7401 §6.9. Each step is
// a method named for what it checks; a step that fails drops the packet.
type i2Check struct {
	now  time.Time
	pkt  wire.Packet
	peer wire.HIT
	g    *r1Gen
	sol  wire.Solution
	key  solutionKey
	a    *Association
	ei   wire.ESPInfo
}

// acceptI2 runs the checks of §6.9, cheapest first, and builds the
// association. Unlike the RFC's order, HIP_MAC (step 14) is verified
// before ENCRYPTED is decrypted (step 11), and nothing is answered before
// HIP_SIGNATURE (step 15) has verified: see doc.go, "Deviations".
func (e *Endpoint) acceptI2(now time.Time, pkt wire.Packet) (*Association, error) {
	c := &i2Check{now: now, pkt: pkt, peer: pkt.SenderHIT()}
	// Silent steps: whatever fails here gets no answer, so that a probe
	// learns nothing from the reply (no oracle) and costs us no signature.
	for _, step := range []func(*i2Check) error{e.i2Puzzle, e.i2Keys, e.i2MAC, e.i2Identity} {
		if err := step(c); err != nil {
			return nil, err
		}
	}
	// The Initiator is authenticated and its solution is spent: a copy of
	// this I2 is a replay from now on, whatever we decide below.
	e.spend(c.g, c.key)
	if err := e.i2Negotiate(c); err != nil {
		return nil, err
	}
	return e.i2Establish(c)
}

// i2Puzzle is §6.9 steps 6-8: known critical parameters, an R1 generation
// we still accept, our #I and #K, a solution not spent yet, and a #J that
// solves the puzzle. No public-key work has been done when it returns.
func (e *Endpoint) i2Puzzle(c *i2Check) error {
	if err := checkCritical(c.pkt, wire.ParamESPInfo, wire.ParamR1Counter, wire.ParamSolution,
		wire.ParamDiffieHellman, wire.ParamHIPCipher, wire.ParamEncrypted, wire.ParamHostID,
		wire.ParamEchoResponseSigned, wire.ParamTransportFormatList, wire.ParamESPTransform,
		wire.ParamHIPMAC, wire.ParamHIPSignature, wire.ParamEchoResponseUnsigned); err != nil {
		return err
	}
	solP, ok := c.pkt.Param(wire.ParamSolution)
	if !ok {
		return fmt.Errorf("%w: I2 without SOLUTION", ErrMalformed)
	}
	sol, err := wire.ParseSolution(solP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	g, err := e.generationFor(c.pkt, sol)
	if err != nil {
		return err
	}
	if sol.K != g.k || !hmac.Equal(sol.I, e.puzzleI(g, c.peer)) {
		return fmt.Errorf("%w: #I or #K is not the one we sent", ErrBadPuzzle)
	}
	c.key = makeSolutionKey(c.peer, sol.J)
	if err := g.sols.usable(c.key); err != nil {
		e.checkFull(g)
		return err
	}
	if !verifyPuzzle(e.rhash, sol.I, c.peer, e.hit, sol.J, int(g.k)) {
		return fmt.Errorf("%w: #J does not solve #I", ErrBadPuzzle)
	}
	c.g, c.sol = g, sol
	return nil
}

// i2Keys is §6.9 steps 9-10: the one HIP_CIPHER, Diffie-Hellman with the
// generation's key for the chosen group, KEYMAT and the HIP keys. A cipher
// we did not offer is dropped without NOTIFY: the HIP keys depend on it,
// so HIP_MAC could not be checked first.
func (e *Endpoint) i2Keys(c *i2Check) error {
	// Charged before the work, whatever fails after: a solution buys at
	// most maxSolutionFailures Diffie-Hellman computations however its
	// I2 fails (an accepted one is then spent, acceptI2).
	c.g.sols.failed(c.key)
	cP, ok := c.pkt.Param(wire.ParamHIPCipher)
	if !ok {
		return fmt.Errorf("%w: I2 without HIP_CIPHER", ErrMalformed)
	}
	cl, err := wire.ParseHIPCipher(cP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if cl.IDs.Len() != 1 || !slices.Contains(e.cfg.HIPCiphers, cl.IDs.At(0)) {
		return ErrNoCommonCipher
	}
	dhP, ok := c.pkt.Param(wire.ParamDiffieHellman)
	if !ok {
		return fmt.Errorf("%w: I2 without DIFFIE_HELLMAN", ErrMalformed)
	}
	dh, err := wire.ParseDiffieHellman(dhP.Contents())
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	var r1 *r1Packet
	for _, r := range c.g.r1s {
		if r != nil && r.dh.group() == dh.Group {
			r1 = r
		}
	}
	if r1 == nil {
		return fmt.Errorf("%w: I2 uses group %d", ErrNoCommonDHGroup, dh.Group)
	}
	if e.cfg.LoadThreshold > 0 {
		e.load.note(c.now, dh.Group) // a solved puzzle buys one Diffie-Hellman, weighed
	}
	kij, err := r1.dh.shared(dh.Public)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	a := newAssociation(e, c.peer, c.now)
	a.bex = &bexState{}
	a.rhash = e.rhash
	a.cipherID = cl.IDs.At(0)
	a.dh = r1.dh
	a.peerDH = append([]byte(nil), dh.Public...)
	if a.km, err = newKeymat(e.rhash, kij, c.sol.I, c.sol.J, c.peer, e.hit); err != nil {
		return err
	}
	encLen, _ := cipherKeyLen(a.cipherID)
	hk, err := a.km.drawHIPKeys(encLen, e.rhash().Size())
	if err != nil {
		return err
	}
	a.hipMAC, a.bex.hipEnc = hk.mac, hk.enc
	c.a = a
	return nil
}

// i2MAC is §6.9 step 14, taken before ENCRYPTED is opened: HIP_MAC covers
// the ciphertext, so a tampered ENCRYPTED is dropped before any
// decryption and its padding can never be probed (doc.go, "Deviations").
func (e *Endpoint) i2MAC(c *i2Check) error {
	return verifyMAC(e.rhash, c.a.peerMACKey(), c.pkt, wire.ParamHIPMAC, nil)
}

// i2Identity is §6.9 steps 11-12 and 15: the Initiator's HOST_ID, in the
// clear or inside ENCRYPTED, must hash to its HIT and HIP_SIGNATURE must
// verify with it. ENCRYPTED may also carry ICE candidates (nat.go).
func (e *Endpoint) i2Identity(c *i2Check) error {
	a := c.a
	var hid []byte
	if p, ok := c.pkt.Param(wire.ParamHostID); ok {
		hid = p.Contents()
	}
	plain, err := a.openEncrypted(c.pkt)
	if err != nil {
		return err
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
				return err
			}
		}
	}
	if hid == nil {
		return fmt.Errorf("%w: I2 without HOST_ID", ErrMalformed)
	}
	pub, err := parseHostID(hid)
	if err != nil {
		return err
	}
	if wire.HIT(pub.HIT()) != c.peer {
		return fmt.Errorf("%w: I2 from %v", ErrHITMismatch, c.peer)
	}
	if err := verifySignature(pub, c.pkt, wire.ParamHIPSignature); err != nil {
		return err
	}
	a.peerPub = pub
	eiP, ok := c.pkt.Param(wire.ParamESPInfo)
	if !ok {
		return fmt.Errorf("%w: I2 without ESP_INFO", ErrMalformed)
	}
	ei, err := wire.ParseESPInfo(eiP.Contents())
	if err != nil || ei.NewSPI == 0 || int(ei.KeymatIndex) < a.km.next {
		return fmt.Errorf("%w: bad ESP_INFO in I2", ErrMalformed)
	}
	c.ei = ei
	return nil
}

// i2Negotiate is §6.9 step 13 with RFC 7402 §6.5 and RFC 5770 §4.5: the
// transport format, one ESP transform we offered and the NAT traversal
// mode. The Initiator is authenticated by now, so a refusal is worth a
// signed NOTIFY (§6.9.1), bound to this I2 (bindNotify).
func (e *Endpoint) i2Negotiate(c *i2Check) error {
	a := c.a
	fail := func(t wire.NotifyType, err error) error {
		n, _ := e.buildNotify(c.peer, t, c.sol.J)
		return &rejectError{err: err, notify: n}
	}
	tP, ok := c.pkt.Param(wire.ParamTransportFormatList)
	if !ok {
		return fail(wire.NotifyNoESPProposalChosen, ErrNoTransportFormat)
	}
	tl, err := wire.ParseTransportFormatList(tP.Contents())
	if err != nil || !tl.IDs.Contains(wire.TransportFormatESP) {
		return fail(wire.NotifyNoESPProposalChosen, ErrNoTransportFormat)
	}
	etP, ok := c.pkt.Param(wire.ParamESPTransform)
	if !ok {
		return fail(wire.NotifyNoESPProposalChosen, ErrNoCommonESPSuite)
	}
	et, err := wire.ParseESPTransform(etP.Contents())
	if err != nil {
		return fail(wire.NotifyInvalidSyntax, fmt.Errorf("%w: %w", ErrMalformed, err))
	}
	if et.Suites.Len() != 1 || !slices.Contains(e.cfg.ESPSuites, esp.Suite(et.Suites.At(0))) {
		return fail(wire.NotifyInvalidESPTransformChosen, ErrNoCommonESPSuite)
	}
	a.espSuite = esp.Suite(et.Suites.At(0))
	if a.natMode, err = e.checkNATMode(c.pkt); err != nil {
		return fail(wire.NotifyNoValidNATTraversalModeParameter, err)
	}
	if a.natMode == wire.NATModeICESTUNUDP {
		a.setTa(e.pacing(peerTa(c.pkt)).Duration())
	}
	return nil
}

// i2Establish is §6.9 steps 16-21: SPIs, ESP keys, the registration
// decision, the R2, and R2-SENT.
func (e *Endpoint) i2Establish(c *i2Check) (*Association, error) {
	a, now := c.a, c.now
	a.outSPI = c.ei.NewSPI
	var err error
	if a.inSPI, err = e.allocSPI(); err != nil {
		return nil, err
	}
	in, out, err := a.espConfigs(int(c.ei.KeymatIndex))
	if err != nil {
		return nil, err
	}
	if err := a.drawICEKey(); err != nil {
		return nil, err
	}
	reg, err := e.decide(c.peer, c.pkt)
	if err != nil {
		return nil, err
	}
	r2, err := a.buildR2(uint16(c.ei.KeymatIndex), reg)
	if err != nil {
		return nil, err
	}
	a.lastI2 = sha256.Sum256(c.pkt)
	a.bex.lastR2 = r2
	a.queue(r2)
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

// generationFor finds the R1 generation an I2 answers: by its echoed
// R1_COUNTER, or by trying the current and previous #I.
func (e *Endpoint) generationFor(pkt wire.Packet, sol wire.Solution) (*r1Gen, error) {
	if p, ok := pkt.Param(wire.ParamR1Counter); ok {
		c, err := wire.ParseR1Counter(p.Contents())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if g := e.generation(func(g *r1Gen) bool { return g.counter == c.Counter }); g != nil {
			return g, nil
		}
		// §6.9 step 7: outside the accepted range.
		return nil, fmt.Errorf("%w: R1 generation %d (current %d)", ErrPuzzleExpired, c.Counter, e.counter)
	}
	if g := e.generation(func(g *r1Gen) bool { return hmac.Equal(sol.I, e.puzzleI(g, pkt.SenderHIT())) }); g != nil {
		return g, nil
	}
	return nil, fmt.Errorf("%w: #I matches no current R1", ErrPuzzleExpired)
}

// generation returns the newest accepted generation that match reports.
func (e *Endpoint) generation(match func(*r1Gen) bool) *r1Gen {
	if match(e.cur) {
		return e.cur
	}
	for _, g := range e.prevs {
		if match(g) {
			return g
		}
	}
	return nil
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
