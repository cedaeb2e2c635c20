package relay

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/ratelimit"
	"hipnet.dev/overlay"
)

// The forwarder: the stack's overlay.Forwarder on a relay. It is the HIP
// control relay of RFC 5770 §4.5 and §4.10 and the rendezvous server of
// RFC 8004 for the hosts registered with this relay (registrar.go), and
// forwards their ESP. The stack hands it only what is not addressed to
// the relay itself.
//
// Control packets. A packet whose Receiver's HIT is neither ours nor zero
// is not for us:
//   - from a registered host, carrying RELAY_TO and a RELAY_HMAC that its
//     association with us verifies, it is stripped of both and sent to the
//     RELAY_TO address, unless that is the relay itself, or the relay's
//     machine and the host is elsewhere (self.go);
//   - to a registered host, it gets RELAY_FROM (its observed source) and
//     RELAY_HMAC keyed with our association with that host, and goes to the
//     host's locator. I1s are rate limited per registered host.
//
// Everything else not for us is dropped and counted: nothing is forwarded
// to or for an unregistered HIT (no open relay).
//
// ESP. Hosts behind NATs that defeat ICE keep sending ESP to the relay,
// the one address both can reach. The relay learns, from the ESP_INFO of
// the control packets it forwards (I2, R2, UPDATE), which SPI each side
// expects and where that side is, and forwards ESP by (SPI, source
// address): a packet with SPI s from address b goes to the host that
// announced s to a peer at b. Only the registered host's own packets,
// whose RELAY_HMAC the relay checks, create or redirect entries: the SPI a
// peer announces to it is held (bounded per host, 30 s) until the host
// answers that peer at that address. An entry belongs to the registered
// host and its peer: no one else can redirect it, and it forwards only
// while the host's RELAY_UDP_HIP grant lasts. Entries expire when idle
// and the table is bounded. This plays the part of a TURN allocation (RFC
// 5770's relayed candidate) without a second protocol or a second port:
// the hosts need no credentials beyond their registration and no per-peer
// permissions.

// fwdConfig are the forwarder's limits (Config.I1Rate, MaxForwards,
// ForwardIdle), with defaults filled in.
type fwdConfig struct {
	i1Rate      float64
	maxForwards int
	forwardIdle time.Duration
}

const (
	defaultI1Rate      = 20
	defaultMaxForwards = 1 << 16
	defaultForwardIdle = 10 * time.Minute
)

type fwdKey struct {
	spi  uint32
	from netip.AddrPort
}

// fwdEntry sends ESP to to. owner is the registered host whose
// RELAY_HMAC-checked packet created it and peer the host on the other
// side, whichever way the entry carries: only the same pair may redirect
// it (a mobile host, a new association between the two), and it forwards
// only while owner's RELAY_UDP_HIP grant lasts.
type fwdEntry struct {
	to          netip.AddrPort
	owner, peer wire.HIT
	used        atomic.Int64 // unix nanoseconds of the last use
}

// forwarder is the relay's forwarding state. fwd is read by the read loop
// (ESP) and written by the control goroutine; buckets and pending belong
// to the control goroutine.
type forwarder struct {
	cfg fwdConfig
	reg *registrar
	log *slog.Logger

	mu  sync.RWMutex
	fwd map[fwdKey]*fwdEntry

	// buckets are the I1 rate limits: per host (bounded by the
	// registrations) and per host and source (bounded by maxBuckets).
	buckets    map[bucketKey]i1Bucket
	srcBuckets int

	// self is what the relay knows of its own addresses (self.go), set
	// once the stack's socket is open (Server.New); nil before.
	self atomic.Pointer[selfView]
	// localSeen are the sources on the relay's machine whose packets it
	// relayed to a registered host, and when: a RELAY_TO naming one is
	// that host answering them (self.go). Control goroutine only; only
	// local processes add entries, bounded all the same.
	localSeen map[netip.AddrPort]time.Time

	// pending are SPIs announced to a registered host by packets the relay
	// cannot authenticate (its peer's I2 or UPDATE), by host and by the
	// peer's address: they become forwarding entries only when the host's
	// own RELAY_HMAC-checked answer to that address passes (activate).
	// Control goroutine only; bounded per host, short-lived.
	pending map[pendingKey]pendingSPI
	perHost map[wire.HIT]int // pending entries per host

	controlForwarded, espForwarded, rendezvoused atomic.Uint64
	unregistered, forged, rateLimited, tableFull atomic.Uint64
}

