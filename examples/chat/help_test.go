package main

import (
	"testing"

	"hipnet.dev/internal/clitest"
)

// TestHelp: chat -h, run as a program, prints its usage on standard
// error, as the flag package does, and exits 0; a refused command line is
// explained there too, and exits 2.
func TestHelp(t *testing.T) {
	clitest.Help(t, "chat", "extra")
}
