package handshake

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"hipnet.dev/handshake/wire"
)

// Host mobility, RFC 8046: the UPDATEs that announce our locators and
// verify addresses. What a locator means — which address to send to, when
// it is verified — is the caller's (a locator module); this file only
// builds, authenticates and answers the packets.
//
//   - AnnounceLocators sends UPDATE(ESP_INFO, LOCATOR_SET, SEQ) (§5.2
//     case 1), reliable like any SEQ UPDATE; the peer reports it as
//     EventLocatorSet.
//   - AppendProbe builds UPDATE(ECHO_REQUEST_SIGNED) (§5.4) for the caller
//     to send to the address under test, and to retransmit itself; the
//     peer answers it in EventEchoRequest.Reply, to be sent back where the
//     probe came from, and we report the answer as EventEchoResponse.

// Answers to probes are rate-limited per association: a probe recorded
// once and replayed from anywhere passes HIP_MAC and would make us verify
// and sign for every copy (RFC 7401 §5.2.20 has every ECHO_REQUEST_SIGNED
// answered). A locator module probes a few addresses, each about once a
// retransmission timeout, which 10 a second with a burst of 5 leaves room
// for, while a replay costs at most 10 signatures a second. The price: a
// replay at more than that rate uses up the budget while it lasts, and the
// peer's own probes then get through only between its copies. SEQ-less
// answers to our probes, a signature check each, are limited the same way
// and separately, so that replayed answers cannot starve probes, nor
// replayed probes answers.
const (
	echoInterval = 100 * time.Millisecond // one token every echoInterval: 10/s
	echoBurst    = 5
)

// A probe's nonce: at least 32 bits, so that a stale answer seldom matches
// a new probe; at most 32 octets, which no nonce needs, so that probes and
// their answers stay small.
const (
	minProbeNonce = 4
	maxProbeNonce = 32
)

// AnnounceLocators tells the peer our locators (RFC 8046 §5.2 case 1): an
// UPDATE with SEQ, an ESP_INFO whose OLD SPI and NEW SPI are both our
// current inbound SPI (no rekey; it is there for HIP-aware middleboxes,
// §3.2.1), a LOCATOR_SET of locs, HIP_MAC and HIP_SIGNATURE (§4.3). A
// locator of type 1 with a zero SPI gets our inbound SPI ("the SPI MUST
// match that of the ESP_INFO"). The UPDATE is retransmitted until
// acknowledged, and the association closes if it never is (RFC 7401
// §6.11).
//
// Only one UPDATE of ours is outstanding at a time (§6.11), and a rekey
// changes the SPI the announcement names: while either is under way the
// set waits and goes as soon as they are over. A new set replaces one that
// waits, since it "replaces the locator information from any previously
// sent LOCATOR_SET" (RFC 8046 §5.2). An empty locs is valid and deprecates
// all our addresses (§4). Multicast and broadcast addresses are refused
// (§5.2: "MUST NOT").
func (a *Association) AnnounceLocators(now time.Time, locs []wire.Locator) error {
	if a.state != Established && a.state != R2Sent {
		return fmt.Errorf("%w: LOCATOR_SET in %v", ErrUnexpected, a.state)
	}
	if err := checkLocators(locs); err != nil {
		return err
	}
	u := a.upd.phase()
	u.locs, u.locsQueued = slices.Clone(locs), true
	err := a.flushLocators(now)
	a.updIdle(now)
	return err
}

// checkLocators refuses what AnnounceLocators must not send: what the
// LOCATOR_SET encoder refuses, and multicast or broadcast addresses.
func checkLocators(locs []wire.Locator) error {
	bcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	for i, l := range locs {
		if ad := l.Addr.Unmap(); ad.IsMulticast() || ad == bcast {
			return fmt.Errorf("handshake: locator %d: %v is multicast or broadcast (RFC 8046 §5.2)", i, l.Addr)
		}
	}
	var b wire.Builder
	b.Reset(nil, wire.UPDATE, wire.HIT{}, wire.HIT{})
	b.Add(wire.LocatorSet{Locators: locs})
	return b.Err()
}

