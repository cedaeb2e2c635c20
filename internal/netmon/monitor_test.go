package netmon

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

func TestOptions(t *testing.T) {
	o, err := Options{}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if o.Poll != DefaultPoll || o.Settle != DefaultSettle || o.Logger == nil {
		t.Fatalf("defaults: %+v", o)
	}
	for _, bad := range []Options{{Poll: -1}, {Settle: -time.Second}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted a negative duration", bad)
		}
	}
}

// New fails, and starts nothing, when the first read fails; the source is
// released.
func TestNewReadError(t *testing.T) {
	src := newFakeSource()
	src.setErr(errBoom)
	n := newFakeNotifier()
	o, _ := Options{}.normalize()
	if _, err := newMonitor(o, source{read: src.read, notify: n, close: src.close}); !errors.Is(err, errBoom) {
		t.Fatalf("newMonitor with a failing source: %v, want %v", err, errBoom)
	}
	if !n.isClosed() || src.closed != 1 {
		t.Fatalf("source not released: notifier closed %v, close called %d times", n.isClosed(), src.closed)
	}
	if k := monitorGoroutines(0); k != 0 {
		t.Fatalf("%d monitor goroutines after a failed New", k)
	}
}

// Addrs returns a new slice each time: changing it changes nothing.
func TestAddrsFresh(t *testing.T) {
	m := start(t, Options{Poll: time.Hour}, newFakeSource("10.250.0.1", "10.250.0.2"), nil)
	a := m.Addrs()
	a[0] = addrs("10.250.0.99")[0]
	if got := m.Addrs(); !sameSet(got, addrs("10.250.0.1", "10.250.0.2")) {
		t.Fatalf("Addrs after the caller changed its copy = %v", got)
	}
}

// Close ends the one goroutine (doc.go), also while it waits for a
// notification or a poll, returns at once, and may be called again.
func TestClose(t *testing.T) {
	cases := []struct {
		name  string
		newFn func(t *testing.T) (*Monitor, error)
	}{
		{"notifications", func(t *testing.T) (*Monitor, error) {
			o, _ := Options{Poll: time.Hour}.normalize()
			return newMonitor(o, source{read: newFakeSource().read, notify: newFakeNotifier()})
		}},
		{"polling", func(t *testing.T) (*Monitor, error) {
			o, _ := Options{Poll: time.Hour}.normalize()
			return newMonitor(o, source{read: newFakeSource().read})
		}},
		{"this host", func(t *testing.T) (*Monitor, error) { return New(Options{Logger: testLogger(t)}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			m, err := tc.newFn(t)
			if err != nil {
				t.Fatal(err)
			}
			if k := monitorGoroutines(1); k != 1 {
				t.Fatalf("%d monitor goroutines, doc.go says one", k)
			}
			time.Sleep(20 * time.Millisecond) // let it block in Read or the ticker
			began := time.Now()
			if err := m.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if d := time.Since(began); d > 500*time.Millisecond {
				t.Fatalf("Close took %v", d)
			}
			if err := m.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if k := monitorGoroutines(0); k != 0 {
				t.Fatalf("%d monitor goroutines after Close", k)
			}
			after := runtime.NumGoroutine()
			for end := time.Now().Add(time.Second); after > before && time.Now().Before(end); after = runtime.NumGoroutine() {
				time.Sleep(5 * time.Millisecond)
			}
			if after > before {
				t.Fatalf("%d goroutines before New, %d after Close", before, after)
			}
			// Changes is not closed, and Addrs still answers.
			select {
			case <-m.Changes():
				t.Fatal("Changes fired or was closed by Close")
			default:
			}
			_ = m.Addrs()
		})
	}
}
