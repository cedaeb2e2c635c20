package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests are named TestE2E... (`make e2e` runs -run '^TestE2E'
// with HIPNET_E2E=1); they skip without root unless HIPNET_E2E=1.

const (
	replyWait   = time.Second            // per attempt, for a datagram that should come
	silenceWait = 300 * time.Millisecond // for one that should not
)

// TestMain checks, after all tests, that this process left no namespace
// behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if names, err := listNames(); err == nil {
		own := namePrefix + strconv.FormatInt(int64(os.Getpid()), 36) + "-"
		for _, name := range names {
			if strings.HasPrefix(name, own) {
				fmt.Fprintf(os.Stderr, "netns: namespace %s left behind\n", name)
				code = 1
			}
		}
	}
	os.Exit(code)
}

func TestNames(t *testing.T) {
	p := runPrefix()
	if !strings.HasPrefix(p, namePrefix) || !strings.HasSuffix(p, "-") {
		t.Fatalf("runPrefix() = %q", p)
	}
	if pid, ok := ownerPID(p + "r0"); !ok || pid != os.Getpid() {
		t.Errorf("ownerPID(%q) = %d, %v; want %d, true", p+"r0", pid, ok, os.Getpid())
	}
	// The longest names: the largest PID Linux allows (2^22), the
	// 1296th topology of a process, the longest roles.
	long := namePrefix + strconv.FormatInt(1<<22, 36) + "-" + strconv.FormatInt(1295, 36) + "-"
	for _, role := range []string{"peer", "r99", "h99", "av"} {
		if name := long + role; len(name) > 15 {
			t.Errorf("name %q is %d characters long, more than 15", name, len(name))
		}
	}
	for _, name := range []string{"hn", "hn1-2", "hn1-2-", "hn-2-sw", "hnZ-0-sw", "hn1-0-s_w", "other-1-sw", "hn1-0-sw-x", "hn0-0-sw"} {
		if pid, ok := ownerPID(name); ok {
			t.Errorf("ownerPID(%q) = %d, true; want false", name, pid)
		}
	}
	if pid, ok := ownerPID("hnzz-1-h3"); !ok || pid != 36*36-1 {
		t.Errorf(`ownerPID("hnzz-1-h3") = %d, %v`, pid, ok)
	}
	for nat, want := range map[NATType]string{
		EndpointIndependent: "-A POSTROUTING -o eth0 -j MASQUERADE\n",
		RandomFully:         "-A POSTROUTING -o eth0 -j MASQUERADE --random-fully\n",
	} {
		if rules := routerRules(nat); !strings.Contains(rules, want) || !strings.Contains(rules, ":FORWARD DROP") {
			t.Errorf("routerRules(%v) = %q", nat, rules)
		}
	}
	if runtime.GOOS == "linux" && !processAlive(os.Getpid()) {
		t.Error("processAlive(own PID) = false")
	}
	if got := lanAddr(3, 2).String(); got != "10.103.0.2/24" {
		t.Errorf("lanAddr(3, 2) = %s", got)
	}
	if got := publicAddr(12).String(); got != "198.18.0.12/24" {
		t.Errorf("publicAddr(12) = %s", got)
	}
	if got := secondAddr(2).String(); got != "198.19.0.2/24" {
		t.Errorf("secondAddr(2) = %s", got)
	}
	if got := linkAddr(99, 255, 1).String(); got != "10.199.255.1/24" {
		t.Errorf("linkAddr(99, 255, 1) = %s", got)
	}
	// Interface names: at most 15 characters.
	tp := &Topology{prefix: long}
	for _, name := range []string{
		tp.port(&Namespace{name: long + "peer"}, "eth1"),
		tp.port(&Namespace{name: long + "r99"}, "eth0"),
		"lan-h" + strconv.Itoa(MaxSites-1),
	} {
		if len(name) > 15 {
			t.Errorf("interface name %q is %d characters long, more than 15", name, len(name))
		}
	}
	if got := tp.port(&Namespace{name: long + "peer"}, "eth1"); got != "ppeer-1" {
		t.Errorf("port of the peer's eth1 = %q", got)
	}
	rules := natRules(EndpointIndependent, []string{"-A POSTROUTING -s 10.100.0.2/32 -o eth0 -p udp --sport 5000 -j MASQUERADE --to-ports 6000"})
	if i, j := strings.Index(rules, "--to-ports 6000"), strings.Index(rules, "-j MASQUERADE\n"); i < 0 || j < i {
		t.Errorf("natRules: Rebind's rule must come before the site's:\n%s", rules)
	}
}

