package overlay

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/mitm"
)

// Back-to-back rekeys. A host that finishes a rekey first (the one that
// started it) keeps sending on its old outbound SA until the peer shows it
// holds the new inbound one (RFC 7402 §3.3.2: data on the new SA, or the
// grace period). The peer keeps two inbound SAs. A second rekey in that
// window used to let the peer drop the SA still in use, and datagrams were
// lost as "unknown SPI" (seen in CI as a TestRekeyOnDataPath timeout).
// The SA two rekeys old is now held a little longer (retired) for what
// was sealed with it before the switch and is still on its way.

// rekeyPath is the proxy between a and b and what it does: muted drops
// b's ESP to a (its keepalives on the new SAs would show a that b
// finished, which is not what a test wants shown yet), ackHeld holds b's
// ACK-only UPDATEs, and holdSPI holds a's ESP on that SPI.
type rekeyPath struct {
	*mitm.Proxy
	muted, ackHeld atomic.Bool
	holdSPI        atomic.Uint32
}

func (r *rekeyPath) hook(d *mitm.Datagram) mitm.Verdict {
	if d.Dir == mitm.ToTarget {
		if spi, ok := d.SPI(); ok && spi == r.holdSPI.Load() {
			return mitm.Hold
		}
		return mitm.Pass
	}
	if upd, seq := isUpdate(d); upd && !seq && r.ackHeld.Load() {
		return mitm.Hold
	}
	if d.Kind() == mitm.KindESP && r.muted.Load() {
		return mitm.Drop
	}
	return mitm.Pass
}

