package locator

import (
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// fuzzPool is the addresses the fuzzer's events name: the peer's, third
// addresses, relays, and an IPv4-mapped spelling of A.
var fuzzPool = [8]netip.AddrPort{addrA, addrB, addrC, addrX, addrY, relayA, relayA2,
	netip.AddrPortFrom(netip.AddrFrom16(addrA.Addr().As16()), addrA.Port())}

var fuzzLifetimes = [4]uint32{1, 10, 600, ^uint32(0)}

// FuzzSet feeds random event sequences to a Set, two octets per event,
// and checks its invariants after each:
//
//   - at most MaxLocators, one per address; the current one exists;
//   - when any locator is usable, one is current, and none ranks above it;
//   - the current locator is never unverified, except a configured one
//     before the association exists, or when nothing usable is left, and
//     then data to it is paid for with credit;
//   - a locator is ACTIVE only if something other than a packet vouched
//     for its address (Verified, Established, Nominated, RelayUp): packets
//     never verify an address, and never move the path to it;
//   - each Switch starts where the last one ended, and ends at Current;
//   - keepalives go to the current locator, probes to a held locator that
//     is not deprecated (unless it is the current one, checked for
//     liveness), only once the association exists;
//   - after HandleTimeout(now), Deadline is zero or after now (no busy
//     loop);
//   - the credit stays within its bounds; MaxCandidates holds; no panic.
func FuzzSet(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := &fuzzHarness{t: t, s: New(Config{}), now: t0,
			vouched: map[netip.AddrPort]bool{}, configured: map[netip.AddrPort]bool{}}
		for len(data) >= 2 {
			h.step(data[0], data[1])
			data = data[2:]
		}
	})
}

// fuzzSeeds are scenarios of the unit tests in event octets (op, arg);
// testdata/fuzz/FuzzSet holds them too, with inputs that once broke an
// invariant. Ops (op % 18): 0 Configure, 1 Established, 2 ApplyLocatorSet
// (arg: which of the first six pool addresses; op>>3: the preferred one
// and the lifetime; op>>5: the Traffic Type), 3 Received, 4
// ReceivedKeepalive, 5 Sent, 6 Verified, 7 VerifyFailed, 8 Nominated, 9
// NominationLost, 10 RelayUp, 11 RelayDown, 12 Remove, 13 time passes (arg
// ms, or arg×100 ms with op&0x40) and HandleTimeout, 14 HandleTimeout at
// Deadline, 15 Allow, 16 AllowProbe, 17 the last probe is answered. The
// address is fuzzPool[arg&7] (A B C X Y relay relay2 mapped-A), the relay
// HIT relayH2 if arg&8.
var fuzzSeeds = [][]byte{
	// Association over A; B announced (lifetime 600 s) and verified;
	// traffic both ways; A dies while we send; liveness probes; failover.
	{0, 0, 1, 0, 20, 3, 17, 0, 5, 0, 3, 40, 13, 10, 5, 0, 3, 40, 13, 10,
		5, 0, 13, 50, 5, 0, 13, 50, 14, 0, 14, 0, 14, 0, 14, 0, 14, 0},
	// Through relay R; ICE nominates A; A goes silent: fallback; the
	// recovery probe is answered: back to A.
	{10, 5, 1, 5, 8, 0, 5, 0, 3, 40, 5, 0, 13, 100, 5, 0, 14, 0, 14, 0, 14, 0,
		14, 0, 14, 0, 14, 0, 14, 0, 17, 0, 14, 0},
	// Rebinding: packets from X; its probe answered; the path moves.
	{0, 0, 1, 0, 5, 0, 3, 123, 17, 0, 13, 100, 5, 0, 3, 123},
	// Copies from X and Y, never answered; probes and data paid for.
	{0, 0, 1, 0, 5, 0, 3, 40, 3, 3, 3, 4, 14, 0, 14, 0, 16, 3, 15, 4, 3, 3,
		14, 0, 14, 0, 14, 0, 67, 20, 3, 3},
	// Lifetimes: B and C announced for 1 s, verified, expired; renewed.
	{0, 0, 1, 0, 2, 6, 17, 0, 14, 0, 67, 200, 20, 6, 17, 0, 14, 0},
	// Relays come and go; ICE nominates and loses B; a relay moves.
	{10, 5, 10, 14, 11, 8, 1, 5, 8, 1, 9, 1, 10, 6, 11, 0, 12, 6},
}

