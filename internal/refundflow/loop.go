package refundflow

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/refundhub/refundhub/internal/casestore"
)

// maxLoop bounds the decisions one input can lead to (render, submit, … is
// at most a handful; the bound only stops a bug from spinning).
const maxLoop = 24

// job is one input for process to apply to one case.
type job struct {
	caseID int64
	first  Input    // the input itself
	hint   string   // a refund id a callback named that no case owns yet, for the fetch
	msg    *Message // the message the input came from; nil for a timer or reconcile input
	note   string   // what the input is, for the timeline with its first decision
	// locked, when set, is this process's lock on the case, taken with the
	// case's lease (by open with the case, by Wake before its platform read);
	// otherwise process takes the lock itself.
	locked func()
	// created is the case open created, as committed: the first turn
	// decides on it without reading it back (run.load).
	created *casestore.Case
	// keptNow: msg is a callback this call kept (recordCallback) as the
	// first copy kept: process does not look it up in the inbox again (a
	// verification of another copy meanwhile is rare, and is caught where
	// this input's transactions commit: see process).
	keptNow bool
	// alone, when set, ends the case's last chance alone (Engine.lastChance),
	// taken by Wake before the lease; otherwise the loop takes it if the
	// case it reads needs it.
	alone func()
	// behindKept: msg is a command of a case that exists, which must not
	// overtake a command of the case kept in the store (queueBehind). It
	// looks for one under the case's lock, before its first decision and
	// again after any wait: a command that held the lock while it waited
	// may have been kept meanwhile.
	behindKept bool
}

// run is how far process has got with its job.
type run struct {
	job // note is cleared once a decision has recorded it
	h   Handled
	// in is the input to decide next: first, or the result of the step
	// that ran (ran), recorded with the next decision.
	in  Input
	ran *stepRecord
	// reapply: first has to be decided again (an intent was settled
	// first). applied: first's own decision is committed, so what is left
	// (the steps it led to) can go on from the case's state alone.
	reapply, applied bool
	// viewed: a platform read for this input got through and told
	// something (not inconclusive): the case got somewhere, even if the
	// input is then refused (caseRow).
	viewed     bool
	waited     time.Duration // spent waiting for other processes' leases, in all (waitLease)
	reread     bool          // the last turn waited and made no decision: it does not count against maxLoop
	lookBehind bool          // behindKept, and not looked for since the input took the lock or last waited
	// inboxCheck: a command's message is to be looked up in the inbox on
	// the case as read next. A command is applied by the process its
	// message was delivered to and, ahead of a later command of its case,
	// by the one handling that (casework's earlier.go): one of the two
	// may commit it while the other waits for the case's lock or lease,
	// or between the other's look-up and its read of the case. Looked up
	// after that read, a commit since makes the decision's version check
	// fail and the case is read (and the inbox looked up) again.
	inboxCheck bool
	held       atomic.Bool // this process holds the case's lease (renewed meanwhile)
}

// commandMessage reports whether the job is a command with a message id,
// which the inbox knows once applied (run.inboxCheck).
func (j job) commandMessage() bool { return isCommand(j.first.Kind) && j.msg != nil && j.msg.ID != "" }

// end ends the loop with process's answer.
func (r *run) end(h Handled, err error) (done bool, _ error) {
	r.h = h
	return true, err
}

