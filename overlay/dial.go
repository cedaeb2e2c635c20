package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// Dialling a peer with several configured locators, in the manner of
// Happy Eyeballs (RFC 8305 §5): the I1 goes to the first; if no R1 has
// come dialAttemptDelay later, it goes to the next as well, and so on;
// retransmissions go to every locator tried. The first accepted R1 decides:
// the I2 and the association follow its source. An R1 is signed, so
// whichever address it comes from, it is the peer's.
//
// The I1 is the same packet for every locator: it carries no address, and
// HIP's state is per HIT, not per path (RFC 7401 §4.4), so the Responder
// sees retransmissions, never two exchanges.

// dialAttemptDelay is RFC 8305 §5's recommended Connection Attempt Delay.
const dialAttemptDelay = 250 * time.Millisecond

// dialState is a dial's progress through the configured locators
// (control goroutine only).
type dialState struct {
	i1    []byte           // the last I1 sent, for the next locator
	tried []netip.AddrPort // locators the I1 went to
	next  time.Time        // when the next locator is tried; zero: none left
	// wrong is a host that answered at a tried locator with another HIT.
	wrong    wire.HIT
	wrongAt  netip.AddrPort
	viaRelay bool // the I1 went to a relay
}

// dialSent notes a control packet sent to p at to while p's base exchange
// is in I1-SENT: an I1 is sent to the other locators tried as well.
func (c *control) dialSent(p *peer, pkt []byte, to netip.AddrPort, now time.Time) {
	a := p.assoc
	if a == nil || a.State() != handshake.I1Sent || len(pkt) < 4 || wire.PacketType(pkt[2]&0x7f) != wire.I1 {
		return
	}
	if p.x.dial == nil {
		p.mut().dial = &dialState{}
	}
	d := p.x.dial
	d.i1 = append(d.i1[:0], pkt...)
	if p.x.relay != nil {
		d.viaRelay = true
		return
	}
	first := len(d.tried) == 0
	if first {
		c.dialling++
	}
	if !containsAddr(d.tried, to) {
		d.tried = append(d.tried, to)
	}
	for _, t := range d.tried {
		if t != to {
			c.sendControl(pkt, t) // a retransmission: to every locator tried
		}
	}
	if first && c.untried(p).IsValid() {
		d.next = now.Add(dialAttemptDelay)
		c.timers.set(p, earliest(p.tm.deadline, d.next))
	}
}

// takeConfigured makes the first of AddPeer's locators where a dial starts,
// once for each AddPeer call (control goroutine; AddPeer runs on any
// goroutine, the exchange's state is here):
//   - with no exchange, or one that ended, the locator moves there;
//   - during a dial (I1-SENT) the I1 goes there at once, as to a locator
//     tried, and the rest of the new locators follow dialAttemptDelay
//     apart; the locator stays, so that an R1 through a rendezvous server
//     is still followed (followRendezvous), and an answer from the new
//     address moves it (followAnswer);
//   - once an answer has fixed the locator (I2-SENT, R2-SENT,
//     ESTABLISHED), the new locators are standby ones (the Set's), and
//     the address the association runs over stays where the next dial
//     starts: it may be one the association learnt (an I2 from a NAT
//     mapping, mobility), which no configured address replaces;
//   - while the association closes (CLOSING), nothing moves: its CLOSE
//     goes where the association ran, and the next dial takes them;
//   - an association through a relay keeps the relay's locator.
func (c *control) takeConfigured(p *peer, now time.Time) {
	cf := p.configured.Load()
	if cf == nil || p.x.cfgTaken == cf || p.x.relay != nil {
		return
	}
	st := handshake.Unassociated
	if p.assoc != nil {
		st = p.assoc.State()
	}
	if st == handshake.Closing {
		return
	}
	p.mut().cfgTaken = cf
	if st == handshake.I2Sent || established(p) {
		return
	}
	at := (*cf)[0]
	d := p.x.dial
	if st != handshake.I1Sent || d == nil || len(d.i1) == 0 {
		p.setLocator(at)
		return
	}
	if !containsAddr(d.tried, at) {
		d.tried = append(d.tried, at)
		c.s.log.Debug("dial: next locator", "peer", p.hit.String(), "locator", at)
		c.sendControl(d.i1, at)
	}
	if d.next.IsZero() && c.untried(p).IsValid() {
		d.next = now.Add(dialAttemptDelay)
		c.timers.set(p, earliest(p.tm.deadline, d.next))
	}
}

// untried returns the next configured locator the I1 has not gone to.
func (c *control) untried(p *peer) netip.AddrPort {
	cf := p.configured.Load()
	if cf == nil {
		return netip.AddrPort{}
	}
	for _, a := range *cf {
		if p.x.dial == nil || !containsAddr(p.x.dial.tried, a) {
			return a
		}
	}
	return netip.AddrPort{}
}

// dialTimeout tries the next locator when its time has come.
func (c *control) dialTimeout(p *peer, now time.Time) {
	d := p.x.dial
	if d == nil || d.next.IsZero() || now.Before(d.next) {
		return
	}
	d.next = time.Time{}
	if p.assoc == nil || p.assoc.State() != handshake.I1Sent || len(d.i1) == 0 {
		return
	}
	to := c.untried(p)
	if !to.IsValid() {
		return
	}
	d.tried = append(d.tried, to)
	c.s.log.Debug("dial: next locator", "peer", p.hit.String(), "locator", to)
	c.sendControl(d.i1, to)
	if c.untried(p).IsValid() {
		d.next = now.Add(dialAttemptDelay)
	}
}

