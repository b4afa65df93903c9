//go:build race

package conntrack

// raceEnabled: the race detector multiplies memory use; the 10M-flow test
// skips under it.
const raceEnabled = true
