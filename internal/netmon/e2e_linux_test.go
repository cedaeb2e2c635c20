package netmon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// End-to-end tests: a real Monitor in a network namespace of its own,
// watching a veth pair that the test changes with ip(8). They need root
// and iproute2; without them they skip, unless HIPNET_E2E=1 (as `make
// e2e` sets it, like internal/netns.EnvE2E), which makes them fail. Every
// address they add is inside 10.250.0.0/16 or fd00:250::/64, and only
// inside the namespace; the namespace has no link to any other.
//
// The kernel of the project's machines has no dummy driver, so the
// interface under test is one end of a veth pair whose other end is in
// the same namespace.

const e2eEnv = "HIPNET_E2E"

// changeWithin is how long a change may take to be reported: Settle 50 ms,
// plus up to a second for the kernel's linkwatch to report a carrier.
const changeWithin = 2 * time.Second

// quiet is how long a no-op is watched for a Changes that must not come.
const quiet = 500 * time.Millisecond

// skipOrFail skips t, or fails it when HIPNET_E2E is 1.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if os.Getenv(e2eEnv) == "1" {
		t.Fatalf("netmon: %s (%s=1: end-to-end tests must run, not skip)", why, e2eEnv)
	}
	t.Skipf("netmon: %s (skipping; %s=1 makes this a failure)", why, e2eEnv)
}

// testNS is a network namespace that a test created with `ip netns add`.
type testNS struct{ name string }

// Namespace names: "hipnetmon-<pid>-<seq>", so that a later run can tell
// the leftovers of a killed process from another test binary's.
const nsPrefix = "hipnetmon-"

var (
	nsSeq       atomic.Int64
	removeStale sync.Once
)

// newTestNS creates a namespace holding a veth pair d0 and d0p, both up,
// without addresses (but the kernel's IPv6 link-local ones), and deletes
// it when the test ends.
func newTestNS(t *testing.T) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skipOrFail(t, "the ip command (iproute2) is missing: %v", err)
	}
	removeStale.Do(removeStaleNamespaces)
	ns := &testNS{name: nsPrefix + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(nsSeq.Add(1), 10)}
	if out, err := ipCmd("netns", "add", ns.name); err != nil {
		skipOrFail(t, "cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := ipCmd("netns", "del", ns.name); err != nil {
			t.Errorf("deleting namespace %s: %v: %s", ns.name, err, out)
		}
	})
	if out, err := ns.ipErr("link", "add", "d0", "type", "veth", "peer", "name", "d0p"); err != nil {
		skipOrFail(t, "cannot create a veth pair in a namespace: %v: %s", err, out)
	}
	ns.ip(t, "link", "set", "d0", "up")
	ns.ip(t, "link", "set", "d0p", "up")
	return ns
}

// removeStaleNamespaces deletes the namespaces of earlier test processes
// that no longer exist (killed before their cleanup ran).
func removeStaleNamespaces() {
	entries, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || !errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			continue
		}
		_, _ = ipCmd("netns", "del", e.Name())
	}
}

func ipCmd(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	return bytes.TrimSpace(out), err
}

// ipErr runs `ip -n <namespace> args...`.
func (ns *testNS) ipErr(args ...string) ([]byte, error) {
	return ipCmd(append([]string{"-n", ns.name}, args...)...)
}

// ip runs `ip -n <namespace> args...` and fails t if it fails.
func (ns *testNS) ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ns.ipErr(args...)
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns.name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// do runs fn on a goroutine locked to an OS thread that is switched into
// the namespace, and switches the thread back afterwards (or, if that
// fails, leaves it locked so that it ends with the goroutine).
func (ns *testNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/var/run/netns/"+ns.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns into %s: %w", ns.name, err)
			return
		}
		err = fn()
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			errc <- errors.Join(err, fmt.Errorf("setns back: %w (thread retired)", rerr))
			return // still locked: the runtime ends the thread with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// monitor starts a Monitor inside the namespace (New is called on a
