package overlay

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// The relay role (Config.Relay): the HIP control relay of RFC 5770 §4.5
// and §4.10 and the rendezvous of RFC 8004, for hosts registered with this
// stack (registration.go, as registrar), and the forwarding of their ESP.
//
// Control packets. A packet whose Receiver's HIT is neither ours nor zero
// is not for us:
//   - from a registered host, carrying RELAY_TO and a RELAY_HMAC that its
//     association with us verifies, it is stripped of both and sent to the
//     RELAY_TO address;
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
// answers that peer at that address. Entries expire when idle and the
// table is bounded. This plays the part of a TURN allocation (RFC 5770's relayed
// candidate) without a second protocol or a second port: the hosts need no
// credentials beyond their registration and no per-peer permissions.

// RelayConfig makes a Stack a HIP relay. Registration policy (who may
// register, lifetimes, limits) is Config.Handshake.Registrar's; a host is
// served while it holds an unexpired RELAY_UDP_HIP or RENDEZVOUS grant.
type RelayConfig struct {
	// I1Rate is how many I1s per second are forwarded to one registered
	// host (a token bucket with a burst of the same size). Zero: 20.
	I1Rate float64
	// MaxForwards bounds the ESP forwarding table. Zero: 65536.
	MaxForwards int
	// ForwardIdle is how long an ESP forwarding entry lives unused. Zero:
	// 10 minutes.
	ForwardIdle time.Duration
}

const (
	defaultI1Rate      = 20
	defaultMaxForwards = 1 << 16
	defaultForwardIdle = 10 * time.Minute
)

// RelayStats counts the relay's work (Stats.Relay).
type RelayStats struct {
	ControlForwarded uint64 // control packets relayed (either direction)
	ESPForwarded     uint64 // ESP packets forwarded by SPI
	Forwards         uint64 // ESP forwarding entries now
	// Drops by reason.
	Unregistered uint64 // to or for a HIT without a relay registration
	Forged       uint64 // RELAY_TO whose RELAY_HMAC did not verify, or relay parameters from outside
	RateLimited  uint64 // I1s over a registered host's rate
	TableFull    uint64 // ESP forwarding entries refused: table full
}

type fwdKey struct {
	spi  uint32
	from netip.AddrPort
}

type fwdEntry struct {
	to   netip.AddrPort
	used atomic.Int64 // unix nanoseconds of the last use
}

