// Package casework is what a worker process does all day: it takes platform
// callbacks and operator commands from their JetStream consumers, and due
// case timers and stale cases from the store, and hands each to the refund
// engine (internal/refundflow). Around every message it applies the delivery
// policy that the engine knows nothing about: ack once the engine has
// committed, NakWithDelay after a transient failure, a dead letter for a
// message that can never succeed or ran out of deliveries, and in-progress
// reports while a message waits or is worked on, so JetStream never hands it
// to a second process meanwhile.
//
// It reads no environment and owns no connection: cmd/worker builds a Config
// and the parts (Deps) and calls Run, and closes the parts afterwards.
//
// The files follow a message's way through the package:
//
//	worker.go     Config, Deps, New, and Run: start, consume, shut down
//	streams.go    the streams and durable consumers Run binds to
//	consume.go    one message: a slot, the engine, then ack, nak or dead letter
//	order.go      commands for one case run in the order they came
//	earlier.go    and after the commands issued before them, however delivered
//	deadletter.go how a message is given up: the row, the stream copy, the Term
//	limits.go     messages the consumers stopped delivering become dead letters
//	sweeps.go     timers, deferred inputs, the reconciler and housekeeping
//	routes.go     GET /healthz, /readyz and /metrics; readiness.go behind /readyz
//	metrics.go    the worker's Prometheus metrics
//	startup.go    what Run settles first: dead processes' leases, duplicate cases
//	owner.go      the lease owner id of this process, and which owners are dead
package casework

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// Config is how a worker process handles its share of the work. cmd/worker
// reads it from the environment (WORKER_*, documented in its -h and in
// docs/worker.md); the zero value is not usable (New says why).
type Config struct {
	// Consumer is the durable consumer name on the callback and command
	// streams, shared by every worker process so they split the messages.
	Consumer string
	// Concurrency bounds messages, timers and reconciles handled at once by
	// this process, and, apart, recorded refund callbacks being verified
	// (see slot in consume.go).
	Concurrency int
	// MaxAckPending is each consumer's server-side cap on messages delivered
	// and not yet acknowledged, over all worker processes.
	MaxAckPending int
	// AckWait is how long JetStream waits for an ack before redelivering;
	// a message being handled or waiting for a slot is reported in progress
	// every third of it.
	AckWait time.Duration
	// MaxDeliver is the delivery (or take-up) after which a failing message
	// is dead-lettered by the handler; the consumer's own MaxDeliver is a
	// safety net 3 above it.
	MaxDeliver int
	// UnknownCaseWait is how long after it was issued a command naming no
	// known case is tried again, before it is dead-lettered as unknown_case.
	UnknownCaseWait time.Duration
	// RetryBase and RetryMax shape the NakWithDelay backoff after transient
	// failures: RetryBase doubling with each delivery, capped at RetryMax.
	RetryBase time.Duration
	RetryMax  time.Duration
	// TimerInterval is how often due case timers and due deferred inputs
	// are swept.
	TimerInterval time.Duration
	// ReconcileInterval is how often the reconciler looks for open cases
	// whose last platform check is older than ReconcileAge.
	ReconcileInterval time.Duration
	ReconcileAge      time.Duration
	// InboxRetention is how long consumed message ids are kept for dedupe;
	// older rows are pruned every HousekeepingInterval.
	InboxRetention       time.Duration
	HousekeepingInterval time.Duration
	// ShutdownTimeout is how long in-flight steps may run on after Run's
	// context ends before they are abandoned.
	ShutdownTimeout time.Duration

	// Stream is the callback stream as the receiver configures it; the
	// worker uses it only to create a missing stream (ensureCallbackStream).
	Stream events.StreamConfig
	// WorkStreams are the command and dead-letter streams, which the worker
	// creates or updates.
	WorkStreams events.WorkStreamsConfig
	// TypeNames are the callback types as the receiver knows them: the
	// worker decodes what the receiver accepted with the same table.
	TypeNames callback.TypeNames
}

