package locator

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

// Test addresses (RFC 5737, RFC 3849 documentation ranges).
var (
	t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

	addrA   = netip.MustParseAddrPort("192.0.2.1:10500")
	addrB   = netip.MustParseAddrPort("198.51.100.7:10500")
	addrC   = netip.MustParseAddrPort("[2001:db8::1]:10500")
	addrX   = netip.MustParseAddrPort("203.0.113.66:40000") // a new source: NAT rebinding, or an attacker
	addrY   = netip.MustParseAddrPort("203.0.113.67:40001")
	addrZ   = netip.MustParseAddrPort("203.0.113.68:40002")
	relayA  = netip.MustParseAddrPort("203.0.113.1:10500")
	relayA2 = netip.MustParseAddrPort("203.0.113.2:10500")
	relayH  = wire.MustParseHIT("2001:20::1")
	relayH2 = wire.MustParseHIT("2001:20::2")
)

// probeLen is the size of a probe in the tests: an UPDATE with SEQ,
// ECHO_REQUEST_SIGNED, HIP_MAC and an ECDSA P-256 HIP_SIGNATURE, over UDP.
const probeLen = 200

// sim is a fake clock and a peer: it answers the probes that reach one of
// its live addresses after rtt, and, when traffic runs, answers each of
// our packets on the current path if that path is live. It feeds the Set
// every decision's consequences and records the decisions.
type sim struct {
	t     *testing.T
	s     *Set
	now   time.Time
	rtt   time.Duration
	alive map[netip.AddrPort]bool // the peer answers probes and packets sent here

	events []simEvent // in time order
	log    []stamped  // every decision, with its time

	every    time.Duration // our traffic: a packet on the current path this often; 0: none
	nextSend time.Time
	oneWay   bool // the peer does not answer our traffic (it still answers probes)

	// replyFrom is the source of the peer's answers to what we sent to a
	// path; nil: the path's own address.
	replyFrom func(netip.AddrPort) netip.AddrPort
}

type stamped struct {
	at time.Time
	d  Decision
}

type simEvent struct {
	at   time.Time
	kind int
	addr netip.AddrPort
}

const (
	evVerified = iota // a probe to addr was answered
	evReceived        // a packet of the peer's arrives from addr
)

func newSim(t *testing.T, cfg Config) *sim {
	return &sim{t: t, s: New(cfg), now: t0, rtt: 20 * time.Millisecond, alive: map[netip.AddrPort]bool{}}
}

// take records ds and plays the peer's part in them.
func (m *sim) take(ds []Decision) {
	m.t.Helper()
	for _, d := range ds {
		m.log = append(m.log, stamped{m.now, d})
		if d.Action == SendProbe && m.s.AllowProbe(m.now, d.To, probeLen) && m.alive[d.To] {
			m.push(simEvent{m.now.Add(m.rtt), evVerified, d.To})
		}
	}
}

func (m *sim) push(e simEvent) {
	i, _ := slices.BinarySearchFunc(m.events, e.at, func(a simEvent, t time.Time) int {
		if a.at.After(t) {
			return 1
		}
		return -1 // equal times keep their order
	})
	m.events = slices.Insert(m.events, i, e)
}

// run advances the clock to until, handling timers, the peer's answers and
// our traffic in time order.
func (m *sim) run(until time.Time) {
	m.t.Helper()
	for guard := 0; ; guard++ {
		if guard > 1_000_000 {
			m.t.Fatal("sim: no progress")
		}
		next, what := until, -1 // what: -1 until, 0 timer, 1 event, 2 our send
		consider := func(at time.Time, w int) {
			if at.Before(next) || (at.Equal(next) && what == -1) {
				next, what = at, w
			}
		}
		if d := m.s.Deadline(); !d.IsZero() {
			consider(d, 0)
		}
		if len(m.events) > 0 {
			consider(m.events[0].at, 1)
		}
		if m.every > 0 {
			consider(m.nextSend, 2)
		}
		if next.Before(m.now) {
			next = m.now
		}
		m.now = next
		switch what {
		case -1:
			return
		case 0:
			m.take(m.s.HandleTimeout(m.now))
		case 1:
			e := m.events[0]
			m.events = m.events[1:]
			if e.kind == evVerified {
				m.take(m.s.Verified(m.now, e.addr))
			} else {
				m.take(m.s.Received(m.now, e.addr, 1200))
			}
		case 2:
			m.nextSend = m.now.Add(m.every)
			if c, ok := m.s.Current(); ok {
				m.s.Sent(m.now, c.Addr)
				if m.alive[c.Addr] && !m.oneWay {
					from := c.Addr
					if m.replyFrom != nil {
						from = m.replyFrom(c.Addr)
					}
					m.push(simEvent{m.now.Add(m.rtt), evReceived, from})
				}
			}
		}
	}
}

