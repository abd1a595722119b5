package refundflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
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
func (e *Engine) retryLater(ctx context.Context, h Handled, c casestore.Case, msg *Message, applied bool, ran *stepRecord,
	held *atomic.Bool, p pause) (Handled, error) {
	cause, notBefore, code, flag := p.cause, p.notBefore, p.code, p.flag
	attempt := c.FailedInputs
	delay := backoff(e.retry, e.retryMax, attempt)
	failed := notBefore.IsZero()
	if !failed {
		delay = max(notBefore.Sub(e.now()), 0)
	}
	deferIt := !applied && canDefer(msg)
	done := applied && msg != nil // the input is applied; the timer carries on
	detail, _ := json.Marshal(retryDetail{Attempt: attempt, AfterMS: delay.Milliseconds(), Deferred: deferIt})
	var until time.Time
	err := e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		until = tx.Now().Add(delay)
		if !failed {
			until = notBefore
		}
		if _, err := tx.TakeLease(ctx, c.ID, e.owner, e.leaseTTL); err != nil {
			return err
		}
		if ran != nil {
			entry, err := e.recordStep(ctx, tx, c.ID, ran)
			if err != nil {
				return err
			}
			if err := tx.AppendTimeline(ctx, entry); err != nil {
				return err
			}
		}
		nc := c
		if failed {
			nc.FailedInputs = attempt + 1
		}
		if flag != nil {
			nc.AttentionCode, nc.AttentionMessage = flag.Code, flag.Message
		}
		if done || msg == nil {
			// The case's timer carries on then: it runs the failed step
			// again (or asks the platform again), neither at once nor only
			// at a later timer (a step timeout, a re-check hours away).
			nc.NextWakeAt = until
		}
		if _, err := tx.UpdateCaseFrom(ctx, c, nc); err != nil {
			return err
		}
		summary := "retry later: "
		switch {
		case deferIt:
			summary = fmt.Sprintf("waits until %s: ", until.UTC().Format(time.RFC3339))
			d := deferredInput(c.ID, msg, until, code+": "+clipN(cause.Error(), 300))
			if failed {
				d.Attempts = 1
			}
			if err := tx.Defer(ctx, d); err != nil {
				return err
			}
		case done:
			summary = fmt.Sprintf("carries on at %s: ", until.UTC().Format(time.RFC3339))
			if _, err := tx.InboxRecord(ctx, inboxEntry(msg)); err != nil {
				return err
			}
		}
		if err := tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindDecision,
			Summary: summary + clipN(cause.Error(), 300), Detail: detail}); err != nil {
			return err
		}
		return tx.DropLease(ctx, c.ID, e.owner)
	})
	switch {
	case err == nil:
		held.Store(false)
		if deferIt || done {
			h.Deferred, h.Until = deferIt, until
			return h, nil
		}
	case errors.Is(err, casestore.ErrLeased), errors.Is(err, casestore.ErrVersionConflict):
	default:
		return h, err
	}
	return h, &RetryError{After: delay, Err: cause}
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

// backoff is base·2^n, capped at limit.
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// queueBehind defers a command for a case that already has inputs waiting
// in the store, behind them, so that commands apply in the order they came
// (a cancel deferred while an attempt may be in flight is not overtaken by
// a later command). The oldest waiting input itself, taken up by the
// worker's timer, goes ahead.
func (e *Engine) queueBehind(ctx context.Context, caseID int64, msg *Message) (Handled, bool, error) {
	if !canDefer(msg) {
		return Handled{}, false, nil
	}
	first, err := e.store.FirstDeferred(ctx, caseID)
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
