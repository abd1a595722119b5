package refundflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casestore"
)

// ErrPermanent marks input that can never be handled however often it is
// retried (an unknown case, an invalid command): the consumer dead-letters it.
var ErrPermanent = errors.New("permanent failure")

// ErrUnknownCase: the command names no case the worker knows.
var ErrUnknownCase = fmt.Errorf("unknown case: %w", ErrPermanent)

// RetryError asks the caller to try the same input again after After (a
// transient platform failure, a case leased by another worker).
type RetryError struct {
	After time.Duration
	Err   error
}

// ErrWait marks a RetryError whose After is the time the case waits for (a
// side effect's newest attempt that may still reach the platform, evidence
// for an intent): a redelivery sooner cannot get further.
var ErrWait = errors.New("the case waits")

// retryCause is the error a retry decision is handed back with: it wraps
// ErrWait when the decision names the time it waits for.
func retryCause(dec Decision) error {
	if !dec.RetryAt.IsZero() {
		return fmt.Errorf("%w: %s: %s", ErrWait, dec.Code, dec.Reason)
	}
	return errors.New(dec.Reason)
}

func (e *RetryError) Error() string { return fmt.Sprintf("retry after %s: %v", e.After, e.Err) }

// Unwrap returns the cause.
func (e *RetryError) Unwrap() error { return e.Err }

// Message identifies the stream message an input came from; its ID goes to
// the inbox in the same transaction as the input's final effect.
type Message struct {
	ID      string // Nats-Msg-Id (content hash or command id)
	Stream  string
	Seq     uint64
	Subject string
}

// VoucherSource opens a voucher reference of a request (Request.Vouchers)
// for upload to 1688: it returns the file name and its bytes.
type VoucherSource func(ctx context.Context, ref string) (name string, data []byte, err error)

// StepObserver is told about every platform step the engine runs (metrics).
// outcome is "ok", "transient" or "failed".
type StepObserver func(p Platform, step StepName, outcome string, d time.Duration)

// EngineConfig configures an Engine. Store and Client are required.
type EngineConfig struct {
	Store  *casestore.Store
	Client *apiclient.Client
	Policy Policy
	Logger *slog.Logger
	// Owner names this process in case leases; default a random id. Two
	// processes must never share one.
	Owner string
	// LeaseTTL is how long a claimed case stays leased without renewal
	// (renewed every LeaseTTL/3 while a case is processed). It must exceed
	// the longest platform call; default 2 minutes.
	LeaseTTL time.Duration
	// Vouchers opens voucher references for 1688 uploads; nil fails uploads.
	Vouchers VoucherSource
	// RetryDelay is the delay before a timer or reconcile input that failed
	// transiently wakes the case again; it doubles with every further input
	// of the case in a row that fails (see retryLater), up to RetryMax.
	// Default 30s.
	RetryDelay time.Duration
	// RetryMax caps that delay; default 10 minutes (at least RetryDelay).
	RetryMax time.Duration
	// OnStep, when set, observes each step.
	OnStep StepObserver
	// Now is the clock; default time.Now.
	Now func() time.Time
	// NoLookahead turns off running a read-only step before its decision
	// is committed (see the package doc, "Lookahead"): every decision then
	// commits before its step. For comparison benchmarks and tests.
	NoLookahead bool
}

// Engine carries refund cases forward: it applies one input to one case
// following the worker contract in the package doc, calling the platform and
// recording every decision, intent and result in the store. It is safe for
// concurrent use; one case is never processed by two goroutines (an
// in-process lock) or two processes (a lease in the store) at once.
type Engine struct {
	store    *casestore.Store
	client   *apiclient.Client
	decider  Decider
	log      *slog.Logger
	owner    string
	leaseTTL time.Duration
	vouchers VoucherSource
	retry    time.Duration
	retryMax time.Duration
	onStep   StepObserver
	now      func() time.Time
	locks    caseLocks
	ahead    bool // lookahead on (EngineConfig.NoLookahead unset)
}

// NewEngine validates cfg and returns an Engine.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Store == nil || cfg.Client == nil {
		return nil, errors.New("engine: Store and Client are required")
	}
	e := &Engine{store: cfg.Store, client: cfg.Client, decider: Decider{Policy: cfg.Policy}, log: cfg.Logger,
		owner: cfg.Owner, leaseTTL: cfg.LeaseTTL, vouchers: cfg.Vouchers, retry: cfg.RetryDelay, retryMax: cfg.RetryMax,
		onStep: cfg.OnStep, now: cfg.Now, locks: caseLocks{m: map[int64]*caseLock{}}, ahead: !cfg.NoLookahead}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.owner == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("engine owner id: %w", err)
		}
		e.owner = "worker-" + hex.EncodeToString(b[:])
	}
	if e.leaseTTL <= 0 {
		e.leaseTTL = 2 * time.Minute
	}
	if e.retry <= 0 {
		e.retry = 30 * time.Second
	}
	if e.retryMax <= 0 {
		e.retryMax = 10 * time.Minute
	}
	e.retryMax = max(e.retryMax, e.retry)
	if e.now == nil {
		e.now = time.Now
	}
	return e, nil
}

