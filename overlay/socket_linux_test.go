package overlay

const batchingPlatform = true
