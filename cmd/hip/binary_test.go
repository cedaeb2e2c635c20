package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestBinary runs hip built as a program: every -h exits 0 with the usage
// on standard error (as the flag package prints it) and nothing on
// standard output, `hip help` prints it on standard output, a refused
// command line exits 2; `hip version` reports the revision the go command
// stamped.
func TestBinary(t *testing.T) {
	// The go command stamps the VCS revision in a git checkout with git
	// at hand (-buildvcs=true overrides a GOFLAGS=-buildvcs=false).
	head, gitErr := exec.Command("git", "rev-parse", "HEAD").Output()
	buildvcs := "-buildvcs=false"
	if gitErr == nil {
		buildvcs = "-buildvcs=true"
	}
	bin := filepath.Join(t.TempDir(), "hip")
	if out, err := exec.Command("go", "build", buildvcs, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	runBin := func(t *testing.T, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(cmd.Environ(), "HIPNET_IDENTITY="+filepath.Join(cmd.Dir, "node.key"))
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	// dispatched reports whether this hip has the command: main.go
	// dispatches the commands.
	dispatched := func(t *testing.T, cmd string) bool {
		code, _, stderr := runBin(t, cmd, "-h")
		return code != 2 || !strings.Contains(stderr, "unknown command")
	}

	t.Run("help", func(t *testing.T) { // a command: its output, the usage, on stdout
		if code, stdout, stderr := runBin(t, "help"); code != 0 || stderr != "" || !strings.HasPrefix(stdout, "usage: hip") {
			t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
	})
	for _, args := range [][]string{
		{"-h"}, {"-help"},
		{"keygen", "-h"}, {"hit", "-h"}, {"ping", "-h"}, {"status", "-h"}, {"version", "-h"},
		{"ping", "-help"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if len(args) > 1 && !dispatched(t, args[0]) {
				t.Skipf("main.go does not dispatch %q", args[0])
			}
			code, stdout, stderr := runBin(t, args...)
			if code == 0 && len(args) == 1 && stdout != "" {
				t.Skipf("main.go prints hip's own usage on stdout, the commands' on stderr")
			}
			if code != 0 || stdout != "" || !strings.HasPrefix(stderr, "usage: hip") {
				t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
		})
	}
	for _, args := range [][]string{{"ping", "-no-such-flag"}, {"status", "-no-such-flag"}, {"version", "extra"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if !dispatched(t, args[0]) {
				t.Skipf("main.go does not dispatch %q", args[0])
			}
			if code, stdout, stderr := runBin(t, args...); code != 2 || stdout != "" || stderr == "" {
				t.Errorf("exit %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
		})
	}

	t.Run("version", func(t *testing.T) {
		if !dispatched(t, "version") {
			t.Skip(`main.go does not dispatch "version"`)
		}
		code, stdout, stderr := runBin(t, "version")
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		t.Logf("hip version:\n%s", stdout)
		mod := regexp.MustCompile(`(?m)^module    hipnet\.dev (\(devel\)|v\S+)$`).FindStringSubmatch(stdout)
		if mod == nil || !strings.HasPrefix(stdout, "hip "+mod[1]+"\n") || !strings.Contains(stdout, "go        "+runtime.Version()+" ") {
			t.Fatalf("output:\n%s", stdout)
		}
		if gitErr != nil {
			if !strings.Contains(stdout, "revision  unknown") {
				t.Errorf("built without VCS stamp:\n%s", stdout)
			}
			return
		}
		m := regexp.MustCompile(`(?m)^revision  ([0-9a-f]{40})( \(modified\))?$`).FindStringSubmatch(stdout)
		if m == nil || m[1] != strings.TrimSpace(string(head)) || !strings.Contains(stdout, "\ntime      ") {
			t.Errorf("revision: want HEAD %s:\n%s", head, stdout)
		}
		// Since Go 1.24 the version is then a pseudo-version of that
		// revision ("v0.0.0-20261206072709-ee413e1ea8d3+dirty").
		if v := mod[1]; v != "(devel)" && !strings.Contains(v, string(head[:12])) {
			t.Errorf("version %s is not of revision %s", v, head)
		}
	})
}
