package handshake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Endpoint is one host's side of HIP: its identity, its pre-computed R1
// packets and the rules for packets that arrive before an association
// exists (I1, I2). It is sans-I/O: the caller passes packets and the time
// in, and sends what comes out. It is not safe for concurrent use.
type Endpoint struct {
	cfg    Config
	id     *hostid.PrivateKey
	pub    *hostid.PublicKey
	hit    wire.HIT
	rhash  func() hash.Hash // RHASH when we are the Responder (§2.3)
	hostID []byte           // our HOST_ID TLV, as sent in R1 and used for HIP_MAC_2

	cur     *r1Gen
	prevs   []*r1Gen // earlier generations still accepted, newest first
	counter uint64   // R1 generation counter (§5.2.3)
	k       uint8    // puzzle difficulty for the next generation
	baseK   uint8    // the #K the load returns to: Config's, or SetPuzzleDifficulty's
	load    loadMeter

	stats Stats
}

// Stats counts what an Endpoint did with the packets it was given.
type Stats struct {
	I1Answered  uint64 // R1s sent
	I2Accepted  uint64 // associations created as Responder
	Dropped     uint64 // packets dropped, for any reason
	R1Rotations uint64
	// DifficultyChanges counts changes of #K by the load (load.go).
	DifficultyChanges uint64
	// Replays counts I2s dropped because their puzzle solution was spent
	// (solutions.go).
	Replays uint64
}

// r1Gen is one R1 generation: a puzzle secret, a difficulty, and one
// signed R1 per DH group, each with its ephemeral key.
type r1Gen struct {
	counter uint64
	k       uint8
	secret  []byte // HMAC key from which #I is derived per Initiator
	expires time.Time
	r1s     []*r1Packet // in our DH preference order
	sols    solutionSet // solutions seen in I2s (solutions.go)
	full    bool        // sols is full: rotate at once (Endpoint.spend)
}

// maxPrevGens bounds the earlier generations kept: normally one (rotated
// every R1Lifetime), two while the load changes #K faster than that. More
// would keep cheap puzzles of the time before the load acceptable for
// longer: an attacker solves fresh ones from old R1s while #K climbs.
// Two keep an honest exchange whose R1 arrived up to two load windows
// (500 ms) before its I2.
const maxPrevGens = 2

type r1Packet struct {
	dh        dhKey
	pkt       []byte // signed, with zero Initiator HIT, #I and Opaque
	puzzleOff int    // offset of the PUZZLE contents
}

// NewEndpoint checks cfg and pre-computes the first R1 generation.
func NewEndpoint(cfg Config, now time.Time) (*Endpoint, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Endpoint{cfg: c, id: c.Identity, pub: c.Identity.Public(), k: c.PuzzleDifficulty, baseK: c.PuzzleDifficulty}
	e.hit = wire.HIT(e.pub.HIT())
	e.rhash = e.pub.Suite().NewHash
	var b wire.Builder
	b.Reset(nil, wire.R1, e.hit, wire.HIT{})
	b.Add(wire.HostID{Algorithm: uint16(e.pub.Algorithm()), HI: e.pub.HI()})
	raw, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	e.hostID = append([]byte(nil), raw[wire.HeaderLen:]...)
	if err := e.Rotate(now); err != nil {
		return nil, err
	}
	return e, nil
}

// HIT returns the host's HIT.
func (e *Endpoint) HIT() wire.HIT { return e.hit }

// Identity returns the host's public identity.
func (e *Endpoint) Identity() *hostid.PublicKey { return e.pub }

// Stats returns the counters.
func (e *Endpoint) Stats() Stats { return e.stats }

// SetPuzzleDifficulty sets the base #K for R1s from now on (RFC 7401
// §4.1.1). It takes effect at once: the current R1 generation is
// re-signed. The load (load.go) raises #K above it and brings it back.
func (e *Endpoint) SetPuzzleDifficulty(now time.Time, k uint8) error {
	k = min(k, maxPuzzleK)
	e.baseK = k // the load raises #K from here, and comes back to it
	return e.setPuzzleDifficulty(now, k)
}

