package refundflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

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
	// KeptSince, for a message taken up from the store, is when it was
	// first kept there: past Policy.PlatformAwayLimit, failures while the
	// platform pauses count towards its dead letter again (keepInput).
	KeptSince time.Time
	// ReceivedAt is when the receiver took the callback in (its
	// Cb-Received header); zero when unknown (a command, a deferred input).
	ReceivedAt time.Time
	// Lag is set by the engine when the transaction that applied the
	// callback commits: the time from ReceivedAt to that commit. A refund
	// callback is applied when it is recorded on its case, before it is
	// verified (recordCallback); an order event with its order's facts.
	// About the same figure (to the transaction's own clock, inside it) is
	// on the callback's timeline entry (lagMs); the worker's
	// refundhub_worker_callback_lag_seconds observes it. Zero when
	// ReceivedAt is, or when nothing was committed for the callback but its
	// inbox row (a duplicate, a callback no case needs).
	Lag time.Duration
	// Recorded, when set, is called once a refund callback is recorded on
	// its case, before its verification (recordCallback): the worker
	// moves the message to a verification slot then.
	Recorded func()
	// Verified is set by the engine when the decision the callback led to,
	// made on the platform's view read after it came, commits: the time
	// from ReceivedAt to that commit (refundhub_worker_callback_verify_seconds).
	// It includes the platform read, so it is never shorter than one.
	// Zero when ReceivedAt is, or when no such decision was committed in
	// this call (the case was busy or the read failed: the callback waits).
	Verified time.Duration
}

// applied sets m.Lag for a callback applied at at (see Message.Lag) and
// returns it; 0 when the receive time is unknown.
func (m *Message) applied(at time.Time) time.Duration {
	if m == nil || m.ReceivedAt.IsZero() {
		return 0
	}
	m.Lag = max(at.Sub(m.ReceivedAt), 0)
	return m.Lag
}

// verified sets m.Verified (see there) at at, once.
func (m *Message) verified(at time.Time) {
	if m == nil || m.ReceivedAt.IsZero() || m.Verified != 0 {
		return
	}
	m.Verified = max(at.Sub(m.ReceivedAt), time.Nanosecond)
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
	// MessagesInterval is how often at most a Taobao case's refund messages
	// (the seller conversation) are read: when the case wakes or a callback
	// arrives and its refund is read, if the last read is older. Default
	// DefaultMessagesInterval; negative: never.
	MessagesInterval time.Duration
	// OnSellerMessages, when set, observes new seller messages (a metric).
	OnSellerMessages func(p Platform, n int)
	// Tracer, when set, traces each input: spans for the callback's record,
	// an inbox check where one is a read of its own (a copy taken up from
	// the store, a command for a case that exists), each decision (with the
	// platform reads it needed), each commit and each step, children of the
	// span in ctx (the worker's span for the message). Nil: no spans.
	Tracer trace.Tracer
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

// DefaultMessagesInterval is the default EngineConfig.MessagesInterval.
const DefaultMessagesInterval = 5 * time.Minute

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
	// leaseWait bounds an input's wait for another process's lease or
	// for the last-chance turn (the constant leaseWait; tests shorten or
	// lengthen it to put two waits in a known order).
	leaseWait time.Duration
	vouchers  VoucherSource
	retry     time.Duration
	retryMax  time.Duration
	onStep    StepObserver
	now       func() time.Time
	locks     caseLocks
	lastTry   chan struct{} // one case at a time on its last chance (see lastChance)
	ahead     bool          // lookahead on (EngineConfig.NoLookahead unset)
	// verdictDue: how long a command's read run ahead may hold the commit
	// of its verdict (lookaheadForVerdict).
	verdictDue time.Duration
	// clockSkew: see EngineConfig.ClockSkew.
	clockSkew time.Duration
	// messagesEvery and onSellerMessages: see EngineConfig.
	messagesEvery    time.Duration
	onSellerMessages func(p Platform, n int)
	tracer           trace.Tracer // a no-op tracer when EngineConfig.Tracer is nil
}

