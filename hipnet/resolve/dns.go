package resolve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// DefaultTimeout bounds a DNS Resolve whose Timeout is zero: resolv.conf's
// default timeout.
const DefaultTimeout = 5 * time.Second

// DefaultLocatorPort is the port of the locators DNS builds from A and
// AAAA records when DNS.Port is zero: the UDP port of HIP (RFC 5770 §5.1).
const DefaultLocatorPort = 10500

// resolvConf is the file the system's name server is read from; tests
// replace it.
var resolvConf = "/etc/resolv.conf"

// ednsSize is the UDP payload size we advertise (EDNS0, RFC 6891): the
// 1232 octets of DNS Flag Day 2020, enough for a HIP RR with a 4096-bit RSA
// key. Larger answers come truncated and are asked again over TCP.
const ednsSize = 1232

// DNS resolves names with the HIP RR (type 55, RFC 8005) through one DNS
// server, a recursive resolver. The zero value asks the first name server
// of /etc/resolv.conf over UDP. A DNS is a plain configuration: set its
// fields before the first Resolve and do not change them after; it is then
// safe for concurrent use. It caches nothing.
//
// Names are queried as given, made fully qualified: "device42" is the
// single-label name "device42.", not device42 in the search domains of
// resolv.conf; write "device42.example.com".
type DNS struct {
	// Server is the DNS server, "host:port" or an IP address (port 53).
	// Empty: the first "nameserver" of /etc/resolv.conf, read at every
	// Resolve so that a changed resolv.conf is followed.
	Server string
	// Net is "udp" (the default) or "tcp". Over UDP, a query that gets no
	// answer is sent again after 1 s, 2 s, 4 s …, and a truncated answer
	// (TC bit) is asked again over TCP.
	Net string
	// Timeout bounds one Resolve, all its queries included; zero means
	// DefaultTimeout. The context's deadline applies too, the earlier
	// wins. Expiry gives an *Error whose Timeout() is true.
	Timeout time.Duration
	// Port is the port of the locators built from the name's A and AAAA
	// records; zero means DefaultLocatorPort.
	Port uint16
	// NoAddresses skips the A and AAAA queries, the rendezvous servers'
	// too: Records have no Locators and no RVSLocators, and the peer is
	// reached through locators the caller knows.
	NoAddresses bool
	// RVSPort is the port of the rendezvous servers' locators
	// (Record.RVSLocators) built from their names' A and AAAA records;
	// zero means DefaultLocatorPort, the HIP port (RFC 5770 §5.1), since
	// the HIP RR names a server but not its port (RFC 8005 §5).
	RVSPort uint16
	// RequireAD refuses a HIP answer that does not have the AD bit, that
	// is, that the server did not validate with DNSSEC (the query sets AD,
	// RFC 6840 §5.7). It is worth only as much as the path to the server:
	// use it with a validating resolver on this host or behind a secure
	// channel (RFC 8005 §8). An unauthenticated NXDOMAIN is still
	// ErrNotFound.
	RequireAD bool
}

