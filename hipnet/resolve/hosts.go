package resolve

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"hipnet.dev/handshake/wire"
)

// Hosts is a parsed hosts file (the format is in doc.go): names mapped to
// HITs and locators. It is immutable and safe for concurrent use; its
// Resolve looks up the host names among the locators, nothing else.
type Hosts struct {
	source  string // for errors: "hosts" or "hosts file PATH"
	entries map[string]*hostsEntry
	// lookup resolves a locator's host name; nil means
	// net.DefaultResolver. Tests and the fuzz target replace it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

type hostsEntry struct {
	line int
	hit  wire.HIT
	locs []hostsLocator
}

// hostsLocator is one locator of a line: an address as written, or a host
// name and a port to look up at Resolve time.
type hostsLocator struct {
	addr netip.AddrPort // valid when host is empty
	host string
	port uint16
}

// HostsError is an error in a hosts file, with the line it is on.
type HostsError struct {
	File string // the file's path; empty for ParseHosts
	Line int    // 1 for the first line
	Err  error  // what is wrong; wraps wire.ErrBadHIT for a bad HIT, ErrBadName for a bad name
}

func (e *HostsError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("hosts: line %d: %v", e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

// Unwrap returns e.Err.
func (e *HostsError) Unwrap() error { return e.Err }

// ParseHosts reads a hosts file (doc.go gives the format). An error is a
// *HostsError naming the first bad line: a line with fewer than two fields,
// a bad name or HIT or locator, or a name already defined (names compare
// case-insensitively and without a trailing dot).
func ParseHosts(r io.Reader) (*Hosts, error) { return parseHosts(r, "") }

func parseHosts(r io.Reader, file string) (*Hosts, error) {
	h := &Hosts{source: "hosts", entries: map[string]*hostsEntry{}}
	if file != "" {
		h.source = "hosts file " + file
	}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		name, e, err := parseHostsLine(sc.Text())
		if err != nil {
			return nil, &HostsError{File: file, Line: n, Err: err}
		}
		if e == nil {
			continue
		}
		if first, dup := h.entries[name]; dup {
			return nil, &HostsError{File: file, Line: n, Err: fmt.Errorf("duplicate name %q (first on line %d)", name, first.line)}
		}
		e.line = n
		h.entries[name] = e
	}
	if err := sc.Err(); err != nil {
		return nil, &HostsError{File: file, Line: n + 1, Err: err}
	}
	return h, nil
}

// parseHostsLine parses one line; a nil entry is a blank or comment line.
func parseHostsLine(line string) (string, *hostsEntry, error) {
	line, _, _ = strings.Cut(line, "#")
	f := strings.FieldsFunc(line, isSpace)
	if len(f) == 0 {
		return "", nil, nil
	}
	if len(f) < 2 {
		return "", nil, fmt.Errorf("want \"name HIT [locator ...]\", got %q", strings.TrimSpace(line))
	}
	name, err := canonicalName(f[0])
	if err != nil {
		return "", nil, err
	}
	hit, err := wire.ParseHIT(f[1])
	if err != nil {
		return "", nil, fmt.Errorf("name %q: %w", name, err)
	}
	e := &hostsEntry{hit: hit}
	for _, s := range f[2:] {
		l, err := parseLocator(s)
		if err != nil {
			return "", nil, fmt.Errorf("name %q: locator %q: %w", name, s, err)
		}
		e.locs = append(e.locs, l)
	}
	return name, e, nil
}

// isSpace reports the ASCII white space that separates fields; other
// Unicode spaces are not separators (and are refused in every field).
func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\r' || r == '\v' || r == '\f'
}

// parseLocator parses "ip:port", "[ipv6]:port" or "host:port".
func parseLocator(s string) (hostsLocator, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return hostsLocator{}, err
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return hostsLocator{}, fmt.Errorf("port %q: want 1 to 65535", ps)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return hostsLocator{addr: netip.AddrPortFrom(a, uint16(port))}, nil
	}
	if strings.Contains(host, ":") {
		return hostsLocator{}, fmt.Errorf("bad IPv6 address %q", host)
	}
	h, err := canonicalName(host)
	if err != nil {
		return hostsLocator{}, err
	}
	return hostsLocator{host: h, port: uint16(port)}, nil
}

// Names returns the names of h in canonical form, sorted.
func (h *Hosts) Names() []string {
	if h == nil {
		return nil
	}
	out := make([]string, 0, len(h.entries))
	for n := range h.entries {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Resolve returns the HIT of name and its locators. Host names among the
// locators are looked up now, with ctx, through net.DefaultResolver: a
// lookup that fails drops that locator, and the Resolve fails only if
// every locator of the line failed (or ctx is done). The record has no
// HostID, RVS or TTL. A nil *Hosts is an empty table.
func (h *Hosts) Resolve(ctx context.Context, name string) (Record, error) {
	if h == nil {
		h = &Hosts{source: "hosts"}
	}
	n, err := canonicalName(name)
	if err != nil {
		return Record{}, &Error{Name: name, Source: h.source, Err: err}
	}
	e := h.entries[n]
	if e == nil {
		return Record{}, &Error{Name: name, Source: h.source, Err: ErrNotFound}
	}
	locs, err := h.locators(ctx, e)
	if err != nil {
		return Record{}, &Error{Name: name, Source: h.source, Err: err}
	}
	return Record{Name: n, HIT: e.hit, Locators: locs}, nil
}

func (h *Hosts) locators(ctx context.Context, e *hostsEntry) ([]netip.AddrPort, error) {
	var (
		out      []netip.AddrPort
		firstErr error
	)
	add := func(ap netip.AddrPort) {
		if !slices.Contains(out, ap) {
			out = append(out, ap)
		}
	}
	for _, l := range e.locs {
		if l.host == "" {
			add(l.addr)
			continue
		}
		addrs, err := h.lookupHost(ctx, l.host)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("locator %s: %w", net.JoinHostPort(l.host, strconv.Itoa(int(l.port))), err)
			}
			continue
		}
		for _, a := range addrs {
			add(netip.AddrPortFrom(a.Unmap(), l.port))
		}
	}
	if len(out) == 0 && firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func (h *Hosts) lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if h.lookup != nil {
		return h.lookup(ctx, host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// HostsFile is a hosts file read from disk, which Reload reads again. It
// is safe for concurrent use: a Resolve sees the file as of the last
// successful load.
type HostsFile struct {
	path  string
	hosts atomic.Pointer[Hosts]
}

// LoadHosts reads the hosts file at path. Errors are the os.Open error or a
// *HostsError naming path and the line.
func LoadHosts(path string) (*HostsFile, error) {
	f := &HostsFile{path: path}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path returns the file's path.
func (f *HostsFile) Path() string { return f.path }

// Reload reads the file again. On error the previous contents stay in use
// and the error is returned, so that a bad edit does not empty the table;
// fix the file and call Reload again (for instance on SIGHUP). The file is
// not watched: edits take effect only through Reload.
func (f *HostsFile) Reload() error {
	fd, err := os.Open(f.path)
	if err != nil {
		return err
	}
	defer fd.Close()
	h, err := parseHosts(fd, f.path)
	if err != nil {
		return err
	}
	f.hosts.Store(h)
	return nil
}

// Hosts returns the table as of the last successful load (nil, an empty
// table, for a HostsFile not made by LoadHosts).
func (f *HostsFile) Hosts() *Hosts { return f.hosts.Load() }

// Resolve implements Resolver with the table of the last successful load.
func (f *HostsFile) Resolve(ctx context.Context, name string) (Record, error) {
	return f.hosts.Load().Resolve(ctx, name)
}
