package nat

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"

	"hipnet.dev/handshake/wire"
)

// ErrConfig reports a SessionConfig NewSession cannot use.
var ErrConfig = errors.New("nat: invalid session config")

// Defaults and limits of SessionConfig.
const (
	// DefaultPacing is Ta when SessionConfig.Pacing is zero: 50 ms, the
	// value RFC 9028 §4.4 and §4.6.2 make mandatory for its ICE-HIP-UDP
	// mode when neither host announced a TRANSACTION_PACING. RFC 5770's
	// ICE-STUN-UDP mode, which the base exchange negotiates here, has 500
	// ms instead for a host that announced none (§4.4, §4.6): the caller
	// passes the value the base exchange negotiated (handshake
	// Association.Pacing), the higher of the two offers.
	DefaultPacing = 50 * time.Millisecond
	// MinPacing is the smallest Ta used: "Hosts MUST NOT use values
	// smaller than 5 ms for the minimum Ta" (RFC 9028 §4.4). A smaller
	// non-zero Pacing is raised to it.
	MinPacing = 5 * time.Millisecond
	// DefaultTimeout is SessionConfig.Timeout when zero.
	DefaultTimeout = 10 * time.Second
	// minRTO is the floor of the retransmission timeout of a check
	// (RFC 5770 §4.6: RTO = MAX(500ms, Ta * (Num-Waiting + Num-In-Progress))).
	minRTO = 500 * time.Millisecond
	// paceQueue bounds the checks waiting for their turn (see pacer).
	paceQueue = 64
)

// SessionConfig configures one ICE session: the checks between this node
// and one peer over one HIP association.
type SessionConfig struct {
	LocalHIT, PeerHIT wire.HIT
	// Key is the 16-octet STUN key from KEYMAT; Password(Key) is both the
	// local and the remote password (RFC 5770 §5.2).
	Key []byte
	// Controlling: the HIP Initiator controls (RFC 5770 §5.2).
	Controlling bool
	// Local is the node socket's local address, the address of the
	// session's host candidate. pion needs only its family and uses the
	// address in logs: the candidates the peer checks are the ones the node
	// sent in its LOCATOR_SET, and every check leaves through the node
	// socket whatever this says. An IPv4 address (0.0.0.0 included) gives
	// one IPv4 candidate, a specific IPv6 address one IPv6 candidate. The
	// unspecified IPv6 address (::, a dual-stack socket) or the zero
	// AddrPort gives two candidates, 0.0.0.0 and ::, with Local's port:
	// pion pairs a local candidate only with remote candidates of its own
	// family (addRemoteCandidate, agent.go:1329), and a dual-stack socket reaches both.
	Local netip.AddrPort
	// Remote are the peer's candidates, from its LOCATOR_SET (FromLocators).
	Remote []Candidate
	// Send writes a STUN packet on the node socket. It must be safe for
	// concurrent use and must not retain b. It is never called after
	// Close returns.
	Send func(b []byte, to netip.AddrPort) error
	// Pacing is Ta, the least time between two checks the session starts
	// or retransmits (RFC 5770 §4.6, RFC 9028 §4.4); zero means
	// DefaultPacing. It also sets how often pion retransmits: every
	// RTO = MAX(500 ms, Ta * number of remote candidates) (RFC 5770 §4.6).
	Pacing time.Duration
	// After, when set, is the clock of the session's own waits (the pacing
	// of checks, the Timeout): a channel closed d from now. The stack
	// passes its timer heap's (overlay Stack.after), so that its one heap
	// drives every timer but pion's. Nil: time.After.
	After func(d time.Duration) <-chan struct{}
	// Timeout: give up (onFailed) when no pair is selected this long after
	// NewSession; zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives pion's messages at Debug (see slogFactory); nil
	// discards them.
	Logger *slog.Logger
}

// Stats counts a session's packets.
type Stats struct {
	Delivered    uint64 // STUN packets Deliver queued for the agent
	DeliverDrops uint64 // dropped by Deliver: queue full, or no candidate of the sender's address family
	Sent         uint64 // packets handed to Send
	SendDrops    uint64 // checks dropped because too many waited for their turn (pacing)
	SendErrors   uint64 // Send returned an error
	SourceDrops  uint64 // from an address that is no candidate of the peer's, past the few peer-reflexive ones taken
}

