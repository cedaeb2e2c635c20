package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvE2E is the environment variable that makes Require fail, not skip, a
// test when namespaces are not available. `make e2e` sets it to "1".
const EnvE2E = "HIPNET_E2E"

// runDir is where `ip netns add` mounts named namespaces (iproute2's
// NETNS_RUN_DIR); Debian's /var/run is a link to /run.
const runDir = "/var/run/netns"

// cmdTimeout bounds every ip, iptables and conntrack command this package
// runs, so a wedged command fails the test instead of hanging it.
const cmdTimeout = 30 * time.Second

// Namespace is a named network namespace created by this package.
type Namespace struct {
	name string
	link string // primary interface

	mu     sync.Mutex
	addr   netip.Prefix // primary address on link; Renumber and Move change a host's
	more   []Interface  // the other interfaces that hold an address
	routes []route      // the routes this package installed, for SetInterfaceUp
}

// Interface is a network interface of a namespace and the address this
// package gave it.
type Interface struct {
	Name   string       // "eth0", "eth1", "lan0", "br0", ...
	Prefix netip.Prefix // its address, with the length of its subnet
}

// route is a route this package installed: the arguments of `ip route
// replace` (with "dev"), and that interface. Linux deletes the routes
// through an interface that goes down and does not bring them back with it,
// so SetInterfaceUp installs them again.
type route struct {
	dev  string
	spec string
}

// Name is the namespace's name, as `ip netns list` shows it.
func (n *Namespace) Name() string { return n.name }

// Addr is the namespace's primary address: a host's only address, a router's
// public one. It is the zero Addr for the switch namespace. Renumber and Move
// change a host's.
func (n *Namespace) Addr() netip.Addr { return n.Prefix().Addr() }

// Prefix is the primary address with the length of its subnet.
func (n *Namespace) Prefix() netip.Prefix {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.addr
}

// Interfaces returns the interfaces that hold the namespace's addresses,
// the primary one (Link, Addr) first: a host's eth0; the peer's eth0 and,
// with Spec.MultihomedPeer, eth1; a router's public eth0, then one
// interface per host link it serves (lan0 for its own host's, lan-h<h> for
// host h visiting it after Move); the switch's br0 and br1 only when it is
// the core router of Spec.MultihomedPeer. Loopback is left out.
func (n *Namespace) Interfaces() []Interface {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ifs []Interface
	if n.addr.IsValid() {
		ifs = append(ifs, Interface{Name: n.link, Prefix: n.addr})
	}
	return append(ifs, n.more...)
}

// setAddr changes the primary address.
func (n *Namespace) setAddr(p netip.Prefix) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addr = p
}

// setInterface adds, replaces or (with the zero prefix) removes one of the
// other interfaces.
func (n *Namespace) setInterface(name string, p netip.Prefix) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.more = slices.DeleteFunc(n.more, func(i Interface) bool { return i.Name == name })
	if p.IsValid() {
		n.more = append(n.more, Interface{Name: name, Prefix: p})
	}
}

// addRoute records a route that the caller installs, for SetInterfaceUp.
func (n *Namespace) addRoute(dev, spec string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.routes = append(n.routes, route{dev: dev, spec: spec})
}

// dropRoute forgets a route that the caller removed.
func (n *Namespace) dropRoute(spec string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.routes = slices.DeleteFunc(n.routes, func(r route) bool { return r.spec == spec })
}

// Link is the name of the interface that holds Addr: "eth0" (a router's
// public interface; its LAN interface is "lan0").
func (n *Namespace) Link() string { return n.link }

func (n *Namespace) String() string { return n.name }

// path is the namespace file that Do opens.
func (n *Namespace) path() string { return runDir + "/" + n.name }

