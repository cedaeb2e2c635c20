package main

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version runs `hip version`: the module version and VCS revision the
// binary was built from, and the Go toolchain that built it, as
// runtime/debug.ReadBuildInfo reports them.
func version(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hip version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: hip version\n\nPrints the hipnet module version and VCS revision hip was built from,\nand the Go version that built it.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Errorf("version: unexpected argument %q", fs.Arg(0))}
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	_, err := io.WriteString(stdout, versionText(bi))
	return err
}

// versionText describes bi (nil: no build information, as in a binary
// built without module support):
//
//	hip v1.2.0
//	module    hipnet.dev v1.2.0
//	revision  9a8dba4c… (modified)
//	time      2026-12-06T05:27:03Z
//	go        go1.26.8 linux/amd64
//
// The version is the module's for `go install hipnet.dev/cmd/hip@v1.2.0`;
// built in a source tree, it is a pseudo-version of the checkout's
// revision ("v0.0.0-20261206072709-ee413e1ea8d3+dirty") or "(devel)"
// when the go command did not stamp the revision. The revision and its
// commit time are the checkout's when stamped (-buildvcs), "unknown"
// otherwise, "(modified)" when the tree had uncommitted changes.
func versionText(bi *debug.BuildInfo) string {
	mod, ver, goVer := "unknown", "unknown", runtime.Version()
	settings := map[string]string{}
	if bi != nil {
		if bi.Main.Path != "" {
			mod = bi.Main.Path
		}
		if bi.Main.Version != "" {
			ver = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVer = bi.GoVersion
		}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
	}
	goos, goarch := settings["GOOS"], settings["GOARCH"]
	if goos == "" {
		goos, goarch = runtime.GOOS, runtime.GOARCH
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		rev = "unknown (not stamped: built outside a VCS checkout, or with -buildvcs=false)"
	} else if settings["vcs.modified"] == "true" {
		rev += " (modified)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hip %s\n", ver)
	fmt.Fprintf(&b, "module    %s %s\n", mod, ver)
	fmt.Fprintf(&b, "revision  %s\n", rev)
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(&b, "time      %s\n", t)
	}
	fmt.Fprintf(&b, "go        %s %s/%s\n", goVer, goos, goarch)
	return b.String()
}
