package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casework"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// stack credentials of the embedded platform.
const (
	stackKey    = "stack-access-key-0001"
	stackSecret = "stack-secret-DO-NOT-PRINT-7c1d"
)

// stack is the product in-process, as devstack runs it but for the
// receiver (the sandbox's callbacks are recorded, not pushed; the worker
// reads the platform itself): embedded JetStream, the sandbox over
// loopback HTTP, and a worker wired as cmd/worker wires it (as
// cmd/refundctl's startStack does).
type stack struct {
	natsURL     string
	dbPath      string
	js          jetstream.JetStream
	platformURL string // the sandbox's
}

// upstreamEnv adds to env the platform credentials the stack's worker
// uses: the console's reasons look-up asks the same sandbox.
func (s *stack) upstreamEnv(env map[string]string) map[string]string {
	env["UPSTREAM_BASE_URL"], env["UPSTREAM_ACCESS_KEY"], env["UPSTREAM_ACCESS_SECRET"], env["UPSTREAM_USER_ID"] =
		s.platformURL, stackKey, stackSecret, "stack-user"
	return env
}

func startStack(t *testing.T) *stack {
	t.Helper()
	return startStackTraced(t, nil)
}

// startStackTraced is startStack with the worker's spans (its messages,
// decisions, commits, steps and platform calls) going to tr, as
// cmd/worker wires its tracer; nil: untraced.
func startStackTraced(t *testing.T, tr trace.Tracer) *stack {
	t.Helper()
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	if _, err := events.EnsureStream(ctx, js, events.DefaultStreamConfig()); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatalf("EnsureWorkStreams: %v", err)
	}
	sb, err := sandbox.New(sandbox.Config{AccessKey: stackKey, AccessSecret: stackSecret, AutoCreate: true, Seed: 11})
	if err != nil {
		t.Fatalf("sandbox.New: %v", err)
	}
	sbSrv := httptest.NewServer(sb.Handler())
	dbPath := newStoreFile(t)
	store, err := casestore.Open(ctx, dbPath, nil)
	if err != nil {
		t.Fatalf("casestore.Open: %v", err)
	}
	client, err := apiclient.New(apiclient.Config{BaseURL: sbSrv.URL, AccessKey: stackKey, AccessSecret: stackSecret,
		UserID: "stack-user", Timeout: 2 * time.Second, RateLimit: 1000, RateBurst: 100, Tracer: tr})
	if err != nil {
		t.Fatalf("apiclient.New: %v", err)
	}
	metrics, err := casework.NewMetrics(prometheus.NewRegistry(), store)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	engine, err := refundflow.NewEngine(refundflow.EngineConfig{Store: store, Client: client, Policy: refundflow.DefaultPolicy(),
		LeaseTTL: 5 * time.Second, RetryDelay: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond, OnStep: metrics.OnStep, Tracer: tr})
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	w, err := casework.New(casework.Config{Consumer: "console-test-worker", Concurrency: 4, AckWait: 5 * time.Second,
		MaxDeliver: 20, UnknownCaseWait: 2 * time.Second, RetryBase: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond,
		TimerInterval: 50 * time.Millisecond, ReconcileInterval: 300 * time.Millisecond, ReconcileAge: 2 * time.Second,
		InboxRetention: time.Hour, HousekeepingInterval: time.Hour, ShutdownTimeout: 2 * time.Second,
		Stream: events.DefaultStreamConfig(), WorkStreams: events.DefaultWorkStreamsConfig()},
		casework.Deps{Store: store, Engine: engine, JetStream: js, Logger: slog.New(slog.DiscardHandler), Metrics: metrics, Tracer: tr})
	if err != nil {
		t.Fatalf("casework.New: %v", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = sb.Run(wctx) })
	wg.Go(func() {
		if err := w.Run(wctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("worker: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		sbSrv.Close()
		_ = store.Close()
	})
	return &stack{natsURL: ns.URL(), dbPath: dbPath, js: js, platformURL: sbSrv.URL}
}
