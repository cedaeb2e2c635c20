package overlay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"strings"
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

func registrations(s *Stack, h wire.HIT) (Registration, bool) {
	for _, r := range s.Registrations() {
		if r.Peer == h {
			return r, true
		}
	}
	return Registration{}, false
}

func checkExpiry(t *testing.T, what string, got time.Time, before, after time.Time, d time.Duration) {
	t.Helper()
	if got.Before(before.Add(d)) || got.After(after.Add(d)) {
		t.Errorf("%s expires %v, want within [%v, %v] + %v", what, got, before, after, d)
	}
}

// TestRegister: the first Register starts the base exchange and asks in
// I2; the next ones use UPDATE on the established association; the
// registrar lists the registration with its expiry and logs it; lifetime 0
// cancels; closing the association removes the record.
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
	r, ok := registrations(b, a.HIT())
	if !ok || !bytes.Equal(r.Granted, []byte{wire.RegTypeRelayUDPHIP}) || r.Lifetime != maxL {
		t.Fatalf("registrar's records %+v", b.Registrations())
	}
	checkExpiry(t, "registrar's", r.Expires, before, after, wire.LifetimeToDuration(maxL))
	if len(a.Registrations()) != 0 {
		t.Errorf("the requester records %+v", a.Registrations())
	}
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
	if r, ok = registrations(b, a.HIT()); !ok || r.Lifetime != l30 {
		t.Fatalf("registrar's records after UPDATE %+v", b.Registrations())
	}
	checkExpiry(t, "refreshed", r.Expires, before, after, wire.LifetimeToDuration(l30))

	// A refused type by UPDATE leaves the grant alone.
	reg, err = a.Register(ctx, b.HIT(), time.Minute, wire.RegTypeRendezvous)
	if !errors.Is(err, ErrRegistrationRefused) || len(reg.Granted) != 0 || len(reg.Failed) != 1 ||
		reg.Failed[0].FailureType != wire.RegFailureCredentialsRequired || !bytes.Equal(reg.Failed[0].Types, []byte{wire.RegTypeRendezvous}) {
		t.Fatalf("RENDEZVOUS by UPDATE: %+v, %v", reg, err)
	}
	if _, ok = registrations(b, a.HIT()); !ok {
		t.Fatal("a refusal removed the grant")
	}

	// Cancel.
	reg, err = a.Register(ctx, b.HIT(), 0, wire.RegTypeRelayUDPHIP)
	if err != nil || reg.Lifetime != 0 || !reg.Expires.IsZero() {
		t.Fatalf("cancel: %+v, %v", reg, err)
	}
	if rs := b.Registrations(); len(rs) != 0 {
		t.Fatalf("registrations after cancel %+v", rs)
	}
	b.Close() // Decide ran on b's control goroutine
	if decided != 4 {
		t.Errorf("Decide ran %d times, want 4", decided)
	}
}

// TestRegistrationEndsWithAssociation: closing the association removes the
// registrar's record.
func TestRegistrationEndsWithAssociation(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, asRegistrar(nil))
	introduce(a, b)
	if _, err := a.Register(context.Background(), b.HIT(), time.Minute, wire.RegTypeRelayUDPHIP); err != nil {
		t.Fatal(err)
	}
	if len(b.Registrations()) != 1 {
		t.Fatalf("registrations %+v", b.Registrations())
	}
	a.Close() // CLOSE to b
	waitFor(t, 2*time.Second, "the registration removed", func() bool { return len(b.Registrations()) == 0 })
}

// TestRegistrationExpires: Registrations leaves out expired records.
func TestRegistrationExpires(t *testing.T) {
	a := newTestStack(t, 0, nil)
	b := newTestStack(t, 1, func(c *Config) {
		c.Handshake.Registrar = &handshake.Registrar{
			Info: wire.RegInfo{MinLifetime: 1, MaxLifetime: 255, Types: []byte{wire.RegTypeRelayUDPHIP}},
			Decide: func(_ wire.HIT, req wire.RegRequest) (wire.RegResponse, []wire.RegFailed) {
				return wire.RegResponse(req), nil
			},
		}
	})
	introduce(a, b)
	reg, err := a.Register(context.Background(), b.HIT(), 100*time.Millisecond, wire.RegTypeRelayUDPHIP)
	if err != nil {
		t.Fatal(err)
	}
	if d := reg.Duration(); d < 100*time.Millisecond || d > 120*time.Millisecond {
		t.Fatalf("granted %v", d)
	}
	r, ok := registrations(b, a.HIT())
	if !ok {
		t.Fatalf("no record (%+v)", b.Registrations())
	}
	time.Sleep(time.Until(r.Expires) + 10*time.Millisecond)
	if rs := b.Registrations(); len(rs) != 0 {
		t.Fatalf("expired registration listed: %+v", rs)
	}
}

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
	if rs := b.Registrations(); len(rs) != 0 {
		t.Fatalf("refusal recorded: %+v", rs)
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