// flushLocators sends the LOCATOR_SET that waits, once nothing of ours is
// outstanding and no rekey is under way. It runs after every UPDATE we
// receive, since only an UPDATE ends those.
func (a *Association) flushLocators(now time.Time) error {
	u := a.upd.ph
	if u == nil || !u.locsQueued || a.upd.outstanding || u.rekeying || (a.state != Established && a.state != R2Sent) {
		return nil
	}
	pkt, err := a.buildLocatorUpdate(u.locs)
	u.locs, u.locsQueued = nil, false // a set that cannot be built is dropped, not retried forever
	if err != nil {
		return err
	}
	a.send(now, pkt, true)
	return nil
}

// buildLocatorUpdate builds the announcement of locs with our next SEQ
// and marks it outstanding. The ESP_INFO keeps the KEYMAT index of the
// current keys: nothing is drawn.
func (a *Association) buildLocatorUpdate(locs []wire.Locator) ([]byte, error) {
	set := slices.Clone(locs)
	for i := range set {
		if set[i].Type == wire.LocatorTypeESP && set[i].SPI == 0 {
			set[i].SPI = a.inSPI
		}
	}
	var b wire.Builder
	b.Reset(make([]byte, 0, 512), wire.UPDATE, a.e.hit, a.peer)
	b.Add(wire.ESPInfo{KeymatIndex: uint16(a.espIndex), OldSPI: a.inSPI, NewSPI: a.inSPI})
	b.Add(wire.LocatorSet{Locators: set})
	b.Add(wire.Seq{UpdateID: a.upd.next})
	pkt, err := a.signAndMAC(&b, a.ourMACKey())
	if err != nil {
		return nil, err
	}
	a.seqSent()
	return pkt, nil
}

// AppendProbe appends to dst an address-verification probe (RFC 8046
// §5.4): an UPDATE with ECHO_REQUEST_SIGNED(nonce), HIP_MAC and
// HIP_SIGNATURE, and no SEQ. The caller sends it to the address to verify,
// retransmits it on its own schedule, and matches the nonce of the
// EventEchoResponse that answers it; the association keeps no record of
// it. The nonce must be 4 to 32 octets, and fresh for every address
// verification.
//
// A SEQ would make the probe reliable the wrong way: the association would
// retransmit it to the peer's current locator, not to the address under
// test, take the one outstanding-UPDATE slot (RFC 7401 §6.11) from
// announcements and rekeys, and close the association when an address
// that is merely unreachable never answers (§6.11 step 4). RFC 7401
// §5.3.5 calls an UPDATE with neither SEQ nor ACK invalid; see doc.go,
// "Deviations".
func (a *Association) AppendProbe(now time.Time, dst, nonce []byte) ([]byte, error) {
	if a.state != Established && a.state != R2Sent {
		return dst, fmt.Errorf("%w: probe in %v", ErrUnexpected, a.state)
	}
	if len(nonce) < minProbeNonce || len(nonce) > maxProbeNonce {
		return dst, fmt.Errorf("handshake: probe nonce of %d octets, want %d to %d", len(nonce), minProbeNonce, maxProbeNonce)
	}
	pkt, err := a.buildEcho(wire.ParamEchoRequestSigned, nonce)
	if err != nil {
		return dst, err
	}
	a.upd.echoes().probes.add(now, nonce)
	return append(dst, pkt...), nil
}

// maxSentProbes bounds the nonces of our probes kept for their answers:
// more than the caller keeps in flight (overlay: 12), the oldest
// forgotten first.
const maxSentProbes = 16

// probeKeep is how long a probe's nonce is kept for its answer: far more
// than a round trip, and than the caller waits (overlay: seconds).
const probeKeep = 30 * time.Second

// sentProbes are the nonces of our probes not yet answered. The answer to
// a probe is an UPDATE with no SEQ (RFC 8046 §5.4): its nonce is all that
// tells a fresh one from a replay. An answer whose nonce is none of these
// is dropped after its HIP_MAC, before it takes a token of the limit on
// echo UPDATEs or costs a signature check: a flood of one recorded answer
// then cannot use up the tokens the answers to our current probes need,
// and each probe's answer is taken once.
type sentProbes struct {
	nonce [maxSentProbes][maxProbeNonce]byte
	n     [maxSentProbes]uint8 // its length; 0: free
	next  int
	last  time.Time // when the last was sent: all are forgotten probeKeep later (updIdle)
}

func (p *sentProbes) add(now time.Time, nonce []byte) {
	i := p.next
	p.next = (p.next + 1) % maxSentProbes
	p.n[i] = uint8(copy(p.nonce[i][:], nonce))
	p.last = now
}

