package refundflow

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
)

// maxLoop bounds the decisions one input can lead to (render, submit, … is
// at most a handful; the bound only stops a bug from spinning).
const maxLoop = 24

// process is the worker contract's loop for one input on one case.
//
// Cross-process safety: every decision is committed together with taking
// the case's lease (casestore Tx.TakeLease) and with the case's optimistic
// version check, in one BEGIN IMMEDIATE transaction; the lease is kept
// (renewed) across the platform call of a step and dropped in the
// transaction that records the input's last decision. So a process can only
// commit a decision, and so start a side effect, while no other process is
// in the middle of one for the case; one whose view was read while another
// held the case reads and fetches again before deciding. A crashed holder's
// lease expires after LeaseTTL (far longer than any platform call), and its
// open intent is settled by asking the platform.
//
// locked, when set, is this process's lock on the case, taken by open with
// the case and its lease; otherwise process takes the lock itself.
func (e *Engine) process(ctx context.Context, caseID int64, first Input, hint string, msg *Message, note string, locked func()) (Handled, error) {
	h := Handled{CaseID: caseID}
	unlock := locked
	if unlock == nil {
		var err error
		if unlock, err = e.locks.lock(ctx, caseID); err != nil {
			return h, &RetryError{After: time.Second, Err: err}
		}
	}
	defer unlock()
	var held atomic.Bool
	held.Store(locked != nil) // open took the lease with the case
	stopRenew := e.renew(ctx, caseID, &held)
	defer func() {
		stopRenew()
		if !held.Load() {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := e.store.ReleaseLease(rctx, caseID, e.owner); err != nil {
			e.log.Warn("release lease", "case", caseID, "err", err)
		}
	}()

	in := first
	// reapply: the first input still has to be decided again (an intent was
	// settled first); applied: its own decision is committed, so what is
	// left (the steps it led to) can go on from the case's state alone.
	reapply, applied := false, false
	var ran *stepRecord
	var waited time.Duration
	for range maxLoop {
		if waited > 0 && ctx.Err() != nil {
			// Given up while waiting for another process's lease.
			return e.deferBusy(ctx, h, caseID, msg, applied, &RetryError{After: time.Second, Err: casestore.ErrLeased})
		}
		c, err := e.store.GetCase(ctx, caseID)
		if err != nil {
			return h, err
		}
		if !held.Load() && c.LeaseOwner != "" && c.LeaseOwner != e.owner && c.LeaseUntil.After(e.now()) {
			// Another process is on the case: wait for it rather than
			// fetching a view its in-flight step may change.
			if err := e.waitLease(ctx, c.LeaseUntil, &waited); err != nil {
				return e.deferBusy(ctx, h, caseID, msg, applied, err)
			}
			continue
		}
		cv, err := caseView(ctx, e.store, c)
		if err != nil {
			return h, err
		}
		in.Now = e.now()
		dec := e.decider.Decide(cv, nil, in)
		var pv *PlatformView
		if dec.Outcome == OutcomeFetch {
			pv, err = e.fetch(ctx, c, cv, hint)
			if err != nil {
				if ctx.Err() != nil {
					return h, &RetryError{After: time.Second, Err: err}
				}
				e.log.Warn("fetch platform view", "case", caseID, "err", err)
				return e.retryLater(ctx, h, c, msg, applied, ran, &held, failure("fetch_failed", fmt.Errorf("fetch: %w", err)))
			}
			dec = e.decider.Decide(cv, pv, in)
		}
		h.Outcome, h.Code, h.State = dec.Outcome, dec.Code, dec.State
		if dec.Reapply {
			reapply = true
		}
		final := (dec.Outcome != OutcomeAct || dec.Step == nil) && !reapply
		if dec.Outcome == OutcomeRetry {
			return e.retryLater(ctx, h, c, msg, applied, ran, &held, waitFor(dec))
		}
		if dec.Outcome == OutcomeFetch { // a view did not settle it: cannot happen with a view
			return e.retryLater(ctx, h, c, msg, applied, ran, &held, failure("fetch_loop", errors.New("decision still wants a view")))
		}
		var prior bool
		var ahead *aheadStep
		var err2 error
		if e.ahead && !final && canAhead(cv, dec) {
			// Lookahead: run the read-only step first, then commit its
			// decision together with the next one (package doc).
			res, rec := e.runStep(ctx, c, dec.Step)
			h.Steps++
			ahead = &aheadStep{res: res, rec: rec}
			var r aheadResult
			r, err2 = e.persistAhead(ctx, c, cv, in, pv, dec, ran, note, ahead, reapply, msg)
			if err2 == nil && r.combined {
				dec, final, reapply, prior = r.dec, r.final, r.reapply, r.prior
				h.Outcome, h.Code, h.State = dec.Outcome, dec.Code, dec.State
				ahead = nil
			}
		} else {
			prior, err2 = e.persist(ctx, decisionRecord{c: c, cv: cv, in: in, pv: pv, dec: dec, ran: ran, note: note, final: final, msg: msg})
		}
		var le *leasedError
		switch {
		case errors.As(err2, &le):
			held.Store(false)
			if err := e.waitLease(ctx, le.until, &waited); err != nil {
				return e.deferBusy(ctx, h, caseID, msg, applied, err)
			}
			continue // read and fetch again: the holder may have changed the case
		case errors.Is(err2, casestore.ErrVersionConflict):
			continue // changed under us: decide again
		case err2 != nil:
			return h, err2
		}
		held.Store(!final)
		if in.Kind != InputStepResult && !dec.Reapply {
			applied = true
		}
		ran, note = nil, ""
		if ahead != nil {
			// Committed alone (the next decision needs a view or a retry):
			// feed the step's result in as usual.
			ran = &ahead.rec
			in = Input{Kind: InputStepResult, Result: &ahead.res}
			continue
		}
		if dec.Outcome == OutcomeAct && dec.Step != nil {
			if dec.Step.Name.SideEffect() && prior && !dec.Step.Resume {
				// The intent already existed: an earlier attempt may have
				// reached the platform. Never call again here; the open
				// intent is settled (fetch first) by the next input.
				// The input is as applied as it can be: record it, so that
				// neither a redelivery nor its waiting row comes back.
				e.log.Warn("intent already recorded; not calling again", "case", caseID, "key", dec.Step.Key)
				return h, e.recordInbox(ctx, msg)
			}
			res, rec := e.runStep(ctx, c, dec.Step)
			h.Steps++
			ran = &rec
			in = Input{Kind: InputStepResult, Result: &res}
			continue
		}
		if reapply {
			reapply = false
			in = first
			continue
		}
		return h, nil
	}
	return h, &RetryError{After: e.retry, Err: fmt.Errorf("case %d: more than %d decisions for one input", caseID, maxLoop)}
}

// canAhead reports whether dec's step may run before dec commits: a
// read-only step, on a case with no open intent and nothing to settle, so
// the case row after dec is all the next decision needs (no store read).
func canAhead(cv CaseView, dec Decision) bool {
	return dec.Outcome == OutcomeAct && dec.Step != nil && !dec.Step.Name.SideEffect() &&
		dec.Resolve == nil && !dec.Reapply && cv.Intent == nil
}

// aheadStep is a read-only step run before its decision committed.
type aheadStep struct {
	res StepResult
	rec stepRecord
}

// aheadResult is what persistAhead committed.
type aheadResult struct {
	combined              bool     // the next decision committed too
	dec                   Decision // that decision
	final, reapply, prior bool
}

// persistAhead commits dec (whose read-only step already ran) and, in the
// same transaction, the decision the step's result leads to, with the step
// recorded and, for a side effect, its intent, exactly as two persists in a
// row would. When that next decision needs a view or a retry, only dec
// commits (combined false) and the loop feeds the result in as usual.
func (e *Engine) persistAhead(ctx context.Context, c casestore.Case, cv CaseView, in Input, pv *PlatformView,
	dec Decision, ran *stepRecord, note string, ahead *aheadStep, reapply bool, msg *Message) (aheadResult, error) {
	var out aheadResult
	err := e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		out = aheadResult{}
		r1, err := e.persistTx(ctx, tx, decisionRecord{c: c, cv: cv, in: in, pv: pv, dec: dec, ran: ran, note: note})
		if err != nil {
			return err
		}
		cv2, err := caseViewOf(r1.c)
		if err != nil {
			return nil // the loop reads the case again and reports it
		}
		in2 := Input{Kind: InputStepResult, Result: &ahead.res, Now: e.now()}
		dec2 := e.decider.Decide(cv2, nil, in2)
		if dec2.Outcome == OutcomeFetch || dec2.Outcome == OutcomeRetry {
			return nil
		}
		re := reapply || dec2.Reapply
		final := (dec2.Outcome != OutcomeAct || dec2.Step == nil) && !re
		rec := ahead.rec
		r2, err := e.persistTx(ctx, tx, decisionRecord{c: r1.c, cv: cv2, in: in2, dec: dec2, ran: &rec, final: final, msg: msg, leased: true})
		if err != nil {
			return err
		}
		out = aheadResult{combined: true, dec: dec2, final: final, reapply: re, prior: r2.prior}
		return nil
	})
	return out, err
}