// Session runs the ICE connectivity checks (RFC 5770 §4.6, RFC 8445 §7)
// with one peer over the node's socket. A pion/ice agent does the checks;
// its one local host candidate (two on a dual-stack socket) is a virtual
// conn whose writes go to SessionConfig.Send and whose reads are the
// packets given to Deliver.
//
// onSelected runs when the agent selects a pair (the controlling side:
// when its nomination succeeds; the controlled side: when it accepts one,
// RFC 8445 §8.1.1) and again if the controlled side later switches to a
// pair the controlling side nominated with a higher priority; it gets the
// peer's address of the pair, the address ESP goes to. onFailed runs at
// most once, when no pair was selected within the Timeout; the session
// then stops checking, and onSelected never runs after it. Either may be
// nil.
//
// Both run on a goroutine of the session, one at a time, and never after
// Close returns: Close waits for one that is running. So they must not
// call Close or wait for anything that does; hand the event to another
// goroutine. (pion's Agent.GracefulClose has the same rule, agent.go:1589.)
//
// After a pair is selected the agent keeps answering the peer's checks
// (RFC 9028 §4.6.3: "Both hosts MUST continue to respond to any
// connectivity checks despite an address pair having been nominated")
// until Close. It sends no consent checks of its own: RFC 5770 §5.3
// keepalives (Keepalive) are the node's to send.
type Session struct {
	cfg        SessionConfig
	user       string                // USERNAME of the requests the peer sends us
	integrity  stun.MessageIntegrity // the short-term key of both directions (RFC 5770 §5.2)
	ta         time.Duration
	onSelected func(netip.AddrPort)
	onFailed   func()
	mux        *Mux // nil: not routed by a Mux

	agent *ice.Agent
	conn  *ice.Conn
	v4    *vconn // nil: no IPv4 candidate
	v6    *vconn // nil: no IPv6 candidate
	net   *noNet

	pace chan packet   // checks waiting for the pacer
	kick chan struct{} // pion reported something (latest, pionFailed)

	latest     atomic.Pointer[netip.AddrPort] // the remote address of pion's selected pair
	pionFailed atomic.Bool

	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
	closeOnce sync.Once
	agentOnce sync.Once
	closing   atomic.Bool // fast check for the data path

	mu       sync.Mutex // orders callbacks against Close
	closed   bool
	selected netip.AddrPort
	hasSel   bool

	// reflexive are the sources, other than the peer's candidates, that
	// the session took packets from (sources).
	srcMu     sync.Mutex
	reflexive []netip.AddrPort
	// checks are the transaction IDs of the last checks taken, in a
	// ring (next): a copy of one from a new source is a replay.
	checks [recentChecks][stun.TransactionIDSize]byte
	next   int

	delivered, deliverDrops     atomic.Uint64
	sent, sendDrops, sendErrors atomic.Uint64
	sourceDrops                 atomic.Uint64
}

// maxReflexive bounds the sources other than the peer's candidates that
// a session takes packets from. A check from an address the peer did not
// announce is how a peer-reflexive candidate is learnt (RFC 8445
// §7.3.1.3): its NAT's mapping toward us, one or two per address family.
// Without a bound, one recorded check replayed from spoofed sources (STUN
// short-term credentials do not stop a replay) would make pion add a
// candidate, answer it and check it again and again for each source: state
// without end, work quadratic in the sources, packets sent to addresses
// that never asked, and the session's real checks crowded out of the
// pacer.
const maxReflexive = 4

// recentChecks is how many of the peer's checks a session remembers to
// tell a replay from a new source: at the pace of RFC 5770 §4.6 (a new
// transaction every Ta, 20 ms at the least), a few seconds of them. A
// check recorded longer ago than that still takes a slot when replayed;
// the slots stay bounded (maxReflexive).
const recentChecks = 128

// NewSession starts the connectivity checks at once, in goroutines the
// session owns until Close.
func NewSession(cfg SessionConfig, onSelected func(remote netip.AddrPort), onFailed func()) (*Session, error) {
	return newSession(cfg, onSelected, onFailed, nil)
}

