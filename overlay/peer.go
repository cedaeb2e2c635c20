package overlay

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"hipnet.dev/esp"
	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/locator"
	"hipnet.dev/nat"
)

// peer is the per-peer struct: what the data path needs in atomics, the
// BEX send queue under a mutex, and the control goroutine's state.
type peer struct {
	hit wire.HIT

	// Data path: read and written without locks.
	addr       atomic.Pointer[netip.AddrPort] // locator; nil: none known
	out        atomic.Pointer[esp.Outbound]   // nil: no outbound SA (queue instead)
	rekeyAsked atomic.Bool                    // the data path asked for a rekey
	// puzzle is the puzzle the association waits for (handshake
	// Association.Solving), kept by the control goroutine for the solver
	// goroutines (puzzle.go): a search for another one stops.
	puzzle atomic.Pointer[handshake.Puzzle]
	pokes  atomic.Uint32 // pending poke bits for the control goroutine
	static atomic.Bool   // locator given by AddPeer (keep the peer without an association)

	bytesIn, bytesOut, pktsIn, pktsOut atomic.Uint64
	lastSeen                           atomic.Int64                    // unix ns (Stack.clock) of the last authenticated ESP from the peer
	lastHandshake                      atomic.Int64                    // unix ns of the last base exchange or rekey completed
	secret                             atomic.Pointer[[secretLen]byte] // the association's exported secret (secret.go); nil: none

	// mu guards pending: inner segments (built, not yet sealed) written
	// while the BEX runs, in order, at most Config.QueueLimit.
	mu      sync.Mutex
	pending []pendingSeg

	// Control goroutine only.
	assoc    *handshake.Association
	rec      *assocRecord // the current record in the association table, nil if none
	in, prev *inboundSA   // current and previous (before the last rekey) inbound SA
	tm       timerEntry   // its entry in the timer heap (timers.go)
	// x is what most peers never need (peerExt): &noExt until the first
	// write, through mut.
	x *peerExt

	// relayed: the current locator is the relay's, so control packets go
	// through it too (sendPeer); set by the control goroutine, read by
	// Peers (PeerInfo.Path).
	relayed atomic.Bool
	// nominated is the pair ICE nominated, written by the session's
	// callback and handed to the Set by the control goroutine
	// (path.go nominated); nil: none.
	nominated atomic.Pointer[netip.AddrPort]
	lastOut   atomic.Int64 // unix ns (Stack.clock) of the last ESP or keepalive sent

	// Locators of the association (locators.go). The data path
	// counts what the current locator carries and hands over the source of
	// authenticated ESP from elsewhere; the control goroutine owns path.
	configured atomic.Pointer[[]netip.AddrPort] // AddPeer's locators, all of them
	inCur      atomic.Uint64                    // authenticated data packets from the current locator
	inKA       atomic.Uint64                    // authenticated keepalives from the current locator
	foreign    atomic.Pointer[foreignSource]    // authenticated ESP from another address, for the control goroutine
	located    atomic.Bool                      // a locator Set decides p's path: count for it
	suspect    atomic.Bool                      // the current path is being checked: keep copies of what is sent (inflight.go)
	held       atomic.Pointer[inflight]         // those copies; set by the control goroutine before suspect, loaded once by the data path
	pathIdle   atomic.Bool                      // the control goroutine stopped reading the counts: poke on use
	path       *pathState                       // control goroutine only; nil: no locator Set (locators.go)
	lastData   int64                            // control goroutine: pktsIn+pktsOut at the last idle check (idle.go)
	idleSince  int64                            // control goroutine: monoOf when lastData last changed; 0: not yet
	saSince    int64                            // control goroutine: monoOf when the outbound SA was installed (rekeying.go); 0: none
	saBase     uint64                           // control goroutine: bytesOut then
}

