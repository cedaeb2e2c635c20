package relay

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
)

func testRegistrar(mod func(*Config)) *registrar {
	cfg := Config{MaxRegistrations: 2, MinLifetime: 30 * time.Second, MaxLifetime: time.Hour}
	if mod != nil {
		mod(&cfg)
	}
	return newRegistrar(cfg, slog.New(slog.DiscardHandler))
}

func hitN(n byte) wire.HIT { return wire.HIT{0x20, 0x01, 0x00, 0x20, 15: n} }

func failedOf(fs []wire.RegFailed, t uint8) (uint8, bool) {
	for _, f := range fs {
		if bytes.IndexByte(f.Types, t) >= 0 {
			return f.FailureType, true
		}
	}
	return 0, false
}

// TestRegistrarGrant: a grant is clamped to the bounds (RFC 8003 §4.1),
// listed and served until it expires; a refresh moves the expiry;
// cancelling removes it; unknown types fail as unavailable.
func TestRegistrarGrant(t *testing.T) {
	r := testRegistrar(nil)
	h := hitN(1)
	start := time.Now()
	resp, failed := r.decide(h, wire.RegRequest{Lifetime: 255, Types: []byte{wire.RegTypeRelayUDPHIP, 200}})
	hi := wire.DurationToLifetime(time.Hour)
	if resp.Lifetime != hi || !bytes.Equal(resp.Types, []byte{wire.RegTypeRelayUDPHIP}) {
		t.Fatalf("granted %+v, want RELAY_UDP_HIP for lifetime %d", resp, hi)
	}
	if ft, ok := failedOf(failed, 200); !ok || ft != wire.RegFailureTypeUnavailable {
		t.Fatalf("type 200: %+v", failed)
	}
	l := r.list(start)
	if len(l) != 1 || l[0].Peer != h || l[0].Lifetime != hi {
		t.Fatalf("list %+v", l)
	}
	exp := l[0].Expires
	if !r.serves(h, wire.RegTypeRelayUDPHIP, exp.Add(-time.Second)) || r.serves(h, wire.RegTypeRelayUDPHIP, exp) {
		t.Fatal("served outside its lifetime")
	}
	if r.serves(h, wire.RegTypeRendezvous, start) {
		t.Fatal("served for a type not granted")
	}
	if len(r.list(exp)) != 0 {
		t.Fatal("expired grant listed")
	}
	resp, _ = r.decide(h, wire.RegRequest{Lifetime: 1, Types: []byte{wire.RegTypeRelayUDPHIP}})
	if lo := wire.DurationToLifetime(30 * time.Second); resp.Lifetime != lo {
		t.Fatalf("refresh granted lifetime %d, want the minimum %d", resp.Lifetime, lo)
	}
	if e := r.list(start)[0].Expires; !e.Before(exp) {
		t.Fatalf("refresh kept expiry %v (was %v)", e, exp)
	}
	resp, _ = r.decide(h, wire.RegRequest{Lifetime: 0, Types: []byte{wire.RegTypeRelayUDPHIP}})
	if resp.Lifetime != 0 || len(r.list(start)) != 0 || r.registered(h) {
		t.Fatalf("cancel answered %+v; list %+v", resp, r.list(start))
	}
}

