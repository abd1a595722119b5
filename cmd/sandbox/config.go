package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/envconfig"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// config is what run reads from the environment.
type config struct {
	log         envconfig.LogConfig
	addr        string
	profilePath string // "" = the built-in profile
	sb          sandbox.Config
}

// envVars documents every variable the sandbox reads; the table drives both
// -h and loading.
var envVars = append([]envconfig.Var{
	envconfig.V("SANDBOX_ADDR", "127.0.0.1:8090", "listen address (host:port; port 0 picks a free one)"),
	envconfig.V("UPSTREAM_ACCESS_KEY", "", "REQUIRED: the only access-key the sandbox accepts"),
	envconfig.V("UPSTREAM_ACCESS_SECRET", "", "REQUIRED: the secret requests are signed with (never logged)"),
	envconfig.V("UPSTREAM_PROFILE", "", "a platform profile file (TOML) overriding the built-in guesses: paths, codes, status names, signing, times, units, list fields, callback names; empty = built-in"),
	envconfig.V("CALLBACK_URL", "", "where callbacks are POSTed; $NAME and ${NAME} in it are expanded from the environment (e.g. …/callbacks/$CALLBACK_TOKEN); empty = recorded only (GET /_sandbox/callbacks)"),
	envconfig.V("SANDBOX_AUTO_CREATE", "true", "create unknown orders/sub-orders on demand (paid, "+strconv.Itoa(sandbox.DefaultOrderAmount)+" fen)"),
	envconfig.V("SANDBOX_SELLER_DECISION", sandbox.DecisionAgree, "seller policy: agree, refuse, require_return or manual"),
	envconfig.V("SANDBOX_SELLER_REFUSE_REASON", sandbox.DefaultRefuseReason, "reason the seller gives when refusing"),
	envconfig.V("SANDBOX_SELLER_DELAY", "2s", "delay before the seller decides (0 to 720h)"),
	envconfig.V("SANDBOX_RECEIVE_DELAY", "2s", "delay between a return shipment and the seller confirming receipt (0 to 720h)"),
	envconfig.V("SANDBOX_PUSH_TIMEOUT", "1000ms", "a callback push succeeds only with HTTP 200 within this time"),
	envconfig.V("SANDBOX_PUSH_RETRIES", strconv.Itoa(sandbox.DefaultPushRetries), "retries of a failed push before giving up (0 to 100)"),
	envconfig.V("SANDBOX_PUSH_RETRY_INTERVAL", "30m", "pause between push retries"),
	envconfig.V("SANDBOX_LATENCY", "0", "API latency: a duration (\"50ms\") or a range (\"50ms-200ms\"), up to 1m"),
	envconfig.V("SANDBOX_ERROR_RATE", "0", "probability in [0,1] that an API call fails"),
	envconfig.V("SANDBOX_ERROR_KINDS", "http500,timeout,ratelimit", "failure kinds for SANDBOX_ERROR_RATE, comma-separated: "+kindList()),
	envconfig.V("SANDBOX_DUPLICATE_PUSH_RATE", "0", "probability in [0,1] that a callback is pushed twice"),
	envconfig.V("SANDBOX_REORDER_PUSH_RATE", "0", "probability in [0,1] that a callback is held and sent after the next one"),
	envconfig.V("SANDBOX_DROP_PUSH_RATE", "0", "probability in [0,1] that a callback is never sent"),
	envconfig.V("SANDBOX_TAOBAO_LIST_OMIT_TOTAL", "false", "the Taobao refund list leaves the \"total\" key out of its answer"),
	envconfig.V("SANDBOX_TAOBAO_LIST_MAX_PAGE_SIZE", "0", "the Taobao refund list returns at most this many items per page whatever pageSize asked, and pages with it; 0 = no cap, at most "+strconv.Itoa(sandbox.MaxListPageSize)),
	envconfig.V("SANDBOX_RATE_QUOTA", "0", "the account's quota of API calls per second: a call past it is answered with the profile's rate_limited code (counted in /_sandbox/stats quota_refused); 0 = no quota"),
	envconfig.V("SANDBOX_RATE_QUOTA_BURST", "0", "calls the quota lets through at once; 0 = one second's worth"),
	envconfig.V("SANDBOX_TAOBAO_NUMERIC_STATUS", "true", "TaobaoQuery emits refundStatus as a number (documented v2 drift)"),
	envconfig.V("SANDBOX_NUMERIC_DEVELOP_ID", "false", "envelopes carry developId as a number instead of a string (documented drift)"),
	envconfig.V("SANDBOX_SEED", "0", "random seed for faults and ids; 0 = random"),
	envconfig.V("SANDBOX_STATE_FILE", "", "keep the orders, refunds and counters in this file across restarts (written shortly after each change and on exit; not the push log, faults or seller policy); empty = memory only"),
}, envconfig.LogVars()...)