// process is the worker contract's loop for one input on one case: load
// the case, decide, commit the decision, run its step, and again with the
// step's result, until a decision needs no step (turn is one pass).
//
// Cross-process safety: every decision is committed together with taking
// the case's lease and with the case's optimistic version check, in the
// one statement that updates the case (casestore Tx.UpdateCaseLeased); the
// lease is kept (renewed) across the platform call of a step and dropped
// in the statement that records the input's last decision. So a process can only
// commit a decision, and so start a side effect, while no other process is
// in the middle of one for the case; one whose view was read while another
// held the case reads and fetches again before deciding. A crashed holder's
// lease expires after LeaseTTL (far longer than any platform call), and its
// open intent is settled by asking the platform.
func (e *Engine) process(ctx context.Context, j job) (Handled, error) {
	r := &run{job: j, h: Handled{CaseID: j.caseID}, in: j.first, lookBehind: j.behindKept,
		inboxCheck: j.commandMessage() && j.locked == nil}
	defer func() { // after letGo: the lease is let go first
		if r.alone != nil {
			r.alone()
		}
	}()
	ctx = e.withInputLog(ctx, j.caseID, j.first)
	letGo, err := e.hold(ctx, j.caseID, j.locked, &r.held, isCommand(j.first.Kind))
	if errors.Is(err, errCaseBusy) {
		return e.deferWaiting(ctx, r, err, "busy: another input of the case is handled in this worker process")
	}
	if err != nil {
		return r.h, err
	}
	defer letGo()
	if j.first.Kind == InputCallback && j.msg != nil && j.msg.Deferred && !j.keptNow {
		// A kept callback taken up again (by the timer, or as a
		// redelivered copy) may have been verified since it was kept:
		// once is enough. A callback kept just now, the first copy, is
		// not looked up: a copy verified meanwhile (a redelivery, here
		// or in another process) is rare, and every transaction that
		// could apply or keep this one checks the inbox where it
		// commits (casestore.ErrInInbox: appliedMeanwhile). That race
		// costs a platform read; the look-up would cost a store read
		// for every callback.
		if dup, err := e.seen(ctx, j.msg); err != nil || dup {
			r.h.Duplicate = dup
			return r.h, err
		}
	}
	for n := 0; n < maxLoop; {
		if done, err := e.turn(ctx, r); done {
			return r.h, err
		}
		if r.reread {
			// A wait (another process's lease, bounded by leaseWait;
			// the last-chance turn, once) read the case again without
			// a decision: not one of the decisions maxLoop bounds.
			r.reread = false
			continue
		}
		n++
	}
	return r.h, &RetryError{After: e.retry, Err: fmt.Errorf("case %d: more than %d decisions for one input", r.caseID, maxLoop)}
}

// turn is one pass of process's loop. done reports that the input got as
// far as it can now; r.h and err are then process's answer.
func (e *Engine) turn(ctx context.Context, r *run) (done bool, err error) {
	l, err := r.load(ctx, e.store)
	c := l.c
	if r.waited > 0 && ctx.Err() != nil {
		// Given up while waiting for another process's lease: before this
		// read (which then fails at once) or during it (a read over the
		// network, on PostgreSQL, leaves the deadline time to come).
		return r.end(e.deferBusy(ctx, r, &RetryError{After: time.Second, Err: casestore.ErrLeased}))
	}
	if err != nil {
		return true, err
	}
	if r.inboxCheck && !r.applied {
		r.inboxCheck = false
		if dup, err := e.seen(ctx, r.msg); err != nil || dup {
			r.h.Duplicate = dup
			return true, err
		}
	}
	waiting := !r.held.Load() && e.leasedElsewhere(c)
	// A command looks for commands of its case kept in the store before it
	// waits for anything (kept behind one, it frees its slot at once), and
	// again once a wait is over (job.behindKept); not with a step's
	// result still to record.
	if r.lookBehind && !r.applied && r.ran == nil && (!waiting || r.waited == 0) {
		r.lookBehind = false
		if done, err := e.keepBehind(ctx, r); done {
			return true, err
		}
	}
	if waiting {
		// Another process is on the case: wait for it rather than
		// fetching a view its in-flight step may change.
		return e.awaitLease(ctx, r, c.LeaseUntil)
	}
	if r.alone == nil {
		done, blocked, err := e.takeLastChance(ctx, r, c)
		if done {
			return true, err
		}
		if blocked {
			r.rereadAfterWait()
			return false, nil // read the case again: it may have moved meanwhile
		}
	}
	sctx, span := e.startSpan(ctx, "decide", r.caseID, attribute.String("input", string(r.in.Kind)))
	d, p, err := e.decide(sctx, r, l)
	span.SetAttributes(attribute.String("outcome", string(d.dec.Outcome)), attribute.String("code", d.dec.Code))
	endSpan(span, err)
	switch {
	case err != nil:
		return true, err
	case p != nil:
		return r.end(e.retryLater(ctx, r, c, *p))
	}
	sctx, span = e.startSpan(ctx, "commit", r.caseID, attribute.String("state", string(d.dec.State)))
	cm, err := e.commit(sctx, r, d)
	endSpan(span, err)
	var le *casestore.LeasedError
	switch {
	case errors.Is(err, casestore.ErrInInbox): // the callback's own decision: applied by another verification meanwhile
		return r.end(e.appliedMeanwhile(ctx, r))
	case errors.As(err, &le):
		r.held.Store(false)
		if r.alone != nil { // no use while another process has the case
			r.alone()
			r.alone = nil
		}
		return e.awaitLease(ctx, r, le.Until) // then read and fetch again: the holder may have changed the case
	case errors.Is(err, casestore.ErrVersionConflict): // changed under us: decide again, unless by applying this callback
		if e.appliedElsewhere(ctx, r) {
			return r.end(e.appliedMeanwhile(ctx, r))
		}
		r.inboxCheck = r.commandMessage() // or this command
		return false, nil
	case err != nil:
		return true, err
	}
	if d.in.Kind == InputCallback && d.pv != nil {
		r.msg.verified(time.Now())
	}
	r.advance(cm)
	return e.carryOn(ctx, r, c, cm)
}

