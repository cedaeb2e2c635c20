package overlay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"hipnet.dev/handshake"
	"hipnet.dev/handshake/wire"
)

// asRegistrar makes a stack a registrar offering RENDEZVOUS and
// RELAY_UDP_HIP with lifetimes of 10 s to 2 min: it grants RELAY_UDP_HIP
// (the lifetime clamped to the bounds) and refuses RENDEZVOUS for want of
// credentials (failure type 0). decided counts the Decide calls.
func asRegistrar(decided *int) func(*Config) {
	return func(c *Config) {
		minL, maxL := wire.DurationToLifetime(10*time.Second), wire.DurationToLifetime(2*time.Minute)
		c.Handshake.Registrar = &handshake.Registrar{
			Info: wire.RegInfo{MinLifetime: minL, MaxLifetime: maxL, Types: []byte{wire.RegTypeRendezvous, wire.RegTypeRelayUDPHIP}},
			Decide: func(_ wire.HIT, req wire.RegRequest) (wire.RegResponse, []wire.RegFailed) {
				if decided != nil {
					*decided++ // control goroutine only
				}
				var grant wire.RegResponse
				var fail []wire.RegFailed
				for _, ty := range req.Types {
					if ty == wire.RegTypeRelayUDPHIP {
						grant.Types = append(grant.Types, ty)
					} else {
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
	}
}

func checkExpiry(t *testing.T, what string, got time.Time, before, after time.Time, d time.Duration) {
	t.Helper()
	if got.Before(before.Add(d)) || got.After(after.Add(d)) {
		t.Errorf("%s expires %v, want within [%v, %v] + %v", what, got, before, after, d)
	}
}

// TestRegister: the first Register starts the base exchange and asks in
// I2; the next ones use UPDATE on the established association; the
// registrar's Decide answers each and the stack logs it; lifetime 0
// cancels. (The registrar's table is package relay's: its tests.)
func TestRegister(t *testing.T) {
	var logs syncBuffer
	var decided int
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, func(c *Config) {
		asRegistrar(&decided)(c)
		c.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	introduce(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// In I2: asked for an hour, clamped to the registrar's 2 minutes.
	before := time.Now()
	reg, err := a.Register(ctx, b.HIT(), time.Hour, wire.RegTypeRelayUDPHIP)
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	maxL := wire.DurationToLifetime(2 * time.Minute)
	if reg.Peer != b.HIT() || !bytes.Equal(reg.Granted, []byte{wire.RegTypeRelayUDPHIP}) || reg.Lifetime != maxL || len(reg.Failed) != 0 {
		t.Fatalf("registration %+v", reg)
	}
	checkExpiry(t, "requester's", reg.Expires, before, after, wire.LifetimeToDuration(maxL))
	if pi, ok := peerInfo(a, b.HIT()); !ok || pi.State != "ESTABLISHED" || !pi.Initiator {
		t.Fatalf("association after Register: %+v %v", pi, ok)
	}
	first, _ := peerInfo(a, b.HIT())
	want := `"msg":"registration","peer":"` + a.HIT().String() + `","role":"registrar","granted":["RELAY_UDP_HIP"]`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, logs.String())
	}

	// By UPDATE: 30 s this time, on the same association.
	before = time.Now()
	reg, err = a.Register(ctx, b.HIT(), 30*time.Second, wire.RegTypeRelayUDPHIP)
	after = time.Now()
	l30 := wire.DurationToLifetime(30 * time.Second)
	if err != nil || reg.Lifetime != l30 || !bytes.Equal(reg.Granted, []byte{wire.RegTypeRelayUDPHIP}) {
		t.Fatalf("UPDATE registration %+v: %v", reg, err)
	}
	if pi, _ := peerInfo(a, b.HIT()); pi.InSPI != first.InSPI || pi.Since != first.Since {
		t.Fatalf("a new base exchange ran: %+v then %+v", first, pi)
	}
	checkExpiry(t, "refreshed", reg.Expires, before, after, wire.LifetimeToDuration(l30))

	// A refused type by UPDATE leaves the grant alone.
	reg, err = a.Register(ctx, b.HIT(), time.Minute, wire.RegTypeRendezvous)
	if !errors.Is(err, ErrRegistrationRefused) || len(reg.Granted) != 0 || len(reg.Failed) != 1 ||
		reg.Failed[0].FailureType != wire.RegFailureCredentialsRequired || !bytes.Equal(reg.Failed[0].Types, []byte{wire.RegTypeRendezvous}) {
		t.Fatalf("RENDEZVOUS by UPDATE: %+v, %v", reg, err)
	}

	// Cancel.
	reg, err = a.Register(ctx, b.HIT(), 0, wire.RegTypeRelayUDPHIP)
	if err != nil || reg.Lifetime != 0 || !reg.Expires.IsZero() {
		t.Fatalf("cancel: %+v, %v", reg, err)
	}
	b.Close() // Decide ran on b's control goroutine
	if decided != 4 {
		t.Errorf("Decide ran %d times, want 4", decided)
	}
}

// TestForwarderEnded: a Forwarder hears when an association ends, so
// that what it granted on it (a relay's registrations) ends with it.
func TestForwarderEnded(t *testing.T) {
	f := &endedForwarder{ended: make(chan wire.HIT, 4)}
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, func(c *Config) {
		asRegistrar(nil)(c)
		c.Forwarder = f
	})
	introduce(a, b)
	if _, err := a.Register(context.Background(), b.HIT(), time.Minute, wire.RegTypeRelayUDPHIP); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-f.ended:
		t.Fatalf("Ended(%v) while the association lives", h)
	default:
	}
	a.Close() // CLOSE to b
	select {
	case h := <-f.ended:
		if h != a.HIT() {
			t.Fatalf("Ended(%v), want %v", h, a.HIT())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the Forwarder did not hear that the association ended")
	}
}

// endedForwarder is a Forwarder that takes nothing and records Ended.
type endedForwarder struct{ ended chan wire.HIT }

func (*endedForwarder) Control(Host, time.Time, []byte, wire.Packet, netip.AddrPort) bool {
	return false
}
func (*endedForwarder) ESP(uint32, netip.AddrPort, int64) (netip.AddrPort, bool) {
	return netip.AddrPort{}, false
}
func (f *endedForwarder) Ended(h wire.HIT) { f.ended <- h }
func (*endedForwarder) Prune(time.Time)    {}

// TestRegisterRefused: asking only for what the registrar refuses, in I2.
func TestRegisterRefused(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, asRegistrar(nil))
	introduce(a, b)
	reg, err := a.Register(context.Background(), b.HIT(), time.Minute, wire.RegTypeRendezvous)
	if !errors.Is(err, ErrRegistrationRefused) || !strings.Contains(err.Error(), "RENDEZVOUS") {
		t.Fatalf("err %v", err)
	}
	if len(reg.Granted) != 0 || len(reg.Failed) != 1 || reg.Failed[0].FailureType != wire.RegFailureCredentialsRequired ||
		!bytes.Equal(reg.Failed[0].Types, []byte{wire.RegTypeRendezvous}) {
		t.Fatalf("registration %+v", reg)
	}
	if pi, ok := peerInfo(a, b.HIT()); !ok || pi.State != "ESTABLISHED" {
		t.Fatalf("a refused registration must not break the association: %+v", pi)
	}
}

// TestRegisterNotRegistrar: a stack without Registrar offers nothing, in
// I2 or by UPDATE.
func TestRegisterNotRegistrar(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, nil)
	introduce(a, b)
	for _, path := range []string{"I2", "UPDATE"} {
		reg, err := a.Register(context.Background(), b.HIT(), time.Minute, wire.RegTypeRelayUDPHIP)
		if !errors.Is(err, ErrRegistrationRefused) || len(reg.Failed) != 1 || reg.Failed[0].FailureType != wire.RegFailureTypeUnavailable ||
			!bytes.Equal(reg.Failed[0].Types, []byte{wire.RegTypeRelayUDPHIP}) {
			t.Fatalf("%s: %+v, %v", path, reg, err)
		}
		// The refusal is known from R1; the base exchange goes on.
		waitFor(t, 2*time.Second, "ESTABLISHED", func() bool {
			pi, ok := peerInfo(a, b.HIT())
			return ok && pi.State == "ESTABLISHED"
		})
	}
}

func TestRegisterUnknownPeer(t *testing.T) {
	a := newTestStack(t, 0, nil)
	_, err := a.Register(context.Background(), wire.HIT(testKey(t, 1).HIT()), time.Minute, wire.RegTypeRelayUDPHIP)
	if !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("err %v", err)
	}
}

