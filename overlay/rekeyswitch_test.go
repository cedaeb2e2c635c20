package overlay

import (
	"bytes"
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

// rekeyPath is the proxy between a and b and what it does to b's packets
// to a: muted drops b's ESP (its keepalives on the new SAs would show a
// that b finished, which is not what a test wants shown yet), ackHeld
// holds b's ACK-only UPDATEs.
type rekeyPath struct {
	*mitm.Proxy
	muted, ackHeld atomic.Bool
}

func (r *rekeyPath) hook(d *mitm.Datagram) mitm.Verdict {
	if d.Dir != mitm.ToClient {
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

// rekeyPair connects a to b through a proxy in front of b, with a switch
// grace (the first retransmission timeout) long enough that nothing in
// the test switches by time, and some data both ways.
func rekeyPair(t *testing.T) (a, b *Stack, px *rekeyPath) {
	t.Helper()
	slow := func(c *Config) {
		c.Handshake.RetransmitTimeout = 5 * time.Second
		c.Handshake.Retries = 2
	}
	a, b = newTestStack(t, 0, slow), newTestStack(t, 1, slow)
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
// arrived, so that what a sends while the ACK is held still arrives.
func TestRekeyPeerRekeysBeforeSwitch(t *testing.T) {
	a, b, px := rekeyPair(t)
	oldOut := finishFirst(t, a, b, px)
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
	waitFor(t, 2*time.Second, "b's ACK held", func() bool { return len(px.Held()) == 1 })
	if got := outSPI(a, b.HIT()); got == oldOut {
		t.Fatal("a still sends on the SA b has dropped")
	}
	px.muted.Store(false)
	both(t, a, b) // on a's first rekey's SAs, b's second still waiting
	px.ackHeld.Store(false)
	px.Release()
	both(t, a, b)
	if n, m := a.Stats().Drops.UnknownSPI, b.Stats().Drops.UnknownSPI; n+m != 0 {
		t.Fatalf("unknown SPI drops: a %d, b %d", n, m)
	}
}

// TestRekeyWaitsForSwitch: a rekey a's data path asks for while a waits to
// switch to its last rekey's outbound SA is not started (b's answer would
// let b drop the SA a still sends on); a goes on sending, and b receives.
func TestRekeyWaitsForSwitch(t *testing.T) {
	a, b, px := rekeyPair(t)
	oldOut := finishFirst(t, a, b, px)
	updates := func() int {
		return len(px.Select(func(d *mitm.Datagram) bool {
			upd, seq := isUpdate(d)
			return upd && seq && d.Dir == mitm.ToTarget
		}))
	}
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