// Owner returns the lease owner id of this engine.
func (e *Engine) Owner() string { return e.owner }

// Handled reports what an input did.
type Handled struct {
	CaseID    int64
	State     State
	Outcome   Outcome // the last decision's outcome
	Code      string  // the last decision's code
	Steps     int     // platform steps run
	Duplicate bool    // the message was already applied (inbox)
	Ignored   bool    // nothing to do with it (not a refund message, or no case)
}

// HandleCommand applies an operator command. A request_refund for an order
// without an open case opens one. Errors wrapping ErrPermanent will never
// succeed; *RetryError asks for a later retry.
func (e *Engine) HandleCommand(ctx context.Context, cmd Command, msg *Message) (Handled, error) {
	if err := cmd.Validate(); err != nil {
		return Handled{}, fmt.Errorf("invalid command: %w: %w", err, ErrPermanent)
	}
	if dup, err := e.seen(ctx, msg); err != nil || dup {
		return Handled{Duplicate: dup}, err
	}
	in := cmd.Input(e.now())
	note := fmt.Sprintf("command %s %s", cmd.Kind, cmd.ID)
	if cmd.Operator != "" {
		note += " by " + cmd.Operator
	}
	c, err := e.commandCase(ctx, cmd)
	if errors.Is(err, errNewCase) {
		return e.open(ctx, cmd, in, msg, note)
	}
	if err != nil {
		return Handled{}, err
	}
	return e.process(ctx, c.ID, in, "", msg, note, nil)
}

func (e *Engine) commandCase(ctx context.Context, cmd Command) (casestore.Case, error) {
	if cmd.CaseID > 0 {
		c, err := e.store.GetCase(ctx, cmd.CaseID)
		if errors.Is(err, casestore.ErrNotFound) || (err == nil && c.Platform != string(cmd.Platform)) {
			return casestore.Case{}, fmt.Errorf("case %d of %s: %w", cmd.CaseID, cmd.Platform, ErrUnknownCase)
		}
		return c, err
	}
	var c casestore.Case
	var err error
	find := func() {
		if cmd.Platform == PlatformTaobao {
			c, err = e.store.OpenCaseBySubOrder(ctx, string(cmd.Platform), cmd.SubOrderID)
		} else {
			c, err = e.store.OpenCaseByOrder(ctx, string(cmd.Platform), cmd.OrderID, "")
		}
	}
	find()
	if err == nil || !errors.Is(err, casestore.ErrNotFound) {
		return c, err
	}
	if cmd.Kind != InputRequestRefund {
		sub := ""
		if cmd.Platform == PlatformTaobao {
			sub = cmd.SubOrderID
		}
		if last, err := e.store.LatestCase(ctx, string(cmd.Platform), cmd.OrderID, sub); err == nil {
			return last, nil // finished: the decision refuses the command
		}
		return casestore.Case{}, fmt.Errorf("no open case for %s order %s sub-order %s: %w", cmd.Platform, cmd.OrderID, cmd.SubOrderID, ErrUnknownCase)
	}
	if opened, err := e.store.CaseOpenedBy(ctx, cmd.ID); err == nil {
		// A redelivery of the command that opened a case that has finished
		// since: never a second case (it would submit a second refund).
		return opened, nil
	}
	if cmd.Platform == PlatformTaobao && cmd.OrderID == "" {
		// The Taobao list (the only lookup by order) needs the order id to
		// tell whether a submit that may have been lost took effect.
		return casestore.Case{}, fmt.Errorf("request_refund for Taobao needs orderId as well as subOrderId: %w", ErrPermanent)
	}
	return casestore.Case{}, errNewCase
}

// errNewCase: the command opens a new case (commandCase's answer).
var errNewCase = errors.New("new case")

