package refundflow

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	for n, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 2: 4 * time.Second, 3: 8 * time.Second,
		4: 10 * time.Second, 1000: 10 * time.Second} {
		if got := backoff(time.Second, 10*time.Second, n); got != want {
			t.Errorf("backoff(1s, 10s, %d) = %s; want %s", n, got, want)
		}
	}
}
