package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"hipnet.dev/hipnet"
)

// testTimeout bounds each wait of these tests.
const testTimeout = 20 * time.Second

// instance is one chat run by run in a goroutine, with a pipe for its
// standard input and its output collected line by line.
type instance struct {
	t      *testing.T
	name   string
	hit    hipnet.HIT
	stdin  io.WriteCloser
	lines  chan string // standard output after the "HIT" line
	stderr *syncBuffer
	done   chan error // run's result
}

// newIdentity creates the identity file dir/name.key and returns its HIT.
func newIdentity(t *testing.T, dir, name string) (string, hipnet.HIT) {
	t.Helper()
	path := filepath.Join(dir, name+".key")
	id, err := hipnet.LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, id.HIT()
}

// start runs a chat with args and waits for its "HIT" line, which must
// name hit. Its standard input is an os.Pipe, which SetReadDeadline can
// interrupt, so that even a cancelled run leaves no goroutine behind.
func start(t *testing.T, ctx context.Context, name string, hit hipnet.HIT, opt options, args ...string) *instance {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW := io.Pipe()
	in := &instance{t: t, name: name, hit: hit, stdin: inW, lines: make(chan string, 100), stderr: &syncBuffer{}, done: make(chan error, 1)}
	go func() {
		err := runWith(ctx, opt, args, inR, outW, in.stderr)
		inR.Close()
		outW.Close()
		in.done <- err
	}()
	go func() {
		defer close(in.lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			in.lines <- sc.Text()
		}
		io.Copy(io.Discard, outR)
	}()
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-in.done:
		case <-time.After(testTimeout):
			t.Errorf("%s: run did not return", name)
		}
	})
	if got, want := in.next(), "HIT "+hit.String(); got != want {
		t.Fatalf("%s: first line %q, want %q; stderr:\n%s", name, got, want, in.stderr)
	}
	return in
}

// send types a line.
func (in *instance) send(line string) {
	in.t.Helper()
	if _, err := fmt.Fprintln(in.stdin, line); err != nil {
		in.t.Fatalf("%s: stdin: %v", in.name, err)
	}
}

// next returns the next line of standard output.
func (in *instance) next() string {
	in.t.Helper()
	select {
	case l, ok := <-in.lines:
		if !ok {
			in.t.Fatalf("%s: output ended; stderr:\n%s", in.name, in.stderr)
		}
		return l
	case <-time.After(testTimeout):
		in.t.Fatalf("%s: no output within %v; stderr:\n%s", in.name, testTimeout, in.stderr)
	}
	return ""
}

// expect reads lines of standard output until want, failing if a line of
// refuse comes first or want does not come in time; it returns the lines
// before want.
func (in *instance) expect(want string, refuse ...string) []string {
	in.t.Helper()
	var before []string
	for {
		l := in.next()
		if l == want {
			return before
		}
		for _, r := range refuse {
			if strings.Contains(l, r) {
				in.t.Fatalf("%s: got %q while waiting for %q", in.name, l, want)
			}
		}
		before = append(before, l)
	}
}

// quit ends standard input and waits for run to return.
func (in *instance) quit() error {
	in.t.Helper()
	in.stdin.Close()
	return in.wait()
}

// wait waits for run to return.
func (in *instance) wait() error {
	in.t.Helper()
	select {
	case err := <-in.done:
		in.done <- err // for the cleanup
		return err
	case <-time.After(testTimeout):
		in.t.Fatalf("%s: run did not return; stderr:\n%s", in.name, in.stderr)
	}
	return nil
}

// waitStderr waits until standard error contains s.
func (in *instance) waitStderr(s string) {
	in.t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !strings.Contains(in.stderr.String(), s) {
		if time.Now().After(deadline) {
			in.t.Fatalf("%s: stderr lacks %q:\n%s", in.name, s, in.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkNoLeaks fails if, a few seconds after the chats returned, a
// goroutine of this program or of hipnet is still running.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked := leakedGoroutines()
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "hipnet.dev/") && !strings.Contains(g, ".leakedGoroutines(") {
			out = append(out, g) // this program's, the test helpers', or hipnet's
		}
	}
	return out
}
