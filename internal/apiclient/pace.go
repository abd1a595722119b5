package apiclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/platform"
)

// Defaults of the pace's adaptation (Config.RateFloor, Config.RateRecovery).
const (
	DefaultRateFloor    = rate.Limit(1)
	DefaultRateRecovery = time.Minute
)

// pace is the one token bucket every attempt of a Client waits on, its rate
// following the platform's answers. The platform's quota per account is not
// documented (docs/platform.md), so the configured rate is a guess; when it
// is above the quota, a fixed bucket keeps sending at it, and every case's
// calls meet rate-limited answers, their retries adding to the load that
// caused them. So the rate adapts as the AWS SDKs' "adaptive" retry mode
// does against throttling, after TCP's congestion window:
//
//   - a rate-limited answer (the profile's rate_limited class, or HTTP 429)
//     to an attempt paced after the last cut (one that asked for its token
//     after it) cuts the rate to 0.7 of what
//     the platform took lately (the answers other than rate-limited ones,
//     per second, a moving average over the half-seconds that had any, or
//     the first half-second so far once 100 ms of it passed: a quiet spell
//     says nothing of the quota), or of the rate itself
//     when that is lower; half the rate while nothing is known yet; down to
//     the floor; and
//     it spends the tokens the bucket had saved. Answers to attempts paced
//     before the cut, in flight or given their tokens at the old rate, say
//     nothing of the rate it left: calls paced together cut it once;
//   - a Retry-After hint on such an answer holds every attempt until then,
//     at most maxHold (the retry policy's MaxInterval: the cap one call's
//     retry already put on the hint), so that a platform asking for a day
//     does not stop every case of the process for one;
//   - with no cut, the rate climbs back linearly to the ceiling, by the
//     ceiling every recovery period.
//
// With the floor at the ceiling, or no ceiling (rate.Inf), the rate is fixed.
type pace struct {
	lim      *rate.Limiter
	ceiling  rate.Limit
	floor    rate.Limit
	recovery time.Duration
	maxHold  time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu    sync.Mutex
	base  rate.Limit // the rate the last cut left
	cutAt time.Time  // the last cut; zero while at the ceiling
	until time.Time  // no attempt starts before this (Retry-After)

	// The platform's take: answers other than rate-limited ones.
	taken    float64   // per second, a moving average over whole buckets; 0: none yet
	bucket   time.Time // the start of the bucket being counted
	inBucket int       // answers in it so far
}

// Cutting and measuring, as the AWS SDKs' adaptive mode does.
const (
	paceCut      = 0.7                    // the share of the platform's take a cut leaves
	paceBlindCut = 0.5                    // the share of the rate a cut leaves while the take is not known
	paceBucket   = 500 * time.Millisecond // the take is counted per bucket of this
	paceSmooth   = 0.8                    // the last bucket's weight in the average
)

func newPace(ceiling, floor rate.Limit, burst int, recovery, maxHold time.Duration, now func() time.Time, log *slog.Logger) *pace {
	if recovery <= 0 {
		recovery = DefaultRateRecovery
	}
	return &pace{lim: rate.NewLimiter(ceiling, burst), ceiling: ceiling, floor: min(floor, ceiling),
		recovery: recovery, maxHold: maxHold, now: now, log: log}
}

// adapts reports whether the rate moves at all.
func (p *pace) adapts() bool { return p.ceiling != rate.Inf && p.floor < p.ceiling }

// rateAt is the rate at now: the ceiling, or on its way back there from
// the last cut. Callers hold p.mu.
func (p *pace) rateAt(now time.Time) rate.Limit {
	if p.cutAt.IsZero() {
		return p.ceiling
	}
	climbed := p.base + p.ceiling*rate.Limit(now.Sub(p.cutAt).Seconds()/p.recovery.Seconds())
	return min(p.ceiling, max(p.base, climbed))
}

// Rate is the calls per second attempts may start at now.
func (p *pace) Rate() rate.Limit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rateAt(p.now())
}

// wait blocks until an attempt may start: past any Retry-After hold, then
// with a token at the rate of the moment. It returns when the attempt
// asked, to be given to throttled if the platform rate-limits it: an
// attempt that asked before a cut was paced at the rate before it, even if
// its token came after (the bucket keeps the times it gave out).
func (p *pace) wait(ctx context.Context) (time.Time, error) {
	p.mu.Lock()
	now := p.now()
	asked := now
	if p.adapts() {
		r := p.rateAt(now)
		if r == p.ceiling && !p.cutAt.IsZero() {
			p.cutAt = time.Time{}
			p.log.Info("apiclient: platform calls back at their configured rate", "calls_per_second", round2(r))
		}
		p.lim.SetLimitAt(now, r)
	}
	p.mu.Unlock()
	if err := p.holdOff(ctx); err != nil {
		return time.Time{}, err
	}
	if err := p.lim.Wait(ctx); err != nil {
		return time.Time{}, err
	}
	return asked, nil
}

