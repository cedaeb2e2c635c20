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
// announced s to a peer at b. An entry is only ever created by a packet
// relayed for a registered host, expires when idle, and the table is
// bounded. This plays the part of a TURN allocation (RFC 5770's relayed
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

	buckets map[wire.HIT]*bucket

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
	return &relayServer{cfg: cfg, fwd: map[fwdKey]*fwdEntry{}, buckets: map[wire.HIT]*bucket{}}
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
func (r *relayServer) allow(h wire.HIT, now time.Time) bool {
	b := r.buckets[h]
	if b == nil {
		b = &bucket{tokens: r.cfg.I1Rate, at: now}
		r.buckets[h] = b
	}
	b.tokens = min(r.cfg.I1Rate, b.tokens+now.Sub(b.at).Seconds()*r.cfg.I1Rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// learn records that ESP with the SPI of pkt's ESP_INFO, sent from
// peerAt, goes to ownerAt (the host that announced the SPI).
func (r *relayServer) learn(pkt wire.Packet, ownerAt, peerAt netip.AddrPort, now time.Time) {
	q, ok := pkt.Param(wire.ParamESPInfo)
	if !ok {
		return
	}
	ei, err := wire.ParseESPInfo(q.Contents())
	if err != nil || ei.NewSPI == 0 {
		return
	}
	k := fwdKey{ei.NewSPI, peerAt}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.fwd[k]; e != nil {
		if e.to != ownerAt {
			e = &fwdEntry{to: ownerAt}
			r.fwd[k] = e
		}
		e.used.Store(now.UnixNano())
		return
	}
	if len(r.fwd) >= r.cfg.MaxForwards {
		r.tableFull.Add(1)
		return
	}
	e := &fwdEntry{to: ownerAt}
	e.used.Store(now.UnixNano())
	r.fwd[k] = e
}

// lookup is the read loop's ESP forwarding lookup. It allocates nothing.
func (r *relayServer) lookup(spi uint32, from netip.AddrPort) (netip.AddrPort, bool) {
	r.mu.RLock()
	e := r.fwd[fwdKey{spi, from}]
	r.mu.RUnlock()
	if e == nil {
		return netip.AddrPort{}, false
	}
	e.used.Store(time.Now().UnixNano())
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
}

// relayed reports whether h holds an unexpired relay or rendezvous grant.
func (s *Stack) relayed(h wire.HIT, now time.Time) bool {
	r := getReg(s.db, h)
	if r == nil || !now.Before(r.Expires) {
		return false
	}
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
		spAt, _ := sp.locator()
		if innerPkt, err := wire.ParsePacket(inner); err == nil {
			r.learn(innerPkt, spAt, to.AddrPort(), now)
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
	if pkt.Type() == wire.I1 && !r.allow(recv, now) {
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
	r.learn(pkt, pk.from, rpAt, now)
	c.sendControl(fwd, rpAt)
	r.controlForwarded.Add(1)
	return true
}

// forwardESP is the relay's ESP path for an SPI that is not ours. It
// allocates nothing.
func (s *Stack) forwardESP(b []byte, spi uint32, from netip.AddrPort) bool {
	r := s.relay
	if r == nil {
		return false
	}
	to, ok := r.lookup(spi, from)
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