func newSession(cfg SessionConfig, onSelected func(netip.AddrPort), onFailed func(), m *Mux) (*Session, error) {
	switch {
	case len(cfg.Key) != KeyLen:
		return nil, fmt.Errorf("%w: Key has %d octets, want %d (RFC 5770 §5.2)", ErrConfig, len(cfg.Key), KeyLen)
	case cfg.Send == nil:
		return nil, fmt.Errorf("%w: no Send", ErrConfig)
	case cfg.Pacing < 0 || cfg.Timeout < 0:
		return nil, fmt.Errorf("%w: negative Pacing or Timeout", ErrConfig)
	case cfg.LocalHIT == cfg.PeerHIT:
		return nil, fmt.Errorf("%w: LocalHIT and PeerHIT are the same", ErrConfig)
	}
	cfg.Key = append([]byte(nil), cfg.Key...)
	cfg.Remote = append([]Candidate(nil), cfg.Remote...)
	if cfg.After == nil {
		cfg.After = afterTimer
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ta := cfg.Pacing
	switch {
	case ta == 0:
		ta = DefaultPacing
	case ta < MinPacing:
		ta = MinPacing
	}

	s := &Session{
		cfg:        cfg,
		user:       username(cfg.LocalHIT, cfg.PeerHIT),
		integrity:  stun.NewShortTermIntegrity(Password(cfg.Key)),
		ta:         ta,
		onSelected: onSelected,
		onFailed:   onFailed,
		mux:        m,
		net:        &noNet{},
		pace:       make(chan packet, paceQueue),
		kick:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}

	agent, err := ice.NewAgentWithOptions(s.agentOptions()...)
	if err != nil {
		return nil, fmt.Errorf("nat: ICE agent: %w", err)
	}
	s.agent = agent
	abort := func(err error) (*Session, error) {
		_ = agent.GracefulClose()
		if m != nil {
			m.remove(s)
		}
		return nil, err
	}
	// The handlers only record and wake the session's goroutine: they run
	// on pion's notifier goroutines, which GracefulClose waits for.
	if err := agent.OnSelectedCandidatePairChange(s.pionSelected); err != nil {
		return abort(err)
	}
	if err := agent.OnConnectionStateChange(s.pionState); err != nil {
		return abort(err)
	}
	if err := s.addLocal(); err != nil {
		return abort(err)
	}
	for _, c := range cfg.Remote {
		rc, err := c.remoteICE()
		if err != nil {
			cfg.Logger.Debug("nat: skipping remote candidate", "candidate", c.Addr, "err", err)
			continue
		}
		if err := agent.AddRemoteCandidate(rc); err != nil {
			return abort(fmt.Errorf("nat: remote candidate %v: %w", c.Addr, err))
		}
	}
	if m != nil {
		// Before the first check goes out, so that the peer's requests and
		// the responses to ours find the session.
		m.add(s)
	}
	// StartDial and StartAccept return at once; the checks run in pion's
	// goroutines. (Dial and Accept would block until a pair is selected.)
	peerUfrag, pwd := Ufrag(cfg.PeerHIT), Password(cfg.Key)
	if cfg.Controlling {
		s.conn, err = agent.StartDial(peerUfrag, pwd)
	} else {
		s.conn, err = agent.StartAccept(peerUfrag, pwd)
	}
	if err != nil {
		return abort(fmt.Errorf("nat: starting checks: %w", err))
	}
	// Checks written before the pacer starts wait in s.pace, a selection
	// reported before run starts in s.kick.
	s.wg.Add(2)
	go s.run()
	go s.pacer()
	return s, nil
}

// agentOptions configures pion for checks only: no gathering, no mDNS,
// no sockets (noNet), the RFC 5770 §5.2 credentials, and timers that
// leave giving up to the session (see run).
func (s *Session) agentOptions() []ice.AgentOption {
	n := max(1, len(s.cfg.Remote))
	// pion checks every pair at each tick of CheckInterval and counts a
	// tick without an answer as a retransmission (pingAllCandidates,
	// agent.go:796), so the tick is the RTO of RFC 5770 §4.6, with one
	// local candidate per family and so about one pair per remote
	// candidate.
	rto := max(minRTO, s.ta*time.Duration(n))
	// Keep checking until the Timeout: a pair is marked failed after
	// MaxBindingRequests unanswered checks (agent.go:811).
	maxReq := min(int64(s.cfg.Timeout/rto)+1, 0xffff)
	return []ice.AgentOption{
		ice.WithNet(s.net),
		ice.WithMulticastDNSMode(ice.MulticastDNSModeDisabled),
		ice.WithLocalCredentials(Ufrag(s.cfg.LocalHIT), Password(s.cfg.Key)),
		ice.WithCandidateTypes([]ice.CandidateType{ice.CandidateTypeHost}),
		ice.WithNetworkTypes([]ice.NetworkType{ice.NetworkTypeUDP4, ice.NetworkTypeUDP6}),
		ice.WithCheckInterval(rto),
		ice.WithMaxBindingRequests(uint16(maxReq)),
		// pion's own checking deadline and its consent checks on the
		// selected pair are off: the session fails after Timeout itself,
		// pion sees only STUN (not the ESP that shows the pair alive), and
		// keepalives are RFC 5770 §5.3 Binding Indications the node sends.
		ice.WithFailedTimeout(0),
		ice.WithDisconnectedTimeout(0),
		ice.WithKeepaliveInterval(0),
		ice.WithLoggerFactory(slogFactory{s.cfg.Logger}),
		// pion's acceptance waits stay as they are (agent_config.go:33-43):
		// the controlling side nominates a pair with a host candidate at
		// once, with a server-reflexive one after 0.5 s, a peer-reflexive
		// one after 1 s and a relayed one after 2 s, to give a better pair
		// the time to succeed first.
	}
}

// addLocal adds the host candidate(s) of SessionConfig.Local.
func (s *Session) addLocal() error {
	local := netip.AddrPortFrom(s.cfg.Local.Addr().Unmap(), s.cfg.Local.Port())
	var addrs []netip.Addr
	switch a := local.Addr(); {
	case !a.IsValid() || a == netip.IPv6Unspecified():
		addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	default:
		addrs = []netip.Addr{a}
	}
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, local.Port())
		c, err := ice.NewCandidateHost(&ice.CandidateHostConfig{
			Network:   "udp",
			Address:   a.String(),
			Port:      int(ap.Port()),
			Component: iceComponent,
		})
		if err != nil {
			return fmt.Errorf("nat: local candidate %v: %w", ap, err)
		}
		vc := newVconn(ap, s.write, &s.deliverDrops)
		if err := s.agent.AddVirtualCandidate(c, vc); err != nil {
			return fmt.Errorf("nat: local candidate %v: %w", ap, err)
		}
		if a.Is4() {
			s.v4 = vc
		} else {
			s.v6 = vc
		}
	}
	return nil
}