// thread switched into it, then the thread switches back) and closes it
// when the test ends, checking that no goroutine is left.
func (ns *testNS) monitor(t *testing.T, opts Options) *Monitor {
	t.Helper()
	var m *Monitor
	if err := ns.do(func() (err error) {
		m, err = New(opts)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, m)
	if m.src.notify == nil {
		t.Fatal("the monitor polls: netlink notifications did not open")
	}
	return m
}

func closeAtEnd(t *testing.T, m *Monitor) {
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if k := monitorGoroutines(0); k != 0 {
			t.Errorf("%d monitor goroutines left after Close", k)
		}
	})
}

// TestE2EMonitor walks one interface through what a mobile host sees:
// addresses come and go, one is deprecated and then preferred again, the
// carrier drops and returns, the link goes down and up and away. Each
// change is reported within changeWithin with the right set; changes that
// leave the usable set as it was (no-ops) are not reported.
func TestE2EMonitor(t *testing.T) {
	ns := newTestNS(t)
	// Poll of an hour: a change seen here came from a notification.
	m := ns.monitor(t, Options{Settle: 50 * time.Millisecond, Poll: time.Hour, Logger: testLogger(t)})

	// The namespace has only the kernel's link-local addresses (and a
	// loopback that is down), while the test's own namespace has its own:
	// the monitor watches the namespace New was called in, although its
	// goroutine runs on threads of the test's.
	if got := m.Addrs(); len(got) != 0 {
		t.Fatalf("Addrs in a fresh namespace = %v, want none", got)
	}

	step := func(what string, want []string, ipArgs ...[]string) {
		t.Helper()
		for _, a := range ipArgs {
			ns.ip(t, a...)
		}
		expectChange(t, m, changeWithin, addrs(want...), what)
	}
	noop := func(what string, ipArgs ...[]string) {
		t.Helper()
		before := m.Addrs()
		for _, a := range ipArgs {
			ns.ip(t, a...)
		}
		expectNoChange(t, m, quiet, before, what)
	}

	step("IPv4 address added", []string{"10.250.0.1"}, []string{"addr", "add", "10.250.0.1/24", "dev", "d0"})
	// nodad: usable at once; duplicate address detection has its own test.
	step("IPv6 address added", []string{"10.250.0.1", "fd00:250::1"}, []string{"addr", "add", "fd00:250::1/64", "dev", "d0", "nodad"})

	// No-ops.
	if out, err := ns.ipErr("addr", "add", "10.250.0.1/24", "dev", "d0"); err == nil {
		t.Fatal("adding a present address again succeeded")
	} else {
		t.Logf("adding a present address again fails, as it should: %s", out)
	}
	expectNoChange(t, m, quiet, addrs("10.250.0.1", "fd00:250::1"), "a present address added again")
	noop("MTU and alias changed", []string{"link", "set", "d0", "mtu", "1400"}, []string{"link", "set", "d0", "alias", "hip"})
	noop("a deprecated address added", []string{"addr", "add", "10.250.0.9/24", "dev", "d0", "preferred_lft", "0"})
	noop("an address on a link that is down",
		[]string{"link", "add", "d1", "type", "veth", "peer", "name", "d1p"},
		[]string{"addr", "add", "10.250.1.1/24", "dev", "d1"})

	step("the deprecated address preferred again", []string{"10.250.0.1", "10.250.0.9", "fd00:250::1"},
		[]string{"addr", "change", "10.250.0.9/24", "dev", "d0", "preferred_lft", "forever"})
	step("IPv6 address removed", []string{"10.250.0.1", "10.250.0.9"}, []string{"addr", "del", "fd00:250::1/64", "dev", "d0"})
	step("IPv4 address removed", []string{"10.250.0.1"}, []string{"addr", "del", "10.250.0.9/24", "dev", "d0"})
	step("carrier lost (the peer end down)", nil, []string{"link", "set", "d0p", "down"})
	step("carrier back", []string{"10.250.0.1"}, []string{"link", "set", "d0p", "up"})
	step("link down", nil, []string{"link", "set", "d0", "down"})
	step("link up", []string{"10.250.0.1"}, []string{"link", "set", "d0", "up"})
	step("link deleted", nil, []string{"link", "del", "d0"})
}

