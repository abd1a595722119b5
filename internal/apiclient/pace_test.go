package apiclient

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/platform"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time                { return c.t }
func (c *fakeClock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

func near(a, b rate.Limit) bool { return math.Abs(float64(a-b)) < 1e-6 }

func TestPaceCutsOnRateLimitsAndClimbsBack(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	var logs bytes.Buffer
	p := newPace(20, 1, 10, time.Minute, 5*time.Second, clk.now, slog.New(slog.NewJSONHandler(&logs, nil)))
	if r := p.Rate(); r != 20 {
		t.Fatalf("rate before any answer %v; want the ceiling 20", r)
	}

	// Nothing measured yet: the cut halves the rate.
	sent := clk.t
	p.throttled(sent, 0)
	if r := p.Rate(); !near(r, 10) {
		t.Fatalf("rate after the first rate-limited answer %v; want 10 (half of 20)", r)
	}
	if tokens := p.lim.TokensAt(clk.t); tokens > 0 {
		t.Errorf("%v tokens saved at the old rate are left after the cut; want none", tokens)
	}
	// Another answer to an attempt sent before that cut: the same news.
	p.throttled(sent, 0)
	if r := p.Rate(); !near(r, 10) {
		t.Fatalf("rate after a second answer from before the cut %v; want still 10", r)
	}

	// The first half-second so far, once 100 ms of it passed: 3 answers
	// in 200 ms, 15 per second, above the rate (10 climbed by 20/min for
	// 0.2 s): 0.7 of the rate.
	for range 3 {
		p.answered()
	}
	p.throttled(clk.add(paceBucket*2/5), 0)
	if r := p.Rate(); !near(r, 0.7*(10+20*0.2/60)) {
		t.Fatalf("rate after a cut 200 ms into the first half-second %v; want 0.7 of the rate", r)
	}
	clk.add(paceBucket * 3 / 5) // the first bucket ends: 3 answers, 6/s

	// Then the platform takes 4 calls per second for a second: the
	// average leans to it (0.8 of the last bucket), and the next cut leaves
	// 0.7 of that, not of the rate (7.05 climbed for 1.3 s: 7.48).
	for range 2 {
		for range 2 {
			p.answered()
		}
		clk.add(paceBucket)
	}
	p.answered() // closes the third bucket
	taken := 0.8*4 + 0.2*(0.8*4+0.2*6)
	p.throttled(clk.t, 0)
	if r := p.Rate(); !near(r, rate.Limit(0.7*taken)) {
		t.Fatalf("rate after a cut with %.2f/s taken %v; want %.3f", taken, r, 0.7*taken)
	}

	// Climbing back: the ceiling per minute, so 10/s in 30 s, up to 20.
	clk.add(30 * time.Second)
	if r := p.Rate(); !near(r, rate.Limit(0.7*taken+10)) {
		t.Fatalf("rate 30 s after the cut %v; want %.3f", r, 0.7*taken+10)
	}
	clk.add(time.Hour)
	if _, err := p.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := p.Rate(); r != 20 || !p.cutAt.IsZero() {
		t.Fatalf("rate long after the cut %v (cut at %v); want back at 20", r, p.cutAt)
	}
	// A warning when the platform starts to rate-limit, the cuts after it
	// told at info, and the rate back at its ceiling said.
	var levels []string
	for _, l := range logtest.Parse(t, logs.String()) {
		levels = append(levels, l.Level()+" "+strings.Fields(l.Msg())[2])
	}
	if want := []string{"WARN platform", "INFO platform", "INFO platform", "INFO calls"}; !slices.Equal(levels, want) {
		t.Errorf("log levels and messages %q; want %q", levels, want)
	}

	// A quiet spell says nothing of the quota: after 2 s without a call,
	// the take is still what it was, and a cut leaves 0.7 of it.
	for range 2 {
		for range 5 {
			p.answered()
		}
		clk.add(paceBucket)
	}
	clk.add(2 * time.Second)
	p.throttled(clk.t, 0)
	if r := p.Rate(); r < 0.7*9 {
		t.Fatalf("rate after a cut following 2 s without a call %v; want about 0.7 of the 10/s taken before", r)
	}

	// Never below the floor.
	for range 20 {
		p.throttled(clk.add(time.Millisecond), 0)
	}
	if r := p.Rate(); r != 1 {
		t.Fatalf("rate after twenty cuts %v; want the floor 1", r)
	}
}

func TestPaceHoldsEveryAttemptForRetryAfter(t *testing.T) {
	clk := &fakeClock{t: time.Now()} // the wait compares the hold with ctx's deadline, on the wall clock
	p := newPace(20, 1, 10, time.Minute, 5*time.Second, clk.now, slog.New(slog.DiscardHandler))
	p.throttled(clk.t, 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := p.wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "Retry-After (3s left)") {
		t.Fatalf("wait within a 3 s Retry-After, with 1 s to go: %v; want the deadline, naming what is left of the pause", err)
	}
	clk.add(3 * time.Second)
	if _, err := p.wait(ctx); err != nil {
		t.Fatalf("wait once the pause is over: %v", err)
	}

	// A day asked for is held for the retry policy's longest wait, 5 s.
	p.throttled(clk.t, 24*time.Hour)
	if _, err := p.wait(ctx); err == nil || !strings.Contains(err.Error(), "(5s left)") {
		t.Fatalf("wait within a Retry-After of a day: %v; want 5s left of a pause capped at 5 s", err)
	}
	clk.add(5 * time.Second)
	if _, err := p.wait(ctx); err != nil {
		t.Fatalf("wait 5 s after a Retry-After of a day: %v", err)
	}
}

func TestPaceIsFixedWithoutRoomToMove(t *testing.T) {
	for name, p := range map[string]*pace{
		"floor at the ceiling": newPace(20, 20, 10, time.Minute, 5*time.Second, time.Now, slog.New(slog.DiscardHandler)),
		"no limit":             newPace(rate.Inf, 1, 10, time.Minute, 5*time.Second, time.Now, slog.New(slog.DiscardHandler)),
	} {
		before := p.Rate()
		p.throttled(time.Now(), time.Minute)
		if r := p.Rate(); r != before {
			t.Errorf("%s: rate %v after a rate-limited answer; want it unchanged at %v", name, r, before)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := p.wait(ctx); err != nil {
			t.Errorf("%s: wait after a Retry-After: %v; want no pause, as before the rate adapted", name, err)
		}
		cancel()
	}
}

func TestRateLimitedAndAnswered(t *testing.T) {
	for _, tc := range []struct {
		name            string
		err             error
		limited, answer bool
	}{
		{"rate_limited code", &APIError{Code: 4290, Class: platform.ClassRateLimited}, true, true},
		{"http 429", &HTTPError{StatusCode: 429}, true, true},
		{"business refusal", &APIError{Code: 4091, Class: platform.ErrorClass("illegal_state")}, false, true},
		{"http 500", &HTTPError{StatusCode: 500}, false, true},
		{"transport", &TransportError{Err: errors.New("reset")}, false, false},
	} {
		if got := RateLimited(tc.err); got != tc.limited {
			t.Errorf("%s: RateLimited %v; want %v", tc.name, got, tc.limited)
		}
		if got := answered(tc.err); got != tc.answer {
			t.Errorf("%s: answered %v; want %v", tc.name, got, tc.answer)
		}
	}
}
