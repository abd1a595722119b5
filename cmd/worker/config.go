package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// config is everything the worker reads from the environment.
type config struct {
	NATSURL     string
	DBPath      string
	MetricsAddr string

	Upstream  apiclient.Config
	RateLimit rate.Limit

	Concurrency          int
	MaxAckPending        int
	Consumer             string
	AckWait              time.Duration
	MaxDeliver           int
	RetryBase            time.Duration
	RetryMax             time.Duration
	TimerInterval        time.Duration
	ReconcileInterval    time.Duration
	ReconcileAge         time.Duration
	LeaseTTL             time.Duration
	InboxRetention       time.Duration
	HousekeepingInterval time.Duration
	ShutdownTimeout      time.Duration
	VoucherDir           string
	Policy               refundflow.Policy

	Stream      events.StreamConfig
	WorkStreams events.WorkStreamsConfig
	TypeNames   callback.TypeNames
	LogLevel    slog.Level
}

// envVar documents one setting; the table drives both -h and loading.
type envVar struct {
	name, def, help string
}

var defaultTypes = callback.FormatTypeNames(callback.DefaultTypeNames()[callback.Platform1688])

var envVars = []envVar{
	{"NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated"},
	{"DB_PATH", "data/refunds.db", "SQLite database file (created with its directory; WAL; shared by the worker processes of one host)"},
	{"UPSTREAM_BASE_URL", "http://127.0.0.1:8090", "platform API root (the sandbox locally)"},
	{"UPSTREAM_ACCESS_KEY", "", "REQUIRED platform access key"},
	{"UPSTREAM_ACCESS_SECRET", "", "REQUIRED platform access secret (only used to sign; never logged)"},
	{"UPSTREAM_USER_ID", "", "REQUIRED platform user id (user-id header)"},
	{"UPSTREAM_PATH_<ENDPOINT>", "documented paths", "override one endpoint path, e.g. UPSTREAM_PATH_TAOBAO_SUBMIT (see apiclient.PathEnvVar)"},
	{"UPSTREAM_RATE_LIMIT", "20", "platform calls per second for this process, shared by all its goroutines (retries included)"},
	{"UPSTREAM_RATE_BURST", "10", "rate limiter burst"},
	{"UPSTREAM_TIMEOUT", "10s", "timeout of one platform call attempt"},
	{"UPSTREAM_MAX_ATTEMPTS", "4", "attempts of a read-only platform call within one step (side effects are never repeated by the client)"},
	{"WORKER_CONCURRENCY", "8", "messages and timers handled at once by this process"},
	{"WORKER_MAX_ACK_PENDING", "0", "each consumer's MaxAckPending, shared by all worker processes (server-enforced cap on messages in flight); 0 = WORKER_CONCURRENCY. With several processes set it to their total concurrency"},
	{"WORKER_METRICS_ADDR", "127.0.0.1:9090", "address of GET /healthz, /readyz and /metrics"},
	{"WORKER_CONSUMER", "refund-worker", "durable consumer name, shared by every worker process (on the callback and command streams)"},
	{"WORKER_ACK_WAIT", "60s", "JetStream AckWait; in-progress acks every third of it while a step runs. No BackOff is set (it would override AckWait)"},
	{"WORKER_MAX_DELIVER", "12", "deliveries after which the handler dead-letters a message (the consumer's MaxDeliver is this + 3, a safety net)"},
	{"WORKER_RETRY_BASE", "2s", "first NakWithDelay after a transient failure, doubling with each delivery; also the first delay before a case whose timer or reconcile wake failed is woken again, doubling with each failed input of the case in a row (reset when one gets anywhere)"},
	{"WORKER_RETRY_MAX", "5m", "cap of both backoffs (NakWithDelay and a failed case's next wake)"},
	{"WORKER_TIMER_INTERVAL", "1s", "how often due case timers (platform deadlines, re-checks, stalled steps) are swept"},
	{"WORKER_RECONCILE_INTERVAL", "1m", "how often the reconciler looks for open cases not checked on the platform lately"},
	{"WORKER_RECONCILE_AGE", "15m", "an open case whose last platform check is older than this is re-queried by the reconciler"},
	{"WORKER_RECHECK", "6h", "a waiting case re-checks the platform after this when the platform gives no earlier deadline (0: never)"},
	{"WORKER_STEP_TIMEOUT", "5m", "a case whose own step has not finished in this long is resumed by its timer (0: never)"},
	{"WORKER_INTENT_GRACE", "1h", "how long an unconfirmable intent (1688 create whose refund id was lost) waits for a refund callback before the case is parked"},
	{"WORKER_REFUSAL_MESSAGE", "", "message posted on a Taobao refund the seller refused ({reason} = the seller's reason); empty posts nothing"},
	{"WORKER_LEASE_TTL", "2m", "case lease: how long a case stays claimed by a process that stopped renewing it (must exceed the longest platform call)"},
	{"WORKER_INBOX_RETENTION", "336h", "consumed message ids are kept this long: redeliveries and platform re-pushes (5 retries 30 min apart) within it are dropped"},
	{"WORKER_HOUSEKEEPING_INTERVAL", "1h", "how often old inbox rows are pruned and the SQLite WAL is checkpointed"},
	{"WORKER_SHUTDOWN_TIMEOUT", "30s", "on SIGTERM/SIGINT: time allowed for in-flight steps before they are abandoned (intents keep them at most once)"},
	{"WORKER_VOUCHER_DIR", "", "directory holding voucher images named by requests (1688 upload); empty: requests needing vouchers park the case"},
	{"CALLBACK_STREAM", events.DefaultStreamName, "callback stream name (as for the receiver)"},
	{"CALLBACK_STREAM_MAX_AGE", events.DefaultMaxAge.String(), "callback stream max age (as for the receiver)"},
	{"CALLBACK_STREAM_REPLICAS", strconv.Itoa(events.DefaultReplicas), "stream replicas (1 single server, 3 in a cluster)"},
	{"CALLBACK_STREAM_MAX_BYTES", strconv.Itoa(events.DefaultMaxBytes), "callback stream size cap in bytes"},
	{"CALLBACK_STREAM_DUPLICATES", events.DefaultDuplicates.String(), "callback stream Nats-Msg-Id duplicate window"},
	{"COMMAND_STREAM", events.DefaultCommandStreamName, "operator command stream (subjects commands.>)"},
	{"DEADLETTER_STREAM", events.DefaultDeadLetterStreamName, "dead-letter stream (subjects deadletters.>)"},
	{"CALLBACK_TYPES_TAOBAO", defaultTypes, "known Taobao callback types as NAME=kind,… (as for the receiver)"},
	{"CALLBACK_TYPES_1688", defaultTypes, "known 1688 callback types as NAME=kind,… (as for the receiver)"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: worker [-h]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Drives refund cases: consumes platform callbacks and operator commands from NATS JetStream,")
	fmt.Fprintln(w, "calls the platform API and records every step in SQLite. Serves /healthz, /readyz and /metrics.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Environment:")
	for _, v := range envVars {
		def := v.def
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(w, "  %s (default: %s)\n        %s\n", v.name, def, v.help)
	}
}

// loadConfig reads the environment through getenv; unset or empty variables
// take the documented default. Errors never quote secret values.
func loadConfig(getenv func(string) string) (config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, v := range envVars {
			if v.name == name {
				return v.def
			}
		}
		return ""
	}
	var errs []error
	duration := func(name string, lo, hi time.Duration) time.Duration {
		d, err := time.ParseDuration(get(name))
		if err != nil || d < lo || d > hi {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration from %s to %s (e.g. 30s)", name, get(name), lo, hi))
		}
		return d
	}
	integer := func(name string, lo, hi int) int {
		n, err := strconv.Atoi(get(name))
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("%s=%q: want an integer from %d to %d", name, get(name), lo, hi))
		}
		return n
	}
	cfg := config{
		NATSURL:     get("NATS_URL"),
		DBPath:      get("DB_PATH"),
		MetricsAddr: get("WORKER_METRICS_ADDR"),
		Consumer:    get("WORKER_CONSUMER"),
		VoucherDir:  getenv("WORKER_VOUCHER_DIR"),
		Stream:      events.DefaultStreamConfig(),
		WorkStreams: events.DefaultWorkStreamsConfig(),
	}
	for _, name := range []string{"UPSTREAM_ACCESS_KEY", "UPSTREAM_ACCESS_SECRET", "UPSTREAM_USER_ID"} {
		if strings.TrimSpace(getenv(name)) == "" {
			errs = append(errs, fmt.Errorf("%s is not set: the worker signs every platform call with UPSTREAM_ACCESS_KEY, UPSTREAM_ACCESS_SECRET and UPSTREAM_USER_ID (the account's OpenAPI credentials)", name))
		}
	}
	paths, err := apiclient.PathsFromLookup(getenv)
	if err != nil {
		errs = append(errs, err)
	}
	rl, err := strconv.ParseFloat(get("UPSTREAM_RATE_LIMIT"), 64)
	if err != nil || rl <= 0 || rl > 100000 {
		errs = append(errs, fmt.Errorf("UPSTREAM_RATE_LIMIT=%q: want calls per second, > 0", get("UPSTREAM_RATE_LIMIT")))
	}
	cfg.RateLimit = rate.Limit(rl)
	cfg.Upstream = apiclient.Config{
		BaseURL:      get("UPSTREAM_BASE_URL"),
		AccessKey:    strings.TrimSpace(getenv("UPSTREAM_ACCESS_KEY")),
		AccessSecret: strings.TrimSpace(getenv("UPSTREAM_ACCESS_SECRET")),
		UserID:       strings.TrimSpace(getenv("UPSTREAM_USER_ID")),
		Paths:        paths,
		Timeout:      duration("UPSTREAM_TIMEOUT", 100*time.Millisecond, 5*time.Minute),
		RateLimit:    cfg.RateLimit,
		RateBurst:    integer("UPSTREAM_RATE_BURST", 1, 10000),
		Retry:        apiclient.RetryPolicy{MaxAttempts: integer("UPSTREAM_MAX_ATTEMPTS", 1, 20)},
	}
	cfg.Concurrency = integer("WORKER_CONCURRENCY", 1, 1024)
	if cfg.MaxAckPending = integer("WORKER_MAX_ACK_PENDING", 0, 100000); cfg.MaxAckPending == 0 {
		cfg.MaxAckPending = cfg.Concurrency
	}
	if cfg.Consumer == "" || strings.ContainsAny(cfg.Consumer, " .*>/\\\t") {
		errs = append(errs, fmt.Errorf("WORKER_CONSUMER=%q: want a name without spaces, '.', '*', '>' or slashes", cfg.Consumer))
	}
	cfg.AckWait = duration("WORKER_ACK_WAIT", time.Second, time.Hour)
	cfg.MaxDeliver = integer("WORKER_MAX_DELIVER", 1, 1000)
	cfg.RetryBase = duration("WORKER_RETRY_BASE", time.Millisecond, time.Hour)
	cfg.RetryMax = duration("WORKER_RETRY_MAX", time.Millisecond, 24*time.Hour)
	cfg.TimerInterval = duration("WORKER_TIMER_INTERVAL", 10*time.Millisecond, time.Hour)
	cfg.ReconcileInterval = duration("WORKER_RECONCILE_INTERVAL", 10*time.Millisecond, 24*time.Hour)
	cfg.ReconcileAge = duration("WORKER_RECONCILE_AGE", 0, 30*24*time.Hour)
	cfg.LeaseTTL = duration("WORKER_LEASE_TTL", time.Second, time.Hour)
	cfg.ShutdownTimeout = duration("WORKER_SHUTDOWN_TIMEOUT", 0, time.Hour)
	cfg.InboxRetention = duration("WORKER_INBOX_RETENTION", time.Hour, 10*365*24*time.Hour)
	cfg.HousekeepingInterval = duration("WORKER_HOUSEKEEPING_INTERVAL", time.Second, 24*time.Hour)
	cfg.Policy = refundflow.Policy{
		RefusalMessage: getenv("WORKER_REFUSAL_MESSAGE"),
		Recheck:        duration("WORKER_RECHECK", 0, 30*24*time.Hour),
		StepTimeout:    duration("WORKER_STEP_TIMEOUT", 0, 24*time.Hour),
		IntentGrace:    duration("WORKER_INTENT_GRACE", 0, 30*24*time.Hour),
	}
	if cfg.LeaseTTL <= cfg.Upstream.Timeout {
		errs = append(errs, fmt.Errorf("WORKER_LEASE_TTL %s must exceed UPSTREAM_TIMEOUT %s", cfg.LeaseTTL, cfg.Upstream.Timeout))
	}

	cfg.Stream.Name = get("CALLBACK_STREAM")
	cfg.Stream.MaxAge = duration("CALLBACK_STREAM_MAX_AGE", time.Minute, 10*365*24*time.Hour)
	cfg.Stream.Duplicates = duration("CALLBACK_STREAM_DUPLICATES", 100*time.Millisecond, 7*24*time.Hour)
	cfg.Stream.Replicas = integer("CALLBACK_STREAM_REPLICAS", 1, 5)
	if cfg.Stream.MaxBytes, err = strconv.ParseInt(get("CALLBACK_STREAM_MAX_BYTES"), 10, 64); err != nil {
		errs = append(errs, fmt.Errorf("CALLBACK_STREAM_MAX_BYTES=%q: want an integer", get("CALLBACK_STREAM_MAX_BYTES")))
	}
	if err := cfg.Stream.Validate(); err != nil {
		errs = append(errs, err)
	}
	cfg.WorkStreams.CommandStream = get("COMMAND_STREAM")
	cfg.WorkStreams.DeadLetterStream = get("DEADLETTER_STREAM")
	cfg.WorkStreams.Replicas = cfg.Stream.Replicas
	if err := cfg.WorkStreams.Validate(); err != nil {
		errs = append(errs, err)
	}

	cfg.TypeNames = callback.TypeNames{}
	for _, p := range []struct {
		env string
		p   callback.Platform
	}{{"CALLBACK_TYPES_TAOBAO", callback.PlatformTaobao}, {"CALLBACK_TYPES_1688", callback.Platform1688}} {
		m, err := callback.ParseTypeNames(get(p.env))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.env, err))
			continue
		}
		cfg.TypeNames[p.p] = m
	}
	switch strings.ToLower(get("LOG_LEVEL")) {
	case "debug":
		cfg.LogLevel = slog.LevelDebug
	case "info":
		cfg.LogLevel = slog.LevelInfo
	case "warn":
		cfg.LogLevel = slog.LevelWarn
	case "error":
		cfg.LogLevel = slog.LevelError
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", get("LOG_LEVEL")))
	}
	return cfg, errors.Join(errs...)
}
