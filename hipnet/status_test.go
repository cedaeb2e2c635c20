package hipnet

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/internal/fill"
	"hipnet.dev/overlay"
	"hipnet.dev/relay"
)

// TestStatusTypesMatchStack: hipnet's Status, PeerInfo and Stats have the
// stack's fields, with the same names and order, and the methods of the
// stack's types (Drops.Total, Registration.Duration). A field the stack
// adds fails this test until hipnet has it too (and convert.go copies it).
// The JSON tags are hipnet's own: the JSON of StatusHandler is hipnet's
// stable format (TestStatusJSON), whatever the stack's types say.
func TestStatusTypesMatchStack(t *testing.T) {
	sameShape(t, "Status", reflect.TypeFor[overlay.Status](), reflect.TypeFor[Status]())
	sameShape(t, "PeerInfo", reflect.TypeFor[overlay.PeerInfo](), reflect.TypeFor[PeerInfo]())
	sameShape(t, "Stats", reflect.TypeFor[overlay.Stats](), reflect.TypeFor[Stats]())
	sameShape(t, "Relay", reflect.TypeFor[overlay.RelayAddr](), reflect.TypeFor[Relay]())
}

func sameShape(t *testing.T, path string, theirs, ours reflect.Type) {
	t.Helper()
	if theirs == ours {
		return
	}
	if theirs.Kind() != ours.Kind() {
		t.Errorf("%s: the stack's is a %v, hipnet's a %v", path, theirs, ours)
		return
	}
	if theirs.PkgPath() == reflect.TypeFor[overlay.Status]().PkgPath() {
		for i := range theirs.NumMethod() {
			if m := theirs.Method(i); !hasMethod(ours, m.Name) {
				t.Errorf("%s: hipnet's %v lacks the stack's method %s", path, ours, m.Name)
			}
		}
	}
	switch theirs.Kind() {
	case reflect.Struct:
		names := func(s reflect.Type) (n []string) {
			for i := range s.NumField() {
				n = append(n, s.Field(i).Name)
			}
			return n
		}
		if tn, on := names(theirs), names(ours); !reflect.DeepEqual(tn, on) {
			t.Errorf("%s: fields differ:\n  stack:  %v\n  hipnet: %v", path, tn, on)
			return
		}
		for i := range theirs.NumField() {
			tf, of := theirs.Field(i), ours.Field(i)
			sameShape(t, path+"."+tf.Name, tf.Type, of.Type)
		}
	case reflect.Slice, reflect.Pointer:
		sameShape(t, path+"[]", theirs.Elem(), ours.Elem())
	case reflect.Map:
		sameShape(t, path+"[key]", theirs.Key(), ours.Key())
		sameShape(t, path+"[]", theirs.Elem(), ours.Elem())
	default:
		t.Errorf("%s: the stack's is a %v, hipnet's a %v", path, theirs, ours)
	}
}

func hasMethod(t reflect.Type, name string) bool {
	_, ok := t.MethodByName(name)
	return ok
}

// TestStatusConversionCopiesEveryField: statusFrom, peersFrom and
// statsFrom copy every field to its namesake: a stack status whose every
// field holds a different value converts to the hipnet status filled with
// the same values (fill visits both in the same order, their fields being
// alike: TestStatusTypesMatchStack).
func TestStatusConversionCopiesEveryField(t *testing.T) {
	var st overlay.Status
	fill.All(&st)
	var want Status
	fill.All(&want)
	if got := statusFrom(st); !reflect.DeepEqual(got, want) {
		t.Fatalf("converted status differs:\n got:  %+v\n want: %+v", got, want)
	}
	if len(want.Registrations[1].Failed[1].Types) != 2 || want.Stats.Drops.ControlReplay == 0 {
		t.Fatalf("fill left fields empty: %+v", want)
	}
	if d := statsFrom(st.Stats).Drops; d.Total() != st.Stats.Drops.Total() {
		t.Fatalf("Drops.Total %d, the stack's %d", d.Total(), st.Stats.Drops.Total())
	}
	// nil and empty stay apart: "peers": null, and no "relays" at all.
	if got := statusFrom(overlay.Status{}); !reflect.DeepEqual(got, Status{}) {
		t.Fatalf("empty status: %+v", got)
	}
	empty, _ := json.Marshal(Status{})
	if s := string(empty); !strings.Contains(s, `"peers":null`) || strings.Contains(s, `"relays"`) || strings.Contains(s, `"registrations":[`) {
		t.Fatalf("empty status: %s", empty)
	}
}

