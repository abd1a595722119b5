package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/console"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/reasons"
	"github.com/refundhub/refundhub/internal/tracing"
	"github.com/refundhub/refundhub/internal/tracing/tracer"
)

// run is the whole program: configuration, wiring, serving and shutdown.
// It returns when ctx is cancelled (SIGTERM/SIGINT in main) and the
// requests in flight are finished, or on a start-up error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runTraced(ctx, args, getenv, stdout, stderr, nil)
}

// runTraced is run with spans going to spans when it is not nil (tests:
// an in-memory exporter) instead of where OTEL_* says.
func runTraced(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer,
	spans sdktrace.SpanExporter) error {
	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stdout) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; configuration is by environment (see -h)", fs.Args())
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	// Lines logged with a traced context carry trace_id and span_id.
	logger := slog.New(tracing.LogHandler(cfg.Log.Logger(stderr).Handler()))
	if spans != nil {
		cfg.Tracing.SpanExporter = spans
	}
	traces, err := tracer.NewProvider(ctx, cfg.Tracing, "refundhub-console")
	if err != nil {
		return err
	}
	defer traces.Close(ctx, logger)

	store, err := openStore(ctx, cfg.DBPath, logger)
	if err != nil {
		return err
	}
	if store == nil {
		return nil // stopped while waiting for the store
	}
	defer store.Close()
	// The dead-letter write handle (console.Deps.DeadLetters): the file
	// exists and has this build's schema now (openStore waited for both).
	dlStore, err := casestore.OpenExisting(ctx, cfg.DBPath, logger)
	if err != nil {
		return fmt.Errorf("open case store %s for dead-letter writes: %w", casestore.Redact(cfg.DBPath), err)
	}
	defer dlStore.Close()

	// NATS: connect in the background if the server is down, and
	// reconnect forever. Meanwhile a command is held in the client's
	// reconnect buffer and its publish times out: the action answers
	// "unconfirmed" naming its id (it is stored once NATS is back).
	nc, err := nats.Connect(cfg.NATSURL, nats.Name("console"), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(time.Second))
	if err != nil {
		return events.ConnectError(cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	ready := func(ctx context.Context) error {
		if !nc.IsConnected() {
			return errors.New("nats not connected")
		}
		if _, err := store.SchemaVersions(ctx); err != nil {
			return fmt.Errorf("case store: %w", err)
		}
		return nil
	}
	var lookup func(context.Context, reasons.Query) reasons.Result
	if cfg.Upstream != nil {
		// The console's own client: its own rate limit (UPSTREAM_RATE_LIMIT),
		// beside the worker's.
		client, err := apiclient.New(*cfg.Upstream)
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		lookup = func(ctx context.Context, q reasons.Query) reasons.Result { return reasons.Lookup(ctx, client, q) }
		logger.Info("the request form can look up the platform's reasons", "platform", cfg.Upstream.BaseURL)
	}
	srv, err := console.New(cfg.Console, console.Deps{Store: store, DeadLetters: dlStore, JetStream: js, Ready: ready, Logger: logger,
		Tracer:  traces.Tracer("github.com/refundhub/refundhub/console"), // nil when tracing is off
		Reasons: lookup})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// An action waits for its verdict (CONSOLE_VERDICT_WAIT) before it
		// answers. Event streams lift this deadline for themselves.
		WriteTimeout:   cfg.Console.VerdictWait + 20*time.Second,
		IdleTimeout:    90 * time.Second,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for handlers to return; event streams return only
	// when told.
	httpSrv.RegisterOnShutdown(srv.CloseStreams)
	accounts, err := store.Accounts(ctx)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("read the console accounts: %w", err)
	}
	active := 0
	for _, a := range accounts {
		if !a.Disabled() {
			active++
		}
	}
	if active == 0 {
		logger.Warn("no active console accounts yet: nobody can log in; create one with `refundctl console users add NAME --role operator` (no restart needed)",
			"db", casestore.Redact(cfg.DBPath))
	}
	logger.Info("console listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String(),
		"db", casestore.Redact(cfg.DBPath), "nats", events.RedactURLs(cfg.NATSURL), "accounts", active)

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := httpSrv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("serve: %w", err))
	}
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("nats drain: %w", err))
	}
	logger.Info("stopped")
	return errors.Join(errs...)
}

// openStore opens the case store read-only, waiting while the file does
// not exist yet or its schema is older than this build: the worker creates
// and upgrades it, and started together (devstack, a Procfile runner, an
// upgrade), the console may come first. Exiting instead would stop every
// process under a Procfile runner. It returns nil, nil when ctx ends first.
func openStore(ctx context.Context, target string, logger *slog.Logger) (*casestore.Store, error) {
	path := casestore.Redact(target) // as logged
	for waited := false; ; waited = true {
		st, err := casestore.OpenReadOnly(ctx, target, logger)
		var se *casestore.SchemaError
		switch {
		case err == nil:
			return st, nil
		case errors.As(err, &se):
			if !waited {
				logger.Warn("case store older than this build; waiting for a worker of this version to create or upgrade it",
					"db", path, "schema", se.File, "want", se.Build)
			}
		case errors.Is(err, fs.ErrNotExist):
			if !waited {
				logger.Warn("no case store yet; waiting for the worker to create it", "db", path)
			}
		default:
			return nil, fmt.Errorf("open case store %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}
