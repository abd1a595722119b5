package refundflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/delay"
	"github.com/refundhub/refundhub/internal/excerpt"
)

// RetryError asks the caller to try the same input again after After: a
// transient failure that the store could not take over (no message payload
// to keep, a timer input, a case leased by another worker while a store
// write failed).
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string { return fmt.Sprintf("retry after %s: %v", e.After, e.Err) }

// Unwrap returns the cause.
func (e *RetryError) Unwrap() error { return e.Err }

// ErrWait marks a wait whose end is known (a side effect's newest attempt
// that may still reach the platform, evidence for an intent): taking the
// input up sooner cannot get further.
var ErrWait = errors.New("the case waits")

// retryCause is the error a retry decision is handed back with: it wraps
// ErrWait when the decision names the time it waits for.
func retryCause(dec Decision) error {
	if !dec.RetryAt.IsZero() {
		return fmt.Errorf("%w: %s: %s", ErrWait, dec.Code, dec.Reason)
	}
	return errors.New(dec.Reason)
}

// canDefer reports whether an input can wait in the store: it came from a
// message whose body the caller handed over (Message.Source and Payload).
func canDefer(msg *Message) bool {
	return msg != nil && msg.ID != "" && msg.Source != "" && len(msg.Payload) > 0
}

// deferredInput is the store row that keeps msg until notBefore.
func deferredInput(caseID int64, msg *Message, notBefore time.Time, reason string) casestore.DeferredInput {
	return casestore.DeferredInput{CaseID: caseID, MsgID: msg.ID, Source: msg.Source, Payload: msg.Payload,
		Stream: msg.Stream, StreamSeq: msg.Seq, Subject: msg.Subject, NotBefore: notBefore, Reason: reason}
}

// retryLater ends an input that could not get further now. It records what
// is known (the result of a step that ran), lets go of the case, and keeps
// the work durable in the store so that the message can be settled:
//
//   - an input already applied (its own decision committed: only the step
//     it led to failed) is done; its message goes to the inbox and the
//     case's timer carries on (resumes the step) at the backoff's time;
//   - an input not applied yet (it waits for an intent to be settled, or a
//     fetch failed first) is deferred: kept in deferred_inputs until then;
//   - a timer or reconcile input sets the case's wake to that time and is
//     handed back as a RetryError (no message to settle).
//
// The delay backs off: RetryDelay·2^n, capped at RetryMax, where n is the
// case's failed inputs in a row (cases.failed_inputs). A wait for a known
// time (notBefore: Decision.RetryAt) is no failure: it does not count, and
// the input comes back exactly then.
func (e *Engine) retryLater(ctx context.Context, r *run, c casestore.Case, p pause) (Handled, error) {
	rt := e.planRetry(r, c, p)
	err := e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		return e.retryTx(ctx, tx, r, c, p, &rt)
	})
	h := r.h
	switch {
	case err == nil:
		r.held.Store(false)
		if rt.deferIt || rt.done {
			h.Deferred, h.Until = rt.deferIt, rt.until
			return h, nil
		}
	case errors.Is(err, casestore.ErrInInbox):
		return e.appliedMeanwhile(ctx, r)
	case errors.Is(err, casestore.ErrVersionConflict):
		if e.appliedElsewhere(ctx, r) {
			return e.appliedMeanwhile(ctx, r)
		}
	case errors.Is(err, casestore.ErrLeased):
	default:
		return h, err
	}
	return h, &RetryError{After: rt.delay, Err: p.cause}
}

// unappliedCallback checks, in a transaction that would keep or retry a
// callback not applied yet, that no other verification of it has applied
// it meanwhile (casestore.ErrInInbox then; see appliedMeanwhile). The
// callback's own decision checks the same in persistTx.
func unappliedCallback(ctx context.Context, tx *casestore.Tx, r *run) error {
	if !r.callbackUnapplied() {
		return nil
	}
	return tx.InboxAbsent(ctx, r.msg.ID)
}

// callbackUnapplied reports whether r's input is a callback (with a
// message id) that no decision of r has applied yet.
func (r *run) callbackUnapplied() bool {
	return !r.applied && r.first.Kind == InputCallback && r.msg != nil && r.msg.ID != ""
}

// appliedElsewhere reports, after a version conflict, whether what changed
// the case was another verification of r's callback applying it: its inbox
// row says so, and the input is a duplicate without asking the platform
// again. The conflict hides the inbox check's own answer: the case's
// update comes before that check (persistTx, retryTx) and fails first. A
// read that fails answers no: the input goes on as after any conflict, and
// the check where it commits still holds.
func (e *Engine) appliedElsewhere(ctx context.Context, r *run) bool {
	if !r.callbackUnapplied() {
		return false
	}
	seen, err := e.store.InboxSeen(ctx, r.msg.ID)
	if err != nil {
		e.logger(ctx).WarnContext(ctx, "inbox look-up after a version conflict", "err", err)
	}
	return seen
}

