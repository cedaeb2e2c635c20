package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelp: broker -h, run as a program, prints its usage on standard
// error, as the flag package does, and exits 0; a refused command line is
// explained there too, and exits 2.
func TestHelp(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "broker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		args  []string
		code  int
		usage bool // the whole usage, not one line
	}{
		{[]string{"-h"}, 0, true},
		{[]string{"-help"}, 0, true},
		{[]string{"-no-such-flag"}, 2, true},
		{[]string{"-relay", "2001:20::1@127.0.0.1:10500"}, 2, false},
	} {
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, tc.args...)
		cmd.Dir = t.TempDir() // where a refused command line would create no identity file
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || out.Len() != 0 || errb.Len() == 0 || tc.usage != strings.Contains(errb.String(), "usage: broker") {
			t.Errorf("broker %q: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, out.String(), errb.String())
		}
	}
}
