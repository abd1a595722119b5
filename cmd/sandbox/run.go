package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// envVar documents one environment variable.
type envVar struct {
	name, def, meaning string
}

// envVars lists every variable run reads, with its default and meaning; -h prints them.
var envVars = []envVar{
	{"SANDBOX_ADDR", "127.0.0.1:8090", "listen address (host:port; port 0 picks a free one)"},
	{"UPSTREAM_ACCESS_KEY", "(required)", "the only access-key the sandbox accepts"},
	{"UPSTREAM_ACCESS_SECRET", "(required)", "the secret requests are signed with (never logged)"},
	{"UPSTREAM_PROFILE", "", "a platform profile file (TOML) overriding the built-in guesses: paths, codes, status names, signing, times, units, list fields, callback names; empty = built-in"},
	{"CALLBACK_URL", "", "where callbacks are POSTed; empty = recorded only (GET /_sandbox/callbacks)"},
	{"SANDBOX_AUTO_CREATE", "true", "create unknown orders/sub-orders on demand (paid, 10000 fen)"},
	{"SANDBOX_SELLER_DECISION", "agree", "seller policy: agree, refuse, require_return or manual"},
	{"SANDBOX_SELLER_REFUSE_REASON", sandbox.DefaultRefuseReason, "reason the seller gives when refusing"},
	{"SANDBOX_SELLER_DELAY", "2s", "delay before the seller decides"},
	{"SANDBOX_RECEIVE_DELAY", "2s", "delay between a return shipment and the seller confirming receipt"},
	{"SANDBOX_PUSH_TIMEOUT", "1000ms", "a callback push succeeds only with HTTP 200 within this time"},
	{"SANDBOX_PUSH_RETRIES", "5", "retries of a failed push before giving up"},
	{"SANDBOX_PUSH_RETRY_INTERVAL", "30m", "pause between push retries"},
	{"SANDBOX_LATENCY", "0", "API latency: a duration (\"50ms\") or a range (\"50ms-200ms\")"},
	{"SANDBOX_ERROR_RATE", "0", "probability in [0,1] that an API call fails"},
	{"SANDBOX_ERROR_KINDS", "http500,timeout,ratelimit", "failure kinds for SANDBOX_ERROR_RATE: http500, http503, timeout, ratelimit, internal, reset"},
	{"SANDBOX_DUPLICATE_PUSH_RATE", "0", "probability in [0,1] that a callback is pushed twice"},
	{"SANDBOX_REORDER_PUSH_RATE", "0", "probability in [0,1] that a callback is held and sent after the next one"},
	{"SANDBOX_DROP_PUSH_RATE", "0", "probability in [0,1] that a callback is never sent"},
	{"SANDBOX_TAOBAO_LIST_OMIT_TOTAL", "false", "the Taobao refund list leaves the \"total\" key out of its answer"},
	{"SANDBOX_TAOBAO_LIST_MAX_PAGE_SIZE", "0", "the Taobao refund list returns at most this many items per page whatever pageSize asked, and pages with it; 0 = no cap, at most " + strconv.Itoa(sandbox.MaxListPageSize)},
	{"SANDBOX_TAOBAO_NUMERIC_STATUS", "true", "TaobaoQuery emits refundStatus as a number (documented v2 drift)"},
	{"SANDBOX_NUMERIC_DEVELOP_ID", "false", "envelopes carry developId as a number instead of a string (documented drift)"},
	{"SANDBOX_SEED", "0", "random seed for faults and ids; 0 = random"},
}

