package hipnet

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/mitm"
)

// End-to-end attacks between real nodes on loopback, through the man in
// the middle of internal/mitm: the threat model of DESIGN.md, one rule per
// test. Each asserts what the node must do, not what it does today.

// TestAttackI2ReplayAfterClose: an I2 recorded from a base exchange that
// has since been closed is replayed to the Responder, from the
// Initiator's address (the proxy) and from a third address, first while
// the Responder still lingers in CLOSED and again after it forgot the
// association. A replayed base-exchange packet must never recreate an
// association (RFC 7401 §4.1.7: a replayed I2 "cannot be used to
// successfully establish a HIP BEX"; §6.9): no R2, no association with
// keys, and above all no ESP, which would be sealed under the old
// association's keys — the same KEYMAT, since the I2 fixes both DH halves
// and #I/#J — with its sequence numbers starting over: a key and nonce
// pair used twice.
func TestAttackI2ReplayAfterClose(t *testing.T) {
	// CLOSED lasts UAL+2MSL (RFC 7401 §4.4.3 Table 8; 19 min by default),
	// longer than the R1 generations that still accept the I2 (§6.7.1
	// "Delta S"). A short UAL opens the window in which B has forgotten A
	// while the I2's puzzle solution is still fresh: there, nothing of the
	// association is left to refuse the replay.
	r := newAttackRigWith(t, &handshake.Config{UAL: 2 * time.Second, MSL: 500 * time.Millisecond})
	a := r.initiator()
	aHIT := a.HIT()
	// Base exchange and ESP both ways, so B is ESTABLISHED (§6.9 step 21).
	if _, err := a.Ping(ctxT(t, 10*time.Second), r.b.HIT(), 1, 64, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	i2s := hipRecorded(r.proxy, mitm.ToTarget, wire.I2)
	if len(i2s) == 0 {
		t.Fatal("no I2 recorded")
	}
	i2 := i2s[0].Data

	// The Initiator leaves: CLOSE, CLOSE_ACK (RFC 7401 §6.14).
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(3*time.Second, func() bool { _, keys := holdsKeysWith(r.b, aHIT); return !keys }) {
		p, _ := peerOf(r.b, aHIT)
		t.Fatalf("B still holds the association after CLOSE: %+v", p)
	}
	closedAt := time.Now()
	// A write that sealed on the old SA just before it went may still be
	// counting (countSent follows the send): let it, so that base holds
	// it. The wire checks below look from closedAt on, so a packet sent
	// meanwhile is still caught. (CI once counted one into the check.)
	settle()
	base := r.b.Stats()

	var socks []*mitm.Socket
	replay := func(phase string) {
		t.Helper()
		at := time.Now()
		if err := r.proxy.Inject(mitm.ToTarget, i2); err != nil {
			t.Fatal(err)
		}
		s, err := r.proxy.InjectFrom(thirdAddr, r.b.LocalAddr(), i2)
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, s)
		settle()
		if r2 := sentAfter(r.proxy, mitm.ToClient, at, isR2); len(r2) > 0 {
			t.Errorf("%s: B answered the replayed I2 with %d R2 to the Initiator's address", phase, len(r2))
		}
		if r2 := receivedAfter(s, at, isR2); len(r2) > 0 {
			t.Errorf("%s: B answered the replayed I2 with %d R2 to the third address", phase, len(r2))
		}
		if p, keys := holdsKeysWith(r.b, aHIT); keys {
			t.Errorf("%s: the replayed I2 created an association on B: %+v", phase, p)
		}
		if st := r.b.Stats(); st.BEX.Started != base.BEX.Started {
			t.Errorf("%s: B accepted the replayed I2 (BEX started %d -> %d)", phase, base.BEX.Started, st.BEX.Started)
		}
	}
	replay("B in CLOSED")

	// Once CLOSED has run out, B holds nothing for A.
	if !waitUntil(10*time.Second, func() bool { _, ok := peerOf(r.b, aHIT); return !ok }) {
		p, _ := peerOf(r.b, aHIT)
		t.Fatalf("B never forgot the closed association: %+v", p)
	}
	// Meaningful only while the I2's R1 generation is still accepted
	// (R1Lifetime, 60 s, and the generation after it).
	if age := time.Since(i2s[0].Time); age > 50*time.Second {
		t.Fatalf("the I2 is %v old: its puzzle may have expired, the replay proves nothing", age)
	}
	replay("B forgot A")

	// Data that B's application has for A now: with no association it
	// starts a base exchange (or fails, A's locator being forgotten); an
	// association recreated by the replay would seal it at once.
	pc := listenPacket(t, r.b, ":0")
	for i := range 3 {
		pc.WriteTo([]byte(fmt.Sprintf("for A, %d", i)), &Addr{HIT: aHIT, Port: 9})
	}
	settle()
	if n := r.b.Stats().ESPOut - base.ESPOut; n != 0 {
		t.Errorf("B sent %d ESP packets after the association closed", n)
	}
	if esp := sentAfter(r.proxy, mitm.ToClient, closedAt, isESP); len(esp) > 0 {
		t.Errorf("B sent %d ESP packets to the Initiator's address after the close, first %v", len(esp), esp[0])
	}
	for _, s := range socks {
		if esp := receivedAfter(s, closedAt, isESP); len(esp) > 0 {
			t.Errorf("B sent %d ESP packets to the third address %v", len(esp), s.Addr())
		}
	}
}