// setPuzzleDifficulty sets #K and re-signs the current R1 generation.
func (e *Endpoint) setPuzzleDifficulty(now time.Time, k uint8) error {
	e.k = min(k, maxPuzzleK)
	return e.Rotate(now)
}

// PuzzleDifficulty returns the current #K.
func (e *Endpoint) PuzzleDifficulty() uint8 { return e.k }

// NextRotation is when the current R1 generation expires; the caller
// calls Rotate then, off the packet path, so that answering an I1 never
// costs a public-key operation.
func (e *Endpoint) NextRotation() time.Time {
	if e.cur.full {
		return time.Time{}
	}
	return e.cur.expires
}

// Rotate starts a new R1 generation: fresh DH keys, puzzle secret and
// R1_COUNTER, signed R1s. Earlier generations stay acceptable for I2s as
// maxPrevGens says.
func (e *Endpoint) Rotate(now time.Time) error {
	g := &r1Gen{counter: e.counter + 1, k: e.k, expires: now.Add(e.cfg.R1Lifetime), sols: solutionSet{}}
	g.secret = make([]byte, e.rhash().Size())
	if _, err := io.ReadFull(e.cfg.Rand, g.secret); err != nil {
		return err
	}
	// Only the most preferred group's R1 is signed now; the others are
	// built the first time an I1 asks for them in this generation, so a
	// node that never meets a MODP-only peer never pays for a MODP key.
	g.r1s = make([]*r1Packet, len(e.cfg.DHGroups))
	r, err := e.buildR1(g, e.cfg.DHGroups[0])
	if err != nil {
		return err
	}
	g.r1s[0] = r
	e.counter = g.counter
	if e.cur != nil {
		e.prevs = append([]*r1Gen{e.cur}, e.prevs...)
	}
	e.cur = g
	// An earlier generation is accepted for one R1Lifetime after it
	// expired (§6.7.1 "Delta S"): with rotations every R1Lifetime that is
	// the previous one only; when the load changes #K faster, the few
	// generations of the last lifetime, so that exchanges in flight are not
	// lost.
	kept := e.prevs[:0]
	for _, p := range e.prevs {
		if len(kept) < maxPrevGens && now.Before(p.expires.Add(e.cfg.R1Lifetime)) {
			kept = append(kept, p)
		}
	}
	clear(e.prevs[len(kept):])
	e.prevs = kept
	e.stats.R1Rotations++
	return nil
}

// puzzleLifetimeFor is the Lifetime we announce: an I2 is accepted while
// its generation is current or previous, so at least one R1Lifetime.
func (e *Endpoint) puzzleLifetimeCode() uint8 { return puzzleLifetimeCode(e.cfg.R1Lifetime) }

