package handshake

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// registrarCfg offers RENDEZVOUS and RELAY_UDP_HIP with lifetimes 10 s to
// 2 min, grants RELAY_UDP_HIP (lifetime clamped) and refuses RENDEZVOUS
// for want of credentials.
func registrarCfg(t *testing.T, decided *[]wire.RegRequest) Config {
	cfg := defaultCfg(testKey(t, hostid.ECDSAP256, 1))
	minL, maxL := wire.DurationToLifetime(10e9), wire.DurationToLifetime(120e9)
	cfg.Registrar = &Registrar{
		Info: wire.RegInfo{MinLifetime: minL, MaxLifetime: maxL, Types: []byte{wire.RegTypeRendezvous, wire.RegTypeRelayUDPHIP}},
		Decide: func(peer wire.HIT, req wire.RegRequest) (wire.RegResponse, []wire.RegFailed) {
			*decided = append(*decided, wire.RegRequest{Lifetime: req.Lifetime, Types: append([]byte(nil), req.Types...)})
			var grant wire.RegResponse
			var fail []wire.RegFailed
			for _, ty := range req.Types {
				switch ty {
				case wire.RegTypeRelayUDPHIP:
					grant.Types = append(grant.Types, ty)
				default:
					fail = append(fail, wire.RegFailed{FailureType: wire.RegFailureCredentialsRequired, Types: []byte{ty}})
				}
			}
			grant.Lifetime = min(max(req.Lifetime, minL), maxL)
			if req.Lifetime == 0 {
				grant.Lifetime = 0
			}
			return grant, fail
		},
	}
	return cfg
}

func TestRegistrationInBaseExchange(t *testing.T) {
	var decided []wire.RegRequest
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", registrarCfg(t, &decided))
	l := &link{}
	out := a.initiate(t0, b.e.HIT())
	if err := a.a(b).RequestRegistration(wire.DurationToLifetime(3600e9), wire.RegTypeRelayUDPHIP, wire.RegTypeRendezvous, 200); err != nil {
		t.Fatal(err)
	}
	l.send(a, b, out)
	l.run(t, t0)
	if a.a(b).State() != Established {
		t.Fatalf("state %v", a.a(b).State())
	}
	// R1 announced the services; I2 asked only for the offered ones.
	r1, _ := wire.ParsePacket(l.seen[1].b)
	if _, ok := r1.Param(wire.ParamRegInfo); !ok {
		t.Fatal("R1 without REG_INFO")
	}
	if info, ok := a.a(b).PeerRegInfo(); !ok || !bytes.Equal(info.Types, []byte{1, 2}) {
		t.Fatalf("REG_INFO learnt %v %v", info, ok)
	}
	if len(decided) != 1 || !bytes.Equal(decided[0].Types, []byte{wire.RegTypeRelayUDPHIP, wire.RegTypeRendezvous}) {
		t.Fatalf("registrar saw %v", decided)
	}
	// R2 granted RELAY_UDP_HIP for the maximum and refused RENDEZVOUS.
	for _, h := range []*host{a, b} {
		ev := lastEvent(t, h, EventRegistration).Registration
		if !bytes.Equal(ev.Granted, []byte{wire.RegTypeRelayUDPHIP}) || ev.Lifetime != wire.DurationToLifetime(120e9) ||
			len(ev.Failed) != 1 || ev.Failed[0].FailureType != wire.RegFailureCredentialsRequired || !bytes.Equal(ev.Failed[0].Types, []byte{wire.RegTypeRendezvous}) {
			t.Fatalf("%s: registration %+v", h.name, ev)
		}
		if d := ev.Duration(); d < 120e9 || d > 130e9 {
			t.Fatalf("lifetime %v", d)
		}
	}
}

func TestRegistrationNotOffered(t *testing.T) {
	a, b := pair(t) // b is no registrar
	l := &link{}
	out := a.initiate(t0, b.e.HIT())
	a.a(b).RequestRegistration(100, wire.RegTypeRelayUDPHIP)
	l.send(a, b, out)
	l.run(t, t0)
	i2, _ := wire.ParsePacket(l.seen[2].b)
	if _, ok := i2.Param(wire.ParamRegRequest); ok {
		t.Fatal("I2 requested a service the R1 did not offer")
	}
	ev := lastEvent(t, a, EventRegistration).Registration
	if len(ev.Granted) != 0 || len(ev.Failed) != 1 || ev.Failed[0].FailureType != wire.RegFailureTypeUnavailable {
		t.Fatalf("registration %+v", ev)
	}
	if a.a(b).State() != Established {
		t.Fatal("a registration nobody offers must not break the exchange")
	}
}

