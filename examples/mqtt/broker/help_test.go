package main

import (
	"testing"

	"hipnet.dev/internal/clitest"
)

// TestHelp: broker -h, run as a program, prints its usage on standard
// error, as the flag package does, and exits 0; a refused command line is
// explained there too, and exits 2.
func TestHelp(t *testing.T) {
	clitest.Help(t, "broker", "-relay", "2001:20::1@127.0.0.1:10500")
}
