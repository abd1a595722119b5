package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casework"
	"github.com/refundhub/refundhub/internal/envconfig"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/tracing"
)

// config is everything the worker reads from the environment. Work is the
// runtime's share (internal/casework); the rest builds the parts it runs
// on: the database, the platform client, the engine and NATS.
type config struct {
	NATSURL     string
	DBPath      string // the case store: DB_URL, else DB_PATH (envconfig.Reader.Store)
	MetricsAddr string

	Upstream  apiclient.Config
	RateLimit rate.Limit
	ClockSkew time.Duration
	LeaseTTL  time.Duration
	// StoreTimeout bounds each write on PostgreSQL (casestore
	// SetUpdateTimeout); 0: unbounded.
	StoreTimeout time.Duration
	// MessagesInterval: how often at most a case's seller conversation is read.
	MessagesInterval time.Duration
	// VoucherDir holds the voucher images that requests name; empty parks
	// the cases that need them.
	VoucherDir string
	Policy     refundflow.Policy
	Log        envconfig.LogConfig
	Tracing    tracing.Config

	Work casework.Config
}

// envVars documents every setting; the table drives both -h and loading.
// The callback stream's settings come from envconfig.CallbackStreamVars, the
// receiver's table: the worker reads them only to create the stream when it
// starts before any receiver. The platform connection's come from
// envconfig.UpstreamVars, shared with `refundctl doctor`.
var envVars = slices.Concat([]envconfig.Var{
	envconfig.V("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated"),
	envconfig.V("DB_PATH", "data/refunds.db", "SQLite database file (created with its directory; WAL; shared by the worker processes of one host)"),
	envconfig.StoreURLVar(),
}, envconfig.UpstreamVars(), []envconfig.Var{
	envconfig.V("UPSTREAM_CLOCK_SKEW", refundflow.DefaultClockSkew.String(), "how far the platform's clock may lag ours: a refund the platform says it created this long before our submission began is someone else's (INFERRED)"),
	envconfig.V("WORKER_MESSAGES_INTERVAL", refundflow.DefaultMessagesInterval.String(), "a Taobao case's refund messages (the seller conversation) are read when the case wakes or a callback comes, at most once per this interval; new seller messages go on the timeline and count as unread (refundctl messages); 0 = never read them"),
	envconfig.V("WORKER_CONCURRENCY", "8", "messages and timers handled at once by this process; as many recorded refund callbacks again may be waiting on their verification reads"),
	envconfig.V("WORKER_MAX_ACK_PENDING", "0", "each consumer's MaxAckPending, shared by all worker processes (server-enforced cap on messages delivered and not yet acknowledged); 0 = 4 × WORKER_CONCURRENCY. Each process pulls only as many messages as it has free slots and holds about twice its concurrency of either consumer, four times at worst (handled or verified, waiting for a slot, and up to twice its concurrency of commands queued behind their case); the headroom lets a restarted process take new messages at once while a killed one's wait for WORKER_ACK_WAIT. With several processes set it to 4 × their total concurrency"),
	envconfig.V("WORKER_METRICS_ADDR", "127.0.0.1:9090", "address of GET /healthz, /readyz and /metrics"),
	envconfig.V("WORKER_CONSUMER", "refund-worker", "durable consumer name, shared by every worker process (on the callback and command streams)"),
	envconfig.V("WORKER_ACK_WAIT", "10s", "JetStream AckWait: a killed process's messages come back after it; in-progress acks every third of it keep a message that is being handled. No BackOff is set (it would override AckWait)"),
	envconfig.V("WORKER_UNKNOWN_CASE_WAIT", "2m", "a command naming an order or sub-order that has no case yet is tried again for this long after it was issued (the request that opens the case may still be on its way), then dead-lettered as unknown_case"),
	envconfig.V("WORKER_MAX_DELIVER", "12", "deliveries after which the handler dead-letters a message (the consumer's MaxDeliver is this + 3, a safety net)"),
	envconfig.V("WORKER_RETRY_BASE", "2s", "first NakWithDelay after a transient failure, doubling with each delivery; also the first delay before a case whose timer or reconcile wake failed is woken again, doubling with each failed input of the case in a row (reset when one gets anywhere)"),
	envconfig.V("WORKER_RETRY_MAX", "5m", "cap of both backoffs (NakWithDelay and a failed case's next wake)"),
	envconfig.V("WORKER_TIMER_INTERVAL", "1s", "how often due case timers (platform deadlines, re-checks, stalled steps) are swept"),
	envconfig.V("WORKER_RECONCILE_INTERVAL", "1m", "how often the reconciler looks for open cases not checked on the platform lately"),
	envconfig.V("WORKER_RECONCILE_AGE", "15m", "an open case whose last platform check is older than this is re-queried by the reconciler"),
	envconfig.V("WORKER_RECHECK", "6h", "a waiting case re-checks the platform after this when the platform gives no earlier deadline (0: never)"),
	envconfig.V("WORKER_STEP_TIMEOUT", "5m", "a case whose own step has not finished in this long is resumed by its timer (0: never)"),
	envconfig.V("WORKER_INTENT_IN_FLIGHT", refundflow.DefaultInFlight.String(), "a side effect whose call timed out or lost its answer is sent again (same key) only if the platform still shows no effect this long after we stopped waiting for it: the request may still arrive later (INFERRED; 0 = trust the platform's view at once)"),
	envconfig.V("WORKER_INTENT_RESENDS", strconv.Itoa(refundflow.DefaultResendLimit), "how many resends in a row (same key, the waits doubling from WORKER_INTENT_IN_FLIGHT) of such a side effect the platform may refuse while it shows no effect, before the case stops for an operator (intent_resends_failed), who can send it once more (refundctl resolve N --retry); resends answered 5xx, timed out or rate limited do not count; at least 1"),
	envconfig.V("WORKER_ENDED_LIMIT", strconv.Itoa(refundflow.DefaultEndedLimit), "how many worker processes in a row may end (killed, out of memory, a crash) while they hold a case, before the case is held for an operator (worker_ended: no platform call until refundctl resolve N --retry or --close); a case whose own step or platform read ends the process would otherwise be woken after every restart; 0: never held"),
	envconfig.V("WORKER_PLATFORM_AWAY_LIMIT", refundflow.DefaultPlatformAwayLimit.String(), "how long, from when a callback or command was first kept for its case, failures of its platform read while the platform pauses us (a rate limit, a 5xx, a timeout) do not count towards WORKER_MAX_DELIVER: an outage does not dead-letter what waits through it, while an input the platform never answers still becomes a dead letter after it; 0: such failures always count"),
	envconfig.V("WORKER_FAILING_FLAG", strconv.Itoa(refundflow.DefaultFailingFlag), "how many inputs of a case in a row may fail (a platform read or step that keeps failing, retried at the WORKER_RETRY_BASE/MAX backoff) before the case is flagged inputs_failing for an operator; it goes on retrying, and the flag goes with the first input that gets through; 0: never flagged"),
	envconfig.V("WORKER_INTENT_GRACE", "1h", "how long an unconfirmable intent (a 1688 create whose refund id was lost; a Taobao submission whose callback's refund the order's list does not show) waits for evidence before the case is parked"),
	envconfig.V("WORKER_REFUSAL_MESSAGE", "", "message posted on a Taobao refund the seller refused ({reason} = the seller's reason); empty posts nothing"),
	envconfig.V("WORKER_STORE_TIMEOUT", "30s", "PostgreSQL (DB_URL): the longest one write of the worker may take, from taking a connection to its commit; past it the database counts as not answering (a network dropping packets, a hung server) and the work is held until it answers, instead of waiting for TCP to give up (about 15 minutes); also how long data sent on a connection may go unacknowledged (Linux), reads included; 0: no write bound, connections at 30 s. Not SQLite"),
	envconfig.V("WORKER_LEASE_TTL", "2m", "case lease: how long a case stays claimed by a process that stopped renewing it (must exceed the longest platform call)"),
	envconfig.V("WORKER_INBOX_RETENTION", "336h", "consumed message ids are kept this long: redeliveries and platform re-pushes (5 retries 30 min apart) within it are dropped"),
	envconfig.V("WORKER_HOUSEKEEPING_INTERVAL", "1h", "how often old inbox rows are pruned and the SQLite WAL is checkpointed"),
	envconfig.V("WORKER_SHUTDOWN_TIMEOUT", "30s", "on SIGTERM/SIGINT: time allowed for in-flight steps before they are abandoned (intents keep them at most once)"),
	envconfig.V("WORKER_VOUCHER_DIR", "", "directory holding voucher images named by requests (1688 upload); empty: requests needing vouchers park the case"),
}, envconfig.CallbackStreamVars(), []envconfig.Var{
	envconfig.V("COMMAND_STREAM", events.DefaultCommandStreamName, "operator command stream (subjects commands.>)"),
	envconfig.V("DEADLETTER_STREAM", events.DefaultDeadLetterStreamName, "dead-letter stream (subjects deadletters.>)"),
	envconfig.V("DELIVERY_LIMIT_STREAM", events.DefaultLimitStreamName, "keeps the server's advisories that the worker's consumers stopped delivering a message; each becomes a delivery_limit dead letter"),
}, envconfig.LogVars(), envconfig.TracingVars())