// Deliver hands the session a STUN packet read from the node socket. It
// copies pkt and never blocks: when the agent is behind, the packet is
// dropped and counted (Stats.DeliverDrops).
func (s *Session) Deliver(pkt []byte, from netip.AddrPort) { s.deliver(pkt, from) }

// deliver is Deliver reporting whether the session took the packet (false
// once closed).
func (s *Session) deliver(pkt []byte, from netip.AddrPort) bool {
	if s.closing.Load() {
		return false
	}
	from = unmapped(from)
	if !s.source(from, pkt) {
		s.sourceDrops.Add(1)
		return true
	}
	vc := s.v6
	if from.Addr().Is4() {
		vc = s.v4
	}
	if vc == nil {
		s.deliverDrops.Add(1)
		return true
	}
	if !vc.deliver(pkt, from) {
		return false
	}
	s.delivered.Add(1)
	return true
}

// source reports whether the session takes pkt from addr: from a
// candidate of the peer's, or from one of the first maxReflexive other
// sources whose first packet was a check with the session's credentials.
// The slots go only to authentic checks: the USERNAME is made of public
// HITs, and forged checks from a few ports must not take every slot and
// shut out the peer's genuine check from its NAT mapping, which is what
// peer-reflexive candidates are for. (Responses reach a session only from
// the addresses its checks went to: Mux.)
func (s *Session) source(addr netip.AddrPort, pkt []byte) bool {
	id, check := isBindingRequest(pkt)
	s.srcMu.Lock()
	defer s.srcMu.Unlock()
	if s.known(addr) {
		if check && s.authentic(pkt) {
			s.taken(id) // only an authentic check: junk must not flush the ring
		}
		return true
	}
	// A check taken before, now from a new source: a copy replayed from a
	// spoofed address (MESSAGE-INTEGRITY does not cover the source, RFC
	// 8489 §9.1.2). It takes no slot: one recorded check sent from four
	// addresses would otherwise take them all.
	if check && slices.Contains(s.checks[:], id) {
		return false
	}
	if len(s.reflexive) < maxReflexive && check && s.authentic(pkt) {
		s.reflexive = append(s.reflexive, addr)
		s.taken(id)
		return true
	}
	return false
}

