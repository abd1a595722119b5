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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// run is the whole program: configuration, wiring, consuming and shutdown.
// It returns when ctx is cancelled (SIGTERM/SIGINT in main) and in-flight
// work is finished or abandoned, or on a start-up error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
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

	store, err := casestore.Open(ctx, cfg.DBPath, logger)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			logger.Warn("close database", "err", err)
		}
	}()

	var consumersMu sync.Mutex
	consumers := map[string]jetstream.Consumer{}
	m := newMetrics(store, func() map[string]jetstream.Consumer {
		consumersMu.Lock()
		defer consumersMu.Unlock()
		out := make(map[string]jetstream.Consumer, len(consumers))
		for k, v := range consumers {
			out[k] = v
		}
		return out
	})

	up := cfg.Upstream
	up.Logger, up.Observe = logger, m.observe
	client, err := apiclient.New(up)
	if err != nil {
		return err
	}
	parser, err := callback.NewParser(cfg.TypeNames)
	if err != nil {
		return err
	}
	var vouchers refundflow.VoucherSource
	if cfg.VoucherDir != "" {
		vouchers = dirVouchers(cfg.VoucherDir)
	}
	owner, err := processOwner()
	if err != nil {
		return err
	}
	if err := takeOverDeadLeases(ctx, store, owner, logger); err != nil {
		logger.Warn("take over the leases of dead worker processes", "err", err)
	}
	if dups, err := store.DuplicateOpenCases(ctx); err != nil {
		logger.Warn("duplicate open cases", "err", err)
	} else {
		for _, c := range dups {
			logger.Warn("a 1688 order has a second open case, opened before one case per order was enforced: both are followed as they are; check on the platform which of their refunds exist (refundctl show for both cases)",
				"case", c.ID, "first_case", c.DuplicateOf, "order", c.OrderID, "state", c.State)
		}
	}
	engine, err := refundflow.NewEngine(refundflow.EngineConfig{Store: store, Client: client, Policy: cfg.Policy, Owner: owner,
		Logger: logger, LeaseTTL: cfg.LeaseTTL, Vouchers: vouchers, RetryDelay: cfg.RetryBase, RetryMax: cfg.RetryMax, OnStep: m.onStep,
		ClockSkew: cfg.ClockSkew})
	if err != nil {
		return err
	}

	nc, err := nats.Connect(cfg.NATSURL, append(events.ConnectOptions("refundhub-worker"),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { logger.Warn("nats disconnected", "err", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
	)...)
	if err != nil {
		return fmt.Errorf("nats connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	w := &worker{cfg: cfg, log: logger, store: store, engine: engine, parser: parser, js: js, metrics: m,
		sem: make(chan struct{}, cfg.Concurrency), active: map[int64]bool{}}

	// Health and metrics first, so that a supervisor sees the process alive
	// while it waits for NATS.
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.MetricsAddr, err)
	}
	var ready sync.Map
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, started := ready.Load("consumers")
		_, dbErr := store.SchemaVersion(r.Context())
		if !started || !nc.IsConnected() || dbErr != nil {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(rw, `{"status":"not ready"}`)
			return
		}
		_, _ = io.WriteString(rw, `{"status":"ready"}`)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(stdout, "worker: metrics on http://%s/metrics\n", ln.Addr())

	// Streams and consumers, retried until NATS is there (or we stop).
	specs := []struct{ source, stream, filter string }{
		{sourceCallbacks, cfg.Stream.Name, events.SubjectAccepted + ".>"},
		{sourceCommands, cfg.WorkStreams.CommandStream, events.SubjectCommands + ".>"},
	}
	streamReported := false
	for {
		err = func() error {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := ensureCallbackStream(sctx, js, cfg.Stream, logger, &streamReported); err != nil {
				return err
			}
			if err := events.EnsureWorkStreams(sctx, js, cfg.WorkStreams); err != nil {
				return err
			}
			for _, sp := range specs {
				cons, err := js.CreateOrUpdateConsumer(sctx, sp.stream, w.consumerConfig(sp.filter))
				if err != nil {
					return fmt.Errorf("consumer %s on %s: %w", cfg.Consumer, sp.stream, err)
				}
				consumersMu.Lock()
				consumers[sp.source] = cons
				consumersMu.Unlock()
			}
			return nil
		}()
		if err == nil {
			break
		}
		logger.Warn("streams not ready; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}

	// work outlives ctx by the shutdown timeout: in-flight steps may finish.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var ccs []jetstream.ConsumeContext
	for _, sp := range specs {
		consumersMu.Lock()
		cons := consumers[sp.source]
		consumersMu.Unlock()
		cc, err := w.consume(ctx, work, sp.source, cons)
		if err != nil {
			for _, c := range ccs {
				c.Stop()
			}
			return fmt.Errorf("consume %s: %w", sp.source, err)
		}
		ccs = append(ccs, cc)
	}
	var loops sync.WaitGroup
	loops.Go(func() { w.timers(ctx, work) })
	loops.Go(func() { w.reconciler(ctx, work) })
	loops.Go(func() { w.housekeeping(ctx) })
	ready.Store("consumers", true)
	logger.Info("worker started", "consumer", cfg.Consumer, "concurrency", cfg.Concurrency, "owner", engine.Owner())

	<-ctx.Done()
	logger.Info("stopping: no new messages; waiting for in-flight steps", "timeout", cfg.ShutdownTimeout)
	ready.Delete("consumers")
	for _, cc := range ccs {
		cc.Stop()
	}
	loops.Wait()
	done := w.drain()
	select {
	case <-done:
	case <-time.After(cfg.ShutdownTimeout):
		logger.Warn("shutdown timeout: abandoning in-flight steps (their intents stay open and are settled on restart)")
		cancelWork()
		<-done
	}
	if err := nc.Drain(); err != nil {
		logger.Warn("nats drain", "err", err)
	}
	logger.Info("worker stopped")
	return nil
}

// ensureCallbackStream makes sure the callback stream exists without taking
// its settings from the receiver, which owns them (it applies CALLBACK_MAX_BYTES
// and CALLBACK_STREAM_* with EnsureStream): rewriting them here would undo,
// on every worker start, settings the worker was never given, such as a
// MaxMsgSize raised for large pushes. A missing stream (the worker started
// first) is created from cfg, read by the same code as the receiver's. An
// existing one is left alone, and each setting that differs from cfg is
// named once at warn, for the operator to reconcile the two environments.
func ensureCallbackStream(ctx context.Context, js jetstream.JetStream, cfg events.StreamConfig, logger *slog.Logger, reported *bool) error {
	s, created, err := events.CreateStreamIfMissing(ctx, js, cfg)
	if err != nil {
		return err
	}
	if *reported {
		return nil
	}
	*reported = true
	if created {
		logger.Info("created the callback stream (no receiver had yet)", "stream", cfg.Name,
			"max_msg_size", cfg.MaxMsgSize, "max_bytes", cfg.MaxBytes, "max_age", cfg.MaxAge.String())
		return nil
	}
	if diffs := cfg.Differences(s.CachedInfo().Config); len(diffs) > 0 {
		logger.Warn("callback stream settings differ from this worker's; left as the receiver set them (stream vs worker)",
			"stream", cfg.Name, "differences", diffs)
	}
	return nil
}

// dirVouchers opens voucher references as file names inside dir (no paths:
// a reference cannot leave the directory).
func dirVouchers(dir string) refundflow.VoucherSource {
	return func(_ context.Context, ref string) (string, []byte, error) {
		name := filepath.Base(ref)
		if name != ref || strings.HasPrefix(name, ".") {
			return "", nil, fmt.Errorf("voucher %q: want a plain file name in the voucher directory", ref)
		}
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return "", nil, err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, 10<<20+1))
		if err != nil {
			return "", nil, err
		}
		return name, b, nil
	}
}
