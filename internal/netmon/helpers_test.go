package netmon

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSource is an address source whose list a test sets.
type fakeSource struct {
	mu     sync.Mutex
	list   []ifAddr
	err    error // returned by read instead of the list while set
	reads  int
	closed int
}

func newFakeSource(ss ...string) *fakeSource {
	s := &fakeSource{}
	s.set(ss...)
	return s
}

// set makes read return these addresses, each on an interface that is up.
func (s *fakeSource) set(ss ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = nil
	for _, a := range ss {
		s.list = append(s.list, up(a))
	}
}

func (s *fakeSource) setList(list []ifAddr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = slices.Clone(list)
}

func (s *fakeSource) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *fakeSource) read() ([]ifAddr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.err != nil {
		return nil, s.err
	}
	return slices.Clone(s.list), nil
}

func (s *fakeSource) readCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads
}

// waitReads waits up to two seconds for the source to have been read more
// than n times in all.
func (s *fakeSource) waitReads(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); s.readCount() <= n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the source was read %d times, want more than %d", s.readCount(), n)
		}
	}
}

func (s *fakeSource) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed++
	return nil
}

// fakeNotifier delivers what a test sends on msgs: nil is a notification,
// an error is what Read returns. It honours read deadlines and Close as a
// pollable file does.
type fakeNotifier struct {
	msgs      chan error
	closed    chan struct{}
	closeOnce sync.Once
	deadline  time.Time // only the monitor's goroutine sets and reads it
}

func newFakeNotifier() *fakeNotifier {
	return &fakeNotifier{msgs: make(chan error, 1000), closed: make(chan struct{})}
}

func (f *fakeNotifier) Read(p []byte) (int, error) {
	var timeout <-chan time.Time
	if !f.deadline.IsZero() {
		t := time.NewTimer(time.Until(f.deadline))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-f.closed:
		return 0, os.ErrClosed
	case err := <-f.msgs:
		if err != nil {
			return 0, err
		}
		return copy(p, "x"), nil
	case <-timeout:
		return 0, os.ErrDeadlineExceeded
	}
}

func (f *fakeNotifier) SetReadDeadline(t time.Time) error {
	select {
	case <-f.closed:
		return os.ErrClosed
	default:
	}
	f.deadline = t
	return nil
}

func (f *fakeNotifier) Close() error {
	err := os.ErrClosed
	f.closeOnce.Do(func() { close(f.closed); err = nil })
	return err
}

func (f *fakeNotifier) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// notify sends a notification (err nil) or a Read error.
func (f *fakeNotifier) notify(err error) { f.msgs <- err }

// start runs a monitor over src and n (nil: polling) and closes it when
// the test ends, checking that Close leaves no goroutine behind.
func start(t *testing.T, opts Options, src *fakeSource, n *fakeNotifier) *Monitor {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	o, err := opts.normalize()
	if err != nil {
		t.Fatal(err)
	}
	s := source{read: src.read, close: src.close}
	if n != nil {
		s.notify = n
	}
	m, err := newMonitor(o, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if k := monitorGoroutines(0); k != 0 {
			t.Errorf("%d monitor goroutines left after Close", k)
		}
	})
	return m
}

// testLogger writes the monitor's log, debug level included, to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// monitorGoroutines counts the goroutines that run Monitor.run (doc.go:
// one per Monitor), once the count is want or after a second (a goroutine
// that has signalled the WaitGroup still takes a moment to end).
func monitorGoroutines(want int) int {
	for end := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		n := 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "hipnet.dev/internal/netmon.(*Monitor).run(") {
				n++
			}
		}
		if n == want || time.Now().After(end) {
			return n
		}
	}
}

// waitChange waits up to d for Changes; with d 0 it looks whether a
// signal is pending.
func waitChange(m *Monitor, d time.Duration) bool {
	select {
	case <-m.Changes():
		return true
	default:
	}
	if d <= 0 {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.Changes():
		return true
	case <-t.C:
		return false
	}
}

// expectChange fails t unless Changes fires within d and Addrs is then
// want. Intermediate sets are tolerated while d lasts: a change that
// takes several kernel events (a link coming up, then running) may be
// reported in steps.
func expectChange(t *testing.T, m *Monitor, d time.Duration, want []netip.Addr, what string) {
	t.Helper()
	end := time.Now().Add(d)
	fired := false
	for {
		if !waitChange(m, time.Until(end)) {
			break
		}
		fired = true
		if got := m.Addrs(); slices.Equal(got, want) {
			return
		}
	}
	if !fired {
		t.Fatalf("%s: Changes did not fire within %v (Addrs %v, want %v)", what, d, m.Addrs(), want)
	}
	t.Fatalf("%s: Addrs = %v after Changes, want %v", what, m.Addrs(), want)
}

// expectNoChange fails t if Changes fires within d, and checks that Addrs
// is still want.
func expectNoChange(t *testing.T, m *Monitor, d time.Duration, want []netip.Addr, what string) {
	t.Helper()
	if waitChange(m, d) {
		t.Fatalf("%s: Changes fired (Addrs %v, want no change from %v)", what, m.Addrs(), want)
	}
	if got := m.Addrs(); !slices.Equal(got, want) {
		t.Fatalf("%s: Addrs = %v, want %v", what, got, want)
	}
}

var errBoom = errors.New("boom")
