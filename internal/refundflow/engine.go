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
	"sync/atomic"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casestore"
)

// ErrPermanent marks input that can never be handled however often it is
// retried (an unknown case, an invalid command): the consumer dead-letters it.
var ErrPermanent = errors.New("permanent failure")

// ErrUnknownCase: the command names a case id the worker does not know
// (case ids exist only once their case does, so it never will).
var ErrUnknownCase = fmt.Errorf("unknown case: %w", ErrPermanent)

// ErrNoCase: the command names a platform order or sub-order that has no
// case yet. The request that opens it may still be on its way (handled by
// another process, or behind in the stream), so the consumer tries again
// for a bounded time before it gives the command up as unknown_case.
var ErrNoCase = errors.New("no case for the command yet")

// Message identifies the stream message an input came from; its ID goes to
// the inbox in the same transaction as the input's final effect.
type Message struct {
	ID      string // Nats-Msg-Id (content hash or command id)
	Stream  string
	Seq     uint64
	Subject string
	// Source (casestore.SourceCommands or SourceCallbacks) and Payload (the
	// body as received) let an input whose case must wait be kept in the
	// store (casestore.DeferredInput) so that its message can be settled at
	// once; without them such an input is handed back as a RetryError.
	Source  string
	Payload []byte
	// Deferred: the message was taken up from the store, where it waited;
	// its row goes in the transaction that applies it.
	Deferred bool
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
	// ClockSkew is how far the platform's clock may be behind ours: a
	// refund the platform says it created before an intent began, less this
	// margin, predates the intent and is not taken as its effect. Default
	// DefaultClockSkew.
	ClockSkew time.Duration
}

// DefaultClockSkew is the default EngineConfig.ClockSkew. INFERRED: the
// platform documents its times to the second in China time and its request
// window as ±600 s, nothing about its clock.
const DefaultClockSkew = 5 * time.Minute

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
	// clockSkew: see EngineConfig.ClockSkew.
	clockSkew time.Duration
}

// NewEngine validates cfg and returns an Engine.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Store == nil || cfg.Client == nil {
		return nil, errors.New("engine: Store and Client are required")
	}
	e := &Engine{store: cfg.Store, client: cfg.Client, decider: Decider{Policy: cfg.Policy}, log: cfg.Logger,
		owner: cfg.Owner, leaseTTL: cfg.LeaseTTL, vouchers: cfg.Vouchers, retry: cfg.RetryDelay, retryMax: cfg.RetryMax,
		onStep: cfg.OnStep, now: cfg.Now, locks: caseLocks{m: map[int64]*caseLock{}}, ahead: !cfg.NoLookahead,
		clockSkew: cfg.ClockSkew}
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
	if e.clockSkew <= 0 {
		e.clockSkew = DefaultClockSkew
	}
	return e, nil
}

// Owner returns the lease owner id of this engine.
func (e *Engine) Owner() string { return e.owner }

// Handled reports what an input did. Whenever the error is nil the
// input's message can be acknowledged: what remains to do is in the store.
type Handled struct {
	CaseID    int64
	State     State
	Outcome   Outcome // the last decision's outcome
	Code      string  // the last decision's code
	Steps     int     // platform steps run
	Duplicate bool    // the message was already applied (inbox)
	Ignored   bool    // nothing to do with it (not a refund message, or no case)
	// Deferred: the input's case must wait first; the input waits in the
	// store until Until, when the worker's timer takes it up again.
	Deferred bool
	// Until is, for Deferred, when the input is taken up again; otherwise,
	// when set, when the case's timer carries on after a step the input led
	// to failed transiently (the input itself is applied).
	Until time.Time
}