// TestRegisterWaits: a Register waiting for a silent registrar honours its
// context, then Close wakes the next one with ErrClosed; no goroutine is
// left.
func TestRegisterWaits(t *testing.T) {
	base := runtime.NumGoroutine()
	a := newTestStack(t, 0, func(c *Config) {
		c.Handshake.RetransmitTimeout, c.Handshake.Retries = time.Second, 5
	})
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	registrar := wire.HIT(testKey(t, 1).HIT())
	a.AddPeer(registrar, addrPortOf(sink.LocalAddr()))

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := a.Register(ctx, registrar, time.Minute, wire.RegTypeRelayUDPHIP); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with a deadline: %v", err)
	}

	// Another silent registrar: this Register is waiting for the answer
	// (not retrying behind the abandoned one) when Close comes.
	other := wire.HIT(testKey(t, 2).HIT())
	a.AddPeer(other, addrPortOf(sink.LocalAddr()))
	sent := a.Stats().ControlOut
	errc := make(chan error, 1)
	go func() {
		_, err := a.Register(context.Background(), other, time.Minute, wire.RegTypeRelayUDPHIP)
		errc <- err
	}()
	waitFor(t, time.Second, "I1 sent", func() bool { return a.Stats().ControlOut > sent })
	barrier(t, a)
	start := time.Now()
	a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Register: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not wake Register")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Close took %v", d)
	}
	if _, err := a.Register(context.Background(), registrar, time.Minute, wire.RegTypeRelayUDPHIP); !errors.Is(err, ErrClosed) {
		t.Errorf("Register after Close: %v", err)
	}
	waitFor(t, 2*time.Second, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base })
}