// buildR1 signs the R1 of one generation and DH group (RFC 7401 §5.3.2,
// RFC 7402 §5.2.1.1), in ascending parameter order.
func (e *Endpoint) buildR1(g *r1Gen, gid uint8) (*r1Packet, error) {
	key, err := lookupGroup(gid).generate(e.cfg.Rand)
	if err != nil {
		return nil, err
	}
	rlen := e.rhash().Size()
	var b wire.Builder
	b.Reset(make([]byte, 0, 1024), wire.R1, e.hit, wire.HIT{})
	b.Add(wire.R1Counter{Counter: g.counter})
	b.Add(wire.Puzzle{K: g.k, Lifetime: e.puzzleLifetimeCode(), I: make([]byte, rlen)})
	puzzleOff := b.Len() - wire.TLVLen(4+rlen) + 4
	// DH_GROUP_LIST is our true preference, signed, whatever group this
	// R1 carries: the Initiator checks that we chose the first of it that
	// its I1 offered, which is how it detects an I1 whose list was
	// trimmed on the way (§5.2.6, §4.1.7).
	b.Add(wire.DHGroupList{Groups: e.cfg.DHGroups})
	b.Add(wire.DiffieHellman{Group: gid, Public: key.public()})
	b.Add(wire.HIPCipher{IDs: wire.MakeU16List(e.cfg.HIPCiphers...)})
	if len(e.cfg.NATModes) > 0 {
		b.Add(wire.MakeNATTraversalMode(e.cfg.NATModes...)) // RFC 5770 §4.3
	}
	if slices.Contains(e.cfg.NATModes, wire.NATModeICESTUNUDP) {
		b.Add(e.pacing(0)) // RFC 5770 §4.4
	}
	b.AddRaw(wire.ParamHostID, hostIDContents(e.hostID))
	suites := make([]byte, 0, len(e.cfg.HITSuites))
	for _, s := range e.cfg.HITSuites {
		suites = append(suites, s.ListID())
	}
	b.Add(wire.HITSuiteList{IDs: suites})
	if r := e.cfg.Registrar; r != nil {
		b.Add(r.Info) // RFC 8003 §3.1
	}
	b.Add(wire.TransportFormatList{IDs: wire.MakeU16List(wire.TransportFormatESP)})
	b.Add(wire.ESPTransform{Suites: wire.MakeU16List(espSuiteIDs(e.cfg.ESPSuites)...)})
	// §5.2.15: the Initiator's HIT, #I and Opaque are still zero here.
	if err := e.addSignature(&b, wire.ParamHIPSignature2); err != nil {
		return nil, err
	}
	raw, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	return &r1Packet{dh: key, pkt: raw, puzzleOff: puzzleOff}, nil
}

// puzzleI derives the #I we give the Initiator hitI in generation g:
// HMAC(secret, HIT-I | HIT-R), so that an I2 can be checked against it
// without per-I1 state (RFC 7401 §4.1.1, Appendix A).
func (e *Endpoint) puzzleI(g *r1Gen, hitI wire.HIT) []byte {
	return macOf(e.rhash, g.secret, hitI[:], e.hit[:])
}

// spend records an accepted solution, so that a copy of its I2 is dropped
// as a replay for as long as the generation accepts I2s. A generation whose
// record is full is rotated at once, which bounds the records at
// 1+maxPrevGens full generations.
func (e *Endpoint) spend(g *r1Gen, k solutionKey) {
	g.sols[k] = solutionSpent
	e.checkFull(g)
}

// checkFull marks the current generation for rotation once its record is
// full (NextRotation returns the zero time, so the caller rotates now).
func (e *Endpoint) checkFull(g *r1Gen) {
	if len(g.sols) >= maxSolutions && g == e.cur {
		g.full = true
	}
}

// Result is what Handle did with a packet.
type Result struct {
	// Assoc is the association the packet belongs to: the one passed in,
	// or a new one created by a valid I2. Its outgoing packets and events
	// are drained with Association.Outgoing and Association.Events.
	Assoc *Association
	// Reply is a stateless answer to send back to the packet's source:
	// an R1 for an I1, or a NOTIFY for an I2 rejected after its puzzle
	// was verified (RFC 7401 §6.9.1).
	Reply []byte
	// Repeat reports a packet that repeats one already processed and was
	// answered again: an UPDATE whose SEQ was acknowledged (§6.12.1 step
	// 2), a CLOSE in CLOSED (Table 8). Its HIP_MAC is the peer's, but a
	// recording can be replayed from anywhere: it says nothing of the
	// path it came by.
	Repeat bool
}

// Handle processes one HIP control packet (without the UDP zero marker).
// a is the caller's association with the sender's HIT, or nil. A packet
// that fails a check is dropped: the error says why, and no state changes.
func (e *Endpoint) Handle(now time.Time, b []byte, a *Association) (Result, error) {
	res, err := e.handle(now, b, a)
	if err != nil {
		e.stats.Dropped++
		if errors.Is(err, ErrReplay) {
			e.stats.Replays++
		}
	}
	return res, err
}

