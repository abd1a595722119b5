package envconfig

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/platform"
)

// UpstreamVars documents the platform connection: where it is, the
// credentials every call is signed with, the profile of guessed platform
// facts, and the client's limits. The worker and `refundctl doctor` list
// these entries in their tables and read them with Reader.Upstream, so
// doctor checks exactly the platform and the profile the worker would use.
// It returns a new slice each time, for the caller to append to.
func UpstreamVars() []Var {
	return []Var{
		V("UPSTREAM_BASE_URL", "http://127.0.0.1:8090", "platform API root (the sandbox locally)"),
		V("UPSTREAM_ACCESS_KEY", "", "REQUIRED platform access key"),
		V("UPSTREAM_ACCESS_SECRET", "", "REQUIRED platform access secret (only used to sign; never logged)"),
		V("UPSTREAM_USER_ID", "", "REQUIRED platform user id (user-id header)"),
		V("UPSTREAM_PROFILE", "", "TOML file overriding the built-in platform profile (endpoint paths, error-code classes, status names, time and amount formats, callback types): every guess about the platform; see docs/platform.md and `refundctl doctor`"),
		V("UPSTREAM_RATE_LIMIT", "20", "platform calls per second for this process, shared by all its goroutines (retries included); a ceiling: while the platform answers rate-limited, every call slows down (UPSTREAM_RATE_MIN)"),
		V("UPSTREAM_RATE_BURST", "10", "rate limiter burst"),
		V("UPSTREAM_RATE_MIN", "1", "the calls per second a rate-limited process slows down to at most: each rate-limited answer cuts the rate to 0.7 of what the platform took lately, not below this; equal to UPSTREAM_RATE_LIMIT keeps the rate fixed"),
		V("UPSTREAM_RATE_RECOVERY", "1m", "how fast the rate climbs back after a rate-limited answer: by UPSTREAM_RATE_LIMIT in this time, while no call is rate-limited"),
		V("UPSTREAM_TIMEOUT", "10s", "timeout of one platform call attempt"),
		V("UPSTREAM_MAX_ATTEMPTS", "4", "attempts of a read-only platform call within one step (side effects are never repeated by the client)"),
	}
}

// Upstream reads UpstreamVars into a client configuration, the profile
// loaded and validated. Credentials are read through getenv directly and
// never quoted in an error.
func (r *Reader) Upstream() apiclient.Config {
	var missing []string
	for _, name := range []string{"UPSTREAM_ACCESS_KEY", "UPSTREAM_ACCESS_SECRET", "UPSTREAM_USER_ID"} {
		if strings.TrimSpace(r.getenv(name)) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 { // one error, so the explanation is read once
		verb := "is"
		if len(missing) > 1 {
			verb = "are"
		}
		r.Fail(fmt.Errorf("%s %s not set: every platform call is signed with UPSTREAM_ACCESS_KEY, UPSTREAM_ACCESS_SECRET and UPSTREAM_USER_ID (the account's OpenAPI credentials)",
			andList(missing), verb))
	}
	profile, err := platform.Load(r.getenv("UPSTREAM_PROFILE"))
	if err != nil {
		r.Fail(fmt.Errorf("UPSTREAM_PROFILE: %w", err))
	}
	rl, err := strconv.ParseFloat(r.String("UPSTREAM_RATE_LIMIT"), 64)
	if err != nil || rl <= 0 || rl > 100000 {
		r.Fail(fmt.Errorf("UPSTREAM_RATE_LIMIT=%q: want calls per second, > 0", r.String("UPSTREAM_RATE_LIMIT")))
	}
	floor := r.Float("UPSTREAM_RATE_MIN", min(0.01, max(rl, 1e-6)), 100000, "calls per second")
	if strings.TrimSpace(r.getenv("UPSTREAM_RATE_MIN")) == "" {
		floor = min(floor, rl) // the default, under a ceiling below it
	} else if floor > rl && rl > 0 {
		r.Fail(fmt.Errorf("UPSTREAM_RATE_MIN=%q is above UPSTREAM_RATE_LIMIT=%q: the rate a rate-limited process slows down to is at most its ceiling",
			r.String("UPSTREAM_RATE_MIN"), r.String("UPSTREAM_RATE_LIMIT")))
	}
	return apiclient.Config{
		BaseURL:      r.String("UPSTREAM_BASE_URL"),
		AccessKey:    strings.TrimSpace(r.getenv("UPSTREAM_ACCESS_KEY")),
		AccessSecret: strings.TrimSpace(r.getenv("UPSTREAM_ACCESS_SECRET")),
		UserID:       strings.TrimSpace(r.getenv("UPSTREAM_USER_ID")),
		Profile:      profile,
		Timeout:      r.Duration("UPSTREAM_TIMEOUT", 100*time.Millisecond, 5*time.Minute),
		RateLimit:    rate.Limit(rl),
		RateBurst:    r.Int("UPSTREAM_RATE_BURST", 1, 10000),
		RateFloor:    rate.Limit(floor),
		RateRecovery: r.Duration("UPSTREAM_RATE_RECOVERY", time.Second, 24*time.Hour),
		Retry:        apiclient.RetryPolicy{MaxAttempts: r.Int("UPSTREAM_MAX_ATTEMPTS", 1, 20)},
	}
}

// andList joins names as prose: "A", "A and B", "A, B and C".
func andList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
