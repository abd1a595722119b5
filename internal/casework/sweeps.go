package casework

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// onCase runs fn for a case in the background, unless something started
// this way already runs for it in this process. It blocks while the process
// is at its concurrency limit.
func (w *Worker) onCase(ctx context.Context, id int64, fn func()) bool {
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
func (w *Worker) wake(ctx, work context.Context, id int64, kind refundflow.InputKind, before string) bool {
	w.mu.Lock()
	until, broken := w.broken[id]
	if broken && time.Now().After(until) {
		delete(w.broken, id)
		broken = false
	}
	w.mu.Unlock()
	if broken {
		return false // its last wake met a bug of this build (guard)
	}
	return w.onCase(ctx, id, func() {
		// A timer or reconcile wake starts its own trace.
		sctx, span := w.tracer.Start(work, "wake "+string(kind), trace.WithAttributes(attribute.Int64("case", id)))
		defer span.End()
		seen := w.gate.generation()
		var h refundflow.Handled
		var err error
		if perr := w.guard(sctx, "wake", func() { h, err = w.engine.Wake(sctx, id, kind) }); perr != nil || errors.Is(err, casestore.ErrUpdatePanicked) {
			if perr == nil {
				w.metrics.panics.WithLabelValues("wake").Inc()
			}
			span.SetStatus(codes.Error, "worker failed")
			until := time.Now().Add(w.brokenWake())
			w.mu.Lock()
			w.broken[id] = until
			w.mu.Unlock()
			failed := errors.Join(perr, err)
			w.log.ErrorContext(sctx, "wake: the worker failed on the case; not woken again for a while", "case", id, "kind", kind,
				"for", w.brokenWake(), "err", failed)
			w.rest(work, id, kind, until, failed)
			return
		}
		if err != nil {
			span.SetStatus(codes.Error, "retry later")
			if w.gate.trip(err, seen) {
				return // said once by the gate; the case's timer is still due when the store is back
			}
			w.log.InfoContext(sctx, "wake: retry later", "case", id, "kind", kind, "err", err)
			return
		}
		// A case held because worker processes ended on it was not moved
		// by the platform: its hold made no call.
		if kind == refundflow.InputReconcile && before != "" && string(h.State) != before && h.Code != refundflow.CodeWorkerEnded {
			w.metrics.reconcileMoved.Inc()
			w.log.InfoContext(sctx, "reconciler moved a case", "case", id, "from", before, "to", h.State)
		}
	})
}

// takeUp applies the inputs that waited in the store for a case and are due
// now, in their order, as they would have been applied when their messages
// came. Commands keep their order: a command that is not due holds up the
// commands behind it. A callback is a hint that holds up nothing: one not
// due is passed over (see casestore.DueDeferredCases). An input that has to
// wait again ends the pass; the case's due inputs are taken up at the next
// tick. One that cannot be decoded or applied at all, or that failed
// MaxDeliver times, becomes a dead letter; one that failed otherwise waits
// again with the usual backoff.
func (w *Worker) takeUp(ctx context.Context, id int64) {
	seen := w.gate.generation()
	waiting, err := w.store.DeferredInputs(ctx, id)
	if err != nil {
		if !w.gate.trip(err, seen) {
			w.log.Warn("deferred inputs", "case", id, "err", err)
		}
		return
	}
	commandsWait := false
	for _, d := range waiting {
		if ctx.Err() != nil {
			return
		}
		command := d.Source != casestore.SourceCallbacks
		if (command && commandsWait) || d.NotBefore.After(time.Now()) {
			commandsWait = commandsWait || command
			continue
		}
		// A count a take-up here took and could not give back (the store
		// away when it returned) is given back first: it counts for
		// nothing.
		if w.unended(d) {
			if w.endTakeUp(ctx, d) != nil {
				return
			}
			d.Attempts = max(d.Attempts-1, 0)
		}
		dm := deadMessage{DeadLetter: events.DeadLetter{Source: d.Source, MsgID: d.MsgID, Subject: d.Subject, Stream: d.Stream,
			Sequence: d.StreamSeq, Deliveries: uint64(d.Attempts), Data: d.Payload}, deferred: true}
		// A dead letter that could not be stored keeps its row and stops the
		// case's queue: the inputs behind it must not overtake it.
		if d.Attempts >= w.cfg.MaxDeliver {
			// Only as read: another process's take-up may have it now.
			if taken, err := w.store.StartTakeUp(ctx, d.ID, d.NotBefore, time.Now().Add(w.cfg.AckWait)); err != nil || !taken {
				return
			}
			if w.deadLetter(ctx, dm, events.DeadMaxDeliveries, fmt.Errorf("taken up %d times without getting further: each failed, "+
				"or a worker process ended while taking it up (last failure: %s)", d.Attempts, d.Reason)) != nil {
				return
			}
			continue
		}
		msg := &refundflow.Message{ID: d.MsgID, Stream: d.Stream, Seq: d.StreamSeq, Subject: d.Subject,
			Source: d.Source, Payload: d.Payload, Deferred: true, KeptSince: d.CreatedAt}
		// Counted before it runs, given back once it returns (the
		// process did not end): see casestore's StartTakeUp. Its time
		// is kept ahead while it runs (holdTakeUp): no other take-up
		// starts it, or counts it, meanwhile.
		seen = w.gate.generation()
		until := time.Now().Add(max(w.backoff(uint64(d.Attempts)+1), w.cfg.AckWait))
		taken, err := w.store.StartTakeUp(ctx, d.ID, d.NotBefore, until)
		if err != nil || !taken {
			if err != nil && !w.gate.trip(err, seen) {
				w.log.Warn("deferred input: take up", append(msgAttrs(d.Source, d.MsgID, d.Payload), "case", id, "err", err)...)
			}
			return // another take-up has it, or it changed: the next tick reads it again
		}
		release := w.holdTakeUp(ctx, d.ID, until)
		// Logged before it runs: a take-up the process ends in leaves
		// this line as its only trace.
		w.log.Debug("deferred input: taken up", append(msgAttrs(d.Source, d.MsgID, d.Payload), "case", id, "take_up", d.Attempts+1)...)
		h, reason, err := w.applyGuarded(ctx, "deferred", msg)
		release()
		if w.endTakeUp(ctx, d) != nil {
			w.markUnended(d)
		}
		var dlErr error
		switch {
		case reason == "" && w.gate.trip(err, seen):
			return // the row stays, uncounted: taken up when the store is back and its time has come
		case reason == "" && w.gate.stale(err, seen):
			return // refused before the store came back: the row stays, uncounted, taken up when its time has come
		case reason != "":
			dlErr = w.deadLetter(ctx, dm, reason, err)
		case err == nil && h.Deferred:
			// It waits again (a lease held elsewhere, a read that
			// failed): the case's other inputs wait for the next tick
			// rather than each waiting out the same lease here.
			w.metrics.messages.WithLabelValues(d.Source, "deferred").Inc()
			return
		case err == nil:
			w.metrics.messages.WithLabelValues(d.Source, handledResult(h)).Inc()
			if d.Stream != "" {
				// The message it was kept from may have a delivery_limit
				// dead letter, written while it waited here (limits.go).
				_ = w.discardLimit(ctx, dm, handledResult(h))
			}
		case errors.Is(err, refundflow.ErrPermanent):
			dlErr = w.deadLetter(ctx, dm, events.DeadPermanentError, err)
		case errors.Is(err, refundflow.ErrNoCase):
			dlErr = w.deadLetter(ctx, dm, events.DeadUnknownCase, err)
		case ctx.Err() != nil:
			return // stopping cut it: the row stays, uncounted, for the next worker when its time has come
		default:
			d.NotBefore, d.Attempts, d.Reason = time.Now().Add(w.backoff(uint64(d.Attempts)+1)), 1, excerpt.Of(err.Error(), 200)
			if uerr := w.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error { return tx.Defer(ctx, d) }); uerr != nil {
				w.log.Warn("deferred input: keep for later", append(msgAttrs(d.Source, d.MsgID, d.Payload), "case", id, "err", uerr)...)
			}
			w.log.Info("deferred input: retry later", append(msgAttrs(d.Source, d.MsgID, d.Payload), "case", id, "err", err)...)
			return
		}
		if dlErr != nil {
			return
		}
	}
}

