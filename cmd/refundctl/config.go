package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/envconfig"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/tracing"
)

// config is everything refundctl reads from the environment; global flags
// override each field that has one.
type config struct {
	NATSURL        string         // NATS_URL, --nats-url
	DBPath         string         // DB_URL, else DB_PATH (envconfig.Reader.Store); --db
	ReceiverURL    string         // RECEIVER_URL, --receiver-url
	Token          string         // CALLBACK_TOKEN (never a flag: it would show in ps and shell history)
	SigningSecrets []string       // CALLBACK_SIGNING_SECRETS: HTTP posts are signed with the first one
	Stream         string         // CALLBACK_STREAM, --stream
	Operator       string         // REFUNDCTL_OPERATOR, else USER, --operator
	ProfilePath    string         // UPSTREAM_PROFILE: overrides of the built-in platform profile
	ConsoleURL     string         // REFUNDHUB_URL, --url: when set, the case and command verbs go through the console's API
	ConsoleToken   string         // REFUNDHUB_TOKEN (never a flag, like CALLBACK_TOKEN)
	Timeout        time.Duration  // --timeout only: connect and per-request timeout
	JSON           bool           // --json only
	Tracing        tracing.Config // OTEL_*: off unless OTEL_TRACES_EXPORTER=otlp
	// TracingOff is why tracing is off although OTEL_* ask for it: a
	// setting refundctl cannot use (applyEnv warns). nil otherwise.
	TracingOff error
}

// defaultTimeout is --timeout's default: long enough for a JetStream ack
// on a loaded server, short enough for an operator at a terminal.
const defaultTimeout = 5 * time.Second

// envVars documents every variable refundctl reads; the table drives both
// the Environment section of --help and loading (loadConfig, loadUpstream).
// The platform connection's entries come from envconfig.UpstreamVars, the
// one table the worker lists too.
//
// USER is in the table because refundctl reads it: it names the operator
// when REFUNDCTL_OPERATOR is unset, so its default is the name used when
// neither is set.
var envVars = slices.Concat([]envconfig.Var{
	envconfig.V("NATS_URL", "nats://127.0.0.1:4222", "NATS server URL (commands, dead-letter retry, replay from the stream); --nats-url wins"),
	envconfig.V("DB_PATH", "data/refunds.db", "the worker's SQLite case store (list, show, wait, dead-letters; never created or migrated); --db wins"),
	envconfig.StoreURLVar(),
	envconfig.V("RECEIVER_URL", "http://127.0.0.1:8080", "the receiver's base URL (trigger, replay --to receiver); --receiver-url wins"),
	envconfig.V("CALLBACK_TOKEN", "", "the receiver's secret URL token (trigger, replay --to receiver); never printed"),
	envconfig.V("CALLBACK_SIGNING_SECRETS", "", "whsec_… secrets of the receiver; when set, posts are signed (Standard Webhooks) with the first"),
	envconfig.V("CALLBACK_STREAM", events.DefaultStreamName, "the callback stream replay and parked read; --stream wins"),
	envconfig.V("REFUNDCTL_OPERATOR", "", "operator name recorded with commands and dead-letter discards; unset: USER; --operator wins"),
	envconfig.V("REFUNDHUB_URL", "", "the console's base URL: when set, list, show, wait, request, ship, cancel, message, modify and resolve go through its API (no DB_PATH or NATS needed), and the other commands refuse; --url wins"),
	envconfig.V("REFUNDHUB_TOKEN", "", "the console API token REFUNDHUB_URL is used with (an operator's, to send commands); never printed"),
	envconfig.V("USER", "refundctl", "the login name: the operator name when REFUNDCTL_OPERATOR is unset"),
}, upstreamVars(), envconfig.TracingVars())

// upstreamVars are the platform connection's variables, which doctor and
// reasons read as the worker does (loadUpstream); parked, replay and
// trigger read UPSTREAM_PROFILE too.
func upstreamVars() []envconfig.Var {
	vars := envconfig.UpstreamVars()
	for i, v := range vars {
		if v.Name == "UPSTREAM_PROFILE" {
			vars[i].Help = "platform profile overrides, as the receiver and worker read them (parked compares with it; replay and trigger parse callbacks with its types; doctor checks it; reasons calls with it)"
		} else {
			vars[i].Help = "doctor, reasons: " + v.Help
		}
	}
	return vars
}

