package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// Message sources: the callback stream and the operator command stream
// (the names deferred inputs are stored under).
const (
	sourceCallbacks = casestore.SourceCallbacks
	sourceCommands  = casestore.SourceCommands
)

// worker is the message, timer and reconcile plumbing around the engine.
type worker struct {
	cfg     config
	log     *slog.Logger
	store   *casestore.Store
	engine  *refundflow.Engine
	parser  *callback.Parser
	js      jetstream.JetStream
	metrics *metrics

	// sem bounds everything handled at once (messages, timers, reconciles).
	sem chan struct{}
	// wg counts handlers in flight; goMu and stopping keep wg.Add from
	// racing with the shutdown's wg.Wait (a Consume callback may still be
	// running after ConsumeContext.Stop).
	wg       sync.WaitGroup
	goMu     sync.Mutex
	stopping bool

	mu     sync.Mutex
	active map[int64]bool // cases a timer or reconcile input is running for

	order keyOrder // commands of one case, in the order they came
}

// consumerConfig is the durable pull consumer every worker process binds to.
// No BackOff: it would override AckWait (its first entry becomes AckWait);
// redelivery delays after failures come from NakWithDelay instead.
func (w *worker) consumerConfig(filter string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       w.cfg.Consumer,
		Description:   "refundhub worker (shared by every worker process)",
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       w.cfg.AckWait,
		MaxDeliver:    w.cfg.MaxDeliver + 3,
		MaxAckPending: w.cfg.MaxAckPending,
	}
}

// consume starts a Consume loop that hands each message to a goroutine
// bounded by sem. Commands for one case run in the order they came
// (keyOrder): one that arrives while another for its case is handled waits
// for it.
// ctx stops taking new messages; work is the context of the handling itself,
// which outlives ctx by the shutdown timeout.
func (w *worker) consume(ctx, work context.Context, source string, cons jetstream.Consumer) (jetstream.ConsumeContext, error) {
	return cons.Consume(func(m jetstream.Msg) {
		key := ""
		if source == sourceCommands {
			key = refundflow.OrderKey(m.Data())
		}
		if key != "" && w.order.join(key, m, w.inProgress) {
			return // runs after the command before it, on its slot
		}
		next := func() jetstream.Msg {
			if key == "" {
				return nil
			}
			return w.order.next(key)
		}
		// Not handled (stopping): not acked, so redelivered after AckWait to
		// this or another process; so are the commands that waited behind it.
		giveUp := func() {
			for q := next(); q != nil; q = next() {
			}
		}
		if !w.acquire(ctx, m) {
			giveUp()
			return
		}
		if !w.track() {
			<-w.sem
			giveUp()
			return
		}
		go func() {
			defer func() { <-w.sem; w.wg.Done() }()
			for msg := m; msg != nil; msg = next() {
				w.handle(work, source, msg)
			}
		}()
	}, jetstream.PullMaxMessages(max(2, w.cfg.Concurrency)), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			w.log.Debug("consume", "source", source, "err", err)
		}
	}))
}

// acquire takes a handling slot for m, blocking while every slot is busy.
// While it waits, m is reported in progress every third of AckWait, so a
// message queued behind slow steps, timers or reconciles is never
// redelivered meanwhile: waiting neither counts towards MaxDeliver (which
// could otherwise exhaust the message's deliveries, with no dead letter,
// before it was ever tried) nor hands a second copy to another process.
// False if ctx ended first.
func (w *worker) acquire(ctx context.Context, m jetstream.Msg) bool {
	select {
	case w.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	default:
	}
	_ = m.InProgress()
	t := time.NewTicker(max(w.cfg.AckWait/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case w.sem <- struct{}{}:
			return true
		case <-ctx.Done():
			return false
		case <-t.C:
			if err := m.InProgress(); err != nil {
				w.log.Debug("in progress while waiting for a slot", "err", err)
			}
		}
	}
}

