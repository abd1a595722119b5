//go:build race

package intake_test

// raceEnabled: under the race detector sync.Pool drops a random share of
// what is put back, so allocation counts of pooled paths mean nothing.
const raceEnabled = true