// peerExt is the control goroutine's state of a peer that only some
// peers need: a rekey in its switch, waiting Connects, a dial, a puzzle
// search, a rendezvous registration, a relayed path. A relay holds
// thousands of registered hosts' peers that need none of it, so it is
// allocated on first use (mut) and read through the shared, always-zero
// noExt before that: reads need no nil check, and a peer pays for it
// only when it needs it.
type peerExt struct {
	nextOut      *esp.Outbound // rekeyed outbound SA waiting for the peer to finish its rekey
	switchAt     time.Time     // when nextOut is used anyway
	crossedRekey bool          // the peer's rekey UPDATE crossed ours
	rekeyOwed    bool          // a rekey must follow (through a relay we moved to): kept until one starts (sas.go)
	lostState    bool          // the exchange was started by an unauthenticated UPDATE (inbound.go lostState)
	waiters      []chan error  // Connects waiting for the BEX
	keyWaiters   []chan error  // ConnectKeyed callers waiting for the keys (secret.go)
	rvsUntil     time.Time     // our RENDEZVOUS registration with this peer lasts until (rendezvous.go)
	dial         *dialState    // while a dial runs (dial.go)
	// cfgTaken is the configured locators (AddPeer) last made where a
	// dial starts (dial.go takeConfigured).
	cfgTaken    *[]netip.AddrPort
	solveCancel chan struct{} // closed to stop the solver of puzzle (puzzle.go)

	// Paths (path.go).
	relay   *peer           // the relay the association runs through; nil: direct
	relayTo netip.AddrPort  // valid: we are the registered end, add RELAY_TO with this address
	ice     *nat.Session    // connectivity checks of a relayed association
	oppHIT  []chan wire.HIT // ConnectAddr callers waiting for the R1 to name the peer
	// relayCheck is a probe through the relay to a new address of the
	// peer behind it (relayMoved); nil: none sent.
	relayCheck *relayCheck
}

// monoEpoch and monoOf give the control goroutine's times of a peer in
// 8 octets instead of a time.Time's 24, on the monotonic clock: ns since
// the process started, never 0.
var monoEpoch = time.Now()

func monoOf(t time.Time) int64 { return int64(t.Sub(monoEpoch)) + 1 }

// noExt is every peer's x until it needs its own. It is never written:
// writes go through mut, and a field is reset only where p.x is known to
// be p's own (it held what is reset). TestNoExtUntouched checks.
var noExt peerExt

// mut returns p's own peerExt, allocating it on first use (control
// goroutine).
func (p *peer) mut() *peerExt {
	if p.x == &noExt {
		p.x = new(peerExt)
	}
	return p.x
}

// clearNextOut forgets a rekeyed outbound SA waiting for its switch.
func (p *peer) clearNextOut() {
	if p.x != &noExt {
		p.x.nextOut, p.x.switchAt = nil, time.Time{}
	}
}

func newPeer(h wire.HIT) *peer {
	p := &peer{hit: h, x: &noExt}
	p.tm = timerEntry{idx: -1, p: p}
	return p
}

func (p *peer) locator() (netip.AddrPort, bool) {
	if a := p.addr.Load(); a != nil {
		return *a, true
	}
	return netip.AddrPort{}, false
}

func (p *peer) setLocator(a netip.AddrPort) {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	p.addr.Store(&a)
}

func (p *peer) resetCounters() {
	p.bytesIn.Store(0)
	p.bytesOut.Store(0)
	p.pktsIn.Store(0)
	p.pktsOut.Store(0)
}

// Poke bits: what the data path asks of the control goroutine.
const (
	pokeConnect uint32 = 1 << iota // data queued: start the BEX
	pokeData                       // first ESP arrived on an SA marked notify
	pokeRekey                      // the outbound SA needs rekeying
	pokePath                       // the association is in use again, or ESP came from a new address (locators.go)
)

// poke asks the control goroutine to look at p. It does not block and,
// while a poke of the same kind is pending, costs one atomic operation.
func (s *Stack) poke(p *peer, k uint32) {
	if p.pokes.Or(k)&k != 0 {
		return
	}
	s.pokeMu.Lock()
	s.poked = append(s.poked, p)
	s.pokeMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// lookupPeer returns the peer struct for h, or nil.
func (s *Stack) lookupPeer(h wire.HIT) *peer {
	s.peersMu.RLock()
	p := s.peers[h]
	s.peersMu.RUnlock()
	return p
}

// set returns p's locator Set, nil if it has none (control goroutine).
func (p *peer) set() *locator.Set {
	if p.path == nil {
		return nil
	}
	return p.path.set
}

// foreignSource is an address other than the current locator that
// authenticated ESP of the peer's came from, and how many octets of it
// (pathIn), until the control goroutine takes it (feedPath). data: not
// only keepalives came from it, which the Set tells apart (a keepalive
// shows the path, not that the association is in use).
type foreignSource struct {
	addr netip.AddrPort
	n    atomic.Uint64
	data atomic.Bool
}
