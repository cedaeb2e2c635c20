//go:build race

package locator

// raceEnabled: the race detector's instrumentation allocates, so the
// AllocsPerRun tests skip themselves.
const raceEnabled = true