func TestParseConntrack(t *testing.T) {
	out := `udp      17 29 src=10.100.0.2 dst=198.18.0.1 sport=46033 dport=7000 src=198.18.0.1 dst=198.18.0.10 sport=7000 dport=46033 [ASSURED] mark=0 use=1
udp      17 27 src=10.100.0.2 dst=198.18.0.2 sport=46033 dport=7000 [UNREPLIED] src=198.18.0.2 dst=198.18.0.10 sport=7000 dport=9999 mark=0 use=1
tcp      6 431999 ESTABLISHED src=10.100.0.2 dst=198.18.0.1 sport=40000 dport=80 src=198.18.0.1 dst=198.18.0.10 sport=80 dport=40000 [ASSURED] mark=0 use=1
udp      17 29 src=10.100.0.2 dst=198.18.0.1 sport=x dport=7000 src=198.18.0.1 dst=198.18.0.10 sport=7000 dport=1 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.
`
	want := []ctFlow{{
		origSrc: netip.MustParseAddrPort("10.100.0.2:46033"), origDst: netip.MustParseAddrPort("198.18.0.1:7000"),
		replySrc: netip.MustParseAddrPort("198.18.0.1:7000"), replyDst: netip.MustParseAddrPort("198.18.0.10:46033"),
	}, {
		origSrc: netip.MustParseAddrPort("10.100.0.2:46033"), origDst: netip.MustParseAddrPort("198.18.0.2:7000"),
		replySrc: netip.MustParseAddrPort("198.18.0.2:7000"), replyDst: netip.MustParseAddrPort("198.18.0.10:9999"),
	}}
	if got := parseConntrack(out); !slices.Equal(got, want) {
		t.Errorf("parseConntrack:\n got %v\nwant %v", got, want)
	}
}

