package resolve

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseHosts: ParseHosts never panics; an error is a *HostsError with
// a line number within the input; a table has one entry per line with
// fields, and every name in it is canonical and resolves, in any case and
// with a trailing dot, to the same record whose HIT is an ORCHIDv2.
func FuzzParseHosts(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHosts(bytes.NewReader(data))
		lines := bytes.Count(data, []byte("\n")) + 1
		if err != nil {
			var he *HostsError
			if !errors.As(err, &he) || he.Line < 1 || he.Line > lines+1 || he.File != "" {
				t.Fatalf("%v (%T)", err, err)
			}
			return
		}
		entries := 0
		for line := range strings.Lines(string(data)) {
			before, _, _ := strings.Cut(line, "#")
			if len(strings.Fields(before)) > 0 {
				entries++
			}
		}
		names := h.Names()
		if len(names) != entries {
			t.Fatalf("%d names for %d entries", len(names), entries)
		}
		h.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
		}
		ctx := context.Background()
		for _, n := range names {
			if c, err := canonicalName(n); err != nil || c != n {
				t.Fatalf("name %q is not canonical: %q, %v", n, c, err)
			}
			r, err := h.Resolve(ctx, n)
			if err != nil || r.Name != n || !r.HIT.IsORCHIDv2() {
				t.Fatalf("Resolve(%q) = %+v, %v", n, r, err)
			}
			for _, ap := range r.Locators {
				if !ap.IsValid() || ap.Port() == 0 {
					t.Fatalf("%q: locator %v", n, ap)
				}
			}
			r2, err := h.Resolve(ctx, strings.ToUpper(n)+".")
			if err != nil || r2.HIT != r.HIT || len(r2.Locators) != len(r.Locators) {
				t.Fatalf("Resolve(%q) = %+v, %v; want %+v", strings.ToUpper(n)+".", r2, err, r)
			}
		}
	})
}