// TestRegistrarRendezvousOrRelay: RFC 9028 §7.8. Asked for both in one
// request, a host gets RELAY_UDP_HIP and RENDEZVOUS fails with type 9;
// holding one, it cannot add the other; after cancelling, it can.
func TestRegistrarRendezvousOrRelay(t *testing.T) {
	r := testRegistrar(nil)
	h := hitN(1)
	resp, failed := r.decide(h, wire.RegRequest{Lifetime: 10, Types: []byte{wire.RegTypeRendezvous, wire.RegTypeRelayUDPHIP}})
	if !bytes.Equal(resp.Types, []byte{wire.RegTypeRelayUDPHIP}) {
		t.Fatalf("granted %+v", resp)
	}
	if ft, ok := failedOf(failed, wire.RegTypeRendezvous); !ok || ft != wire.RegFailureRendezvousAndRelay {
		t.Fatalf("RENDEZVOUS failed %+v, want type 9", failed)
	}
	resp, failed = r.decide(h, wire.RegRequest{Lifetime: 10, Types: []byte{wire.RegTypeRendezvous}})
	if len(resp.Types) != 0 {
		t.Fatalf("RENDEZVOUS granted beside RELAY_UDP_HIP: %+v", resp)
	}
	if ft, _ := failedOf(failed, wire.RegTypeRendezvous); ft != wire.RegFailureRendezvousAndRelay {
		t.Fatalf("failed %+v", failed)
	}
	if !r.serves(h, wire.RegTypeRelayUDPHIP, time.Now()) || r.serves(h, wire.RegTypeRendezvous, time.Now()) {
		t.Fatal("the refusal changed the grant")
	}
	r.decide(h, wire.RegRequest{Lifetime: 0, Types: []byte{wire.RegTypeRelayUDPHIP}})
	resp, _ = r.decide(h, wire.RegRequest{Lifetime: 10, Types: []byte{wire.RegTypeRendezvous}})
	if !bytes.Equal(resp.Types, []byte{wire.RegTypeRendezvous}) || !r.serves(h, wire.RegTypeRendezvous, time.Now()) {
		t.Fatalf("RENDEZVOUS after cancelling the relay: %+v", resp)
	}
	if got := r.refusedBoth.Load(); got != 2 {
		t.Fatalf("refusedBoth %d, want 2", got)
	}
}

// TestRegistrarLimits: the allow-list and the bound on hosts refuse with
// the RFC 8003 §4.3 failure types; an association's end drops its grant
// and frees its place.
func TestRegistrarLimits(t *testing.T) {
	r := testRegistrar(func(c *Config) { c.Allow = func(h wire.HIT) bool { return h != hitN(9) } })
	req := wire.RegRequest{Lifetime: 10, Types: []byte{wire.RegTypeRelayUDPHIP}}
	if _, failed := r.decide(hitN(9), req); len(failed) != 1 || failed[0].FailureType != wire.RegFailureCredentialsRequired {
		t.Fatalf("not allowed: %+v", failed)
	}
	r.decide(hitN(1), req)
	r.decide(hitN(2), req)
	resp, failed := r.decide(hitN(3), req)
	if len(resp.Types) != 0 || len(failed) != 1 || failed[0].FailureType != wire.RegFailureInsufficientResources {
		t.Fatalf("third host of two: %+v %+v", resp, failed)
	}
	r.ended(hitN(1))
	if r.registered(hitN(1)) {
		t.Fatal("grant kept after its association ended")
	}
	if resp, _ := r.decide(hitN(3), req); len(resp.Types) != 1 {
		t.Fatalf("place not freed: %+v", resp)
	}
	if r.refusedPolicy.Load() != 1 || r.refusedFull.Load() != 1 {
		t.Fatalf("counters policy %d full %d", r.refusedPolicy.Load(), r.refusedFull.Load())
	}
}

// TestTypeSet: every type we offer fits a grant's typeSet, and a set
// lists what went in.
func TestTypeSet(t *testing.T) {
	for _, ty := range offered {
		if ty >= 8 {
			t.Fatalf("offered type %d does not fit typeSet", ty)
		}
	}
	s := setOf([]uint8{wire.RegTypeRelayUDPHIP, wire.RegTypeRendezvous})
	if got := s.list(); len(got) != 2 || got[0] != wire.RegTypeRendezvous || got[1] != wire.RegTypeRelayUDPHIP {
		t.Fatalf("list %v", got)
	}
	if s &^= setOf([]uint8{wire.RegTypeRendezvous}); s.has(wire.RegTypeRendezvous) || !s.has(wire.RegTypeRelayUDPHIP) || s.has(200) {
		t.Fatalf("after removal: %08b", s)
	}
}