// config is what run reads from the environment.
type config struct {
	addr        string
	profilePath string // "" = the built-in profile
	sb          sandbox.Config
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: sandbox [-h]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Runs the Xportcn/PandaPon after-sales API simulator. Configuration is read from the environment:")
	fmt.Fprintln(w)
	for _, v := range envVars {
		def := v.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  %-30s default %s\n      %s\n", v.name, def, v.meaning)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Endpoint paths, the signature window and every other platform guess come from the profile (UPSTREAM_PROFILE).")
	fmt.Fprintln(w, "Admin API under /_sandbox/ (healthz, stats, faults, seller, orders, refunds, callbacks, reset).")
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stdout) }
	if len(args) > 0 {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (configuration comes from the environment; see -h)", fs.Args())
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	cfg.sb.Logger = logger

	sb, err := sandbox.New(cfg.sb)
	if err != nil {
		return fmt.Errorf("create sandbox: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	srv := &http.Server{Handler: sb.Handler(), ReadHeaderTimeout: 10 * time.Second}
	runDone := make(chan error, 1)
	go func() { runDone <- sb.Run(ctx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	logger.Info("sandbox listening", "addr", ln.Addr().String(), "callback_url", redactURL(cfg.sb.CallbackURL),
		"access_key", cfg.sb.AccessKey, "seller", cfg.sb.Seller.Decision, "auto_create", cfg.sb.AutoCreate,
		"profile", cfg.profilePath)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-serveDone:
		stop()
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	stop()
	if err := <-runDone; err != nil {
		return fmt.Errorf("sandbox run: %w", err)
	}
	logger.Info("sandbox stopped")
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	return nil
}

// loadConfig reads the environment. Every bad value is a one-line error naming the variable.
func loadConfig(getenv func(string) string) (config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	var c config
	var errs []error
	dur := func(name, def string) time.Duration {
		v := get(name, def)
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a non-negative duration such as 2s or 500ms", name, v))
		}
		return d
	}
	rate := func(name string) float64 {
		v := get(name, "0")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			errs = append(errs, fmt.Errorf("%s=%q: want a probability between 0 and 1", name, v))
		}
		return f
	}
	boolean := func(name, def string) bool {
		v := get(name, def)
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", name, v))
		}
		return b
	}
	c.addr = get("SANDBOX_ADDR", "127.0.0.1:8090")
	c.sb.AccessKey = get("UPSTREAM_ACCESS_KEY", "")
	c.sb.AccessSecret = get("UPSTREAM_ACCESS_SECRET", "")
	if c.sb.AccessKey == "" || c.sb.AccessSecret == "" {
		return c, errors.New("UPSTREAM_ACCESS_KEY and UPSTREAM_ACCESS_SECRET are required: export them (any values; clients must sign with the same pair), e.g. UPSTREAM_ACCESS_KEY=dev-key UPSTREAM_ACCESS_SECRET=dev-secret")
	}
	c.sb.CallbackURL = get("CALLBACK_URL", "")
	if c.sb.CallbackURL != "" {
		if _, err := parseURL(c.sb.CallbackURL); err != nil {
			errs = append(errs, fmt.Errorf("CALLBACK_URL=%q: %w", redactURL(c.sb.CallbackURL), err))
		}
	}
	c.sb.AutoCreate = boolean("SANDBOX_AUTO_CREATE", "true")
	c.sb.Seller = sandbox.SellerPolicy{
		Decision:     get("SANDBOX_SELLER_DECISION", sandbox.DecisionAgree),
		RefuseReason: get("SANDBOX_SELLER_REFUSE_REASON", sandbox.DefaultRefuseReason),
		DecideAfter:  dur("SANDBOX_SELLER_DELAY", "2s"),
		ReceiveAfter: dur("SANDBOX_RECEIVE_DELAY", "2s"),
	}
	switch c.sb.Seller.Decision {
	case sandbox.DecisionAgree, sandbox.DecisionRefuse, sandbox.DecisionRequireReturn, sandbox.DecisionManual:
	default:
		errs = append(errs, fmt.Errorf("SANDBOX_SELLER_DECISION=%q: want agree, refuse, require_return or manual", c.sb.Seller.Decision))
	}
	c.sb.PushTimeout = dur("SANDBOX_PUSH_TIMEOUT", "1000ms")
	c.sb.PushRetryInterval = dur("SANDBOX_PUSH_RETRY_INTERVAL", "30m")
	retries := get("SANDBOX_PUSH_RETRIES", "5")
	n, err := strconv.Atoi(retries)
	if err != nil || n < 0 || n > 100 {
		errs = append(errs, fmt.Errorf("SANDBOX_PUSH_RETRIES=%q: want an integer between 0 and 100", retries))
	}
	c.sb.PushRetries = n
	if n == 0 {
		c.sb.PushRetries = -1 // sandbox.Config: 0 means the default, negative means no retries
	}
	if c.sb.PushTimeout == 0 || c.sb.PushRetryInterval == 0 {
		errs = append(errs, errors.New("SANDBOX_PUSH_TIMEOUT and SANDBOX_PUSH_RETRY_INTERVAL must be positive"))
	}
	latMin, latMax, err := parseLatency(get("SANDBOX_LATENCY", "0"))
	if err != nil {
		errs = append(errs, err)
	}
	c.sb.Faults = sandbox.Faults{LatencyMin: latMin, LatencyMax: latMax, ErrorRate: rate("SANDBOX_ERROR_RATE"),
		DuplicatePushRate: rate("SANDBOX_DUPLICATE_PUSH_RATE"), ReorderPushRate: rate("SANDBOX_REORDER_PUSH_RATE"),
		DropPushRate: rate("SANDBOX_DROP_PUSH_RATE")}
	c.sb.Faults.TaobaoListOmitTotal = boolean("SANDBOX_TAOBAO_LIST_OMIT_TOTAL", "false")
	pageCap := get("SANDBOX_TAOBAO_LIST_MAX_PAGE_SIZE", "0")
	c.sb.Faults.TaobaoListMaxPageSize, err = strconv.Atoi(pageCap)
	if err != nil || c.sb.Faults.TaobaoListMaxPageSize < 0 || c.sb.Faults.TaobaoListMaxPageSize > sandbox.MaxListPageSize {
		errs = append(errs, fmt.Errorf("SANDBOX_TAOBAO_LIST_MAX_PAGE_SIZE=%q: want an integer from 0 (no cap) to %d", pageCap, sandbox.MaxListPageSize))
	}
	if v := get("SANDBOX_ERROR_KINDS", ""); v != "" {
		for _, k := range strings.Split(v, ",") {
			kind := sandbox.ErrorKind(strings.TrimSpace(k))
			valid := false
			for _, known := range sandbox.ErrorKinds() {
				valid = valid || known == kind
			}
			if !valid {
				errs = append(errs, fmt.Errorf("SANDBOX_ERROR_KINDS: unknown kind %q (want %v)", kind, sandbox.ErrorKinds()))
			}
			c.sb.Faults.ErrorKinds = append(c.sb.Faults.ErrorKinds, kind)
		}
	}
	c.sb.TaobaoNumericStatus = boolean("SANDBOX_TAOBAO_NUMERIC_STATUS", "true")
	c.sb.NumericDevelopID = boolean("SANDBOX_NUMERIC_DEVELOP_ID", "false")
	seed := get("SANDBOX_SEED", "0")
	c.sb.Seed, err = strconv.ParseInt(seed, 10, 64)
	if err != nil {
		errs = append(errs, fmt.Errorf("SANDBOX_SEED=%q: want an integer", seed))
	}
	c.profilePath = get("UPSTREAM_PROFILE", "")
	if c.sb.Profile, err = platform.Load(c.profilePath); err != nil {
		errs = append(errs, fmt.Errorf("UPSTREAM_PROFILE: %w", err))
	}
	if len(errs) > 0 {
		return c, errs[0]
	}
	return c, nil
}

func parseURL(raw string) (string, error) {
	if !strings.HasPrefix(raw, "http://") && !strings.HasPrefix(raw, "https://") {
		return raw, errors.New("want an http:// or https:// URL")
	}
	return raw, nil
}

// redactURL hides the last path segment and the query of a callback URL:
// that is where the receiver's secret token lives (/callbacks/<token>).
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<unparsable URL>"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	if i := strings.LastIndex(u.Path, "/"); i >= 0 && i < len(u.Path)-1 {
		u.Path = u.Path[:i+1] + "REDACTED"
		u.RawPath = ""
	}
	return u.String()
}

// parseLatency reads "0", "50ms" or "50ms-200ms".
func parseLatency(v string) (time.Duration, time.Duration, error) {
	bad := fmt.Errorf("SANDBOX_LATENCY=%q: want a duration (50ms) or a range (50ms-200ms) up to 1m", v)
	lo, hi, isRange := strings.Cut(v, "-")
	low, err := time.ParseDuration(strings.TrimSpace(lo))
	if err != nil || low < 0 {
		return 0, 0, bad
	}
	high := low
	if isRange {
		if high, err = time.ParseDuration(strings.TrimSpace(hi)); err != nil || high < low {
			return 0, 0, bad
		}
	}
	if high > time.Minute {
		return 0, 0, bad
	}
	return low, high, nil
}