// followAnswer moves p's locator to where the R1 that was just accepted
// came from, if that is another locator we dialled.
func (c *control) followAnswer(p *peer, from netip.AddrPort) {
	from = unmapPort(from)
	at, ok := p.locator()
	if !ok || at == from || p.x.relay != nil || p.x.dial == nil || !containsAddr(p.x.dial.tried, from) {
		return
	}
	p.setLocator(from)
	c.s.log.Info("dial: answered", "peer", p.hit.String(), "locator", from)
}

// wrongHost notes an R1 from sender, at from, that no exchange of ours
// expected: if from is a locator we are dialling another HIT at, the dial
// error will say that a different host answered there.
func (c *control) wrongHost(sender wire.HIT, from netip.AddrPort) {
	if c.dialling <= 0 {
		return
	}
	from = unmapPort(from)
	for _, p := range c.s.peerList() {
		if p.hit != sender && p.x.dial != nil && p.assoc != nil && p.assoc.State() == handshake.I1Sent && containsAddr(p.x.dial.tried, from) {
			p.x.dial.wrong, p.x.dial.wrongAt = sender, from
		}
	}
}

// endDial forgets the dial's progress.
func (c *control) endDial(p *peer) {
	if p.x.dial != nil && len(p.x.dial.tried) > 0 {
		c.dialling--
	}
	if p.x.dial != nil {
		p.x.dial = nil // p.x is p's own: it held the dial
	}
}

// dialError is the error of a failed base exchange, with what the dial
// saw: which locators did not answer, or who answered instead.
func (c *control) dialError(p *peer, err error) error {
	if !errors.Is(err, handshake.ErrTimeout) {
		return bexError(p.hit, err)
	}
	d := p.x.dial
	if d == nil {
		d = &dialState{}
	}
	return d.error(p.hit, "", ErrHandshakeTimeout)
}

// error is the DialError of a dial that saw d, ending on cause; when is
// "" for retransmissions run out, " before the deadline" for a context.
func (d *dialState) error(h wire.HIT, when string, cause error) *DialError {
	var why string
	switch {
	case !d.wrong.IsZero():
		why = fmt.Sprintf("a different host (%v) answered at %v", d.wrong, d.wrongAt)
	case d.viaRelay:
		why = "no answer through the relay" + when + " (the peer is not registered with it, or does not answer)"
	case len(d.tried) > 0:
		why = "no answer from " + joinAddrs(d.tried) + when
	default:
		why = "no answer" + when
	}
	return &DialError{HIT: h, Reason: why, Tried: append([]netip.AddrPort(nil), d.tried...), WrongHost: d.wrong,
		Err: cause, timeout: true}
}

// DialError is a base exchange that did not complete: which locators were
// tried and what was seen. It unwraps to ErrHandshakeTimeout (or to the
// context's error when the caller's deadline ended first), and as a
// net.Error its Timeout is true.
type DialError struct {
	HIT       wire.HIT
	Reason    string           // "no answer from ...", "a different host (...) answered at ..."
	Tried     []netip.AddrPort // the locators the I1 went to
	WrongHost wire.HIT         // a host that answered with another HIT; zero: none
	Err       error
	timeout   bool
}

// Error says what the dial saw, once: "handshake timed out: no answer
// from 192.0.2.1:10500". The *net.OpError around it names the address.
func (e *DialError) Error() string {
	return "handshake timed out: " + e.Reason
}

func (e *DialError) Unwrap() error { return e.Err }

// Timeout reports whether the dial ended because time ran out (net.Error).
func (e *DialError) Timeout() bool { return e.timeout }

// Temporary is false (net.Error; deprecated there).
func (e *DialError) Temporary() bool { return false }

func containsAddr(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func joinAddrs(as []netip.AddrPort) string {
	ss := make([]string, len(as))
	for i, a := range as {
		ss[i] = a.String()
	}
	return strings.Join(ss, ", ")
}

// dialReportCmd asks what the dial of hit has seen so far (ctxError).
type dialReportCmd struct {
	hit   wire.HIT
	reply chan dialState
}

func (m dialReportCmd) run(c *control, _ time.Time) {
	var d dialState
	if p := c.s.lookupPeer(m.hit); p != nil && p.x.dial != nil {
		d = dialState{tried: append([]netip.AddrPort(nil), p.x.dial.tried...), wrong: p.x.dial.wrong, wrongAt: p.x.dial.wrongAt, viaRelay: p.x.dial.viaRelay}
	}
	m.reply <- d
}

// deadlineError is the DialError of a dial whose context ended first,
// with what the dial saw by then, if the control goroutine can tell at
// once.
func (s *Stack) deadlineError(ctx context.Context, h wire.HIT) error {
	d := dialState{}
	reply := make(chan dialState, 1)
	select {
	case s.cmds <- dialReportCmd{h, reply}:
		select {
		case d = <-reply:
		case <-time.After(100 * time.Millisecond):
		case <-s.ctrlDone:
		}
	case <-s.closing:
	default:
	}
	return d.error(h, " before the deadline", errors.Join(ErrHandshakeTimeout, ctx.Err()))
}