// appliedMeanwhile ends a callback input whose transaction found it
// applied by another verification of it (casestore.ErrInInbox): a
// duplicate, which changed nothing. A kept copy of it left in the store
// (KeepCallback can keep one again while that verification commits) is
// dropped, so it is not taken up a third time. The lease is as it was
// before the rolled-back transaction: process's letGo lets go of it if
// held.
func (e *Engine) appliedMeanwhile(ctx context.Context, r *run) (Handled, error) {
	return e.duplicate(ctx, r.h, r.msg)
}

// duplicate is h for msg found applied already, when a transaction's
// inbox check (casestore.ErrInInbox) says so: a kept copy of it is dropped
// from the store.
func (e *Engine) duplicate(ctx context.Context, h Handled, msg *Message) (Handled, error) {
	h.Duplicate = true
	if msg == nil || !msg.Deferred {
		return h, nil
	}
	return h, e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		return tx.DeleteDeferred(ctx, msg.ID)
	})
}

// retryPlan is how retryLater ends an input.
type retryPlan struct {
	attempt int           // the case's inputs in a row that failed before this one
	delay   time.Duration // until the input, or the case's timer, comes back
	failed  bool          // a failure (counted, backed off), not a wait for a known time
	deferIt bool          // the input is not applied: it waits in the store
	done    bool          // the input is applied: it goes to the inbox; the case's timer carries on
	until   time.Time     // when it comes back: set in the transaction, by its clock
}

// planRetry is how retryLater ends r's input, paused by p, on the case c.
func (e *Engine) planRetry(r *run, c casestore.Case, p pause) retryPlan {
	rt := retryPlan{attempt: c.FailedInputs, failed: p.notBefore.IsZero()}
	rt.delay = delay.Doubling(e.retry, e.retryMax, rt.attempt)
	if !rt.failed {
		rt.delay = max(p.notBefore.Sub(e.now()), 0)
	}
	rt.deferIt = !r.applied && canDefer(r.msg)
	rt.done = r.applied && r.msg != nil
	return rt
}

// retryTx is retryLater's transaction: the step that ran, the case's
// failure count, flag and wake, the input kept, the timeline, and the case
// let go.
func (e *Engine) retryTx(ctx context.Context, tx *casestore.Tx, r *run, c casestore.Case, p pause, rt *retryPlan) error {
	rt.until = tx.Now().Add(rt.delay)
	if !rt.failed {
		rt.until = p.notBefore
	}
	nc := c
	if rt.failed {
		nc.FailedInputs = rt.attempt + 1
	}
	if p.flag != nil {
		nc.AttentionCode, nc.AttentionMessage = p.flag.Code, p.flag.Message
	} else if e.failing(nc, rt) {
		nc.AttentionCode, nc.AttentionMessage = AttnInputsFailing, failingMessage(c, p, *rt)
	}
	if rt.done || r.msg == nil {
		// The case's timer carries on then: it runs the failed step
		// again (or asks the platform again), neither at once nor only
		// at a later timer (a step timeout, a re-check hours away).
		nc.NextWakeAt = rt.until
	}
	// The case is let go with its update (another process's lease is a
	// *casestore.LeasedError), before the inbox check, as in persistTx.
	if _, err := tx.UpdateCaseLeased(ctx, c, nc, e.owner, 0); err != nil {
		return err
	}
	if err := unappliedCallback(ctx, tx, r); err != nil {
		return err
	}
	if r.ran != nil {
		entry, err := e.recordStep(ctx, tx, c.ID, r.ran)
		if err != nil {
			return err
		}
		if err := tx.AppendTimeline(ctx, entry); err != nil {
			return err
		}
	}
	summary, err := keepInput(ctx, tx, c.ID, r.msg, p, *rt, e.decider.Policy.PlatformAwayLimit)
	if err != nil {
		return err
	}
	detail, _ := json.Marshal(retryDetail{Attempt: rt.attempt, AfterMS: rt.delay.Milliseconds(), Deferred: rt.deferIt})
	return tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindDecision,
		Summary: summary + excerpt.Of(p.cause.Error(), 300), Detail: detail})
}

// failing reports whether a failure leaves case nc (as it will be written,
// its failed inputs counted) flagged AttnInputsFailing: Policy.FailingFlag
// failures in a row, on a case that goes on (a stopped one is the
// operator's already). It takes the place of waiting_evidence, whose
// deadline waits for a read that keeps failing (the decision after the
// first that gets through raises it again), not of
// return_waybill_differs, whose advice to tell the seller stands and
// which only a view of the platform raises again.
func (e *Engine) failing(nc casestore.Case, rt *retryPlan) bool {
	limit := e.decider.Policy.FailingFlag
	return rt.failed && limit > 0 && nc.FailedInputs >= limit && nc.State != string(StateNeedsAttention) &&
		(nc.AttentionCode == "" || nc.AttentionCode == AttnInputsFailing || nc.AttentionCode == AttnWaitingEvidence)
}

