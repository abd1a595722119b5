package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/envconfig"
	"github.com/refundhub/refundhub/internal/events"
)

// config is everything refundctl reads from the environment; global flags
// override each field.
type config struct {
	NATSURL        string        // NATS_URL, --nats-url
	DBPath         string        // DB_PATH, --db
	ReceiverURL    string        // RECEIVER_URL, --receiver-url
	Token          string        // CALLBACK_TOKEN (never a flag: it would show in ps and shell history)
	SigningSecrets []string      // CALLBACK_SIGNING_SECRETS: HTTP posts are signed with the first one
	Stream         string        // CALLBACK_STREAM, --stream
	Operator       string        // REFUNDCTL_OPERATOR (else USER), --operator
	ProfilePath    string        // UPSTREAM_PROFILE: overrides of the built-in platform profile (parked)
	Timeout        time.Duration // --timeout: connect and per-request timeout
	JSON           bool          // --json
}

// envVar documents one environment variable; the table drives the help text.
type envVar struct{ name, def, help string }

var envVars = append([]envVar{
	{"NATS_URL", "nats://127.0.0.1:4222", "NATS server URL (commands, dead-letter retry, replay from the stream)"},
	{"DB_PATH", "data/refunds.db", "the worker's SQLite case store (list, show, wait, dead-letters; never created or migrated)"},
	{"RECEIVER_URL", "http://127.0.0.1:8080", "the receiver's base URL (trigger, replay --to receiver)"},
	{"CALLBACK_TOKEN", "", "the receiver's secret URL token (trigger, replay --to receiver); never printed"},
	{"CALLBACK_SIGNING_SECRETS", "", "whsec_… secrets of the receiver; when set, posts are signed (Standard Webhooks) with the first"},
	{"CALLBACK_STREAM", events.DefaultStreamName, "the callback stream replay reads"},
	{"REFUNDCTL_OPERATOR", "$USER", "operator name recorded with commands"},
	{"UPSTREAM_PROFILE", "", "platform profile overrides, as the receiver and worker read them (parked compares with it; replay and trigger parse callbacks with its types; doctor checks it)"},
}, upstreamEnvVars()...)

// upstreamEnvVars are the platform connection's variables, which doctor
// reads as the worker does (envconfig.UpstreamVars, their one table);
// UPSTREAM_PROFILE is in envVars already, for every command.
func upstreamEnvVars() []envVar {
	var out []envVar
	for _, v := range envconfig.UpstreamVars() {
		if v.Name != "UPSTREAM_PROFILE" {
			out = append(out, envVar{v.Name, v.Default, "doctor: " + v.Help})
		}
	}
	return out
}

// defaultConfig returns the documented defaults (shown in --help).
func defaultConfig() config {
	return config{
		NATSURL:     "nats://127.0.0.1:4222",
		DBPath:      "data/refunds.db",
		ReceiverURL: "http://127.0.0.1:8080",
		Stream:      events.DefaultStreamName,
		Operator:    "refundctl",
		Timeout:     5 * time.Second,
	}
}

// applyEnv sets from the environment every setting whose flag was not given:
// flags override the environment, which overrides the defaults. Defaults are
// applied before parsing and the environment after, so --help shows the
// documented defaults and never an environment value (a NATS URL may hold a
// password).
func (a *app) applyEnv(flags *pflag.FlagSet, getenv func(string) string) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	set := func(flag string, dst *string, names ...string) {
		if flags.Changed(flag) {
			return
		}
		for _, n := range names {
			if v := get(n); v != "" {
				*dst = v
				return
			}
		}
	}
	set("nats-url", &a.cfg.NATSURL, "NATS_URL")
	set("db", &a.cfg.DBPath, "DB_PATH")
	set("receiver-url", &a.cfg.ReceiverURL, "RECEIVER_URL")
	set("stream", &a.cfg.Stream, "CALLBACK_STREAM")
	set("operator", &a.cfg.Operator, "REFUNDCTL_OPERATOR", "USER")
	a.cfg.Token = get("CALLBACK_TOKEN")
	a.cfg.ProfilePath = get("UPSTREAM_PROFILE")
	a.cfg.SigningSecrets = strings.Fields(getenv("CALLBACK_SIGNING_SECRETS"))
}

// app is the state shared by the commands of one run.
type app struct {
	cfg    config
	getenv func(string) string // for settings other commands share (doctor's UPSTREAM_*)
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
}

// run parses args, runs the command and returns its error; main prints it
// as one line and exits with exitCode.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	a := &app{cfg: defaultConfig(), getenv: getenv, stdout: stdout, stderr: stderr, now: time.Now}
	root := a.rootCommand()
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) { a.applyEnv(cmd.Flags(), getenv) }
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "refundctl",
		Short: "Operate refundhub: issue commands, inspect cases, replay and trigger callbacks, check the platform profile",
		Long: "refundctl drives refundhub by hand: it publishes operator commands to the worker,\n" +
			"reads the case store, retries dead letters, replays stored callbacks,\n" +
			"synthesises platform callbacks and checks the platform profile against the\n" +
			"platform (doctor).\n\nEnvironment (flags override):\n" + envHelp(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.cfg.NATSURL, "nats-url", a.cfg.NATSURL, "NATS server URL (env NATS_URL)")
	pf.StringVar(&a.cfg.DBPath, "db", a.cfg.DBPath, "case store path (env DB_PATH)")
	pf.StringVar(&a.cfg.ReceiverURL, "receiver-url", a.cfg.ReceiverURL, "receiver base URL (env RECEIVER_URL)")
	pf.StringVar(&a.cfg.Stream, "stream", a.cfg.Stream, "callback stream name (env CALLBACK_STREAM)")
	pf.StringVar(&a.cfg.Operator, "operator", a.cfg.Operator, "operator name recorded with commands (env REFUNDCTL_OPERATOR)")
	pf.DurationVar(&a.cfg.Timeout, "timeout", a.cfg.Timeout, "connect and per-request timeout")
	pf.BoolVar(&a.cfg.JSON, "json", false, "machine-readable JSON output")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	root.AddCommand(
		a.requestCommand(), a.shipCommand(), a.cancelCommand(), a.messageCommand(),
		a.listCommand(), a.showCommand(), a.waitCommand(), a.deadLettersCommand(),
		a.replayCommand(), a.triggerCommand(), a.parkedCommand(), a.doctorCommand(),
	)
	return root
}

