package locator

import (
	"net/netip"
	"time"
)

// MaxLocators bounds the locators a Set holds for one peer. A LOCATOR_SET
// could name some 70; a host with more than a few usable addresses is
// rare, and a fixed bound keeps both memory and every scan small. When the
// Set is full, a new locator takes the place of a deprecated or failed one,
// or of an unverified packet source, or is ignored.
const MaxLocators = 8

// MaxCandidates bounds the packet sources under verification at once: an
// attacker who copies the peer's packets from many addresses gets at most
// this many probed, and a real NAT rebinding still finds a free place.
const MaxCandidates = 2

// setRepeatWindow is how long an identical LOCATOR_SET is taken for a
// duplicate and not processed again (RFC 8046 §5.3: "MUST detect and
// avoid reprocessing a LOCATOR_SET parameter that is redundant with a
// LOCATOR_SET parameter that has been recently received and processed").
// Copies sent to several of our addresses or through the rendezvous server
// arrive within a few round trips; the same set after that is a new
// announcement, whose lifetimes count from its reception (§4).
const setRepeatWindow = 5 * time.Second

// Set is one peer's locators and the choice of the one in use: the
// current locator ("the active path" of DESIGN.md, "the preferred
// locator" of RFC 8046 §5.5); the others are standbys. It is not safe for
// concurrent use.
//
// Methods that take an event return the decisions it led to, in order, in
// a slice that is valid until the next call on the Set.
type Set struct {
	cfg    Config
	e      []entry // slots; Kind 0 marks a free one; len <= MaxLocators
	cur    int     // index of the current locator in e; -1: none
	assoc  bool    // the association exists: probes (UPDATEs) can be sent
	credit credit
	out    []Decision

	lastUse time.Time // last data or control we sent, or packet we got that was not a keepalive

	setSum uint64    // FNV-1a of the last LOCATOR_SET processed
	setAt  time.Time // and when
}

// entry is a locator and the timers of its checks.
type entry struct {
	Locator

	bootstrap bool // configured before the association: may carry the base exchange unverified
	verified  bool // has been Active: its reachability was proven once
	wasActive bool // Deprecated while Active: may still serve if nothing else can (RFC 8046 §4)

	firstSeen   time.Time // when it was learnt
	lastSend    time.Time // last packet to it: data, control, keepalive or probe
	waiting     time.Time // current only: first send since the peer's last packet; zero: none outstanding
	recvUnacked time.Time // current only: first packet from the peer since our last send; zero: none
	lastOK      time.Time // last proof of reachability (probe answered, nominated, relay up)
	inBytes     int64     // octets from it while not Active: what probes to it may cost (AllowProbe)

	probe probe

	failedAt time.Time     // last failure
	retryAt  time.Time     // Failed: earliest next recovery check
	backoff  time.Duration // Failed: the back-off that retryAt used
}

// probe is a check in flight: Attempt n of Config.ProbeCount was sent at
// sentAt; at next the following one goes out or the verdict falls.
type probe struct {
	n       int
	purpose Purpose
	// heard: a liveness check that only the probe's answer ends, not a
	// packet of the peer's on the path (peerOnRelay): it asks whether the
	// peer hears us, which the peer's packets do not tell.
	heard  bool
	sentAt time.Time
	next   time.Time
}

// New returns an empty Set with cfg's timing (zero fields: defaults).
func New(cfg Config) *Set {
	return &Set{cfg: cfg.withDefaults(), cur: -1}
}

// Config returns the timing in use, defaults filled in.
func (s *Set) Config() Config { return s.cfg }

// Current returns the locator in use, if any.
func (s *Set) Current() (Locator, bool) {
	if s.cur < 0 {
		return Locator{}, false
	}
	return s.e[s.cur].Locator, true
}

// Lookup returns the locator at addr, if the Set holds it.
func (s *Set) Lookup(addr netip.AddrPort) (Locator, bool) {
	if i := s.find(norm(addr)); i >= 0 {
		return s.e[i].Locator, true
	}
	return Locator{}, false
}

// Len returns the number of locators held.
func (s *Set) Len() int {
	n := 0
	for i := range s.e {
		if s.e[i].Kind != 0 {
			n++
		}
	}
	return n
}

// Locators appends every locator to dst and returns it.
func (s *Set) Locators(dst []Locator) []Locator {
	for i := range s.e {
		if s.e[i].Kind != 0 {
			dst = append(dst, s.e[i].Locator)
		}
	}
	return dst
}

// find returns the index of the locator at a (normalised), or -1. The
// current locator is looked at first: it is the one the data path names.
func (s *Set) find(a netip.AddrPort) int {
	if c := s.cur; c >= 0 && s.e[c].Addr == a {
		return c
	}
	for i := range s.e {
		if s.e[i].Kind != 0 && s.e[i].Addr == a {
			return i
		}
	}
	return -1
}

// add puts a new Unverified locator in a free slot, or in the place of the
// least useful one (victim), and returns its index; -1 if there is none.
func (s *Set) add(now time.Time, a netip.AddrPort, k Kind, o Origin) int {
	i := -1
	for j := range s.e {
		if s.e[j].Kind == 0 {
			i = j
			break
		}
	}
	if i < 0 {
		if len(s.e) < MaxLocators {
			s.e = append(s.e, entry{})
			i = len(s.e) - 1
		} else if i = s.victim(); i < 0 {
			return -1
		}
	}
	s.e[i] = entry{Locator: Locator{Addr: a, Kind: k, Origin: o, State: Unverified}, firstSeen: now}
	return i
}

// victim picks the locator a new one may replace: never the current one,
// a relay or an Active one; first a Deprecated one, then a failed packet
// source, another failed one, an unverified packet source.
func (s *Set) victim() int {
	v, best := -1, 5
	for i := range s.e {
		e := &s.e[i]
		if i == s.cur || e.Kind == Relayed {
			continue
		}
		r := 5
		switch {
		case e.State == Deprecated:
			r = 0
		case e.State == Failed && e.Origin == OriginPacket:
			r = 1
		case e.State == Failed:
			r = 2
		case e.State == Unverified && e.Origin == OriginPacket:
			r = 3
		}
		if r < best {
			v, best = i, r
		}
	}
	return v
}