// find returns the index of nonce, or -1.
func (p *sentProbes) find(nonce []byte) int {
	if p == nil || len(nonce) == 0 {
		return -1
	}
	for i := range p.n {
		if int(p.n[i]) == len(nonce) && string(p.nonce[i][:p.n[i]]) == string(nonce) {
			return i
		}
	}
	return -1
}

// none reports whether no probe waits at now: none was sent, each was
// answered, or the last went out probeKeep ago (its answer was lost).
func (p *sentProbes) none(now time.Time) bool {
	return p.n == [maxSentProbes]uint8{} || !now.Before(p.last.Add(probeKeep))
}

// take forgets nonce, and reports whether it was one of ours.
func (p *sentProbes) take(nonce []byte) bool {
	i := p.find(nonce)
	if i >= 0 {
		p.n[i] = 0
	}
	return i >= 0
}

// buildEcho builds a SEQ-less UPDATE with one echo parameter of type typ.
func (a *Association) buildEcho(typ wire.ParamType, opaque []byte) ([]byte, error) {
	var b wire.Builder
	b.Reset(make([]byte, 0, 256), wire.UPDATE, a.e.hit, a.peer)
	b.Add(wire.Echo{Type: typ, Opaque: opaque})
	return a.signAndMAC(&b, a.ourMACKey())
}

// addEchoResponse adds the ECHO_RESPONSE_SIGNED of echo to a packet under
// construction, if echo is not nil (RFC 7401 §5.2.22: the opaque data is
// copied unmodified).
func addEchoResponse(b *wire.Builder, echo []byte) {
	if echo != nil {
		b.Add(wire.Echo{Type: wire.ParamEchoResponseSigned, Opaque: echo})
	}
}

// handleEchoUpdate processes an UPDATE with neither SEQ nor ACK: a probe
// or the answer to one of ours. HIP_MAC first, so that only the peer's
// packets and replays of them take a token; an answer alone only if it
// answers a probe of ours still waiting (sentProbes); the token before the
// signature, so that the limit bounds the public-key work a replay causes.
func (a *Association) handleEchoUpdate(now time.Time, m updateMsg) error {
	if len(a.hipMAC) == 0 || a.peerPub == nil {
		return fmt.Errorf("%w: UPDATE without keys", ErrUnexpected)
	}
	if err := verifyMAC(a.rhash, a.peerMACKey(), m.pkt, wire.ParamHIPMAC, nil); err != nil {
		return err
	}
	if m.echoReq == nil && a.upd.probes().find(m.echoResp) < 0 {
		return fmt.Errorf("%w: answer to no probe of ours", ErrReplay)
	}
	l := a.upd.echoes()
	lim := &l.echoesIn
	if m.echoReq != nil {
		lim = &l.probesIn
	}
	if !lim.allow(now, echoInterval, echoBurst) {
		return fmt.Errorf("%w: SEQ-less echo UPDATE rate-limited", ErrReplay)
	}
	if err := verifySignature(a.peerPub, m.pkt, wire.ParamHIPSignature); err != nil {
		return err
	}
	a.DataReceived(now) // an UPDATE ends R2-SENT (§4.4.3 Table 5)
	if a.upd.probes().take(m.echoResp) {
		a.reportEchoResponse(m.echoResp)
	}
	if m.echoReq != nil {
		return a.answerProbe(m.echoReq)
	}
	return nil
}

// ackEchoes handles the echo parameters of an ACK-only UPDATE, whose
// HIP_MAC and signature have verified: an answer is reported, a request
// answered as a probe is, under the same limit. A refused answer leaves the
// rest of the UPDATE processed.
func (a *Association) ackEchoes(now time.Time, m updateMsg) error {
	a.upd.probes().take(m.echoResp) // answered: SEQ and ACK keep its replays out
	a.reportEchoResponse(m.echoResp)
	if m.echoReq == nil || !a.upd.echoes().probesIn.allow(now, echoInterval, echoBurst) {
		return nil
	}
	return a.answerProbe(m.echoReq)
}

// answerProbe reports the signed answer to a probe for the caller to send
// back to the address the probe came from: that is the address being
// verified, which is why the answer does not go to Outgoing (the peer's
// current locator).
func (a *Association) answerProbe(echo []byte) error {
	reply, err := a.buildEcho(wire.ParamEchoResponseSigned, echo)
	if err != nil {
		return err
	}
	a.emit(Event{Kind: EventEchoRequest, Reply: reply})
	return nil
}