// statusKeys are the keys of Status's JSON, as paths ("[]" for an array's
// elements): the stable format StatusHandler serves (see Status). A key
// may be added here, never removed or renamed.
var statusKeys = []string{
	"hit", "local_addr",
	"relays[].hit", "relays[].addr", "relays[].registered", "relays[].reflexive",
	"registrations[].peer", "registrations[].granted", "registrations[].lifetime_s", "registrations[].expires",
	"registrations[].failed[].failure_type", "registrations[].failed[].reason", "registrations[].failed[].types",
	"peers[].hit", "peers[].state", "peers[].path", "peers[].locator",
	"peers[].hit_suite", "peers[].dh_group", "peers[].hip_cipher", "peers[].esp_suite", "peers[].in_spi", "peers[].out_spi",
	"peers[].bytes_in", "peers[].bytes_out", "peers[].packets_in", "peers[].packets_out", "peers[].since", "peers[].initiator",
	"peers[].locators[].addr", "peers[].locators[].state", "peers[].locators[].origin", "peers[].locators[].current",
	"peers[].locators[].preferred", "peers[].locators[].rtt_ms", "peers[].locators[].last_received",
	"peers[].last_handshake", "peers[].last_seen",
	"stats.packets_in", "stats.packets_out", "stats.bytes_in", "stats.bytes_out", "stats.control_in", "stats.control_out",
	"stats.esp_in", "stats.esp_out", "stats.delivered", "stats.stun_answered", "stats.stun_matched", "stats.ice_checks",
	"stats.keepalives_in", "stats.keepalives_out",
	"stats.drops.short", "stats.drops.stun", "stats.drops.malformed", "stats.drops.unknown_spi", "stats.drops.replay",
	"stats.drops.auth_failure", "stats.drops.not_for_us", "stats.drops.unauthorized", "stats.drops.control_rejected",
	"stats.drops.control_replay", "stats.drops.rate_limited", "stats.drops.control_backlog", "stats.drops.not_udp",
	"stats.drops.no_listener", "stats.drops.inbox_full", "stats.drops.queue_full", "stats.drops.queue_discarded",
	"stats.drops.send_errors",
	"stats.bex.started", "stats.bex.completed", "stats.bex.failed_timeout", "stats.bex.failed_refused",
	"stats.bex.failed_other", "stats.bex.puzzle_difficulty",
	"stats.relay.control_forwarded", "stats.relay.esp_forwarded", "stats.relay.rendezvoused", "stats.relay.forwards",
	"stats.relay.unregistered", "stats.relay.forged", "stats.relay.rate_limited", "stats.relay.table_full",
	"stats.io.batch", "stats.io.gso", "stats.io.gro", "stats.io.gso_errors", "stats.io.sent_inline", "stats.io.sent_queued", "stats.io.batches",
	"stats.paths.switches", "stats.paths.lost_in_switch", "stats.paths.probes_sent", "stats.paths.probes_answered",
	"stats.paths.probes_refused", "stats.paths.echo_answered", "stats.paths.announcements", "stats.paths.resent",
	"stats.paths.idle_closed",
	"stats.associations", // an object: association state → count
	"stats.relays_registered", "stats.registrations",
}