type fuzzHarness struct {
	t          *testing.T
	s          *Set
	now        time.Time
	vouched    map[netip.AddrPort]bool
	configured map[netip.AddrPort]bool // configured before the association
	lastProbe  netip.AddrPort
}

func (h *fuzzHarness) step(op, arg byte) {
	s := h.s
	a := norm(fuzzPool[arg&7])
	hit := relayH
	if arg&8 != 0 {
		hit = relayH2
	}
	prev := netip.AddrPort{}
	if c, ok := s.Current(); ok {
		prev = c.Addr
	}
	var ds []Decision
	timeout := false
	switch op % 18 {
	case 0:
		if !s.assoc {
			h.configured[a] = true // may be current unverified, as a bootstrap
		}
		ds = s.Configure(h.now, a)
	case 1:
		h.vouched[a] = true
		ds = s.Established(h.now, a)
	case 2:
		var locs []wire.Locator
		for i := range 6 {
			if arg&(1<<i) == 0 {
				continue
			}
			l := fuzzPool[i].Addr()
			if l.IsMulticast() {
				continue
			}
			typ := wire.LocatorTypeAddr
			if i&1 == 1 {
				typ = wire.LocatorTypeESP
			}
			locs = append(locs, wire.Locator{Traffic: (op >> 5) % 3, Type: typ, Preferred: i == int(op>>3)%6,
				Lifetime: fuzzLifetimes[(op>>3)&3], Addr: l})
		}
		ds = s.ApplyLocatorSet(h.now, locatorSet(h.t, locs...), 10500)
	case 3:
		ds = s.Received(h.now, a, int(arg)*10)
	case 4:
		ds = s.ReceivedKeepalive(h.now, a, int(arg))
	case 5:
		s.Sent(h.now, a)
	case 6:
		h.vouched[a] = true
		ds = s.Verified(h.now, a)
	case 7:
		ds = s.VerifyFailed(h.now, a)
	case 8:
		h.vouched[a] = true
		ds = s.Nominated(h.now, a)
	case 9:
		ds = s.NominationLost(h.now, a)
	case 10:
		h.vouched[a] = true
		ds = s.RelayUp(h.now, hit, a)
	case 11:
		ds = s.RelayDown(h.now, hit)
	case 12:
		ds = s.Remove(h.now, a)
	case 13:
		unit := time.Millisecond
		if op&0x40 != 0 {
			unit = 100 * time.Millisecond
		}
		h.now = h.now.Add(time.Duration(arg) * unit)
		ds, timeout = s.HandleTimeout(h.now), true
	case 14:
		if d := s.Deadline(); d.After(h.now) {
			h.now = d
		}
		ds, timeout = s.HandleTimeout(h.now), true
	case 15:
		s.Allow(h.now, a, int(arg)*10)
	case 16:
		s.AllowProbe(h.now, a, int(arg)*10)
	case 17:
		if h.lastProbe.IsValid() {
			h.vouched[h.lastProbe] = true
			ds = s.Verified(h.now, h.lastProbe)
		}
	}
	h.check(prev, ds, timeout)
}

