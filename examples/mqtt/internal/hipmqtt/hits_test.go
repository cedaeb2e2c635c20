package hipmqtt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hipnet.dev/hipnet"
)

func TestReadHITs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "allow")
	os.WriteFile(p, []byte("# devices\n2001:20::1  # a comment\n\n 2001:20::2\n"), 0o600)
	got, err := ReadHITs(p)
	if err != nil || len(got) != 2 || !got[hipnet.HIT{0x20, 0x01, 0, 0x20, 15: 1}] {
		t.Fatalf("%v %v", got, err)
	}
	os.WriteFile(p, []byte("2001:20::1\nnot-a-hit\n"), 0o600)
	if _, err := ReadHITs(p); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("bad line: %v", err)
	}
}

func TestParseRelays(t *testing.T) {
	relays, hits, err := ParseRelays(" 2001:20::1@127.0.0.1:10500, 2001:20::2@[::1]:10500 ,")
	if err != nil || len(relays) != 2 || len(hits) != 2 || hits[1] != (hipnet.HIT{0x20, 0x01, 0, 0x20, 15: 2}) {
		t.Fatalf("%q %v %v", relays, hits, err)
	}
	for _, bad := range []string{"", "127.0.0.1:10500", "2001:20::1@", "2001:20::1@:10500", "nonsense@127.0.0.1:1"} {
		if _, _, err := ParseRelays(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTopics(t *testing.T) {
	h := hipnet.HIT{0x20, 0x01, 0, 0x20, 15: 1}
	if got := TelemetryTopic(h); got != "devices/2001:20::1/telemetry" {
		t.Fatal(got)
	}
}
