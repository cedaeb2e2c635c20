package resolve

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"hipnet.dev/handshake/hostid"
	"hipnet.dev/internal/testkey"
)

// zone is the in-process DNS server's data and behaviour.
type zone struct {
	mu       sync.Mutex
	rrs      map[string][]dns.RR // by lower-case owner name
	silent   map[string]bool     // names never answered
	dropOnce map[string]bool     // names whose first UDP query is dropped
	spoof    map[string]dns.RR   // names answered first with a wrong ID carrying this RR
	rcode    map[string]int      // names answered with this RCODE
	truncUDP bool                // answer UDP queries with TC and no records
	ad       bool                // set AD in answers
	queries  []query             // every query received
}

type query struct {
	net   string
	name  string
	qtype uint16
	ad    bool
}

// with runs f with z locked: the test changes or reads z while the
// server's goroutines may use it.
func (z *zone) with(f func()) {
	z.mu.Lock()
	defer z.mu.Unlock()
	f()
}

// takeQueries returns the queries received since the last call.
func (z *zone) takeQueries() []query {
	z.mu.Lock()
	defer z.mu.Unlock()
	q := z.queries
	z.queries = nil
	return q
}

func (z *zone) add(rrs ...dns.RR) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.rrs == nil {
		z.rrs = map[string][]dns.RR{}
	}
	for _, rr := range rrs {
		n := strings.ToLower(rr.Header().Name)
		z.rrs[n] = append(z.rrs[n], rr)
	}
}

func (z *zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	network := w.LocalAddr().Network()
	z.queries = append(z.queries, query{network, name, q.Qtype, r.AuthenticatedData})
	if z.silent[name] {
		return
	}
	if z.dropOnce[name] && network == "udp" {
		delete(z.dropOnce, name)
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.AuthenticatedData = z.ad
	if rc, ok := z.rcode[name]; ok {
		m.Rcode = rc
		w.WriteMsg(m)
		return
	}
	if z.truncUDP && network == "udp" {
		m.Truncated = true
		w.WriteMsg(m)
		return
	}
	owner := name
	for range 8 {
		rrs, ok := z.rrs[owner]
		if !ok {
			m.Rcode = dns.RcodeNameError
			break
		}
		next := ""
		for _, rr := range rrs {
			switch {
			case rr.Header().Rrtype == q.Qtype:
				m.Answer = append(m.Answer, rr)
			case rr.Header().Rrtype == dns.TypeCNAME:
				m.Answer = append(m.Answer, rr)
				next = strings.ToLower(rr.(*dns.CNAME).Target)
			}
		}
		if next == "" {
			break
		}
		owner = next
	}
	if rr, ok := z.spoof[name]; ok && q.Qtype == dns.TypeHIP && network == "udp" {
		f := m.Copy()
		f.Id++
		f.Answer = []dns.RR{rr}
		w.WriteMsg(f)
	}
	w.WriteMsg(m)
}

// serve starts z on UDP and TCP on one port of 127.0.0.1 and returns the
// address.
func serve(t *testing.T, z *zone) string {
	t.Helper()
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	for range 10 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: ln, Handler: z}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { s.Shutdown() })
	}
	return pc.LocalAddr().String()
}

