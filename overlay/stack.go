package overlay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/nat"
)

// Stack is one HIP node: its UDP socket, its associations and their SAs,
// and the inner UDP ports bound on it. It is safe for concurrent use.
type Stack struct {
	cfg        Config
	log        *slog.Logger
	hit        wire.HIT
	sock       *socket
	queueLimit int

	spis    spiTable // inbound SPI → SA, for the data path
	segs    segments // inner protocols other than UDP → handler (segment.go)
	peersMu sync.RWMutex
	peers   map[wire.HIT]*peer
	portsMu sync.Mutex                            // serialises binds
	ports   atomic.Pointer[map[uint16]*InnerConn] // copy-on-write, read lock-free

	db  *assocTable // the association table (store.go)
	ctl *control

	ctrlIn   chan ctrlPacket // control packets from the read loop
	ctrlPrio chan ctrlPacket // those claiming a known peer, served first (receive.go)
	cmds     chan command
	wake     chan struct{}
	pokeMu   sync.Mutex
	poked    []*peer
	// afters are the wake-ups other goroutines asked for (Stack.after),
	// not yet in the control goroutine's heap; afterShut is set once it
	// has finished, so that later ones are closed at once. Both under
	// pokeMu.
	afters    []afterCmd
	afterShut bool
	// solved carries puzzle solutions from the solver goroutines to the
	// control goroutine; solvers bounds how many search at once
	// (puzzle.go).
	solved  chan puzzleResult
	solvers chan struct{}
	puzzleK atomic.Uint32  // the Responder's current #K, for Stats
	i1lim   *r1Limiter     // R1 limits of direct I1s, owned by the read loop (receive.go)
	ntflim  *notifyLimiter // NOTIFY limits, owned by the read loop (receive.go, ratelimit.go)

	ctr counters

	instance [8]byte // random, drawn at start: a relay's stunAttrInstance
	relays   []*relayClient
	iceMux   *nat.Mux     // ICE sessions by peer (path.go); nil without Config.Relays
	clock    atomic.Int64 // unix ns, set by the control goroutine's tick: a coarse clock for the data path
	// routeMTU asks the route to a locator (pmtu.go): routes.ask, or a
	// test's stand-in.
	routeMTU func(netip.AddrPort) (mtu int, local bool)
	routes   *routes
	pmtus    pmtuCache
	// relayWake is closed and replaced when a relay registration is won
	// or lost (WaitReachable).
	relayWake atomic.Pointer[chan struct{}]

	ctx     context.Context // cancelled by Close: background work
	cancel  context.CancelFunc
	bg      sync.WaitGroup // relay goroutines
	solving sync.WaitGroup // puzzle solvers (puzzle.go)

	stun stunState // stun.go: the binding server's scratch, STUNBinding's transactions

	started   bool
	closed    atomic.Bool
	closing   chan struct{} // closed when Close starts
	ctrlDone  chan struct{} // closed when the control goroutine returned
	readDone  chan struct{} // closed when the read loop returned
	sendDone  chan struct{} // closed when the sender goroutine returned (tx.go)
	tx        txQueue       // sealed packets for the sender goroutine (tx.go)
	closeOnce sync.Once
	closeErr  error
}