// TestRegistrationByUpdate: register on an existing association, then
// cancel with lifetime 0 (RFC 8003 §3.2, §5); a forged answer is ignored.
func TestRegistrationByUpdate(t *testing.T) {
	var decided []wire.RegRequest
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", registrarCfg(t, &decided))
	bex(t, a, b)
	b.a(a).DataReceived(t0)
	a.events, b.events = nil, nil
	if err := a.a(b).Register(t0, 100, wire.RegTypeRelayUDPHIP); err != nil {
		t.Fatal(err)
	}
	if err := a.a(b).Register(t0, 100, wire.RegTypeRelayUDPHIP); err != ErrBusy {
		t.Fatalf("second outstanding UPDATE: %v", err)
	}
	up := a.collect(a.a(b))
	l := &link{}
	l.send(a, b, up)
	l.run(t, t0)
	ev := lastEvent(t, a, EventRegistration).Registration
	if !bytes.Equal(ev.Granted, []byte{wire.RegTypeRelayUDPHIP}) || ev.Lifetime != 100 {
		t.Fatalf("registration %+v", ev)
	}
	if !a.a(b).Deadline().IsZero() {
		t.Fatal("REG_REQUEST UPDATE still being retransmitted")
	}
	// A retransmitted request is answered again from the cache, not decided twice.
	b.deliver(t0, up[0])
	if len(decided) != 1 {
		t.Fatalf("decided %d times", len(decided))
	}
	// Cancel.
	a.events = nil
	if err := a.a(b).Register(t0, 0, wire.RegTypeRelayUDPHIP); err != nil {
		t.Fatal(err)
	}
	l.send(a, b, a.collect(a.a(b)))
	l.run(t, t0)
	if len(decided) != 2 || decided[1].Lifetime != 0 {
		t.Fatalf("cancel not decided: %v", decided)
	}
	// Asking for a type the registrar does not offer is refused locally.
	if err := a.a(b).Register(t0, 100, 250); err == nil {
		t.Fatal("registered for an unoffered type")
	}
}

// TestRegistrationFrom: a registrar with Registrar.From sends REG_FROM,
// the address it saw the requester at, in its R2 and in its UPDATE
// answers (RFC 5770 §4.1, RFC 9028 §4.1); the requester reports it in
// the Registration. It is under the signature and HIP_MAC: an answer
// whose REG_FROM was changed on the path is dropped.
func TestRegistrationFrom(t *testing.T) {
	var decided []wire.RegRequest
	seen := netip.MustParseAddrPort("198.51.100.7:40000")
	cfg := registrarCfg(t, &decided)
	cfg.Registrar.From = func(wire.HIT, bool) (netip.AddrPort, bool) { return seen, true }
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", cfg)
	l := &link{}
	out := a.initiate(t0, b.e.HIT())
	if err := a.a(b).RequestRegistration(100, wire.RegTypeRelayUDPHIP); err != nil {
		t.Fatal(err)
	}
	l.send(a, b, out)
	l.run(t, t0)
	if ev := lastEvent(t, a, EventRegistration).Registration; ev.From != seen {
		t.Fatalf("R2's registration %+v, want From %v", ev, seen)
	}
	// By UPDATE, from another address; then an answer changed on the way.
	seen = netip.MustParseAddrPort("[2001:db8::7]:40001")
	b.a(a).DataReceived(t0)
	for _, tamper := range []bool{false, true} {
		a.events = nil
		if err := a.a(b).Register(t0, 100, wire.RegTypeRelayUDPHIP); err != nil {
			t.Fatal(err)
		}
		l := &link{}
		l.filter = func(p packet) []byte {
			if !tamper || p.from != b {
				return p.b
			}
			pk, err := wire.ParsePacket(p.b)
			if err != nil {
				return p.b
			}
			rf, ok := pk.Param(wire.ParamRegFrom)
			if !ok {
				t.Fatal("UPDATE answer without REG_FROM")
			}
			c := rf.Contents()
			c[len(c)-1] ^= 1 // the last octet of the address
			return p.b
		}
		l.send(a, b, a.collect(a.a(b)))
		l.run(t, t0)
		regs := 0
		for _, ev := range a.events {
			if ev.Kind == EventRegistration {
				regs++
				if ev.Registration.From != seen {
					t.Fatalf("UPDATE's registration %+v, want From %v", ev.Registration, seen)
				}
			}
		}
		if want := map[bool]int{false: 1, true: 0}[tamper]; regs != want {
			t.Fatalf("tampered %v: %d registrations reported, want %d", tamper, regs, want)
		}
	}
}