func envHelp() string {
	var b strings.Builder
	for _, v := range envVars {
		def := v.def
		if def == "" {
			def = "none"
		}
		fmt.Fprintf(&b, "  %-25s %s (default %s)\n", v.name, v.help, def)
	}
	return b.String()
}

// usageError is bad input: wrong flags or arguments, malformed ids, invalid
// ranges. Exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErr(err error) error { return &usageError{err: err} }

func usagef(format string, args ...any) error { return usageErr(fmt.Errorf(format, args...)) }

// runtimeError is a failure while doing the work (NATS down, case not
// found, receiver refused). Exit status 1.
type runtimeError struct{ err error }

func (e *runtimeError) Error() string { return e.err.Error() }
func (e *runtimeError) Unwrap() error { return e.err }

// refusedError is a valid request the state forbids: a dead letter already
// retried or discarded, a permanent failure retried without --force.
// Nothing was changed. Exit status 4.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }
func (e *refusedError) Unwrap() error { return e.err }

func refusedf(format string, args ...any) error {
	return &refusedError{err: fmt.Errorf(format, args...)}
}

// exitRefused is the exit status of a refusedError.
const exitRefused = 4

// runE wraps a command body so its errors are classified: errors that are not
// usage errors are runtime errors. Errors cobra produces itself (unknown
// command, wrong argument count, missing required flag) stay unclassified
// and count as usage errors.
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err == nil {
			return nil
		}
		var u *usageError
		if errors.As(err, &u) {
			return err
		}
		return &runtimeError{err: err}
	}
}

// exitCode maps an error from run to the process exit status: 0, 1
// runtime, 2 usage, 3 doctor found a contradicted guess, 4 refused (nothing
// changed).
func exitCode(err error) int {
	var r *runtimeError
	var c *contradictedError
	var ref *refusedError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &c):
		return exitContradicted
	case errors.As(err, &ref):
		return exitRefused
	case errors.As(err, &r):
		return 1
	default:
		return 2
	}
}

// errorLine flattens an error into one line (joined validation errors and
// cobra's suggestions span several).
func errorLine(err error) string {
	var parts []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, "; ")
}

// redactURL drops user info from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// connect opens a NATS connection that fails fast: no retries, no reconnects.
func (a *app) connect() (*nats.Conn, jetstream.JetStream, error) {
	if a.cfg.Timeout <= 0 {
		return nil, nil, usagef("--timeout %s: must be positive", a.cfg.Timeout)
	}
	nc, err := nats.Connect(a.cfg.NATSURL, nats.Name("refundctl"), nats.Timeout(a.cfg.Timeout), nats.NoReconnect())
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(a.cfg.NATSURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// openStore opens the existing case store read-only: refundctl never
// creates one (a typo in DB_PATH must not look like an empty store) and never
// migrates one (only the worker does; see openCaseStore).
func (a *app) openStore(ctx context.Context) (*casestore.Store, error) {
	return a.openCaseStore(ctx, casestore.OpenReadOnly)
}

// openStoreForWrite opens the existing case store for the few writes refundctl
// makes (marking a dead letter retried), with the same rules as openStore.
func (a *app) openStoreForWrite(ctx context.Context) (*casestore.Store, error) {
	return a.openCaseStore(ctx, casestore.OpenExisting)
}

// openCaseStore opens the store with open and explains a missing file or a
// schema this build does not match. An older schema is refused: this build's
// queries need the migrations it lacks, and upgrading a production file is
// the worker's job at its start-up (a migration may copy whole tables under
// the write lock). A newer one works, since migrations only add, with one
// warning line on stderr.
func (a *app) openCaseStore(ctx context.Context, open func(context.Context, string, *slog.Logger) (*casestore.Store, error)) (*casestore.Store, error) {
	st, err := open(ctx, a.cfg.DBPath, nil)
	var se *casestore.SchemaError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no case store at %s (set DB_PATH or --db)", a.cfg.DBPath)
	case errors.As(err, &se):
		return nil, fmt.Errorf("%w: start a worker of this version to upgrade the database, or use a refundctl matching it", se)
	case err != nil:
		return nil, fmt.Errorf("open case store %s: %w", a.cfg.DBPath, err)
	}
	v, err := st.SchemaVersions(ctx)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("case store %s: %w", a.cfg.DBPath, err)
	}
	if v.Newer() {
		fmt.Fprintf(a.stderr, "refundctl: warning: case store %s has schema version %d, newer than the %d this refundctl knows; upgrade refundctl to see what is new\n",
			a.cfg.DBPath, v.File, v.Build)
	}
	return st, nil
}

// publishErr explains the common publish failures.
func publishErr(subject string, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("publish %s: no JetStream stream takes this subject (is the stack running?)", subject)
	}
	return fmt.Errorf("publish %s: %w", subject, err)
}