// TestE2ETopologyCleanup builds a topology in a subtest and checks its
// namespaces and interfaces while it stands, and that nothing is left, in
// the machine's namespace or in the namespace list, once its cleanup ran.
func TestE2ETopologyCleanup(t *testing.T) {
	t.Parallel()
	Require(t)
	before := rootInterfaces(t)
	var tp *Topology
	t.Run("build", func(t *testing.T) {
		tp = NewTopology(t, Spec{Peer: true, Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: RandomFully}}})
		names, err := listNames()
		if err != nil {
			t.Fatal(err)
		}
		if len(tp.Namespaces()) != 7 {
			t.Errorf("%d namespaces, want 7 (sw, pub, peer, 2 routers, 2 hosts)", len(tp.Namespaces()))
		}
		for _, n := range tp.Namespaces() {
			if !slices.Contains(names, n.Name()) {
				t.Errorf("namespace %s is not listed", n)
			}
			if len(n.Name()) > 15 {
				t.Errorf("namespace name %s is longer than 15", n)
			}
		}
		want := map[*Namespace][]string{
			tp.Public():  {"eth0", "lo"},
			tp.Peer():    {"eth0", "lo"},
			tp.Router(1): {"eth0", "lan0", "lo"},
			tp.Host(1):   {"eth0", "lo"},
		}
		for n, ifs := range want {
			var got []string
			var addrs []string
			if err := n.Do(func() error {
				list, err := net.Interfaces()
				for _, i := range list {
					got = append(got, i.Name)
				}
				as, _ := net.InterfaceAddrs()
				for _, a := range as {
					addrs = append(addrs, a.String())
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, ifs) {
				t.Errorf("%s: interfaces %v, want %v", n, got, ifs)
			}
			if !slices.Contains(addrs, n.Prefix().String()) {
				t.Errorf("%s: addresses %v lack %s", n, addrs, n.Prefix())
			}
			for _, a := range addrs {
				if strings.Contains(a, ":") {
					t.Errorf("%s: IPv6 address %s (IPv6 should be disabled)", n, a)
				}
			}
		}
		out, err := tp.Host(0).Exec(context.Background(), "ip", "route")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "default via 10.100.0.1 dev eth0") {
			t.Errorf("Host(0) routes:\n%s", out)
		}
		out, err = tp.Router(1).Exec(context.Background(), "iptables", "-t", "nat", "-S", "POSTROUTING")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "-o eth0 -j MASQUERADE --random-fully") {
			t.Errorf("Router(1) nat rules:\n%s", out)
		}
		if after := rootInterfaces(t); !slices.Equal(before, after) {
			t.Errorf("the machine's namespace changed: interfaces %v, then %v", before, after)
		}
	})
	// Every operation that changes a topology, some of them left in
	// effect (a black hole, a link down, a host away, Rebind's rules)
	// when the cleanup runs.
	var changed *Topology
	t.Run("changed", func(t *testing.T) {
		tp := NewTopology(t, Spec{MultihomedPeer: true, Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: RandomFully}, {NAT: None}}})
		changed = tp
		if len(tp.Namespaces()) != 9 {
			t.Errorf("%d namespaces, want 9 (sw, pub, peer, 3 routers, 3 hosts)", len(tp.Namespaces()))
		}
		echo := reporter(t, tp.Public(), 7000)
		for i := range tp.Sites() {
			observed(t, listen(t, tp.Host(i), "0.0.0.0:0"), echo)
		}
		if _, err := tp.Renumber(0); err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Move(1, 2); err != nil {
			t.Fatal(err)
		}
		if err := tp.Rebind(0); err != nil && !errors.Is(err, exec.ErrNotFound) {
			t.Fatal(err)
		}
		if err := tp.Blackhole(tp.Peer().Addr(), true); err != nil {
			t.Fatal(err)
		}
		if err := tp.Peer().SetInterfaceUp("eth1", false); err != nil {
			t.Fatal(err)
		}
		want := map[*Namespace][]string{
			tp.sw:        {"br0", "br1", "lo", "ppeer", "ppeer-1", "ppub", "pr0", "pr1", "pr2"},
			tp.Peer():    {"eth0", "eth1", "lo"},
			tp.Router(1): {"eth0", "lo"},
			tp.Router(2): {"eth0", "lan-h1", "lan0", "lo"},
			tp.Host(1):   {"eth0", "lo"},
		}
		for n, ifs := range want {
			var got []string
			if err := n.Do(func() error {
				list, err := net.Interfaces()
				for _, i := range list {
					got = append(got, i.Name)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, ifs) {
				t.Errorf("%s: interfaces %v, want %v", n, got, ifs)
			}
		}
		if after := rootInterfaces(t); !slices.Equal(before, after) {
			t.Errorf("the machine's namespace changed: interfaces %v, then %v", before, after)
		}
	})
	for _, tp := range []*Topology{tp, changed} {
		if tp == nil {
			t.Fatal("no topology")
		}
		names, err := listNames()
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			if strings.HasPrefix(name, tp.Prefix()) {
				t.Errorf("namespace %s is still there after cleanup", name)
			}
		}
	}
	if after := rootInterfaces(t); !slices.Equal(before, after) {
		t.Errorf("the machine's namespace changed: interfaces %v, then %v", before, after)
	}
}

func rootInterfaces(t *testing.T) []string {
	t.Helper()
	list, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range list {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	return names
}

// TestE2ETopologyStale checks that a namespace left by a process that no
// longer exists is removed, and that one of a live process is kept.
func TestE2ETopologyStale(t *testing.T) {
	t.Parallel()
	Require(t)
	dead := deadPID(t)
	stale := namePrefix + strconv.FormatInt(int64(dead), 36) + "-0-sw"
	live := runPrefix() + "sw" // this process's: alive
	for _, name := range []string{stale, live} {
		if err := run("", "ip", "netns", "add", name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = deleteNamespace(name) })
	}
	removed, err := removeStale()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, stale) || slices.Contains(removed, live) {
		t.Errorf("removeStale removed %v; want %s and not %s", removed, stale, live)
	}
	names, err := listNames()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, stale) || !slices.Contains(names, live) {
		t.Errorf("namespaces after removeStale: %v", names)
	}
}

// TestE2ETopologyPartialBuild makes building fail halfway, as a name that
// is already taken does, and checks that destroy removes what was made.
func TestE2ETopologyPartialBuild(t *testing.T) {
	t.Parallel()
	Require(t)
	tp := plan(Spec{Sites: []SiteSpec{{NAT: RandomFully}}})
	taken := tp.Host(0).Name()
	if err := run("", "ip", "netns", "add", taken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = deleteNamespace(taken) })
	if err := tp.build(); err == nil || !strings.Contains(err.Error(), taken) {
		t.Fatalf("build with %s taken: %v, want an error naming it", taken, err)
	}
	if err := tp.destroy(); err != nil {
		t.Fatal(err)
	}
	names, err := listNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.HasPrefix(name, tp.Prefix()) {
			t.Errorf("namespace %s is left", name)
		}
	}
}

