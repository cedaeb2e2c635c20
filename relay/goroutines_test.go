package relay

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestGoroutines: the goroutines doc.go lists for a relay, counted: the
// stack's three (its forwarder starts none), and with TURN the credentials
// service besides the TURN server's own; Close stops them all. Goroutines
// are told apart by the function they run.
func TestGoroutines(t *testing.T) {
	stack := map[string]int{"overlay.(*Stack).readLoop": 1, "overlay.(*Stack).sendLoop": 1, "overlay.(*control).run": 1, "overlay.(*Stack).serveEcho": 1}
	withTURN := map[string]int{"relay.(*Server).serveCreds": 1, "pion/turn": -1} // -1: some
	for k, v := range stack {
		withTURN[k] = v
	}
	cases := []struct {
		name string
		turn bool
		want map[string]int
	}{{"relay", false, stack}, {"relay with TURN", true, withTURN}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := settledGoroutines()
			r := testRelay(t, func(c *Config) {
				if tc.turn {
					c.TURN = &TURNConfig{ListenAddr: "127.0.0.1:0", RelayIP: netip.MustParseAddr("127.0.0.1")}
				}
			})
			var got map[string]int
			for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				if got = countGoroutines(); matches(got, before, tc.want) {
					break
				}
			}
			if !matches(got, before, tc.want) {
				t.Fatalf("goroutines %v (before %v), doc.go says %v", got, before, tc.want)
			}
			r.Close()
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				if got = countGoroutines(); matches(got, before, nil) {
					return
				}
			}
			t.Fatalf("goroutines left after Close: %v (before %v)", got, before)
		})
	}
}

var goroutineFuncs = []string{"overlay.(*Stack).readLoop", "overlay.(*Stack).sendLoop", "overlay.(*control).run",
	"overlay.(*Stack).serveEcho", "relay.(*Server).serveCreds", "pion/turn"}

// settledGoroutines counts the goroutines once those of earlier tests are
// gone: a Close returns when its goroutines have signalled that they are
// done, a moment before they have returned, and a count taken in that
// moment would make the next test's own goroutines look one short.
func settledGoroutines() map[string]int {
	m := countGoroutines()
	for end := time.Now().Add(2 * time.Second); len(m) > 0 && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		m = countGoroutines()
	}
	return m
}

func countGoroutines() map[string]int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	m := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, f := range goroutineFuncs {
			if strings.Contains(g, f) {
				m[f]++
				break
			}
		}
	}
	return m
}

// matches reports whether got - before is want (a -1 in want: at least
// one).
func matches(got, before, want map[string]int) bool {
	for _, f := range goroutineFuncs {
		d, w := got[f]-before[f], want[f]
		if w == -1 && d < 1 || w != -1 && d != w {
			return false
		}
	}
	return true
}