// i1Bucket is one I1 rate limit and when it was last used: idle ones go
// after a minute (prune).
type i1Bucket struct {
	ratelimit.Bucket
	used time.Time
}

func newForwarder(cfg fwdConfig, reg *registrar, log *slog.Logger) *forwarder {
	if cfg.i1Rate <= 0 {
		cfg.i1Rate = defaultI1Rate
	}
	if cfg.maxForwards <= 0 {
		cfg.maxForwards = defaultMaxForwards
	}
	if cfg.forwardIdle <= 0 {
		cfg.forwardIdle = defaultForwardIdle
	}
	return &forwarder{cfg: cfg, reg: reg, log: log, fwd: map[fwdKey]*fwdEntry{}, buckets: map[bucketKey]i1Bucket{},
		pending: map[pendingKey]pendingSPI{}, perHost: map[wire.HIT]int{}, localSeen: map[netip.AddrPort]time.Time{}}
}

func (r *forwarder) stats() overlay.RelayStats {
	r.mu.RLock()
	n := len(r.fwd)
	r.mu.RUnlock()
	return overlay.RelayStats{
		ControlForwarded: r.controlForwarded.Load(), ESPForwarded: r.espForwarded.Load(), Rendezvoused: r.rendezvoused.Load(), Forwards: uint64(n),
		Unregistered: r.unregistered.Load(), Forged: r.forged.Load(), RateLimited: r.rateLimited.Load(), TableFull: r.tableFull.Load(),
	}
}

// allow takes an I1 token for host h from source src. Each source has its
// own bucket per host, so that one source (or a few spoofed ones) cannot
// use up a host's allowance for everyone; a per-host bucket of ten times
// the rate bounds the total the host receives. An IPv6 source is its /64,
// which one attacker holds whole. Once the sources fill their table (a
// flood from spoofed addresses), a new source has only the host's total
// to pass: the table's size never shuts out an honest Initiator, and a
// host's total bucket, one per registration, is always there.
func (r *forwarder) allow(h wire.HIT, src netip.Addr, now time.Time) bool {
	k := bucketKey{h, sourceOf(src)}
	if _, known := r.buckets[k]; !known && r.srcBuckets >= maxBuckets {
		return r.take(bucketKey{host: h}, 10*r.cfg.i1Rate, now)
	}
	return r.take(k, r.cfg.i1Rate, now) && r.take(bucketKey{host: h}, 10*r.cfg.i1Rate, now)
}