// TestE2EDuplicateAddressDetection: an IPv6 address is not usable while
// duplicate address detection runs (IFA_F_TENTATIVE) and becomes usable,
// with a Changes, when it ends; one whose detection finds another holder
// (IFA_F_DADFAILED) never becomes usable.
func TestE2EDuplicateAddressDetection(t *testing.T) {
	ns := newTestNS(t)
	m := ns.monitor(t, Options{Settle: 50 * time.Millisecond, Poll: time.Hour, Logger: testLogger(t)})

	ns.ip(t, "addr", "add", "fd00:250::2/64", "dev", "d0")
	// Detection takes at least a second (one probe, RetransTimer 1 s).
	expectNoChange(t, m, 300*time.Millisecond, nil, "a tentative address added")
	if out := ns.ip(t, "addr", "show", "dev", "d0", "to", "fd00:250::2"); !strings.Contains(out, "tentative") {
		t.Fatalf("the address is not tentative, so this tests nothing:\n%s", out)
	}
	// Up to a second of random delay before the probe, a second after it.
	expectChange(t, m, 4*time.Second, addrs("fd00:250::2"), "duplicate address detection succeeded")

	// The peer end holds fd00:250::3, deprecated so that it is not in the
	// set; adding it to d0 too makes d0's detection fail.
	ns.ip(t, "addr", "add", "fd00:250::3/64", "dev", "d0p", "nodad", "preferred_lft", "0")
	ns.ip(t, "addr", "add", "fd00:250::3/64", "dev", "d0")
	expectNoChange(t, m, 4*time.Second, addrs("fd00:250::2"), "an address whose detection fails")
	if out := ns.ip(t, "addr", "show", "dev", "d0", "to", "fd00:250::3"); !strings.Contains(out, "dadfailed") {
		t.Fatalf("duplicate address detection did not fail, so this tests nothing:\n%s", out)
	}
}

// TestE2EOverrun: when the kernel drops notifications because the
// receive buffer is full, the notifier says so (errOverrun, from ENOBUFS),
// and a monitor whose buffer overflows still ends with the right set
// (here 500 addresses, read in a dump of several datagrams).
func TestE2EOverrun(t *testing.T) {
	ns := newTestNS(t)
	// The smallest buffer the kernel allows (it raises 1 to its minimum).
	const rcvbuf = 1
	batch := func(cmd string, n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "addr %s 10.250.%d.%d/32 dev d0\n", cmd, 2+i/250, 1+i%250)
		}
		return b.String()
	}
	runBatch := func(script string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", "-n", ns.name, "-batch", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ip -batch: %v: %s", err, out)
		}
	}

	t.Run("notifier", func(t *testing.T) {
		var n *nlNotifier
		if err := ns.do(func() (err error) {
			n, err = openNotifier(rcvbuf)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		runBatch(batch("add", 100)) // nobody reads meanwhile
		buf := make([]byte, 8192)
		for {
			if err := n.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			_, err := n.Read(buf)
			if errors.Is(err, errOverrun) {
				if !errors.Is(err, unix.ENOBUFS) {
					t.Errorf("errOverrun does not wrap ENOBUFS: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read: %v; want errOverrun before the notifications run out", err)
			}
		}
	})
	runBatch(batch("del", 100))

	t.Run("monitor", func(t *testing.T) {
		var m *Monitor
		if err := ns.do(func() error {
			d, err := newDumper()
			if err != nil {
				return err
			}
			n, err := openNotifier(rcvbuf)
			if err != nil {
				d.close()
				return err
			}
			o, _ := Options{Settle: 50 * time.Millisecond, Poll: time.Hour, Logger: testLogger(t)}.normalize()
			m, err = newMonitor(o, source{read: d.read, notify: n, close: d.close})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		closeAtEnd(t, m)
		const count = 500
		runBatch(batch("add", count))
		deadline := time.Now().Add(5 * time.Second)
		for len(m.Addrs()) != count {
			if !waitChange(m, time.Until(deadline)) {
				t.Fatalf("%d addresses after adding %d with an overflowing buffer", len(m.Addrs()), count)
			}
		}
		runBatch(batch("del", count))
		deadline = time.Now().Add(5 * time.Second)
		for len(m.Addrs()) != 0 {
			if !waitChange(m, time.Until(deadline)) {
				t.Fatalf("%d addresses left after removing all", len(m.Addrs()))
			}
		}
	})
}
