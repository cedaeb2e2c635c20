//go:build !race

package hipnet

const raceEnabled = false