// handle applies one message: inbox dedupe, decode, engine, then ack after
// the commit, NakWithDelay on transient failures, dead letter when the
// message can never succeed or exhausted its deliveries.
func (w *worker) handle(ctx context.Context, source string, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		w.log.Error("message without metadata", "source", source, "err", err)
		_ = m.Term()
		return
	}
	msgID := m.Headers().Get(events.HeaderMsgID)
	if msgID == "" {
		msgID = meta.Stream + ":" + strconv.FormatUint(meta.Sequence.Stream, 10)
	}
	msg := &refundflow.Message{ID: msgID, Stream: meta.Stream, Seq: meta.Sequence.Stream, Subject: m.Subject(),
		Source: source, Payload: m.Data()}
	log := w.log.With("source", source, "msg", msgID, "delivery", meta.NumDelivered)
	dl := deadLetterOf(source, m, meta, msgID)

	stop := w.inProgress(m)
	h, reason, err := w.apply(ctx, msg)
	stop()
	if reason != "" {
		w.deadLetterMsg(ctx, m, dl, reason, err)
		return
	}
	var re *refundflow.RetryError
	switch {
	case err == nil:
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if aerr := m.DoubleAck(actx); aerr != nil {
			// The effect (or the wait) is committed with the inbox row or the
			// deferred input: a redelivery is dropped or joins it.
			log.Warn("ack", "err", aerr)
		}
		cancel()
		result := handledResult(h)
		w.metrics.messages.WithLabelValues(source, result).Inc()
		log.Debug("handled", "case", h.CaseID, "state", h.State, "code", h.Code, "steps", h.Steps, "result", result, "until", h.Until)
	case errors.Is(err, refundflow.ErrPermanent):
		w.deadLetterMsg(ctx, m, dl, events.DeadPermanentError, err)
	case errors.Is(err, refundflow.ErrNoCase):
		// The request that opens the case may still be on its way: try again
		// for a bounded time, then give the command up, saying why.
		waited := time.Since(meta.Timestamp)
		if waited >= w.cfg.UnknownCaseWait || int(meta.NumDelivered) >= w.cfg.MaxDeliver {
			w.deadLetterMsg(ctx, m, dl, events.DeadUnknownCase,
				fmt.Errorf("no case appeared within %s of the command: %w", waited.Round(time.Second), err))
			return
		}
		d := min(w.backoff(meta.NumDelivered), w.cfg.UnknownCaseWait-waited+w.cfg.RetryBase)
		if nerr := m.NakWithDelay(d); nerr != nil {
			log.Warn("nak", "err", nerr)
		}
		w.metrics.messages.WithLabelValues(source, "retry").Inc()
		log.Info("no case for the command yet; retry later", "after", d, "err", err)
	case int(meta.NumDelivered) >= w.cfg.MaxDeliver:
		w.deadLetterMsg(ctx, m, dl, events.DeadMaxDeliveries, err)
	default:
		d := w.backoff(meta.NumDelivered)
		switch {
		case errors.As(err, &re) && re.After > 0 && errors.Is(err, casestore.ErrLeased):
			d = re.After // another process holds the case: come back when its lease ends
		case errors.As(err, &re) && errors.Is(err, refundflow.ErrWait):
			d = max(d, re.After) // the case waits until then: sooner would only use up deliveries
		}
		if ctx.Err() != nil {
			d = 0 // shutting down: let another process take it at once
		}
		if nerr := m.NakWithDelay(d); nerr != nil {
			log.Warn("nak", "err", nerr)
		}
		w.metrics.messages.WithLabelValues(source, "retry").Inc()
		log.Info("retry later", "case", h.CaseID, "after", d, "err", err)
	}
}

// backoff is the NakWithDelay before delivery n+1: base·2^(n-1), capped.
func (w *worker) backoff(n uint64) time.Duration {
	d := w.cfg.RetryBase
	for i := uint64(1); i < n && d < w.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, w.cfg.RetryMax)
}

