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
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casework"
	"github.com/refundhub/refundhub/internal/delay"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/tracing"
	"github.com/refundhub/refundhub/internal/tracing/tracer"
)

// run is the whole program: configuration, wiring, running the case work
// (internal/casework) and shutdown. It returns when ctx is cancelled
// (SIGTERM/SIGINT in main) and in-flight work is finished or abandoned, or
// on a start-up error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runTraced(ctx, args, getenv, stdout, stderr, nil)
}

// runTraced is run with spans going to spans when it is not nil (tests:
// an in-memory exporter) instead of where OTEL_* says.
func runTraced(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer,
	spans sdktrace.SpanExporter) error {
	cfg, err := configure(args, getenv, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	// Lines logged with a traced context carry trace_id and span_id.
	logger := slog.New(tracing.LogHandler(cfg.Log.Logger(stderr).Handler()))
	if spans != nil {
		cfg.Tracing.SpanExporter = spans
	}
	traces, err := tracer.NewProvider(ctx, cfg.Tracing, "refundhub-worker")
	if err != nil {
		return err
	}
	defer traces.Close(ctx, logger)
	tr := traces.Tracer("github.com/refundhub/refundhub/worker") // nil when tracing is off

	store, err := openStore(ctx, cfg.DBPath, logger)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil // stopped while waiting for the store: nothing started
		}
		return err
	}
	store.SetUpdateTimeout(cfg.StoreTimeout)
	defer func() {
		if err := store.Close(); err != nil {
			logger.Warn("close database", "err", err)
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := casework.NewMetrics(reg, store)
	if err != nil {
		return err
	}
	engine, err := newEngine(cfg, store, metrics, logger, tr)
	if err != nil {
		return err
	}
	stopping := func() bool { return ctx.Err() != nil }
	nc, err := nats.Connect(cfg.NATSURL, natsOptions(logger, stopping)...)
	if err != nil {
		return events.ConnectError(cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	w, err := casework.New(cfg.Work, casework.Deps{Store: store, Engine: engine, JetStream: js,
		Logger: logger, Metrics: metrics, Tracer: tr})
	if err != nil {
		return err
	}

	// Health and metrics first, so that a supervisor sees the process alive
	// while it waits for NATS.
	stopServing, err := serve(cfg.MetricsAddr, w.Handler(), logger)
	if err != nil {
		return err
	}
	defer stopServing()
	if err := w.Run(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil // stopped while waiting for NATS: nothing in flight
		}
		return err
	}
	if err := nc.Drain(); err != nil {
		logger.Warn("nats drain", "err", err)
	}
	logger.Info("worker stopped")
	return nil
}

// openStore opens the case store, waiting while it does not answer
// (casestore.Unavailable): on several hosts a worker may start before its
// database, after a reboot of everything or during a failover, and should
// then start when the database does rather than exit into its supervisor's
// restart loop. One line says it waits (again every minute), one that the
// store answered; any other error (a bad host name, password or
// certificate, a failed migration) ends the start. Health and metrics are
// served only once it is open: a supervisor sees the process alive by its
// log meanwhile.
func openStore(ctx context.Context, target string, logger *slog.Logger) (*casestore.Store, error) {
	var since, said time.Time // the first failure; the last line about it
	for n := 0; ; n++ {
		store, err := casestore.Open(ctx, target, logger)
		if err == nil {
			if !since.IsZero() {
				logger.Info("case store reachable: starting", "after", time.Since(since).Round(time.Millisecond))
			}
			return store, nil
		}
		if !casestore.Unavailable(err) || casestore.Misconfigured(err) {
			return nil, err
		}
		switch {
		case since.IsZero():
			since, said = time.Now(), time.Now()
			logger.Warn("case store not reachable yet, or not writable: waiting for it", "err", err)
		case time.Since(said) >= time.Minute:
			said = time.Now()
			logger.Warn("case store still not reachable, or not writable: waiting for it", "for", time.Since(since).Round(time.Second), "err", err)
		}
		t := time.NewTimer(delay.Doubling(100*time.Millisecond, 5*time.Second, n))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// newEngine builds the refund engine and the platform client it calls, both
// reporting into metrics.
func newEngine(cfg config, store *casestore.Store, metrics *casework.Metrics, logger *slog.Logger,
	tr trace.Tracer) (*refundflow.Engine, error) {
	up := cfg.Upstream
	up.Logger, up.Observe, up.Tracer = logger, metrics.Observe, tr
	client, err := apiclient.New(up)
	if err != nil {
		return nil, err
	}
	if err := metrics.WatchPlatformRate(client.Rate); err != nil {
		return nil, err
	}
	var vouchers refundflow.VoucherSource
	if cfg.VoucherDir != "" {
		vouchers = dirVouchers(cfg.VoucherDir)
	}
	owner, err := casework.ProcessOwner()
	if err != nil {
		return nil, err
	}
	ecfg := refundflow.EngineConfig{Store: store, Client: client, Policy: cfg.Policy, Owner: owner,
		Logger: logger, LeaseTTL: cfg.LeaseTTL, Vouchers: vouchers, RetryDelay: cfg.Work.RetryBase, RetryMax: cfg.Work.RetryMax,
		OnStep: metrics.OnStep, ClockSkew: cfg.ClockSkew, MessagesInterval: cfg.MessagesInterval, OnSellerMessages: metrics.OnSellerMessages,
		Tracer: tr}
	if engineHook != nil {
		engineHook(&ecfg)
	}
	return refundflow.NewEngine(ecfg)
}

// engineHook, set by a test only, changes the engine's configuration
// before it is built: how a test puts a bug where the worker must survive
// one (TestAWorkerBugOnOneInputFailsThatInputAlone).
var engineHook func(*refundflow.EngineConfig)

// natsOptions are events.ConnectOptions, which keep reconnecting for ever,
// with the connection's losses and returns logged. Once stopping reports
// true, a lost server is no longer a warning: under a Procfile runner NATS
// gets the same SIGTERM and may go first, and a clean stop should not look
// like an incident.
func natsOptions(logger *slog.Logger, stopping func() bool) []nats.Option {
	return append(events.ConnectOptions("refundhub-worker"),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			switch {
			case err == nil: // our own close at shutdown
				logger.Debug("nats connection closed")
			case stopping():
				logger.Info("nats disconnected while stopping", "err", err)
			default:
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { logger.Info("nats reconnected", "url", events.RedactURLs(nc.ConnectedUrl())) }),
	)
}

// serve listens on addr and serves h there until stop is called, which
// gives requests in progress up to 5 s. The address is logged (at info, as
// "metrics listening" with its url), where tests and operators read it (addr
// may end in :0).
func serve(addr string, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)} // net/http's own complaints, in the one log format
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "err", err)
		}
	}()
	logger.Info("metrics listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}, nil
}