func hipRR(t *testing.T, name string, ttl uint32, pub *hostid.PublicKey, rvs ...string) *dns.HIP {
	t.Helper()
	rr, err := NewHIPRR(name, ttl, pub, rvs...)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestDNSResolve(t *testing.T) {
	pubA := testkey.Key(t, 0).Public()
	p384, rsaKey := moreKeys(t)
	z := &zone{}
	z.add(
		hipRR(t, "device42.example.com", 300, pubA, "rvs1.example.com", "rvs2.example.com"),
		mustRR(t, "device42.example.com. 120 IN A 192.0.2.42"),
		mustRR(t, "device42.example.com. 60 IN AAAA 2001:db8::42"),
		hipRR(t, "p384.example.com", 300, p384.Public()),
		hipRR(t, "rsa.example.com", 300, rsaKey.Public()),
		mustRR(t, "alias.example.com. 30 IN CNAME device42.example.com."),
		mustRR(t, "plain.example.com. 300 IN A 192.0.2.1"),
	)
	d := &DNS{Server: serve(t, z), Timeout: 5 * time.Second}
	ctx := context.Background()

	r, err := d.Resolve(ctx, "Device42.Example.COM.")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	if r.Name != "device42.example.com" || r.HIT != pubA.HIT() || !r.HostID.Equal(pubA) ||
		!slices.Equal(r.RVS, []string{"rvs1.example.com.", "rvs2.example.com."}) ||
		!slices.Equal(r.Locators, []netip.AddrPort{ap("[2001:db8::42]:10500"), ap("192.0.2.42:10500")}) ||
		r.TTL != 60*time.Second {
		t.Errorf("device42: %+v", r)
	}

	for _, c := range []struct {
		name string
		pub  *hostid.PublicKey
	}{{"p384.example.com", p384.Public()}, {"rsa.example.com", rsaKey.Public()}} {
		r, err := d.Resolve(ctx, c.name)
		if err != nil || r.HIT != c.pub.HIT() || !r.HostID.Equal(c.pub) || len(r.Locators) != 0 || r.RVS != nil || r.TTL != 300*time.Second {
			t.Errorf("%s: %+v, %v", c.name, r, err)
		}
	}

	// A CNAME is followed; its TTL counts.
	r, err = d.Resolve(ctx, "alias.example.com")
	if err != nil || r.Name != "alias.example.com" || r.HIT != pubA.HIT() || r.TTL != 30*time.Second || len(r.Locators) != 2 {
		t.Errorf("alias: %+v, %v", r, err)
	}

	// Port and NoAddresses.
	d2 := *d
	d2.Port = 4242
	if r, err := d2.Resolve(ctx, "device42.example.com"); err != nil || r.Locators[1] != ap("192.0.2.42:4242") {
		t.Errorf("Port 4242: %v, %v", r.Locators, err)
	}
	d2.NoAddresses = true
	z.takeQueries()
	if r, err := d2.Resolve(ctx, "device42.example.com"); err != nil || r.Locators != nil || r.TTL != 300*time.Second {
		t.Errorf("NoAddresses: %+v, %v", r, err)
	}
	if qs := z.takeQueries(); len(qs) != 1 || qs[0].qtype != dns.TypeHIP || qs[0].net != "udp" || qs[0].ad {
		t.Errorf("NoAddresses sent %+v; want one HIP query over UDP without AD", qs)
	}

	// Not found: NXDOMAIN, and a name without a HIP RR.
	for _, name := range []string{"nosuch.example.com", "plain.example.com"} {
		_, err := d.Resolve(ctx, name)
		var re *Error
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &re) || re.Source != "DNS server "+d.Server {
			t.Errorf("%s: %v; want ErrNotFound from %s", name, err, d.Server)
		}
	}

	// Not a name.
	if _, err := d.Resolve(ctx, "2001:2a::1"); !errors.Is(err, ErrBadName) {
		t.Errorf("HIT as a name: %v; want ErrBadName", err)
	}
}