// TestAttackI2ReplayIntoNewerAssociation: A associates with B, closes,
// associates again under the same HIT and streams; the first
// association's I2 is replayed to B. §6.9 step 20 replaces an ESTABLISHED
// association on a valid I2, so a replayed I2 that passes as valid tears
// down the live one and installs the old keys. It must not: B keeps the
// current association (same SPIs, ESTABLISHED), sends no R2, and the
// stream goes on byte-exact.
func TestAttackI2ReplayIntoNewerAssociation(t *testing.T) {
	r := newAttackRig(t)
	a1 := r.initiator()
	if _, err := a1.Ping(ctxT(t, 10*time.Second), r.b.HIT(), 1, 64, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	old := hipRecorded(r.proxy, mitm.ToTarget, wire.I2)
	if len(old) == 0 {
		t.Fatal("no I2 recorded")
	}
	oldI2 := old[0].Data
	if err := a1.Close(); err != nil {
		t.Fatal(err)
	}

	a2 := r.initiator()
	live := startLiveEcho(t, a2, r.b, echoPort, 21)
	if err := live.advance(32<<10, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	i2s := hipRecorded(r.proxy, mitm.ToTarget, wire.I2)
	if bytes.Equal(i2s[len(i2s)-1].Data, oldI2) {
		t.Fatal("the second association reused the first one's I2")
	}
	var before PeerInfo
	if !waitUntil(5*time.Second, func() bool {
		var ok bool
		before, ok = peerOf(r.b, a2.HIT())
		return ok && before.State == "ESTABLISHED"
	}) {
		t.Fatalf("B's association with A: %+v", before)
	}

	at := time.Now()
	if err := r.proxy.Inject(mitm.ToTarget, oldI2); err != nil {
		t.Fatal(err)
	}
	s, err := r.proxy.InjectFrom(thirdAddr, r.b.LocalAddr(), oldI2)
	if err != nil {
		t.Fatal(err)
	}
	settle()

	after, ok := peerOf(r.b, a2.HIT())
	if !ok || after.State != "ESTABLISHED" || after.InSPI != before.InSPI || after.OutSPI != before.OutSPI {
		t.Errorf("the replayed I2 replaced B's live association:\nbefore %+v\nafter  %+v", before, after)
	}
	if r2 := sentAfter(r.proxy, mitm.ToClient, at, isR2); len(r2) > 0 {
		t.Errorf("B answered the replayed I2 with %d R2 through the proxy", len(r2))
	}
	if r2 := receivedAfter(s, at, isR2); len(r2) > 0 {
		t.Errorf("B answered the replayed I2 with %d R2 to the third address", len(r2))
	}
	if err := live.advance(64<<10, 5*time.Second); err != nil {
		t.Errorf("after the replay: %v", err)
	}
	if err := live.finish(10 * time.Second); err != nil {
		t.Errorf("stream: %v", err)
	}
}

// TestAttackI2Tampering: every octet of an I2 after its SOLUTION is
// inverted in turn, and each copy is sent to the Responder from a source
// of its own while the genuine I2 is held in the proxy, so that every
// copy carries a fresh, valid puzzle solution and is worth the Responder's
// full processing (RFC 7401 §6.9: the puzzle first, then DH, decryption,
// MAC, signature). Required: no copy creates an association or draws an
// R2 (§6.9 step 16: the I2 is discarded and the state machine stays where
// it is); a copy draws at most one answer, a NOTIFY no larger than the I2
// (no amplification); every answer has the same form whichever check
// failed, and inside ENCRYPTED even answered-or-not does not depend on the
// offset (§6.9 step 11 drops a bad decryption silently: a distinguishable
// answer is a padding oracle on the Initiator's encrypted HOST_ID). The
// genuine I2, released after its batch of copies, must still be accepted:
// a failed I2 changes no state.
func TestAttackI2Tampering(t *testing.T) {
	t.Run("HostIDInClear", func(t *testing.T) { tamperI2(t, false) })
	// Node has no option for it, so the Initiator here is the overlay
	// stack under Node, with handshake.Config.EncryptHostID: its HOST_ID
	// travels in ENCRYPTED (§5.3.3).
	t.Run("HostIDEncrypted", func(t *testing.T) { tamperI2(t, true) })
}

// tamperBatch is how many tampered copies ride ahead of one genuine I2.
// A Responder may stop spending Diffie-Hellman work on a solution whose
// I2s keep failing authentication (hipnet's does after a few, so that one
// solved puzzle cannot buy unbounded work, RFC 7401 §4.1.1); so every
// batch has a fresh base exchange of its own, each copy gets the full
// processing, and the exchange's genuine I2 must still be accepted after
// its batch.
const tamperBatch = 3

func tamperI2(t *testing.T, encrypted bool) {
	b := newTestNode(t, Config{})
	// Every exchange comes through its own proxy, on its own loopback
	// address: hipnet rate-limits R1s per source address (RFC 7401 §6.7),
	// and a hundred Initiators behind one address would wait for it.
	newRound := func(round int) (*Node, *mitm.Proxy) {
		px, err := mitm.NewAt(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 3, byte(1 + round%250)}), 0), b.LocalAddr())
		if err != nil {
			t.Fatal(err)
		}
		px.SetHook(func(d *mitm.Datagram) mitm.Verdict {
			if isHIP(d, mitm.ToTarget, wire.I2) {
				return mitm.Hold // every copy, retransmissions too
			}
			return mitm.Pass
		})
		cfg := viaProxy(b, px)
		var a *Node
		if encrypted {
			// Config has no option for it: the handshake's own,
			// EncryptHostID, puts HOST_ID inside ENCRYPTED (§5.3.3).
			a = newTunedNode(t, cfg, handshake.Config{EncryptHostID: true})
		} else {
			a = newTestNode(t, cfg)
		}
		px.SetClient(a.LocalAddr())
		return a, px
	}
	// heldI2 waits for a's I2 in the proxy.
	heldI2 := func(a *Node, px *mitm.Proxy) []byte {
		var i2 []byte
		waitUntil(15*time.Second, func() bool {
			for _, d := range px.Held() {
				if pkt, ok := hipOf(d.Data); ok && pkt.SenderHIT() == a.HIT() {
					i2 = d.Data
					return true
				}
			}
			return false
		})
		if i2 == nil {
			t.Fatal("no I2 reached the proxy")
		}
		return i2
	}

	type probe struct {
		off   int
		param wire.ParamType
		sock  *mitm.Socket
	}
	var (
		probes  []probe
		layout  []paramSpan
		i2Len   int
		enc     paramSpan
		hasEnc  bool
		started = time.Now()
		base    = b.Stats()
		rounds  int
	)
	for next := 0; layout == nil || next < len(probes); rounds++ {
		a, px := newRound(rounds)
		dialed := make(chan error, 1)
		go func() { dialed <- a.stack.Connect(ctxT(t, 60*time.Second), b.HIT()) }()
		i2 := heldI2(a, px)
		spans := paramSpans(i2)
		if layout == nil {
			layout, i2Len = spans, len(i2)
			sol, ok1 := spanOf(spans, wire.ParamSolution)
			sig, ok2 := spanOf(spans, wire.ParamHIPSignature)
			_, clearHI := spanOf(spans, wire.ParamHostID)
			enc, hasEnc = spanOf(spans, wire.ParamEncrypted)
			if !ok1 || !ok2 {
				t.Fatalf("I2 without SOLUTION or HIP_SIGNATURE: %v", spans)
			}
			if encrypted && (!hasEnc || clearHI) {
				t.Fatalf("EncryptHostID: ENCRYPTED %v, HOST_ID in clear %v", hasEnc, clearHI)
			}
			// Every octet after SOLUTION but the padding of HIP_SIGNATURE:
			// no MAC or signature covers that, and the receiver ignores
			// padding (§5.2.1), so a copy differing there is the genuine
			// I2.
			for off := sol.end; off < sig.contentEnd; off++ {
				var pt wire.ParamType
				for _, s := range spans {
					if off >= s.start && off < s.end {
						pt = s.typ
					}
				}
				probes = append(probes, probe{off: off, param: pt})
			}
		} else if len(i2) != i2Len || fmt.Sprint(spans) != fmt.Sprint(layout) {
			t.Fatalf("exchange %d: the I2's layout changed: %v, was %v", rounds, spans, layout)
		}

		end := min(next+tamperBatch, len(probes))
		// One source per copy, so that every answer is attributed to its
		// offset; spread over many addresses, as an attacker's would be.
		// A round's sockets stay open through the next round, long after
		// any answer (Received still works once closed).
		for i := next; i < end; i++ {
			s, err := mitm.Listen(netip.AddrFrom4([4]byte{127, 0, byte(1 + i/200), byte(10 + i%200)}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			probes[i].sock = s
		}
		if next >= 2*tamperBatch {
			for _, p := range probes[next-2*tamperBatch : next-tamperBatch] {
				p.sock.Close()
			}
		}
		before := b.Stats()
		for _, p := range probes[next:end] {
			c := append([]byte(nil), i2...)
			c[p.off] ^= 0xff
			if err := p.sock.Send(b.LocalAddr(), c); err != nil {
				t.Fatal(err)
			}
		}
		// Every datagram B reads is handled (an accepted I2 starts a base
		// exchange) or counted in one drop reason.
		waitUntil(2*time.Second, func() bool {
			st := b.Stats()
			return st.Drops.Total()+st.BEX.Started-before.Drops.Total()-before.BEX.Started >= uint64(end-next)
		})
		if p, ok := peerOf(b, a.HIT()); ok {
			t.Errorf("offsets %d..%d: a tampered I2 created an association on B: %+v", probes[next].off, probes[end-1].off, p)
		}
		if st := b.Stats(); st.BEX.Started != before.BEX.Started {
			t.Errorf("offsets %d..%d: B accepted %d tampered I2s", probes[next].off, probes[end-1].off, st.BEX.Started-before.BEX.Started)
		}
		// The genuine I2, fresh all along, must still work: a failed I2
		// changes no state (§6.9 step 16).
		px.Release()
		select {
		case err := <-dialed:
			if err != nil {
				t.Fatalf("exchange %d: the genuine I2, released after %d tampered copies (offsets %d..%d), failed: %v",
					rounds, end-next, probes[next].off, probes[end-1].off, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("exchange %d: the genuine I2, released after the tampered copies, got no answer", rounds)
		}
		a.Close()
		px.Close()
		next = end
	}
	// Answers, until none came for 300 ms.
	answers := func() int {
		n := 0
		for _, p := range probes {
			_, recv := p.sock.Counts()
			n += int(recv.Datagrams)
		}
		return n
	}
	for last, quiet := -1, time.Now(); time.Since(quiet) < 300*time.Millisecond; {
		time.Sleep(20 * time.Millisecond)
		if n := answers(); n != last {
			last, quiet = n, time.Now()
		}
	}
	elapsed := time.Since(started)
	if d := b.Stats().Drops.ControlBacklog - base.Drops.ControlBacklog; d > 0 {
		t.Fatalf("B dropped %d I2s unread (control backlog): the test proves nothing", d)
	}

	// What came back, by offset.
	forms := map[string][]int{} // answer form -> offsets
	outcome := map[int]string{} // offset -> "none" or the form
	type perParam struct{ tried, answered int }
	byParam := map[wire.ParamType]*perParam{}
	var order []wire.ParamType
	for _, p := range probes {
		pp := byParam[p.param]
		if pp == nil {
			pp = &perParam{}
			byParam[p.param] = pp
			order = append(order, p.param)
		}
		pp.tried++
		got := p.sock.Received()
		outcome[p.off] = "none"
		if len(got) == 0 {
			continue
		}
		pp.answered++
		if len(got) > 1 {
			t.Errorf("offset %d (%v): %d answers to one I2", p.off, p.param, len(got))
		}
		for _, d := range got {
			form := answerForm(d.Data)
			outcome[p.off] = form
			forms[form] = append(forms[form], p.off)
			if isR2(&d) {
				t.Errorf("offset %d (%v): a tampered I2 drew an R2", p.off, p.param)
			} else if pkt, ok := hipOf(d.Data); !ok || pkt.Type() != wire.NOTIFY {
				t.Errorf("offset %d (%v): answered with %s; only a NOTIFY may answer a bad I2 (§6.9.1)", p.off, p.param, form)
			}
			if len(d.Data) > i2Len {
				t.Errorf("offset %d (%v): answer of %d octets to an I2 of %d", p.off, p.param, len(d.Data), i2Len)
			}
		}
	}
	var summary []string
	for _, pt := range order {
		summary = append(summary, fmt.Sprintf("%v %d/%d", pt, byParam[pt].answered, byParam[pt].tried))
	}
	t.Logf("FIGURE tampered-i2 encrypted=%v octets=%d tried=%d exchanges=%d in=%v answered(by param): %s",
		encrypted, i2Len, len(probes), rounds, elapsed.Round(time.Millisecond), strings.Join(summary, ", "))
	if len(forms) > 1 {
		var fs []string
		for f, offs := range forms {
			fs = append(fs, fmt.Sprintf("%s at %d offsets (first %d)", f, len(offs), offs[0]))
		}
		sort.Strings(fs)
		t.Errorf("answers tell the failed checks apart (an oracle): %s", strings.Join(fs, "; "))
	}
	if hasEnc {
		seen := map[string]int{}
		for off := enc.start; off < enc.contentEnd; off++ {
			if o, ok := outcome[off]; ok {
				seen[o]++
			}
		}
		if len(seen) > 1 {
			t.Errorf("inside ENCRYPTED the outcome depends on the octet tampered with (a decryption oracle): %v", seen)
		}
	}
}

// rewriteDHGroups returns the I1 in b with its DH_GROUP_LIST replaced by
// groups: the TLV shrinks (Length, padding) and the header length with it.
// Over UDP the checksum is zero and the I1 is not signed (RFC 7401
// §4.1.7), so the result is a valid I1.
func rewriteDHGroups(b []byte, groups []uint8) ([]byte, error) {
	pkt, err := wire.ParseUDPControl(b)
	if err != nil {
		return nil, err
	}
	if pkt.Type() != wire.I1 {
		return nil, fmt.Errorf("%v, not I1", pkt.Type())
	}
	nb := wire.NewBuilder(nil, wire.I1, pkt.SenderHIT(), pkt.ReceiverHIT())
	nb.SetControls(pkt.Controls())
	it := pkt.Params()
	for q, ok := it.Next(); ok; q, ok = it.Next() {
		if q.Type() == wire.ParamDHGroupList {
			nb.Add(wire.DHGroupList{Groups: groups})
		} else {
			nb.AddParam(q)
		}
	}
	raw, err := nb.Bytes()
	if err != nil {
		return nil, err
	}
	return wire.AppendUDPControl(nil, raw), nil
}

// dhGroupOf returns the group of an R1's DIFFIE_HELLMAN.
func dhGroupOf(b []byte) (uint8, bool) {
	pkt, ok := hipOf(b)
	if !ok {
		return 0, false
	}
	q, ok := pkt.Param(wire.ParamDiffieHellman)
	if !ok {
		return 0, false
	}
	dh, err := wire.ParseDiffieHellman(q.Contents())
	return dh.Group, err == nil
}

// TestAttackDHDowngrade: the proxy rewrites the Initiator's DH_GROUP_LIST
// to the weakest group both support (MODP-1536), which the unsigned I1
// cannot protect. The Responder then picks that group, as it must (RFC
// 7401 §5.2.6: the first of its own list that the I1 lists); its R1 lists
// its own preferences, signed, so the Initiator sees that the best match
// of the two lists is another group and concludes the I1 was altered
// (§4.1.7, §6.8 step 7). Required: the dial fails, and never establishes
// with the weaker group; without the rewrite the same nodes associate
// with P-256.
func TestAttackDHDowngrade(t *testing.T) {
	b := newTestNode(t, Config{})
	echoServer(t, b, echoPort)
	proxy := newMITM(t, b)
	var rewritten atomic.Int32
	proxy.SetHook(func(d *mitm.Datagram) mitm.Verdict {
		if isHIP(d, mitm.ToTarget, wire.I1) {
			if nb, err := rewriteDHGroups(d.Data, []uint8{wire.DHGroupMODP1536}); err == nil {
				rewritten.Add(1)
				return mitm.Replace(nb)
			}
		}
		return mitm.Pass
	})
	a := newTestNode(t, viaProxy(b, proxy))
	start := time.Now()
	c, err := a.DialContext(ctxT(t, 8*time.Second), "tcp", addrOf(b, echoPort))
	elapsed := time.Since(start)
	if rewritten.Load() == 0 {
		t.Fatal("no I1 was rewritten")
	}
	var chosen []string
	weak := false
	for _, d := range hipRecorded(proxy, mitm.ToClient, wire.R1) {
		if g, ok := dhGroupOf(d.Data); ok {
			chosen = append(chosen, wire.DHGroupName(g))
			weak = weak || g == wire.DHGroupMODP1536
		}
	}
	p, _ := peerOf(a, b.HIT())
	t.Logf("downgraded dial: err=%v after %v; R1 groups %v; A's record %+v", err, elapsed.Round(time.Millisecond), chosen, p)
	if p.State == "ESTABLISHED" && p.DHGroup == wire.DHGroupName(wire.DHGroupMODP1536) {
		t.Errorf("A established with %s after the I1's DH_GROUP_LIST was rewritten", p.DHGroup)
	}
	if err == nil {
		c.Close()
		if weak {
			t.Fatalf("the dial succeeded although B chose %s for a rewritten I1: the downgrade went unnoticed", wire.DHGroupName(wire.DHGroupMODP1536))
		}
	}

	// The control: the same nodes without the rewrite.
	proxy.SetHook(nil)
	c, err = a.DialContext(ctxT(t, 15*time.Second), "tcp", addrOf(b, echoPort))
	if err != nil {
		t.Fatalf("dial without the rewrite: %v", err)
	}
	defer c.Close()
	if err := pingPong(c); err != nil {
		t.Fatal(err)
	}
	if p, _ := peerOf(a, b.HIT()); p.DHGroup != wire.DHGroupName(wire.DHGroupP256) {
		t.Errorf("without the rewrite: DH %s, want %s", p.DHGroup, wire.DHGroupName(wire.DHGroupP256))
	}
}

// blockedNotify makes B refuse A once and returns B's NOTIFY
// BLOCKED_BY_POLICY as the proxy recorded it: a genuine packet, signed by
// B, that an attacker can replay at will.
func blockedNotify(t *testing.T, r *attackRig, a *Node) []byte {
	t.Helper()
	r.refuse.Store(true)
	defer r.refuse.Store(false)
	_, err := a.DialContext(ctxT(t, 10*time.Second), "tcp", addrOf(r.b, echoPort))
	if !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("dial refused by B's Authorize: %v", err)
	}
	for _, d := range hipRecorded(r.proxy, mitm.ToClient, wire.NOTIFY) {
		if pkt, ok := hipOf(d.Data); ok {
			for _, nt := range notifyTypes(pkt) {
				if nt == wire.NotifyBlockedByPolicy {
					return d.Data
				}
			}
		}
	}
	t.Fatal("no NOTIFY BLOCKED_BY_POLICY recorded")
	return nil
}

// TestAttackReplayedNotifyDuringBEX: B once refused A with a signed NOTIFY
// BLOCKED_BY_POLICY. Later B admits A; while A's new base exchange runs,
// the attacker replays that NOTIFY at A in I1-SENT and again in I2-SENT,
// from B's address and from a third one. NOTIFY is informational (RFC
// 7401 §6.13: the receiver SHOULD NOT change its HIP state purely on a
// NOTIFY) and this one is stale: nothing binds it to the exchange under
// way. Required: the dial succeeds.
func TestAttackReplayedNotifyDuringBEX(t *testing.T) {
	r := newAttackRig(t)
	a := r.initiator()
	notify := blockedNotify(t, r, a)

	var injected atomic.Int32
	r.proxy.SetHook(func(d *mitm.Datagram) mitm.Verdict {
		// Before the I1 (I2) goes on, A is in I1-SENT (I2-SENT) and the
		// NOTIFY reaches it first.
		if isHIP(d, mitm.ToTarget, wire.I1) || isHIP(d, mitm.ToTarget, wire.I2) {
			r.proxy.Inject(mitm.ToClient, notify)
			r.proxy.InjectFrom(thirdAddr, a.LocalAddr(), notify)
			injected.Add(1)
		}
		return mitm.Pass
	})
	c, err := a.DialContext(ctxT(t, 15*time.Second), "tcp", addrOf(r.b, echoPort))
	if err != nil {
		t.Fatalf("the dial failed (NOTIFY replayed %d times): %v", injected.Load(), err)
	}
	if injected.Load() < 2 {
		t.Fatalf("the NOTIFY was replayed %d times, want in I1-SENT and in I2-SENT", injected.Load())
	}
	defer c.Close()
	if err := pingPong(c); err != nil {
		t.Fatal(err)
	}
}

// TestAttackForgedControlOnEstablished: CLOSE, CLOSE_ACK, UPDATE and
// NOTIFY replayed from an older association and from the current one, and
// forged (inverted MAC or signature, or built from scratch without keys),
// each sent at both ends of a live association from the peer's address
// and from a third one. Only an authenticated, fresh packet may change an
// association (RFC 7401 §6.12: UPDATE needs HIP_MAC and signature and a
// new SEQ; §6.14-6.15: CLOSE and CLOSE_ACK are verified, CLOSE_ACK must
// echo our CLOSE; §6.13: NOTIFY is informational). Required: both ends stay
// ESTABLISHED with the same SPIs and the stream stays byte-exact and
// keeps going.
func TestAttackForgedControlOnEstablished(t *testing.T) {
	r := newAttackRig(t)
	a1 := r.initiator()
	notify := blockedNotify(t, r, a1)

	// Association 1: a signed UPDATE exchange (a registration request
	// B refuses, RFC 8003 §3.2), then CLOSE and CLOSE_ACK.
	ctx := ctxT(t, 30*time.Second)
	if _, err := a1.Ping(ctx, r.b.HIT(), 1, 64, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	mark := len(r.proxy.Recorded())
	// Cancelling a registration B never granted (lifetime 0) needs no
	// offer, so it goes out as a signed UPDATE with SEQ and comes back as
	// a signed UPDATE with ACK; whether B grants anything does not matter.
	_, _ = a1.stack.Register(ctx, r.b.HIT(), 0, wire.RegTypeRendezvous)
	upd1A := lastHIPSince(t, r.proxy, mark, mitm.ToTarget, wire.UPDATE)
	upd1B := lastHIPSince(t, r.proxy, mark, mitm.ToClient, wire.UPDATE)
	if err := a1.Close(); err != nil {
		t.Fatal(err)
	}
	close1 := lastHIPSince(t, r.proxy, mark, mitm.ToTarget, wire.CLOSE)
	closeAck1 := lastHIPSince(t, r.proxy, mark, mitm.ToClient, wire.CLOSE_ACK)

	// Association 2, the live one, with its own UPDATE exchange.
	a2 := r.initiator()
	live := startLiveEcho(t, a2, r.b, echoPort, 22)
	if err := live.advance(16<<10, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	mark = len(r.proxy.Recorded())
	_, _ = a2.stack.Register(ctx, r.b.HIT(), 0, wire.RegTypeRendezvous)
	upd2A := lastHIPSince(t, r.proxy, mark, mitm.ToTarget, wire.UPDATE)
	upd2B := lastHIPSince(t, r.proxy, mark, mitm.ToClient, wire.UPDATE)

	aHIT, bHIT := a2.HIT(), r.b.HIT()
	var bView, aView PeerInfo
	if !waitUntil(5*time.Second, func() bool {
		var ok1, ok2 bool
		bView, ok1 = peerOf(r.b, aHIT)
		aView, ok2 = peerOf(a2, bHIT)
		return ok1 && ok2 && bView.State == "ESTABLISHED" && aView.State == "ESTABLISHED"
	}) {
		t.Fatalf("association 2: B %+v, A %+v", bView, aView)
	}

	nPkt, _ := hipOf(notify)
	hostID, _ := nPkt.Param(wire.ParamHostID)
	ecdsaSig := func() wire.Signature {
		return wire.Signature{Type: wire.ParamHIPSignature, Alg: wire.AlgECDSA, Sig: randBytes(64)}
	}
	attacks := []struct {
		name string
		toB  bool // at B (else at A)
		b    []byte
	}{
		{"CLOSE of association 1, replayed", true, close1},
		{"CLOSE_ACK of association 1, replayed", false, closeAck1},
		{"UPDATE of association 1 from A, replayed", true, upd1A},
		{"UPDATE of association 1 from B, replayed", false, upd1B},
		{"UPDATE of association 2 from A, replayed", true, upd2A},
		{"UPDATE of association 2 from B, replayed", false, upd2B},
		{"NOTIFY BLOCKED_BY_POLICY, replayed", false, notify},
		{"CLOSE with inverted HIP_MAC", true, flipParam(t, close1, wire.ParamHIPMAC, 0)},
		{"UPDATE of association 2 with inverted HIP_MAC", true, flipParam(t, upd2A, wire.ParamHIPMAC, 3)},
		{"UPDATE of association 2 with inverted signature", false, flipParam(t, upd2B, wire.ParamHIPSignature, 10)},
		{"NOTIFY with inverted signature", false, flipParam(t, notify, wire.ParamHIPSignature, 10)},
		{"CLOSE forged from A", true, buildHIP(t, wire.CLOSE, aHIT, bHIT,
			wire.Echo{Type: wire.ParamEchoRequestSigned, Opaque: randBytes(8)},
			wire.HIPMAC{MAC: randBytes(48)}, ecdsaSig())},
		{"CLOSE forged from B", false, buildHIP(t, wire.CLOSE, bHIT, aHIT,
			wire.Echo{Type: wire.ParamEchoRequestSigned, Opaque: randBytes(8)},
			wire.HIPMAC{MAC: randBytes(48)}, ecdsaSig())},
		{"UPDATE forged from A with a high SEQ", true, buildHIP(t, wire.UPDATE, aHIT, bHIT,
			wire.Seq{UpdateID: 1 << 30}, wire.HIPMAC{MAC: randBytes(48)}, ecdsaSig())},
		{"NOTIFY forged from B with its HOST_ID", false, buildHIP(t, wire.NOTIFY, bHIT, aHIT,
			rawParam{hostID}, wire.Notification{Type: wire.NotifyAuthenticationFailed}, ecdsaSig())},
	}
	third := map[bool]netip.AddrPort{true: r.b.LocalAddr(), false: a2.LocalAddr()}
	for _, at := range attacks {
		dir := mitm.ToClient
		if at.toB {
			dir = mitm.ToTarget
		}
		if err := r.proxy.Inject(dir, at.b); err != nil {
			t.Fatal(err)
		}
		if _, err := r.proxy.InjectFrom(thirdAddr, third[at.toB], at.b); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		nb, ok1 := peerOf(r.b, aHIT)
		na, ok2 := peerOf(a2, bHIT)
		if !ok1 || !ok2 || nb.State != "ESTABLISHED" || na.State != "ESTABLISHED" ||
			nb.InSPI != bView.InSPI || nb.OutSPI != bView.OutSPI || na.InSPI != aView.InSPI || na.OutSPI != aView.OutSPI {
			t.Errorf("%s: the association changed:\nB %+v\n  was %+v\nA %+v\n  was %+v", at.name, nb, bView, na, aView)
			bView, aView = nb, na
		}
		if err := live.failed(); err != nil {
			t.Fatalf("%s: stream: %v", at.name, err)
		}
	}
	if err := live.advance(64<<10, 5*time.Second); err != nil {
		t.Errorf("after the attacks: %v", err)
	}
	if err := live.finish(10 * time.Second); err != nil {
		t.Errorf("stream: %v", err)
	}
}

// lastHIPSince returns the last HIP packet of type typ going dir that the
// proxy recorded from index mark on.
func lastHIPSince(t *testing.T, p *mitm.Proxy, mark int, dir mitm.Direction, typ wire.PacketType) []byte {
	t.Helper()
	var got []byte
	waitUntil(3*time.Second, func() bool {
		rec := p.Recorded()
		for i := len(rec) - 1; i >= mark; i-- {
			if !rec[i].Injected && isHIP(&rec[i], dir, typ) {
				got = rec[i].Data
				return true
			}
		}
		return false
	})
	if got == nil {
		t.Fatalf("no %v %v recorded", dir, typ)
	}
	return got
}