// Do runs fn on an OS thread switched into the namespace and returns fn's
// error. It runs fn on a goroutine of its own, locked to its thread, and
// waits for it. A panic in fn is raised again in the caller, and if fn calls
// runtime.Goexit (as t.Fatal does) so does Do, so t.Fatal inside fn ends
// the test as it would outside.
//
// Sockets that fn creates belong to the namespace for their whole life: they
// keep working, in the namespace, from any goroutine after Do returns.
// Processes that fn starts (os/exec) start in the namespace too; goroutines
// that fn starts do not.
//
// After fn returns, Do switches the thread back to the namespace it came
// from. If that fails, Do returns the error and leaves the thread locked,
// so the runtime retires it when the goroutine exits instead of reusing a
// thread that is in the wrong namespace.
func (n *Namespace) Do(fn func() error) error {
	type result struct {
		err      error
		panicked bool
		value    any
		exited   bool // fn called runtime.Goexit (t.FailNow, for one)
	}
	done := make(chan result, 1)
	go func() {
		r := result{exited: true}
		defer func() { done <- r }()
		runtime.LockOSThread()
		restore, err := enter(n.path())
		if err != nil {
			runtime.UnlockOSThread()
			r = result{err: fmt.Errorf("netns: enter %s: %w", n.name, err)}
			return
		}
		defer func() {
			if err := restore(); err != nil {
				r.err = errors.Join(r.err, fmt.Errorf("netns: leave %s: %w (thread retired)", n.name, err))
				return // still locked: the thread ends with this goroutine
			}
			runtime.UnlockOSThread()
		}()
		defer func() {
			if v := recover(); v != nil {
				r = result{panicked: true, value: v}
			}
		}()
		r.err = fn()
		r.exited = false
	}()
	r := <-done
	switch {
	case r.panicked:
		panic(r.value)
	case r.exited && r.err == nil:
		runtime.Goexit()
	}
	return r.err
}

// ListenPacket is net.ListenPacket run inside the namespace: the socket it
// returns lives there.
func (n *Namespace) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := n.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}