// relayServer is the relay's state. fwd is read by the read loop (ESP) and
// written by the control goroutine; buckets belong to the control
// goroutine.
type relayServer struct {
	cfg RelayConfig

	mu  sync.RWMutex
	fwd map[fwdKey]*fwdEntry

	buckets map[bucketKey]*bucket

	// pending are SPIs announced to a registered host by packets the relay
	// cannot authenticate (its peer's I2 or UPDATE), by host and by the
	// peer's address: they become forwarding entries only when the host's
	// own RELAY_HMAC-checked answer to that address passes (activate).
	// Control goroutine only; bounded per host, short-lived.
	pending map[pendingKey]pendingSPI
	perHost map[wire.HIT]int // pending entries per host

	controlForwarded, espForwarded               atomic.Uint64
	unregistered, forged, rateLimited, tableFull atomic.Uint64
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newRelayServer(cfg RelayConfig) *relayServer {
	if cfg.I1Rate <= 0 {
		cfg.I1Rate = defaultI1Rate
	}
	if cfg.MaxForwards <= 0 {
		cfg.MaxForwards = defaultMaxForwards
	}
	if cfg.ForwardIdle <= 0 {
		cfg.ForwardIdle = defaultForwardIdle
	}
	return &relayServer{cfg: cfg, fwd: map[fwdKey]*fwdEntry{}, buckets: map[bucketKey]*bucket{},
		pending: map[pendingKey]pendingSPI{}, perHost: map[wire.HIT]int{}}
}

func (r *relayServer) stats() RelayStats {
	r.mu.RLock()
	n := len(r.fwd)
	r.mu.RUnlock()
	return RelayStats{
		ControlForwarded: r.controlForwarded.Load(), ESPForwarded: r.espForwarded.Load(), Forwards: uint64(n),
		Unregistered: r.unregistered.Load(), Forged: r.forged.Load(), RateLimited: r.rateLimited.Load(), TableFull: r.tableFull.Load(),
	}
}

// allow takes an I1 token of h's bucket.
// allow takes an I1 token for host h from source src. Each source has its
// own bucket per host, so that one source (or a few spoofed ones) cannot
// use up a host's allowance for everyone; a per-host bucket of ten times
// the rate bounds the total the host receives.
func (r *relayServer) allow(h wire.HIT, src netip.Addr, now time.Time) bool {
	return r.take(bucketKey{h, src}, r.cfg.I1Rate, now) && r.take(bucketKey{host: h}, 10*r.cfg.I1Rate, now)
}

type bucketKey struct {
	host wire.HIT
	src  netip.Addr // zero: the host's total
}

func (r *relayServer) take(k bucketKey, rate float64, now time.Time) bool {
	b := r.buckets[k]
	if b == nil {
		if len(r.buckets) >= maxBuckets {
			return false
		}
		b = &bucket{tokens: rate, at: now}
		r.buckets[k] = b
	}
	b.tokens = min(rate, b.tokens+now.Sub(b.at).Seconds()*rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// maxBuckets bounds the rate-limit state (pruned after a minute idle).
const maxBuckets = 1 << 16

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
	pendingPerHost = 16
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
func (r *relayServer) hold(h wire.HIT, pkt wire.Packet, peerAt netip.AddrPort, now time.Time) {
	spi, ok := espInfoSPI(pkt)
	if !ok {
		return
	}
	k := pendingKey{h, peerAt}
	if _, ok := r.pending[k]; !ok {
		if r.perHost[h] >= pendingPerHost {
			r.tableFull.Add(1)
			return
		}
		r.perHost[h]++
	}
	r.pending[k] = pendingSPI{spi: spi, expires: now.Add(pendingLife)}
}

// activate runs when registered host h's RELAY_HMAC-checked packet pkt
// goes to peerAt: ESP with the SPI h announces in it, from peerAt, goes to
// h (at hAt); and ESP with the SPI held for h from peerAt, from h, goes to
// peerAt — h answering that peer is what vouches for the peer's address.
func (r *relayServer) activate(h wire.HIT, pkt wire.Packet, hAt, peerAt netip.AddrPort, now time.Time) {
	if spi, ok := espInfoSPI(pkt); ok {
		r.set(fwdKey{spi, peerAt}, hAt, now)
	}
	k := pendingKey{h, peerAt}
	if p, ok := r.pending[k]; ok {
		delete(r.pending, k)
		r.perHost[h]--
		if now.Before(p.expires) {
			r.set(fwdKey{p.spi, hAt}, peerAt, now)
		}
	}
}

// set creates or redirects a forwarding entry (authenticated callers
// only).
func (r *relayServer) set(k fwdKey, to netip.AddrPort, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.fwd[k]; e != nil && e.to == to {
		e.used.Store(now.UnixNano())
		return
	}
	if _, ok := r.fwd[k]; !ok && len(r.fwd) >= r.cfg.MaxForwards {
		r.tableFull.Add(1)
		return
	}
	e := &fwdEntry{to: to}
	e.used.Store(now.UnixNano())
	r.fwd[k] = e
}

// lookup is the read loop's ESP forwarding lookup. It allocates nothing.
func (r *relayServer) lookup(spi uint32, from netip.AddrPort, now int64) (netip.AddrPort, bool) {
	r.mu.RLock()
	e := r.fwd[fwdKey{spi, from}]
	r.mu.RUnlock()
	if e == nil {
		return netip.AddrPort{}, false
	}
	if t := now; e.used.Load() != t {
		e.used.Store(t) // read first: no shared write per packet
	}
	return e.to, true
}

// prune drops idle forwarding entries and idle rate buckets.
func (r *relayServer) prune(now time.Time) {
	idle := now.Add(-r.cfg.ForwardIdle).UnixNano()
	r.mu.Lock()
	for k, e := range r.fwd {
		if e.used.Load() < idle {
			delete(r.fwd, k)
		}
	}
	r.mu.Unlock()
	for h, b := range r.buckets {
		if now.Sub(b.at) > time.Minute {
			delete(r.buckets, h)
		}
	}
	for k, p := range r.pending {
		if !now.Before(p.expires) {
			delete(r.pending, k)
			r.perHost[k.host]--
		}
	}
}

// relayed reports whether h holds an unexpired relay or rendezvous grant.
func (s *Stack) relayed(h wire.HIT, now time.Time) bool {
	rec := getRecord(s.db, h)
	if rec == nil || rec.Reg == nil || !now.Before(rec.Reg.Expires) {
		return false
	}
	r := rec.Reg
	return strings.IndexByte(string(r.Granted), wire.RegTypeRelayUDPHIP) >= 0 ||
		strings.IndexByte(string(r.Granted), wire.RegTypeRendezvous) >= 0
}

// relayPacket handles, on a relay, a control packet that is not for us.
// It reports whether it took the packet.
func (c *control) relayPacket(now time.Time, pk ctrlPacket, pkt wire.Packet) bool {
	s, r := c.s, c.s.relay
	recv := pkt.ReceiverHIT()
	if r == nil || recv == s.hit || recv.IsZero() {
		return false
	}
	if _, ok := pkt.Param(wire.ParamRelayTo); ok {
		// A registered host's packet through us (§4.5 steps 4 and 8).
		sender := pkt.SenderHIT()
		sp := s.lookupPeer(sender)
		if sp == nil || sp.assoc == nil || !s.relayed(sender, now) {
			r.unregistered.Add(1)
			s.log.Debug("relay drop", "reason", "sender not registered", "from", pk.from, "sender", sender.String())
			return true
		}
		inner, to, err := sp.assoc.OpenRelayed(pk.b)
		if err != nil {
			r.forged.Add(1)
			s.log.Debug("relay drop", "reason", "relay_to", "from", pk.from, "err", err)
			return true
		}
		if !forwardable(to.AddrPort()) {
			r.forged.Add(1)
			return true
		}
		spAt, _ := sp.locator()
		if innerPkt, err := wire.ParsePacket(inner); err == nil {
			r.activate(sender, innerPkt, spAt, to.AddrPort(), now)
		}
		c.sendControl(inner, to.AddrPort())
		r.controlForwarded.Add(1)
		return true
	}
	// A packet for a registered host (§4.5 steps 2 and 6, RFC 8004 §3.3).
	rp := s.lookupPeer(recv)
	if rp == nil || rp.assoc == nil || !s.relayed(recv, now) {
		r.unregistered.Add(1)
		s.log.Debug("relay drop", "reason", "receiver not registered", "from", pk.from, "receiver", recv.String())
		return true
	}
	if _, ok := handshake.RelayAddr(pkt); ok {
		r.forged.Add(1) // relay parameters are ours to add
		return true
	}
	if _, ok := pkt.Param(wire.ParamRelayHMAC); ok {
		r.forged.Add(1)
		return true
	}
	if t := pkt.Type(); t == wire.R1 || t == wire.I2 {
		// RFC 5770 §4.5: a relay MUST drop an R1 or I2 without
		// NAT_TRAVERSAL_MODE.
		if _, ok := pkt.Param(wire.ParamNATTraversalMode); !ok {
			r.forged.Add(1)
			return true
		}
	}
	if pkt.Type() == wire.I1 && !r.allow(recv, pk.from.Addr(), now) {
		r.rateLimited.Add(1)
		s.log.Debug("relay drop", "reason", "i1 rate", "from", pk.from, "receiver", recv.String())
		return true
	}
	from := wire.TransportAddress{Type: wire.ParamRelayFrom, Port: pk.from.Port(), Protocol: wire.ProtocolUDP, Addr: pk.from.Addr().Unmap()}
	fwd, err := rp.assoc.AppendRelayed(pk.b, from)
	if err != nil {
		s.log.Debug("relay drop", "reason", "append", "err", err)
		r.forged.Add(1)
		return true
	}
	rpAt, _ := rp.locator()
	r.hold(recv, pkt, pk.from, now)
	c.sendControl(fwd, rpAt)
	r.controlForwarded.Add(1)
	return true
}

// forwardable says whether a relay sends to a: not to unspecified,
// multicast or broadcast addresses, whatever RELAY_TO says.
func forwardable(a netip.AddrPort) bool {
	ip := a.Addr()
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsMulticast() && a.Port() != 0 &&
		ip != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// forwardESP is the relay's ESP path for an SPI that is not ours. It
// allocates nothing.
func (s *Stack) forwardESP(b []byte, spi uint32, from netip.AddrPort) bool {
	r := s.relay
	if r == nil {
		return false
	}
	to, ok := r.lookup(spi, from, s.clock.Load())
	if !ok {
		return false
	}
	if err := s.sock.writeTo(b, to); err != nil {
		s.ctr.sendErrors.Add(1)
		return true
	}
	s.ctr.packetsOut.Add(1)
	s.ctr.bytesOut.Add(uint64(len(b)))
	r.espForwarded.Add(1)
	return true
}
