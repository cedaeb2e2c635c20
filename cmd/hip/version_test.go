package main

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionText: the module version, the VCS revision with its time and
// whether the tree was modified, and the Go version, as ReadBuildInfo
// gives them; "unknown" for what it does not.
func TestVersionText(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "hipnet.dev", Version: "v1.2.0"},
		Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "9a8dba4c0ffee9a8dba4c0ffee9a8dba4c0ffee0"},
			{Key: "vcs.time", Value: "2026-12-06T05:27:03Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	want := "hip v1.2.0\n" +
		"module    hipnet.dev v1.2.0\n" +
		"revision  9a8dba4c0ffee9a8dba4c0ffee9a8dba4c0ffee0 (modified)\n" +
		"time      2026-12-06T05:27:03Z\n" +
		"go        go1.26.8 linux/arm64\n"
	if got := versionText(bi); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	bi.Settings = bi.Settings[:2] // no VCS stamp
	if got := versionText(bi); !strings.Contains(got, "revision  unknown (not stamped") || strings.Contains(got, "time") {
		t.Errorf("without VCS:\n%s", got)
	}
	if got := versionText(nil); !strings.HasPrefix(got, "hip unknown\n") || !strings.Contains(got, "go        "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH+"\n") {
		t.Errorf("without build information:\n%s", got)
	}
}

// TestVersionCommand: `hip version` prints this binary's module and Go
// version (a test binary has no VCS stamp: TestBinary checks the
// revision of a real build).
func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if err := version(nil, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"module    hipnet.dev ", "go        " + runtime.Version() + " "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := version([]string{"extra"}, &out, &errb); err == nil {
		t.Error("an argument was accepted")
	}
}