// holdTakeUp keeps a running take-up's time (from until) a WORKER_ACK_WAIT
// ahead, every third of it, until release: a take-up longer than its hold
// (a slow platform call, a lease waited for) is not started again, or
// counted, by another process. It stops once the row is no longer as it
// left it (the take-up deferred it again, or it is gone).
func (w *Worker) holdTakeUp(ctx context.Context, rowID int64, until time.Time) (release func()) {
	return w.everyThirdOfAckWait(func() bool {
		if time.Until(until) > w.cfg.AckWait*2/3 {
			return true // ahead still (the backoff's hold): kept as it is
		}
		next := time.Now().Add(w.cfg.AckWait)
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		held, err := w.store.HoldTakeUp(hctx, rowID, until, next)
		cancel()
		switch {
		case err != nil:
			w.log.Debug("deferred input: hold take-up", "input", rowID, "err", err)
		case !held:
			return false
		default:
			until = next
		}
		return true
	})
}

// endTakeUp gives back a take-up's count (casestore's EndTakeUp).
func (w *Worker) endTakeUp(ctx context.Context, d casestore.DeferredInput) error {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := w.store.EndTakeUp(ectx, d.ID, d.MsgID, d.CreatedAt)
	if err != nil {
		w.log.Warn("deferred input: end take-up", append(msgAttrs(d.Source, d.MsgID, d.Payload), "err", err)...)
		return err
	}
	w.mu.Lock()
	delete(w.notEnded, d.ID)
	w.mu.Unlock()
	return nil
}

