// Package testnet holds the test scaffolding shared by the MQTT example's
// tests: an in-process HIP relay, hipnet nodes registered with it, and a
// line reader for the programs' output. Tests only.
package testnet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/hipnet"
	"hipnet.dev/relay"
)

// Relay starts a relay on pc (or on 127.0.0.1:0 if pc is nil) and returns
// it with its "HIT@host:port" for Config.Relays and -relay.
func Relay(t testing.TB, pc net.PacketConn) (*relay.Server, string) {
	t.Helper()
	k, err := hostid.Generate(hostid.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Identity: k, ListenAddr: "127.0.0.1:0", PacketConn: pc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, fmt.Sprintf("%v@%v", r.HIT(), r.Addr())
}

// Node starts a node registered with relaySpec, admitting only the peers
// in allow (and the relay); pc nil means 127.0.0.1:0.
func Node(t testing.TB, id *hipnet.Identity, pc net.PacketConn, relaySpec string, allow ...hipnet.HIT) *hipnet.Node {
	t.Helper()
	ra, err := hipnet.ParseRelay(relaySpec)
	if err != nil {
		t.Fatal(err)
	}
	ok := map[hipnet.HIT]bool{ra.HIT: true}
	for _, h := range allow {
		ok[h] = true
	}
	n, err := hipnet.NewNode(hipnet.Config{
		Identity:   id,
		ListenAddr: "127.0.0.1:0",
		PacketConn: pc,
		Relays:     []string{relaySpec},
		Authorize:  func(h hipnet.HIT) bool { return ok[h] },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Identity generates an identity.
func Identity(t testing.TB) *hipnet.Identity {
	t.Helper()
	id, err := hipnet.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// WaitRegistered waits until every HIT holds a registration on r.
func WaitRegistered(t testing.TB, r *relay.Server, hits ...hipnet.HIT) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, h := range hits {
		for !registered(r, h) {
			if time.Now().After(deadline) {
				t.Fatalf("%v did not register with the relay", h)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func registered(r *relay.Server, h hipnet.HIT) bool {
	for _, reg := range r.Registrations() {
		if reg.Peer == h {
			return true
		}
	}
	return false
}

// Lines delivers r's lines on a channel, closed at EOF.
func Lines(r io.Reader) <-chan string {
	ch := make(chan string, 1024)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// Next returns the next line, failing the test after within.
func Next(t testing.TB, lines <-chan string, within time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("output ended")
		}
		return l
	case <-time.After(within):
		t.Fatalf("no output line within %v", within)
	}
	return ""
}

// Stopper returns a function that stops a program running in a test: it
// cancels its context and waits (at most 10 s) for run's result on done.
// Later calls return the same result; it also runs at the test's cleanup.
func Stopper(t testing.TB, name string, cancel func(), done <-chan error) func() error {
	var stopped bool
	var runErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				runErr = errors.New(name + " did not stop within 10 s")
			}
		}
		return runErr
	}
	t.Cleanup(func() { stop() })
	return stop
}
