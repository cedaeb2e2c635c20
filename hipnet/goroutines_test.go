package hipnet

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestNodeGoroutines: the goroutines doc.go lists for a node that watches
// its addresses (listening on the unspecified address): the stack's three
// and the address monitor's one; one that is bound to an address does not
// watch. Close stops them all.
func TestNodeGoroutines(t *testing.T) {
	funcs := []string{"overlay.(*Stack).readLoop", "overlay.(*control).run", "overlay.(*Stack).serveEcho", "netmon.(*Monitor).run", "overlay.(*Stack).sendLoop"}
	count := func() map[string]int {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		m := map[string]int{}
		for _, g := range strings.Split(string(buf), "\n\n") {
			for _, f := range funcs {
				if strings.Contains(g, f) {
					m[f]++
				}
			}
		}
		return m
	}
	// Counts are taken relative to before: other tests' nodes (the
	// package's Default node among them) may still run.
	var before map[string]int
	delta := func() map[string]int {
		m := count()
		for k, v := range before {
			if m[k] -= v; m[k] == 0 {
				delete(m, k)
			}
		}
		return m
	}
	settled := func(want map[string]int) map[string]int {
		var got map[string]int
		for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
			if got = delta(); equalCounts(got, want) {
				break
			}
		}
		return got
	}
	for _, tc := range []struct {
		listen string
		want   map[string]int
	}{
		{"0.0.0.0:0", map[string]int{funcs[0]: 1, funcs[1]: 1, funcs[2]: 1, funcs[3]: 1, funcs[4]: 1}},
		{"127.0.0.1:0", map[string]int{funcs[0]: 1, funcs[1]: 1, funcs[2]: 1, funcs[4]: 1}},
	} {
		// Another test's node may still be winding down, and a goroutine
		// of it that ends between before and the count looks like one of
		// ours missing (CI saw a control goroutine "missing" so). So the
		// baseline is taken once it is steady, and a mismatch is retried
		// with a new node, a few times, before it counts as a failure.
		var got map[string]int
		for attempt := 0; attempt < 3; attempt++ {
			before = steady(count)
			id, err := GenerateIdentity()
			if err != nil {
				t.Fatal(err)
			}
			n, err := NewNode(Config{Identity: id, ListenAddr: tc.listen})
			if err != nil {
				t.Fatal(err)
			}
			got = settled(tc.want)
			n.Close()
			if !equalCounts(got, tc.want) {
				t.Logf("%s: attempt %d: goroutines %v, doc.go says %v", tc.listen, attempt, got, tc.want)
				continue
			}
			if left := settled(map[string]int{}); len(left) != 0 {
				t.Fatalf("%s: left after Close: %v", tc.listen, left)
			}
			break
		}
		if !equalCounts(got, tc.want) {
			t.Fatalf("%s: goroutines %v, doc.go says %v", tc.listen, got, tc.want)
		}
	}
}

// steady returns count's result once two readings 50 ms apart agree (at
// most a second of trying): the goroutines of other tests' nodes have
// settled.
func steady(count func() map[string]int) map[string]int {
	m := count()
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		n := count()
		if equalCounts(m, n) {
			return n
		}
		m = n
	}
	return m
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