// deadPID returns a process ID that no process has.
func deadPID(t *testing.T) int {
	for pid := 4000000; pid > 1000; pid -= 7919 {
		if !processAlive(pid) {
			return pid
		}
	}
	t.Fatal("no free process ID found")
	return 0
}

// TestE2ETopologyNonRoot runs this test binary as an unprivileged user: the
// end-to-end tests must skip there, and fail under HIPNET_E2E=1.
func TestE2ETopologyNonRoot(t *testing.T) {
	t.Parallel()
	Require(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is private to root: make one that nobody can enter.
	dir, err := os.MkdirTemp("", "netns-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "netns.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, EnvE2E+"=") {
			env = append(env, kv)
		}
	}
	nobody := func(extra ...string) (string, error) {
		for try := 0; ; try++ {
			cmd := exec.Command(bin, "-test.run", "^TestE2ENATTranslation$", "-test.v", "-test.count=1")
			cmd.Dir = dir
			cmd.Env = append(append([]string(nil), env...), extra...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.CombinedOutput()
			// A parallel test's fork can briefly hold the fd that wrote the
			// binary open in its child, and exec then fails with ETXTBSY
			// (golang/go#22315): try again.
			if errors.Is(err, syscall.ETXTBSY) && try < 50 {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			return string(out), err
		}
	}
	out, err := nobody()
	if err != nil || !strings.Contains(out, "--- SKIP: TestE2ENATTranslation") || !strings.Contains(out, "needs root") {
		t.Errorf("as nobody without %s: %v\n%s", EnvE2E, err, out)
	}
	out, err = nobody(EnvE2E + "=1")
	if err == nil || !strings.Contains(out, "--- FAIL: TestE2ENATTranslation") || !strings.Contains(out, "needs root") {
		t.Errorf("as nobody with %s=1: want a failure, got %v\n%s", EnvE2E, err, out)
	}
}

// reporter serves, on ns's address and port, a UDP service that answers
// every datagram with the address and port it came from, as the NAT let it
// arrive.
func reporter(t *testing.T, ns *Namespace, port uint16) netip.AddrPort {
	t.Helper()
	return reporterAt(t, ns, netip.AddrPortFrom(ns.Addr(), port))
}

// reporterAt is reporter on one of ns's addresses.
func reporterAt(t *testing.T, ns *Namespace, ap netip.AddrPort) netip.AddrPort {
	t.Helper()
	conn := listen(t, ns, ap.String())
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = conn.WriteToUDPAddrPort([]byte(from.String()), from)
		}
	}()
	return ap
}

// listen opens a UDP socket inside ns and closes it when the test ends.
func listen(t *testing.T, ns *Namespace, addr string) *net.UDPConn {
	t.Helper()
	pc, err := ns.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*net.UDPConn)
}

// observed sends to a reporter from conn and returns the source address the
// reporter saw.
func observed(t *testing.T, conn *net.UDPConn, reporter netip.AddrPort) netip.AddrPort {
	t.Helper()
	ap, err := ask(conn, reporter)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func ask(conn *net.UDPConn, reporter netip.AddrPort) (netip.AddrPort, error) {
	buf := make([]byte, 64)
	// A late answer to an earlier ask (sent again after replyWait) may
	// still wait in the socket, naming the mapping of then: drop it, or
	// the mapping seems to have survived what replaced it. CI once read
	// one right after a conntrack flush.
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		return netip.AddrPort{}, err
	}
	for {
		if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
	}
	for range 3 {
		if _, err := conn.WriteToUDPAddrPort([]byte("?"), reporter); err != nil {
			return netip.AddrPort{}, err
		}
		if err := conn.SetReadDeadline(time.Now().Add(replyWait)); err != nil {
			return netip.AddrPort{}, err
		}
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return netip.AddrPort{}, err
			}
			if from != reporter {
				continue
			}
			return netip.ParseAddrPort(string(buf[:n]))
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no answer from %s to %s", reporter, conn.LocalAddr())
}