// TestRegisterQueued: Registers that cannot be sent at once (one request
// to a registrar is in flight at a time, and the first goes in the I2) are
// queued on the control goroutine and sent, in turn, as soon as the
// association allows: every one is answered, no caller polls, and a caller
// that gives up while queued sends nothing.
func TestRegisterQueued(t *testing.T) {
	var decided int
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, asRegistrar(&decided))
	introduce(a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Callers that have given up already: Register either refuses at once
	// or, when the control goroutine takes the command first, queues it
	// behind the others, and then it must be dropped, not sent.
	gaveUp, giveUp := context.WithCancel(ctx)
	giveUp()
	const n, quitters = 4, 20
	errc := make(chan error, n+quitters)
	for range n {
		go func() {
			_, err := a.Register(ctx, b.HIT(), time.Minute, wire.RegTypeRelayUDPHIP)
			errc <- err
		}()
	}
	for range quitters {
		go func() {
			_, err := a.Register(gaveUp, b.HIT(), time.Minute, wire.RegTypeRelayUDPHIP)
			errc <- err
		}()
	}
	canceled := 0
	for range n + quitters {
		switch err := <-errc; {
		case errors.Is(err, context.Canceled):
			canceled++
		case err != nil:
			t.Fatalf("Register: %v", err)
		}
	}
	if canceled != quitters {
		t.Fatalf("%d Registers cancelled, want the %d given up", canceled, quitters)
	}
	barrier(t, a)
	barrier(t, b)
	if decided != n {
		t.Fatalf("the registrar decided %d requests, want %d (the one given up must not be sent)", decided, n)
	}
}

