package resolve

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"hipnet.dev/handshake/wire"
)

var _ net.Error = (*Error)(nil)

func TestCanonicalName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"device42", "device42"},
		{"Device42.", "device42"},
		{"DEVICE42.Example.COM", "device42.example.com"},
		{"_hip._udp.example.com.", "_hip._udp.example.com"},
		{"a-b.c", "a-b.c"},
		{strings.Repeat("a", 63), strings.Repeat("a", 63)},
		{"1.2.3", "1.2.3"}, // not an address: three parts
	} {
		got, err := canonicalName(c.in)
		if err != nil || got != c.want {
			t.Errorf("canonicalName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{
		"", ".", "..", "a..b", ".a", "a..", "a b", "a:b", "a/b", "é.example",
		"192.0.2.1", "192.0.2.1.",
		"2001:2a::1",
		strings.Repeat("a", 64),
		strings.Repeat("a.", 127) + "ab", // 255 octets
	} {
		if got, err := canonicalName(in); !errors.Is(err, ErrBadName) {
			t.Errorf("canonicalName(%q) = %q, %v; want ErrBadName", in, got, err)
		}
	}
}

// stub is a Resolver that answers from a map and counts its calls.
type stub struct {
	records map[string]Record
	err     error // returned for every name not in records, if set
	calls   int
}

func (s *stub) Resolve(ctx context.Context, name string) (Record, error) {
	s.calls++
	if r, ok := s.records[name]; ok {
		return r, nil
	}
	if s.err != nil {
		return Record{}, &Error{Name: name, Source: "stub", Err: s.err}
	}
	return Record{}, &Error{Name: name, Source: "stub", Err: ErrNotFound}
}

func TestChain(t *testing.T) {
	hitA := wire.MustParseHIT("2001:2a::a")
	hitB := wire.MustParseHIT("2001:2a::b")
	first := &stub{records: map[string]Record{"a": {Name: "a", HIT: hitA}}}
	second := &stub{records: map[string]Record{"a": {Name: "a", HIT: hitB}, "b": {Name: "b", HIT: hitB}}}
	c := Chain{first, second}
	ctx := context.Background()

	if r, err := c.Resolve(ctx, "a"); err != nil || r.HIT != hitA {
		t.Errorf("a: %v, %v; want the first resolver's %v", r.HIT, err, hitA)
	}
	if r, err := c.Resolve(ctx, "b"); err != nil || r.HIT != hitB {
		t.Errorf("b: %v, %v; want the second resolver's %v (fall through on ErrNotFound)", r.HIT, err, hitB)
	}
	_, err := c.Resolve(ctx, "c")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("c: %v; want ErrNotFound", err)
	}
	var re *Error
	if !errors.As(err, &re) || re.Source != "stub, stub" {
		t.Errorf("c: %#v; want an *Error naming both sources", err)
	}

	// Any other error stops the chain: the second resolver is not asked.
	bad := &stub{err: ErrHITMismatch}
	second.calls = 0
	if _, err := (Chain{bad, second}).Resolve(ctx, "b"); !errors.Is(err, ErrHITMismatch) {
		t.Errorf("b after a refusing resolver: %v; want ErrHITMismatch", err)
	}
	if second.calls != 0 {
		t.Errorf("the resolver after an error was asked %d times", second.calls)
	}

	if _, err := (Chain{}).Resolve(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Errorf("empty chain: %v; want ErrNotFound", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Resolve(cctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v; want context.Canceled", err)
	}
}

func TestErrorTimeout(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{ErrNotFound, false},
		{context.Canceled, false},
		{context.DeadlineExceeded, true},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, true},
	} {
		e := &Error{Name: "x", Err: c.err}
		if e.Timeout() != c.want || e.Temporary() != c.want {
			t.Errorf("%v: Timeout %v, want %v", c.err, e.Timeout(), c.want)
		}
	}
	e := &Error{Name: "x", Source: "hosts", Err: ErrNotFound}
	if got, want := e.Error(), "resolve x: hosts: resolve: name not found"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
