package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/hipnet"
	"hipnet.dev/relay"
)

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

// TestPrintStatus: what `hip status` prints of a status: "-" for the
// addresses and times a node does not have, never "invalid AddrPort";
// the hosts registered with a relay, with their types and expiry; LAST
// HANDSHAKE and LAST SEEN as `wg show` prints them; inactive associations
// only with -a, marked; the relay association marked, with a word on why
// its RX and TX stay at zero.
func TestPrintStatus(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	relayHIT, host, peer, gone, fresh := wire.MustParseHIT("2001:20::a"), wire.MustParseHIT("2001:20::b"),
		wire.MustParseHIT("2001:20::c"), wire.MustParseHIT("2001:20::d"), wire.MustParseHIT("2001:20::e")
	st := hipnet.Status{
		HIT:       wire.MustParseHIT("2001:20::1"),
		LocalAddr: netip.MustParseAddrPort("192.0.2.1:10500"),
		Relays:    []hipnet.RelayStatus{{HIT: relayHIT, Addr: netip.MustParseAddrPort("192.0.2.9:10500")}},
		Registrations: []hipnet.Registration{{
			Peer: host, Granted: []uint8{wire.RegTypeRelayUDPHIP, wire.RegTypeRelayUDPESP}, Lifetime: 120, Expires: now.Add(100 * time.Second),
			Failed: []hipnet.RegistrationFailure{{FailureType: wire.RegFailureRendezvousAndRelay, Types: []uint8{wire.RegTypeRendezvous}}},
		}},
		Peers: []hipnet.PeerInfo{
			{HIT: relayHIT, State: "ESTABLISHED", Path: "direct", Locator: netip.MustParseAddrPort("192.0.2.9:10500"),
				Since: now.Add(-time.Hour), LastHandshake: now.Add(-time.Hour), LastSeen: now.Add(-3 * time.Second)},
			{HIT: peer, State: "ESTABLISHED", Path: "direct", Locator: netip.MustParseAddrPort("198.51.100.7:10500"),
				HITSuite: "ECDSA/SHA-384", DHGroup: "P-256", ESPSuite: "AES-128-GCM with 16-octet ICV",
				BytesIn: 1536, BytesOut: 100, PacketsIn: 3, PacketsOut: 1,
				Since: now.Add(-90 * time.Second), LastHandshake: now.Add(-12 * time.Second), LastSeen: now.Add(-time.Second),
				Locators: []hipnet.LocatorInfo{{Addr: netip.MustParseAddrPort("198.51.100.7:10500"), State: "active", Origin: "config",
					Current: true, Preferred: true, RTT: 1500 * time.Microsecond}}},
			{HIT: gone, State: "CLOSED", Since: now.Add(-time.Minute)},
			{HIT: fresh, State: "I1-SENT", Since: now.Add(-time.Second)}, // no locator, handshake or packet yet
		},
	}
	var out bytes.Buffer
	printStatus(&out, st, now, false)
	text := out.String()
	t.Logf("hip status:\n%s", text)
	for _, want := range []string{
		"listen           192.0.2.1:10500",
		"relay            2001:20::a@192.0.2.9:10500  not registered  reflexive -",
		"registered here  1 host\n",
		"2001:20::b       RELAY_UDP_HIP,RELAY_UDP_ESP  2m8s      in 1m40s  RENDEZVOUS (simultaneous rendezvous and control relay prohibited)",
		"LAST HANDSHAKE", "LAST SEEN",
		"2001:20::a (relay)", "1h0m0s ago", "3s ago",
		"1.5 KiB", "100 B", "12s ago", "1s ago",
		"* active, config, preferred, rtt 1.5ms",
		"one with a relay carries HIP\n control only",
		"(1 inactive: 1 CLOSED, 0 UNASSOCIATED, not listed; -a lists them)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	if strings.Contains(text, "invalid") || strings.Contains(text, "2001:20::d") {
		t.Errorf("status shows an invalid address or the CLOSED association")
	}
	// The I1-SENT association: no locator, suites, handshake or packet.
	if line := lineWith(text, "2001:20::e"); len(strings.Fields(line)) != 12 || strings.Count(line, " - ") != 4 || !strings.HasSuffix(line, " -") {
		t.Errorf("new association's line %q", line)
	}

	out.Reset()
	printStatus(&out, st, now, true)
	if line := lineWith(out.String(), "2001:20::d"); !strings.Contains(line, "CLOSED (inactive)") {
		t.Errorf("-a: CLOSED association's line %q\n%s", line, out.String())
	}
	if strings.Contains(out.String(), "not listed") {
		t.Errorf("-a still hides some:\n%s", out.String())
	}
}

// lineWith returns the first line of text that contains s.
func lineWith(text, s string) string {
	for l := range strings.Lines(text) {
		if strings.Contains(l, s) {
			return strings.TrimRight(l, "\n")
		}
	}
	return ""
}

// TestStatusWithRelay: `hip status` of a node registered with a relay and
// associated with a peer through it: the relay's line, the relay
// association marked, the relayed one with its data counted, and -json
// with snake_case keys.
func TestStatusWithRelay(t *testing.T) {
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
	a := newNode(t, hipnet.Config{Relays: []string{rarg}})
	b := newNode(t, hipnet.Config{Relays: []string{rarg}})
	for end := time.Now().Add(10 * time.Second); a.Stats().RelaysRegistered == 0 || b.Stats().RelaysRegistered == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no registration")
		}
	}
	if _, err := b.Ping(t.Context(), a.HIT(), 1, 100, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hipnet.StatusHandler(a))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"status", "-url", srv.URL + "/status"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	t.Logf("hip status:\n%s", text)
	if line := lineWith(text, "relay  "); !strings.Contains(line, rarg) || !strings.Contains(line, " registered") || strings.Contains(line, "reflexive -") {
		t.Errorf("relay line %q", line)
	}
	if line := lineWith(text, r.HIT().String()+" (relay)"); !strings.Contains(line, "ESTABLISHED") || !strings.Contains(line, "0 B") {
		t.Errorf("relay association's line %q", line)
	}
	if line := lineWith(text, b.HIT().String()); !strings.Contains(line, "100 B") || !strings.Contains(line, " ago") {
		t.Errorf("peer's line %q", line)
	}
	out.Reset()
	if code := run([]string{"status", "-json", "-url", srv.URL + "/status"}, &out, &errb); code != 0 {
		t.Fatal(errb.String())
	}
	for _, want := range []string{`"local_addr"`, `"relays_registered": 1`, `"bytes_in": 100`, `"last_handshake"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-json lacks %s:\n%s", want, out.String())
		}
	}
}