// takeLastChance takes the last-chance turn for r's case if it needs one
// (Engine.lastChance), waiting for it up to leaseWait; after that the
// input is kept in the store, freeing its slot (as for another process's
// lease: one already applied, or without its body, is handed back with a
// *RetryError), and done is true. blocked says it waited: the case is to
// be read again. It does not wait for an input that holds the case's lease
// already (waiting would hold the lease, and an end of the process
// meanwhile would count against the case): that goes on without the turn
// (a lease taken over between the read of the case and its claim: rare);
// nor for a kept input taken up again, which holds a worker slot the
// case's other inputs may need: it is kept again.
func (e *Engine) takeLastChance(ctx context.Context, r *run, c casestore.Case) (done, blocked bool, err error) {
	wait := e.leaseWait
	if r.held.Load() || (r.msg != nil && r.msg.Deferred) {
		wait = 0
	}
	alone, blocked, err := e.lastChance(ctx, c, r.in.Kind, wait)
	switch {
	case err == nil:
		r.alone = alone
		return false, blocked, nil
	case r.held.Load():
		return false, false, nil
	}
	h, err := e.deferWaiting(ctx, r, err, "waits for its last chance alone: another case the worker process ended on runs now")
	r.h = h
	return true, blocked, err
}

// loaded is what a turn decides on: the case, its open intent, and its
// order's events it has not seen, when they were read with it (eventsRead;
// otherwise caseView reads them if there are any).
type loaded struct {
	c          casestore.Case
	it         *casestore.StepAttempt
	events     []casestore.OrderEvent
	eventsRead bool
}

// load reads the case, its open intent and its unseen order events for a
// turn, in one read (casestore's CaseToDecide): the case open has just
// created, on the first turn of its input (it has no intent, and this
// process has held its lease and lock since the commit that created it),
// otherwise from the store.
func (r *run) load(ctx context.Context, s *casestore.Store) (loaded, error) {
	if c := r.created; c != nil {
		r.created = nil
		return loaded{c: *c}, nil
	}
	c, it, evs, err := s.CaseToDecide(ctx, r.caseID)
	return loaded{c: c, it: it, events: evs, eventsRead: true}, err
}

// awaitLease waits for the lease another process holds on the case until
// until, for the loop to read the case again; once the input has waited
// leaseWait in all, it is deferred instead (deferBusy).
func (e *Engine) awaitLease(ctx context.Context, r *run, until time.Time) (done bool, err error) {
	if err := e.waitLease(ctx, until, &r.waited); err != nil {
		return r.end(e.deferBusy(ctx, r, err))
	}
	r.rereadAfterWait()
	return false, nil
}

// keepBehind keeps r's command in the store behind a command of its case
// kept there, if there is one (queueBehind): done is then true, and r.h
// says so.
func (e *Engine) keepBehind(ctx context.Context, r *run) (done bool, err error) {
	h, queued, err := e.queueBehind(ctx, r.caseID, r.msg)
	if err != nil {
		return true, err
	}
	if queued {
		r.h.Deferred, r.h.Until = true, h.Until
	}
	return queued, nil
}

// rereadAfterWait has the loop read the case again after a wait, and a
// command look again for commands of its case kept meanwhile.
func (r *run) rereadAfterWait() {
	r.reread = true
	r.lookBehind = r.behindKept
	r.inboxCheck = r.commandMessage()
	r.viewed = false // what the case is now is read again
}

