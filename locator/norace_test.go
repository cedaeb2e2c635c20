//go:build !race

package locator

const raceEnabled = false