// loadConfig reads the environment through getenv; unset or blank variables
// take the documented default. With an empty environment it returns the
// defaults --help shows. Flags are applied over it (applyFlags).
func loadConfig(getenv func(string) string) (config, error) {
	env := envconfig.NewReader(envVars, getenv)
	cfg := config{
		NATSURL:        env.String("NATS_URL"),
		DBPath:         env.Store(),
		ReceiverURL:    env.String("RECEIVER_URL"),
		Token:          strings.TrimSpace(getenv("CALLBACK_TOKEN")), // a secret: read directly, never quoted
		SigningSecrets: strings.Fields(getenv("CALLBACK_SIGNING_SECRETS")),
		Stream:         env.String("CALLBACK_STREAM"),
		Operator:       env.String("REFUNDCTL_OPERATOR"),
		ProfilePath:    env.String("UPSTREAM_PROFILE"),
		ConsoleURL:     env.String("REFUNDHUB_URL"),
		ConsoleToken:   strings.TrimSpace(getenv("REFUNDHUB_TOKEN")), // a secret: read directly, never quoted
		Timeout:        defaultTimeout,
	}
	if cfg.Operator == "" {
		cfg.Operator = env.String("USER")
	}
	// Tracing is a courtesy here, unlike in the daemons, which refuse to
	// start: an operator's shell may carry OTEL_* set for other tools
	// (OTEL_TRACES_EXPORTER=console), and that must not stand between them
	// and a refund. A setting refundctl cannot use turns tracing off.
	tenv := envconfig.NewReader(envVars, getenv)
	if cfg.Tracing = tenv.Tracing(); tenv.Err() != nil {
		cfg.Tracing, cfg.TracingOff = tracing.Config{Disabled: true}, tenv.Err()
	}
	return cfg, env.Err()
}

// loadUpstream reads the platform connection (doctor's and reasons') with
// the worker's code, from the same table. It is apart from loadConfig so
// that only the commands calling the platform need the credentials.
func loadUpstream(getenv func(string) string) (apiclient.Config, error) {
	env := envconfig.NewReader(envVars, getenv)
	cfg := env.Upstream()
	if err := env.Err(); err != nil {
		return apiclient.Config{}, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// applyEnv sets from the environment every setting whose flag was not given:
// flags override the environment, which overrides the defaults. The flags
// are registered with the defaults and the environment is read after
// parsing, so --help shows the documented defaults and never an environment
// value (a NATS URL may hold a password).
func (a *app) applyEnv(flags *pflag.FlagSet, getenv func(string) string) error {
	env, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	unlessFlag := func(flag string, dst *string, v string) {
		if !flags.Changed(flag) {
			*dst = v
		}
	}
	unlessFlag("nats-url", &a.cfg.NATSURL, env.NATSURL)
	unlessFlag("db", &a.cfg.DBPath, env.DBPath)
	unlessFlag("receiver-url", &a.cfg.ReceiverURL, env.ReceiverURL)
	unlessFlag("stream", &a.cfg.Stream, env.Stream)
	unlessFlag("operator", &a.cfg.Operator, env.Operator)
	unlessFlag("url", &a.cfg.ConsoleURL, env.ConsoleURL)
	a.cfg.ConsoleToken = env.ConsoleToken
	a.cfg.Token, a.cfg.SigningSecrets, a.cfg.ProfilePath = env.Token, env.SigningSecrets, env.ProfilePath
	a.cfg.Tracing = env.Tracing
	if env.TracingOff != nil {
		// One line, however many settings are wrong (errors.Join's lines).
		fmt.Fprintf(a.stderr, "refundctl: warning: tracing off: %s\n", strings.ReplaceAll(env.TracingOff.Error(), "\n", "; "))
	}
	if a.spans != nil {
		a.cfg.Tracing.SpanExporter = a.spans
	}
	return nil
}

// envHelp is the Environment section of --help, printed from envVars.
func envHelp() string {
	var b strings.Builder
	envconfig.Usage(&b, envVars)
	return b.String()
}
