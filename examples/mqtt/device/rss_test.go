package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hipnet.dev/examples/mqtt/internal/testnet"
	"hipnet.dev/hipnet"
)

// rssGoal is the resident memory the device may use, idle with one
// association.
const rssGoal = 24 << 20

// TestDeviceRSS (HIPNET_RSSTEST=1, Linux) builds the device as shipped
// (CGO_ENABLED=0, -ldflags='-s -w'), runs it against a relay and a
// broker on loopback, lets it sit idle for 10 s after its first message
// (HIPNET_RSSIDLE overrides) and reads VmRSS from /proc/<pid>/status.
// Then SIGTERM must stop it cleanly.
func TestDeviceRSS(t *testing.T) {
	if os.Getenv("HIPNET_RSSTEST") != "1" {
		t.Skip("set HIPNET_RSSTEST=1 to measure the device's resident memory")
	}
	idle := 10 * time.Second
	if s := os.Getenv("HIPNET_RSSIDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		idle = d
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "device")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key := filepath.Join(dir, "device.key")
	id, err := hipnet.LoadOrCreateIdentity(key)
	if err != nil {
		t.Fatal(err)
	}
	r, relaySpec := testnet.Relay(t, nil)
	bnode, _, msgs := broker(t, r, relaySpec, nil, id.HIT())

	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-identity", key, "-listen", "127.0.0.1:0", "-relay", relaySpec,
		"-broker", bnode.HIT().String(), "-interval", "1h")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	receive(t, msgs, id.HIT(), 1, 1, 30*time.Second)
	time.Sleep(idle)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	rss, hwm := statusKB(t, status, "VmRSS"), statusKB(t, status, "VmHWM")
	t.Logf("FIGURE device VmRSS=%.1f MiB VmHWM=%.1f MiB (idle %v, associated with the broker and the relay)", float64(rss)/1024, float64(hwm)/1024, idle)
	if rss*1024 > rssGoal {
		t.Errorf("VmRSS %d kB above the goal of %d MiB", rss, rssGoal>>20)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("device after SIGTERM: %v\n%s", err, stderr.Bytes())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("device did not stop within 10 s of SIGTERM")
	}
}

// statusKB reads a "Name:   123 kB" line of /proc/<pid>/status.
func statusKB(t *testing.T, status []byte, name string) int {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in status", name)
	return 0
}