// for runs for d.
func (m *sim) runFor(d time.Duration) { m.run(m.now.Add(d)) }

// traffic starts our traffic: a packet on the current path every d.
func (m *sim) traffic(d time.Duration) { m.every, m.nextSend = d, m.now }

// current returns the current locator's address.
func (m *sim) current() netip.AddrPort {
	c, _ := m.s.Current()
	return c.Addr
}

// state returns the state of the locator at a.
func (m *sim) state(a netip.AddrPort) State {
	l, ok := m.s.Lookup(a)
	if !ok {
		return 0
	}
	return l.State
}

// mark returns a position in the log, for since and the checks that
// take one: many things happen at one instant, so time cannot tell
// before from after.
func (m *sim) mark() int { return len(m.log) }

// since returns the decisions logged after mark.
func (m *sim) since(mark int) []stamped { return m.log[mark:] }

// switches returns the Switch decisions logged after mark.
func (m *sim) switches(mark int) []stamped {
	var out []stamped
	for _, l := range m.since(mark) {
		if l.d.Action == Switch {
			out = append(out, l)
		}
	}
	return out
}

// probes returns the probes to a logged after mark.
func (m *sim) probes(a netip.AddrPort, mark int) []stamped {
	var out []stamped
	for _, l := range m.since(mark) {
		if l.d.Action == SendProbe && l.d.To == a {
			out = append(out, l)
		}
	}
	return out
}

// established sets up an association with the peer over a, as overlay
// would after the base exchange: Configure, then Established.
func (m *sim) established(a netip.AddrPort) {
	m.t.Helper()
	m.alive[a] = true
	m.take(m.s.Configure(m.now, a))
	m.take(m.s.Established(m.now, a))
	if m.current() != a {
		m.t.Fatalf("current %v after Established(%v)", m.current(), a)
	}
}

// announce applies a LOCATOR_SET of locs (port 10500 for types 0 and 1).
func (m *sim) announce(locs ...wire.Locator) {
	m.t.Helper()
	m.take(m.s.ApplyLocatorSet(m.now, locatorSet(m.t, locs...), 10500))
}

// locatorSet encodes locs with the wire codec and parses them back.
func locatorSet(t testing.TB, locs ...wire.Locator) wire.LocatorSetView {
	t.Helper()
	ls := wire.LocatorSet{Locators: locs}
	b := make([]byte, ls.Len())
	ls.Encode(b)
	v, err := wire.ParseLocatorSet(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// loc is a type-1 locator (ESP SPI and address, RFC 8046 §4.2) for a,
// traffic both, with lifetime sec.
func loc(a netip.AddrPort, sec uint32, preferred bool) wire.Locator {
	return wire.Locator{Traffic: wire.TrafficBoth, Type: wire.LocatorTypeESP, Preferred: preferred,
		Lifetime: sec, SPI: 0x01020304, Addr: a.Addr()}
}

// wantSwitch checks that the last Switch logged after mark went from
// from to to for reason r, and returns when it happened.
func (m *sim) wantSwitch(mark int, from, to netip.AddrPort, r Reason) time.Time {
	m.t.Helper()
	sw := m.switches(mark)
	if len(sw) == 0 {
		m.t.Fatalf("no switch since mark %d; current %v", mark, m.current())
	}
	l := sw[len(sw)-1]
	if l.d.From != from || l.d.To != to || l.d.Reason != r {
		m.t.Fatalf("switch %v at %v, want %v -> %v (%v)", l.d, l.at.Sub(t0), from, to, r)
	}
	return l.at
}

// wantNoSwitch checks that nothing switched after mark.
func (m *sim) wantNoSwitch(mark int) {
	m.t.Helper()
	if sw := m.switches(mark); len(sw) > 0 {
		m.t.Fatalf("unexpected switch %v at %v", sw[0].d, sw[0].at.Sub(t0))
	}
}

// wantState checks the state of the locator at a.
func (m *sim) wantState(a netip.AddrPort, st State) {
	m.t.Helper()
	if got := m.state(a); got != st {
		m.t.Fatalf("%v is %v, want %v", a, got, st)
	}
}

// netip0 is the invalid address: no locator.
var netip0 netip.AddrPort
