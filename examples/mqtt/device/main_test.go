package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hipnet.dev/examples/mqtt/internal/hipmqtt"
	"hipnet.dev/examples/mqtt/internal/testnet"
	"hipnet.dev/hipnet"
	"hipnet.dev/relay"
)

// broker starts a broker on a node registered with the relay that admits
// only the device; its messages arrive on the returned channel.
func broker(t *testing.T, r *relay.Server, relaySpec string, pc net.PacketConn, device hipnet.HIT) (*hipnet.Node, *hipmqtt.Broker, <-chan hipmqtt.Message) {
	t.Helper()
	node := testnet.Node(t, testnet.Identity(t), pc, relaySpec, device)
	msgs := make(chan hipmqtt.Message, 1024)
	b, err := hipmqtt.NewBroker(hipmqtt.BrokerConfig{Node: node, OnMessage: func(m hipmqtt.Message) { msgs <- m }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	testnet.WaitRegistered(t, r, node.HIT())
	return node, b, msgs
}

// deviceRun runs the device program and returns its HIT and a stop
// function that cancels it and returns run's error.
func deviceRun(t *testing.T, pc net.PacketConn, args ...string) (hipnet.HIT, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runWith(ctx, args, pw, io.Discard, pc)
		pw.Close()
	}()
	lines := testnet.Lines(pr)
	first := testnet.Next(t, lines, 20*time.Second)
	text, ok := strings.CutPrefix(first, "HIT ")
	if !ok {
		cancel()
		t.Fatalf("first line %q (run: %v)", first, <-done)
	}
	hit, err := hipnet.ParseHIT(text)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines { // nothing else is printed; keep the pipe flowing
		}
	}()
	stop := testnet.Stopper(t, "device", cancel, done)
	return hit, stop
}

// receive waits for the telemetry messages from hit numbered seq to
// seq+n-1, in any order and repeats allowed (QoS 1 is at least once, and
// messages queued during a reconnection are resent after newer ones), and
// returns the one with the highest number.
func receive(t *testing.T, msgs <-chan hipmqtt.Message, hit hipnet.HIT, seq uint64, n int, within time.Duration) hipmqtt.Telemetry {
	t.Helper()
	deadline := time.After(within)
	seen := map[uint64]bool{}
	var last hipmqtt.Telemetry
	for len(seen) < n {
		select {
		case m := <-msgs:
			if m.ClientID != hit.String() || m.Topic != hipmqtt.TelemetryTopic(hit) || m.QoS != 1 {
				t.Fatalf("message from %q on %q QoS %d", m.ClientID, m.Topic, m.QoS)
			}
			var tm hipmqtt.Telemetry
			if err := json.Unmarshal(m.Payload, &tm); err != nil || tm.Device != hit {
				t.Fatalf("payload %s: %v", m.Payload, err)
			}
			if tm.Seq >= seq && tm.Seq < seq+uint64(n) {
				seen[tm.Seq] = true
			}
			if tm.Seq > last.Seq {
				last = tm
			}
		case <-deadline:
			t.Fatalf("%d of messages %d..%d within %v", len(seen), seq, seq+uint64(n)-1, within)
		}
	}
	return last
}

// TestDeviceLoopback runs the device program against a broker and a relay
// on 127.0.0.1: it knows the broker by HIT alone, its telemetry arrives
// in order with its HIT as client id, it reconnects when the broker drops
// its session, and it stops cleanly.
func TestDeviceLoopback(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "device.key")
	id, err := hipnet.LoadOrCreateIdentity(key)
	if err != nil {
		t.Fatal(err)
	}
	r, relaySpec := testnet.Relay(t, nil)
	bnode, b, msgs := broker(t, r, relaySpec, nil, id.HIT())
	hit, stop := deviceRun(t, nil, "-identity", key, "-listen", "127.0.0.1:0", "-relay", relaySpec,
		"-broker", bnode.HIT().String(), "-interval", "100ms")
	if hit != id.HIT() {
		t.Fatalf("device printed HIT %v, key has %v", hit, id.HIT())
	}
	last := receive(t, msgs, hit, 1, 5, 30*time.Second)
	t.Logf("HIP path to the broker: %s", last.HIPPath)

	if !b.Disconnect(hit.String()) {
		t.Fatal("device not connected")
	}
	receive(t, msgs, hit, last.Seq+1, 10, 30*time.Second) // nothing lost across the reconnection
	if err := stop(); err != nil {
		t.Fatalf("device: %v", err)
	}
}

// TestRunFlags: what the device refuses before starting.
func TestRunFlags(t *testing.T) {
	key := filepath.Join(t.TempDir(), "d.key")
	relay := "2001:20::1@127.0.0.1:10500"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-identity", key, "-relay", relay}, "-broker"},
		{[]string{"-identity", key, "-relay", relay, "-broker", "10.0.0.1"}, "-broker"},
		{[]string{"-identity", key, "-broker", "2001:20::2"}, "no relay"},
		{[]string{"-identity", key, "-broker", "2001:20::2", "-relay", "127.0.0.1:10500"}, "HIT@host:port"},
		{[]string{"-identity", key, "-broker", "2001:20::2", "-relay", relay, "-interval", "0s"}, "-interval"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