// sourceOf is the rate-limited source of an I1 from a: the address, or
// for IPv6 its /64.
func sourceOf(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

type bucketKey struct {
	host wire.HIT
	src  netip.Addr // zero: the host's total
}

// take takes a token from k's bucket, which holds a second's worth at
// rate.
//
// The buckets are ratelimit.Buckets in a map of the forwarder's own, not a
// ratelimit.Table: a full Table makes every unknown key share one
// overflow bucket, so a flood of spoofed sources to one host would shut
// out new Initiators of every other host; here a new source is then
// limited only by its host's total (allow). Idle buckets go after a
// minute (prune), as the bound on sources assumes.
func (r *forwarder) take(k bucketKey, rate float64, now time.Time) bool {
	b, ok := r.buckets[k]
	if !ok && k.src.IsValid() {
		r.srcBuckets++
	}
	allowed := b.Take(now, rate, rate)
	b.used = now
	r.buckets[k] = b
	return allowed
}

// maxBuckets bounds the per-source rate-limit state (pruned after a
// minute idle).
const maxBuckets = 1 << 16

// setSelf tells the forwarder the stack's socket address (Server.New, once
// the stack is up): RELAY_TO and ESP never send there (self.go).
func (r *forwarder) setSelf(listen netip.AddrPort) { r.self.Store(newSelfView(listen)) }

// refreshSelf reads the interface addresses again: they may have changed
// since.
func (r *forwarder) refreshSelf() {
	if v := r.self.Load(); v != nil {
		r.self.Store(newSelfView(v.listen))
	}
}

// Limits of localSeen: how long a local source may be answered through
// the relay after its last relayed packet, and how many are kept.
const (
	localSeenLife = 2 * time.Minute
	localSeenMax  = 256
)

// noteLocal records from, the source of a packet relayed to a registered
// host, if it is on the relay's machine.
func (r *forwarder) noteLocal(from netip.AddrPort, now time.Time) {
	v := r.self.Load()
	if v == nil || !v.local(from.Addr()) {
		return
	}
	from = norm(from)
	if _, ok := r.localSeen[from]; !ok && len(r.localSeen) >= localSeenMax {
		return // only local processes fill it: the oldest answers wait for the prune
	}
	r.localSeen[from] = now
}

// seenLocal reports whether to is a local source noteLocal recorded less
// than localSeenLife ago.
func (r *forwarder) seenLocal(to netip.AddrPort, now time.Time) bool {
	at, ok := r.localSeen[norm(to)]
	return ok && now.Sub(at) < localSeenLife
}

// isSelf reports whether a is known to be the relay's own socket.
func (r *forwarder) isSelf(a netip.AddrPort) bool {
	v := r.self.Load()
	return v != nil && v.is(a)
}

type pendingKey struct {
	host wire.HIT       // the registered host the SPI was announced to
	peer netip.AddrPort // where its peer is, as the relay sees it
}

type pendingSPI struct {
	spi     uint32
	expires time.Time
}

const (
	pendingLife    = 30 * time.Second // an answer comes within a base exchange's retransmissions
	pendingPerHost = 32
)

// espInfoSPI returns the NEW SPI of pkt's ESP_INFO, if it is an I2, R2 or
// UPDATE that has one: the SPI its sender expects ESP on.
func espInfoSPI(pkt wire.Packet) (uint32, bool) {
	switch pkt.Type() {
	case wire.I2, wire.R2, wire.UPDATE:
	default:
		return 0, false
	}
	q, ok := pkt.Param(wire.ParamESPInfo)
	if !ok {
		return 0, false
	}
	ei, err := wire.ParseESPInfo(q.Contents())
	if err != nil || ei.NewSPI == 0 {
		return 0, false
	}
	return ei.NewSPI, true
}

// hold notes the SPI that a packet from peerAt announces to registered
// host h; nothing is forwarded on it until h answers (activate). An
// unauthenticated packet can thus never create or redirect an entry.
// Anyone can send such packets, so a host's pending SPIs are bounded, and
// a new one takes the place of the oldest rather than being refused: a
// flood of forged ones cannot keep the SPI of an honest peer, which h
// answers within a round trip, from being held. A copy of a held
// announcement does not extend its life.
func (r *forwarder) hold(h wire.HIT, pkt wire.Packet, peerAt netip.AddrPort, now time.Time) {
	spi, ok := espInfoSPI(pkt)
	if !ok {
		return
	}
	k := pendingKey{h, peerAt}
	old, held := r.pending[k]
	switch {
	case held && old.spi == spi:
		return
	case !held && r.perHost[h] >= pendingPerHost:
		r.evictOldest(h)
		r.tableFull.Add(1)
		fallthrough
	case !held:
		r.perHost[h]++
	}
	r.pending[k] = pendingSPI{spi: spi, expires: now.Add(pendingLife)}
}

// evictOldest forgets h's pending SPI that expires first.
func (r *forwarder) evictOldest(h wire.HIT) {
	var (
		oldest pendingKey
		at     time.Time
	)
	for k, p := range r.pending {
		if k.host == h && (at.IsZero() || p.expires.Before(at)) {
			oldest, at = k, p.expires
		}
	}
	if !at.IsZero() {
		delete(r.pending, oldest)
		r.perHost[h]--
	}
}

// activate runs when registered host h's RELAY_HMAC-checked packet pkt
// goes to peerAt: ESP with the SPI h announces in it, from peerAt, goes to
// h (at hAt); and ESP with the SPI held for h from peerAt, from h, goes to
// peerAt — h answering that peer is what vouches for the peer's address.
// Only an answer does: an R2 or an UPDATE that carries an ESP_INFO or an
// ACK. A probe h sends to check an address it is not sure of (an UPDATE
// with ECHO_REQUEST_SIGNED only, RFC 8046 §5.4) vouches for nothing: an
// attacker who sent a copy of the peer's UPDATE from its own address would
// otherwise get h's ESP the moment h checked on it.
func (r *forwarder) activate(h wire.HIT, pkt wire.Packet, hAt, peerAt netip.AddrPort, now time.Time) {
	peer := pkt.ReceiverHIT()
	if spi, ok := espInfoSPI(pkt); ok {
		r.set(fwdKey{spi, peerAt}, hAt, h, peer, now)
	}
	if !answers(pkt) {
		return
	}
	k := pendingKey{h, peerAt}
	if p, ok := r.pending[k]; ok {
		delete(r.pending, k)
		r.perHost[h]--
		if now.Before(p.expires) {
			r.set(fwdKey{p.spi, hAt}, peerAt, h, peer, now)
		}
	}
}

// set creates or redirects the forwarding entry k, for registered host
// owner and its peer (authenticated callers only). An entry that another
// pair made stays as it is while its owner is served: SPIs are chosen by
// each host on its own and travel in the clear, so a registered host, or
// a host that makes an association with one, could otherwise name the
// SPI of someone else's flow and take that flow over.
func (r *forwarder) set(k fwdKey, to netip.AddrPort, owner, peer wire.HIT, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.fwd[k]
	switch {
	case norm(to) == norm(k.from):
		// ESP sent back where it came from: never a flow, but how two
		// relays a host registered with each other's address could be
		// made to pass one packet between them for ever.
		r.forged.Add(1)
		r.log.Debug("relay drop", "reason", "esp back to its source", "spi", k.spi, "from", k.from, "host", owner.String())
		return
	case r.isSelf(to):
		// Whatever vouched for to, ESP sent to the relay's own socket
		// would come back as ESP from the relay: never (self.go).
		r.forged.Add(1)
		r.log.Debug("relay drop", "reason", "esp to the relay itself", "spi", k.spi, "from", k.from, "host", owner.String())
		return
	case e == nil && len(r.fwd) >= r.cfg.maxForwards:
		r.tableFull.Add(1)
		return
	case e != nil && !e.between(owner, peer) && r.reg.serves(e.owner, wire.RegTypeRelayUDPHIP, now):
		r.forged.Add(1)
		r.log.Debug("relay drop", "reason", "spi of another flow", "spi", k.spi, "from", k.from, "host", owner.String())
		return
	case e != nil && e.to == to && e.owner == owner:
		e.used.Store(now.UnixNano())
		return
	}
	e = &fwdEntry{to: to, owner: owner, peer: peer}
	e.used.Store(now.UnixNano())
	r.fwd[k] = e
}

// between reports whether e carries a flow between h and p, whichever
// made it: when both are registered with us, each side's packets set up
// and refresh the same entries (the SPI one announces, from the other's
// address).
func (e *fwdEntry) between(h, p wire.HIT) bool {
	return e.owner == h && e.peer == p || e.owner == p && e.peer == h
}

// lookup is the read loop's ESP forwarding lookup: only while the
// entry's owner holds its RELAY_UDP_HIP grant, which ends with its
// association, its cancellation or its lifetime (RFC 8003 §3, §5). It
// allocates nothing.
func (r *forwarder) lookup(spi uint32, from netip.AddrPort, now int64) (netip.AddrPort, bool) {
	r.mu.RLock()
	e := r.fwd[fwdKey{spi, from}]
	r.mu.RUnlock()
	if e == nil || !r.reg.serves(e.owner, wire.RegTypeRelayUDPHIP, time.Unix(0, now)) {
		return netip.AddrPort{}, false
	}
	if t := now; e.used.Load() != t {
		e.used.Store(t) // read first: no shared write per packet
	}
	return e.to, true
}

// prune drops idle forwarding entries and those of hosts no longer
// served, idle rate buckets, and expired pending SPIs.
func (r *forwarder) prune(now time.Time) {
	idle := now.Add(-r.cfg.forwardIdle).UnixNano()
	r.mu.Lock()
	for k, e := range r.fwd {
		if e.used.Load() < idle || !r.reg.serves(e.owner, wire.RegTypeRelayUDPHIP, now) {
			delete(r.fwd, k)
		}
	}
	r.mu.Unlock()
	for k, b := range r.buckets {
		if now.Sub(b.used) > time.Minute {
			delete(r.buckets, k)
			if k.src.IsValid() {
				r.srcBuckets--
			}
		}
	}
	for k, p := range r.pending {
		if !now.Before(p.expires) {
			delete(r.pending, k)
			r.perHost[k.host]--
		}
	}
	for a, at := range r.localSeen {
		if now.Sub(at) >= localSeenLife {
			delete(r.localSeen, a)
		}
	}
	for h, n := range r.perHost {
		if n <= 0 {
			delete(r.perHost, h)
		}
	}
	r.refreshSelf()
}

// answers reports whether pkt, from a registered host, answers its peer:
// an R2, or an UPDATE with an ESP_INFO or an ACK.
func answers(pkt wire.Packet) bool {
	switch pkt.Type() {
	case wire.R2:
		return true
	case wire.UPDATE:
		_, info := pkt.Param(wire.ParamESPInfo)
		_, ack := pkt.Param(wire.ParamAck)
		return info || ack
	}
	return false
}

// norm is an address with IPv4-mapped IPv6 unmapped.
func norm(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
