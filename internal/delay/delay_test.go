package delay

import (
	"testing"
	"time"
)

func TestDoubling(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{-1, time.Second}, {0, time.Second}, {1, 2 * time.Second}, {3, 8 * time.Second}, {4, 10 * time.Second}, {100, 10 * time.Second}} {
		if got := Doubling(time.Second, 10*time.Second, tt.n); got != tt.want {
			t.Errorf("Doubling(1s, 10s, %d) = %v; want %v", tt.n, got, tt.want)
		}
	}
}

func TestJittered(t *testing.T) {
	for range 1000 {
		if got := Jittered(100*time.Millisecond, 0.25); got < 100*time.Millisecond || got > 125*time.Millisecond {
			t.Fatalf("Jittered(100ms, 0.25) = %v; want 100ms..125ms", got)
		}
	}
	if Jittered(time.Second, 0) != time.Second || Jittered(0, 0.5) != 0 {
		t.Error("no jitter asked, some given")
	}
}