// TestRegisterFromNewMapping: a requester behind a NAT whose mapping
// changed (it now sends from another address, and the old one hears
// nothing) refreshes its registration from there: the registrar answers
// where the request came from, with REG_FROM naming that address (RFC
// 9028 §4.1), which the relay client takes as its new reflexive one.
// Before, the answer went to the old mapping and the refresh went
// unanswered.
func TestRegisterFromNewMapping(t *testing.T) {
	mc := newMovingConn(t)
	a := newTestStack(t, 0, func(c *Config) { c.PacketConn, c.ListenAddr = mc, "" })
	b := newTestStack(t, 1, asRegistrar(nil))
	a.AddPeer(b.HIT(), b.LocalAddr())
	register := func() regResult {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return a.register(ctx, b.HIT(), time.Minute, wire.RegTypeRelayUDPHIP)
	}
	if res := register(); res.err != nil || res.from != netip.MustParseAddrPort("127.0.0.1:"+itoaPort(mc)) {
		t.Fatalf("registration: %v, REG_FROM %v", res.err, res.from)
	}
	mc.move()
	mc.leave()
	if res := register(); res.err != nil || res.from.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Fatalf("registration from the new mapping: %v, REG_FROM %v", res.err, res.from)
	}
}

// raceCopier is a requester's socket on whose path an attacker copies the
// next registration UPDATE and sends the copy first, from its own address.
type raceCopier struct {
	net.PacketConn
	attacker net.PacketConn
	armed    atomic.Bool
}

func (r *raceCopier) WriteTo(b []byte, to net.Addr) (int, error) {
	if len(b) > 8 && b[0]|b[1]|b[2]|b[3] == 0 && r.armed.Load() {
		if pkt, err := wire.ParsePacket(b[4:]); err == nil && pkt.Type() == wire.UPDATE {
			if _, ok := pkt.Param(wire.ParamRegRequest); ok && r.armed.Swap(false) {
				r.attacker.WriteTo(b, to)
				time.Sleep(5 * time.Millisecond) // the copy wins the race
			}
		}
	}
	return r.PacketConn.WriteTo(b, to)
}

// TestRegisterFromRaceLost: an attacker on the path copies the requester's
// registration refresh and sends the copy first, from its own address X.
// The registrar answers the copy at X, with REG_FROM X; the requester's
// own copy arrives as a repeat from the address the registrar verified,
// and its answer names that address. Before, the cached answer to the
// copy (REG_FROM X) went to the requester, which took X for its own
// address (its relay client then re-registers at every keepalive).
func TestRegisterFromRaceLost(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	atk, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { atk.Close() })
	rc := &raceCopier{PacketConn: pc, attacker: atk}
	a := newTestStack(t, 0, func(c *Config) { c.PacketConn, c.ListenAddr = rc, "" })
	b := newTestStack(t, 1, asRegistrar(nil))
	a.AddPeer(b.HIT(), b.LocalAddr())
	register := func() regResult {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return a.register(ctx, b.HIT(), time.Minute, wire.RegTypeRelayUDPHIP)
	}
	own := addrPortOf(pc.LocalAddr())
	if res := register(); res.err != nil || res.from != own {
		t.Fatalf("registration: %v, REG_FROM %v, want %v", res.err, res.from, own)
	}
	rc.armed.Store(true)
	res := register()
	if rc.armed.Load() {
		t.Fatal("the refresh was not copied")
	}
	if res.err != nil || res.from != own {
		t.Fatalf("refresh raced by a copy from %v: %v, REG_FROM %v, want %v", atk.LocalAddr(), res.err, res.from, own)
	}
}