// Resolve asks for the HIP RRs of name (following CNAMEs in the answer),
// takes the first whose Host Identity hashes to its HIT (RFC 8005 §4.1)
// and, unless NoAddresses, the name's AAAA and A records as locators on
// Port. Errors are *Error wrapping:
//
//   - ErrNotFound: NXDOMAIN, or the name has no HIP RR;
//   - ErrHITMismatch, ErrBadRecord, hostid.ErrUnsupportedAlgorithm: no HIP
//     RR at the name is usable (the first one's error is returned);
//   - ErrServerFailure: an answer with another error code, or one that
//     does not answer the question (over TCP);
//   - ErrNotAuthenticated: RequireAD and no AD bit;
//   - ErrBadName; a network error; context.Canceled, or a timeout
//     (Timeout() true) when Timeout or the context's deadline expires.
//
// A/AAAA failures are tolerated if one of the two queries succeeds, so a
// server that fumbles AAAA does not hide a usable record.
func (d *DNS) Resolve(ctx context.Context, name string) (Record, error) {
	n, err := canonicalName(name)
	if err != nil {
		return Record{}, &Error{Name: name, Source: "DNS", Err: err}
	}
	server, err := d.server()
	if err != nil {
		return Record{}, &Error{Name: name, Source: "DNS", Err: err}
	}
	src := "DNS server " + server
	fail := func(err error) (Record, error) {
		return Record{}, &Error{Name: name, Source: src, Err: err}
	}
	network := d.Net
	switch network {
	case "":
		network = "udp"
	case "udp", "tcp":
	default:
		return fail(fmt.Errorf("DNS.Net %q: want \"udp\" or \"tcp\"", d.Net))
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	q := &querier{server: server, network: network, ad: d.RequireAD}
	fqdn := n + "."
	rrs, ttl, err := q.lookup(ctx, fqdn, dns.TypeHIP)
	if err != nil {
		return fail(fmt.Errorf("HIP query: %w", err))
	}
	if len(rrs) == 0 {
		return fail(fmt.Errorf("%w (no HIP record)", ErrNotFound))
	}
	rec := Record{Name: n}
	var firstErr error
	for _, rr := range rrs {
		hip := rr.(*dns.HIP)
		hit, pub, err := verifyHIP(hip)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		rec.HIT, rec.HostID, rec.RVS = hit, pub, hip.RendezvousServers
		break
	}
	if rec.HostID == nil {
		if len(rrs) > 1 {
			firstErr = fmt.Errorf("none of %d HIP records is usable; the first: %w", len(rrs), firstErr)
		}
		return fail(firstErr)
	}
	if !d.NoAddresses {
		locs, lttl, err := q.addresses(ctx, fqdn, d.port())
		if err != nil {
			return fail(err)
		}
		rec.Locators = locs
		if len(locs) > 0 {
			ttl = min(ttl, lttl)
		}
	}
	if !d.NoAddresses {
		if locs, lttl := q.rvsLocators(ctx, rec.RVS, d.rvsPort()); len(locs) > 0 {
			rec.RVSLocators = locs
			ttl = min(ttl, lttl)
		}
	}
	rec.TTL = time.Duration(ttl) * time.Second
	return rec, nil
}

func (d *DNS) rvsPort() uint16 {
	if d.RVSPort == 0 {
		return DefaultLocatorPort
	}
	return d.RVSPort
}

// rvsLocators resolves the rendezvous servers' names into locators on
// port, in the record's order, and returns their smallest TTL. A name that
// does not resolve is skipped: the others, and the host's own locators,
// may still reach the peer.
func (q *querier) rvsLocators(ctx context.Context, names []string, port uint16) ([]netip.AddrPort, uint32) {
	var out []netip.AddrPort
	ttl := uint32(math.MaxUint32)
	for _, n := range names {
		if ctx.Err() != nil {
			break
		}
		locs, t, err := q.addresses(ctx, dns.Fqdn(n), port)
		if err != nil || len(locs) == 0 {
			continue
		}
		out = append(out, locs...)
		ttl = min(ttl, t)
	}
	return out, ttl
}

func (d *DNS) port() uint16 {
	if d.Port == 0 {
		return DefaultLocatorPort
	}
	return d.Port
}

// server returns the server's "host:port".
func (d *DNS) server() (string, error) {
	if d.Server != "" {
		if a, err := netip.ParseAddr(d.Server); err == nil {
			return net.JoinHostPort(a.String(), "53"), nil
		}
		if _, _, err := net.SplitHostPort(d.Server); err != nil {
			return "", fmt.Errorf("DNS.Server %q: want host:port or an IP address", d.Server)
		}
		return d.Server, nil
	}
	cc, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil {
		return "", fmt.Errorf("no DNS server: %w", err)
	}
	if len(cc.Servers) == 0 {
		return "", fmt.Errorf("no DNS server: no nameserver in %s", resolvConf)
	}
	return net.JoinHostPort(cc.Servers[0], cc.Port), nil
}

// querier sends the queries of one Resolve.
type querier struct {
	server  string
	network string
	ad      bool // RequireAD
}

// addresses returns the name's AAAA and A records as locators on port,
// and their smallest TTL. It asks both at once.
func (q *querier) addresses(ctx context.Context, fqdn string, port uint16) ([]netip.AddrPort, uint32, error) {
	type result struct {
		rrs []dns.RR
		ttl uint32
		err error
	}
	var (
		wg     sync.WaitGroup
		v6, v4 result
	)
	wg.Go(func() { v6.rrs, v6.ttl, v6.err = q.lookup(ctx, fqdn, dns.TypeAAAA) })
	wg.Go(func() { v4.rrs, v4.ttl, v4.err = q.lookup(ctx, fqdn, dns.TypeA) })
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if errors.Is(v6.err, ErrNotFound) {
		v6.err = nil
	}
	if errors.Is(v4.err, ErrNotFound) {
		v4.err = nil
	}
	if v6.err != nil && v4.err != nil {
		return nil, 0, fmt.Errorf("AAAA query: %w", v6.err)
	}
	var (
		out []netip.AddrPort
		ttl uint32
	)
	for _, res := range []result{v6, v4} {
		if res.err != nil || len(res.rrs) == 0 {
			continue
		}
		if len(out) == 0 || res.ttl < ttl {
			ttl = res.ttl
		}
		for _, rr := range res.rrs {
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.AAAA:
				ip = rr.AAAA
			case *dns.A:
				ip = rr.A
			}
			a, ok := netip.AddrFromSlice(ip)
			if !ok {
				continue
			}
			out = append(out, netip.AddrPortFrom(a.Unmap(), port))
		}
	}
	return out, ttl, nil
}

