package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hipnet.dev/handshake/wire"
)

func TestKeygenAndHit(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "sub", "node.key")
	var out, errb bytes.Buffer
	if code := run([]string{"keygen", "-o", key}, &out, &errb); code != 0 {
		t.Fatalf("keygen: %d %s", code, errb.String())
	}
	h, err := wire.ParseHIT(strings.TrimSpace(out.String()))
	if err != nil || h.OGA() != 2 {
		t.Fatalf("keygen printed %q: %v", out.String(), err)
	}
	fi, err := os.Stat(key)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", fi.Mode(), err)
	}
	out.Reset()
	if code := run([]string{"hit", key}, &out, &errb); code != 0 || strings.TrimSpace(out.String()) != h.String() {
		t.Fatalf("hit: %d %q", code, out.String())
	}
	// No overwrite without -f.
	if code := run([]string{"keygen", "-o", key}, &out, &errb); code != 1 {
		t.Fatalf("keygen over existing file: %d", code)
	}
	out.Reset()
	if code := run([]string{"keygen", "-o", key, "-f", "-type", "rsa2048"}, &out, &errb); code != 0 {
		t.Fatalf("keygen -f rsa: %d %s", code, errb.String())
	}
	if h2, _ := wire.ParseHIT(strings.TrimSpace(out.String())); h2.OGA() != 1 || h2 == h {
		t.Fatalf("rsa HIT %q", out.String())
	}
	if code := run([]string{"keygen", "-type", "dsa"}, &out, &errb); code != 2 {
		t.Fatalf("bad type: %d", code)
	}
	if code := run([]string{"bogus"}, &out, &errb); code != 2 {
		t.Fatalf("bad command: %d", code)
	}
	out.Reset()
	if code := run([]string{"keygen", "-h"}, &out, &errb); code != 0 {
		t.Fatalf("keygen -h: %d", code)
	}
	// Insecure permissions are refused.
	os.Chmod(key, 0o644)
	if code := run([]string{"hit", key}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "chmod") {
		t.Fatalf("hit on 0644 key: %d %s", code, errb.String())
	}
}