// inProgress tells JetStream the message is still being worked on, every
// third of AckWait, until stop is called.
func (w *worker) inProgress(m jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(w.cfg.AckWait/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// apply decodes msg's payload and hands it to the engine. A payload that
// cannot be decoded returns the dead-letter reason for it.
func (w *worker) apply(ctx context.Context, msg *refundflow.Message) (refundflow.Handled, events.DeadReason, error) {
	if msg.Source == sourceCallbacks {
		ev, err := w.parser.Parse(msg.Payload)
		if err != nil {
			return refundflow.Handled{}, events.DeadUndecodable, err
		}
		// The inbox keys on the callback's own identity (its content hash,
		// normally also its Nats-Msg-Id), so a copy republished under another
		// header id (a dead-letter retry, a replay) is still recognised.
		msg.ID = ev.ID
		h, err := w.engine.HandleCallback(ctx, ev, msg)
		return h, "", err
	}
	cmd, err := refundflow.DecodeCommand(msg.Payload)
	if err != nil {
		return refundflow.Handled{}, events.DeadInvalidCommand, err
	}
	msg.ID = cmd.ID // the command's own id, whatever header it came with
	h, err := w.engine.HandleCommand(ctx, cmd, msg)
	return h, "", err
}

// handledResult is the messages metric's result for an input handled
// without error.
func handledResult(h refundflow.Handled) string {
	switch {
	case h.Duplicate:
		return "duplicate"
	case h.Ignored:
		return "ignored"
	case h.Deferred:
		return "deferred"
	}
	return "applied"
}

// deadMessage is what a dead letter keeps of a message: from the stream,
// or from deferred_inputs for one that waited there.
type deadMessage struct {
	source     string
	msgID      string
	subject    string
	stream     string
	seq        uint64
	deliveries uint64
	headers    nats.Header
	payload    []byte
	deferred   bool // its deferred_inputs row goes with the dead letter
}

func deadLetterOf(source string, m jetstream.Msg, meta *jetstream.MsgMetadata, msgID string) deadMessage {
	return deadMessage{source: source, msgID: msgID, subject: m.Subject(), stream: meta.Stream, seq: meta.Sequence.Stream,
		deliveries: meta.NumDelivered, headers: m.Headers(), payload: m.Data()}
}

// deadLetterMsg dead-letters a stream message and terminates it; if the dead
// letter could not be stored the message is Nak'ed to try again (both writes
// are idempotent).
func (w *worker) deadLetterMsg(ctx context.Context, m jetstream.Msg, d deadMessage, reason events.DeadReason, cause error) {
	if err := w.deadLetter(ctx, d, reason, cause); err != nil {
		_ = m.NakWithDelay(w.cfg.RetryBase)
		return
	}
	if terr := m.TermWithReason(string(reason)); terr != nil {
		w.log.Warn("term", "msg", d.msgID, "err", terr)
	}
}

// deadLetter records a message in dead_letters (with, for one that waited
// in the store, the removal of its deferred_inputs row), then publishes it
// to deadletters.<source> with Dl-* headers: the same reason code in the
// row, the Dl-Reason header, the Term and the metric.
func (w *worker) deadLetter(ctx context.Context, d deadMessage, reason events.DeadReason, cause error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	errText := clipText(cause.Error(), 500)
	err := w.store.Update(dctx, func(tx *casestore.Tx) error {
		if _, _, err := tx.InsertDeadLetter(dctx, casestore.DeadLetter{MsgID: d.msgID, Subject: d.subject, Headers: d.headers,
			Payload: d.payload, Reason: string(reason), Error: errText, Deliveries: int(d.deliveries)}); err != nil {
			return err
		}
		if d.deferred {
			return tx.DeleteDeferred(dctx, d.msgID)
		}
		return nil
	})
	if err == nil {
		out := nats.NewMsg(events.DeadLetterSubject(d.source))
		out.Data = d.payload
		for k, v := range d.headers {
			if k != events.HeaderMsgID {
				out.Header[k] = v
			}
		}
		out.Header.Set(events.HeaderDeadReason, string(reason))
		out.Header.Set(events.HeaderDeadError, errText)
		out.Header.Set(events.HeaderDeadSubject, d.subject)
		out.Header.Set(events.HeaderDeadStream, d.stream)
		out.Header.Set(events.HeaderDeadSequence, strconv.FormatUint(d.seq, 10))
		out.Header.Set(events.HeaderDeadDeliveries, strconv.FormatUint(d.deliveries, 10))
		if _, perr := w.js.PublishMsg(dctx, out, jetstream.WithMsgID("dl:"+d.msgID)); perr != nil {
			if !d.deferred {
				err = perr
			} else {
				// The row is the record (refundctl reads it); the stream copy
				// is for alerting and cannot be written again from here.
				w.log.Warn("dead letter stored; its stream copy failed", "msg", d.msgID, "err", perr)
			}
		}
	}
	if err != nil {
		w.log.Error("dead letter not stored; retrying later", "source", d.source, "msg", d.msgID, "err", err)
		return err
	}
	w.metrics.deadLetters.WithLabelValues(d.source, string(reason)).Inc()
	w.metrics.messages.WithLabelValues(d.source, "dead_letter").Inc()
	w.log.Warn("dead letter", "source", d.source, "msg", d.msgID, "reason", reason, "err", errText)
	return nil
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// onCase runs fn for a case in the background, unless something started
// this way already runs for it in this process. It blocks while the process
// is at its concurrency limit.
func (w *worker) onCase(ctx context.Context, id int64, fn func()) bool {
	w.mu.Lock()
	if w.active[id] {
		w.mu.Unlock()
		return false
	}
	w.active[id] = true
	w.mu.Unlock()
	done := func() {
		w.mu.Lock()
		delete(w.active, id)
		w.mu.Unlock()
	}
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		done()
		return false
	}
	if !w.track() {
		<-w.sem
		done()
		return false
	}
	go func() {
		defer func() {
			<-w.sem
			done()
			w.wg.Done()
		}()
		fn()
	}()
	return true
}

// wake runs a timer or reconcile input for a case in the background (see
// onCase).
func (w *worker) wake(ctx, work context.Context, id int64, kind refundflow.InputKind, before string) bool {
	return w.onCase(ctx, id, func() {
		h, err := w.engine.Wake(work, id, kind)
		if err != nil {
			w.log.Info("wake: retry later", "case", id, "kind", kind, "err", err)
			return
		}
		if kind == refundflow.InputReconcile && before != "" && string(h.State) != before {
			w.metrics.reconcileMoved.Inc()
			w.log.Info("reconciler moved a case", "case", id, "from", before, "to", h.State)
		}
	})
}

// takeUp applies the inputs that waited in the store for a case and are due
// now, in their order, as they would have been applied when their messages
// came. It stops at one that has to wait again (the later ones wait behind
// it). One that cannot be decoded or applied at all, or that failed
// MaxDeliver times, becomes a dead letter; one that failed otherwise waits
// again with the usual backoff.
func (w *worker) takeUp(ctx context.Context, id int64) {
	waiting, err := w.store.DeferredInputs(ctx, id)
	if err != nil {
		w.log.Warn("deferred inputs", "case", id, "err", err)
		return
	}
	for _, d := range waiting {
		if d.NotBefore.After(time.Now()) || ctx.Err() != nil {
			return
		}
		dm := deadMessage{source: d.Source, msgID: d.MsgID, subject: d.Subject, stream: d.Stream, seq: d.StreamSeq,
			deliveries: uint64(d.Attempts), payload: d.Payload, deferred: true}
		// A dead letter that could not be stored keeps its row and stops the
		// case's queue: the inputs behind it must not overtake it.
		if d.Attempts >= w.cfg.MaxDeliver {
			if w.deadLetter(ctx, dm, events.DeadMaxDeliveries, fmt.Errorf("taken up %d times and failed each time (last: %s)", d.Attempts, d.Reason)) != nil {
				return
			}
			continue
		}
		msg := &refundflow.Message{ID: d.MsgID, Stream: d.Stream, Seq: d.StreamSeq, Subject: d.Subject,
			Source: d.Source, Payload: d.Payload, Deferred: true}
		h, reason, err := w.apply(ctx, msg)
		var dlErr error
		switch {
		case reason != "":
			dlErr = w.deadLetter(ctx, dm, reason, err)
		case err == nil && h.Deferred:
			w.metrics.messages.WithLabelValues(d.Source, "deferred").Inc()
			return
		case err == nil:
			w.metrics.messages.WithLabelValues(d.Source, handledResult(h)).Inc()
		case errors.Is(err, refundflow.ErrPermanent):
			dlErr = w.deadLetter(ctx, dm, events.DeadPermanentError, err)
		case errors.Is(err, refundflow.ErrNoCase):
			dlErr = w.deadLetter(ctx, dm, events.DeadUnknownCase, err)
		default:
			d.NotBefore, d.Attempts, d.Reason = time.Now().Add(w.backoff(uint64(d.Attempts)+1)), 1, clipText(err.Error(), 200)
			if uerr := w.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error { return tx.Defer(ctx, d) }); uerr != nil {
				w.log.Warn("deferred input: keep for later", "case", id, "msg", d.MsgID, "err", uerr)
			}
			w.log.Info("deferred input: retry later", "case", id, "msg", d.MsgID, "err", err)
			return
		}
		if dlErr != nil {
			return
		}
	}
}

// timers fires due case timers, and takes up due deferred inputs, every
// TimerInterval.
func (w *worker) timers(ctx, work context.Context) {
	t := time.NewTicker(w.cfg.TimerInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		due, err := w.store.DueCases(ctx, time.Now(), 200)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("due cases", "err", err)
			}
			continue
		}
		for _, c := range due {
			if w.wake(ctx, work, c.ID, refundflow.InputTimer, "") {
				w.metrics.timerWakes.Inc()
			}
		}
		waiting, err := w.store.DueDeferredCases(ctx, time.Now(), 200)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("due deferred inputs", "err", err)
			}
			continue
		}
		for _, id := range waiting {
			w.onCase(ctx, id, func() { w.takeUp(work, id) })
		}
	}
}

