package casework

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
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/delay"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// pollWait is how long a feed's pull waits on the server for its
// messages: short enough that a pull lost with a NATS server (no
// heartbeat below 10 s) is soon replaced, long enough that an idle worker
// sends a pull every few seconds, not a stream of them.
const pollWait = 5 * time.Second

// feed is one source's pull loop (consume); Stop ends it and waits for it,
// so no message is taken after Stop returns.
type feed struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Stop ends the loop and waits for it to return.
func (f *feed) Stop() {
	f.cancel()
	<-f.done
}

// stopper ends a consumer's loop (a feed, or Consume's context).
type stopper interface{ Stop() }

// consume starts source's pull loop (feed). It asks JetStream for no more
// messages than this process has free slots, and every message it holds
// is in sight: handled, waiting for a slot (acquire, reported in
// progress), or queued behind the command before it for its case
// (keyOrder, reported in progress). A pull buffer (Consume) held
// prefetched messages behind one waiting for a slot, unreported, so after
// AckWait JetStream handed them out again, counted towards MaxDeliver
// (TestWaitForSlotNotRedelivered).
// ctx stops taking new messages; work is the context of the handling itself,
// which outlives ctx by the shutdown timeout.
func (w *Worker) consume(ctx, work context.Context, source string, cons jetstream.Consumer) (stopper, error) {
	fctx, cancel := context.WithCancel(ctx)
	f := &feed{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		w.feed(fctx, work, source, cons)
	}()
	return f, nil
}