// failingMessage is the inputs_failing text: how many failed, the last
// failure, when the case is tried again, and where to look.
func failingMessage(c casestore.Case, p pause, rt retryPlan) string {
	return fmt.Sprintf("the case's last %d inputs failed, the last one (%s) with: %s. The worker tries again at %s and then at the "+
		"retry backoff; this flag goes with the first that gets through. If it keeps failing, the cause is likely on the "+
		"platform's side (an answer the worker cannot read, a refund it does not show): check the refund in the platform's "+
		"back office; `refundctl show %d` has each failure on the timeline",
		rt.attempt+1, p.code, excerpt.Of(p.cause.Error(), 300), rt.until.UTC().Format(time.RFC3339), c.ID)
}

// platformAway reports whether err is the platform pausing us, not an
// answer about the input: a rate limit, a 5xx, a timeout or a lost
// connection (apiclient.ErrRetryable). A kept input that fails so is not
// counted towards its dead letter (WORKER_MAX_DELIVER): an hour-long rate
// limit or outage would otherwise dead-letter every callback and command
// waiting through it. The case's own failures still count, and flag it
// (inputs_failing).
func platformAway(err error) bool { return errors.Is(err, apiclient.ErrRetryable) }

// keptLong reports whether msg has waited in the store longer than limit
// (Policy.PlatformAwayLimit; 0: always) by now: past it, failures while
// the platform pauses count towards its dead letter again.
func keptLong(msg *Message, now time.Time, limit time.Duration) bool {
	return limit == 0 || (msg != nil && !msg.KeptSince.IsZero() && now.Sub(msg.KeptSince) > limit)
}

// keepInput keeps what is left of an input that retries: one not applied
// waits in the store until rt.until, one applied goes to the inbox. A
// failure counts towards the kept input's dead letter unless it is the
// platform pausing us, within awayLimit of the input's first keeping. It
// returns how its timeline entry begins.
func keepInput(ctx context.Context, tx *casestore.Tx, caseID int64, msg *Message, p pause, rt retryPlan, awayLimit time.Duration) (string, error) {
	switch {
	case rt.deferIt:
		d := deferredInput(caseID, msg, rt.until, p.code+": "+excerpt.Of(p.cause.Error(), 300))
		if rt.failed && (!platformAway(p.cause) || keptLong(msg, tx.Now(), awayLimit)) {
			d.Attempts = 1
		}
		return fmt.Sprintf("waits until %s: ", rt.until.UTC().Format(time.RFC3339)), tx.Defer(ctx, d)
	case rt.done:
		err := tx.InboxAdd(ctx, inboxEntry(msg))
		return fmt.Sprintf("carries on at %s: ", rt.until.UTC().Format(time.RFC3339)), err
	}
	return "retry later: ", nil
}

// pause is why an input cannot get further now, for retryLater.
type pause struct {
	cause     error
	notBefore time.Time  // a wait for a known time (Decision.RetryAt); zero: a failure, backed off
	code      string     // a decision code, kept with a deferred input
	flag      *Attention // the decision's waiting_evidence flag, shown while the input waits
}

// failure is the pause of an input that failed (backed off).
func failure(code string, cause error) pause { return pause{cause: cause, code: code} }

// waitFor is the pause a retry decision asks for.
func waitFor(dec Decision) pause {
	return pause{cause: retryCause(dec), notBefore: dec.RetryAt, code: dec.Code, flag: dec.Attention}
}

// retryDetail is the detail of a "retry later" timeline entry (for
// operators: the count itself is cases.failed_inputs).
type retryDetail struct {
	Attempt  int   `json:"attempt"` // inputs of the case in a row that failed before this one
	AfterMS  int64 `json:"afterMs"` // the delay chosen
	Deferred bool  `json:"deferred,omitempty"`
}

// queueBehind defers a command for a case that already has commands waiting
// in the store, behind them, so that commands apply in the order they came
// (a cancel deferred while an attempt may be in flight is not overtaken by
// a later command). The oldest waiting input itself, taken up by the
// worker's timer, goes ahead. The loop calls it under the case's lock, and
// again after each wait (job.behindKept): a command that held the lock
// while it waited may have been kept meanwhile, and the one waiting for
// the lock must then go behind it.
func (e *Engine) queueBehind(ctx context.Context, caseID int64, msg *Message) (Handled, bool, error) {
	if !canDefer(msg) {
		return Handled{}, false, nil
	}
	first, err := e.store.FirstDeferredCommand(ctx, caseID)
	switch {
	case errors.Is(err, casestore.ErrNotFound):
		return Handled{}, false, nil
	case err != nil:
		return Handled{}, false, err
	case first.MsgID == msg.ID:
		return Handled{}, false, nil
	}
	until := first.NotBefore
	if now := e.now(); until.Before(now) {
		until = now
	}
	err = e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		return tx.Defer(ctx, deferredInput(caseID, msg, until, "behind_earlier_input: an earlier input of the case waits"))
	})
	if err != nil {
		return Handled{}, false, err
	}
	return Handled{CaseID: caseID, Deferred: true, Until: until}, true, nil
}