// TestRegistrationFromRepeat: an attacker on the path copies a registration
// UPDATE and sends the copy, from an address X of its choosing, before the
// requester's own arrives. The registrar answers the copy (naming X in
// REG_FROM, where the caller sends it); the requester's own copy arrives
// as a repeat from the address the registrar verified, and its answer must
// name that address, not X, even when a second copy of the attacker's
// took the re-ACK rate limit's window just before. A repeat from any
// other address gets the cached answer, and so does one from the same
// address once corrected.
func TestRegistrationFromRepeat(t *testing.T) {
	var decided []wire.RegRequest
	x := netip.MustParseAddrPort("203.0.113.66:4500")
	verified := netip.MustParseAddrPort("198.51.100.7:40000")
	var from struct {
		fresh, repeat netip.AddrPort
		repeatOK      bool
	}
	cfg := registrarCfg(t, &decided)
	cfg.Registrar.From = func(_ wire.HIT, repeat bool) (netip.AddrPort, bool) {
		if repeat {
			return from.repeat, from.repeatOK
		}
		return from.fresh, true
	}
	a := newHost(t, "a", defaultCfg(testKey(t, hostid.ECDSAP256, 0)))
	b := newHost(t, "b", cfg)
	from.fresh = verified
	bex(t, a, b)
	b.a(a).DataReceived(t0)

	// The copy from X is answered first.
	a.events = nil
	if err := a.a(b).Register(t0, 100, wire.RegTypeRelayUDPHIP); err != nil {
		t.Fatal(err)
	}
	upd := a.collect(a.a(b))
	if len(upd) != 1 {
		t.Fatalf("%d packets for a registration, want 1", len(upd))
	}
	from.fresh = x
	if out := b.deliver(t0, upd[0]); len(out) != 1 {
		t.Fatalf("the copy drew %d packets, want 1 answer", len(out))
	} else if got := regFromOf(t, out[0]); got != x {
		t.Fatalf("answer to the copy names %v, want %v", got, x)
	}
	if len(a.eventsOf(EventRegistration)) != 0 {
		t.Fatal("the requester heard the answer sent to the copy's address")
	}

	// Repeats, a millisecond apart: within the re-ACK rate limit, which
	// the attacker's second copy takes.
	now := t0
	repeat := func(at netip.AddrPort, ok bool, gap time.Duration) [][]byte {
		t.Helper()
		now = now.Add(gap)
		from.repeat, from.repeatOK = at, ok
		return b.deliver(now, upd[0])
	}
	one := func(out [][]byte) []byte {
		t.Helper()
		if !b.repeat || len(out) != 1 {
			t.Fatalf("repeat: repeat %v, %d packets (%v), want one re-ACK", b.repeat, len(out), b.lastErr())
		}
		return out[0]
	}
	// From elsewhere: the cached answer.
	if got := regFromOf(t, one(repeat(netip.MustParseAddrPort("192.0.2.9:1"), false, time.Millisecond))); got != x {
		t.Fatalf("a repeat from an unverified address: REG_FROM %v, want the cached %v", got, x)
	}
	// The requester's own, from the verified address, inside the rate
	// limit's window: answered, corrected.
	ans := one(repeat(verified, true, time.Millisecond))
	if got := regFromOf(t, ans); got != verified {
		t.Fatalf("the requester's own copy: REG_FROM %v, want %v", got, verified)
	}
	a.deliver(now, ans)
	if regs := a.eventsOf(EventRegistration); len(regs) != 1 || regs[0].Registration.From != verified {
		t.Fatalf("the requester reported %+v, want one registration with From %v", regs, verified)
	}
	// Corrected once: more repeats wait for the window, from anywhere.
	for _, at := range []netip.AddrPort{verified, x} {
		if out := repeat(at, at == verified, time.Millisecond); len(out) != 0 {
			t.Fatalf("a repeat from %v inside the window drew %d packets", at, len(out))
		}
	}
	// After it, the corrected answer is the cached one.
	if again := one(repeat(verified, true, b.e.cfg.RetransmitTimeout)); string(again) != string(ans) {
		t.Fatal("a later repeat from the verified address built a new answer")
	}
}

func regFromOf(t *testing.T, b []byte) netip.AddrPort {
	t.Helper()
	reg, err := readRegAnswer(wire.Packet(b))
	if err != nil || reg == nil {
		t.Fatalf("no registration answer: %v", err)
	}
	return reg.From
}