// open creates the case a request_refund opens. The usual first decision
// reads the refund form (a read-only step): with lookahead it runs before
// the case exists, and one transaction then creates the case, records that
// decision, the form and the next decision (the submit, with its intent);
// the loop then goes on with the submit. Otherwise the case and the first
// decision commit together, taking the case's lease, and the loop runs the
// first step.
func (e *Engine) open(ctx context.Context, cmd Command, in Input, msg *Message, note string) (Handled, error) {
	req, err := json.Marshal(cmd.Request)
	if err != nil {
		return Handled{}, fmt.Errorf("encode request: %w", err)
	}
	in.Now = e.now()
	cv := CaseView{Platform: cmd.Platform, State: StateRequested, Version: 1, Request: *cmd.Request}
	dec := e.decider.Decide(cv, nil, in)
	usual := dec.Outcome == OutcomeAct && dec.Step != nil && !dec.Step.Name.SideEffect() && !dec.Reapply
	var ahead *aheadStep
	if usual && e.ahead {
		// A read-only step needs no case row: it reads the order's ids.
		draft := casestore.Case{Platform: string(cmd.Platform), OrderID: cmd.OrderID, SubOrderID: cmd.SubOrderID,
			State: string(StateRequested), Request: req}
		res, rec := e.runStep(ctx, draft, dec.Step)
		ahead = &aheadStep{res: res, rec: rec}
	}
	var c casestore.Case
	var st *started
	err = e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		st = nil
		created, err := tx.CreateCase(ctx, casestore.NewCase{Platform: string(cmd.Platform), OrderID: cmd.OrderID,
			SubOrderID: cmd.SubOrderID, State: string(StateRequested), Request: req, OpenedBy: cmd.ID,
			NextWakeAt: e.decider.wake(StateRequested, nil, tx.Now())})
		if err != nil {
			return err
		}
		c = created
		if err := tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindCommand,
			Summary: fmt.Sprintf("case opened by command %s", cmd.ID)}); err != nil {
			return err
		}
		if !usual {
			return nil // not the usual first step: the loop decides it
		}
		cv.ID = c.ID
		r1, err := e.persistTx(ctx, tx, c, cv, in, nil, dec, nil, nil, note, false, false)
		if err != nil {
			return err
		}
		st = &started{c: c, dec: dec, ahead: ahead}
		if ahead == nil {
			return nil
		}
		// The form is in: decide the next step in the same transaction.
		cv2, err := caseViewOf(r1.c)
		if err != nil {
			return nil // the loop reads the case again and reports it
		}
		in2 := Input{Kind: InputStepResult, Result: &ahead.res, Now: e.now()}
		dec2 := e.decider.Decide(cv2, nil, in2)
		if dec2.Outcome != OutcomeAct || dec2.Step == nil || dec2.Reapply {
			return nil // the loop feeds the form in as for any step result
		}
		rec := ahead.rec
		r2, err := e.persistTx(ctx, tx, r1.c, cv2, in2, nil, dec2, &rec, nil, "", false, true)
		if err != nil {
			return err
		}
		if r2.prior {
			return fmt.Errorf("case %d: intent %s exists on a case just opened", c.ID, dec2.Step.Key)
		}
		st = &started{c: r1.c, dec: dec2, steps: 1}
		return nil
	})
	ran := 0 // the step run ahead, when its result did not get used
	if ahead != nil && (st == nil || err != nil) {
		ran = 1
	}
	if errors.Is(err, casestore.ErrOpenCaseExists) { // another worker opened it just now
		id := int64(0)
		if opened, oerr := e.store.CaseOpenedBy(ctx, cmd.ID); oerr == nil {
			id = opened.ID
		} else if existing, ferr := e.commandCase(ctx, cmd); ferr == nil {
			id = existing.ID
		} else {
			return Handled{Steps: ran}, err
		}
		h, err := e.process(ctx, id, in, "", msg, note, nil)
		h.Steps += ran
		return h, err
	}
	if err != nil {
		return Handled{Steps: ran}, err
	}
	if st == nil {
		h, err := e.process(ctx, c.ID, in, "", msg, note, nil)
		h.Steps += ran
		return h, err
	}
	return e.process(ctx, c.ID, in, "", msg, "", st)
}

// started is a decision already committed (with the lease) that the loop
// carries on from: it runs the decision's step, or, when the step already
// ran (ahead), feeds its result in.
type started struct {
	c     casestore.Case // the case as it was before the decision's update
	dec   Decision
	ahead *aheadStep // the step ran before the decision committed
	steps int        // steps already run for this input
}

// aheadStep is a read-only step run before its decision committed.
type aheadStep struct {
	res StepResult
	rec stepRecord
}

// HandleCallback applies a platform callback (a hint: the case is verified
// against the platform before anything happens). Callbacks that are not about
// a refund, or about a refund no case knows, are recorded and ignored.
func (e *Engine) HandleCallback(ctx context.Context, ev callback.Event, msg *Message) (Handled, error) {
	if dup, err := e.seen(ctx, msg); err != nil || dup {
		return Handled{Duplicate: dup}, err
	}
	if ev.Parked() || ev.Kind != callback.KindRefund || ev.Refund == nil {
		return Handled{Ignored: true}, e.recordInbox(ctx, msg)
	}
	p := PlatformTaobao
	if ev.Platform == callback.Platform1688 {
		p = Platform1688
	}
	refundID, orderID, subOrderID := ev.Refund.RefundID.String(), ev.Refund.OrderID.String(), ev.Refund.SubOrderID.String()
	var c casestore.Case
	var err error
	if refundID != "" {
		c, err = e.store.CaseByRefundID(ctx, string(p), refundID)
	} else {
		err = casestore.ErrNotFound
	}
	if errors.Is(err, casestore.ErrNotFound) {
		switch {
		case p == PlatformTaobao && subOrderID != "":
			c, err = e.store.OpenCaseBySubOrder(ctx, string(p), subOrderID)
		case p == Platform1688 && orderID != "":
			c, err = e.store.OpenCaseByOrder(ctx, string(p), orderID, "")
		}
	}
	if errors.Is(err, casestore.ErrNotFound) {
		return Handled{Ignored: true}, e.recordInbox(ctx, msg)
	}
	if err != nil {
		return Handled{}, err
	}
	hint := ""
	if c.RefundID == "" && refundID != "" {
		owners, err := e.store.RefundOwners(ctx, string(p), []string{refundID})
		if err != nil {
			return Handled{}, err
		}
		if _, taken := owners[refundID]; !taken {
			hint = refundID
		}
	}
	note := fmt.Sprintf("callback %s refund %s", ev.Type, refundID)
	return e.process(ctx, c.ID, Input{Kind: InputCallback, Now: e.now()}, hint, msg, note, nil)
}