// known reports whether addr is a candidate of the peer's or a source
// given a slot; s.srcMu is held.
func (s *Session) known(addr netip.AddrPort) bool {
	for _, c := range s.cfg.Remote {
		if unmapped(c.Addr) == addr {
			return true
		}
	}
	return slices.Contains(s.reflexive, addr)
}

// taken remembers the transaction ID of a check taken; s.srcMu is held.
func (s *Session) taken(id [stun.TransactionIDSize]byte) {
	if slices.Contains(s.checks[:], id) {
		return // a retransmission
	}
	s.checks[s.next] = id
	s.next = (s.next + 1) % recentChecks
}

// authentic reports whether pkt, a Binding request, carries a
// MESSAGE-INTEGRITY that verifies with the session's short-term password (RFC
// 8489 §9.1.3, RFC 5770 §5.2). It costs a copy and an HMAC, and runs for
// the checks that take a slot or go into the replay ring (source).
func (s *Session) authentic(pkt []byte) bool {
	var m stun.Message
	return s.verifies(&m, pkt)
}

// verifies reports whether pkt, a check from s's peer or an answer to one
// of s's checks, carries a MESSAGE-INTEGRITY that verifies with s's
// password, decoding into m. pion checks on the message's bytes,
// rewriting its length field and writing the HMAC past its end, so it
// checks a copy in m: pkt is the caller's.
func (s *Session) verifies(m *stun.Message, pkt []byte) bool {
	m.Raw = append(m.Raw[:0], pkt...)
	ok := m.Decode() == nil && s.integrity.Check(m) == nil
	clear(m.Attributes)
	m.Attributes = m.Attributes[:0]
	return ok
}

// write is the write path of the virtual conns, on pion's goroutines.
// Requests (new checks and retransmissions) wait for the pacer;
// responses go out at once: RFC 5770 §4.6 paces the transactions a host
// starts.
func (s *Session) write(b []byte, to netip.AddrPort) (int, error) {
	if s.closing.Load() {
		return 0, net.ErrClosed
	}
	to = unmapped(to)
	if id, ok := isBindingRequest(b); ok {
		// Only a check the pacer takes gets an entry in the Mux's shared
		// table, and before it can go out and be answered: a flood of
		// checks the pacer drops must not push other sessions' entries
		// out. (Two writers may both see the last free place; the one
		// that loses it leaves an entry, which expires.)
		if len(s.pace) == cap(s.pace) {
			s.sendDrops.Add(1)
			return len(b), nil
		}
		if s.mux != nil {
			s.mux.track(id, to, s)
		}
		select {
		case s.pace <- packet{b: append([]byte(nil), b...), addr: to}:
		default:
			s.sendDrops.Add(1)
		}
		return len(b), nil
	}
	s.send(b, to)
	return len(b), nil
}

// send calls SessionConfig.Send and counts.
func (s *Session) send(b []byte, to netip.AddrPort) {
	if err := s.cfg.Send(b, to); err != nil {
		s.sendErrors.Add(1)
		s.cfg.Logger.Debug("nat: send", "to", to, "err", err)
		return
	}
	s.sent.Add(1)
}