// rekeyPair connects a to b through a proxy in front of b, and sends some
// data both ways. rto is the first retransmission timeout, and so the
// switch grace: long, nothing in a test switches by time. bOpts change b's
// Config.
func rekeyPair(t *testing.T, rto time.Duration, bOpts ...func(*Config)) (a, b *Stack, px *rekeyPath) {
	t.Helper()
	hs := func(c *Config) {
		c.Handshake.RetransmitTimeout = rto
		c.Handshake.Retries = 2
	}
	a = newTestStack(t, 0, hs)
	b = newTestStack(t, 1, func(c *Config) {
		hs(c)
		for _, o := range bOpts {
			o(c)
		}
	})
	p, err := mitm.New(b.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	t.Cleanup(func() { a.Close(); b.Close() }) // first: their CLOSEs pass the proxy
	px = &rekeyPath{Proxy: p}
	p.SetHook(px.hook)
	a.AddPeer(b.HIT(), px.Addr())
	if err := a.Connect(t.Context(), b.HIT()); err != nil {
		t.Fatal(err)
	}
	both(t, a, b)
	return a, b, px
}

// both sends one datagram a→b and one b→a, and checks that they arrive.
func both(t *testing.T, a, b *Stack) {
	t.Helper()
	ca, cb := listen(t, a, 0), listen(t, b, 0)
	defer ca.Close()
	defer cb.Close()
	for i, dir := range []struct{ from, to *InnerConn }{{ca, cb}, {cb, ca}} {
		msg := pattern(i, 80)
		if _, err := dir.from.WriteTo(msg, dir.to.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if got, _ := readOne(t, dir.to, 2*time.Second); !bytes.Equal(got, msg) {
			t.Fatalf("datagram %d corrupted", i)
		}
	}
}

// outSPI is the SPI s's data path seals with towards h.
func outSPI(s *Stack, h wire.HIT) uint32 {
	if o := s.lookupPeer(h).out.Load(); o != nil {
		return o.SPI()
	}
	return 0
}

// rekeyNow asks s's control goroutine for a rekey with h, as the data path
// does when an outbound SA runs out.
func rekeyNow(s *Stack, h wire.HIT) {
	p := s.lookupPeer(h)
	p.rekeyAsked.Store(true)
	s.poke(p, pokeRekey)
}

// isUpdate: a HIP UPDATE, and whether it carries a SEQ (an ACK-only
// UPDATE does not).
func isUpdate(d *mitm.Datagram) (update, seq bool) {
	if d.Kind() != mitm.KindHIP {
		return false, false
	}
	pkt, err := wire.ParsePacket(d.Data[4:]) // after the non-ESP marker
	if err != nil || pkt.Type() != wire.UPDATE {
		return false, false
	}
	_, seq = pkt.Param(wire.ParamSeq)
	return true, seq
}

// rekeyUpdates counts the UPDATEs with a SEQ, the ones that start a
// rekey, that a sent to b through px.
func rekeyUpdates(px *rekeyPath) int {
	return len(px.Select(func(d *mitm.Datagram) bool {
		upd, seq := isUpdate(d)
		return upd && seq && d.Dir == mitm.ToTarget
	}))
}

// finishFirst has a rekey of a's and waits until a finished it and holds
// its new outbound SA back: b's ESP to a is muted, so a has no proof
// that b finished too.
func finishFirst(t *testing.T, a, b *Stack, px *rekeyPath) (oldOut uint32) {
	t.Helper()
	px.muted.Store(true)
	in0, _ := spis(a, b.HIT())
	bIn0, _ := spis(b, a.HIT())
	oldOut = outSPI(a, b.HIT())
	rekeyNow(a, b.HIT())
	waitFor(t, 2*time.Second, "both to finish a's rekey", func() bool {
		in, _ := spis(a, b.HIT())
		bIn, _ := spis(b, a.HIT())
		return in != in0 && bIn != bIn0
	})
	barrier(t, a)
	barrier(t, b)
	if got := outSPI(a, b.HIT()); got != oldOut {
		t.Fatalf("a switched to its new outbound SA at once (%d → %d): nothing left to test", oldOut, got)
	}
	return oldOut
}

// TestRekeyPeerRekeysBeforeSwitch: a finished a rekey and waits to switch;
// b starts the next rekey, and b's closing ACK is held back. b, now done,
// keeps the two newest inbound SAs. a must have switched when b's rekey
// arrived, so that what a sends while the ACK is held still arrives; and
// a datagram a sealed on its old SA before that, delayed on the path
// until b is done, still arrives too (the retired SA).
func TestRekeyPeerRekeysBeforeSwitch(t *testing.T) {
	a, b, px := rekeyPair(t, 5*time.Second)
	oldOut := finishFirst(t, a, b, px)
	cb := listen(t, b, 0)
	late := []byte("sealed before the switch")
	px.holdSPI.Store(oldOut)
	ca := listen(t, a, 0)
	if _, err := ca.WriteTo(late, cb.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "a's old-SA datagram held", func() bool { return len(px.Held()) == 1 })
	px.holdSPI.Store(0)
	px.ackHeld.Store(true)
	bIn0, _ := spis(b, a.HIT())
	rekeyNow(b, a.HIT())
	waitFor(t, 2*time.Second, "b to finish its rekey", func() bool {
		in, _ := spis(b, a.HIT())
		return in != bIn0
	})
	defer func() {
		if t.Failed() {
			for _, d := range px.Recorded() {
				t.Log(d.String())
			}
		}
	}()
	waitFor(t, 2*time.Second, "b's ACK held", func() bool { return len(px.Held()) == 2 })
	if got := outSPI(a, b.HIT()); got == oldOut {
		t.Fatal("a still sends on the SA b retired")
	}
	px.muted.Store(false)
	both(t, a, b) // on a's first rekey's SAs, b's second still waiting
	px.ackHeld.Store(false)
	px.Release() // the late datagram, then the ACK
	if got, _ := readOne(t, cb, 2*time.Second); !bytes.Equal(got, late) {
		t.Fatalf("got %q", got)
	}
	both(t, a, b)
	if n, m := a.Stats().Drops.UnknownSPI, b.Stats().Drops.UnknownSPI; n+m != 0 {
		t.Fatalf("unknown SPI drops: a %d, b %d", n, m)
	}
}

// TestRekeyRetiredSAEnds: the SA two rekeys old stays for what is still
// on its way, for twice the switch grace, and then is gone. A copy of a
// datagram sealed with it is a replay while it stays (the window still
// holds it) and an unknown SPI after.
func TestRekeyRetiredSAEnds(t *testing.T) {
	a, b, px := rekeyPair(t, 50*time.Millisecond) // grace 500 ms, hold 1 s
	first := outSPI(a, b.HIT())
	var captured []byte
	for _, d := range px.Select(func(d *mitm.Datagram) bool { spi, ok := d.SPI(); return ok && spi == first }) {
		captured = d.Data
	}
	if captured == nil {
		t.Fatal("no ESP on a's first SA recorded")
	}
	for range 2 {
		in0, _ := spis(b, a.HIT())
		rekeyNow(a, b.HIT())
		waitFor(t, 2*time.Second, "a rekey", func() bool { in, _ := spis(b, a.HIT()); return in != in0 })
		both(t, a, b) // and the switch
		waitFor(t, 2*time.Second, "a's switch", func() bool { return outSPI(a, b.HIT()) != first })
	}
	replays := b.Stats().Drops.Replay
	if err := px.Inject(mitm.ToTarget, captured); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the copy dropped as a replay", func() bool { return b.Stats().Drops.Replay == replays+1 })
	if n := b.Stats().Drops.UnknownSPI; n != 0 {
		t.Fatalf("first SA gone while retired: %d unknown SPI", n)
	}
	waitFor(t, 5*time.Second, "the retired SA to end", func() bool {
		if err := px.Inject(mitm.ToTarget, captured); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		return b.Stats().Drops.UnknownSPI > 0
	})
}

// TestRekeyWaitsForSwitch: a rekey a's data path asks for while a waits to
// switch to its last rekey's outbound SA is not started (b's answer would
// let b drop the SA a still sends on); a goes on sending, and b receives.
func TestRekeyWaitsForSwitch(t *testing.T) {
	a, b, px := rekeyPair(t, 5*time.Second)
	oldOut := finishFirst(t, a, b, px)
	updates := func() int { return rekeyUpdates(px) }
	before := updates()
	rekeyNow(a, b.HIT())
	barrier(t, a)
	time.Sleep(100 * time.Millisecond) // an UPDATE round trip on loopback, had one started
	if n := updates() - before; n != 0 {
		t.Fatalf("a started a rekey (%d UPDATEs) before switching", n)
	}
	if got := outSPI(a, b.HIT()); got != oldOut {
		t.Fatalf("outbound SA changed: %d → %d", oldOut, got)
	}
	px.muted.Store(false)
	both(t, a, b) // b's data on a's new inbound SA makes a switch
	waitFor(t, time.Second, "a to switch", func() bool { return outSPI(a, b.HIT()) != oldOut })
	both(t, a, b)
	if n, m := a.Stats().Drops.UnknownSPI, b.Stats().Drops.UnknownSPI; n+m != 0 {
		t.Fatalf("unknown SPI drops: a %d, b %d", n, m)
	}
}

// TestRekeyOwedFollowsSwitch: a rekey that must happen (the one through a
// relay the association fell back to, which teaches the relay the SPIs)
// is asked for while a switch to a rekeyed SA waits. It may not start
// then (TestRekeyWaitsForSwitch), but it must not be lost either: it
// starts once the switch is made. Before, it was dropped, and under load
// the relay never learnt the SPIs (TestRelayedPairFallback and the relay
// package's TestVNetDirectPathFallback failed in CI).
func TestRekeyOwedFollowsSwitch(t *testing.T) {
	a, b, px := rekeyPair(t, 5*time.Second)
	oldOut := finishFirst(t, a, b, px)
	updates := func() int { return rekeyUpdates(px) }
	before := updates()
	done := make(chan struct{})
	a.cmds <- funcCmd(func(c *control, now time.Time) {
		c.oweRekey(a.lookupPeer(b.HIT()))
		close(done)
	})
	<-done
	barrier(t, a)
	time.Sleep(100 * time.Millisecond) // an UPDATE round trip on loopback, had one started
	if n := updates() - before; n != 0 {
		t.Fatalf("a started the owed rekey (%d UPDATEs) before switching", n)
	}
	px.muted.Store(false)
	both(t, a, b) // b's data on a's new inbound SA makes a switch
	waitFor(t, time.Second, "a to switch", func() bool { return outSPI(a, b.HIT()) != oldOut })
	switched := outSPI(a, b.HIT())
	waitFor(t, 3*time.Second, "the owed rekey after the switch", func() bool {
		return updates()-before >= 1
	})
	both(t, a, b) // its own switch, by b's data
	waitFor(t, 3*time.Second, "a on the owed rekey's SA", func() bool {
		o := outSPI(a, b.HIT())
		return o != switched && o != oldOut
	})
	both(t, a, b)
	if n, m := a.Stats().Drops.UnknownSPI, b.Stats().Drops.UnknownSPI; n+m != 0 {
		t.Fatalf("unknown SPI drops: a %d, b %d", n, m)
	}
}

// TestRekeyOldSAEnds: after one rekey, the SA it replaced ends within
// a few switch graces, even with no second rekey. An attacker on the path
// held back a datagram a sealed on it; released later, it finds no SA.
// Before, the SA stayed until the next rekey (an hour by default) with its
// replay window frozen, and the held datagram was delivered as new.
func TestRekeyOldSAEnds(t *testing.T) {
	a, b, px := rekeyPair(t, 50*time.Millisecond) // grace 500 ms: ended within 3.5 s
	first := outSPI(a, b.HIT())
	cb := listen(t, b, 0)
	defer cb.Close()
	ca := listen(t, a, 0)
	defer ca.Close()
	px.holdSPI.Store(first)
	if _, err := ca.WriteTo([]byte("held back"), cb.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	var held []byte
	waitFor(t, time.Second, "the datagram held", func() bool {
		for _, d := range px.Held() {
			if spi, ok := d.SPI(); ok && spi == first {
				held = d.Data
			}
		}
		return held != nil
	})
	px.holdSPI.Store(0)
	in0, _ := spis(b, a.HIT())
	rekeyNow(a, b.HIT())
	waitFor(t, 2*time.Second, "a rekey", func() bool { in, _ := spis(b, a.HIT()); return in != in0 })
	both(t, a, b)
	waitFor(t, 2*time.Second, "a's switch", func() bool { return outSPI(a, b.HIT()) != first })
	time.Sleep(prevLife*500*time.Millisecond + 2*500*time.Millisecond + 1500*time.Millisecond) // its life, its retirement, a tick
	unknown := b.Stats().Drops.UnknownSPI
	if err := px.Inject(mitm.ToTarget, held); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the held datagram dropped for its SPI", func() bool { return b.Stats().Drops.UnknownSPI > unknown })
	cb.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := cb.ReadFrom(make([]byte, 64)); err == nil {
		t.Fatalf("the datagram held back through the rekey was delivered seconds later (%d octets)", n)
	}
}

// TestRekeyOwedAfterUpdate: a rekey the data path asks for while another
// UPDATE of a's is outstanding (here a registration whose answer the path
// holds back) cannot start then, and starts once that UPDATE is answered.
// Before, it lapsed: the data path asks once, and nothing asked again.
func TestRekeyOwedAfterUpdate(t *testing.T) {
	a, b, px := rekeyPair(t, 300*time.Millisecond, asRegistrar(nil))
	px.ackHeld.Store(true) // b's answer to a's UPDATE
	reg := make(chan struct{})
	go func() {
		defer close(reg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.register(ctx, b.HIT(), time.Minute, wire.RegTypeRelayUDPHIP)
	}()
	waitFor(t, 2*time.Second, "b's answer held", func() bool { return len(px.Held()) > 0 })
	in0, out0 := spis(a, b.HIT())
	rekeyNow(a, b.HIT())
	barrier(t, a)
	if in, out := spis(a, b.HIT()); in != in0 || out != out0 {
		t.Fatal("a rekeyed with an UPDATE outstanding")
	}
	px.ackHeld.Store(false)
	px.Release() // the answer arrives; a's UPDATE is done
	<-reg
	waitFor(t, 3*time.Second, "the rekey asked for meanwhile", func() bool {
		in, _ := spis(a, b.HIT())
		return in != in0
	})
	both(t, a, b)
}