// usage is the -h text: what the worker does, then every variable with its
// default (envVars).
func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: worker [-h]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Drives refund cases: consumes platform callbacks and operator commands from NATS JetStream,")
	fmt.Fprintln(w, "calls the platform API and records every step in the case store (SQLite, or PostgreSQL with DB_URL).")
	fmt.Fprintln(w, "Serves /healthz, /readyz and /metrics.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "The callback stream belongs to the receiver. The worker creates it from the CALLBACK_MAX_BYTES and")
	fmt.Fprintln(w, "CALLBACK_STREAM_* settings below only when it starts first; an existing stream is left as it is")
	fmt.Fprintln(w, "(settings that differ from the worker's are logged at warn). Replicas also apply to the worker's")
	fmt.Fprintln(w, "command and dead-letter streams.")
	fmt.Fprintln(w)
	envconfig.Usage(w, envVars)
}

// configure reads the command line, which takes only -h (configuration is
// by environment), and then the environment through getenv. After -h it
// returns flag.ErrHelp, the usage printed to stdout.
func configure(args []string, getenv func(string) string, stdout, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stdout) }
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q; configuration is by environment (see -h)", fs.Args())
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return config{}, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// loadConfig reads the environment through getenv; unset or empty variables
// take the documented default. Errors never quote secret values. It is
// longer than a screen on purpose: every variable is read here and nowhere
// else, so adding one is a row in envVars and a line here.
func loadConfig(getenv func(string) string) (config, error) {
	env := envconfig.NewReader(envVars, getenv)
	get, duration, integer := env.String, env.Duration, env.Int
	cfg := config{
		NATSURL:     get("NATS_URL"),
		DBPath:      env.Store(),
		MetricsAddr: get("WORKER_METRICS_ADDR"),
		VoucherDir:  getenv("WORKER_VOUCHER_DIR"),
		Work: casework.Config{
			Consumer:    get("WORKER_CONSUMER"),
			WorkStreams: events.DefaultWorkStreamsConfig(),
		},
	}
	w := &cfg.Work
	cfg.Upstream = env.Upstream()
	cfg.RateLimit = cfg.Upstream.RateLimit
	profile := cfg.Upstream.Profile
	w.Concurrency = integer("WORKER_CONCURRENCY", 1, 1024)
	// As many connections to the platform stay open as calls can run at
	// once (the inputs' and as many callback verifications beside them):
	// calls that finish together do not close theirs, to dial again.
	cfg.Upstream.MaxIdleConns = max(2*w.Concurrency, apiclient.DefaultMaxIdleConns)
	if w.MaxAckPending = integer("WORKER_MAX_ACK_PENDING", 0, 100000); w.MaxAckPending == 0 {
		w.MaxAckPending = 4 * w.Concurrency
	}
	if w.Consumer == "" || strings.ContainsAny(w.Consumer, " .*>/\\\t") {
		env.Fail(fmt.Errorf("WORKER_CONSUMER=%q: want a name without spaces, '.', '*', '>' or slashes", w.Consumer))
	}
	w.AckWait = duration("WORKER_ACK_WAIT", time.Second, time.Hour)
	w.UnknownCaseWait = duration("WORKER_UNKNOWN_CASE_WAIT", 0, 24*time.Hour)
	cfg.ClockSkew = duration("UPSTREAM_CLOCK_SKEW", 0, 24*time.Hour)
	if cfg.MessagesInterval = duration("WORKER_MESSAGES_INTERVAL", 0, 24*time.Hour); cfg.MessagesInterval == 0 {
		cfg.MessagesInterval = -1 // never (the engine's 0 is its default)
	}
	w.MaxDeliver = integer("WORKER_MAX_DELIVER", 1, 1000)
	w.RetryBase = duration("WORKER_RETRY_BASE", time.Millisecond, time.Hour)
	w.RetryMax = duration("WORKER_RETRY_MAX", time.Millisecond, 24*time.Hour)
	w.TimerInterval = duration("WORKER_TIMER_INTERVAL", 10*time.Millisecond, time.Hour)
	w.ReconcileInterval = duration("WORKER_RECONCILE_INTERVAL", 10*time.Millisecond, 24*time.Hour)
	w.ReconcileAge = duration("WORKER_RECONCILE_AGE", 0, 30*24*time.Hour)
	cfg.LeaseTTL = duration("WORKER_LEASE_TTL", time.Second, time.Hour)
	if cfg.StoreTimeout = duration("WORKER_STORE_TIMEOUT", 0, time.Hour); cfg.StoreTimeout > 0 && cfg.StoreTimeout < time.Second {
		env.Fail(fmt.Errorf("WORKER_STORE_TIMEOUT=%s: want 0 (no bound) or from 1s (a write also connects and commits)", cfg.StoreTimeout))
	}
	w.ShutdownTimeout = duration("WORKER_SHUTDOWN_TIMEOUT", 0, time.Hour)
	w.InboxRetention = duration("WORKER_INBOX_RETENTION", time.Hour, 10*365*24*time.Hour)
	w.HousekeepingInterval = duration("WORKER_HOUSEKEEPING_INTERVAL", time.Second, 24*time.Hour)
	cfg.Policy = refundflow.Policy{
		RefusalMessage: getenv("WORKER_REFUSAL_MESSAGE"),
		Recheck:        duration("WORKER_RECHECK", 0, 30*24*time.Hour),
		StepTimeout:    duration("WORKER_STEP_TIMEOUT", 0, 24*time.Hour),
		IntentGrace:    duration("WORKER_INTENT_GRACE", 0, 30*24*time.Hour),
		InFlight:       duration("WORKER_INTENT_IN_FLIGHT", 0, 24*time.Hour),
		// At least 1: with no limit a case the platform keeps refusing
		// never stops, and resolve (the operator's way in) only takes
		// stopped cases.
		ResendLimit: integer("WORKER_INTENT_RESENDS", 1, 100),
		EndedLimit:  integer("WORKER_ENDED_LIMIT", 0, 100),
		FailingFlag: integer("WORKER_FAILING_FLAG", 0, 1000),
		// Up to a month, as the other case-time settings.
		PlatformAwayLimit: duration("WORKER_PLATFORM_AWAY_LIMIT", 0, 30*24*time.Hour),
	}
	if cfg.LeaseTTL <= cfg.Upstream.Timeout {
		env.Fail(fmt.Errorf("WORKER_LEASE_TTL %s must exceed UPSTREAM_TIMEOUT %s", cfg.LeaseTTL, cfg.Upstream.Timeout))
	}

	// The push size limit is the receiver's; here it only sizes the stream.
	w.Stream, _ = env.CallbackStream()
	w.WorkStreams.CommandStream = get("COMMAND_STREAM")
	w.WorkStreams.DeadLetterStream = get("DEADLETTER_STREAM")
	w.WorkStreams.LimitStream = get("DELIVERY_LIMIT_STREAM")
	w.WorkStreams.Replicas = w.Stream.Replicas
	if err := w.WorkStreams.Validate(); err != nil {
		env.Fail(err)
	}
	// The worker rewrites its own streams' settings on every start: one
	// named like the receiver's callback stream would rewrite that.
	for name, v := range map[string]string{"COMMAND_STREAM": w.WorkStreams.CommandStream, "DEADLETTER_STREAM": w.WorkStreams.DeadLetterStream,
		"DELIVERY_LIMIT_STREAM": w.WorkStreams.LimitStream} {
		if v == w.Stream.Name {
			env.Fail(fmt.Errorf("%s=%q: the callback stream's name; want another", name, v))
		}
	}

	if profile != nil {
		w.TypeNames = callback.TypeNamesFromProfile(profile)
	}
	cfg.Log = env.Log()
	cfg.Tracing = env.Tracing()
	return cfg, env.Err()
}
