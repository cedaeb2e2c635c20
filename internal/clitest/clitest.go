package clitest

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Build builds the command in the test's working directory as name, in a
// directory of the test's own, and returns the program's path.
func Build(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Help builds the command name and checks that, run as a program, it
// prints its whole usage ("usage: name ...") on standard error, as the
// flag package does, and exits 0 for -h and -help; prints it too and
// exits 2 for an unknown flag; and explains the refused command line
// refused on standard error, without the usage, and exits 2. Nothing may
// go to standard output. Each run is in a fresh directory, where a refused
// command line would create no identity file.
func Help(t *testing.T, name string, refused ...string) {
	t.Helper()
	bin := Build(t, name)
	for _, tc := range []struct {
		args  []string
		code  int
		usage bool // the whole usage, not one line
	}{
		{[]string{"-h"}, 0, true},
		{[]string{"-help"}, 0, true},
		{[]string{"-no-such-flag"}, 2, true},
		{refused, 2, false},
	} {
		var out, errb bytes.Buffer
		cmd := exec.Command(bin, tc.args...)
		cmd.Dir = t.TempDir()
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || out.Len() != 0 || errb.Len() == 0 || tc.usage != strings.Contains(errb.String(), "usage: "+name) {
			t.Errorf("%s %q: exit %d, want %d\nstdout: %s\nstderr: %s", name, tc.args, code, tc.code, out.String(), errb.String())
		}
	}
}