// Command returns a command that runs name with args inside the namespace,
// by way of `ip netns exec`.
func (n *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// Exec runs name with args inside the namespace (`ip netns exec`) and
// returns its combined output; the error, if any, quotes that output.
func (n *Namespace) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := n.Command(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netns: %s: %w: %s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// SetLinkUp sets the namespace's primary interface (Link) up or down; for a
// router that cuts or restores its public side. Linux also forgets a NAT
// router's MASQUERADE mappings when its public interface goes down, so
// after down and up a RandomFully site gets new public ports. It is
// SetInterfaceUp(Link(), up).
func (n *Namespace) SetLinkUp(up bool) error {
	return n.SetInterfaceUp(n.link, up)
}

// SetInterfaceUp sets one interface of the namespace (a name from
// Interfaces) up or down. Down, the interface's addresses stop working and
// Linux deletes every route through it; up, SetInterfaceUp installs again
// the routes this package had put through it (a host's default route, the
// routes to the LANs of sites without NAT, the peer's second-segment
// routes), which Linux does not.
func (n *Namespace) SetInterfaceUp(name string, up bool) error {
	if !up {
		return run("", "ip", "-n", n.name, "link", "set", name, "down")
	}
	var cmd strings.Builder
	fmt.Fprintf(&cmd, "link set %s up\n", name)
	n.mu.Lock()
	for _, r := range n.routes {
		if r.dev == name {
			fmt.Fprintf(&cmd, "route replace %s\n", r.spec)
		}
	}
	n.mu.Unlock()
	return run(cmd.String(), "ip", "-n", n.name, "-batch", "-")
}

// FlushConntrack deletes every conntrack entry of the namespace, which for
// a router drops all its NAT mappings at once (as a NAT reboot would). A
// RandomFully site then gives a flow a new random port, but an
// EndpointIndependent one usually the same port again (MASQUERADE keeps the
// private port when it is free): Topology.Rebind guarantees a new one. It
// needs the conntrack tool; without it the error wraps exec.ErrNotFound, for
// the caller to skip.
func (n *Namespace) FlushConntrack() error {
	if _, err := exec.LookPath("conntrack"); err != nil {
		return fmt.Errorf("netns: flushing conntrack needs the conntrack tool (Debian package conntrack): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	_, err := n.Exec(ctx, "conntrack", "-F")
	return err
}

// writeSysctl sets a sysctl of the namespace, such as
// "net/ipv4/ip_forward", by writing /proc/sys from a thread inside it
// (network sysctls are those of the writing thread's namespace).
func (n *Namespace) writeSysctl(key, value string) error {
	return n.Do(func() error {
		return os.WriteFile("/proc/sys/"+key, []byte(value), 0)
	})
}

// run runs a command with stdin as its standard input and returns an error
// that quotes its output when it fails.
func run(stdin, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Names: "hn" + pid + "-" + sequence + "-" + role, the numbers in base 36,
// such as "hn1f3x-0-r1". The process ID lets a later run tell a namespace
// that a dead process left behind from one that a running test owns.
const namePrefix = "hn"

var (
	seqMu sync.Mutex
	seq   int
)

// runPrefix returns a prefix for one topology's namespaces, unique among the
// live processes of the machine.
func runPrefix() string {
	seqMu.Lock()
	defer seqMu.Unlock()
	s := seq
	seq++
	return namePrefix + strconv.FormatInt(int64(os.Getpid()), 36) + "-" + strconv.FormatInt(int64(s), 36) + "-"
}

// ownerPID returns the ID of the process that created the namespace named
// name, and false if the name is not one of this package's.
func ownerPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return 0, false
	}
	for _, p := range parts {
		for _, c := range p {
			if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
				return 0, false
			}
		}
	}
	pid, err := strconv.ParseInt(parts[0], 36, 32)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return int(pid), true
}

// listNames returns the names of all named network namespaces.
func listNames() ([]string, error) {
	entries, err := os.ReadDir(runDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

// removeStale deletes this package's namespaces whose creating process no
// longer exists, and returns their names.
func removeStale() ([]string, error) {
	names, err := listNames()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range names {
		pid, ok := ownerPID(name)
		if !ok || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := deleteNamespace(name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

var staleOnce sync.Once

// deleteNamespace deletes a named namespace; one that is already gone (a
// concurrent cleaner got there first) is no error.
func deleteNamespace(name string) error {
	err := run("", "ip", "netns", "del", name)
	if err != nil {
		if _, statErr := os.Stat(runDir + "/" + name); errors.Is(statErr, os.ErrNotExist) {
			return nil
		}
	}
	return err
}

var (
	availableOnce sync.Once
	availableErr  error
)

// Available returns nil if this process can build topologies: it runs on
// Linux as root, finds ip and iptables, and can create a namespace, a veth
// pair and a bridge in it, set its sysctls from Do, and load the MASQUERADE
// --random-fully and conntrack rules the routers use. Otherwise it says what
// is missing. The probe runs once per process, in a namespace it removes.
func Available() error {
	availableOnce.Do(func() { availableErr = probe() })
	return availableErr
}

func probe() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("netns: network namespaces need Linux, not %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		return errors.New("netns: creating network namespaces needs root (run as root, e.g. `sudo make e2e`)")
	}
	for _, tool := range []string{"ip", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netns: %s not found (Debian packages iproute2 and iptables): %w", tool, err)
		}
	}
	staleOnce.Do(func() { _, _ = removeStale() })
	ns := &Namespace{name: runPrefix() + "av", link: "a0"}
	if err := run("", "ip", "netns", "add", ns.name); err != nil {
		return fmt.Errorf("netns: cannot create a network namespace: %w", err)
	}
	defer func() { _ = deleteNamespace(ns.name) }()
	steps := []struct {
		what string
		do   func() error
	}{
		{"create a veth pair and a bridge", func() error {
			return run("link add a0 type veth peer name a1\nlink add b0 type bridge\nlink set a1 master b0\n",
				"ip", "-n", ns.name, "-batch", "-")
		}},
		{"enter it from Go (setns)", func() error {
			return ns.Do(func() error {
				ifs, err := net.Interfaces()
				if err != nil {
					return err
				}
				if len(ifs) != 4 { // lo, a0, a1, b0
					return fmt.Errorf("saw %d interfaces inside, want 4", len(ifs))
				}
				return nil
			})
		}},
		{"set its sysctls", func() error { return ns.writeSysctl("net/ipv4/ip_forward", "1") }},
		{"load NAT rules with iptables (MASQUERADE --random-fully, conntrack match)", func() error {
			return run(routerRules(RandomFully), "ip", "netns", "exec", ns.name, "iptables-restore")
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("netns: cannot %s in a namespace: %w", s.what, err)
		}
	}
	return nil
}

// Require skips t when Available reports an error, or fails it instead when
// the environment variable HIPNET_E2E is "1" (as `make e2e` sets it).
func Require(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv(EnvE2E) == "1" {
		t.Fatalf("%v (%s=1: end-to-end tests must run, not skip)", err, EnvE2E)
	}
	t.Skipf("%v (skipping; %s=1 makes this a failure)", err, EnvE2E)
}
