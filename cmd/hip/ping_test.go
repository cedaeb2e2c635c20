package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/hipnet"
	"hipnet.dev/relay"
)

func newNode(t *testing.T, cfg hipnet.Config) *hipnet.Node {
	t.Helper()
	id, err := hipnet.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identity, cfg.ListenAddr = id, "127.0.0.1:0"
	n, err := hipnet.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// TestPingThroughRelay: `hip ping -relay` reaches a node known only by its
// HIT, reports the base exchange and the echoes, and `-json` parses.
func TestPingThroughRelay(t *testing.T) {
	k, err := hostid.Generate(hostid.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Identity: k, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rarg := fmt.Sprintf("%v@%v", r.HIT(), r.Addr())
	target := newNode(t, hipnet.Config{Relays: []string{rarg}})
	for end := time.Now().Add(5 * time.Second); target.Stats().RelaysRegistered == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("target did not register")
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"ping", "-relay", rarg, "-c", "3", "-i", "50ms", "-listen", "127.0.0.1:0", target.HIT().String()}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	t.Logf("hip ping output:\n%s", out.String())
	for _, want := range []string{"PING " + target.HIT().String(), "association:", "seq=3", "3 sent, 3 received, 0% loss", "rtt min/avg/max/mdev"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q", want)
		}
	}
	out.Reset()
	if code := run([]string{"ping", "-json", "-relay", rarg, "-c", "2", "-i", "10ms", "-listen", "127.0.0.1:0", target.HIT().String()}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res pingResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Received != 2 || res.Peer != target.HIT() || res.BEX <= 0 {
		t.Fatalf("json %+v %v\n%s", res, err, out.String())
	}
}

// TestPingUnknown: no locator and no relay: a clear error, exit 1.
func TestPingUnknown(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"ping", "-c", "1", "-w", "1s", "-listen", "127.0.0.1:0", "2001:20::1"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "unknown peer") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// TestPingDeadPeer: a peer that never answers: the base exchange gives up
// after -w, and the statistics follow as ping(8) prints them when its
// packets meet errors (one request sent, with an error, all lost), on
// stdout and in -json; exit 1.
func TestPingDeadPeer(t *testing.T) {
	// A UDP port with nothing behind it but a socket that never reads:
	// held open, so that no other socket of a parallel test gets the port.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	dead := pc.LocalAddr().String()
	peer := "2001:20::1"
	args := []string{"ping", "-c", "3", "-w", "300ms", "-listen", "127.0.0.1:0", "-peer", peer + "@" + dead}

	var out, errb bytes.Buffer
	if code := run(append(args, peer), &out, &errb); code != 1 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	t.Logf("hip ping output:\n%s", out.String())
	for _, want := range []string{"PING " + peer, "no association: ", "--- " + peer + " ping statistics ---",
		"1 sent, 0 received, +1 errors, 100% loss, time "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "rtt min/avg/max") || !strings.Contains(errb.String(), "hip: ping "+peer) {
		t.Errorf("stdout %q, stderr %q", out.String(), errb.String())
	}

	out.Reset()
	errb.Reset()
	if code := run(append(args, "-json", peer), &out, &errb); code != 1 {
		t.Fatalf("-json: exit %d: %s%s", code, out.String(), errb.String())
	}
	var res pingResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("-json: %v\n%s", err, out.String())
	}
	if res.Sent != 1 || res.Received != 0 || res.Errors != 1 || res.Loss != 100 || res.Error == "" || res.Time < 300 || res.BEX != 0 {
		t.Fatalf("-json: %+v", res)
	}
}

// TestPingPeerGoes: the peer closes after the first reply: each later
// request fails within -W (a new base exchange included), and the
// statistics count them lost.
func TestPingPeerGoes(t *testing.T) {
	b := newNode(t, hipnet.Config{})
	var out bytes.Buffer
	w := &onLine{w: &out, line: "seq=1 ", do: func() { b.Close() }}
	start := time.Now()
	code := run([]string{"ping", "-c", "2", "-i", "20ms", "-W", "200ms", "-listen", "127.0.0.1:0",
		"-peer", b.HIT().String() + "@" + b.LocalAddr().String(), b.HIT().String()}, w, io.Discard)
	t.Logf("hip ping output, after %v:\n%s", time.Since(start), out.String())
	if code != 0 { // some replies came
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"no reply: seq=2", "no reply: seq=4", "4 sent, 1 received, 75% loss", "rtt min/avg/max/mdev"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v: -W does not bound the requests", d)
	}
}

// onLine writes to w, and calls do once the first time a write contains
// line.
type onLine struct {
	w    io.Writer
	line string
	do   func()
	done bool
}

func (o *onLine) Write(p []byte) (int, error) {
	if !o.done && strings.Contains(string(p), o.line) {
		o.done = true
		o.do()
	}
	return o.w.Write(p)
}
