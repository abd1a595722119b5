package casework

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	w := &Worker{cfg: Config{RetryBase: time.Second, RetryMax: 10 * time.Second}}
	for n, want := range map[uint64]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 50: 10 * time.Second} {
		if got := w.backoff(n); got != want {
			t.Errorf("backoff(%d) = %s; want %s", n, got, want)
		}
	}
}