// TestStatusJSON: a Status whose every field is set encodes with exactly
// the keys of statusKeys, all snake_case; registration types by name,
// failure reasons in words, durations with their unit in the key; and
// decodes back to the same Status.
func TestStatusJSON(t *testing.T) {
	var st Status
	fill.All(&st)
	st.Registrations[0].Granted = []uint8{wire.RegTypeRelayUDPHIP, wire.RegTypeRelayUDPESP}
	st.Registrations[0].Lifetime = 120 // 128 s
	st.Registrations[0].Failed[0] = RegistrationFailure{FailureType: wire.RegFailureRendezvousAndRelay, Types: []uint8{wire.RegTypeRendezvous}}
	st.Peers[0].Locators[0].RTT = 1500 * time.Microsecond
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	jsonKeys(tree, "", got)
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	for k := range got {
		for _, part := range strings.FieldsFunc(k, func(r rune) bool { return r == '.' || r == '[' || r == ']' }) {
			if !snake.MatchString(part) {
				t.Errorf("key %q is not snake_case", k)
			}
		}
		if !slices.Contains(statusKeys, k) {
			t.Errorf("key %q is not in statusKeys (add it: the JSON is documented as stable)", k)
		}
	}
	for _, k := range statusKeys {
		if !got[k] {
			t.Errorf("key %q is gone from the JSON (the JSON is documented as stable)", k)
		}
	}
	for _, want := range []string{
		`"granted":["RELAY_UDP_HIP","RELAY_UDP_ESP"]`, `"lifetime_s":128`,
		`{"failure_type":9,"reason":"simultaneous rendezvous and control relay prohibited","types":["RENDEZVOUS"]}`,
		`"rtt_ms":1.5`, `"types":["regtype`, `"expires":"2001-09-09T`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	var back Status
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, st) {
		t.Fatalf("JSON round trip differs:\n got:  %+v\n want: %+v", back, st)
	}

	// Zero times and a zero reflexive address are left out; a zero
	// locator is "".
	b, _ = json.Marshal(Status{Relays: []RelayStatus{{}}, Peers: []PeerInfo{{Locators: []LocatorInfo{{}}}}})
	for _, absent := range []string{"reflexive", "last_handshake", "last_seen", "last_received", "invalid"} {
		if strings.Contains(string(b), absent) {
			t.Errorf("zero status has %q: %s", absent, b)
		}
	}
	if !strings.Contains(string(b), `"locator":""`) {
		t.Errorf("zero locator: %s", b)
	}
}

// jsonKeys adds the paths of the values under v, a decoded JSON value,
// to keys: those of numbers, strings, booleans, arrays of them, and of
// stats.associations.
func jsonKeys(v any, path string, keys map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if path == "stats.associations" {
			keys[path] = true
			return
		}
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			jsonKeys(e, p, keys)
		}
	case []any:
		if len(x) == 0 {
			keys[path] = true
		}
		for _, e := range x {
			if _, ok := e.(map[string]any); !ok {
				keys[path] = true
				continue
			}
			jsonKeys(e, path+"[]", keys)
		}
	default:
		keys[path] = true
	}
}

