package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
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

// TestStatus: `hip status` prints a node's HIT, relay and association
// table from its StatusHandler, and -json passes the status through.
func TestStatus(t *testing.T) {
	a := newNode(t, hipnet.Config{})
	b := newNode(t, hipnet.Config{})
	a.AddPeer(b.HIT(), b.LocalAddr())
	if _, err := a.Ping(t.Context(), b.HIT(), 1, 16, time.Second); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hipnet.StatusHandler(a))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"status", "-url", srv.URL + "/status"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	t.Logf("hip status output:\n%s", out.String())
	for _, want := range []string{a.HIT().String(), b.HIT().String(), "ESTABLISHED", "direct", "PEER", "LOCATOR"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("status lacks %q", want)
		}
	}
	out.Reset()
	if code := run([]string{"status", "-json", "-url", srv.URL + "/status"}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	var st hipnet.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.HIT != a.HIT() || len(st.Peers) != 1 {
		t.Fatalf("json: %v %+v", err, st)
	}
	// The metrics endpoint speaks the Prometheus text format.
	rec := httptest.NewRecorder()
	hipnet.StatusHandler(a).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"# TYPE hipnet_bex_completed_total counter", `hipnet_associations{hit="` + a.HIT().String() + `",state="ESTABLISHED"} 1`} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
}