// Wake applies a timer or reconcile input (kind InputTimer or InputReconcile).
func (e *Engine) Wake(ctx context.Context, caseID int64, kind InputKind) (Handled, error) {
	return e.process(ctx, caseID, Input{Kind: kind, Now: e.now()}, "", nil, string(kind), nil)
}

func (e *Engine) seen(ctx context.Context, msg *Message) (bool, error) {
	if msg == nil || msg.ID == "" {
		return false, nil
	}
	return e.store.InboxSeen(ctx, msg.ID)
}

func (e *Engine) recordInbox(ctx context.Context, msg *Message) error {
	if msg == nil || msg.ID == "" {
		return nil
	}
	return e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		_, err := tx.InboxRecord(ctx, inboxEntry(msg))
		return err
	})
}

func inboxEntry(m *Message) casestore.InboxEntry {
	return casestore.InboxEntry{MsgID: m.ID, Stream: m.Stream, StreamSeq: m.Seq, Subject: m.Subject}
}

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
func (e *Engine) process(ctx context.Context, caseID int64, first Input, hint string, msg *Message, note string, start *started) (Handled, error) {
	h := Handled{CaseID: caseID}
	unlock, err := e.locks.lock(ctx, caseID)
	if err != nil {
		return h, &RetryError{After: time.Second, Err: err}
	}
	defer unlock()
	var held atomic.Bool
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
	reapply := false
	var ran *stepRecord
	var waited time.Duration
	start0 := start
	if start != nil {
		// The first decision is committed, the lease held. Another goroutine
		// of this process may have taken the case between that commit and
		// the lock: then decide afresh instead.
		// The lease must still be ours too: in that gap another input of
		// this process (same owner) may have ended and dropped it without
		// changing the version; a side effect must never run unleased.
		if cur, err := e.store.GetCase(ctx, caseID); err != nil || cur.Version != start.c.Version+1 ||
			cur.LeaseOwner != e.owner || !cur.LeaseUntil.After(e.now()) {
			start = nil
		}
	}
	if start != nil {
		// Carry on from the committed decision: run its step, or feed in
		// the result of the step that ran before it committed.
		held.Store(true)
		h.Outcome, h.Code, h.State = start.dec.Outcome, start.dec.Code, start.dec.State
		h.Steps += start.steps
		var res StepResult
		var rec stepRecord
		if start.ahead != nil {
			res, rec = start.ahead.res, start.ahead.rec
		} else {
			res, rec = e.runStep(ctx, start.c, start.dec.Step)
		}
		h.Steps++
		ran = &rec
		in = Input{Kind: InputStepResult, Result: &res}
	} else if start0 != nil {
		// Dropped: the steps that ran for it still count (their results
		// are decided again from the case as it is).
		h.Steps += start0.steps
		if start0.ahead != nil {
			h.Steps++
		}
	}
	for range maxLoop {
		c, err := e.store.GetCase(ctx, caseID)
		if err != nil {
			return h, err
		}
		if !held.Load() && c.LeaseOwner != "" && c.LeaseOwner != e.owner && c.LeaseUntil.After(e.now()) {
			// Another process is on the case: wait for it rather than
			// fetching a view its in-flight step may change.
			if err := e.waitLease(ctx, c.LeaseUntil, &waited); err != nil {
				return h, err
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
			pv, err = e.fetch(ctx, c, hint)
			if err != nil {
				if ctx.Err() != nil {
					return h, &RetryError{After: time.Second, Err: err}
				}
				e.log.Warn("fetch platform view", "case", caseID, "err", err)
				return h, e.retryLater(ctx, c, in, msg, ran, &held, fmt.Errorf("fetch: %w", err), time.Time{})
			}
			dec = e.decider.Decide(cv, pv, in)
		}
		h.Outcome, h.Code, h.State = dec.Outcome, dec.Code, dec.State
		if dec.Reapply {
			reapply = true
		}
		final := (dec.Outcome != OutcomeAct || dec.Step == nil) && !reapply
		if dec.Outcome == OutcomeRetry {
			return h, e.retryLater(ctx, c, in, msg, ran, &held, retryCause(dec), dec.RetryAt)
		}
		if dec.Outcome == OutcomeFetch { // a view did not settle it: cannot happen with a view
			return h, e.retryLater(ctx, c, in, msg, ran, &held, errors.New("decision still wants a view"), time.Time{})
		}
		var inbox *Message
		if final {
			inbox = msg
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
			prior, err2 = e.persist(ctx, c, cv, in, pv, dec, ran, inbox, note, final)
		}
		var le *leasedError
		switch {
		case errors.As(err2, &le):
			held.Store(false)
			if err := e.waitLease(ctx, le.until, &waited); err != nil {
				return h, err
			}
			continue // read and fetch again: the holder may have changed the case
		case errors.Is(err2, casestore.ErrVersionConflict):
			continue // changed under us: decide again
		case err2 != nil:
			return h, err2
		}
		held.Store(!final)
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
				e.log.Warn("intent already recorded; not calling again", "case", caseID, "key", dec.Step.Key)
				return h, nil
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
		r1, err := e.persistTx(ctx, tx, c, cv, in, pv, dec, ran, nil, note, false, false)
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
		var inbox *Message
		if final {
			inbox = msg
		}
		rec := ahead.rec
		r2, err := e.persistTx(ctx, tx, r1.c, cv2, in2, nil, dec2, &rec, inbox, "", final, true)
		if err != nil {
			return err
		}
		out = aheadResult{combined: true, dec: dec2, final: final, reapply: re, prior: r2.prior}
		return nil
	})
	return out, err
}