// decide decides r.in on the case as loaded, fetching the platform view first when
// the decision asks for it. A pause means the input cannot get further now
// (the decision asks to retry, or the fetch failed): see retryLater.
func (e *Engine) decide(ctx context.Context, r *run, l loaded) (decisionRecord, *pause, error) {
	c := l.c
	cv, err := caseView(ctx, e.store, l)
	if err != nil {
		return decisionRecord{}, nil, err
	}
	if !r.held.Load() && e.takenOver(c) {
		cv.LeasesAbandoned++ // the commit will take the lease over: see takenOver
	}
	r.in.Now = e.now()
	dec := e.decider.Decide(cv, nil, r.in)
	var pv *PlatformView
	if dec.Outcome == OutcomeFetch {
		if refund := adopting(r.in); refund != "" && dec.Code == CodeReadToAdopt {
			pv, err = e.adoptView(ctx, c, cv, refund)
		} else {
			pv, err = e.fetch(ctx, c, cv, r.hint)
		}
		if err != nil {
			if ctx.Err() != nil {
				return decisionRecord{}, nil, &RetryError{After: time.Second, Err: err}
			}
			e.logger(ctx).WarnContext(ctx, "fetch platform view", "err", err)
			p := failure("fetch_failed", fmt.Errorf("fetch: %w", err))
			return decisionRecord{}, &p, nil
		}
		r.viewed = r.viewed || (!pv.Inconclusive && !pv.unread)
		dec = e.decider.Decide(cv, pv, r.in)
		if pv.Adopting == nil || dec.Code == CodeAdopted { // a refund to adopt is the case's only once adopted
			e.readMessages(ctx, c, pv)
		}
	}
	r.h.Outcome, r.h.Code, r.h.State = dec.Outcome, dec.Code, dec.State
	r.reapply = r.reapply || dec.Reapply
	switch dec.Outcome {
	case OutcomeRetry:
		p := waitFor(dec)
		return decisionRecord{}, &p, nil
	case OutcomeFetch: // a view did not settle it: cannot happen with a view
		p := failure("fetch_loop", errors.New("decision still wants a view"))
		return decisionRecord{}, &p, nil
	}
	return decisionRecord{c: c, cv: cv, in: r.in, pv: pv, dec: dec, ran: r.ran, note: r.note,
		final: isFinal(dec, r.reapply), msg: r.msg, viewed: r.viewed}, nil, nil
}

// isFinal reports whether dec is its input's last decision: it runs no
// step, and the input need not be decided again (reapply). The last
// decision records the input's message in the inbox and drops the lease.
func isFinal(dec Decision, reapply bool) bool {
	return (dec.Outcome != OutcomeAct || dec.Step == nil) && !reapply
}

// committed is what a commit leaves the loop with.
type committed struct {
	dec            Decision // the last decision committed
	final, reapply bool     // as the loop's, after dec
	prior          bool     // dec's side effect had its intent recorded already
	// ahead is a step run ahead whose result is still to be decided (the
	// lookahead committed its decision alone).
	ahead *aheadStep
}

// commit commits d, with the lookahead when its step is a read that may
// run first (canAhead), otherwise alone.
func (e *Engine) commit(ctx context.Context, r *run, d decisionRecord) (committed, error) {
	if e.ahead && !d.final && canAhead(d.cv, d.dec) {
		return e.lookahead(ctx, r, d)
	}
	prior, err := e.persist(ctx, d)
	return committed{dec: d.dec, final: d.final, reapply: r.reapply, prior: prior}, err
}

// advance moves the loop past a commit: the lease is kept only for a
// step to come, and the step result and note just recorded are done with.
func (r *run) advance(cm committed) {
	r.h.Outcome, r.h.Code, r.h.State = cm.dec.Outcome, cm.dec.Code, cm.dec.State
	r.reapply = cm.reapply
	r.held.Store(!cm.final)
	if r.in.Kind != InputStepResult && !cm.dec.Reapply {
		r.applied = true
	}
	r.ran, r.note = nil, ""
}

// carryOn goes on from a committed decision: it feeds in the result of a
// step run ahead, runs the decision's step, or decides the input again
// (reapply). done: nothing is left to do.
func (e *Engine) carryOn(ctx context.Context, r *run, c casestore.Case, cm committed) (done bool, err error) {
	if cm.ahead != nil {
		// Committed alone (the next decision needs a view or a retry):
		// feed the step's result in as usual.
		r.ran = &cm.ahead.rec
		r.in = Input{Kind: InputStepResult, Result: &cm.ahead.res}
		return false, nil
	}
	if st := cm.dec.Step; cm.dec.Outcome == OutcomeAct && st != nil {
		if st.Name.SideEffect() && cm.prior && !st.Resume {
			// The intent already existed: an earlier attempt may have
			// reached the platform. Never call again here; the open
			// intent is settled (fetch first) by the next input.
			// The input is as applied as it can be: record it, so that
			// neither a redelivery nor its waiting row comes back.
			e.logger(ctx).WarnContext(ctx, "intent already recorded; not calling again", "key", st.Key)
			return true, e.recordInbox(ctx, r.msg)
		}
		res, rec := e.runStep(ctx, c, st)
		r.h.Steps++
		r.ran = &rec
		r.in = Input{Kind: InputStepResult, Result: &res}
		return false, nil
	}
	if r.reapply {
		r.reapply = false
		r.in = r.first
		return false, nil
	}
	return true, nil
}
