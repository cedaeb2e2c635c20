package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
	"hipnet.dev/hipnet"
	"hipnet.dev/internal/cliflags"
	"hipnet.dev/internal/clitest"
	"hipnet.dev/internal/fill"
	"hipnet.dev/overlay"
	"hipnet.dev/relay"
)

// TestRunPrintsHITAndStops: the relay prints its HIT once listening and
// returns cleanly when its context ends (SIGINT/SIGTERM in main).
func TestRunPrintsHITAndStops(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-identity", filepath.Join(dir, "relay.key")}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	hitText, ok := strings.CutPrefix(strings.TrimSpace(line), "HIT ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	if _, err := wire.ParseHIT(hitText); err != nil {
		t.Fatalf("printed HIT %q: %v", hitText, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "relay.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not stop")
	}
}

func TestReadAllow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "allow")
	h := "2001:20::1"
	os.WriteFile(p, []byte("# hosts\n"+h+"  # a comment\n\n"), 0o600)
	got, err := readAllow(p)
	if err != nil || len(got) != 1 {
		t.Fatalf("%v %v", got, err)
	}
	os.WriteFile(p, []byte("not-a-hit\n"), 0o600)
	if _, err := readAllow(p); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("bad line: %v", err)
	}
}

// TestHelp: `hip-relay -h`, run as a program, prints its usage on standard
// error, as the flag package does, and exits 0; a refused command line is
// explained there too, and exits 2.
func TestHelp(t *testing.T) {
	clitest.Help(t, "hip-relay", "extra")
}

// TestRelayStatusCopiesEveryField: relayStatus converts the stack's status
// with every field set to the hipnet.Status with the same values.
func TestRelayStatusCopiesEveryField(t *testing.T) {
	var st overlay.Status
	fill.All(&st)
	var want hipnet.Status
	fill.All(&want)
	var got hipnet.Status
	copyByName(reflect.ValueOf(&got).Elem(), reflect.ValueOf(st))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("converted status differs:\n got:  %+v\n want: %+v", got, want)
	}
	if len(got.Registrations[1].Failed[1].Types) != 2 || got.Peers[1].Locators[1].RTT == 0 || got.Stats.Associations == nil {
		t.Fatalf("fill left fields empty: %+v", got)
	}
	got = hipnet.Status{}
	copyByName(reflect.ValueOf(&got).Elem(), reflect.ValueOf(overlay.Status{}))
	if !reflect.DeepEqual(got, hipnet.Status{}) {
		t.Fatalf("empty status: %+v", got)
	}
}

// TestRelayStatusServed: the relay's status, as hipnet.StatusHandler
// serves it, names the relay and its registrations.
func TestRelayStatusServed(t *testing.T) {
	k, err := hostid.Generate(hostid.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := relay.New(relay.Config{Identity: k, ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	id, err := hipnet.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	node, err := hipnet.NewNode(hipnet.Config{Identity: id, ListenAddr: "127.0.0.1:0", Relays: []string{srv.HIT().String() + "@" + srv.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	for end := time.Now().Add(10 * time.Second); node.Stats().RelaysRegistered == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no registration")
		}
	}
	rec := httptest.NewRecorder()
	hipnet.StatusHandler(relayStatus{srv}).ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	var st hipnet.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.HIT != srv.HIT() || len(st.Registrations) != 1 || st.Registrations[0].Peer != node.HIT() || st.Stats.Registrations != 1 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(rec.Body.String(), `"RELAY_UDP_HIP"`) {
		t.Fatalf("served JSON: %s", rec.Body.String())
	}
}

// TestBadFlags: a flag value that cannot work is refused at once, naming
// the flag, with exit status 2 (a usage error), before anything starts:
// an address that does not parse, and an identity file in a directory
// that does not exist, which would otherwise be created with a new
// identity (a new HIT the relay's hosts do not know).
func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"-listen", "nonsense"}, "-listen"},
		{[]string{"-identity", filepath.Join(dir, "no-such-dir", "relay.key")}, "-identity"},
		{[]string{"-turn", "127.0.0.1:0", "-turn-ip", "banana"}, "-turn-ip"},
		{[]string{"-turn", "what"}, "-turn"},
	} {
		args := append([]string{"-listen", "127.0.0.1:0", "-identity", filepath.Join(dir, "relay.key")}, c.args...)
		var stderr strings.Builder
		err := run(context.Background(), args, io.Discard, &stderr)
		var ue cliflags.UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%v: %v, want a usage error naming %s", c.args, err, c.flag)
		}
		if !strings.Contains(stderr.String(), c.flag) {
			t.Errorf("%v: stderr %q does not name %s", c.args, stderr.String(), c.flag)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "no-such-dir")); err == nil {
		t.Error("the identity's missing directory was created")
	}
}
