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
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/opcommands"
)

// app is the state shared by the commands of one run.
type app struct {
	cfg    config
	getenv func(string) string // for doctor's UPSTREAM_* (loadUpstream)
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	// spans, when set, receives the run's spans instead of what OTEL_*
	// say (tests: an in-memory exporter).
	spans sdktrace.SpanExporter
	trace traceRun // the run's span, when tracing is on
	// caseNamed is how the command named its case by id, for its errors:
	// "--case" (the default) or "CASE", its argument (caseArg).
	caseNamed string
}

// caseName is how the command named its case by id (caseNamed).
func (a *app) caseName() string {
	if a.caseNamed == "" {
		return "--case"
	}
	return a.caseNamed
}

// run parses args, runs the command and returns its error; main prints it
// as one line and exits with exitCode.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runTraced(ctx, args, getenv, stdout, stderr, nil)
}

// runTraced is run with spans going to spans when it is not nil (tests:
// an in-memory exporter) instead of where OTEL_* says.
func runTraced(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer,
	spans sdktrace.SpanExporter) error {
	defaults, err := loadConfig(func(string) string { return "" })
	if err != nil {
		return fmt.Errorf("the documented defaults do not load: %w", err)
	}
	a := &app{cfg: defaults, getenv: getenv, stdout: stdout, stderr: stderr, now: time.Now, spans: spans}
	root := a.rootCommand()
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := a.applyEnv(cmd.Flags(), getenv); err != nil {
			return err
		}
		if err := a.checkRemote(cmd); err != nil {
			return err
		}
		return a.startTrace(cmd)
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err = root.ExecuteContext(ctx)
	a.endTrace(ctx, err)
	return err
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "refundctl",
		Short: "Operate refundhub: issue commands, inspect cases, replay and trigger callbacks, check the platform profile",
		Long: "refundctl drives refundhub by hand: it publishes operator commands to the worker,\n" +
			"lists the refund reasons the platform offers, reads the case store, retries and discards dead letters, replays stored callbacks,\n" +
			"synthesises platform callbacks and checks the platform profile against the\n" +
			"platform (doctor). Flags override the environment.\n\n" + envHelp(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&a.cfg.NATSURL, "nats-url", a.cfg.NATSURL, "NATS server URL (env NATS_URL)")
	pf.StringVar(&a.cfg.DBPath, "db", a.cfg.DBPath, "case store: a SQLite path or a postgres:// URL (env DB_URL, else DB_PATH)")
	pf.StringVar(&a.cfg.ReceiverURL, "receiver-url", a.cfg.ReceiverURL, "receiver base URL (env RECEIVER_URL)")
	pf.StringVar(&a.cfg.Stream, "stream", a.cfg.Stream, "callback stream name (env CALLBACK_STREAM)")
	pf.StringVar(&a.cfg.ConsoleURL, "url", a.cfg.ConsoleURL, "the console's base URL: use its API instead of DB_PATH and NATS (env REFUNDHUB_URL; token in REFUNDHUB_TOKEN)")
	pf.StringVar(&a.cfg.Operator, "operator", a.cfg.Operator, "operator name recorded with commands and dead-letter discards (env REFUNDCTL_OPERATOR, else USER)")
	pf.DurationVar(&a.cfg.Timeout, "timeout", a.cfg.Timeout, "connect and per-request timeout")
	pf.BoolVar(&a.cfg.JSON, "json", false, "machine-readable JSON output")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	// One entry per subcommand.
	root.AddCommand(
		a.requestCommand(),
		a.shipCommand(),
		a.cancelCommand(),
		a.messageCommand(),
		a.resolveCommand(),
		a.modifyCommand(),
		a.messagesCommand(),
		a.reasonsCommand(),
		a.listCommand(),
		a.showCommand(),
		a.waitCommand(),
		a.deadLettersCommand(),
		a.replayCommand(),
		a.triggerCommand(),
		a.parkedCommand(),
		a.doctorCommand(),
		a.consoleCommand(),
		a.migrateStoreCommand(),
	)
	return root
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
// retried or discarded, a permanent failure retried without --force, a
// command the worker rejected. Nothing was changed. Exit status 4.
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
// changed: a dead-letter action, or a command the worker rejected), 5 a
// command still pending when the wait ran out, 6 a batch left invalid rows
// out (and filed the others).
func exitCode(err error) int {
	var r *runtimeError
	var c *contradictedError
	var ref *refusedError
	var pend *pendingError
	var inv *invalidRowsError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &c):
		return exitContradicted
	case errors.As(err, &inv):
		return exitInvalidRows
	case errors.As(err, &ref):
		return exitRefused
	case errors.As(err, &pend):
		return exitPending
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

// redactURL is a console or receiver URL (one URL: a comma in a password
// does not split it) for messages: as given where it holds no "@" (no user
// info: a malformed one is shown as typed), otherwise without its user
// info (events.RedactURL). NATS_URL, a list, goes through
// events.RedactURLs.
func redactURL(raw string) string {
	if !strings.Contains(raw, "@") {
		return raw
	}
	return events.RedactURL(raw)
}

// atOutsideUserInfo reports whether u, as parsed, has an "@" past its user
// info: a password or token holding "/", "?" or "#" ended the authority
// early, and what the URL names is not what was meant (nor is its secret
// where a message would leave it out).
func atOutsideUserInfo(u *url.URL) bool {
	return strings.Contains(u.Host+u.Path+u.RawQuery+u.Fragment, "@")
}

// encodeHint is what a usage error about a URL holding an "@" adds: how to
// write a password that does not parse.
func encodeHint(raw string) string {
	if !strings.Contains(raw, "@") {
		return ""
	}
	return ` (a user name or password holding "/", "?", "#", "%" or "@" must be percent-encoded)`
}

// connect opens a NATS connection that fails fast: no retries, no reconnects.
func (a *app) connect() (*nats.Conn, jetstream.JetStream, error) {
	if a.cfg.Timeout <= 0 {
		return nil, nil, usagef("--timeout %s: must be positive", a.cfg.Timeout)
	}
	nc, err := nats.Connect(a.cfg.NATSURL, nats.Name("refundctl"), nats.Timeout(a.cfg.Timeout), nats.NoReconnect())
	if err != nil {
		return nil, nil, events.ConnectError(a.cfg.NATSURL, err)
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
	shown := casestore.Redact(a.cfg.DBPath) // DB_URL may hold a password
	var se *casestore.SchemaError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no case store at %s (set DB_PATH or --db)", shown) // a file: a missing PostgreSQL database is another error
	case errors.As(err, &se):
		return nil, fmt.Errorf("%w: start a worker of this version to upgrade the database, or use a refundctl matching it", se)
	case err != nil:
		return nil, fmt.Errorf("open case store %s: %w", shown, err)
	}
	v, err := st.SchemaVersions(ctx)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("case store %s: %w", shown, err)
	}
	if v.Newer() {
		fmt.Fprintf(a.stderr, "refundctl: warning: case store %s has schema version %d, newer than the %d this refundctl knows; upgrade refundctl to see what is new\n",
			shown, v.File, v.Build)
	}
	return st, nil
}

// publishErr explains the common publish failures.
func publishErr(subject string, err error) error {
	if opcommands.NoStream(err) {
		return fmt.Errorf("publish %s: no JetStream stream takes this subject (is the stack running?)", subject)
	}
	return fmt.Errorf("publish %s: %w", subject, err)
}