// TestDNSRefusesMismatch: a record with the HI of key A and the HIT of key
// B is refused, never returned, and stops a chain.
func TestDNSRefusesMismatch(t *testing.T) {
	pubA, pubB := testkey.Key(t, 0).Public(), testkey.Key(t, 1).Public()
	forged := hipRR(t, "forged.example.com", 300, pubA)
	hitB := pubB.HIT()
	forged.Hit = hex.EncodeToString(hitB[:])
	z := &zone{}
	z.add(forged)
	// Several RRs: the first usable one is taken.
	second := hipRR(t, "two.example.com", 300, pubB)
	first := hipRR(t, "two.example.com", 300, pubA)
	first.Hit = forged.Hit
	z.add(first, second, hipRR(t, "two.example.com", 300, pubA))
	d := &DNS{Server: serve(t, z), NoAddresses: true}
	ctx := context.Background()

	r, err := d.Resolve(ctx, "forged.example.com")
	if !errors.Is(err, ErrHITMismatch) || errors.Is(err, ErrNotFound) || r.HostID != nil || !r.HIT.IsZero() {
		t.Fatalf("forged: %+v, %v; want ErrHITMismatch and no record", r, err)
	}
	t.Log(err)

	if r, err := d.Resolve(ctx, "two.example.com"); err != nil || r.HIT != pubB.HIT() || !r.HostID.Equal(pubB) {
		t.Errorf("two: %v, %v; want the second RR's %v", r.HIT, err, pubB.HIT())
	}

	// The hosts file after DNS knows the name, but the refusal stops the
	// chain: a forged DNS answer does not fall through silently.
	h, err := ParseHosts(strings.NewReader("forged.example.com 2001:2a::1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (Chain{d, h}).Resolve(ctx, "forged.example.com"); !errors.Is(err, ErrHITMismatch) {
		t.Errorf("chain: %v; want ErrHITMismatch", err)
	}
}

func TestDNSChainFallsThrough(t *testing.T) {
	z := &zone{}
	d := &DNS{Server: serve(t, z)}
	h, err := ParseHosts(strings.NewReader("device7.example.com 2001:2a::7 192.0.2.7:10500\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := (Chain{d, h}).Resolve(context.Background(), "device7.example.com")
	if err != nil || r.HIT.String() != "2001:2a::7" {
		t.Errorf("%+v, %v; want the hosts file's record after NXDOMAIN", r, err)
	}
}

func TestDNSTimeout(t *testing.T) {
	z := &zone{silent: map[string]bool{"silent.example.com.": true}}
	d := &DNS{Server: serve(t, z), Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err := d.Resolve(context.Background(), "silent.example.com")
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Errorf("returned after %v; want about 300 ms", el)
	}
	ne, ok := err.(net.Error)
	if !ok || !ne.Timeout() {
		t.Fatalf("%v (%T); want a net.Error with Timeout() true", err, err)
	}
	var re *Error
	if !errors.As(err, &re) || errors.Is(err, ErrNotFound) {
		t.Errorf("%v; want an *Error that is not ErrNotFound", err)
	}

	// The context's deadline, earlier than Timeout, wins.
	d.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = d.Resolve(ctx, "silent.example.com")
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() || time.Since(start) > 3*time.Second {
		t.Errorf("context deadline: %v after %v", err, time.Since(start))
	}
}

func TestDNSCancel(t *testing.T) {
	z := &zone{silent: map[string]bool{"silent.example.com.": true}}
	for _, network := range []string{"udp", "tcp"} {
		d := &DNS{Server: serve(t, z), Net: network, Timeout: time.Minute}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := d.Resolve(ctx, "silent.example.com")
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("%s: returned after %v", network, el)
		}
		var re *Error
		if !errors.Is(err, context.Canceled) || !errors.As(err, &re) || re.Timeout() {
			t.Errorf("%s: %v; want context.Canceled, not a timeout", network, err)
		}
	}
}

// TestDNSUDP: a lost query is sent again, a datagram with the wrong ID
// (an off-path forgery) is ignored, a truncated answer is asked again over
// TCP, and Net "tcp" asks over TCP only.
func TestDNSUDP(t *testing.T) {
	pubA, pubB := testkey.Key(t, 0).Public(), testkey.Key(t, 1).Public()
	z := &zone{
		dropOnce: map[string]bool{"lossy.example.com.": true},
		spoof:    map[string]dns.RR{"spoofed.example.com.": hipRR(t, "spoofed.example.com", 300, pubB)},
	}
	z.add(hipRR(t, "lossy.example.com", 300, pubA), hipRR(t, "spoofed.example.com", 300, pubA))
	d := &DNS{Server: serve(t, z), NoAddresses: true}
	ctx := context.Background()

	start := time.Now()
	if r, err := d.Resolve(ctx, "lossy.example.com"); err != nil || r.HIT != pubA.HIT() {
		t.Errorf("lossy: %v, %v", r.HIT, err)
	}
	if el := time.Since(start); el < 900*time.Millisecond || el > 3*time.Second {
		t.Errorf("lossy: answered after %v; want the retransmission after 1 s", el)
	}
	if r, err := d.Resolve(ctx, "spoofed.example.com"); err != nil || r.HIT != pubA.HIT() {
		t.Errorf("spoofed: %v, %v; want %v", r.HIT, err, pubA.HIT())
	}

	z.with(func() { z.truncUDP = true })
	z.takeQueries()
	if r, err := d.Resolve(ctx, "lossy.example.com"); err != nil || r.HIT != pubA.HIT() {
		t.Errorf("truncated: %v, %v", r.HIT, err)
	}
	if qs := z.takeQueries(); len(qs) != 2 || qs[0].net != "udp" || qs[1].net != "tcp" {
		t.Errorf("truncated: queries %+v; want UDP then TCP", qs)
	}
	z.with(func() { z.truncUDP = false })

	d.Net = "tcp"
	if r, err := d.Resolve(ctx, "lossy.example.com"); err != nil || r.HIT != pubA.HIT() {
		t.Errorf("tcp: %v, %v", r.HIT, err)
	}
	if qs := z.takeQueries(); len(qs) != 1 || qs[0].net != "tcp" {
		t.Errorf("tcp: queries %+v", qs)
	}
	d.Net = "quic"
	if _, err := d.Resolve(ctx, "lossy.example.com"); err == nil || !strings.Contains(err.Error(), "DNS.Net") {
		t.Errorf("Net quic: %v", err)
	}
}

func TestDNSServerErrors(t *testing.T) {
	pubA := testkey.Key(t, 0).Public()
	z := &zone{rcode: map[string]int{
		"servfail.example.com.": dns.RcodeServerFailure,
		"refused.example.com.":  dns.RcodeRefused,
	}}
	z.add(hipRR(t, "device42.example.com", 300, pubA), mustRR(t, "device42.example.com. 60 IN A 192.0.2.42"))
	addr := serve(t, z)
	ctx := context.Background()
	d := &DNS{Server: addr}
	for _, name := range []string{"servfail.example.com", "refused.example.com"} {
		if _, err := d.Resolve(ctx, name); !errors.Is(err, ErrServerFailure) || errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v; want ErrServerFailure", name, err)
		}
	}

	// RequireAD sets AD in the query and refuses an answer without it.
	d.RequireAD = true
	z.takeQueries()
	if _, err := d.Resolve(ctx, "device42.example.com"); !errors.Is(err, ErrNotAuthenticated) {
		t.Errorf("RequireAD without AD: %v; want ErrNotAuthenticated", err)
	}
	if qs := z.takeQueries(); len(qs) == 0 || !qs[0].ad {
		t.Errorf("RequireAD: queries %+v; want AD set", qs)
	}
	z.with(func() { z.ad = true })
	if r, err := d.Resolve(ctx, "device42.example.com"); err != nil || r.HIT != pubA.HIT() {
		t.Errorf("RequireAD with AD: %v, %v", r.HIT, err)
	}
	if _, err := d.Resolve(ctx, "nosuch.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RequireAD, NXDOMAIN: %v; want ErrNotFound", err)
	}

	// Nobody listening: a network error (over UDP, ICMP port unreachable
	// or a timeout), not ErrNotFound.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	if _, err := (&DNS{Server: dead, Timeout: 500 * time.Millisecond}).Resolve(ctx, "device42.example.com"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("no server: %v", err)
	}
}

