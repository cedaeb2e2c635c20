package hipnet

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/overlay"
	"hipnet.dev/relay"
)

// TestStatusTypesMatchStack: hipnet's Status, PeerInfo and Stats have the
// stack's fields, with the same names, order and JSON tags, and the
// methods of the stack's types (Drops.Total, Registration.Duration). A field the stack
// adds fails this test until hipnet has it too (and convert.go copies it);
// the JSON of StatusHandler stays the stack's.
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
			if tf.Tag.Get("json") != of.Tag.Get("json") {
				t.Errorf("%s.%s: JSON tag %q, hipnet's %q", path, tf.Name, tf.Tag.Get("json"), of.Tag.Get("json"))
			}
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
// field holds a different value converts to one with the same JSON.
func TestStatusConversionCopiesEveryField(t *testing.T) {
	var st overlay.Status
	n := 0
	fill(reflect.ValueOf(&st).Elem(), &n)
	want, _ := json.Marshal(st)
	got, _ := json.Marshal(statusFrom(st))
	if !bytes.Equal(got, want) {
		t.Fatalf("converted status differs:\n stack:  %s\n hipnet: %s", want, got)
	}
	if !strings.Contains(string(want), `"Failed":[{"FailureType"`) || !strings.Contains(string(want), `"ControlReplay":`) {
		t.Fatalf("fill left fields empty: %s", want)
	}
	if d := statsFrom(st.Stats).Drops; d.Total() != st.Stats.Drops.Total() {
		t.Fatalf("Drops.Total %d, the stack's %d", d.Total(), st.Stats.Drops.Total())
	}
	// nil and empty stay apart: "peers": null, and no "relays" at all.
	empty, _ := json.Marshal(statusFrom(overlay.Status{}))
	stack, _ := json.Marshal(overlay.Status{})
	if !bytes.Equal(empty, stack) {
		t.Fatalf("empty status: %s, the stack's %s", empty, stack)
	}
}

// fill sets every field under v to a value of its own: numbers count up,
// strings and booleans follow, slices get two elements.
func fill(v reflect.Value, n *int) {
	*n++
	switch x := v.Addr().Interface().(type) {
	case *netip.AddrPort:
		*x = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(*n)}), uint16(*n))
		return
	case *time.Time:
		*x = time.Unix(int64(1e9+*n), 0).UTC()
		return
	case *wire.HIT:
		*x = wire.HIT{0x20, 0x01, 0x00, 0x20, 15: byte(*n)}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("s" + itoa(*n))
	case reflect.Bool:
		v.SetBool(*n%2 == 0)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	default:
		panic("fill: " + v.Type().String())
	}
}

// TestStatusFromNode: a real node registered with a relay and associated
// with a peer reports its relay, its associations and its counters in
// Status, Peers and Stats; its StatusHandler's JSON is the stack's own
// status, byte for byte (what `hip status` has always read); and the
// relay's status, whose type is the stack's, decodes into a Status
// without loss.
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

	// The JSON: the stack's, byte for byte, and decodable back.
	for _, src := range []struct {
		name  string
		stack overlay.Status
	}{{"node", a.stack.Status()}, {"relay", r.Status()}} {
		want, _ := json.Marshal(src.stack)
		got, _ := json.Marshal(statusFrom(src.stack))
		if !bytes.Equal(got, want) {
			t.Errorf("%s: JSON differs:\n stack:  %s\n hipnet: %s", src.name, want, got)
		}
		var back Status
		if err := json.Unmarshal(want, &back); err != nil {
			t.Errorf("%s: %v", src.name, err)
		}
		if again, _ := json.Marshal(back); !bytes.Equal(again, want) {
			t.Errorf("%s: JSON round trip differs:\n stack:  %s\n hipnet: %s", src.name, want, again)
		}
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