// leasedError is a persist refused because another process holds the case.
type leasedError struct {
	until time.Time
	err   error
}

func (e *leasedError) Error() string { return e.err.Error() }
func (e *leasedError) Unwrap() error { return e.err }

// leaseWait bounds how long one input waits for another process's lease on
// its case before it is handed back for redelivery.
const leaseWait = 20 * time.Second

// waitLease waits until the lease ending at until is over (holders usually
// drop it within a step); after leaseWait in all (a holder that died keeps
// it until it expires) it returns a RetryError for when it expires.
func (e *Engine) waitLease(ctx context.Context, until time.Time, waited *time.Duration) error {
	left := time.Until(until)
	step := max(min(left, 100*time.Millisecond), 5*time.Millisecond)
	if *waited+step > leaseWait {
		return &RetryError{After: max(left, 100*time.Millisecond), Err: casestore.ErrLeased}
	}
	*waited += step
	select {
	case <-ctx.Done():
		return &RetryError{After: time.Second, Err: casestore.ErrLeased}
	case <-time.After(step):
		return nil
	}
}

// retryLater records what is known (a step result, a later wake for timer
// inputs), lets go of the case and returns a RetryError. The inbox is not
// written: the message will come again.
//
// The wake-up delay backs off: RetryDelay·2^n, capped at RetryMax, where n
// is the number of inputs of the case in a row that ended here before this
// one (failedAttempts). n is kept in the "retry later" timeline entry's
// detail, not in a column, so a platform outage costs each due case one
// timeline entry per doubling delay rather than one per RetryDelay.
func (e *Engine) retryLater(ctx context.Context, c casestore.Case, in Input, msg *Message, ran *stepRecord, held *atomic.Bool, cause error, notBefore time.Time) error {
	attempt := e.failedInputs(context.WithoutCancel(ctx), c)
	delay := backoff(e.retry, e.retryMax, attempt)
	if wait := notBefore.Sub(e.now()); wait > delay {
		// The decision waits for a known time (Decision.RetryAt); coming
		// back sooner would only repeat it and use up deliveries.
		delay = wait
	}
	detail, _ := json.Marshal(retryDetail{Attempt: attempt, AfterMS: delay.Milliseconds()})
	err := e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
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
		if msg == nil && (c.NextWakeAt.IsZero() || c.NextWakeAt.Before(tx.Now().Add(delay))) {
			// A timer or reconcile input: come back later rather than
			// firing again at once.
			nc := c
			nc.NextWakeAt = tx.Now().Add(delay)
			if _, err := tx.UpdateCaseFrom(ctx, c, nc); err != nil {
				return err
			}
		}
		if err := tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: c.ID, Kind: timelineKind(in.Kind),
			Summary: retryPrefix + clipN(cause.Error(), 300), Detail: detail}); err != nil {
			return err
		}
		return tx.DropLease(ctx, c.ID, e.owner)
	})
	switch {
	case err == nil:
		held.Store(false)
	case errors.Is(err, casestore.ErrLeased), errors.Is(err, casestore.ErrVersionConflict):
	default:
		return err
	}
	return &RetryError{After: delay, Err: cause}
}

// retryPrefix starts the timeline summary of every input handed back for a
// later retry (retryLater).
const retryPrefix = "retry later: "

// retryDetail is the detail of a "retry later" timeline entry.
type retryDetail struct {
	Attempt int   `json:"attempt"` // inputs of the case in a row that failed before this one
	AfterMS int64 `json:"afterMs"` // the wake-up delay chosen
}