// TestStatusFromNode: a real node registered with a relay and associated
// with a peer reports its relay, its associations and its counters in
// Status, Peers and Stats; its StatusHandler's JSON (what `hip status`
// reads) decodes back into the same Status, and so does the relay's,
// converted from the stack's type.
func TestStatusFromNode(t *testing.T) {
	rkey, err := hostid.Generate(hostid.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(relay.Config{Identity: rkey, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rel := Relay{HIT: r.HIT(), Addr: r.Addr()}
	a := newTestNode(t, Config{Relays: []string{rel.String()}})
	b := newTestNode(t, Config{})
	b.AddPeer(a.HIT(), a.LocalAddr())
	if !waitUntil(10*time.Second, func() bool { return a.Stats().RelaysRegistered == 1 }) {
		t.Fatalf("no registration with the relay: %+v", a.Status().Relays)
	}
	if _, err := b.Ping(ctxT(t, 10*time.Second), a.HIT(), 1, 100, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// a counts its echo reply once sent, which may be after b has it; and
	// a, the Responder, leaves R2-SENT when the control goroutine has seen
	// b's first ESP (a poke from the data path), which may be later still.
	viewOf := func(st Status, h HIT) (p PeerInfo) {
		for _, p := range st.Peers {
			if p.HIT == h {
				return p
			}
		}
		return p
	}
	var st Status
	waitUntil(5*time.Second, func() bool {
		st = a.Status()
		v := viewOf(st, b.HIT())
		return v.PacketsOut > 0 && v.State == "ESTABLISHED" && st.Stats.Associations["ESTABLISHED"] == 2
	})
	if st.HIT != a.HIT() || st.LocalAddr != a.LocalAddr() {
		t.Errorf("status names %v at %v, want %v at %v", st.HIT, st.LocalAddr, a.HIT(), a.LocalAddr())
	}
	if len(st.Relays) != 1 {
		t.Fatalf("relays %+v", st.Relays)
	}
	if rs := st.Relays[0]; rs.HIT != r.HIT() || rs.Addr != r.Addr() || !rs.Registered || rs.Reflexive != a.LocalAddr() {
		t.Errorf("relay status %+v, want %v at %v, registered, reflexive %v", rs, r.HIT(), r.Addr(), a.LocalAddr())
	}
	if st.Stats.RelaysRegistered != 1 || st.Stats.Associations["ESTABLISHED"] != 2 || st.Stats.BEX.Completed < 2 ||
		st.Stats.PacketsIn == 0 || st.Stats.ESPIn == 0 || st.Stats.ControlOut == 0 {
		t.Errorf("stats %+v", st.Stats)
	}
	fromB := viewOf(st, b.HIT())
	if fromB.State != "ESTABLISHED" || fromB.Path != "direct" || fromB.Locator != b.LocalAddr() || fromB.Initiator ||
		fromB.HITSuite == "" || fromB.DHGroup == "" || fromB.HIPCipher == "" || fromB.ESPSuite == "" ||
		fromB.InSPI == 0 || fromB.OutSPI == 0 || fromB.PacketsIn != 1 || fromB.BytesIn != 100 || fromB.PacketsOut != 1 || fromB.BytesOut != 100 ||
		fromB.Since.IsZero() || time.Since(fromB.Since) > time.Minute {
		t.Errorf("a's view of b: %+v", fromB)
	}
	if ps := b.Peers(); len(ps) != 1 || ps[0].HIT != a.HIT() || !ps[0].Initiator || ps[0].InSPI != fromB.OutSPI || ps[0].OutSPI != fromB.InSPI {
		t.Errorf("b's view of a: %+v", ps)
	}

	// Registrations, on the relay: a's.
	rst := statusFrom(r.Status())
	if len(rst.Registrations) != 1 {
		t.Fatalf("relay registrations %+v", rst.Registrations)
	}
	if g := rst.Registrations[0]; g.Peer != a.HIT() || len(g.Granted) == 0 || g.Duration() <= 0 || !g.Expires.After(time.Now()) {
		t.Errorf("registration %+v", g)
	}

	// The JSON: decodable back without loss, registration types by name.
	for _, src := range []struct {
		name string
		st   Status
	}{{"node", statusFrom(a.stack.Status())}, {"relay", rst}} {
		want, err := json.Marshal(src.st)
		if err != nil {
			t.Fatalf("%s: %v", src.name, err)
		}
		var back Status
		if err := json.Unmarshal(want, &back); err != nil {
			t.Errorf("%s: %v", src.name, err)
		}
		if again, _ := json.Marshal(back); !bytes.Equal(again, want) {
			t.Errorf("%s: JSON round trip differs:\n first:  %s\n again:  %s", src.name, want, again)
		}
	}
	if b, _ := json.Marshal(rst); !strings.Contains(string(b), `"granted":["RELAY_UDP_HIP"`) {
		t.Errorf("relay JSON: %s", b)
	}
	rec := httptest.NewRecorder()
	StatusHandler(a).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	var served Status
	if err := json.Unmarshal(rec.Body.Bytes(), &served); err != nil || served.HIT != a.HIT() || len(served.Relays) != 1 || len(served.Peers) != 2 {
		t.Errorf("served %v %+v", err, served)
	}
}

// TestRelayType: ParseRelay returns a Relay that prints back as it was
// written, and the opportunistic form has the zero HIT.
func TestRelayType(t *testing.T) {
	h := wire.MustParseHIT("2001:2a::1")
	r, err := ParseRelay(" 2001:2a::1@[::ffff:192.0.2.1]:10500 ")
	if err != nil {
		t.Fatal(err)
	}
	if want := (Relay{HIT: h, Addr: netip.MustParseAddrPort("192.0.2.1:10500")}); r != want || r.Opportunistic() {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if s := r.String(); s != "2001:2a::1@192.0.2.1:10500" {
		t.Fatalf("String %q", s)
	}
	o, err := ParseRelay("[::1]:7")
	if err != nil || !o.Opportunistic() || o.Addr != netip.MustParseAddrPort("[::1]:7") || o.String() != "[::1]:7" {
		t.Fatalf("opportunistic %+v (%v), %v", o, o, err)
	}
	for _, x := range []Relay{r, o} {
		if y, err := ParseRelay(x.String()); err != nil || y != x {
			t.Errorf("ParseRelay(%q) = %+v, %v", x, y, err)
		}
	}
	if ra := r.relayAddr(); ra.HIT != r.HIT || ra.Addr != r.Addr {
		t.Fatalf("relayAddr %+v", ra)
	}
	if r, err := ParseRelay("localhost:10500"); err != nil || !r.Addr.Addr().IsLoopback() || r.Addr.Port() != 10500 {
		t.Fatalf("a host name: %+v %v", r, err)
	}
}
