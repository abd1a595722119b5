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

	"github.com/nats-io/nats.go"

	"github.com/refundhub/refundhub/internal/callback/receiver"
	"github.com/refundhub/refundhub/internal/events"
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
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	// NATS: connect (retrying in the background if the server is down),
	// reconnect forever, and re-ensure the stream after every reconnect so a
	// NATS that came back empty gets its stream again.
	ensureNow := make(chan struct{}, 1)
	kick := func() {
		select {
		case ensureNow <- struct{}{}:
		default:
		}
	}
	closed := make(chan struct{})
	opts := append(events.ConnectOptions("refundhub-receiver"),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("nats disconnected; callbacks get 503 until it is back", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			kick()
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			logger.Info("nats connected", "url", nc.ConnectedUrlRedacted())
			kick()
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	)
	nc, err := nats.Connect(cfg.NATSURL, opts...)
	if err != nil {
		return fmt.Errorf("nats connect: %w", err)
	}
	defer nc.Close()
	pub, err := events.NewPublisher(nc, cfg.PublishTimeout)
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
		if !nc.IsConnected() {
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
	srv, err := receiver.New(receiver.Config{
		Token:          cfg.Token,
		SigningSecrets: cfg.SigningSecrets,
		MaxBytes:       cfg.MaxBytes,
		TypeNames:      cfg.TypeNames,
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
	logger.Info("receiver listening", "addr", ln.Addr().String(), "nats", nc.ConnectedUrlRedacted(),
		"stream", cfg.Stream.Name, "max_bytes", cfg.MaxBytes, "publish_timeout", cfg.PublishTimeout.String(),
		"signing", srv.SigningEnabled(), "signing_secrets", len(cfg.SigningSecrets))
	fmt.Fprintf(stdout, "receiver listening on http://%s\n", ln.Addr())

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// Shutdown: stop accepting, let in-flight requests finish (their publish
	// still has a connected NATS), then drain NATS so every publish buffered
	// in the client reaches the server before the connection closes.
	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
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
	if err := nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("nats drain: %w", err))
	} else {
		select {
		case <-closed:
		case <-sctx.Done():
			errs = append(errs, errors.New("nats drain: timed out"))
		}
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
				logger.Info("stream ready", "stream", cfg.Name, "max_age", cfg.MaxAge.String(),
					"replicas", cfg.Replicas, "duplicates", cfg.Duplicates.String(), "max_bytes", cfg.MaxBytes)
				break
			}
			logger.Warn("ensure stream failed; retrying", "stream", cfg.Name, "attempt", attempt, "err", err)
			t := time.NewTimer(events.ReconnectDelay(attempt))
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
