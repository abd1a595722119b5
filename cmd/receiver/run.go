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
	"sync"
	"sync/atomic"
	"time"

	"github.com/refundhub/refundhub/internal/callback/intake"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/tracing"
	"github.com/refundhub/refundhub/internal/tracing/tracer"
)

// run is the whole program: configuration, wiring, serving and shutdown.
// It returns when ctx is cancelled (SIGTERM/SIGINT in main) and everything
// in flight is finished, or on a start-up error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
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
	traces, err := tracer.NewProvider(ctx, cfg.Tracing, "refundhub-receiver")
	if err != nil {
		return err
	}
	defer traces.Close(ctx, logger)

	// NATS: connect (retrying in the background if the server is down),
	// reconnect forever, and re-ensure the stream after every (re)connect of
	// any connection so a NATS that came back empty gets its stream again.
	ensureNow := make(chan struct{}, 1)
	kick := func() {
		select {
		case ensureNow <- struct{}{}:
		default:
		}
	}
	stopping := func() bool { return ctx.Err() != nil }
	pool, err := connectPool(cfg.NATSURL, cfg.NATSConns, logger, kick, stopping)
	if err != nil {
		return err
	}
	defer pool.close()
	pub, err := events.NewPooledPublisher(pool.conns, cfg.PublishTimeout)
	if err != nil {
		return err
	}

	var streamOK atomic.Bool
	bgCtx, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() { ensureLoop(bgCtx, pub, cfg.Stream, &streamOK, ensureNow, logger) })
	kick()
	defer func() { stopBg(); bg.Wait() }()

	ready := func(ctx context.Context) error {
		if !pub.Connected() {
			return errors.New("nats not connected")
		}
		if !streamOK.Load() {
			return errors.New("stream not ensured yet")
		}
		if _, err := pub.JetStream().Stream(ctx, cfg.Stream.Name); err != nil {
			return fmt.Errorf("stream %s: %w", cfg.Stream.Name, err)
		}
		return nil
	}
	srv, err := intake.New(intake.Config{
		Token:          cfg.Token,
		SigningSecrets: cfg.SigningSecrets,
		MaxBytes:       cfg.MaxBytes,
		TypeNames:      cfg.TypeNames,
		Profile:        cfg.Profile,
		Tracer:         traces.Tracer("github.com/refundhub/refundhub/receiver"),
	}, pub, ready, logger)
	if err != nil {
		return fmt.Errorf("receiver: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// nats is the configured URL, not the connected one: the receiver
	// listens before NATS is up, and then no connection has a URL yet.
	logger.Info("receiver listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String(),
		"nats", events.RedactURLs(cfg.NATSURL), "nats_conns", len(pool.conns),
		"stream", cfg.Stream.Name, "max_bytes", cfg.MaxBytes, "publish_timeout", cfg.PublishTimeout,
		"signing", srv.SigningEnabled(), "signing_secrets", len(cfg.SigningSecrets))

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// Shutdown: stop accepting, let in-flight requests finish (their publish
	// still has a connected NATS), then drain every NATS connection so each
	// publish buffered in a client reaches the server before it closes.
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
	stopBg()
	bg.Wait()
	if err := pool.drain(sctx); err != nil {
		errs = append(errs, err)
	}
	logger.Info("stopped")
	return errors.Join(errs...)
}

// ensureLoop creates or updates the stream whenever kicked (start-up and
// every reconnect), retrying with backoff until it succeeds.
func ensureLoop(ctx context.Context, pub *events.Publisher, cfg events.StreamConfig, ok *atomic.Bool, kick <-chan struct{}, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		for attempt := 1; ; attempt++ {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := events.EnsureStream(actx, pub.JetStream(), cfg)
			cancel()
			if err == nil {
				ok.Store(true)
				logger.Info("stream ready", "stream", cfg.Name, "max_age", cfg.MaxAge,
					"replicas", cfg.Replicas, "duplicates", cfg.Duplicates, "max_bytes", cfg.MaxBytes)
				break
			}
			if ctx.Err() != nil {
				// Stopping: the attempt was cut short by the stop itself,
				// which is not a failure to report.
				return
			}
			wait := events.ReconnectDelay(attempt)
			if events.NotUp(pub.JetStream()) {
				logger.Warn(events.NotUpMessage, "stream", cfg.Name, "retry_in", wait)
			} else {
				logger.Warn("ensure stream failed; retrying", "stream", cfg.Name, "attempt", attempt, "err", err, "retry_in", wait)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			case <-kick:
				t.Stop()
			}
		}
	}
}
