//go:build race

package hipnet

// raceEnabled: the race detector slows the stream transports' user-space
// work several times over, so tests that time a transfer allow for it.
const raceEnabled = true
