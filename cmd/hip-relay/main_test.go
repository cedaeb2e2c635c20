package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hipnet.dev/handshake/wire"
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