// silent checks that nothing arrives on conn for a while.
func silent(t *testing.T, conn *net.UDPConn, what string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(silenceWait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, from, err := conn.ReadFromUDPAddrPort(buf)
	if err == nil {
		t.Errorf("%s: %q arrived from %s", what, buf[:n], from)
	} else if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal(err)
	}
}

// unanswered checks that a reporter's answer to conn does not come.
func unanswered(t *testing.T, conn *net.UDPConn, reporter netip.AddrPort, what string) {
	t.Helper()
	if _, err := conn.WriteToUDPAddrPort([]byte("?"), reporter); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	silent(t, conn, what)
}

// flow is a continuous stream of datagrams from one socket to a reporter,
// every 10 ms, until the test ends; it keeps the source the reporter saw
// last.
type flow struct {
	mu      sync.Mutex
	last    netip.AddrPort
	replies int
}

// startFlow starts a flow from conn, which it owns from then on.
func startFlow(t *testing.T, conn *net.UDPConn, reporter netip.AddrPort) *flow {
	f := &flow{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				// Errors are expected while the network changes
				// (no address, no route): keep sending.
				_, _ = conn.WriteToUDPAddrPort([]byte("?"), reporter)
			}
		}
	})
	wg.Go(func() {
		buf := make([]byte, 64)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil || from != reporter {
				continue
			}
			if ap, err := netip.ParseAddrPort(string(buf[:n])); err == nil {
				f.mu.Lock()
				f.last, f.replies = ap, f.replies+1
				f.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		close(done)
		conn.Close()
		wg.Wait()
	})
	return f
}

// waitFor waits until the source the reporter saw last satisfies ok, and
// returns it.
func (f *flow) waitFor(t *testing.T, what string, ok func(netip.AddrPort) bool) netip.AddrPort {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		last, replies := f.last, f.replies
		f.mu.Unlock()
		if replies > 0 && ok(last) {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("flow: %s: the reporter still sees %s (%d replies)", what, last, replies)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitReplies waits for n more replies of the flow than it has now and
// returns the source the reporter saw last.
func (f *flow) waitReplies(t *testing.T, what string, n int) netip.AddrPort {
	t.Helper()
	f.mu.Lock()
	want := f.replies + n
	f.mu.Unlock()
	return f.waitFor(t, what, func(netip.AddrPort) bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.replies >= want
	})
}

// arrives checks that a datagram from from arrives on conn.
func arrives(t *testing.T, conn *net.UDPConn, from netip.AddrPort, what string) {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(replyWait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for {
		_, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Errorf("%s: nothing from %s: %v", what, from, err)
			return
		}
		if src == from {
			return
		}
	}
}

// TestE2ENATTranslation checks, for each kind of site, the source address
// a public host sees, and that a NAT site's host cannot be reached at its
// private address: not without a route, and not with one (the router drops
// what belongs to no connection from the LAN).
func TestE2ENATTranslation(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, Spec{Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: RandomFully}, {NAT: None}}})
	echo := reporter(t, tp.Public(), 7000)
	for i := range tp.Sites() {
		t.Run(tp.NAT(i).String(), func(t *testing.T) {
			host := listen(t, tp.Host(i), "0.0.0.0:0")
			seen := observed(t, host, echo)
			want := tp.Router(i).Addr()
			if tp.NAT(i) == None {
				want = tp.Host(i).Addr()
			}
			if seen.Addr() != want {
				t.Errorf("the public host saw %s, want address %s", seen, want)
			}
			t.Logf("%s:%d reaches the public host as %s", tp.Host(i).Addr(), host.LocalAddr().(*net.UDPAddr).Port, seen)

			// Straight to the private address, from the public host.
			private := netip.AddrPortFrom(tp.Host(i).Addr(), uint16(host.LocalAddr().(*net.UDPAddr).Port))
			pub := listen(t, tp.Public(), "0.0.0.0:0")
			_, err := pub.WriteToUDPAddrPort([]byte("in"), private)
			if tp.NAT(i) == None {
				if err != nil {
					t.Fatal(err)
				}
				arrives(t, host, netip.AddrPortFrom(tp.Public().Addr(), uint16(pub.LocalAddr().(*net.UDPAddr).Port)), "routed site")
				return
			}
			if !errors.Is(err, syscall.ENETUNREACH) {
				t.Errorf("sending to %s from the public host: %v, want ENETUNREACH (no route)", private, err)
			}
			silent(t, host, "without a route")
			if _, err := tp.Public().Exec(context.Background(), "ip", "route", "add", tp.LAN(i).String(), "via", tp.Router(i).Addr().String()); err != nil {
				t.Fatal(err)
			}
			if _, err := pub.WriteToUDPAddrPort([]byte("in"), private); err != nil {
				t.Fatal(err)
			}
			silent(t, host, "with a route through the NAT")
		})
	}
}