// reconciler re-checks open cases whose last platform check is older than
// ReconcileAge, every ReconcileInterval, so a callback the platform never
// delivered cannot strand a case.
func (w *worker) reconciler(ctx, work context.Context) {
	t := time.NewTicker(w.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stale, err := w.store.StaleOpenCases(ctx, time.Now().Add(-w.cfg.ReconcileAge), 500)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("stale cases", "err", err)
			}
			continue
		}
		for _, c := range stale {
			if w.wake(ctx, work, c.ID, refundflow.InputReconcile, c.State) {
				w.metrics.reconcileFound.Inc()
			}
		}
	}
}

// housekeeping prunes inbox rows older than InboxRetention and checkpoints
// the WAL, every HousekeepingInterval. Several processes may run it: both
// operations are idempotent.
func (w *worker) housekeeping(ctx context.Context) {
	t := time.NewTicker(w.cfg.HousekeepingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := w.store.PruneInbox(ctx, time.Now().Add(-w.cfg.InboxRetention))
		if err != nil && ctx.Err() == nil {
			w.log.Warn("prune inbox", "err", err)
		} else if n > 0 {
			w.log.Info("pruned inbox", "rows", n)
		}
		if err := w.store.Checkpoint(ctx); err != nil && !errors.Is(err, casestore.ErrCheckpointBusy) && ctx.Err() == nil {
			w.log.Warn("checkpoint", "err", err)
		}
	}
}

// track registers a handler about to start; false once shutdown began.
func (w *worker) track() bool {
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
func (w *worker) drain() <-chan struct{} {
	w.goMu.Lock()
	w.stopping = true
	w.goMu.Unlock()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	return done
}