// NewEngine validates cfg and returns an Engine.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Store == nil || cfg.Client == nil {
		return nil, errors.New("engine: Store and Client are required")
	}
	e := &Engine{store: cfg.Store, client: cfg.Client, decider: Decider{Policy: cfg.Policy}, log: cfg.Logger,
		owner: cfg.Owner, leaseTTL: cfg.LeaseTTL, leaseWait: leaseWait, vouchers: cfg.Vouchers, retry: cfg.RetryDelay, retryMax: cfg.RetryMax,
		onStep: cfg.OnStep, now: cfg.Now, locks: caseLocks{m: map[int64]*caseLock{}}, lastTry: make(chan struct{}, 1), ahead: !cfg.NoLookahead, verdictDue: verdictDue,
		clockSkew: cfg.ClockSkew, messagesEvery: cfg.MessagesInterval, onSellerMessages: cfg.OnSellerMessages}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.tracer = cfg.Tracer; e.tracer == nil {
		e.tracer = noop.NewTracerProvider().Tracer("")
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
	if e.messagesEvery == 0 {
		e.messagesEvery = DefaultMessagesInterval
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
	// A copy applied already is dropped at once, before its case is
	// looked for and locked (casework has looked for the commands issued
	// before it by then, and may have applied them). That it is not
	// applied yet holds only until then: another process may apply it
	// meanwhile (casework's earlier.go applies commands ahead of later
	// ones), so it is looked up again on its case as read under the
	// case's lock (run.inboxCheck). A new refund request (most commands)
	// is looked up by the transaction that opens its case, not by a read
	// of its own first (a round trip on PostgreSQL).
	opens := cmd.Kind == InputRequestRefund && cmd.CaseID == 0 && (msg == nil || !msg.Deferred)
	if !opens {
		if dup, err := e.seen(ctx, msg); err != nil || dup {
			return Handled{Duplicate: dup}, err
		}
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
	if opens && err == nil { // a request on the order's open case
		if dup, err := e.seen(ctx, msg); err != nil || dup {
			return Handled{Duplicate: dup}, err
		}
	}
	if err != nil {
		return Handled{}, err
	}
	return e.process(ctx, job{caseID: c.ID, first: in, msg: msg, note: note, behindKept: true})
}

// CommandCase returns the id of the case cmd concerns, found as applying
// it finds it (0: none yet, or the store's error): what an operator told
// the worker failed on cmd must look at (casework's dead letters).
func (e *Engine) CommandCase(ctx context.Context, cmd Command) int64 {
	c, err := e.commandCase(ctx, cmd)
	if err != nil {
		return 0
	}
	return c.ID
}

// CommandKeys returns every OrderKey a command for cmd's case can carry:
// its own, and, when it names a case that is there, the case's other name
// (by id for one naming the order, by order for one naming the id). A
// request_refund naming no case id is for the order's open case if it has
// one (it is decided on that case), else for a new one, which no command
// issued before it can name by id. The worker looks up the commands issued
// before cmd under each (casework's earlier.go). The store's error is
// returned (the keys would be incomplete); a case not found, or a command
// that can never apply, has its own key only.
func (e *Engine) CommandKeys(ctx context.Context, cmd Command) ([]string, error) {
	own := orderKey(cmd.Platform, cmd.OrderID, cmd.SubOrderID, cmd.CaseID)
	if own == "" {
		return nil, nil // names no case: nothing to look up
	}
	var c casestore.Case
	var err error
	if cmd.Kind == InputRequestRefund && cmd.CaseID == 0 {
		c, err = e.store.OpenCase(ctx, cmd.Platform, cmd.OrderID, cmd.SubOrderID)
	} else {
		c, err = e.commandCase(ctx, cmd)
	}
	switch {
	case errors.Is(err, casestore.ErrNotFound), errors.Is(err, ErrNoCase), errors.Is(err, ErrUnknownCase),
		errors.Is(err, ErrPermanent), errors.Is(err, errNewCase):
		return []string{own}, nil
	case err != nil:
		return nil, err
	}
	keys := []string{own}
	for _, k := range []string{orderKey(c.Platform, "", "", c.ID), orderKey(c.Platform, c.OrderID, c.SubOrderID, 0)} {
		if k != "" && k != own {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func (e *Engine) commandCase(ctx context.Context, cmd Command) (casestore.Case, error) {
	if cmd.CaseID > 0 {
		c, err := e.store.GetCase(ctx, cmd.CaseID)
		if errors.Is(err, casestore.ErrNotFound) || (err == nil && c.Platform != cmd.Platform) {
			return casestore.Case{}, fmt.Errorf("case %d of %s: %w", cmd.CaseID, cmd.Platform, ErrUnknownCase)
		}
		return c, err
	}
	if cmd.Kind != InputRequestRefund {
		c, err := e.store.OpenCase(ctx, cmd.Platform, cmd.OrderID, cmd.SubOrderID)
		if err == nil || !errors.Is(err, casestore.ErrNotFound) {
			return c, err
		}
		order, sub := cmd.CaseKeys()
		last, err := e.store.LatestCase(ctx, cmd.Platform, order, sub)
		switch {
		case err == nil:
			return last, nil // finished: the decision refuses the command
		case !errors.Is(err, casestore.ErrNotFound):
			return casestore.Case{}, err // the store's failure (an outage, a cancelled read), not a missing case
		}
		return casestore.Case{}, fmt.Errorf("%s: %w", cmd.CaseName(), ErrNoCase)
	}
	open, opened, err := e.store.RequestCases(ctx, cmd.Platform, cmd.OrderID, cmd.SubOrderID, cmd.ID)
	switch {
	case err != nil:
		return casestore.Case{}, err
	case open != nil:
		return *open, nil
	case opened != nil:
		// A redelivery of the command that opened a case that has finished
		// since: never a second case (it would submit a second refund).
		return *opened, nil
	}
	if cmd.Platform == PlatformTaobao && cmd.OrderID == "" {
		// The Taobao list (the only lookup by order) needs the order id to
		// tell whether a submit that may have been lost took effect.
		return casestore.Case{}, fmt.Errorf("request_refund for Taobao needs orderId as well as subOrderId: %w", ErrPermanent)
	}
	return casestore.Case{}, errNewCase
}

// linkPrevious names, on both timelines, the earlier case of the same order
// (and Taobao sub-order) that a new case follows: after a refund the
// platform closed (a refusal on 1688, where nothing can be modified), the
// new request is the next round of the same claim.
func linkPrevious(ctx context.Context, tx *casestore.Tx, c casestore.Case) error {
	prev, err := tx.PreviousCase(ctx, c)
	if errors.Is(err, casestore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	how := prev.State
	if prev.AttentionCode != "" {
		how += " (" + prev.AttentionCode + ")"
	}
	detail := func(k string, id int64) []byte { b, _ := json.Marshal(map[string]int64{k: id}); return b }
	return tx.AppendTimeline(ctx,
		casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindNote, Summary: fmt.Sprintf("follows case %d (%s)", prev.ID, how),
			Detail: detail("follows", prev.ID)},
		casestore.TimelineEntry{CaseID: prev.ID, Kind: casestore.KindNote, Summary: fmt.Sprintf("followed by case %d", c.ID),
			Detail: detail("followedBy", c.ID)})
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
		if msg != nil && msg.ID != "" {
			// HandleCommand left the inbox to this transaction: a
			// redelivered request that was applied without a case (it
			// was refused) is a duplicate (casestore.ErrInInbox). On
			// PostgreSQL the check goes with CreateCase's round trip.
			if err := tx.InboxAbsent(ctx, msg.ID); err != nil {
				return err
			}
		}
		created, err := tx.CreateCase(ctx, casestore.NewCase{Platform: cmd.Platform, OrderID: cmd.OrderID,
			SubOrderID: cmd.SubOrderID, State: string(StateRequested), Request: req, OpenedBy: cmd.ID,
			NextWakeAt: e.decider.wake(StateRequested, nil, tx.Now()), LeaseOwner: e.owner, LeaseTTL: e.leaseTTL})
		if err != nil {
			return err
		}
		if err := tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: created.ID, Kind: casestore.KindCommand,
			Summary: fmt.Sprintf("case opened by command %s", cmd.ID)}); err != nil {
			return err
		}
		if err := linkPrevious(ctx, tx, created); err != nil {
			return err
		}
		c = created
		// Nobody else knows the new id before the commit: the lock is free.
		unlock, err = e.locks.lock(context.Background(), created.ID)
		return err
	})
	if errors.Is(err, casestore.ErrInInbox) {
		return e.duplicate(ctx, Handled{}, msg)
	}
	if errors.Is(err, casestore.ErrOpenCaseExists) { // opened just now by another input
		existing, ferr := e.store.CaseOpenedBy(ctx, cmd.ID)
		if ferr != nil {
			existing, ferr = e.store.OpenCase(ctx, cmd.Platform, cmd.OrderID, cmd.SubOrderID)
		}
		if ferr != nil {
			return Handled{}, err
		}
		return e.process(ctx, job{caseID: existing.ID, first: in, msg: msg, note: note})
	}
	if err != nil {
		if unlock != nil {
			unlock()
		}
		return Handled{}, err
	}
	return e.process(ctx, job{caseID: c.ID, first: in, msg: msg, note: note, locked: unlock, created: &c})
}

// HandleCallback applies a platform callback (a hint: the case is verified
// against the platform before anything happens). Callbacks that are not about
// a refund, or about a refund no case knows, are recorded and ignored.
func (e *Engine) HandleCallback(ctx context.Context, ev callback.Event, msg *Message) (Handled, error) {
	// A copy already applied is a duplicate. Only a copy taken up from
	// the store is looked up in the inbox first; any other is found out
	// by the write that would record it (the order event's, the ignored
	// callback's inbox row, KeepCallback: casestore.ErrInInbox), which
	// saves every callback a read (a round trip on PostgreSQL).
	if msg != nil && msg.Deferred {
		if dup, err := e.seen(ctx, msg); err != nil || dup {
			return Handled{Duplicate: dup}, err
		}
	}
	if !ev.Parked() && (ev.Kind == callback.KindOrderStatus || ev.Kind == callback.KindPriceModify) && ev.Order != nil {
		return e.handleOrderEvent(ctx, ev, msg)
	}
	if ev.Parked() || ev.Kind != callback.KindRefund || ev.Refund == nil {
		return e.ignore(ctx, msg)
	}
	p := PlatformTaobao
	if ev.Platform == callback.Platform1688 {
		p = Platform1688
	}
	refundID, orderID, subOrderID := ev.Refund.RefundID.String(), ev.Refund.OrderID.String(), ev.Refund.SubOrderID.String()
	note := fmt.Sprintf("callback %s refund %s", ev.Type, refundID)
	fast := refundID != "" && canDefer(msg) && !msg.Deferred
	if fast {
		if h, done, err := e.recordForRefund(ctx, p, refundID, msg, note); done {
			return h, err
		}
	}
	c, err := e.callbackCase(ctx, p, refundID, orderID, subOrderID, !fast)
	if errors.Is(err, casestore.ErrNotFound) {
		return e.ignore(ctx, msg)
	}
	if err != nil {
		return Handled{}, err
	}
	hint := ""
	if c.RefundID == "" && refundID != "" {
		owners, err := e.store.RefundOwners(ctx, p, []string{refundID})
		if err != nil {
			return Handled{}, err
		}
		if _, taken := owners[refundID]; !taken {
			hint = refundID
		}
	}
	fresh := false
	switch {
	case msg != nil && msg.Deferred:
		note = "" // recorded when it came (recordCallback)
	case canDefer(msg):
		caseID := c.ID
		_, fresh, err = e.recordCallback(ctx, msg, note, func(ctx context.Context, d casestore.DeferredInput, te casestore.TimelineEntry) (casestore.Case, bool, error) {
			d.CaseID, te.CaseID = caseID, caseID
			fresh, err := e.store.KeepCallback(ctx, d, te)
			return casestore.Case{ID: caseID}, fresh, err
		})
		if errors.Is(err, casestore.ErrInInbox) {
			return Handled{CaseID: c.ID, Duplicate: true}, nil
		}
		if err != nil {
			return Handled{}, err
		}
		note = ""
	default: // nothing to keep: looked up as it is
		if dup, err := e.seen(ctx, msg); err != nil || dup {
			return Handled{Duplicate: dup}, err
		}
	}
	return e.process(ctx, job{caseID: c.ID, first: Input{Kind: InputCallback, Now: e.now()}, hint: hint, msg: msg, note: note,
		keptNow: fresh})
}

// recordForRefund records msg, a callback about refund refundID, for the
// case that recorded that refund, found in the same store call
// (casestore's KeepRefundCallback), and goes on to verify it there: the
// usual callback, once a case knows its refund. done is false when no case
// has the refund yet (a callback that overtook its submission's answer, or
// about someone else's refund): HandleCallback then looks by the order.
func (e *Engine) recordForRefund(ctx context.Context, p Platform, refundID string, msg *Message, note string) (h Handled, done bool, err error) {
	c, fresh, err := e.recordCallback(ctx, msg, note, func(ctx context.Context, d casestore.DeferredInput, te casestore.TimelineEntry) (casestore.Case, bool, error) {
		return e.store.KeepRefundCallback(ctx, p, refundID, d, te)
	})
	switch {
	case errors.Is(err, casestore.ErrNotFound):
		return Handled{}, false, nil
	case errors.Is(err, casestore.ErrInInbox):
		return Handled{CaseID: c.ID, Duplicate: true}, true, nil
	case err != nil:
		return Handled{}, true, err
	}
	h, err = e.process(ctx, job{caseID: c.ID, first: Input{Kind: InputCallback, Now: e.now()}, msg: msg, keptNow: fresh})
	return h, true, err
}

// callbackCase is the case a refund callback is about: the one that
// recorded its refund (byRefund: not looked up already), else the open
// case of its Taobao sub-order or 1688 order; casestore.ErrNotFound when
// there is none.
func (e *Engine) callbackCase(ctx context.Context, p Platform, refundID, orderID, subOrderID string, byRefund bool) (casestore.Case, error) {
	if refundID != "" && byRefund {
		c, err := e.store.CaseByRefundID(ctx, p, refundID)
		if !errors.Is(err, casestore.ErrNotFound) {
			return c, err
		}
	}
	if (p == PlatformTaobao && subOrderID != "") || (p == Platform1688 && orderID != "") {
		return e.store.OpenCase(ctx, p, orderID, subOrderID)
	}
	return casestore.Case{}, casestore.ErrNotFound
}

// recordCallback records a refund callback on its case before it is
// verified, committed at once without a lease and without touching the
// case row (casestore's KeepCallback, or KeepRefundCallback, which finds
// the case by its refund too: keep is the one to call, given the kept
// message and its timeline entry without their case, and a context that
// the caller's giving up does not cancel): its timeline entry
// (with its lag) and the message itself, kept in deferred_inputs. From that
// commit on the callback is applied as far as the hint it is goes: an
// operator sees it at once, even while another input holds the case or the
// platform answers slowly, and the lag metric stops. The verification (a
// platform read, then the decision) follows in the same call once the case
// is free; its last decision writes the inbox row and deletes the kept one
// (msg.Deferred is set for that). Should this process die first, the
// message's redelivery verifies it, and failing that the worker's timer
// takes the kept row up after LeaseTTL: the time another process would
// wait for this one's lease anyway, and far longer than a verification
// takes, so the timer does not verify it a second time meanwhile.
//
// A copy already kept (a redelivery) changes nothing and is verified
// again: its earlier verification may have died with its process.
//
// c is the case it is recorded on; fresh: no copy of the message was kept
// before this one. casestore.ErrNotFound (from KeepRefundCallback: no case
// has the refund) and casestore.ErrInInbox (a message applied already) are
// outcomes, not failures.
func (e *Engine) recordCallback(ctx context.Context, msg *Message, note string,
	keep func(context.Context, casestore.DeferredInput, casestore.TimelineEntry) (casestore.Case, bool, error)) (c casestore.Case, fresh bool, err error) {
	ctx, span := e.startSpan(ctx, "record callback", 0)
	defer func() {
		span.SetAttributes(attribute.Int64("case", c.ID))
		dup := errors.Is(err, casestore.ErrInInbox)
		span.SetAttributes(attribute.Bool("duplicate", dup))
		if dup || errors.Is(err, casestore.ErrNotFound) {
			endSpan(span, nil)
			return
		}
		endSpan(span, err)
	}()
	now := time.Now()
	c, fresh, err = keep(context.WithoutCancel(ctx), deferredInput(0, msg, now.Add(e.leaseTTL), "verifying: the callback is being checked against the platform"),
		casestore.TimelineEntry{At: now, Kind: casestore.KindCallback, Summary: note, Detail: callbackDetail(msg, now)})
	if err != nil {
		return c, false, fmt.Errorf("record callback %s: %w", msg.ID, err)
	}
	msg.Deferred = true
	msg.Lag = 0 // a copy kept already was applied (and measured) before
	if fresh {
		msg.applied(time.Now()) // just after the commit
	}
	if msg.Recorded != nil {
		msg.Recorded()
	}
	return c, fresh, nil
}

// Wake applies a timer or reconcile input (kind InputTimer or InputReconcile).
//
// It takes the case's lease before the platform read a wake makes (after
// one read of the case, for its last chance: see lastChance), so that a
// process that ends during that read leaves the lease behind for the next
// one to count (Policy.EndedLimit). Without it, a case whose own check
// ends the process would be woken after every restart, for ever,
// uncounted: a wake has no message whose deliveries are counted. A case
// another process holds is left to it: a *RetryError wrapping
// casestore.ErrLeased, for when that lease ends (its holder's decision
// moves the case's timer on meanwhile).
func (e *Engine) Wake(ctx context.Context, caseID int64, kind InputKind) (Handled, error) {
	h := Handled{CaseID: caseID}
	unlock, err := e.lockCase(ctx, caseID, true)
	if err != nil {
		return h, err
	}
	var alone func()
	handed := false
	defer func() { // also on a panic, which the worker recovers from
		if !handed {
			unlock()
			if alone != nil {
				alone()
			}
		}
	}()
	if e.lastChances() {
		// Before the lease: a case waiting for its turn must not hold it.
		c, err := e.store.GetCase(ctx, caseID)
		if err == nil {
			alone, _, err = e.lastChance(ctx, c, kind, 0)
		}
		if err != nil {
			return h, err
		}
	}
	until, err := e.store.ClaimLease(ctx, caseID, e.owner, e.leaseTTL)
	if errors.Is(err, casestore.ErrLeased) {
		return h, &RetryError{After: max(time.Until(until), 100*time.Millisecond), Err: err}
	}
	if err != nil {
		return h, err
	}
	handed = true
	return e.process(ctx, job{caseID: caseID, first: Input{Kind: kind, Now: e.now()}, note: string(kind), locked: unlock, alone: alone})
}

// lastChances reports whether some cases run their last chance alone
// (lastChance): with Policy.EndedLimit 2 or more. At 1 a single end of the
// process holds every case it had in flight, and nothing can tell them
// apart.
func (e *Engine) lastChances() bool { return e.decider.Policy.EndedLimit >= 2 }

// lastChance takes, when case c is on its last chance (one worker process
// end away from being held, Policy.EndedLimit), this process's one turn
// for such cases, and returns what ends it (nil for any other case). A
// process that ends takes every case it holds with it, and each is
// counted: in a loop of restarts the cases in flight beside the one that
// ends the process would reach the limit with it. Run alone for their last
// chance, the one that ends the process is held on its own, and the others
// finish and start their count again (those further from the limit still
// run beside it, and are counted, but not held).
//
// c is the case as read, before this process takes its lease: an expired
// lease another process left on it counts already (takenOver), as the
// decision counts it. A case the decision of an input of kind holds, or
// has held already, makes no platform call and needs no turn. It waits up
// to wait for the turn (0: not at all; blocked says whether it did), and
// then returns a *RetryError.
func (e *Engine) lastChance(ctx context.Context, c casestore.Case, kind InputKind, wait time.Duration) (release func(), blocked bool, err error) {
	limit := e.decider.Policy.EndedLimit
	n := c.LeasesAbandoned
	if e.takenOver(c) {
		n++
	}
	held := c.State == string(StateNeedsAttention) && c.AttentionCode == CodeWorkerEnded
	holds := n >= limit && kind != InputResolve && kind != InputStepResult
	if !e.lastChances() || n < limit-1 || held || holds {
		return nil, false, nil
	}
	taken := func(err error) error {
		return &RetryError{After: leaseRecheck, Err: fmt.Errorf("case %d waits for its last chance alone: %w", c.ID, err)}
	}
	select {
	case e.lastTry <- struct{}{}:
		return func() { <-e.lastTry }, false, nil
	default:
	}
	if wait <= 0 {
		return nil, false, taken(errors.New("another case has the turn"))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case e.lastTry <- struct{}{}:
		return func() { <-e.lastTry }, true, nil
	case <-t.C:
		return nil, true, taken(fmt.Errorf("another case had the turn for %s", wait))
	case <-ctx.Done():
		return nil, true, taken(ctx.Err())
	}
}

// takenOver reports whether taking case c's lease, as read, takes over an
// expired lease another process left: the store counts that end when it
// does (Case.LeasesAbandoned), so what decides before the takeover counts
// it too.
func (e *Engine) takenOver(c casestore.Case) bool {
	return c.LeaseOwner != "" && c.LeaseOwner != e.owner && !c.LeaseUntil.After(e.now())
}

// seen reports whether msg was already applied (its inbox row exists). A
// copy taken up from the store is then dropped from there too.
func (e *Engine) seen(ctx context.Context, msg *Message) (_ bool, err error) {
	if msg == nil || msg.ID == "" {
		return false, nil
	}
	ctx, span := e.tracer.Start(ctx, "inbox check", trace.WithAttributes(attribute.String("msg_id", msg.ID)))
	defer func() { endSpan(span, err) }()
	dup, err := e.store.InboxSeen(ctx, msg.ID)
	span.SetAttributes(attribute.Bool("duplicate", dup))
	if err != nil || !dup || !msg.Deferred {
		return dup, err
	}
	return true, e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		return tx.DeleteDeferred(ctx, msg.ID)
	})
}

// ignore ends a callback that concerns no case, recording it in the
// inbox: a duplicate if it was there already.
func (e *Engine) ignore(ctx context.Context, msg *Message) (Handled, error) {
	if msg == nil || msg.ID == "" {
		return Handled{Ignored: true}, nil
	}
	fresh, err := e.store.InboxRecord(context.WithoutCancel(ctx), inboxEntry(msg))
	if err != nil {
		return Handled{}, err
	}
	return Handled{Ignored: fresh, Duplicate: !fresh}, nil
}

// recordInbox records msg, if any, as applied.
func (e *Engine) recordInbox(ctx context.Context, msg *Message) error {
	if msg == nil || msg.ID == "" {
		return nil
	}
	_, err := e.store.InboxRecord(context.WithoutCancel(ctx), inboxEntry(msg))
	return err
}

func inboxEntry(m *Message) casestore.InboxEntry {
	return casestore.InboxEntry{MsgID: m.ID, Stream: m.Stream, StreamSeq: m.Seq, Subject: m.Subject, Deferred: m.Deferred}
}
