package handshake

import (
	"errors"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// Issue 9, finding 5: NOTIFY changing state.
//
// A NOTIFY carries no freshness: a signed error NOTIFY recorded once could
// be replayed to fail every later exchange with the same Responder. RFC
// 7401 §6.13 makes NOTIFY informational — it changes no state by itself.
// hipnet's one exception is an error NOTIFY received in I2-SENT whose data
// is the #J of the I2 we sent: only an answer to that very I2 can carry it
// (notify.go). Other error NOTIFYs are remembered as the cause to report
// if the exchange then times out.

func notifyErrs(h *host) []*NotifyError {
	var out []*NotifyError
	for _, ev := range h.eventsOf(EventNotify) {
		var ne *NotifyError
		if errors.As(ev.Err, &ne) {
			out = append(out, ne)
		}
	}
	return out
}

// runOut fires a's timers until it leaves state s (bounded).
func runOut(t *testing.T, h *host, a *Association, s State) {
	t.Helper()
	for i := 0; i < 20 && a.State() == s; i++ {
		h.timeout(a.Deadline())
	}
	if a.State() == s {
		t.Fatalf("still %v", s)
	}
}

// TestNotifyReplayedIntoNextExchange: exchange 1's I2 was refused by
// policy (RefuseI2). That signed, bound NOTIFY replayed into exchange 2,
// held in I2-SENT, changes nothing: its #J is exchange 1's. A fresh
// refusal of exchange 2's I2 ends exchange 2 at once.
func TestNotifyReplayedIntoNextExchange(t *testing.T) {
	a, b := pair(t)
	i2a := i2Of(t, a, b)
	n1, err := b.e.RefuseI2(i2a)
	if err != nil {
		t.Fatal(err)
	}
	// The Initiator gives exchange 1 up and starts exchange 2, which
	// reaches I2-SENT, its I2 lost on the way.
	i2b := i2Of(t, a, b)
	aa := a.a(b)
	if aa.State() != I2Sent {
		t.Fatalf("exchange 2: %v", aa.State())
	}
	a.events = nil

	if out := a.deliver(t0, n1); len(out) != 0 {
		t.Fatal("replayed NOTIFY answered")
	}
	if aa.State() != I2Sent || len(a.eventsOf(EventFailed)) != 0 {
		t.Fatalf("replayed NOTIFY of exchange 1: state %v, events %v", aa.State(), a.events)
	}
	if ne := notifyErrs(a); len(ne) != 1 || ne[0].Type != wire.NotifyBlockedByPolicy {
		t.Fatalf("EventNotify %v", a.events)
	}
	// I2 retransmission goes on.
	if d := aa.Deadline(); d.IsZero() {
		t.Fatal("no I2 retransmission timer")
	}

	n2, err := b.e.RefuseI2(i2b)
	if err != nil {
		t.Fatal(err)
	}
	a.deliver(t0.Add(time.Millisecond), n2)
	if aa.State() != EFailed {
		t.Fatalf("bound NOTIFY: state %v (%v)", aa.State(), a.lastErr())
	}
	ev := a.eventsOf(EventFailed)
	var ne *NotifyError
	if len(ev) != 1 || !errors.As(ev[0].Err, &ne) || ne.Type != wire.NotifyBlockedByPolicy {
		t.Fatalf("failure events %v, want one *NotifyError BLOCKED_BY_POLICY", a.events)
	}
	if errors.Is(ev[0].Err, ErrTimeout) {
		t.Fatal("bound NOTIFY reported as a timeout")
	}
}

// TestNotifyUnboundIsCause: an error NOTIFY without data (nothing binds it
// to our I2) in I1-SENT or I2-SENT changes no state; when the exchange then
// times out, EventFailed reports ErrTimeout with the NOTIFY as its cause.
func TestNotifyUnboundIsCause(t *testing.T) {
	for _, s := range []State{I1Sent, I2Sent} {
		t.Run(s.String(), func(t *testing.T) {
			a, b := pair(t)
			if s == I1Sent {
				a.initiate(t0, b.e.HIT())
			} else {
				i2Of(t, a, b)
			}
			aa := a.a(b)
			if aa.State() != s {
				t.Fatalf("state %v", aa.State())
			}
			n, err := b.e.buildNotify(a.e.HIT(), wire.NotifyBlockedByPolicy, nil)
			if err != nil {
				t.Fatal(err)
			}
			deadline := aa.Deadline()
			a.deliver(t0, n)
			if err := a.lastErr(); err != nil {
				t.Fatalf("NOTIFY dropped: %v", err)
			}
			if aa.State() != s || len(a.eventsOf(EventFailed)) != 0 || !aa.Deadline().Equal(deadline) {
				t.Fatalf("unbound NOTIFY changed state: %v, events %v", aa.State(), a.events)
			}
			runOut(t, a, aa, s)
			if aa.State() != EFailed {
				t.Fatalf("after the retransmissions: %v", aa.State())
			}
			ev := a.eventsOf(EventFailed)
			var ne *NotifyError
			if len(ev) != 1 || !errors.Is(ev[0].Err, ErrTimeout) || !errors.As(ev[0].Err, &ne) || ne.Type != wire.NotifyBlockedByPolicy {
				t.Fatalf("failure %v, want ErrTimeout caused by BLOCKED_BY_POLICY", ev)
			}
		})
	}
}

// TestNotifyEstablishedNoChange: on an ESTABLISHED association even an
// error NOTIFY carrying the base exchange's #J is only reported (§6.13),
// on either side; a forged one is not even reported.
func TestNotifyEstablishedNoChange(t *testing.T) {
	a, b := pair(t)
	l := bex(t, a, b)
	b.a(a).DataReceived(t0)
	var j []byte
	for _, p := range l.seen {
		if ptype(p.b) == wire.I2 {
			j = solutionOfNotify(t, p.b)
		}
	}
	for _, c := range []struct{ from, to *host }{{b, a}, {a, b}} {
		as := c.to.a(c.from)
		info := as.Info()
		c.to.events = nil
		n, err := c.from.e.buildNotify(c.to.e.HIT(), wire.NotifyBlockedByPolicy, j)
		if err != nil {
			t.Fatal(err)
		}
		if out := c.to.deliver(t0.Add(time.Second), tamper(t, n, wire.ParamHIPSignature, -1)); len(out) != 0 {
			t.Fatal("forged NOTIFY answered")
		}
		mustErr(t, c.to.lastErr(), ErrBadSignature)
		if len(c.to.events) != 0 {
			t.Fatalf("%s: forged NOTIFY reported: %v", c.to.name, c.to.events)
		}
		if out := c.to.deliver(t0.Add(time.Second), n); len(out) != 0 {
			t.Fatal("NOTIFY answered")
		}
		if as.State() != Established || as.Info() != info || !as.Deadline().IsZero() {
			t.Fatalf("%s: NOTIFY changed the association: %+v", c.to.name, as.Info())
		}
		if len(c.to.events) != 1 || c.to.events[0].Kind != EventNotify {
			t.Fatalf("%s: events %v, want one EventNotify", c.to.name, c.to.events)
		}
	}
}

func solutionOfNotify(t *testing.T, i2 []byte) []byte {
	t.Helper()
	p, _ := wire.ParsePacket(i2)
	s, _ := p.Param(wire.ParamSolution)
	sol, err := wire.ParseSolution(s.Contents())
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), sol.J...)
}
