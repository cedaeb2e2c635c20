package overlay

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestGoroutines: the goroutines doc.go lists, counted. A plain stack
// starts three (read loop, control goroutine, echo service); each relay of
// Config.Relays adds its relay loop; a relay (Config.Relay) starts no more
// than a plain stack; Close stops them all.
func TestGoroutines(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		want int
	}{
		{"plain node", nil, 3},
		{"relay", func(c *Config) { c.Relay = &RelayConfig{} }, 3},
		{"node with two relays", func(c *Config) {
			c.Relays = []RelayAddr{{Addr: netip.MustParseAddrPort("127.0.0.1:9")}, {Addr: netip.MustParseAddrPort("127.0.0.1:10")}}
		}, 5},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := settledGoroutines(-1)
			cfg := Config{Identity: testKey(t, i), ListenAddr: "127.0.0.1:0", Handshake: fastHandshake()}
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := settledGoroutines(before+tc.want) - before; got != tc.want {
				s.Close()
				t.Fatalf("%d goroutines started, doc.go says %d", got, tc.want)
			}
			s.Close()
			if got := settledGoroutines(before) - before; got != 0 {
				t.Fatalf("%d goroutines left after Close", got)
			}
		})
	}
}

// settledGoroutines returns runtime.NumGoroutine once it equals want (or
// after a second of trying: goroutines start and end asynchronously); want
// -1 waits for it to stop changing.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == want || (want < 0 && m == n) {
			return m
		}
		n = m
	}
	return n
}