func kindList() string {
	kinds := make([]string, 0, len(sandbox.ErrorKinds()))
	for _, k := range sandbox.ErrorKinds() {
		kinds = append(kinds, string(k))
	}
	return strings.Join(kinds, ", ")
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: sandbox [-h]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Runs the Xportcn/PandaPon after-sales API simulator. Configuration is read from the environment.")
	fmt.Fprintln(w, "Endpoint paths, the signature window and every other platform guess come from the profile (UPSTREAM_PROFILE).")
	fmt.Fprintln(w, "Admin API under /_sandbox/ (healthz, stats, faults, seller, orders, refunds, callbacks, reset).")
	fmt.Fprintln(w)
	envconfig.Usage(w, envVars)
}

// loadConfig reads the environment through getenv; unset or blank variables
// take the documented default. Every bad value is reported, each as a
// one-line error naming its variable; the secret and the callback URL (which
// holds the receiver's token) are never quoted.
func loadConfig(getenv func(string) string) (config, error) {
	env := envconfig.NewReader(envVars, getenv)
	c := config{addr: env.String("SANDBOX_ADDR"), profilePath: env.String("UPSTREAM_PROFILE"), log: env.Log()}
	c.sb.AccessKey = env.String("UPSTREAM_ACCESS_KEY")
	c.sb.AccessSecret = strings.TrimSpace(getenv("UPSTREAM_ACCESS_SECRET")) // a secret: read directly, never quoted
	if c.sb.AccessKey == "" || c.sb.AccessSecret == "" {
		env.Fail(errors.New("UPSTREAM_ACCESS_KEY and UPSTREAM_ACCESS_SECRET are required: export them (any values; clients must sign with the same pair), e.g. UPSTREAM_ACCESS_KEY=dev-key UPSTREAM_ACCESS_SECRET=dev-secret"))
	}
	// Holds the receiver's token: quoted only redacted. $NAME and ${NAME} in
	// it are expanded from the environment, so the documented .env line
	// CALLBACK_URL=…/callbacks/$CALLBACK_TOKEN works under runners that do
	// not expand .env values themselves (foreman).
	c.sb.CallbackURL = os.Expand(strings.TrimSpace(getenv("CALLBACK_URL")), getenv)
	if u := c.sb.CallbackURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		env.Fail(fmt.Errorf("CALLBACK_URL=%q: want an http:// or https:// URL", redactURL(u)))
	}
	c.sb.AutoCreate = readBool(env, "SANDBOX_AUTO_CREATE")

	c.sb.Seller = sandbox.SellerPolicy{
		Decision:     env.String("SANDBOX_SELLER_DECISION"),
		RefuseReason: env.String("SANDBOX_SELLER_REFUSE_REASON"),
		DecideAfter:  env.Duration("SANDBOX_SELLER_DELAY", 0, 30*24*time.Hour),
		ReceiveAfter: env.Duration("SANDBOX_RECEIVE_DELAY", 0, 30*24*time.Hour),
	}
	switch c.sb.Seller.Decision {
	case sandbox.DecisionAgree, sandbox.DecisionRefuse, sandbox.DecisionRequireReturn, sandbox.DecisionManual:
	default:
		env.Fail(fmt.Errorf("SANDBOX_SELLER_DECISION=%q: want agree, refuse, require_return or manual", c.sb.Seller.Decision))
	}

	c.sb.PushTimeout = env.Duration("SANDBOX_PUSH_TIMEOUT", time.Millisecond, 10*time.Minute)
	c.sb.PushRetryInterval = env.Duration("SANDBOX_PUSH_RETRY_INTERVAL", time.Millisecond, 24*time.Hour)
	if c.sb.PushRetries = env.Int("SANDBOX_PUSH_RETRIES", 0, 100); c.sb.PushRetries == 0 {
		c.sb.PushRetries = -1 // sandbox.Config: 0 means the default, negative means no retries
	}

	f := &c.sb.Faults
	f.LatencyMin, f.LatencyMax = readLatency(env, "SANDBOX_LATENCY")
	f.ErrorRate = readProbability(env, "SANDBOX_ERROR_RATE")
	f.ErrorKinds = readErrorKinds(env, getenv, "SANDBOX_ERROR_KINDS")
	f.DuplicatePushRate = readProbability(env, "SANDBOX_DUPLICATE_PUSH_RATE")
	f.ReorderPushRate = readProbability(env, "SANDBOX_REORDER_PUSH_RATE")
	f.DropPushRate = readProbability(env, "SANDBOX_DROP_PUSH_RATE")
	f.TaobaoListOmitTotal = readBool(env, "SANDBOX_TAOBAO_LIST_OMIT_TOTAL")
	f.TaobaoListMaxPageSize = env.Int("SANDBOX_TAOBAO_LIST_MAX_PAGE_SIZE", 0, sandbox.MaxListPageSize)
	f.RateQuota = env.Float("SANDBOX_RATE_QUOTA", 0, 100000, "calls per second")
	f.RateQuotaBurst = env.Int("SANDBOX_RATE_QUOTA_BURST", 0, 100000)

	c.sb.TaobaoNumericStatus = readBool(env, "SANDBOX_TAOBAO_NUMERIC_STATUS")
	c.sb.NumericDevelopID = readBool(env, "SANDBOX_NUMERIC_DEVELOP_ID")
	c.sb.Seed = env.Int64("SANDBOX_SEED", math.MinInt64, math.MaxInt64)
	c.sb.StateFile = env.String("SANDBOX_STATE_FILE")
	profile, err := platform.Load(c.profilePath)
	if err != nil {
		env.Fail(fmt.Errorf("UPSTREAM_PROFILE: %w", err))
	}
	c.sb.Profile = profile
	return c, env.Err()
}