// backoff is base·2^n, capped at limit.
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// failedInputs is failedAttempts over the newest rows of the case's
// timeline: a tail of 32 rows, read further back only while all of it belongs
// to the failing run (a long case's whole history is never read for this).
func (e *Engine) failedInputs(ctx context.Context, c casestore.Case) int {
	for n := 32; ; n *= 4 {
		tl, err := e.store.TimelineTail(ctx, c.ID, n)
		if err != nil {
			e.log.Warn("timeline for the retry backoff", "case", c.ID, "err", err)
			return 0
		}
		attempt, decided := failedAttempts(tl, c.LastPlatformCheckAt)
		if decided || len(tl) < n {
			return attempt
		}
	}
}

// failedAttempts returns how many inputs of a case in a row ended in a retry
// before the one now failing, from the newest rows of the case's timeline
// (oldest first) and its last platform check: the attempt of the last "retry
// later" entry plus one, or 0 if the case got anywhere since. decided is
// false when every row belongs to the failing run (an older one may decide).
// In detail: walking back from the end, the rows a
// failing input writes before it fails do not break the run: its note
// (timer, reconcile, callback, command), a decision to run a step that does
// not move the case, and the step's transient failure. Anything else does (a
// step that worked or failed for good, a decision that moved the case or
// needed no step), and so does a platform check newer than the last retry
// that no later row accounts for (a quiet successful check writes no row).
func failedAttempts(tl []casestore.TimelineEntry, lastCheck time.Time) (n int, decided bool) {
	var after time.Time // time of the earliest row after the last retry (zero: none)
	for i := len(tl) - 1; i >= 0; i-- {
		e := tl[i]
		if strings.HasPrefix(e.Summary, retryPrefix) {
			if lastCheck.After(e.At) && (after.IsZero() || lastCheck.Before(after)) {
				return 0, true
			}
			var d retryDetail
			if len(e.Detail) > 0 && json.Unmarshal(e.Detail, &d) != nil {
				d.Attempt = 0
			}
			return max(d.Attempt, 0) + 1, true
		}
		if !partOfFailedInput(e) {
			return 0, true
		}
		after = e.At
	}
	return 0, false
}

// partOfFailedInput reports whether a timeline row is one an input that
// then failed may have written (see failedAttempts).
func partOfFailedInput(e casestore.TimelineEntry) bool {
	switch e.Kind {
	case casestore.KindTimer, casestore.KindReconcile, casestore.KindCallback, casestore.KindCommand:
		return true
	case casestore.KindStep:
		return strings.Contains(e.Summary, " failed transiently")
	case casestore.KindDecision:
		var d struct {
			Outcome Outcome  `json:"outcome"`
			From    State    `json:"from"`
			To      State    `json:"to"`
			Step    StepName `json:"step"`
		}
		return json.Unmarshal(e.Detail, &d) == nil && d.Outcome == OutcomeAct && d.Step != "" && d.From == d.To
	}
	return false
}

// renew extends the case's lease every LeaseTTL/3 while held is true.
func (e *Engine) renew(ctx context.Context, caseID int64, held *atomic.Bool) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(e.leaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if !held.Load() {
					continue
				}
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				if err := e.store.RenewLease(rctx, caseID, e.owner, e.leaseTTL); err != nil {
					e.log.Error("renew case lease", "case", caseID, "err", err)
				}
				cancel()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// caseView projects a stored case and its open intent.
func caseView(ctx context.Context, s *casestore.Store, c casestore.Case) (CaseView, error) {
	cv, err := caseViewOf(c)
	if err != nil {
		return cv, err
	}
	it, err := s.OpenIntent(ctx, c.ID)
	switch {
	case err == nil:
		cv.Intent = &Intent{Step: StepName(it.Step), Key: it.IdempotencyKey, Since: it.StartedAt, LastAttempt: it.LastAttemptAt}
	case !errors.Is(err, casestore.ErrNotFound):
		return cv, err
	}
	return cv, nil
}

// caseViewOf projects a case row, without its open intent (Intent nil).
func caseViewOf(c casestore.Case) (CaseView, error) {
	cv := CaseView{ID: c.ID, Platform: Platform(c.Platform), State: State(c.State), Parked: State(c.ParkedState),
		Version: c.Version, RefundID: c.RefundID, AttentionCode: c.AttentionCode,
		AttentionMessage: c.AttentionMessage, WakeAt: c.NextWakeAt}
	if err := decodeDoc(c.Request, &cv.Request); err != nil {
		return cv, fmt.Errorf("case %d request: %w", c.ID, err)
	}
	if err := decodeDoc(c.Plan, &cv.Plan); err != nil {
		return cv, fmt.Errorf("case %d plan: %w", c.ID, err)
	}
	var sh Shipment
	if err := decodeDoc(c.Shipment, &sh); err != nil {
		return cv, fmt.Errorf("case %d shipment: %w", c.ID, err)
	}
	if sh != (Shipment{}) {
		cv.Shipment = &sh
	}
	return cv, nil
}

func decodeDoc(doc json.RawMessage, v any) error {
	if len(doc) == 0 || string(doc) == "{}" {
		return nil
	}
	return json.Unmarshal(doc, v)
}

func timelineKind(k InputKind) casestore.TimelineKind {
	switch k {
	case InputCallback:
		return casestore.KindCallback
	case InputTimer:
		return casestore.KindTimer
	case InputReconcile:
		return casestore.KindReconcile
	case InputStepResult:
		return casestore.KindDecision
	default:
		return casestore.KindCommand
	}
}

// persist writes one decision in one transaction: the case (state, parked,
// wake, attention, documents, platform check), the settled intent, the
// recorded step result, the timeline, the new intent of a side effect and,
// for the last decision of an input, the inbox row. prior reports that the
// side effect's intent already existed.
func (e *Engine) persist(ctx context.Context, c casestore.Case, cv CaseView, in Input, pv *PlatformView,
	dec Decision, ran *stepRecord, inbox *Message, note string, final bool) (prior bool, err error) {
	err = e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		r, err := e.persistTx(ctx, tx, c, cv, in, pv, dec, ran, inbox, note, final, false)
		prior = r.prior
		return err
	})
	return prior, err
}