func (e *Endpoint) handle(now time.Time, b []byte, a *Association) (Result, error) {
	pkt, err := wire.ParsePacket(b)
	if err != nil {
		return Result{Assoc: a}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	rcv := pkt.ReceiverHIT()
	if rcv != e.hit && !(rcv.IsZero() && pkt.Type() == wire.I1) {
		return Result{Assoc: a}, ErrNotForUs
	}
	if a != nil && a.peer != pkt.SenderHIT() && !(a.opportunistic() && pkt.Type() == wire.R1) {
		// An opportunistic association (§4.1.8) learns its peer from the
		// R1, and takes nothing else before it does.
		return Result{Assoc: a}, fmt.Errorf("%w: association is for another peer", ErrUnexpected)
	}
	switch pkt.Type() {
	case wire.I1:
		return e.handleI1(now, pkt, a)
	case wire.I2:
		return e.handleI2(now, pkt, a)
	}
	if a == nil {
		return Result{}, fmt.Errorf("%w: %v without association", ErrUnexpected, pkt.Type())
	}
	err = a.handle(now, pkt)
	res := Result{Assoc: a, Repeat: a.repeat}
	a.repeat = false
	return res, err
}

// handleI1 answers with a pre-computed R1 (RFC 7401 §6.7): no state, no
// public-key operation.
func (e *Endpoint) handleI1(now time.Time, pkt wire.Packet, a *Association) (Result, error) {
	res := Result{Assoc: a}
	peer := pkt.SenderHIT()
	if !peer.IsORCHIDv2() {
		return res, fmt.Errorf("%w: sender HIT %v is not an ORCHIDv2", ErrMalformed, peer)
	}
	if a != nil && a.state == I1Sent && peer.Compare(e.hit) > 0 {
		// Simultaneous initiation: the larger HIT answers (§6.7 step 3).
		return res, fmt.Errorf("%w: simultaneous I1, the peer's larger HIT responds", ErrUnexpected)
	}
	var groups []byte
	if p, ok := pkt.Param(wire.ParamDHGroupList); ok {
		l, err := wire.ParseDHGroupList(p.Contents())
		if err != nil {
			return res, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		groups = l.Groups
	}
	if err := checkCritical(pkt, wire.ParamDHGroupList); err != nil {
		return res, err
	}
	res.Reply = e.r1For(now, peer, groups)
	e.stats.I1Answered++
	return res, nil
}

// r1For fills in the current R1 for the Initiator: our most preferred
// group that the I1 lists, or our first choice (§6.7 step 4).
func (e *Endpoint) r1For(now time.Time, peer wire.HIT, groups []byte) []byte {
	g := e.cur
	r := g.r1s[0]
pick:
	for i, gid := range e.cfg.DHGroups {
		for _, x := range groups {
			if x != gid {
				continue
			}
			if g.r1s[i] == nil {
				if built, err := e.buildR1(g, gid); err == nil {
					g.r1s[i] = built
				}
			}
			if g.r1s[i] != nil {
				r = g.r1s[i]
			}
			break pick
		}
	}
	out := append(make([]byte, 0, len(r.pkt)), r.pkt...)
	copy(out[24:40], peer[:])
	binary.BigEndian.PutUint16(out[r.puzzleOff+2:], uint16(g.counter))
	copy(out[r.puzzleOff+4:], e.puzzleI(g, peer))
	return out
}

// checkCritical rejects packets with critical parameters we do not
// process (RFC 7401 §5.2.1: a critical parameter that is not recognized
// MUST cause the packet to be rejected).
func checkCritical(pkt wire.Packet, known ...wire.ParamType) error {
	it := pkt.Params()
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		t := p.Type()
		if !t.Critical() {
			continue
		}
		found := false
		for _, k := range known {
			if k == t {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%w: %v in %v", ErrUnsupportedCritical, t, pkt.Type())
		}
	}
	return nil
}