func (h *fuzzHarness) check(prev netip.AddrPort, ds []Decision, timeout bool) {
	t, s := h.t, h.s
	if len(s.e) > MaxLocators {
		t.Fatalf("%d slots", len(s.e))
	}
	usable, candidates := false, 0
	for i := range s.e {
		e := &s.e[i]
		if e.Kind == 0 {
			continue
		}
		for j := range i {
			if s.e[j].Kind != 0 && s.e[j].Addr == e.Addr {
				t.Fatalf("two locators at %v", e.Addr)
			}
		}
		if s.usable(i) {
			usable = true
		}
		if e.State == Active && !h.vouched[e.Addr] {
			t.Fatalf("%v is ACTIVE, vouched for by nothing but packets", e.Addr)
		}
		if e.bootstrap && (s.assoc || e.Origin != OriginConfig || e.State != Unverified) {
			t.Fatalf("bootstrap %+v with association %v", e.Locator, s.assoc)
		}
		if e.Origin == OriginPacket && e.State == Unverified {
			candidates++
		}
		if e.inBytes < 0 || e.probe.n < 0 || e.probe.n > s.cfg.ProbeCount {
			t.Fatalf("entry %+v", e)
		}
	}
	if candidates > MaxCandidates {
		t.Fatalf("%d candidates", candidates)
	}
	if s.credit.n < 0 || s.credit.n > maxCredit {
		t.Fatalf("credit %d", s.credit.n)
	}
	if s.cur >= len(s.e) || (s.cur >= 0 && s.e[s.cur].Kind == 0) {
		t.Fatalf("current %d of %d", s.cur, len(s.e))
	}
	if usable {
		if !s.usable(s.cur) {
			t.Fatalf("a locator is usable but the current one (%d) is not: %v", s.cur, s.Locators(nil))
		}
		for i := range s.e {
			if s.e[i].Kind != 0 && s.outranks(i, s.cur) {
				t.Fatalf("%v outranks the current %v", s.e[i].Locator, s.e[s.cur].Locator)
			}
		}
	}
	cur := netip.AddrPort{}
	if c, ok := s.Current(); ok {
		cur = c.Addr
		e := &s.e[s.cur]
		if c.State == Unverified && !e.bootstrap && usable {
			t.Fatalf("unverified current %+v with a usable locator", c)
		}
		// Data to a current locator that is not proven is paid for
		// (RFC 8046 §5.6.1 Figure 9): one octet more than the credit is
		// refused (and, refused, spends nothing).
		if !e.bootstrap && !e.proven() && s.Allow(h.now, c.Addr, int(min(s.credit.n+1, 1<<30))) {
			t.Fatalf("data beyond the credit allowed to the %v current locator", c.State)
		}
	}
	at := prev
	for _, d := range ds {
		switch d.Action {
		case Switch:
			if d.From != at {
				t.Fatalf("switch %v, but the current locator was %v", d, at)
			}
			at = d.To
			if d.To.IsValid() && !h.vouched[d.To] && !h.configured[d.To] {
				t.Fatalf("switch to %v, vouched for by nothing but packets", d.To)
			}
		case SendProbe:
			h.lastProbe = d.To
			l, ok := s.Lookup(d.To)
			// A deprecated locator is probed only as the path in use.
			dep := l.State == Deprecated && !(d.Purpose == ProbeLiveness && d.To == cur)
			if !ok || dep || !s.assoc || d.Attempt < 1 || int(d.Attempt) > s.cfg.ProbeCount {
				t.Fatalf("probe %v: locator %+v (held %v), association %v", d, l, ok, s.assoc)
			}
		case SendKeepalive:
			// To the current locator, or to an ICE pair that is not
			// (pairKeepaliveDue), never to anything else.
			if l, ok := s.Lookup(d.To); d.To != cur && (!ok || l.Kind != ICE || d.Kind != ICE) {
				t.Fatalf("keepalive to %v (%+v), current %v", d.To, l, cur)
			}
		default:
			t.Fatalf("decision %+v", d)
		}
	}
	if at != cur {
		t.Fatalf("switches end at %v, current is %v", at, cur)
	}
	if timeout {
		if d := s.Deadline(); !d.IsZero() && !d.After(h.now) {
			t.Fatalf("deadline %v not after now %v after HandleTimeout; %v", d.Sub(t0), h.now.Sub(t0), s.Locators(nil))
		}
	}
}