// maxCNAMEs bounds the CNAME chain followed in one answer.
const maxCNAMEs = 8

// lookup asks one question and returns the RRs of type qtype that answer
// it, at the end of the answer's CNAME chain, with the smallest TTL of
// those RRs and of the CNAMEs followed (the largest uint32 if none).
// NXDOMAIN is ErrNotFound; NOERROR with no such RR is an empty result.
func (q *querier) lookup(ctx context.Context, fqdn string, qtype uint16) ([]dns.RR, uint32, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = q.ad
	m.SetEdns0(ednsSize, false)
	r, err := q.exchange(ctx, m)
	if err != nil {
		return nil, 0, err
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
	case dns.RcodeNameError:
		return nil, 0, fmt.Errorf("%w (NXDOMAIN)", ErrNotFound)
	default:
		return nil, 0, fmt.Errorf("%w: %s", ErrServerFailure, dns.RcodeToString[r.Rcode])
	}
	if q.ad && qtype == dns.TypeHIP && !r.AuthenticatedData {
		return nil, 0, ErrNotAuthenticated
	}
	ttl := ^uint32(0)
	owner := fqdn
	for range maxCNAMEs {
		next := ""
		for _, rr := range r.Answer {
			if c, ok := rr.(*dns.CNAME); ok && c.Hdr.Class == dns.ClassINET && strings.EqualFold(c.Hdr.Name, owner) {
				next, ttl = c.Target, min(ttl, c.Hdr.Ttl)
				break
			}
		}
		if next == "" {
			break
		}
		owner = next
	}
	var out []dns.RR
	for _, rr := range r.Answer {
		h := rr.Header()
		if h.Rrtype == qtype && h.Class == dns.ClassINET && strings.EqualFold(h.Name, owner) {
			out = append(out, rr)
			ttl = min(ttl, h.Ttl)
		}
	}
	return out, ttl, nil
}

// exchange sends m and returns the answer; a truncated answer over UDP is
// asked again over TCP (RFC 7766 §5).
func (q *querier) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	r, err := exchangeOn(ctx, q.network, q.server, m)
	if err == nil && r.Truncated && q.network == "udp" {
		r, err = exchangeOn(ctx, "tcp", q.server, m)
	}
	return r, err
}

// exchangeOn sends m to server over network ("udp" or "tcp") and reads
// the answer, until ctx, which must have a deadline, is done. Over UDP the
// query is sent again after 1 s, 2 s, 4 s … and datagrams that are not an
// answer to it (wrong ID or question, unparsable) are ignored, as by
// package net's resolver; over TCP they are an error.
func exchangeOn(ctx context.Context, network, server string, m *dns.Msg) (*dns.Msg, error) {
	var dialer net.Dialer
	nc, err := dialer.DialContext(ctx, network, server)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	defer nc.Close()
	// Closing the connection is the one way to interrupt a blocked read
	// that cannot be undone by the deadlines set below.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	deadline, _ := ctx.Deadline()
	co := &dns.Conn{Conn: nc, UDPSize: 4096}

	if network == "tcp" {
		nc.SetDeadline(deadline)
		if err := co.WriteMsg(m); err != nil {
			return nil, ctxErr(ctx, err)
		}
		r, err := co.ReadMsg()
		if err != nil {
			return nil, ctxErr(ctx, err)
		}
		if !answers(r, m) {
			return nil, fmt.Errorf("%w: the answer over TCP is not for our query", ErrServerFailure)
		}
		return r, nil
	}
	for wait := time.Second; ; wait *= 2 {
		if err := co.WriteMsg(m); err != nil {
			return nil, ctxErr(ctx, err)
		}
		next := time.Now().Add(wait)
		if next.After(deadline) {
			next = deadline
		}
		nc.SetReadDeadline(next)
		for {
			p, err := co.ReadMsgHeader(nil)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(deadline) {
					break // send again
				}
				return nil, ctxErr(ctx, err)
			}
			r := new(dns.Msg)
			if r.Unpack(p) == nil && answers(r, m) {
				return r, nil
			}
		}
	}
}

// answers reports whether r is the answer to m: a response with m's ID and
// m's question (RFC 5452 §9.1), or an error without a question section
// (FORMERR, NOTIMP).
func answers(r, m *dns.Msg) bool {
	if !r.Response || r.Id != m.Id {
		return false
	}
	if len(r.Question) == 0 {
		return r.Rcode != dns.RcodeSuccess
	}
	a, q := r.Question[0], m.Question[0]
	return len(r.Question) == 1 && a.Qtype == q.Qtype && a.Qclass == q.Qclass && strings.EqualFold(a.Name, q.Name)
}

// ctxErr returns the context's error once it is done (the cause of the
// failure: a closed connection or an expired deadline), err otherwise.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}