// persisted is what persistTx wrote.
type persisted struct {
	prior bool           // the side effect's intent already existed
	c     casestore.Case // the case as updated
}

// persistTx is persist inside an open transaction.
//
// It takes the case's lease unless leased says this transaction already did.
// The timeline entries (step, note, decision) go in with one statement.
func (e *Engine) persistTx(ctx context.Context, tx *casestore.Tx, c casestore.Case, cv CaseView, in Input, pv *PlatformView,
	dec Decision, ran *stepRecord, inbox *Message, note string, final, leased bool) (out persisted, err error) {
	var prior bool
	err = func() error {
		if !leased {
			u, err := tx.TakeLease(ctx, c.ID, e.owner, e.leaseTTL)
			if errors.Is(err, casestore.ErrLeased) {
				return &leasedError{until: u, err: err}
			}
			if err != nil {
				return err
			}
		}
		timeline := make([]casestore.TimelineEntry, 0, 3)
		nc := c
		nc.State, nc.ParkedState, nc.NextWakeAt = string(dec.State), string(dec.Parked), dec.WakeAt
		if dec.Outcome == OutcomeAct {
			if dec.Attention != nil {
				nc.AttentionCode, nc.AttentionMessage = dec.Attention.Code, dec.Attention.Message
			} else if dec.State != StateNeedsAttention {
				nc.AttentionCode, nc.AttentionMessage = "", ""
			}
			if dec.RefundID != "" {
				nc.RefundID = dec.RefundID
			}
			for _, d := range []struct {
				v   any
				dst *json.RawMessage
			}{{dec.Request, &nc.Request}, {dec.Plan, &nc.Plan}, {dec.Shipment, &nc.Shipment}} {
				if isNilDoc(d.v) {
					continue
				}
				b, err := json.Marshal(d.v)
				if err != nil {
					return err
				}
				*d.dst = b
			}
		}
		if in.Kind == InputReconcile {
			// Checked now, even when the decision needed no view (a case
			// before submission): the reconciler moves on to staler cases.
			nc.LastPlatformCheckAt = tx.Now()
		}
		if pv != nil {
			nc.LastPlatformCheckAt = tx.Now()
			if pv.Found {
				nc.PlatformStatus = pv.Status(cv.Platform)
			}
		}
		updated, err := tx.UpdateCaseFrom(ctx, c, nc)
		if err != nil {
			return err
		}
		out.c = updated
		if ran != nil {
			entry, err := e.recordStep(ctx, tx, c.ID, ran)
			if err != nil {
				return err
			}
			timeline = append(timeline, entry)
		}
		if r := dec.Resolve; r != nil {
			res := casestore.StepResult{Status: casestore.StepDone, Outcome: jsonObj("note", r.Note)}
			if !r.Done {
				res.Status, res.ErrorCode, res.ErrorMessage = casestore.StepFailed, r.Code, r.Note
			}
			if err := tx.FinishStep(ctx, r.Key, res); err != nil {
				return err
			}
		}
		// Quiet: a timer or reconcile tick that changed nothing is not
		// worth a timeline entry (the check time is still recorded).
		unchanged := dec.Step == nil && dec.Resolve == nil && dec.RefundID == "" && dec.Request == nil &&
			dec.Plan == nil && dec.Shipment == nil && dec.State == cv.State && dec.Parked == cv.Parked &&
			nc.AttentionCode == c.AttentionCode && ran == nil &&
			!(dec.Code == CodeInFlight && !dec.WakeAt.Equal(c.NextWakeAt)) // a wait for an attempt in flight is shown once
		if unchanged && (in.Kind == InputTimer || in.Kind == InputReconcile) {
			note = ""
		}
		if note != "" {
			timeline = append(timeline, casestore.TimelineEntry{CaseID: c.ID, Kind: timelineKind(in.Kind), Summary: note})
		}
		detail := map[string]any{"input": in.Kind, "outcome": dec.Outcome, "code": dec.Code, "from": cv.State, "to": dec.State}
		if pv != nil {
			detail["platformFound"], detail["platformStatus"], detail["platformRefundId"] = pv.Found, pv.Status(cv.Platform), pv.RefundID
		}
		if dec.Step != nil {
			detail["step"], detail["key"] = dec.Step.Name, dec.Step.Key
		}
		db, _ := json.Marshal(detail)
		summary := fmt.Sprintf("%s %s: %s", dec.Outcome, dec.Code, clipN(dec.Reason, 300))
		if !unchanged || (in.Kind != InputTimer && in.Kind != InputReconcile) {
			timeline = append(timeline, casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindDecision,
				Summary: summary, Detail: db})
		}
		if err := tx.AppendTimeline(ctx, timeline...); err != nil {
			return err
		}
		if dec.Outcome == OutcomeAct && dec.Step != nil && dec.Step.Name.SideEffect() {
			a, p, err := tx.BeginStep(ctx, c.ID, string(dec.Step.Name), dec.Step.Key, stepSummary(c, dec.Step))
			if err != nil {
				return err
			}
			// An existing row that is finished, or an intent we did not
			// expect to resume, must not be called again.
			prior = p && !(dec.Step.Resume && a.Status == casestore.StepIntent)
		}
		if inbox != nil {
			if _, err := tx.InboxRecord(ctx, inboxEntry(inbox)); err != nil {
				return err
			}
		}
		if final {
			return tx.DropLease(ctx, c.ID, e.owner)
		}
		return nil
	}()
	out.prior = prior
	return out, err
}