// validate reports a Config that would make Run misbehave rather than fail
// (a zero interval panics in time.NewTicker; zero concurrency never handles
// anything).
func (c Config) validate() error {
	switch {
	case c.Consumer == "":
		return errors.New("casework: no consumer name")
	case c.Concurrency < 1:
		return fmt.Errorf("casework: concurrency %d: want at least 1", c.Concurrency)
	case c.AckWait <= 0, c.TimerInterval <= 0, c.ReconcileInterval <= 0, c.HousekeepingInterval <= 0:
		return errors.New("casework: AckWait, TimerInterval, ReconcileInterval and HousekeepingInterval must be positive")
	}
	return nil
}

// Deps are the parts a Worker works with. The caller builds them, and owns
// and closes them after Run has returned; only Logger may be nil (nothing is
// logged then).
type Deps struct {
	Store  *casestore.Store
	Engine *refundflow.Engine
	// JetStream is the worker's JetStream context; its connection also
	// decides readiness.
	JetStream jetstream.JetStream
	Logger    *slog.Logger
	// Metrics is built first (NewMetrics) because the engine and the
	// platform client report into it too.
	Metrics *Metrics
	// Tracer, when set, gives each message a consumer span that continues
	// the trace its publisher started (events.ExtractTrace); the engine's
	// spans are its children. Nil: no spans.
	Tracer trace.Tracer
}

// Worker is one process's message, timer and reconcile plumbing around the
// engine. Build it with New and run it once with Run.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	store   *casestore.Store
	engine  *refundflow.Engine
	parser  *callback.Parser
	js      jetstream.JetStream
	metrics *Metrics
	ready   readiness
	tracer  trace.Tracer // a no-op tracer when Deps.Tracer is nil

	// sem bounds everything handled at once (messages, timers, reconciles).
	sem chan struct{}
	// verifying bounds the refund callbacks being verified once recorded:
	// a recorded callback hands its place in sem over to one here (slot),
	// so the next callbacks are recorded while it waits on its platform
	// read instead of queueing behind it.
	verifying chan struct{}
	// wg counts handlers in flight; goMu and stopping keep wg.Add from
	// racing with the shutdown's wg.Wait (a message that waited for a slot,
	// or the limit stream's Consume callback, may start one as Run stops).
	wg       sync.WaitGroup
	goMu     sync.Mutex
	stopping bool
	// waiters counts the messages waiting for a slot (dispatch), each on
	// a goroutine of its own: Run lets them hand their messages back
	// before it returns and the connection is drained.
	waiters sync.WaitGroup

	mu     sync.Mutex
	active map[int64]bool // cases a timer or reconcile input is running for
	// broken: cases whose last wake the worker failed on (guard), and
	// until when the sweeps leave them alone.
	broken map[int64]time.Time
	// notEnded: deferred inputs whose take-up here returned without
	// giving its count back (the store away then): given back before
	// their next take-up (sweeps.go).
	notEnded map[int64]time.Time // by row id: when the row was kept

	order keyOrder // commands of one case, in the order they came
	// commandLog is where the commands issued before one are looked up
	// (earlier.go); set by Run once the consumers are bound.
	commandLog *commandLog

	// gate holds messages and sweeps while the store does not answer
	// (storegate.go); stop, called as Run starts to shut down, ends its
	// holding and its probe.
	gate *storeGate
	stop context.CancelFunc
}