// feed takes source's messages until ctx ends, in rounds: it waits until
// a slot is free (in line behind the messages already waiting for one),
// then pulls as many messages as slots are free, handing each on as it
// comes. Holding no slot while it pulls, an idle source takes none from
// the other source or the sweeps; a message that comes when the slots were
// taken meanwhile waits for one in progress. Commands queued behind an
// earlier one for their case take no slot, so they are bounded apart: at
// most twice the concurrency of them at once (a batch of commands for a
// few cases would otherwise all be pulled into this process, up to the
// consumer's MaxAckPending). A longer burst for one case holds back the
// commands behind it in the stream, in this process, until it is down to
// that; it is twice, not once, so that a few messages posted to one case
// do not.
func (w *Worker) feed(ctx, work context.Context, source string, cons jetstream.Consumer) {
	failed := 0
	for {
		n := w.freeSlots(ctx)
		if n == 0 {
			return
		}
		if source == sourceCommands {
			queued, left := w.order.waiting()
			if room := 2*cap(w.sem) - queued; room <= 0 {
				select {
				case <-left:
					continue
				case <-ctx.Done():
					return
				}
			} else {
				n = min(n, room)
			}
		}
		if events.NotUp(w.js) {
			// NATS away (a pull would fail at once: no reconnect buffer):
			// pull again soon after it is back, with no backoff to wait out.
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		err := w.pull(ctx, work, source, cons, n)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failed = 0
			continue
		}
		failed++
		wait := delay.Doubling(100*time.Millisecond, 5*time.Second, failed-1)
		if failed%10 == 0 {
			w.log.Warn("taking messages keeps failing; retrying", "source", source, "failures", failed, "err", err, "retry_in", wait)
		} else {
			w.log.Debug("taking messages", "source", source, "err", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// freeSlots waits until a handling slot is free and returns how many are
// free then, or 0 if ctx ended first. It takes them only to count them.
// A channel's blocked senders are served in turn, and a message waiting
// for a slot stays blocked in one place (acquire): the wait is behind
// the messages already waiting, so a feed pulls again once those it
// pulled before have their slots (all but the odd one just starting its
// wait).
func (w *Worker) freeSlots(ctx context.Context) int {
	if ctx.Err() != nil {
		return 0 // stopping: a free slot must not win the select below
	}
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	n := 1
	for full := false; !full && n < cap(w.sem); {
		select {
		case w.sem <- struct{}{}:
			n++
		default:
			full = true
		}
	}
	for range n {
		<-w.sem
	}
	return n
}

// pull asks for up to n messages, waiting up to pollWait for them, and
// hands each on as it comes.
func (w *Worker) pull(ctx, work context.Context, source string, cons jetstream.Consumer, n int) error {
	pctx, cancel := context.WithTimeout(ctx, pollWait)
	defer cancel()
	batch, err := cons.Fetch(n, jetstream.FetchContext(pctx))
	if err != nil {
		return err
	}
	for m := range batch.Messages() {
		w.dispatch(ctx, work, source, m)
	}
	if err := batch.Error(); err != nil && pctx.Err() == nil {
		return err
	}
	return nil
}

// dispatch starts handling m on a goroutine once it has a slot; while it
// waits for one it is reported in progress (acquire). Commands for one
// case run in the order they came (keyOrder): one that arrives while
// another for its case is handled or waiting waits behind it.
func (w *Worker) dispatch(ctx, work context.Context, source string, m jetstream.Msg) {
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
	// Not handled (stopping): handed back at once (Nak) for another
	// process or the next start, with the commands that waited behind it
	// (which may then come back in another order: see guarantees.md).
	giveUp := func() {
		w.handBack(m)
		for q := next(); q != nil; q = next() {
			w.handBack(q)
		}
	}
	// start runs with a slot taken.
	start := func() {
		if !w.track() {
			<-w.sem
			giveUp()
			return
		}
		go func() {
			sl := &slot{w: w}
			defer func() { sl.release(); w.wg.Done() }()
			// At a stop the commands queued behind run too, in the
			// grace (work): handed back, JetStream could deliver them
			// out of order (its redelivery queue does not keep it). Not
			// once the grace is over, or while the store does not
			// answer (each would only fail, or hang, and be handed back):
			// those go back at once.
			for msg := m; msg != nil; msg = next() {
				if msg != m && (work.Err() != nil || (w.gate.stopping() && w.gate.closed())) {
					w.handBack(msg)
					continue
				}
				w.handle(work, source, msg, sl)
			}
		}()
	}
	if ctx.Err() != nil {
		giveUp()
		return
	}
	select {
	case w.sem <- struct{}{}:
		start()
	default:
		// Waiting here would leave the rest of the pull unread; each
		// message waits on its own instead.
		w.waiters.Add(1)
		go func() {
			defer w.waiters.Done()
			if !w.acquire(ctx, m) {
				giveUp()
				return
			}
			start()
		}()
	}
}

// handBack gives m back to JetStream unhandled, for redelivery at once.
func (w *Worker) handBack(m jetstream.Msg) {
	if err := m.Nak(); err != nil {
		w.log.Debug("hand back a message not handled", "err", err)
	}
}

// acquire takes a handling slot for m, blocking while every slot is busy.
// While it waits, m is reported in progress every third of AckWait, so a
// message queued behind slow steps, timers or reconciles is never
// redelivered meanwhile: waiting neither counts towards MaxDeliver (which
// could otherwise exhaust the message's deliveries, with no dead letter,
// before it was ever tried) nor hands a second copy to another process.
// The reports come from a goroutine of their own, ended before acquire
// returns (none follows the message's ack), so that the wait is one
// blocked send that keeps its place in line: waking it for each report
// put it behind the feeds and the sweeps every time, and the feeds pulled
// more while it waited. False if ctx ended first.
func (w *Worker) acquire(ctx context.Context, m jetstream.Msg) bool {
	if ctx.Err() != nil {
		return false // stopping: a free slot must not win the select below
	}
	select {
	case w.sem <- struct{}{}:
		return true
	default:
	}
	// No report now: m was just delivered (its AckWait starts there), and
	// the sooner it is in line the better.
	stop := w.inProgress(m)
	defer stop()
	select {
	case w.sem <- struct{}{}:
		if ctx.Err() != nil { // both were ready
			<-w.sem
			return false
		}
		return true
	case <-ctx.Done():
		return false
	}
}

// slot is the place in w.sem a message is handled in. A refund callback,
// once recorded (refundflow.Message.Recorded), hands it over to a place
// in w.verifying for its verification: the platform read that follows
// does not hold up the recording of the next callbacks, so their lag does
// not depend on the platform's latency. The hand-over takes the new place
// before it gives up the old one: when every verification place is taken
// the callback keeps its message slot and waits, so the consumer is held
// back as before (never more work at once than both bounds). Nothing that
// holds a verification place waits for a message slot, so the two cannot
// deadlock.
type slot struct {
	w         *Worker
	verifying bool
}

// handOver moves the handling to a verification place (once).
func (s *slot) handOver() {
	if s.verifying {
		return
	}
	s.w.verifying <- struct{}{}
	<-s.w.sem
	s.verifying = true
}

// release gives up the place held.
func (s *slot) release() {
	if s.verifying {
		<-s.w.verifying
		return
	}
	<-s.w.sem
}

// maxHeldOutages bounds how many store outages one delivery of a message
// is held through (handle) before the failure counts as the message's. A
// write the store refused (casestore.WriteRefused: a full disk, a device
// that fails to write) is held through without a count: no message's
// statement fills a disk, and counted, a disk with room for some batches
// and not others would run messages out of deliveries.
const maxHeldOutages = 3

// holdStore holds a handler whose work, begun in the gate's generation
// seen, failed with err, already held through held outages that count,
// until the store is back (storeGate.hold); it reports whether to try the
// work again, and the outages that count now.
func (w *Worker) holdStore(ctx context.Context, err error, held int, seen uint64) (bool, int) {
	refused := casestore.WriteRefused(err)
	if !casestore.Unavailable(err) || (held >= maxHeldOutages && !refused) || !w.gate.hold(ctx, err, seen) {
		return false, held
	}
	if !refused {
		held++
	}
	return true, held
}

// delivery is one stream message being handled, with what settling it
// needs.
type delivery struct {
	source string
	m      jetstream.Msg
	meta   *jetstream.MsgMetadata
	dead   deadMessage // what a dead letter of it keeps
	log    *slog.Logger
}

// handle applies one message: inbox dedupe, decode, engine, then ack after
// the commit, NakWithDelay on transient failures, dead letter when the
// message can never succeed or exhausted its deliveries.
func (w *Worker) handle(ctx context.Context, source string, m jetstream.Msg, sl *slot) {
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
	if source == sourceCallbacks {
		msg.ReceivedAt = receivedAt(m.Headers())
		msg.Recorded = sl.handOver
	}
	d := delivery{source: source, m: m, meta: meta, dead: deadLetterOf(source, m, meta, msgID),
		log: w.log.With(append(msgAttrs(source, msgID, m.Data()), "delivery", meta.NumDelivered)...)}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
		attribute.String("messaging.destination.name", m.Subject()), attribute.String("msg_id", msgID),
		attribute.Int64("delivery", int64(meta.NumDelivered)))}
	if first, ok := events.RetriedTrace(m.Headers()); ok { // a retried dead letter, a replay: the trace it was in
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: first,
			Attributes: []attribute.KeyValue{attribute.String("link", "earlier delivery")}}))
	}
	ctx, span := w.tracer.Start(events.ExtractTrace(ctx, m.Headers()), "handle "+source, opts...)
	defer span.End()

	stop := w.inProgress(m)
	first := *msg
	seen := w.gate.generation()
	h, reason, dead, err := w.applyLive(ctx, d, msg)
	kept, lag, verified := msg.Deferred, msg.Lag, msg.Verified
	// The store did not answer: the message waits, in progress, for it to
	// come back and is applied again in this delivery, as a fresh copy
	// (what a redelivery would bring); the outage counts for nothing. Up to
	// maxHeldOutages times: a message whose own statement brings the
	// database down (a server bug, an out-of-memory kill) must run out of
	// deliveries rather than crash it for ever. A refused write (a full
	// disk) is held however often it comes back.
	held := 0
	for reason == "" {
		var retry bool
		if retry, held = w.holdStore(ctx, err, held, seen); !retry {
			break
		}
		again := first
		msg = &again
		seen = w.gate.generation()
		h, reason, dead, err = w.applyLive(ctx, d, msg)
		kept = kept || msg.Deferred
		if lag != 0 {
			msg.Lag = lag // the callback's record, committed by an earlier try
		}
		if verified != 0 {
			msg.Verified = verified // and its verified decision
		}
		lag, verified = msg.Lag, msg.Verified
	}
	stop()
	if dead != nil && !dead.DiscardedAt.IsZero() {
		// Discarded: by an operator, who decided it is not to be done, or
		// by the worker, settled after all. Finished, and not announced
		// on the dead-letter stream again.
		d.log.InfoContext(ctx, "its dead letter was discarded: terminated", "dead_letter", dead.ID, "reason", dead.Reason)
		if terr := m.TermWithReason(dead.Reason); terr != nil {
			d.log.Warn("term", "err", terr)
		}
		result := "dead_letter"
		if dead.DiscardedBy == casestore.WorkerDiscards {
			result = "duplicate" // settled after all, by another copy
		}
		w.metrics.messages.WithLabelValues(source, result).Inc()
		span.SetAttributes(attribute.String("result", result))
		return
	}
	if dead != nil {
		// Dead-lettered by an earlier delivery of this copy whose Term did
		// not reach the server: finished as it said (its stream copy
		// published again, deduplicated by its id), not applied.
		d.log.InfoContext(ctx, "dead-lettered by an earlier delivery: terminated", "dead_letter", dead.ID, "reason", dead.Reason)
		w.deadLetterMsg(ctx, m, d.dead, events.DeadReason(dead.Reason), errors.New(dead.Error))
		return
	}
	if kept {
		d.dead.kept = msg.ID // recorded: a dead letter takes the kept copy with it
	}
	result := "retry"
	switch {
	case reason != "":
		result = "dead_letter"
		w.deadLetterMsg(ctx, m, d.dead, reason, err)
	case err == nil:
		result = handledResult(h)
		w.ack(ctx, d, h)
	case errors.Is(err, refundflow.ErrPermanent):
		result = "dead_letter"
		w.deadLetterMsg(ctx, m, d.dead, events.DeadPermanentError, err)
	case errors.Is(err, refundflow.ErrNoCase):
		w.awaitCase(ctx, d, err)
	case (held < maxHeldOutages || casestore.WriteRefused(err)) && casestore.Unavailable(err) && w.gate.stopping() && w.gate.closed() &&
		int(meta.NumDelivered) < w.cfg.MaxDeliver+2:
		// Stopping during an outage the gate confirmed: the message goes
		// back at once, not as a dead letter (it never failed on its
		// own), while the consumer's margin over MaxDeliver lasts.
		w.nak(d, 0)
		d.log.InfoContext(ctx, "stopping while the case store does not answer: handed back", "err", err)
	case ctx.Err() != nil && int(meta.NumDelivered) < w.cfg.MaxDeliver+2:
		// Stopping, and the shutdown grace cut the handling (a platform
		// call in flight, a read): the failure is the worker's, not the
		// message's. Handed back at once, as while the store is away, and
		// never a dead letter for it: a cut call may have reached the
		// platform, and the next worker settles its intent from there.
		w.nak(d, 0)
		d.log.InfoContext(ctx, "stopping: cut by the shutdown timeout, handed back", "case", h.CaseID, "err", err)
	case int(meta.NumDelivered) >= w.cfg.MaxDeliver:
		result = "dead_letter"
		w.deadLetterMsg(ctx, m, d.dead, events.DeadMaxDeliveries, err)
	default:
		w.retryLater(ctx, d, h, err)
	}
	if err == nil && !h.Deferred && w.mayBeDead(d) {
		// Applied after the server may have stopped delivering it: a
		// delivery_limit dead letter written meanwhile goes (limits.go).
		// A failure is logged there; the advisory's own look after its
		// write covers the rest, unless both fail. One kept for its
		// case's timer is not finished: its take-up discards it.
		_ = w.discardLimit(ctx, d.dead, result)
	}
	span.SetAttributes(attribute.Int64("case", h.CaseID), attribute.String("result", result))
	if err != nil {
		span.SetStatus(codes.Error, result)
	}
	if !msg.ReceivedAt.IsZero() {
		w.metrics.observeLag(m.Headers().Get(events.HeaderPlatform), result, msg)
	}
}

