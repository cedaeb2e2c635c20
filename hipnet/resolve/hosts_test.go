package resolve

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hipnet.dev/handshake/wire"
)

const sampleHosts = `# hipnet hosts
broker    2001:2a::b  192.0.2.7:10500 [2001:db8::7]:10500   # two literal locators

Device42. 2001:2a::42	device42.lan:10500 gone.lan:10500 192.0.2.42:10600
	sensor 2001:2a::5e   
alias     2001:2a::b
scoped    2001:2a::5c [fe80::1%eth0]:10500
gone      2001:2a::60 gone.lan:10500
`

// lookupStub answers device42.lan with two addresses (one IPv4-mapped)
// and fails for anything else.
func lookupStub(ctx context.Context, host string) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if host == "device42.lan" {
		return []netip.Addr{netip.MustParseAddr("2001:db8::42"), netip.MustParseAddr("::ffff:198.51.100.42")}, nil
	}
	return nil, errors.New("no such host")
}

func parseSample(t *testing.T) *Hosts {
	t.Helper()
	h, err := ParseHosts(strings.NewReader(sampleHosts))
	if err != nil {
		t.Fatal(err)
	}
	h.lookup = lookupStub
	return h
}

func TestParseHosts(t *testing.T) {
	h := parseSample(t)
	if got, want := h.Names(), []string{"alias", "broker", "device42", "gone", "scoped", "sensor"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %q, want %q", got, want)
	}
	ap := netip.MustParseAddrPort
	for _, c := range []struct {
		name string
		want Record
	}{
		{"broker", Record{Name: "broker", HIT: wire.MustParseHIT("2001:2a::b"),
			Locators: []netip.AddrPort{ap("192.0.2.7:10500"), ap("[2001:db8::7]:10500")}}},
		// Case and the trailing dot do not matter; host names are looked
		// up (a failing one is skipped), IPv4-mapped results unmapped.
		{"DEVICE42.", Record{Name: "device42", HIT: wire.MustParseHIT("2001:2a::42"),
			Locators: []netip.AddrPort{ap("[2001:db8::42]:10500"), ap("198.51.100.42:10500"), ap("192.0.2.42:10600")}}},
		{"sensor", Record{Name: "sensor", HIT: wire.MustParseHIT("2001:2a::5e")}},
		{"alias", Record{Name: "alias", HIT: wire.MustParseHIT("2001:2a::b")}},
		{"scoped", Record{Name: "scoped", HIT: wire.MustParseHIT("2001:2a::5c"),
			Locators: []netip.AddrPort{ap("[fe80::1%eth0]:10500")}}},
	} {
		got, err := h.Resolve(context.Background(), c.name)
		if err != nil {
			t.Errorf("Resolve(%q): %v", c.name, err)
			continue
		}
		if got.Name != c.want.Name || got.HIT != c.want.HIT || !slices.Equal(got.Locators, c.want.Locators) ||
			got.HostID != nil || got.RVS != nil || got.TTL != 0 {
			t.Errorf("Resolve(%q) = %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestHostsResolveErrors(t *testing.T) {
	h := parseSample(t)
	ctx := context.Background()

	_, err := h.Resolve(ctx, "nobody")
	var re *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &re) || re.Source != "hosts" || re.Name != "nobody" {
		t.Errorf("unknown name: %v; want an *Error wrapping ErrNotFound", err)
	}
	if _, err := h.Resolve(ctx, "not a name"); !errors.Is(err, ErrBadName) {
		t.Errorf("bad name: %v; want ErrBadName", err)
	}
	// Every locator failed: an error, but not ErrNotFound (the name is
	// known; a chain must not move on).
	_, err = h.Resolve(ctx, "gone")
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "gone.lan:10500") {
		t.Errorf("gone: %v; want the lookup error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Resolve(cctx, "device42"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v; want context.Canceled", err)
	}
	// A record is the caller's to modify.
	r, _ := h.Resolve(ctx, "broker")
	r.Locators[0] = netip.AddrPort{}
	if r2, _ := h.Resolve(ctx, "broker"); !r2.Locators[0].IsValid() {
		t.Error("modifying a returned record changed the table")
	}
}

// TestHostsSystemLookup: a host name locator goes through
// net.DefaultResolver; localhost resolves without a network.
func TestHostsSystemLookup(t *testing.T) {
	h, err := ParseHosts(strings.NewReader("local 2001:2a::1 localhost:10500\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Resolve(context.Background(), "local")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Locators) == 0 {
		t.Fatal("no locator for localhost")
	}
	for _, ap := range r.Locators {
		if !ap.Addr().IsLoopback() || ap.Port() != 10500 {
			t.Errorf("localhost locator %v", ap)
		}
	}
}

func TestParseHostsErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		line int
		is   error  // if set, errors.Is must hold
		text string // if set, the message must contain it
	}{
		{"lonely\n", 1, nil, "want \"name HIT [locator ...]\""},
		{"# ok\n\nbroker 2001:db8::1\n", 3, wire.ErrBadHIT, "broker"},
		{"x notahit\n", 1, wire.ErrBadHIT, ""},
		{"x 2001:2a::1\ny 2001:2a::2\nX. 2001:2a::3\n", 3, nil, `duplicate name "x" (first on line 1)`},
		{"bad!name 2001:2a::1\n", 1, ErrBadName, ""},
		{"192.0.2.1 2001:2a::1\n", 1, ErrBadName, "IP address"},
		{"x 2001:2a::1 192.0.2.1\n", 1, nil, "missing port"},
		{"x 2001:2a::1 192.0.2.1:0\n", 1, nil, "want 1 to 65535"},
		{"x 2001:2a::1 192.0.2.1:65536\n", 1, nil, "want 1 to 65535"},
		{"x 2001:2a::1 192.0.2.1:http\n", 1, nil, "want 1 to 65535"},
		{"x 2001:2a::1 2001:db8::1:10500\n", 1, nil, "too many colons"},
		{"x 2001:2a::1 [2001:db8::zz]:10500\n", 1, nil, "bad IPv6 address"},
		{"x 2001:2a::1 bad!host:10500\n", 1, ErrBadName, ""},
		{"x 2001:2a::1\n" + strings.Repeat("y", 70000) + "\n", 2, nil, "too long"},
	} {
		_, err := ParseHosts(strings.NewReader(c.in))
		var he *HostsError
		if !errors.As(err, &he) {
			t.Errorf("%.40q: %v; want a *HostsError", c.in, err)
			continue
		}
		if he.Line != c.line || he.File != "" ||
			(c.is != nil && !errors.Is(err, c.is)) ||
			(c.text != "" && !strings.Contains(err.Error(), c.text)) ||
			!strings.HasPrefix(err.Error(), "hosts: line ") {
			t.Errorf("%.40q: line %d: %v\nwant line %d, Is %v, text %q", c.in, he.Line, err, c.line, c.is, c.text)
		}
	}
}

func TestHostsFileReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	write("a 2001:2a::a\n")
	f, err := LoadHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path() != path {
		t.Errorf("Path() = %q", f.Path())
	}
	if r, err := f.Resolve(ctx, "a"); err != nil || r.HIT != wire.MustParseHIT("2001:2a::a") {
		t.Fatalf("a: %v, %v", r, err)
	}
	_, err = f.Resolve(ctx, "b")
	var re *Error
	if !errors.As(err, &re) || !errors.Is(err, ErrNotFound) || re.Source != "hosts file "+path {
		t.Errorf("b before reload: %v; want ErrNotFound from %q", err, "hosts file "+path)
	}

	write("a 2001:2a::a\nb 2001:2a::b\n")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Resolve(ctx, "b"); err != nil {
		t.Errorf("b after reload: %v", err)
	}

	// A bad edit is reported with the file and line and changes nothing.
	write("a 2001:2a::a\nb 2001:2a::b\nc 2001:db8::c\n")
	err = f.Reload()
	var he *HostsError
	if !errors.As(err, &he) || he.File != path || he.Line != 3 || !strings.HasPrefix(err.Error(), path+":3: ") {
		t.Errorf("bad reload: %v; want %s:3", err, path)
	}
	if _, err := f.Resolve(ctx, "b"); err != nil {
		t.Errorf("b after a failed reload: %v", err)
	}
	if len(f.Hosts().Names()) != 2 {
		t.Errorf("after a failed reload: %q", f.Hosts().Names())
	}

	var zero HostsFile
	if _, err := zero.Resolve(ctx, "a"); !errors.Is(err, ErrNotFound) || zero.Hosts().Names() != nil {
		t.Errorf("zero HostsFile: %v; want an empty table", err)
	}

	if _, err := LoadHosts(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