// New returns a Worker for cfg on deps. It starts nothing: the health
// endpoints (Handler) can be served before Run, which waits for NATS.
func New(cfg Config, deps Deps) (*Worker, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Engine == nil || deps.JetStream == nil || deps.Metrics == nil {
		return nil, errors.New("casework: Store, Engine, JetStream and Metrics are required")
	}
	parser, err := callback.NewParser(cfg.TypeNames)
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tracer := deps.Tracer
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	stopping, stop := context.WithCancel(context.Background())
	w := &Worker{cfg: cfg, log: log, store: deps.Store, engine: deps.Engine, parser: parser, js: deps.JetStream,
		metrics: deps.Metrics, tracer: tracer, ready: readiness{conn: deps.JetStream.Conn(), store: deps.Store},
		sem: make(chan struct{}, cfg.Concurrency), verifying: make(chan struct{}, cfg.Concurrency), active: map[int64]bool{}, broken: map[int64]time.Time{}, notEnded: map[int64]time.Time{},
		gate: newStoreGate(deps.Store.Ping, deps.Store.PingWrite, log, cfg.RetryBase, stopping), stop: stop}
	w.ready.gate = w.gate
	up := func() bool { return !w.gate.closed() }
	deps.Metrics.state.storeUp.Store(&up)
	return w, nil
}

// Run takes over the leases of this host's dead worker processes, binds to
// the streams (retrying until NATS is there), consumes, fires
// timers and reconciles until ctx ends, and then shuts down: no new
// messages; in-flight steps get ShutdownTimeout to finish, after which they
// are abandoned (their intents stay open and are settled on restart). It
// returns nil after such a shutdown, ctx's error when ctx ended before
// consuming began, or the error that kept a consumer from starting. The
// caller drains the NATS connection afterwards so that the last acks and
// naks reach the server.
func (w *Worker) Run(ctx context.Context) error {
	defer w.stop()
	w.startUp(ctx)
	consumers, err := w.bind(ctx)
	if err != nil {
		return err
	}
	for _, c := range consumers {
		if c.source == sourceCommands {
			w.commandLog = &commandLog{stream: c.stream, consumer: c.consumer}
		}
	}
	// work outlives ctx by the shutdown timeout: in-flight steps may finish.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var ccs []stopper
	for _, c := range consumers {
		consume := w.consume
		if c.source == sourceLimits {
			consume = func(ctx, work context.Context, _ string, cons jetstream.Consumer) (stopper, error) {
				return w.consumeLimits(ctx, work, cons)
			}
		}
		cc, err := consume(ctx, work, c.source, c.consumer)
		if err != nil {
			for _, c := range ccs {
				c.Stop()
			}
			return fmt.Errorf("consume %s: %w", c.source, err)
		}
		ccs = append(ccs, cc)
	}
	var loops sync.WaitGroup
	loops.Go(func() { w.timers(ctx, work) })
	loops.Go(func() { w.reconciler(ctx, work) })
	loops.Go(func() { w.housekeeping(ctx) })
	w.ready.consuming.Store(true)
	w.log.Info("worker started", "consumer", w.cfg.Consumer, "concurrency", w.cfg.Concurrency, "owner", w.engine.Owner())

	<-ctx.Done()
	w.log.Info("stopping: no new messages; waiting for in-flight steps", "timeout", w.cfg.ShutdownTimeout)
	w.ready.consuming.Store(false)
	for _, cc := range ccs {
		cc.Stop()
	}
	// No feed pulls any more; the messages waiting for a slot see ctx
	// ended and hand themselves back.
	w.waiters.Wait()
	// Then the messages held for the store go back to JetStream, once no
	// new pull can bring them back here.
	w.stop()
	loops.Wait()
	done := w.drain()
	select {
	case <-done:
	case <-time.After(w.cfg.ShutdownTimeout):
		w.log.Warn("shutdown timeout: abandoning in-flight steps (their intents stay open and are settled on restart)")
		cancelWork()
		<-done
	}
	return nil
}

// track registers a handler about to start; false once shutdown began.
func (w *Worker) track() bool {
	w.goMu.Lock()
	defer w.goMu.Unlock()
	if w.stopping {
		return false
	}
	w.wg.Add(1)
	return true
}

// drain stops new handlers and returns a channel closed when the running
// ones are done.
func (w *Worker) drain() <-chan struct{} {
	w.goMu.Lock()
	w.stopping = true
	w.goMu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	return done
}