// The readers below parse what only the sandbox reads (booleans,
// probabilities, a latency range, fault kinds); envconfig gets a typed
// helper once a second command needs one. Each records its error on env.

// readBool parses true or false (and the other spellings of strconv.ParseBool).
func readBool(env *envconfig.Reader, name string) bool {
	b, err := strconv.ParseBool(env.String(name))
	if err != nil {
		env.Fail(fmt.Errorf("%s=%q: want true or false", name, env.String(name)))
	}
	return b
}

// readProbability parses a number in [0, 1].
func readProbability(env *envconfig.Reader, name string) float64 {
	p, err := strconv.ParseFloat(env.String(name), 64)
	if err != nil || !(p >= 0 && p <= 1) {
		env.Fail(fmt.Errorf("%s=%q: want a probability between 0 and 1", name, env.String(name)))
	}
	return p
}

// readLatency parses "0", "50ms" or "50ms-200ms", up to a minute.
func readLatency(env *envconfig.Reader, name string) (lo, hi time.Duration) {
	v := env.String(name)
	bad := func() (time.Duration, time.Duration) {
		env.Fail(fmt.Errorf("%s=%q: want a duration (50ms) or a range (50ms-200ms) up to 1m", name, v))
		return 0, 0
	}
	low, high, isRange := strings.Cut(v, "-")
	lo, err := time.ParseDuration(strings.TrimSpace(low))
	if err != nil || lo < 0 {
		return bad()
	}
	hi = lo
	if isRange {
		if hi, err = time.ParseDuration(strings.TrimSpace(high)); err != nil || hi < lo {
			return bad()
		}
	}
	if hi > time.Minute {
		return bad()
	}
	return lo, hi
}

// readErrorKinds parses a comma-separated list of sandbox.ErrorKinds. It
// reads the variable itself, not its documented default: unset leaves the
// list empty, which the sandbox answers with the same three kinds and
// GET /_sandbox/faults shows as empty, as it always has.
func readErrorKinds(env *envconfig.Reader, getenv func(string) string, name string) []sandbox.ErrorKind {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return nil
	}
	var kinds []sandbox.ErrorKind
	for _, k := range strings.Split(v, ",") {
		kind := sandbox.ErrorKind(strings.TrimSpace(k))
		if !slices.Contains(sandbox.ErrorKinds(), kind) {
			env.Fail(fmt.Errorf("%s: unknown kind %q (want %s)", name, kind, kindList()))
		}
		kinds = append(kinds, kind)
	}
	return kinds
}