// TestE2ENATMapping sends from one private socket to four public
// endpoints (two hosts, two ports each) and compares the source ports they
// see: one port for EndpointIndependent, a new one per endpoint for
// RandomFully.
func TestE2ENATMapping(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, Spec{Peer: true, Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: RandomFully}}})
	endpoints := []netip.AddrPort{
		reporter(t, tp.Public(), 7000), reporter(t, tp.Public(), 7001),
		reporter(t, tp.Peer(), 7000), reporter(t, tp.Peer(), 7001),
	}
	for i := range tp.Sites() {
		t.Run(tp.NAT(i).String(), func(t *testing.T) {
			host := listen(t, tp.Host(i), "0.0.0.0:0")
			local := uint16(host.LocalAddr().(*net.UDPAddr).Port)
			ports := map[uint16]bool{}
			var seen []string
			for _, ep := range endpoints {
				ap := observed(t, host, ep)
				if ap.Addr() != tp.Router(i).Addr() {
					t.Errorf("%s saw %s, want address %s", ep, ap, tp.Router(i).Addr())
				}
				ports[ap.Port()] = true
				seen = append(seen, fmt.Sprintf("%s sees %d", ep, ap.Port()))
			}
			t.Logf("private port %d: %s", local, strings.Join(seen, ", "))
			switch tp.NAT(i) {
			case EndpointIndependent:
				if len(ports) != 1 || !ports[local] {
					t.Errorf("endpoint-independent mapping: want private port %d seen by all", local)
				}
			case RandomFully:
				// Four random ports are all equal with a probability
				// of about 2^-48.
				if len(ports) < 2 {
					t.Errorf("address-and-port-dependent mapping: want different ports")
				}
			}
		})
	}
}

// TestE2ENATFiltering checks that only the endpoint a private socket sent
// to gets through its mapping: a packet from another public host to the
// mapped port is dropped, and gets through once the private socket has sent
// to that host.
func TestE2ENATFiltering(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, Spec{Peer: true, Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: RandomFully}}})
	echo := reporter(t, tp.Public(), 7000)
	for i := range tp.Sites() {
		t.Run(tp.NAT(i).String(), func(t *testing.T) {
			host := listen(t, tp.Host(i), "0.0.0.0:0")
			peer := listen(t, tp.Peer(), netip.AddrPortFrom(tp.Peer().Addr(), 0).String())
			peerAP := netip.MustParseAddrPort(peer.LocalAddr().String())
			mapped := observed(t, host, echo)
			if _, err := peer.WriteToUDPAddrPort([]byte("unsolicited"), mapped); err != nil {
				t.Fatal(err)
			}
			silent(t, host, "from the peer before the host sent to it")
			if _, err := host.WriteToUDPAddrPort([]byte("hello"), peerAP); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			if err := peer.SetReadDeadline(time.Now().Add(replyWait)); err != nil {
				t.Fatal(err)
			}
			_, toPeer, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("the public host sees the host as %s, the peer (after its early packet) as %s", mapped, toPeer)
			if _, err := peer.WriteToUDPAddrPort([]byte("reply"), toPeer); err != nil {
				t.Fatal(err)
			}
			arrives(t, host, peerAP, "the peer's reply")
		})
	}
}