// holdOff waits out the platform's Retry-After hold, and any longer one
// that comes meanwhile.
func (p *pace) holdOff(ctx context.Context) error {
	for {
		p.mu.Lock()
		hold := p.until.Sub(p.now())
		p.mu.Unlock()
		if hold <= 0 {
			return nil
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < hold {
			return fmt.Errorf("%w: waiting out the platform's Retry-After (%s left)", context.DeadlineExceeded, hold.Round(time.Millisecond))
		}
		t := time.NewTimer(hold)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

// answered counts an answer of the platform that is not rate-limited: a
// call the quota let through, whatever its code.
func (p *pace) answered() {
	if !p.adapts() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.measure(p.now())
	p.inBucket++
}

// takenNow is what the platform took lately, per second: the average of
// the buckets, or before one has ended, the bucket under way once it is
// long enough to say something; 0 when nothing is known yet. Callers hold
// p.mu, after measure.
func (p *pace) takenNow(now time.Time) float64 {
	if p.taken > 0 {
		return p.taken
	}
	if d := now.Sub(p.bucket); d >= paceBucket/5 && p.inBucket > 0 {
		return float64(p.inBucket) / d.Seconds()
	}
	return 0
}

// measure closes the buckets that ended before now into the average.
// Callers hold p.mu.
func (p *pace) measure(now time.Time) {
	if p.bucket.IsZero() {
		p.bucket = now
		return
	}
	for now.Sub(p.bucket) >= paceBucket {
		rate := float64(p.inBucket) / paceBucket.Seconds()
		switch {
		case p.inBucket == 0: // a quiet half-second: nothing about the quota
		case p.taken == 0:
			p.taken = rate
		default:
			p.taken = paceSmooth*rate + (1-paceSmooth)*p.taken
		}
		p.inBucket = 0
		p.bucket = p.bucket.Add(paceBucket)
		if now.Sub(p.bucket) > 10*paceBucket { // idle: what came before says little
			p.bucket, p.taken = now, 0
		}
	}
}

// throttled takes in that the platform rate-limited an attempt that asked
// for its token at sent (wait), with Retry-After hint (0: none).
func (p *pace) throttled(sent time.Time, hint time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.adapts() {
		return
	}
	now := p.now()
	if hint = min(hint, p.maxHold); hint > 0 && now.Add(hint).After(p.until) {
		if !p.until.After(now) { // said once per pause, not for every answer that lengthens it
			p.log.Warn("apiclient: the platform asked for a pause: every platform call of this process waits for it",
				"retry_after", hint.String())
		}
		p.until = now.Add(hint)
	}
	if !p.cutAt.IsZero() && !sent.After(p.cutAt) {
		return
	}
	p.measure(now)
	first := p.cutAt.IsZero() // the first cut since the rate was last at its ceiling
	from := p.rateAt(now)
	took, share := from, rate.Limit(paceBlindCut)
	if taken := p.takenNow(now); taken > 0 {
		took, share = min(from, rate.Limit(taken)), paceCut
	}
	p.base, p.cutAt = max(p.floor, took*share), now
	p.lim.SetLimitAt(now, p.base)
	if saved := int(p.lim.TokensAt(now)); saved > 0 {
		p.lim.ReserveN(now, saved) // the burst saved at the old rate is not sent into the quota (a token taken meanwhile only delays the next)
	}
	if p.base < from {
		// A warning once, when the platform starts to rate-limit; the
		// cuts after it while the rate climbs back are its course.
		level := slog.LevelInfo
		if first {
			level = slog.LevelWarn
		}
		p.log.Log(context.Background(), level, "apiclient: the platform rate-limits this account: every platform call of this process slows down, and climbs back while none is refused",
			"from_calls_per_second", round2(from), "to_calls_per_second", round2(p.base), "floor", round2(p.floor),
			"back_at_full_rate_in", time.Duration(float64(p.recovery)*float64((p.ceiling-p.base)/p.ceiling)).Round(time.Second).String())
	}
}

// round2 is r to two decimals, for the log.
func round2(r rate.Limit) float64 { return math.Round(float64(r)*100) / 100 }

// answered reports whether err is an answer of the platform's (an
// envelope or an HTTP status), not a failure to reach it.
func answered(err error) bool {
	var he *HTTPError
	var ae *APIError
	return errors.As(err, &ae) || errors.As(err, &he)
}

// RateLimited reports whether err is the platform saying that the account
// calls too often: the profile's rate_limited class, or HTTP 429. The
// account's quota is shared by every process calling with its key.
func RateLimited(err error) bool {
	if ErrorClass(err) == platform.ClassRateLimited {
		return true
	}
	var he *HTTPError
	return errors.As(err, &he) && he.StatusCode == http.StatusTooManyRequests
}