func isNilDoc(v any) bool {
	switch d := v.(type) {
	case *Request:
		return d == nil
	case *Plan:
		return d == nil
	case *Shipment:
		return d == nil
	}
	return true
}

// recordStep records a step that ran: FinishStep for side effects (unless
// the failure left the outcome open: the intent then stays open), RecordStep
// for reads. It returns the step's timeline entry (with the platform's
// requestId) for the caller to append with its others.
func (e *Engine) recordStep(ctx context.Context, tx *casestore.Tx, caseID int64, r *stepRecord) (casestore.TimelineEntry, error) {
	res := casestore.StepResult{Status: casestore.StepDone, Outcome: r.outcome, RequestID: r.requestID}
	if r.err != nil {
		res.Status, res.ErrorCode, res.ErrorMessage = casestore.StepFailed, r.err.Code, r.err.Message
	}
	summary := fmt.Sprintf("%s ok", r.step)
	if r.err != nil {
		summary = fmt.Sprintf("%s failed (%s): %s", r.step, r.err.Code, clipN(r.err.Message, 300))
		if r.err.Transient {
			summary = fmt.Sprintf("%s failed transiently (%s): %s", r.step, r.err.Code, clipN(r.err.Message, 300))
		}
	}
	if r.requestID != "" {
		summary += " requestId=" + r.requestID
	}
	switch {
	case r.key == "":
		if _, err := tx.RecordStep(ctx, caseID, string(r.step), r.request, res); err != nil {
			return casestore.TimelineEntry{}, err
		}
	case r.err != nil && r.err.Transient:
		// Outcome unknown or not applied: the intent stays open and the
		// next attempt asks the platform first, trusting "no effect" only
		// Policy.InFlight after now (the request may still arrive).
		if err := tx.MarkAttempt(ctx, r.key); err != nil {
			return casestore.TimelineEntry{}, err
		}
		summary += "; intent left open"
	default:
		if err := tx.FinishStep(ctx, r.key, res); err != nil {
			return casestore.TimelineEntry{}, err
		}
	}
	d, _ := json.Marshal(map[string]any{"step": r.step, "key": r.key, "requestId": r.requestID, "ms": r.dur.Milliseconds()})
	return casestore.TimelineEntry{CaseID: caseID, Kind: casestore.KindStep, Summary: summary, Detail: d}, nil
}

func jsonObj(k, v string) string {
	b, _ := json.Marshal(map[string]string{k: v})
	return string(b)
}

func clipN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// caseLocks serialises the goroutines of one process on a case.
type caseLocks struct {
	mu sync.Mutex
	m  map[int64]*caseLock
}

type caseLock struct {
	ch   chan struct{}
	refs int
}

func (l *caseLocks) lock(ctx context.Context, id int64) (func(), error) {
	l.mu.Lock()
	cl := l.m[id]
	if cl == nil {
		cl = &caseLock{ch: make(chan struct{}, 1)}
		l.m[id] = cl
	}
	cl.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		cl.refs--
		if cl.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
	select {
	case cl.ch <- struct{}{}:
		return func() { <-cl.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
