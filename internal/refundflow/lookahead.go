package refundflow

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
)

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

// lookahead runs the read-only step of d before d commits, then commits d
// and, in the same transaction, the decision the step's result leads to,
// with the step recorded and, for a side effect, its intent, exactly as
// two commits in a row would (package doc, "Lookahead"). When that next
// decision needs a view or a retry, d commits alone and committed.ahead
// hands the step's result to the loop, to be decided as usual.
func (e *Engine) lookahead(ctx context.Context, r *run, d decisionRecord) (committed, error) {
	if isCommand(d.in.Kind) {
		return e.lookaheadForVerdict(ctx, r, d)
	}
	res, rec := e.runStep(ctx, d.c, d.dec.Step)
	r.h.Steps++
	return e.commitAhead(ctx, r, d, &aheadStep{res: res, rec: rec})
}

// verdictDue is how long a command's read run ahead may hold its
// decision's commit, which records the command's verdict
// (decisionRecord.commandOutcome) for the operator waiting on it
// (Engine.verdictDue; tests set their own).
const verdictDue = time.Second

// lookaheadForVerdict is lookahead for an operator's command, whose
// operator waits for the verdict the decision's commit records. A read
// that has not come back within verdictDue (a platform that throttles:
// the client's retries under a rate limit took 19 s in devstack; one that
// is slow or down) no longer holds it up: the decision commits alone, as
// without lookahead, taking the case's lease for the read still under way,
// and the read's result is decided when it comes (committed.ahead). A read
// that comes back in time commits with the next decision as lookahead
// does: a platform answering as usual costs no commit more.
func (e *Engine) lookaheadForVerdict(ctx context.Context, r *run, d decisionRecord) (committed, error) {
	type read struct {
		a     aheadStep
		panic any // a panic of the read, raised again on this goroutine
	}
	came := make(chan read, 1)
	go func() {
		var out read
		defer func() {
			// The worker's guard catches a panic on the input's own
			// goroutine (the input fails alone); on this one it would
			// end the process.
			out.panic = relay(recover())
			came <- out
		}()
		out.a.res, out.a.rec = e.runStep(ctx, d.c, d.dec.Step)
	}()
	due := time.NewTimer(e.verdictDue)
	defer due.Stop()
	var got read
	select {
	case got = <-came:
		r.h.Steps++
		if got.panic != nil {
			panic(got.panic)
		}
		return e.commitAhead(ctx, r, d, &got.a)
	case <-due.C:
	}
	prior, err := e.persist(ctx, d)
	if err == nil {
		r.held.Store(true) // renewed while the read goes on (advance keeps it)
	}
	got = <-came // the read ends with ctx at the latest
	r.h.Steps++
	if got.panic != nil {
		panic(got.panic)
	}
	a := got.a
	if err != nil {
		// Nothing committed: the loop decides the input again (a version
		// conflict, another process's lease), and the read runs again.
		return committed{}, err
	}
	return committed{dec: d.dec, final: d.final, reapply: r.reapply, prior: prior, ahead: &a}, nil
}

// relayed is a panic caught on a goroutine of the engine's own and raised
// again on the input's (where the worker's guard fails the one input): its
// value, and the stack where it happened, which the guard, logging the
// stack it catches it on, would not show.
type relayed struct {
	value any
	stack []byte
}

func (p relayed) String() string {
	return fmt.Sprintf("%v\n\n(raised on another goroutine, whose stack was:)\n%s", p.value, p.stack)
}

// relay is v, a recovered panic (nil: none), with the stack of the
// goroutine recovering it, once.
func relay(v any) any {
	if _, done := v.(relayed); v == nil || done {
		return v
	}
	return relayed{value: v, stack: debug.Stack()}
}

// commitAhead commits d with the read run ahead (lookahead).
func (e *Engine) commitAhead(ctx context.Context, r *run, d decisionRecord, ahead *aheadStep) (committed, error) {
	var out committed
	err := e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		out = committed{dec: d.dec, final: d.final, reapply: r.reapply, ahead: ahead}
		first, err := e.persistTx(ctx, tx, d)
		if err != nil {
			return err
		}
		next, ok := e.decideAhead(first.c, ahead, r.reapply, r.msg)
		if !ok {
			return nil
		}
		second, err := e.persistTx(ctx, tx, next)
		if err != nil {
			return err
		}
		out = committed{dec: next.dec, final: next.final, reapply: r.reapply || next.dec.Reapply, prior: second.prior}
		return nil
	})
	return out, err
}

// decideAhead decides the result of the step run ahead on the case as the
// first decision left it (c), for the same transaction. ok is false when
// that decision cannot commit there: it needs a view or a retry, or the
// case row does not read (the loop reads the case again and reports it).
func (e *Engine) decideAhead(c casestore.Case, ahead *aheadStep, reapply bool, msg *Message) (d decisionRecord, ok bool) {
	cv, err := caseViewOf(c)
	if err != nil {
		return decisionRecord{}, false
	}
	in := Input{Kind: InputStepResult, Result: &ahead.res, Now: e.now()}
	dec := e.decider.Decide(cv, nil, in)
	if dec.Outcome == OutcomeFetch || dec.Outcome == OutcomeRetry {
		return decisionRecord{}, false
	}
	rec := ahead.rec
	return decisionRecord{c: c, cv: cv, in: in, dec: dec, ran: &rec, final: isFinal(dec, reapply || dec.Reapply),
		msg: msg}, true
}