// applyLive is apply for a message that has no dead letter of its own
// yet. A redelivered copy may have one: an earlier delivery stored it and
// its Term did not reach the server (a crash after the commit; a copy that
// could not be published, Nak'ed to try again). Applied now, it would act
// beside a dead letter an operator sees and a verdict refundctl reported:
// dead is that dead letter instead, and nothing is applied. The store's
// error in asking is apply's error, held through an outage and asked
// again like it. Only a copy that may have one asks (mayBeDead), and only
// of its own stream copy: a replay, a
// callback pushed again, a command id used again are new copies under an
// old id, and are applied (casestore.PendingDeadLetter).
func (w *Worker) applyLive(ctx context.Context, d delivery, msg *refundflow.Message) (refundflow.Handled, events.DeadReason, *casestore.DeadLetter, error) {
	if w.mayBeDead(d) {
		dl, err := w.store.PendingDeadLetter(ctx, d.dead.MsgID, d.dead.Stream, d.dead.Sequence)
		switch {
		case err == nil && events.DeadReason(dl.Reason) == events.DeadDeliveryLimit && dl.DiscardedAt.IsZero():
			// The server stopped delivering it, and this copy was fetched
			// before: applied like any, its dead letter discarded once it
			// is settled (handle). Had it ended the process, this copy
			// would not be here. One an operator (or the worker, settled)
			// discarded stops it below.
		case err == nil:
			return refundflow.Handled{}, "", &dl, nil
		case !errors.Is(err, casestore.ErrNotFound):
			return refundflow.Handled{}, "", nil, err
		}
	}
	h, reason, err := w.applyGuarded(ctx, "message", msg)
	return h, reason, nil, err
}

