package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer that the tour's goroutines (a handler, an
// accept loop) may write to while the test's goroutine does.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// hit matches a HIT as the tour prints it (ORCHIDv2: 2001:2x::/28).
const hit = `2001:2[0-9a-f]:[0-9a-f:]+`

// TestTour runs the whole tour and checks that every step printed what it
// should, that the server saw the client's HIT wherever it was asked, and
// that nothing was left behind: no goroutine, no file.
func TestTour(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // run's temporary directory goes here
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out lockedBuffer
	start := time.Now()
	if err := run(ctx, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	took := time.Since(start)
	got := out.String()
	t.Logf("took %v; output:\n%s", took, got)

	m := regexp.MustCompile(`(?m)^client (` + hit + `) at 127\.0\.0\.1:\d+$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatal("no client HIT printed")
	}
	clientHIT := regexp.QuoteMeta(m[1])
	m = regexp.MustCompile(`(?m)^server (` + hit + `) at 127\.0\.0\.1:\d+$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatal("no server HIT printed")
	}
	serverHIT := regexp.QuoteMeta(m[1])

	for _, want := range []string{
		`== stream\nserver: stream from ` + clientHIT + `\nclient: echo "hello over ESP"\n`,
		`== datagram\nclient: datagram "ping" from \[` + serverHIT + `\]:5683\n`,
		`== http\nhttp server: GET / from ` + clientHIT + `\nhttp client: 200 OK "hello ` + clientHIT + `"\n`,
		`== grpc\ngrpc server: /grpc.health.v1.Health/Check from ` + clientHIT + `\ngrpc client: SERVING from ` + serverHIT + `\n`,
		`== names\nclient: device42:8883 is \[` + serverHIT + `\]:8883\n`,
		`== relay\ndevice (` + hit + `) registered with relay ` + hit + `\napp: read "hello from the device"\napp: ping \S+\n`,
		`app: ` + hit + ` (relayed|direct) 127\.0\.0\.1:\d+\n`,
		`== paths\n` + serverHIT + ` ESTABLISHED direct 127\.0\.0\.1:\d+\n  locator 127\.0\.0\.1:\d+ active, from config, current true\n`,
		`paths: \d+ switches, \d+ of \d+ probes answered, \d+ idle closed\n`,
		`== errors\nstranger: not authorized: true\nclient: unknown peer: true\nclient: timeout: true true\nclient: tried \[127\.0\.0\.1:\d+\]\n`,
		`== done\n$`,
	} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("output lacks %s", want)
		}
	}
	if took > 15*time.Second {
		t.Errorf("the tour took %v; it should take a few seconds", took)
	}

	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind in the temporary directory: %v", left)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestReadmeSnippets checks that every Go block of the README is copied
// from main.go: its lines, stripped of their indentation, appear in
// main.go in a row, so that every snippet compiles and runs as TestTour
// runs it.
func TestReadmeSnippets(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("`go test ./examples/tour`")) {
		t.Error("the README does not say that `go test ./examples/tour` runs its snippets")
	}
	code := "\n" + unindent(string(src)) + "\n"
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 6 {
		t.Fatalf("%d Go blocks in the README, want at least 6", len(blocks))
	}
	for _, b := range blocks {
		if !strings.Contains(code, "\n"+unindent(b[1])) {
			t.Errorf("README block not found in main.go:\n%s", b[1])
		}
	}
}

// unindent strips the leading white space of every line.
func unindent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, " \t")
	}
	return strings.Join(lines, "\n")
}
