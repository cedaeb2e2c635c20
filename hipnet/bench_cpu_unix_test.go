//go:build unix

package hipnet

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user and system) the process has used so far:
// both ends of a loopback benchmark run in it, so a difference is what
// one transfer cost the two hosts together.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