// mayBeDead reports whether d's stream copy may have a dead letter already:
// a redelivery (an earlier delivery stored it, its Term lost), or a copy
// older than AckWait, which the server may have delivered again meanwhile
// until it stopped (a delivery_limit dead letter, limits.go). A copy
// handled as soon as it came has none, and asks nothing.
func (w *Worker) mayBeDead(d delivery) bool {
	return d.meta.NumDelivered > 1 || time.Since(d.meta.Timestamp) > w.cfg.AckWait
}

// applyGuarded is apply under guard: an input the worker fails on (a
// panic; in SQLite's group committer, casestore.ErrUpdatePanicked) returns
// the dead-letter reason DeadWorkerFailed with the failure.
func (w *Worker) applyGuarded(ctx context.Context, where string, msg *refundflow.Message) (h refundflow.Handled, reason events.DeadReason, err error) {
	if perr := w.guard(ctx, where, func() { h, reason, err = w.apply(ctx, msg) }); perr != nil {
		return refundflow.Handled{}, events.DeadWorkerFailed, perr
	}
	if errors.Is(err, casestore.ErrUpdatePanicked) {
		w.metrics.panics.WithLabelValues(where).Inc()
		return h, events.DeadWorkerFailed, err
	}
	return h, reason, err
}

// receivedAt is a callback's receive time from its Cb-Received header
// (events.CallbackHeaders); zero when absent or malformed.
func receivedAt(h nats.Header) time.Time {
	ms, err := strconv.ParseInt(h.Get(events.HeaderReceivedAt), 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// ack acknowledges a message the engine has handled, and waits for the
// server to confirm it (DoubleAck), for up to 5 s even when shutting down.
func (w *Worker) ack(ctx context.Context, d delivery, h refundflow.Handled) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if aerr := d.m.DoubleAck(actx); aerr != nil {
		// The effect (or the wait) is committed with the inbox row or the
		// deferred input: a redelivery is dropped or joins it.
		d.log.WarnContext(ctx, "ack", "case", h.CaseID, "err", aerr)
	}
	cancel()
	result := handledResult(h)
	w.metrics.messages.WithLabelValues(d.source, result).Inc()
	d.log.DebugContext(ctx, "handled", "case", h.CaseID, "state", h.State, "code", h.Code, "steps", h.Steps, "result", result, "until", h.Until)
}

// awaitCase handles a command naming no known case. The request that opens
// the case may still be on its way: try again for a bounded time
// (UnknownCaseWait after the command was issued), then give the command
// up, saying why.
func (w *Worker) awaitCase(ctx context.Context, d delivery, err error) {
	waited := time.Since(d.meta.Timestamp)
	if waited >= w.cfg.UnknownCaseWait || int(d.meta.NumDelivered) >= w.cfg.MaxDeliver {
		w.deadLetterMsg(ctx, d.m, d.dead, events.DeadUnknownCase,
			fmt.Errorf("no case appeared within %s of the command: %w", waited.Round(time.Second), err))
		return
	}
	after := min(w.backoff(d.meta.NumDelivered), w.cfg.UnknownCaseWait-waited+w.cfg.RetryBase)
	w.nak(d, after)
	d.log.InfoContext(ctx, "no case for the command yet; retry later", "after", after, "err", err)
}

// retryLater naks a message that failed transiently, with the backoff for
// its delivery, or later when the error says when the case can go on.
func (w *Worker) retryLater(ctx context.Context, d delivery, h refundflow.Handled, err error) {
	after := w.backoff(d.meta.NumDelivered)
	var re *refundflow.RetryError
	switch {
	case errors.As(err, &re) && re.After > 0 && errors.Is(err, casestore.ErrLeased):
		after = re.After // another process holds the case: come back when its lease ends
	case errors.As(err, &re) && errors.Is(err, refundflow.ErrWait):
		after = max(after, re.After) // the case waits until then: sooner would only use up deliveries
	}
	if ctx.Err() != nil {
		after = 0 // shutting down: let another process take it at once
	}
	w.nak(d, after)
	d.log.InfoContext(ctx, "retry later", "case", h.CaseID, "after", after, "err", err)
}

// nak asks for the message again after the delay, and counts a retry.
func (w *Worker) nak(d delivery, after time.Duration) {
	if err := d.m.NakWithDelay(after); err != nil {
		d.log.Warn("nak", "err", err)
	}
	w.metrics.messages.WithLabelValues(d.source, "retry").Inc()
}

// backoff is the NakWithDelay before delivery n+1: base·2^(n-1), capped.
func (w *Worker) backoff(n uint64) time.Duration {
	return delay.Doubling(w.cfg.RetryBase, w.cfg.RetryMax, int(min(n, 64))-1)
}

// inProgress tells JetStream the message is still being worked on, every
// third of AckWait, until stop is called.
func (w *Worker) inProgress(m jetstream.Msg) (stop func()) {
	return w.everyThirdOfAckWait(func() bool {
		_ = m.InProgress()
		return true
	})
}

// everyThirdOfAckWait runs fn every third of AckWait, until stop is called
// or fn returns false: what keeps work the worker still does from looking
// abandoned (a message's in-progress reports, a take-up's hold).
func (w *Worker) everyThirdOfAckWait(fn func() bool) (stop func()) {
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
				if !fn() {
					return
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// apply decodes msg's payload and hands it to the engine. A payload that
// cannot be decoded returns the dead-letter reason for it.
func (w *Worker) apply(ctx context.Context, msg *refundflow.Message) (refundflow.Handled, events.DeadReason, error) {
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
	if err := w.applyEarlier(ctx, msg, cmd); err != nil {
		return refundflow.Handled{}, "", err
	}
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