// unended reports whether a take-up of d in this process has not given
// its count back (markUnended), until endTakeUp succeeds. An entry for
// another row (the one it was for went, and SQLite gave its id to d) is
// dropped. Per process: a count a process that ended did not give back is
// what StartTakeUp means to keep. An entry whose row went another way
// (applied elsewhere) stays until this process stops: one per outage met
// mid-take-up.
func (w *Worker) unended(d casestore.DeferredInput) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	kept, ok := w.notEnded[d.ID]
	if ok && !kept.Equal(d.CreatedAt) {
		delete(w.notEnded, d.ID)
		return false
	}
	return ok
}

// markUnended marks d's take-up as not having given its count back.
func (w *Worker) markUnended(d casestore.DeferredInput) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notEnded[d.ID] = d.CreatedAt
}

// timers fires due case timers, and takes up due deferred inputs, every
// TimerInterval.
func (w *Worker) timers(ctx, work context.Context) {
	t := time.NewTicker(w.cfg.TimerInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.gate.closed() {
			continue
		}
		seen := w.gate.generation()
		due, err := w.store.DueCases(ctx, time.Now(), 200)
		if err != nil {
			if ctx.Err() == nil && !w.gate.trip(err, seen) {
				w.log.Warn("due cases", "err", err)
			}
			continue
		}
		for _, c := range due {
			if w.gate.closed() {
				break
			}
			if w.wake(ctx, work, c.ID, refundflow.InputTimer, "") {
				w.metrics.timerWakes.Inc()
			}
		}
		seen = w.gate.generation()
		waiting, err := w.store.DueDeferredCases(ctx, time.Now(), 200)
		if err != nil {
			if ctx.Err() == nil && !w.gate.trip(err, seen) {
				w.log.Warn("due deferred inputs", "err", err)
			}
			continue
		}
		for _, id := range waiting {
			if w.gate.closed() {
				break
			}
			w.onCase(ctx, id, func() { w.takeUp(work, id) })
		}
	}
}

// reconciler re-checks open cases whose last platform check is older than
// ReconcileAge, every ReconcileInterval, so a callback the platform never
// delivered cannot strand a case.
func (w *Worker) reconciler(ctx, work context.Context) {
	t := time.NewTicker(w.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.gate.closed() {
			continue
		}
		seen := w.gate.generation()
		stale, err := w.store.StaleOpenCases(ctx, time.Now().Add(-w.cfg.ReconcileAge), w.cfg.RetryMax, 500, refundflow.CodeWorkerEnded)
		if err != nil {
			if ctx.Err() == nil && !w.gate.trip(err, seen) {
				w.log.Warn("stale cases", "err", err)
			}
			continue
		}
		for _, c := range stale {
			if w.gate.closed() {
				break
			}
			if w.wake(ctx, work, c.ID, refundflow.InputReconcile, c.State) {
				w.metrics.reconcileFound.Inc()
			}
		}
	}
}

// housekeeping prunes inbox rows older than InboxRetention and checkpoints
// the WAL, every HousekeepingInterval. Several processes may run it: both
// operations are idempotent.
func (w *Worker) housekeeping(ctx context.Context) {
	t := time.NewTicker(w.cfg.HousekeepingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.gate.closed() {
			continue
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

// rest records on case id that the worker failed on its wake of kind
// (failed: a panic, a bug of this build), on its timeline, and moves its
// timer, if due, to until: a case left due would head every sweep's list
// of due cases, and enough of them would keep the timers of all the others
// from firing. The reconcile sweep skips it until then too (w.broken, in
// this process). A timer not due (a decision since set it), a case another
// process holds, or a finished one keeps its timer; the note is written
// all the same, in a transaction of its own if the timer's lost a race.
// Best effort, within 10 s: an error is logged.
func (w *Worker) rest(ctx context.Context, id int64, kind refundflow.InputKind, until time.Time, failed error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	note := casestore.TimelineEntry{CaseID: id, Kind: casestore.KindNote,
		Summary: excerpt.Of(fmt.Sprintf("the worker failed on this case's %s wake (a bug of this build; the worker's log has its stack); not woken again until %s: %v",
			kind, until.UTC().Format(time.RFC3339), failed), 500)}
	err := w.store.Update(ctx, func(tx *casestore.Tx) error {
		c, err := tx.GetCase(ctx, id)
		if err != nil {
			return err
		}
		now := time.Now()
		if !c.NextWakeAt.IsZero() && !c.NextWakeAt.After(now) && !refundflow.State(c.State).Terminal() &&
			(c.LeaseOwner == "" || c.LeaseUntil.Before(now)) {
			next := c
			next.NextWakeAt = until
			if _, err := tx.UpdateCaseFrom(ctx, c, next); err != nil {
				return err
			}
		}
		return tx.AppendTimeline(ctx, note)
	})
	if errors.Is(err, casestore.ErrVersionConflict) {
		err = w.store.Update(ctx, func(tx *casestore.Tx) error { return tx.AppendTimeline(ctx, note) })
	}
	if err != nil {
		w.log.Warn("wake: could not rest the case the worker failed on", "case", id, "err", err)
	}
}