// New starts a node: it opens (or adopts) the UDP socket, pre-computes the
// first R1 generation and starts the read loop and the control goroutine.
func New(cfg Config) (*Stack, error) {
	s, err := newStack(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// newStack builds a Stack without starting its goroutines (benchmarks
// drive the control plane directly).
func newStack(cfg Config) (*Stack, error) {
	if cfg.Identity == nil {
		return nil, errors.New("hip: Config.Identity is required")
	}
	if cfg.QueueLimit < 0 {
		return nil, errors.New("hip: negative Config.QueueLimit")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Stack{
		cfg: cfg, log: log, hit: wire.HIT(cfg.Identity.HIT()), queueLimit: cfg.queueLimit(),
		peers:  map[wire.HIT]*peer{},
		ctrlIn: make(chan ctrlPacket, controlBacklog), ctrlPrio: make(chan ctrlPacket, controlBacklog),
		cmds: make(chan command), wake: make(chan struct{}, 1),
		solved: make(chan puzzleResult), solvers: make(chan struct{}, maxSolvers()),
		closing: make(chan struct{}), ctrlDone: make(chan struct{}), readDone: make(chan struct{}),
		sendDone: make(chan struct{}),
	}
	s.ports.Store(&map[uint16]*InnerConn{})
	s.tx.init()
	s.i1lim = newR1Limiter()
	s.ntflim = newNotifyLimiter()
	if cfg.Forwarder != nil {
		// A relay's STUN service is its hosts' keepalive and restart
		// detection (relayclient.go): always on.
		s.cfg.STUNServer = true
		if _, err := rand.Read(s.instance[:]); err != nil {
			return nil, err
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, ra := range cfg.Relays {
		if !ra.Addr.IsValid() {
			return nil, fmt.Errorf("hip: relay %v: invalid address", ra)
		}
		s.relays = append(s.relays, &relayClient{cfg: ra})
	}
	if len(s.relays) > 0 {
		s.iceMux = nat.NewMux()
	}
	s.db = newAssocTable()
	c := &control{s: s, spiRes: map[uint32]time.Time{}, pathBusy: map[*peer]struct{}{}, switchGrace: max(cfg.Handshake.RetransmitTimeout, minSwitchGrace), r1lim: newR1Limiter(), lostProbes: map[wire.HIT]lostProbe{},
		reg: regState{queued: map[wire.HIT][]*regCommand{}}}
	hc := cfg.Handshake
	hc.Identity = cfg.Identity
	if len(s.relays) > 0 {
		// Behind a NAT, maybe: offer ICE (RFC 5770 §4.3) and send
		// candidates when a base exchange runs through a relay.
		if hc.NATModes == nil {
			hc.NATModes = []uint16{wire.NATModeICESTUNUDP, wire.NATModeUDPEncapsulation}
		}
		if hc.Candidates == nil {
			hc.Candidates = c.candidates
		}
	}
	if hc.AllocateSPI == nil {
		hc.AllocateSPI = c.allocSPI
	}
	if r := hc.Registrar; r != nil && r.From == nil {
		// A registrar tells each requester where it saw the request come
		// from, in REG_FROM (registration.go regFrom).
		rc := *r
		rc.From = c.regFrom
		hc.Registrar = &rc
	}
	var err error
	if c.ep, err = handshake.NewEndpoint(hc, time.Now()); err != nil {
		return nil, err
	}
	s.puzzleK.Store(uint32(c.ep.PuzzleDifficulty()))
	s.ctl = c
	if s.sock, err = newSocket(&s.cfg); err != nil {
		return nil, err
	}
	s.routes = newRoutes(s.sock.udp)
	s.routeMTU = s.routes.ask
	return s, nil
}

func (s *Stack) start() error {
	s.started = true
	// The data path's coarse clock is valid from the start, not from when
	// the control goroutine first runs: a figure cached before then
	// (MaxDatagram) would otherwise be stamped 0, expired at once.
	s.clock.Store(time.Now().UnixNano())
	go s.ctl.run()
	go s.readLoop(s.sock.newReader())
	go s.sendLoop()   // tx.go
	s.relaysChanged() // the first wake channel
	if err := s.startRelays(); err != nil {
		_ = s.Close()
		return err
	}
	return nil
}

// ensurePeer returns the peer struct for h, creating one without a
// locator: a peer to reach through a relay.
func (s *Stack) ensurePeer(h wire.HIT) *peer {
	if !s.relayable(h) {
		return nil
	}
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	return s.peerLocked(h)
}

// relayable reports whether h may be dialed through a relay with no
// locator of its own: an ORCHIDv2 HIT (RFC 7343) other than ours. Any
// other 128 bits (the zero HIT of a zero Addr, an IPv6 address, our own
// HIT) would otherwise start a base exchange through the relay that can
// never finish, and leave a peer record behind for each.
func (s *Stack) relayable(h wire.HIT) bool {
	return h.IsORCHIDv2() && h != s.hit
}

// noPeer is the error for a HIT we know no peer of: ErrBadHIT when it is
// not a HIT at all (not ORCHIDv2), ErrUnknownPeer otherwise.
func noPeer(h wire.HIT) error {
	if !h.IsORCHIDv2() {
		return fmt.Errorf("%w: %v is not an ORCHIDv2 HIT", wire.ErrBadHIT, h)
	}
	return fmt.Errorf("%w: %v", ErrUnknownPeer, h)
}

// peerLocked returns the peer struct for h, creating it; s.peersMu is
// held.
func (s *Stack) peerLocked(h wire.HIT) *peer {
	p := s.peers[h]
	if p == nil {
		p = newPeer(h)
		s.peers[h] = p
	}
	return p
}

// HIT returns the node's HIT.
func (s *Stack) HIT() wire.HIT { return s.hit }

// LocalAddr returns the address of the node's UDP socket.
func (s *Stack) LocalAddr() netip.AddrPort { return s.sock.local }

// AddPeer adds static locators of a peer, keeping those given before. A
// dial tries them in order, the next one dialAttemptDelay after the
// previous (dial.go); once the association exists, they are its standby
// locators, verified before traffic moves to one (locators.go). It may be
// called at any time.
func (s *Stack) AddPeer(hit wire.HIT, addrs ...netip.AddrPort) {
	if len(addrs) == 0 {
		return
	}
	s.peersMu.Lock()
	p := s.peerLocked(hit)
	p.static.Store(true)
	var all []netip.AddrPort
	for _, a := range addrs {
		if a = unmapPort(a); !containsAddr(all, a) {
			all = append(all, a)
		}
	}
	if old := p.configured.Load(); old != nil {
		for _, a := range *old {
			if !containsAddr(all, a) {
				all = append(all, a)
			}
		}
	}
	p.configured.Store(&all)
	first := all[0]
	p.addr.CompareAndSwap(nil, &first) // where a dial starts, if nothing else is known
	s.peersMu.Unlock()
	// The control goroutine gives them to the Set, and makes the first
	// where the next dial starts unless an answer fixed the locator
	// (takeConfigured).
	s.poke(p, pokePath)
}

// learnPeer returns the peer struct for h, creating it with locator from
// (the source of an authenticated packet) if it has none. Control
// goroutine only.
func (s *Stack) learnPeer(h wire.HIT, from netip.AddrPort) *peer {
	s.peersMu.Lock()
	defer s.peersMu.Unlock()
	p := s.peerLocked(h)
	if p.addr.Load() == nil {
		p.setLocator(from)
	}
	return p
}

// forgetPeer removes a peer that has neither an association nor an
// AddPeer locator.
func (s *Stack) forgetPeer(p *peer) {
	s.peersMu.Lock()
	if s.peers[p.hit] == p && !p.static.Load() && p.assoc == nil {
		delete(s.peers, p.hit)
	}
	s.peersMu.Unlock()
}

func (s *Stack) peerList() []*peer {
	s.peersMu.RLock()
	defer s.peersMu.RUnlock()
	ps := make([]*peer, 0, len(s.peers))
	for _, p := range s.peers {
		ps = append(ps, p)
	}
	return ps
}

// authorized applies Config.Authorize; the relays of Config.Relays are
// admitted without asking it: configuring a relay is trusting it with our
// registration, and an application that admits only its own peers could
// not know the HIT of a relay given by address.
func (s *Stack) authorized(h wire.HIT) bool {
	return s.cfg.Authorize == nil || s.isRelay(h) || s.cfg.Authorize(h)
}

// Connect ensures an association with hit that can carry data (ESTABLISHED,
// or R2-SENT on the Responder side), starting a base exchange if needed, and
// waits for it. Errors wrap ErrUnknownPeer (no locator), ErrNotAuthorized,
// ErrHandshakeTimeout (retries exhausted, or the context's deadline, which
// is wrapped too), ErrHandshakeFailed (with the handshake error inside) or
// ErrClosed; a cancelled context gives its error.
func (s *Stack) Connect(ctx context.Context, hit wire.HIT) error {
	return s.connectWait(ctx, hit, false)
}

// ConnectKeyed is Connect that returns as soon as the association's keys
// exist: on the Initiator, once its I2 is on its way (RFC 7401 §6.5), a
// round trip and the Responder's I2 processing before Connect would.
// AssociationSecret and PeerIdentity answer for hit from then on, and an
// InnerConn's writes to hit wait in the association's queue (bounded by
// Config.QueueLimit) until the outbound SA is installed, even with
// SetAutoConnect off. It lets a protocol above prepare its first packets
// during the base exchange instead of after it.
//
// The exchange can still fail: the queued packets are then discarded, and
// Connect (which the caller must still call to learn the outcome) returns
// the error. An established association answers at once, as for Connect.
// A relay server's stack (Config.Forwarder) exports no secret, so there
// ConnectKeyed waits as long as Connect.
func (s *Stack) ConnectKeyed(ctx context.Context, hit wire.HIT) error {
	return s.connectWait(ctx, hit, true)
}

func (s *Stack) connectWait(ctx context.Context, hit wire.HIT, keyed bool) error {
	if ctx.Err() != nil {
		// As net.Dialer: a context that ended fails the call, whatever
		// it would have found.
		return s.ctxError(ctx, hit)
	}
	if (s.Live(hit) || keyed && s.hasKeys(hit)) && s.authorized(hit) && !s.closed.Load() {
		// The common case of every dial after the first: no round trip
		// through the control goroutine, which may be busy with others'
		// exchanges. (The record can be a moment behind the association,
		// as the control goroutine's answer could be by the time it is
		// read: either way an association that ends now fails the
		// writes that follow, not this call.)
		return nil
	}
	giveUp := time.Now().Add(relayWaitMax)
	for again := true; ; {
		pending := s.relayPending() // before connect: a registration may land meanwhile
		err := s.connect(ctx, hit, keyed)
		if !errors.Is(err, ErrUnknownPeer) || len(s.relays) == 0 || !s.relayable(hit) {
			return err
		}
		if !pending && !s.relayPending() {
			if !again {
				return err
			}
			again = false // registered while we looked: once more at once
			continue
		}
		if time.Now().After(giveUp) {
			return fmt.Errorf("%w (no relay registered us within %v)", err, relayWaitMax)
		}
		// Relays are configured but none has registered us yet (start-up,
		// or a relay restart): wait for one rather than fail.
		if !s.sleepCtx(ctx, relayWaitStep) {
			if s.closed.Load() {
				return ErrClosed
			}
			return s.ctxError(ctx, hit)
		}
	}
}

// sleepCtx waits d; false if ctx ended or the stack closed first.
func (s *Stack) sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-s.after(d): // the control goroutine's timer heap (timers.go)
		return !s.closed.Load()
	case <-ctx.Done():
		return false
	case <-s.closing:
		return false
	}
}

const (
	relayWaitStep = 20 * time.Millisecond
	// relayWaitMax bounds how long Connect waits for a first relay
	// registration: about a base exchange's whole retransmission budget.
	relayWaitMax = 30 * time.Second
)

// hasKeys reports whether the association with hit has exported its
// secret: established, or keyed on the Initiator (secret.go).
func (s *Stack) hasKeys(hit wire.HIT) bool {
	p := s.lookupPeer(hit)
	return p != nil && p.secret.Load() != nil
}

func (s *Stack) connect(ctx context.Context, hit wire.HIT, keyed bool) error {
	if s.closed.Load() {
		return ErrClosed
	}
	reply := make(chan error, 1)
	select {
	case s.cmds <- connectCmd{hit: hit, reply: reply, keyed: keyed}:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return s.ctxError(ctx, hit)
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return s.ctxError(ctx, hit)
	case <-s.ctrlDone:
		select {
		case err := <-reply:
			return err
		default:
			return ErrClosed
		}
	}
}

func (s *Stack) ctxError(ctx context.Context, h wire.HIT) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return s.deadlineError(ctx, h) // dial.go
	}
	return fmt.Errorf("hip: connect %v: %w", h, ctx.Err())
}

// PeerIdentity returns the authenticated host identity of the peer of an
// association, if there is one.
func (s *Stack) PeerIdentity(hit wire.HIT) (*hostid.PublicKey, bool) {
	r := s.db.get(hit)
	if r == nil || r.Identity == nil {
		return nil, false
	}
	return r.Identity, true
}

// PeerInfo describes one association.
type PeerInfo struct {
	HIT       wire.HIT
	State     string // RFC 7401 §4.4.2 state: "ESTABLISHED", "R2-SENT", "CLOSED", ...
	Path      string // "direct", or "relayed": ESP goes through a relay (path.go pathName)
	Locator   netip.AddrPort
	HITSuite  string // the Responder's HIT suite, which sets RHASH
	DHGroup   string
	HIPCipher string
	ESPSuite  string
	InSPI     uint32
	OutSPI    uint32
	// Inner datagrams and their payload octets carried since the
	// association's base exchange started.
	BytesIn, BytesOut, PacketsIn, PacketsOut uint64
	Since                                    time.Time // when the current state was entered
	Initiator                                bool
	// Locators are the peer's locators with their states, the one in
	// use first (Current set): for an association through a relay, the
	// relay and the pair ICE nominated. Empty while the association has
	// no locator Set (never used, or idle on the one locator it was
	// established over; locators.go).
	Locators []LocatorInfo `json:",omitempty"`
	// LastHandshake is when the last base exchange or rekey of the
	// association completed; LastSeen when its last authenticated ESP
	// packet arrived, to the second (zero: none yet).
	LastHandshake, LastSeen time.Time
}

// LocatorInfo is one locator of a peer (RFC 8046 §5.1).
type LocatorInfo struct {
	Addr      netip.AddrPort
	State     string // "unverified", "active", "deprecated" (RFC 8046 §5.1), "failed" (unverified after a failed check)
	Origin    string // "config", "locator-set", "packet", "ice", "relay"
	Current   bool   // the association's traffic goes here
	Preferred bool
	RTT       time.Duration // smoothed probe round trip; zero: not measured
	// LastReceived is when the last authenticated packet came from it, as
	// the locator checks saw it.
	LastReceived time.Time
}

// Peers returns one record per association, in HIT order, from the
// association table; the counters are read from the per-peer atomics.
func (s *Stack) Peers() []PeerInfo {
	var out []PeerInfo
	locs := s.peerLocators()
	for _, r := range s.db.all() {
		p := r.peer
		loc, _ := p.locator()
		pi := PeerInfo{
			HIT: r.HIT, State: r.Info.State.String(), Path: p.pathName(), Locator: loc, Locators: locatorInfo(locs[r.HIT], loc),
			InSPI: r.Info.InSPI, OutSPI: r.Info.OutSPI,
			BytesIn: p.bytesIn.Load(), BytesOut: p.bytesOut.Load(),
			PacketsIn: p.pktsIn.Load(), PacketsOut: p.pktsOut.Load(),
			Since: r.Info.Since, Initiator: r.Info.Initiator,
			LastHandshake: unixTime(p.lastHandshake.Load()), LastSeen: unixTime(p.lastSeen.Load()),
		}
		if r.Info.ESPSuite != 0 {
			pi.HITSuite = r.Info.HITSuite.String()
			pi.DHGroup = wire.DHGroupName(r.Info.DHGroup)
			pi.HIPCipher = wire.CipherName(r.Info.HIPCipher)
			pi.ESPSuite = r.Info.ESPSuite.String()
		}
		out = append(out, pi)
	}
	return out
}

// Stats returns the stack's counters.
func (s *Stack) Stats() Stats {
	st := s.ctr.snapshot()
	if r, ok := s.cfg.Forwarder.(ForwarderReport); ok {
		st.Relay = r.ForwardStats()
		st.Registrations = len(r.Registrations())
	}
	st.Associations = s.db.states()
	for _, rc := range s.relays {
		if rc.registered.Load() {
			st.RelaysRegistered++
		}
	}
	st.BEX.PuzzleDifficulty = uint8(s.puzzleK.Load())
	c := s.sock.caps()
	st.IO = IOStats{Batch: c.Batch, GSO: c.GSO, GRO: c.GRO, GSOErrors: c.GSOErrors}
	s.tx.mu.Lock()
	st.IO.SentInline, st.IO.SentQueued, st.IO.Batches = s.tx.inline, s.tx.queued, s.tx.batches
	s.tx.mu.Unlock()
	return st
}

// Close sends CLOSE to every peer with an association, waits up to one
// second for the CLOSE_ACKs, then closes the socket and every InnerConn and
// stops all goroutines. Pending Connects return ErrClosed.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		s.cancel()
		if s.started {
			<-s.ctrlDone
		}
		s.closeErr = s.sock.close()
		s.routes.close()
		if s.started {
			<-s.readDone
			<-s.sendDone
		}
		for _, c := range *s.ports.Load() {
			_ = c.Close()
		}
		s.bg.Wait()
		s.solving.Wait()
	})
	return s.closeErr
}

// unixTime is the time of unix ns t, zero for 0.
func unixTime(t int64) time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.Unix(0, t)
}
