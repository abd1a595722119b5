// Package delay computes how long to wait before the n-th retry of
// something that keeps failing: one doubling rule for the worker's
// redeliveries, a case's next wake after failed inputs and the publishers'
// reconnects. (The API client's retries within one call use
// cenkalti/backoff, which also honours the server's Retry-After.)
package delay

import (
	"math/rand/v2"
	"time"
)

// Doubling returns base·2^n, capped at limit; n below 0 counts as 0.
func Doubling(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Jittered adds up to frac·d of random delay to d, so that many processes
// that failed together do not retry in step.
func Jittered(d time.Duration, frac float64) time.Duration {
	if d <= 0 || frac <= 0 {
		return d
	}
	return d + rand.N(time.Duration(float64(d)*frac)+1)
}