// TestE2ENATMappingExpiry checks that a RandomFully mapping is replaced
// after MappingTimeout of silence, after a conntrack flush, and after the
// router's public link went down and up.
func TestE2ENATMappingExpiry(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, Spec{Sites: []SiteSpec{{NAT: RandomFully, MappingTimeout: 2 * time.Second}}})
	echo := reporter(t, tp.Public(), 7000)
	host := listen(t, tp.Host(0), "0.0.0.0:0")

	m1 := observed(t, host, echo)
	if m := observed(t, host, echo); m != m1 {
		t.Fatalf("mapping changed from %s to %s without a pause", m1, m)
	}
	time.Sleep(3 * time.Second)
	m2 := observed(t, host, echo)
	t.Logf("before a 3 s pause %s, after %s", m1, m2)
	if m2 == m1 {
		t.Errorf("mapping %s outlived a 2 s MappingTimeout", m1)
	}

	if err := tp.Router(0).SetLinkUp(false); err != nil {
		t.Fatal(err)
	}
	if _, err := host.WriteToUDPAddrPort([]byte("?"), echo); err != nil {
		t.Fatal(err)
	}
	silent(t, host, "with the router's public link down")
	if err := tp.Router(0).SetLinkUp(true); err != nil {
		t.Fatal(err)
	}
	m3 := observed(t, host, echo)
	t.Logf("before the link went down %s, after %s", m2, m3)
	if m3 == m2 {
		t.Errorf("mapping %s survived the public link going down", m2)
	}

	if err := tp.Router(0).FlushConntrack(); errors.Is(err, exec.ErrNotFound) {
		t.Skip(err)
	} else if err != nil {
		t.Fatal(err)
	}
	m4 := observed(t, host, echo)
	t.Logf("before a conntrack flush %s, after %s", m3, m4)
	if m4 == m3 {
		t.Errorf("mapping %s survived a conntrack flush", m3)
	}
}

// TestE2EDo checks that Do switches only its own thread, that a socket made
// inside it keeps working from other goroutines, and that errors, panics
// and Goexit come back to the caller.
func TestE2EDo(t *testing.T) {
	t.Parallel()
	tp := NewTopology(t, Spec{Sites: []SiteSpec{{NAT: EndpointIndependent}, {NAT: RandomFully}}})
	echo := reporter(t, tp.Public(), 7000)

	// A socket made inside Do, used from other goroutines.
	var conn net.PacketConn
	if err := tp.Host(0).Do(func() error {
		var err error
		conn, err = net.ListenPacket("udp4", ":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			ap, err := ask(conn.(*net.UDPConn), echo)
			if err == nil && ap.Addr() != tp.Router(0).Addr() {
				err = fmt.Errorf("seen as %s, want %s", ap, tp.Router(0).Addr())
			}
			errs <- err
		})
		wg.Wait() // one at a time: they share the socket's read deadline
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	// Many concurrent Do calls, each checking it is where it should be;
	// the machine's namespace never has these addresses.
	hasAddr := func(a netip.Addr) (bool, error) {
		addrs, err := net.InterfaceAddrs()
		for _, x := range addrs {
			if p, perr := netip.ParsePrefix(x.String()); perr == nil && p.Addr() == a {
				return true, err
			}
		}
		return false, err
	}
	namespaces := []*Namespace{tp.Public(), tp.Router(0), tp.Host(0), tp.Router(1), tp.Host(1)}
	errs = make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for k := range 20 {
				n := namespaces[(g+k)%len(namespaces)]
				err := n.Do(func() error {
					if ok, err := hasAddr(n.Addr()); !ok || err != nil {
						return fmt.Errorf("inside %s: no address %s (%v)", n, n.Addr(), err)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				if ok, _ := hasAddr(n.Addr()); ok {
					errs <- fmt.Errorf("after Do in %s: address %s outside it", n, n.Addr())
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A process started inside Do starts in the namespace.
	if err := tp.Host(1).Do(func() error {
		out, err := exec.Command("ip", "-4", "-br", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(string(out), tp.Host(1).Prefix().String()) {
			return fmt.Errorf("ip addr inside Do: %s", out)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	// Errors, panics and Goexit.
	sentinel := errors.New("sentinel")
	if err := tp.Host(1).Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want fn's panic", v)
			}
		}()
		_ = tp.Host(1).Do(func() error { panic("boom") })
		t.Error("Do returned after fn panicked")
	}()
	returned := make(chan bool, 1)
	go func() {
		ok := false
		defer func() { returned <- ok }()
		_ = tp.Host(1).Do(func() error { runtime.Goexit(); return nil })
		ok = true
	}()
	if <-returned {
		t.Error("Do returned after fn called runtime.Goexit")
	}
	// Still usable after all that.
	if ok, err := func() (bool, error) {
		var ok bool
		err := tp.Host(1).Do(func() (err error) { ok, err = hasAddr(tp.Host(1).Addr()); return err })
		return ok, err
	}(); !ok || err != nil {
		t.Errorf("Do after a panic and a Goexit: %v, %v", ok, err)
	}
}