func TestDNSServerAddress(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"192.0.2.53:5353", "192.0.2.53:5353"},
		{"192.0.2.53", "192.0.2.53:53"},
		{"2001:db8::53", "[2001:db8::53]:53"},
		{"[2001:db8::53]:853", "[2001:db8::53]:853"},
		{"ns.example.com:53", "ns.example.com:53"},
	} {
		if got, err := (&DNS{Server: c.in}).server(); err != nil || got != c.want {
			t.Errorf("Server %q: %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := (&DNS{Server: "ns.example.com"}).server(); err == nil {
		t.Error("a host name without a port was accepted")
	}

	dir := t.TempDir()
	old := resolvConf
	t.Cleanup(func() { resolvConf = old })
	resolvConf = filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolvConf, []byte("search example.com\nnameserver 2001:db8::1\nnameserver 192.0.2.1\n"), 0o644)
	if got, err := (&DNS{}).server(); err != nil || got != "[2001:db8::1]:53" {
		t.Errorf("resolv.conf: %q, %v; want the first nameserver", got, err)
	}
	os.WriteFile(resolvConf, []byte("search example.com\n"), 0o644)
	if _, err := (&DNS{}).Resolve(context.Background(), "a.example"); err == nil || !strings.Contains(err.Error(), "no nameserver") {
		t.Errorf("resolv.conf without nameserver: %v", err)
	}
}
