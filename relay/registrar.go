package relay

import (
	"bytes"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
)

// The registrar (RFC 8003): the one table of who is registered with this
// relay, for what and until when. The stack's handshake asks decide (as
// handshake.Registrar.Decide, on the control goroutine) for every
// REG_REQUEST of an authenticated peer, and answers with what it returns;
// the forwarder asks serves before it forwards anything; the stack's
// Forwarder.Ended drops a host's grants with its association, since
// registrations are granted on one (RFC 8003 §3). Expired grants are
// filtered by time and pruned lazily.

// grant is one host's registration. Types holds RENDEZVOUS or
// RELAY_UDP_HIP, never both (RFC 9028 §7.8), as a set of bits (typeSet):
// a relay holds one grant per registered host, and a slice would cost 32
// octets more for one octet.
type grant struct {
	types    typeSet
	lifetime uint8
	expires  time.Time
}

// typeSet is a set of the registration types we offer, bit t for type t
// (every offered type is below 8).
type typeSet uint8

func setOf(types []uint8) typeSet {
	var s typeSet
	for _, t := range types {
		s |= 1 << t
	}
	return s
}

func (s typeSet) has(t uint8) bool { return t < 8 && s&(1<<t) != 0 }

// list returns the types in s in ascending order.
func (s typeSet) list() []uint8 {
	var out []uint8
	for t := range uint8(8) {
		if s.has(t) {
			out = append(out, t)
		}
	}
	return out
}

type registrar struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex // decide and ended run on the control goroutine; the readers anywhere
	regs map[wire.HIT]grant

	refusedPolicy, refusedFull, refusedBoth atomic.Uint64
}

func newRegistrar(cfg Config, log *slog.Logger) *registrar {
	return &registrar{cfg: cfg, log: log, regs: map[wire.HIT]grant{}}
}

// offered are the types this registrar serves (its REG_INFO); each is
// below 8 (typeSet).
var offered = []uint8{wire.RegTypeRendezvous, wire.RegTypeRelayUDPHIP}

// decide is the registration policy: which of req's types peer gets, for
// how long (RFC 8003 §3.3, §4.1: the lifetime is clamped to our bounds),
// and which it does not, with why.
func (r *registrar) decide(peer wire.HIT, req wire.RegRequest) (wire.RegResponse, []wire.RegFailed) {
	want, failed := splitOffered(req.Types)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.Lifetime == 0 { // a cancellation (RFC 8003 §5)
		r.cancelLocked(peer, want)
		r.log.Info("registration cancelled", "host", peer.String(), "types", typeNames(want))
		return wire.RegResponse{Lifetime: 0, Types: want}, failed
	}
	want, failed = r.exclusiveLocked(peer, want, failed, now)
	if len(want) == 0 {
		return wire.RegResponse{}, failed
	}
	if r.cfg.Allow != nil && !r.cfg.Allow(peer) {
		r.refusedPolicy.Add(1)
		r.log.Info("registration refused", "host", peer.String(), "reason", "not allowed")
		return wire.RegResponse{}, append(failed, wire.RegFailed{FailureType: wire.RegFailureCredentialsRequired, Types: want})
	}
	if _, ok := r.regs[peer]; !ok && len(r.regs) >= r.cfg.MaxRegistrations {
		r.pruneLocked(now)
		if len(r.regs) >= r.cfg.MaxRegistrations {
			r.refusedFull.Add(1)
			r.log.Warn("registration refused", "host", peer.String(), "reason", "full", "max", r.cfg.MaxRegistrations)
			return wire.RegResponse{}, append(failed, wire.RegFailed{FailureType: wire.RegFailureInsufficientResources, Types: want})
		}
	}
	lo, hi := wire.DurationToLifetime(r.cfg.MinLifetime), wire.DurationToLifetime(r.cfg.MaxLifetime)
	life := min(max(req.Lifetime, lo), hi)
	r.regs[peer] = grant{types: setOf(want), lifetime: life, expires: now.Add(wire.LifetimeToDuration(life))}
	return wire.RegResponse{Lifetime: life, Types: want}, failed
}

// splitOffered separates the types we offer from the others, which fail
// as unavailable (RFC 8003 §4.3, failure type 1).
func splitOffered(types []uint8) (want []uint8, failed []wire.RegFailed) {
	for _, t := range types {
		switch {
		case slices.Contains(want, t):
		case slices.Contains(offered, t):
			want = append(want, t)
		default:
			failed = append(failed, wire.RegFailed{FailureType: wire.RegFailureTypeUnavailable, Types: []byte{t}})
		}
	}
	return want, failed
}

// exclusiveLocked applies RFC 9028 §7.8: RENDEZVOUS and RELAY_UDP_HIP
// share one association's integrity key (RVS_HMAC and RELAY_HMAC), so a
// host holds one of them, never both. Asked for both, it gets
// RELAY_UDP_HIP, and RENDEZVOUS fails with type 9; asked for the one it
// does not hold while it holds the other, that one fails with type 9.
func (r *registrar) exclusiveLocked(peer wire.HIT, want []uint8, failed []wire.RegFailed, now time.Time) ([]uint8, []wire.RegFailed) {
	refuse := func(t uint8) {
		want = slices.DeleteFunc(want, func(x uint8) bool { return x == t })
		failed = append(failed, wire.RegFailed{FailureType: wire.RegFailureRendezvousAndRelay, Types: []byte{t}})
		r.refusedBoth.Add(1)
	}
	if slices.Contains(want, wire.RegTypeRendezvous) && slices.Contains(want, wire.RegTypeRelayUDPHIP) {
		refuse(wire.RegTypeRendezvous)
	}
	if g, ok := r.regs[peer]; ok && now.Before(g.expires) {
		for _, t := range slices.Clone(want) {
			if !g.types.has(t) {
				refuse(t)
			}
		}
	}
	return want, failed
}

// cancelLocked removes types from peer's grant; the grant goes with its
// last type.
func (r *registrar) cancelLocked(peer wire.HIT, types []uint8) {
	g, ok := r.regs[peer]
	if !ok {
		return
	}
	g.types &^= setOf(types)
	if g.types == 0 {
		delete(r.regs, peer)
		return
	}
	r.regs[peer] = g
}

// serves reports whether h holds an unexpired grant of type t.
func (r *registrar) serves(h wire.HIT, t uint8, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.regs[h]
	return ok && now.Before(g.expires) && g.types.has(t)
}

// registered reports whether h holds any unexpired grant (TURN
// credentials are for registered hosts).
func (r *registrar) registered(h wire.HIT) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.regs[h]
	return ok && time.Now().Before(g.expires)
}

// ended forgets h's grants: its association is gone.
func (r *registrar) ended(h wire.HIT) {
	r.mu.Lock()
	delete(r.regs, h)
	r.mu.Unlock()
}

func (r *registrar) pruneLocked(now time.Time) {
	for h, g := range r.regs {
		if !now.Before(g.expires) {
			delete(r.regs, h)
		}
	}
}

// list returns the live registrations in HIT order.
func (r *registrar) list(now time.Time) []overlay.Registration {
	r.mu.Lock()
	out := make([]overlay.Registration, 0, len(r.regs))
	for h, g := range r.regs {
		if now.Before(g.expires) {
			out = append(out, overlay.Registration{Peer: h, Granted: g.types.list(), Lifetime: g.lifetime, Expires: g.expires})
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b overlay.Registration) int { return bytes.Compare(a.Peer[:], b.Peer[:]) })
	return out
}

func typeNames(types []uint8) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = wire.RegTypeName(t)
	}
	return out
}