// HandleCommand applies an operator command. A request_refund for an order
// without an open case opens one. Errors wrapping ErrPermanent will never
// succeed; ErrNoCase may once the case exists; *RetryError asks for a later
// retry. A command for a case that must wait is kept in the store (Deferred)
// when msg carries its payload.
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
	if h, queued, err := e.queueBehind(ctx, c.ID, msg); queued || err != nil {
		return h, err
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
	c, err := e.store.OpenCase(ctx, string(cmd.Platform), cmd.OrderID, cmd.SubOrderID)
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
		return casestore.Case{}, fmt.Errorf("%s order %s sub-order %q: %w", cmd.Platform, cmd.OrderID, cmd.SubOrderID, ErrNoCase)
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

// open creates the case a request_refund opens and then applies the
// request to it like any command. The case row, its lease and this
// process's lock on it are taken in one transaction before any platform
// call: a command for the same order that arrives while the request is
// being handled (a cancel 50 ms later) finds the case and waits its turn
// instead of finding nothing.
func (e *Engine) open(ctx context.Context, cmd Command, in Input, msg *Message, note string) (Handled, error) {
	req, err := json.Marshal(cmd.Request)
	if err != nil {
		return Handled{}, fmt.Errorf("encode request: %w", err)
	}
	var c casestore.Case
	var unlock func()
	err = e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		created, err := tx.CreateCase(ctx, casestore.NewCase{Platform: string(cmd.Platform), OrderID: cmd.OrderID,
			SubOrderID: cmd.SubOrderID, State: string(StateRequested), Request: req, OpenedBy: cmd.ID,
			NextWakeAt: e.decider.wake(StateRequested, nil, tx.Now()), LeaseOwner: e.owner, LeaseTTL: e.leaseTTL})
		if err != nil {
			return err
		}
		if err := tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: created.ID, Kind: casestore.KindCommand,
			Summary: fmt.Sprintf("case opened by command %s", cmd.ID)}); err != nil {
			return err
		}
		c = created
		// Nobody else knows the new id before the commit: the lock is free.
		unlock, err = e.locks.lock(context.Background(), created.ID)
		return err
	})
	if errors.Is(err, casestore.ErrOpenCaseExists) { // opened just now by another input
		existing, ferr := e.store.CaseOpenedBy(ctx, cmd.ID)
		if ferr != nil {
			existing, ferr = e.store.OpenCase(ctx, string(cmd.Platform), cmd.OrderID, cmd.SubOrderID)
		}
		if ferr != nil {
			return Handled{}, err
		}
		return e.process(ctx, existing.ID, in, "", msg, note, nil)
	}
	if err != nil {
		if unlock != nil {
			unlock()
		}
		return Handled{}, err
	}
	return e.process(ctx, c.ID, in, "", msg, note, unlock)
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
		if (p == PlatformTaobao && subOrderID != "") || (p == Platform1688 && orderID != "") {
			c, err = e.store.OpenCase(ctx, string(p), orderID, subOrderID)
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

// seen reports whether msg was already applied (its inbox row exists). A
// copy taken up from the store is then dropped from there too.
func (e *Engine) seen(ctx context.Context, msg *Message) (bool, error) {
	if msg == nil || msg.ID == "" {
		return false, nil
	}
	dup, err := e.store.InboxSeen(ctx, msg.ID)
	if err != nil || !dup || !msg.Deferred {
		return dup, err
	}
	return true, e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		return tx.DeleteDeferred(ctx, msg.ID)
	})
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
	return casestore.InboxEntry{MsgID: m.ID, Stream: m.Stream, StreamSeq: m.Seq, Subject: m.Subject, Deferred: m.Deferred}
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
		if dec.Outcome == OutcomeAct || dec.Outcome == OutcomeNoOp {
			// A no-op may raise a flag too (waiting for evidence) or end one.
			if dec.Attention != nil {
				nc.AttentionCode, nc.AttentionMessage = dec.Attention.Code, dec.Attention.Message
			} else if dec.State != StateNeedsAttention {
				nc.AttentionCode, nc.AttentionMessage = "", ""
			}
		}
		if final || (ran != nil && (ran.err == nil || !ran.err.Transient)) {
			nc.FailedInputs = 0 // the case got somewhere: the retry backoff starts over
		}
		if dec.Outcome == OutcomeAct {
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
		quiet := unchanged && (in.Kind == InputTimer || in.Kind == InputReconcile)
		if pv != nil && len(pv.Foreign) > 0 && !quiet {
			timeline = append(timeline, casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindNote,
				Summary: fmt.Sprintf("refund %s on the platform predates this case's submission: someone else's, not taken as this case's",
					strings.Join(pv.Foreign, ", "))})
		}
		detail := map[string]any{"input": in.Kind, "outcome": dec.Outcome, "code": dec.Code, "from": cv.State, "to": dec.State}
		if pv != nil {
			detail["platformFound"], detail["platformStatus"], detail["platformRefundId"] = pv.Found, pv.Status(cv.Platform), pv.RefundID
			if len(pv.Foreign) > 0 {
				detail["foreignRefunds"] = pv.Foreign
			}
		}
		if dec.Step != nil {
			detail["step"], detail["key"] = dec.Step.Name, dec.Step.Key
		}
		db, _ := json.Marshal(detail)
		summary := fmt.Sprintf("%s %s: %s", dec.Outcome, dec.Code, clipN(dec.Reason, 300))
		if !quiet {
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
	case r.err != nil && (!r.err.NotApplied || r.resume):
		// Outcome unknown (of this attempt, or of an earlier one under the
		// same key when this one was refused): the intent stays open and the
		// next attempt asks the platform first, trusting "no effect" only
		// Policy.InFlight after now (the request may still arrive).
		if err := tx.MarkAttempt(ctx, r.key); err != nil {
			return casestore.TimelineEntry{}, err
		}
		if r.err.NotApplied {
			summary += "; refused, but an earlier attempt may have taken effect: intent left open"
		} else {
			summary += "; outcome unknown: intent left open"
		}
	case r.err != nil:
		// The platform certainly did not apply it: the intent is closed,
		// and a later attempt goes out under a new key without asking first.
		if err := tx.FinishStep(ctx, r.key, res); err != nil {
			return casestore.TimelineEntry{}, err
		}
		summary += "; not applied"
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
