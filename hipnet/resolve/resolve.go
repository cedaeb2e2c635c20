package resolve

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/handshake/wire"
)

// Record is what a resolver knows about a name: the HIT it claims, and the
// Host Identity, locators and rendezvous servers if the source gives them.
// It is a claim, not a proof: the base exchange with the HIT proves that
// the peer holds the key (doc.go).
type Record struct {
	// Name is the name resolved, in canonical form: lower case, without
	// the trailing dot.
	Name string
	// HIT is the peer's Host Identity Tag. From DNS it is the HIT of
	// HostID, computed here (RFC 8005 §4.1), and equal to the HIT field of
	// the record.
	HIT wire.HIT
	// HostID is the peer's Host Identity from the HIP RR, whose HIT is
	// HIT; nil if the source gives none (the hosts file).
	HostID *hostid.PublicKey
	// Locators are UDP addresses of HIP to send the I1 to: from the hosts
	// file as written (host names resolved at Resolve time), from DNS the
	// name's AAAA and then A records with DNS.Port. Empty if the source
	// gives none.
	Locators []netip.AddrPort
	// RVS are the domain names of the peer's rendezvous servers, in the
	// order of preference of the HIP RR (RFC 8005 §5.6), fully qualified
	// with the trailing dot as DNS gives them; nil from the hosts file.
	RVS []string
	// RVSLocators are the UDP addresses of those rendezvous servers
	// (RFC 8004): an I1 sent there reaches the peer, which answers
	// directly. From DNS, each RVS name's AAAA and A records with
	// DNS.RVSPort, in the RVS order; empty when the names do not resolve
	// or the source gives none. A dial tries Locators first.
	RVSLocators []netip.AddrPort
	// TTL is how long the record may be kept: from DNS the smallest TTL
	// of the RRs it was built from (RFC 8005 §4.2: past it, the record
	// MUST be deleted and the name resolved again); zero from the hosts
	// file, whose records last until the file is reloaded. This package
	// caches nothing.
	TTL time.Duration
}

// Resolver maps a name to a Record. Implementations must be safe for
// concurrent use, and return a Record whose slices the caller may keep
// and modify. Every error is an *Error; a name the resolver does not know
// gives one that wraps ErrNotFound.
type Resolver interface {
	Resolve(ctx context.Context, name string) (Record, error)
}

// Errors wrapped by an *Error; test them with errors.Is.
var (
	// ErrNotFound: the resolver does not know the name (not in the hosts
	// file; NXDOMAIN, or no HIP RR at the name). A Chain moves on to its
	// next resolver.
	ErrNotFound = errors.New("resolve: name not found")
	// ErrBadName: not a name this package resolves (empty, too long, a
	// character other than letters, digits, '-' and '_', an empty label,
	// or an IP address).
	ErrBadName = errors.New("resolve: invalid name")
	// ErrHITMismatch: a HIP RR whose Host Identity does not hash to its
	// HIT (RFC 8005 §4.1, RFC 7401 §3). The record is refused: it is
	// forged, corrupt or badly generated.
	ErrHITMismatch = errors.New("resolve: HIP record's host identity does not match its HIT")
	// ErrBadRecord: a HIP RR that cannot be decoded: a HIT that is not 16
	// octets, a public key that is not valid base64 or not in the format
	// of its PK algorithm (RFC 8005 §5). An RR with a PK algorithm this
	// stack does not implement wraps hostid.ErrUnsupportedAlgorithm
	// instead.
	ErrBadRecord = errors.New("resolve: malformed HIP record")
	// ErrServerFailure: the DNS server answered with an error (SERVFAIL,
	// REFUSED, …) or with a message that does not answer the query.
	ErrServerFailure = errors.New("resolve: DNS server failure")
	// ErrNotAuthenticated: DNS.RequireAD is set and the answer does not
	// have the AD bit.
	ErrNotAuthenticated = errors.New("resolve: DNS answer not authenticated (no AD bit)")
)

// Error is a failed resolution. It is a net.Error: Timeout reports a DNS
// timeout or an expired context deadline, as package net does.
type Error struct {
	Name   string // the name as given to Resolve
	Source string // what was asked, e.g. "hosts file /etc/hip/hosts", "DNS server 192.0.2.53:53"
	Err    error  // the cause; wraps one of the Err* values or a network or context error
}

func (e *Error) Error() string {
	s := "resolve " + e.Name
	if e.Source != "" {
		s += ": " + e.Source
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the resolution failed because time ran out:
// the DNS query timed out or the context's deadline passed.
func (e *Error) Timeout() bool {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}

// Temporary reports Timeout(), as net.Error's deprecated method asks.
func (e *Error) Temporary() bool { return e.Timeout() }

// Chain asks its resolvers in order and returns the first answer. A
// resolver's ErrNotFound moves on to the next; any other error stops the
// chain and is returned, so that a refused DNS record (ErrHITMismatch), a
// timeout or a cancelled context is never hidden by a later source's
// answer, and the name means the same thing whichever sources answer
// today. When every resolver says ErrNotFound (or the chain is empty) the
// error wraps ErrNotFound and names the sources asked.
type Chain []Resolver

// Resolve implements Resolver.
func (c Chain) Resolve(ctx context.Context, name string) (Record, error) {
	var asked []string
	for _, r := range c {
		if err := ctx.Err(); err != nil {
			return Record{}, &Error{Name: name, Err: err}
		}
		rec, err := r.Resolve(ctx, name)
		if err == nil {
			return rec, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Record{}, err
		}
		var re *Error
		if errors.As(err, &re) && re.Source != "" {
			asked = append(asked, re.Source)
		}
	}
	src := "no resolvers"
	if len(c) > 0 {
		src = fmt.Sprintf("%d resolvers", len(c))
	}
	if len(asked) > 0 {
		src = strings.Join(asked, ", ")
	}
	return Record{}, &Error{Name: name, Source: src, Err: ErrNotFound}
}

// canonicalName checks a name and returns its canonical form: ASCII lower
// case, without the trailing dot. A name is at most 253 octets of labels
// of 1 to 63 letters, digits, '-' and '_', joined by dots, and is not an
// IP address; internationalised names must be given in their ASCII
// (punycode) form.
func canonicalName(s string) (string, error) {
	n := strings.TrimSuffix(s, ".")
	if n == "" || len(n) > 253 {
		return "", fmt.Errorf("%w: %q: length %d (1 to 253)", ErrBadName, s, len(n))
	}
	b := []byte(n)
	label := 0
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '.':
			if label == 0 {
				return "", fmt.Errorf("%w: %q: empty label", ErrBadName, s)
			}
			label = 0
			continue
		default:
			return "", fmt.Errorf("%w: %q: character %q (letters, digits, '-', '_' and '.')", ErrBadName, s, rune(c))
		}
		label++
		if label > 63 {
			return "", fmt.Errorf("%w: %q: label longer than 63", ErrBadName, s)
		}
	}
	if label == 0 {
		return "", fmt.Errorf("%w: %q: empty label", ErrBadName, s)
	}
	n = string(b)
	if _, err := netip.ParseAddr(n); err == nil {
		return "", fmt.Errorf("%w: %q is an IP address", ErrBadName, s)
	}
	return n, nil
}
