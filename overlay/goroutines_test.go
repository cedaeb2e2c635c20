package overlay

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestGoroutines: the goroutines doc.go lists, counted. A plain stack
// starts four (read loop, sender, control goroutine, echo service); each relay of
// Config.Relays adds its relay loop; a Forwarder (a relay server's, package
// relay, whose own goroutines its tests count) starts none; Close stops them all. Goroutines are told apart by
// the function they run, so that others in the process (tests, the
// runtime) do not count.
func TestGoroutines(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		want map[string]int
	}{
		{"plain node", nil, map[string]int{"readLoop": 1, "sendLoop": 1, "control).run": 1, "serveEcho": 1}},
		{"with a Forwarder", func(c *Config) { c.Forwarder = &endedForwarder{} }, map[string]int{"readLoop": 1, "sendLoop": 1, "control).run": 1, "serveEcho": 1}},
		{"node with two relays", func(c *Config) {
			c.Relays = []RelayAddr{{Addr: netip.MustParseAddrPort("127.0.0.1:9")}, {Addr: netip.MustParseAddrPort("127.0.0.1:10")}}
		}, map[string]int{"readLoop": 1, "sendLoop": 1, "control).run": 1, "serveEcho": 1, "relayLoop": 2}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The goroutines of the stacks earlier tests closed may still
			// be returning (Close waits for their done channels, which
			// they close on the way out): let them go first.
			before := stackGoroutines(func(m map[string]int) bool { return len(m) == 0 })
			cfg := Config{Identity: testKey(t, i), ListenAddr: "127.0.0.1:0", Handshake: fastHandshake()}
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := stackGoroutines(func(m map[string]int) bool { return sameCounts(minus(m, before), tc.want) })
			s.Close()
			if d := minus(got, before); !sameCounts(d, tc.want) {
				t.Fatalf("goroutines started %v, doc.go says %v", d, tc.want)
			}
			if after := stackGoroutines(func(m map[string]int) bool { return sameCounts(m, before) }); !sameCounts(after, before) {
				t.Fatalf("goroutines left after Close: %v (before: %v)", minus(after, before), before)
			}
		})
	}
}

// stackFuncs are the functions a Stack's goroutines run (doc.go).
var stackFuncs = []string{"readLoop", "sendLoop", "control).run", "serveEcho", "relayLoop", "(*control).solve"}

// stackGoroutines counts the goroutines running each of stackFuncs, once
// done reports true or after a second (goroutines start and end
// asynchronously); nil done takes the first count.
func stackGoroutines(done func(map[string]int) bool) map[string]int {
	var m map[string]int
	for end := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		m = map[string]int{}
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, f := range stackFuncs {
				if strings.Contains(g, "hipnet.dev/overlay.") && strings.Contains(g, f+"(") {
					m[f]++
					break
				}
			}
		}
		if done == nil || done(m) || time.Now().After(end) {
			return m
		}
	}
}

func minus(a, b map[string]int) map[string]int {
	d := map[string]int{}
	for k, v := range a {
		if v -= b[k]; v != 0 {
			d[k] = v
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d[k] = -v
		}
	}
	return d
}

func sameCounts(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}
