//go:build !linux

package overlay

const batchingPlatform = false