// pacer sends the queued checks at most one per Ta (RFC 5770 §4.6, RFC
// 9028 §4.4: "the minimum time ... the host would wait between two NAT
// traversal transactions"). pion has no pacing of its own: it sends a
// check on every pair at each tick (pingAllCandidates, agent.go:796).
func (s *Session) pacer() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case p := <-s.pace:
			s.send(p.b, p.addr)
		}
		select {
		case <-s.done:
			return
		case <-s.cfg.After(s.ta):
		}
	}
}

// afterTimer is SessionConfig.After's default.
func afterTimer(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}

// pionSelected is pion's OnSelectedCandidatePairChange handler.
func (s *Session) pionSelected(_, remote ice.Candidate) {
	if remote == nil {
		return
	}
	a, err := netip.ParseAddr(remote.Address())
	if err != nil || remote.Port() <= 0 || remote.Port() > 0xffff {
		s.cfg.Logger.Debug("nat: selected pair with an unusable remote", "remote", remote.String())
		return
	}
	ap := netip.AddrPortFrom(a.Unmap(), uint16(remote.Port()))
	s.latest.Store(&ap)
	s.wake()
}

// pionState is pion's OnConnectionStateChange handler. With the timeouts
// agentOptions sets pion does not fail a session by itself; should it, the
// session fails too.
func (s *Session) pionState(st ice.ConnectionState) {
	if st == ice.ConnectionStateFailed {
		s.pionFailed.Store(true)
		s.wake()
	}
}

func (s *Session) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run is the session's goroutine: it reports selections and gives up
// after the Timeout.
func (s *Session) run() {
	defer s.wg.Done()
	timeout := s.cfg.After(s.cfg.Timeout)
	var reported netip.AddrPort
	for {
		select {
		case <-s.done:
			return
		case <-timeout:
			timeout = nil // closed for good: once
			if s.latest.Load() == nil {
				s.fail()
				return
			}
			s.wake() // a selection raced the timer: report it
		case <-s.kick:
			if p := s.latest.Load(); p != nil {
				if *p != reported {
					reported = *p
					timeout = nil // selected: no more giving up
					s.mu.Lock()
					s.selected, s.hasSel = *p, true
					s.mu.Unlock()
					if s.onSelected != nil {
						s.callback(func() { s.onSelected(reported) })
					}
				}
			} else if s.pionFailed.Load() {
				s.fail()
				return
			}
		}
	}
}

// fail stops the checks and reports the failure.
func (s *Session) fail() {
	s.closeAgent()
	if s.onFailed != nil {
		s.callback(s.onFailed)
	}
}

// callback runs f unless the session is closed. Close sets closed under mu
// and then waits for this goroutine, so f either starts before Close and
// ends before it returns, or does not run.
func (s *Session) callback(f func()) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if !closed {
		f()
	}
}

// Selected returns the remote address of the selected pair, if any: the
// address ESP to the peer goes to (RFC 5770 §4.6).
func (s *Session) Selected() (netip.AddrPort, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.selected, s.hasSel
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	return Stats{
		Delivered:    s.delivered.Load(),
		DeliverDrops: s.deliverDrops.Load(),
		Sent:         s.sent.Load(),
		SendDrops:    s.sendDrops.Load(),
		SendErrors:   s.sendErrors.Load(),
		SourceDrops:  s.sourceDrops.Load(),
	}
}

// Close stops the checks and every goroutine the session started, and
// leaves its Mux. It is idempotent. No callback runs after it returns, and
// Send is not called any more; it must not be called from a callback.
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.closing.Store(true)
		close(s.done)
		if s.mux != nil {
			s.mux.remove(s)
		}
		s.closeAgent()
		s.wg.Wait()
	})
	return nil
}

// closeAgent closes the ice.Conn and the agent once, waiting for pion's
// goroutines: its task loop (which closes the candidates and so the
// virtual conns, ending their read goroutines) and the notifiers that run
// the handlers.
func (s *Session) closeAgent() {
	s.agentOnce.Do(func() {
		if s.conn != nil {
			_ = s.conn.Close()
		}
		_ = s.agent.GracefulClose()
	})
}