// reportEchoResponse reports an ECHO_RESPONSE_SIGNED, if echo is not nil.
func (a *Association) reportEchoResponse(echo []byte) {
	if echo != nil {
		a.emit(Event{Kind: EventEchoResponse, Echo: bytes.Clone(echo)})
	}
}

// reportMobility reports the LOCATOR_SET and ECHO_RESPONSE_SIGNED of a new
// SEQ (its ECHO_REQUEST_SIGNED is answered in the ACK). The SEQ window
// has already made sure that each SEQ gets here once.
func (a *Association) reportMobility(m updateMsg, locs []byte) {
	if locs != nil {
		a.emit(Event{Kind: EventLocatorSet, LocatorSet: locs})
	}
	a.reportEchoResponse(m.echoResp)
}

// seqLocatorSet returns a copy of a SEQ's LOCATOR_SET contents, nil if it
// has none, after checking that they parse.
func seqLocatorSet(pkt wire.Packet) ([]byte, error) {
	p, ok := pkt.Param(wire.ParamLocatorSet)
	if !ok {
		return nil, nil
	}
	if _, err := wire.ParseLocatorSet(p.Contents()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return bytes.Clone(p.Contents()), nil // not nil when empty: an empty set is an announcement
}

// onceInUpdate are the parameters an UPDATE may hold once: one ESP_INFO
// and one LOCATOR_SET (RFC 8046 §4.3: "procedures are defined only for the
// case in which one LOCATOR_SET and one ESP_INFO parameter are used"), one
// ECHO_REQUEST_SIGNED (RFC 7401 §5.2.20), and so one answer to it.
var onceInUpdate = [...]wire.ParamType{wire.ParamESPInfo, wire.ParamLocatorSet,
	wire.ParamEchoRequestSigned, wire.ParamEchoResponseSigned}

// checkOnce drops an UPDATE that repeats a parameter of onceInUpdate.
func checkOnce(pkt wire.Packet) error {
	var seen [len(onceInUpdate)]bool
	it := pkt.Params()
	for p, ok := it.Next(); ok; p, ok = it.Next() {
		if i := slices.Index(onceInUpdate[:], p.Type()); i >= 0 {
			if seen[i] {
				return fmt.Errorf("%w: more than one %v in UPDATE", ErrMalformed, p.Type())
			}
			seen[i] = true
		}
	}
	return nil
}

// checkSeqless applies the rules for an UPDATE without SEQ. A LOCATOR_SET
// needs one: every announcement of RFC 8046 §5.2 "contains a SEQ
// parameter as usual", so that the sender learns it arrived. Without SEQ
// and ACK (RFC 7401 §5.3.5 has no such UPDATE) only a probe or its answer
// is taken, and it carries nothing else that asks for processing.
func checkSeqless(m updateMsg) error {
	if m.seq != nil {
		return nil
	}
	if _, ok := m.pkt.Param(wire.ParamLocatorSet); ok {
		return fmt.Errorf("%w: LOCATOR_SET in an UPDATE without SEQ", ErrMalformed)
	}
	if m.hasAck {
		return nil
	}
	if m.echoReq == nil && m.echoResp == nil {
		return fmt.Errorf("%w: UPDATE without SEQ, ACK or echo", ErrMalformed)
	}
	for _, t := range []wire.ParamType{wire.ParamESPInfo, wire.ParamDiffieHellman} {
		if _, ok := m.pkt.Param(t); ok {
			return fmt.Errorf("%w: %v in an UPDATE without SEQ or ACK", ErrMalformed, t)
		}
	}
	return nil
}

// rateLimit is a token bucket, kept as the time at which it is full again
// (the generic cell rate algorithm): each event allowed moves that time one
// interval on, and an event is refused when it would move it more than
// burst intervals past now. The zero value is a full bucket.
type rateLimit struct{ full time.Time }

func (r *rateLimit) allow(now time.Time, every time.Duration, burst int) bool {
	full := r.full
	if full.Before(now) {
		full = now
	}
	if full.Add(every).Sub(now) > time.Duration(burst)*every {
		return false
	}
	r.full = full.Add(every)
	return true
}
