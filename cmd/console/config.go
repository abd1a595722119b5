package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/console"
	"github.com/refundhub/refundhub/internal/envconfig"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/tracing"
)

// config is everything the console reads from the environment.
type config struct {
	Addr            string
	DBPath          string // the case store: DB_URL, else DB_PATH (envconfig.Reader.Store)
	NATSURL         string
	Console         console.Config
	ShutdownTimeout time.Duration
	Log             envconfig.LogConfig
	Tracing         tracing.Config
	// Upstream is the platform connection for the request form's reasons
	// look-up; nil when no credential is set (the look-up is off).
	Upstream *apiclient.Config
}

// envVars documents every setting; the table drives both -h and loading.
var envVars = slices.Concat([]envconfig.Var{
	envconfig.V("CONSOLE_ADDR", "127.0.0.1:8070", "listen address (host:port; port 0 picks a free port)"),
	envconfig.V("DB_PATH", "data/refunds.db", "the worker's SQLite case store, opened read-only (never created or migrated); the console waits for it at start-up"),
	envconfig.StoreURLVar(),
	envconfig.V("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated: actions are published to the COMMANDS stream there"),
	envconfig.V("CONSOLE_TOKENS", "", "RETIRED: must be unset; accounts and API tokens live in the case store (refundctl console users, tokens)"),
	envconfig.V("CONSOLE_TOKENS_FILE", "", "RETIRED: must be unset, as CONSOLE_TOKENS"),
	envconfig.V("CONSOLE_SESSION_KEY", "", "REQUIRED secret signing session cookies and CSRF tokens: at least 32 characters, e.g. $(openssl rand -hex 32); changing it ends every session"),
	envconfig.V("CONSOLE_SESSION_TTL", "12h", "how long a login lasts (1m to 720h)"),
	envconfig.V("CONSOLE_COOKIE_SECURE", "false", "true marks the session cookie Secure: set it when the console is reached over HTTPS"),
	envconfig.V("CONSOLE_VERDICT_WAIT", "5s", "how long an action waits for the worker's verdict before showing it as pending (100ms to 1m)"),
	envconfig.V("CONSOLE_EVENTS_INTERVAL", "1s", "how often an open event stream (/api/v1/events, the live case page) reads the case store for changes (100ms to 1m)"),
	envconfig.V("CALLBACK_STREAM", events.DefaultStreamName, "the receiver's callback stream: a replay from a case's timeline reads the message there and stores it there again"),
	envconfig.V("CONSOLE_SHUTDOWN_TIMEOUT", "10s", "on SIGTERM/SIGINT: time allowed for in-flight requests and the NATS drain"),
}, upstreamVars(), envconfig.LogVars(), envconfig.TracingVars())

// upstreamVars are the platform connection's variables, as the worker
// reads them. The console asks the platform for one thing, read-only: the
// reasons it offers, for the request form's look-up. Without credentials
// the look-up is off; with any of them set, all are checked as the
// worker checks them.
func upstreamVars() []envconfig.Var {
	vars := envconfig.UpstreamVars()
	for i, v := range vars {
		vars[i].Help = "optional, the reasons look-up (request form and GET /api/v1/reasons; off unless UPSTREAM_ACCESS_KEY, UPSTREAM_ACCESS_SECRET and UPSTREAM_USER_ID are set): " +
			strings.TrimPrefix(v.Help, "REQUIRED ")
		// The console's calls add to the worker's against the account's
		// quota: a small share by default, one Taobao look-up (five
		// forms) at once.
		switch v.Name {
		case "UPSTREAM_RATE_LIMIT":
			vars[i].Default = "2"
		case "UPSTREAM_RATE_BURST":
			vars[i].Default = "5"
		}
	}
	return vars
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: console [-h]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Serves the operator console (pages and /api/v1) over the case store, and publishes the")
	fmt.Fprintln(w, "operator's actions to NATS JetStream. Also serves /healthz, /readyz and /metrics.")
	fmt.Fprintln(w)
	envconfig.Usage(w, envVars)
}

// loadConfig reads the environment through getenv; unset or empty
// variables take the documented default. Errors never quote secrets.
func loadConfig(getenv func(string) string) (config, error) {
	env := envconfig.NewReader(envVars, getenv)
	cfg := config{
		Addr:    env.String("CONSOLE_ADDR"),
		DBPath:  env.Store(),
		NATSURL: env.String("NATS_URL"),
	}
	env.Fail(refuseTokenLists(getenv))
	key := getenv("CONSOLE_SESSION_KEY") // a secret: read directly, never quoted
	switch {
	case key == "":
		env.Fail(errors.New("CONSOLE_SESSION_KEY is not set: set it to a long random secret, e.g. CONSOLE_SESSION_KEY=$(openssl rand -hex 32)"))
	case len(key) < 32:
		env.Fail(errors.New("CONSOLE_SESSION_KEY must be at least 32 characters, e.g. $(openssl rand -hex 32)"))
	}
	cfg.Console.SessionKey = []byte(key)
	cfg.Console.SessionTTL = env.Duration("CONSOLE_SESSION_TTL", time.Minute, 720*time.Hour)
	secure, err := strconv.ParseBool(env.String("CONSOLE_COOKIE_SECURE"))
	if err != nil {
		env.Fail(fmt.Errorf("CONSOLE_COOKIE_SECURE=%q: want true or false", env.String("CONSOLE_COOKIE_SECURE")))
	}
	cfg.Console.SecureCookie = secure
	cfg.Console.VerdictWait = env.Duration("CONSOLE_VERDICT_WAIT", 100*time.Millisecond, time.Minute)
	cfg.Console.EventsInterval = env.Duration("CONSOLE_EVENTS_INTERVAL", 100*time.Millisecond, time.Minute)
	cfg.Console.CallbackStream = env.String("CALLBACK_STREAM")
	cfg.ShutdownTimeout = env.Duration("CONSOLE_SHUTDOWN_TIMEOUT", time.Second, 10*time.Minute)
	cfg.Log = env.Log()
	cfg.Tracing = env.Tracing()
	// Read with a reader of its own: without any credential the
	// connection is unused, and its settings are not the console's errors.
	uenv := envconfig.NewReader(envVars, getenv)
	up := uenv.Upstream()
	if getenv("UPSTREAM_ACCESS_KEY") != "" || getenv("UPSTREAM_ACCESS_SECRET") != "" || getenv("UPSTREAM_USER_ID") != "" {
		env.Fail(uenv.Err())
		cfg.Upstream = &up
	}
	return cfg, env.Err()
}

// retiredVars were the console's account lists before accounts moved into
// the case store. One that is still set would be a second, silently
// ignored list of who may log in, so the console refuses to start.
var retiredVars = []string{"CONSOLE_TOKENS", "CONSOLE_TOKENS_FILE"}

// refuseTokenLists fails when a retired account list is set, saying what
// replaced it; the value (hashes) is never quoted.
func refuseTokenLists(getenv func(string) string) error {
	for _, k := range retiredVars {
		if getenv(k) != "" {
			return fmt.Errorf("%s is no longer read: accounts and API tokens live in the case store; "+
				"create them with `refundctl console users add NAME --role operator` and `refundctl console tokens add --user NAME --label TEXT`, "+
				"then unset %s (docs/console.md)", k, k)
		}
	}
	return nil
}
