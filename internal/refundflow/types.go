package refundflow

import (
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// Plan holds what was chosen from the platform's forms, persisted with the
// case (cases.plan) so a resumed step sends exactly what was decided.
type Plan struct {
	ReasonID    int64    `json:"reasonId,omitempty"`
	ReasonDesc  string   `json:"reasonDesc,omitempty"`
	NeedVoucher bool     `json:"needVoucher,omitempty"`
	Fee         int64    `json:"fee,omitempty"`      // fen
	Carriage    int64    `json:"carriage,omitempty"` // fen, 1688
	Vouchers    []string `json:"vouchers,omitempty"` // uploaded references (1688)
	// PriorListed: PriorRefunds holds every refund the platform listed for
	// the Taobao sub-order when the form was read, before the first submit.
	// Only a refund not among them can be this case's (a refund that
	// predates the submission is someone else's: the buyer on the
	// platform's web page, a case lost with a restored backup).
	PriorListed  bool     `json:"priorListed,omitempty"`
	PriorRefunds []string `json:"priorRefunds,omitempty"`
	// PriorOpen are those of PriorRefunds that were not finished: what a
	// refusal for an open refund (AttnRefundExists) names.
	PriorOpen []string `json:"priorOpen,omitempty"`
	// RefusedForOpen: the platform refused the case's submission for an
	// open refund on the sub-order (AttnRefundExists); the form read again
	// on a retry sends nothing while one is listed open.
	RefusedForOpen bool `json:"refusedForOpen,omitempty"`
	// Adopted is the refund the case follows because the operator adopted
	// it (ResolveAdopt): one it did not file (AttnRefundExists), or, with
	// AdoptedUnconfirmed, one the operator took for its submission's, which
	// the platform never confirmed. What the refund asks for is the
	// platform's, not the case's request (so it is not modified from here:
	// onModify).
	Adopted            string `json:"adopted,omitempty"`
	AdoptedUnconfirmed bool   `json:"adoptedUnconfirmed,omitempty"`
	// Filed is the request a modification was made from, kept when it
	// starts (onModify): the one the platform holds while the modification
	// is under way, or stopped, or replaced, before it reached the platform
	// (its form refused it, or the platform refused it whole), so that the
	// next one applies to it (modifyBase). Read only then: once a
	// modification took effect, the case's request is the filed one.
	Filed *Request `json:"filed,omitempty"`
	// CallbackRefund is the first refund a callback named for the case's
	// Taobao sub-order that the list of the case's order did not show
	// (PlatformView.CallbackRefund): every later look without a refund id
	// asks the platform about it as well (hintedTaobao), since the
	// callback that named it does not come with every look, and the list
	// alone would read as "no refund".
	CallbackRefund string `json:"callbackRefund,omitempty"`
	// OrderElsewhere, once that refund showed it, keeps the case from
	// taking the list of its order for proof of anything.
	OrderElsewhere *OrderElsewhere `json:"orderElsewhere,omitempty"`
}

// restart is the plan of a case that reads its form again from the start
// (a new request in place of the stopped one, a change of the order): what
// was chosen from the old form goes, and what the platform said of the
// sub-order stays: a refusal for an open refund, so that nothing is sent
// while one is listed open (onForm).
func (p Plan) restart() *Plan { return &Plan{RefusedForOpen: p.RefusedForOpen} }

// Intent is a side-effecting step recorded as an intent with no result yet.
type Intent struct {
	Step  StepName
	Key   string
	Since time.Time // when the intent was recorded (step_attempts.started_at)
	// LastAttempt is when an attempt under Key last began or last ended
	// without a result (step_attempts.last_attempt_at): the newest moment a
	// call of it was on its way to the platform. Zero: Since.
	LastAttempt time.Time
	// Sends is how many times an attempt under Key was begun
	// (step_attempts.begins): the first, then each resend. It is counted
	// when the attempt is recorded, before its call, so one cut off by a
	// crash before the call counts too (its backoff errs towards waiting
	// longer; only Refusals stop a case).
	// 0: not known (counted as 1).
	Sends int
	// LastError is what the newest attempt that ended without a result got
	// (step_attempts.error_code and error_message): empty when none is
	// recorded.
	LastError string
	// Refusals is how many resends in a row, up to the newest, the
	// platform refused (StepError.Refused; step_attempts.refusals).
	Refusals int
}

// resends is how many times the intent's step was sent again under its key.
func (it Intent) resends() int { return max(it.Sends-1, 0) }

// lastAttempt is LastAttempt, or Since when it is not known.
func (it Intent) lastAttempt() time.Time {
	if it.LastAttempt.IsZero() {
		return it.Since
	}
	return it.LastAttempt
}

// CaseView is what Decide knows about a case (a projection of casestore.Case).
type CaseView struct {
	ID       int64
	Platform Platform
	State    State
	Parked   State // the state a needs_attention case stopped at
	Version  int64
	RefundID string
	Request  Request
	Plan     Plan
	Shipment *Shipment // nil until reported
	// AttentionCode and AttentionMessage are the current needs_attention
	// reason, if any.
	AttentionCode    string
	AttentionMessage string
	// WakeAt is the case's current timer (zero: none).
	WakeAt time.Time
	// Intent is the open intent, if a side effect may have reached the
	// platform without its result being recorded.
	Intent *Intent
	// OrderEvents are the events of the case's order (status changes, price
	// corrections) the case has not decided on yet, oldest first.
	OrderEvents []OrderEvent
	// LeasesAbandoned counts the worker processes in a row that ended
	// while they held the case (Policy.EndedLimit).
	LeasesAbandoned int
	// Held is, for a case held (CodeWorkerEnded), the attention it had
	// before: a parked case's reason or a flag (nil: none). The
	// operator's retry gives it back (Decider.release).
	Held *Attention
}

// OrderEvent is an order message kept as a fact about the order
// (casestore.OrderEvent), as Decide reads it.
type OrderEvent struct {
	ID          int64 // increasing: Decision.OrderEventsSeen acknowledges up to one
	Type        string
	Kind        platform.Kind // order_status or price_modify
	Status      string        // the order's status as the platform wrote it
	Ended       bool          // the profile says Status ends the order
	CloseReason string
	TotalAmount int64 // fen
}

// PlatformView is the authoritative state fetched from the platform API (the
// Taobao query or list, the 1688 refund info). Decide takes *PlatformView:
// nil means not fetched.
type PlatformView struct {
	// Found: the platform has a refund for this case. The fetcher must set
	// Found false only when it is sure none exists.
	Found bool
	// Inconclusive: the fetcher could not tell whether a refund exists (e.g.
	// a 1688 order with no known refund id: there is no lookup by order).
	Inconclusive bool
	RefundID     string
	// Phase is what the platform's status means (the profile maps Taobao's
	// and 1688's names onto the same phases); "" for a status the profile
	// does not know, which Decide parks as unknown_status.
	Phase platform.Phase
	// StatusText is the status as the platform names it, for the timeline
	// and the operator: the profile's name for a known status, else the raw
	// text the platform sent.
	StatusText string
	// ReturnRequired: the seller wants the goods back (1688 refundGoods).
	// Informational (for the timeline): the status alone drives decisions.
	ReturnRequired bool
	// RefuseReason is the seller's refusal reason, if any.
	RefuseReason string
	// Deadline is the platform's next deadline (Taobao timeoutDate, 1688
	// gmtTimeOut); zero if none.
	Deadline time.Time
	// ReturnWaybill is the return waybill the platform holds, if any.
	ReturnWaybill string
	// Foreign lists refunds the fetcher found for the case's sub-order or
	// order and set aside because they predate the case's submission
	// (someone else's), for the timeline.
	Foreign []string
	// Unattributed lists refunds of the case's Taobao sub-order that no
	// case owns and that cannot be told the case's or someone else's
	// (Inconclusive): the case was opened by a build that did not record
	// the sub-order's refunds before its first submission
	// (Plan.PriorListed). While one is listed the platform never tells,
	// so waiting or retrying cannot settle the intent: only an operator.
	Unattributed []string
	// OrderElsewhere: the platform files the case's Taobao sub-order under
	// another order than the case's (Unattributed then holds the refund
	// that showed it). The list of the case's order cannot show the
	// sub-order's refunds, so it proves neither that a submission took
	// effect nor that it did not. nil otherwise.
	OrderElsewhere *OrderElsewhere
	// CallbackRefund is the refund a callback named (or the plan kept)
	// that made a Taobao list's silence inconclusive (hintedTaobao); the
	// decider keeps it in the plan (Plan.CallbackRefund).
	CallbackRefund string
	// Adopting is, for a view read by the id of a refund an operator asks
	// the case to adopt (ResolveAdopt), what shows whether it may; nil for
	// every other view.
	Adopting *AdoptFacts
	// unread: no platform call made the view (a case that never sent
	// anything has no refund); it tells the platform answers no more
	// than before.
	unread bool
}

// OrderElsewhere is a Taobao sub-order the platform files under another
// order than the one its case was requested with, as a refund on it showed
// (PlatformView, Plan).
type OrderElsewhere struct {
	SubOrderID    string `json:"subOrderId"`
	CaseOrder     string `json:"caseOrder"`     // the order the case was requested with
	PlatformOrder string `json:"platformOrder"` // the order the platform files the sub-order under
	RefundID      string `json:"refundId"`      // the refund on the sub-order that showed it
}

// Status returns the platform status as text, for recording.
func (v PlatformView) Status(Platform) string { return v.StatusText }

// InputKind is what happened.
type InputKind string

// Inputs.
const (
	InputRequestRefund  InputKind = "request_refund"  // operator: Input.Request
	InputReportShipment InputKind = "report_shipment" // operator: Input.Shipment
	InputCancel         InputKind = "cancel"          // operator
	InputSendMessage    InputKind = "send_message"    // operator: Input.Message
	InputResolve        InputKind = "resolve"         // operator: Input.Resolve, a way out of needs_attention
	InputModify         InputKind = "modify_refund"   // operator: Input.Modify, after a Taobao refusal
	InputCallback       InputKind = "callback"        // platform push: a hint only
	InputTimer          InputKind = "timer"           // the case's WakeAt passed
	InputReconcile      InputKind = "reconcile"       // the reconciler's periodic re-check
	InputStepResult     InputKind = "step_result"     // a step just ran: Input.Result
)

// InputKinds lists every input kind.
func InputKinds() []InputKind {
	return []InputKind{InputRequestRefund, InputReportShipment, InputCancel, InputSendMessage, InputResolve, InputModify,
		InputCallback, InputTimer, InputReconcile, InputStepResult}
}

// Input is one event for a case. Now is the current time (Decide reads no clock).
type Input struct {
	Kind InputKind
	Now  time.Time
	// ID is the operator command's id, if the input is a command: a message
	// step's idempotency key derives from it, so a redelivered send_message
	// can never post its message twice.
	ID       string
	Request  *Request
	Shipment *Shipment
	Message  string
	Resolve  *Resolve
	Modify   *Modification
	Result   *StepResult
}

// StepError is a failed step. Transient errors (5xx, timeouts, rate limits,
// retryable codes) are retried; permanent ones (business codes) need attention.
type StepError struct {
	Code    string
	Message string
	// Transient: worth trying again later (5xx, timeouts, rate limits,
	// retryable codes, an outcome left open).
	Transient bool
	// NotApplied: the platform certainly did not apply the call (it never
	// went out whole, or was refused with a verdict: apiclient.NotApplied).
	// A side effect's intent is then closed and the step may run again at
	// once under a new key. A failed side effect without it left its outcome
	// unknown: its intent stays open and is settled by asking the platform
	// first, and the error counts as transient.
	NotApplied bool
	// OpenRefundExists: the platform refused the call because the sub-order
	// (1688: the order) has an open refund already (the profile's
	// duplicate_refund class).
	OpenRefundExists bool
	// Refused: NotApplied with the platform's verdict on the call itself (a
	// business or request error), not a refusal that passes with time (a
	// rate limit, another retryable code). A resend refused so counts
	// towards Policy.ResendLimit; one rate limited, or whose outcome is
	// unknown again (the platform down), only backs off.
	Refused bool
}

// Reason is a refund reason the platform offers.
type Reason struct {
	ID          int64
	Desc        string
	NeedVoucher bool // 1688 needVoucher
	NoCarriage  bool // 1688 noRefundCarriage: freight is not refundable
}

// Form is the rendered Taobao refund form: reasons and fee bounds (fen).
type Form struct {
	Reasons      []Reason
	MinFee       int64
	MaxFee       int64
	DefaultFee   int64 // refundFee, the only value when !CanEditFee
	CanEditFee   bool
	SaleDisabled bool // v2 saleFlag false: after-sale not allowed
	// Existing are the refunds the platform listed for the sub-order when
	// the form was read (Plan.PriorRefunds); ExistingOpen those of them
	// not finished (Plan.PriorOpen).
	Existing     []string
	ExistingOpen []string
}

// StepResult is what a step returned.
type StepResult struct {
	Step StepName
	Key  string     // the idempotency key for side effects
	Err  *StepError // nil: success

	RefundID  string   // submit
	Form      *Form    // render (Taobao)
	Reasons   []Reason // reasons (1688)
	Vouchers  []string // upload_vouchers: uploaded references
	Companies []string // return_render: carrier codes the return may use
	// Status is the refund's status as the step's answer shows it (Taobao
	// cancel: the refund after the cancel), "" when it shows none.
	Status string
}

// Outcome is the kind of a decision.
type Outcome string

// Outcomes.
const (
	// OutcomeAct: persist the decision (state, wake, attention, …) and run
	// Step, if any, after committing its intent.
	OutcomeAct Outcome = "act"
	// OutcomeFetch: read the platform view, then Decide again with the same
	// input and the view. Nothing changes.
	OutcomeFetch Outcome = "fetch"
	// OutcomeNoOp: nothing to do (duplicate, stale or no change); only WakeAt
	// may differ and should be stored.
	OutcomeNoOp Outcome = "noop"
	// OutcomeReject: the input is not allowed in this state; nothing changes.
	OutcomeReject Outcome = "reject"
	// OutcomeRetry: a transient failure or a wait; try the same input again
	// later, not before Decision.RetryAt when that is set.
	OutcomeRetry Outcome = "retry"
)

// Step is a platform call to make, with everything it sends.
type Step struct {
	Name StepName
	// Key is the idempotency key recorded with the intent (side effects only).
	Key string
	// Resume: the intent under Key already exists and the platform confirmed
	// the call did not take effect; send it again under the same key.
	Resume bool

	RefundID string
	// ReturnGoods: return and refund rather than a refund only (render and
	// submit; the profile gives Taobao's refundType and 1688's disputeRequest).
	ReturnGoods   bool
	GoodsStatus   string // as in Request (the operator's word)
	ReasonID      int64
	Fee           int64 // fen
	Carriage      int64 // fen, 1688
	Description   string
	Vouchers      []string // upload: images to upload; submit: references to send
	OrderEntryIDs []int64
	Company       string // return shipment
	Waybill       string
	Phone         string
	Message       string // Taobao message
}

// Attention says why a case needs an operator.
type Attention struct {
	Code    string
	Message string
}

// Attention codes.
const (
	AttnSellerRefused    = "seller_refused"     // the platform shows the phase seller_refused
	AttnRefundMissing    = "refund_missing"     // the platform has no refund the case expects
	AttnUnknownStatus    = "unknown_status"     // a status this build does not know
	AttnPlatformError    = "platform_error"     // a step failed with a business (permanent) error
	AttnReasonNotOffered = "reason_not_offered" // the requested reason is not on the form
	AttnFeeOutOfBounds   = "fee_out_of_bounds"  // the requested amount is outside the rendered bounds
	AttnFeeNotEditable   = "fee_not_editable"   // the form fixes the fee and it differs from the request
	AttnSaleNotAllowed   = "sale_not_allowed"   // the form says after-sale is not allowed
	// AttnNothingRefundable: the form's most is 0 (the sub-order's payment
	// refunded already, or never made), so no request can be filed,
	// whatever reason or amount it asks: unlike fee_out_of_bounds, a
	// corrected request is no way out.
	AttnNothingRefundable = "nothing_refundable"
	// AttnVoucherUnreadable: a voucher of the request could not be read
	// on the worker's host (VoucherSource: not in WORKER_VOUCHER_DIR, or
	// none configured): nothing of the request was filed, and the cause
	// is the worker's, not the platform's (platform_error's advice).
	AttnVoucherUnreadable = "voucher_unreadable"
	AttnVoucherRequired   = "voucher_required" // the reason needs vouchers and none were given
	AttnCompanyRejected   = "company_not_allowed"
	AttnBadStepResult     = "bad_step_result" // a step succeeded but returned nothing usable
	// AttnRefundExists: the platform refused the case's submission because
	// the sub-order (1688: the order) has an open refund already, one the
	// case did not file: the buyer's on the platform's site, another
	// tool's. Nothing is sent while it is open (onForm).
	AttnRefundExists = "refund_exists"
	// AttnWaitingEvidence flags a case (in its own state, not parked) whose
	// side effect cannot be confirmed yet: it waits for the platform to
	// show it, until a deadline the message names, and then goes on or
	// parks (intent_unverifiable, or intent_resends_failed once the
	// platform has refused ResendLimit resends in a row).
	AttnWaitingEvidence = "waiting_evidence"
	// AttnReturnWaybillDiffers flags a case (waiting for the seller to
	// receive the return, not parked) whose return the platform holds
	// under another waybill than the case's: a replaced submission that
	// reached it late, or logistics changed on the platform itself. The
	// seller looks for the parcel under the platform's; the case goes on
	// following the refund, and the flag goes when the waybills agree or
	// the case moves on.
	AttnReturnWaybillDiffers = "return_waybill_differs"
	// AttnInputsFailing flags a case (in its own state, not parked) whose
	// last Policy.FailingFlag inputs in a row failed (a platform read or a
	// step that keeps failing: an answer the worker cannot read, a refund
	// the platform will not show): it is tried again at the retry backoff,
	// and the flag goes with the first input that gets through. Without
	// it, such a case retried for ever, every RetryMax, unseen.
	AttnInputsFailing = "inputs_failing"
)

// AttentionCodes lists every code a case's attention can carry: the
// needs_attention reasons and the flags (FlagCodes).
func AttentionCodes() []string {
	codes := []string{AttnSellerRefused, AttnRefundMissing, AttnUnknownStatus, AttnPlatformError, AttnReasonNotOffered,
		AttnFeeOutOfBounds, AttnFeeNotEditable, AttnSaleNotAllowed, AttnNothingRefundable, AttnVoucherRequired, AttnVoucherUnreadable, AttnCompanyRejected, AttnBadStepResult,
		AttnRefundExists}
	codes = append(codes, FlagCodes()...) // the flags have one list
	return append(codes, CodeUnverifiable, CodeResendsFailed, CodeInvalidRequest, CodeWorkerEnded)
}

// FlagCodes are the attention codes that flag a case which goes on (not a
// stop): waiting_evidence, return_waybill_differs and inputs_failing.
func FlagCodes() []string {
	return []string{AttnWaitingEvidence, AttnReturnWaybillDiffers, AttnInputsFailing}
}

// viewRaised are attention codes that a later platform view clears by no
// longer implying them.
var viewRaised = []string{AttnSellerRefused, AttnRefundMissing, AttnUnknownStatus}

// Decision is what to do next. For every outcome State and Parked are the
// state to store (the current ones unless OutcomeAct changes them), and WakeAt
// the timer to store (zero: none).
type Decision struct {
	Outcome Outcome
	State   State
	Parked  State
	WakeAt  time.Time
	// RetryAt, for OutcomeRetry, is the earliest time the same input can get
	// further (the case waits for it); zero: retry with the usual backoff.
	RetryAt time.Time
	Step    *Step
	// Attention is set when State is needs_attention, or to flag a case
	// that goes on (waiting_evidence, return_waybill_differs); otherwise
	// the case's attention fields are cleared.
	Attention *Attention
	// RefundID, when set, is the platform refund id learned now.
	RefundID string
	// PlatformStatus, when the decision ends the case on a step's answer
	// rather than a read of the refund, is the status that answer showed
	// ("" for none): the case's recorded status must not stay the one read
	// before the step.
	PlatformStatus *string
	// OrderEventsSeen, when above zero, acknowledges the case's order events
	// up to this id: they were decided on.
	OrderEventsSeen int64
	// Request, Plan and Shipment, when set, replace the case's documents.
	Request  *Request
	Plan     *Plan
	Shipment *Shipment
	// Resolve settles the open intent from the platform view: record it with
	// casestore Tx.FinishStep (done, or failed with Code) in the same
	// transaction as the rest of the decision.
	Resolve *Resolution
	// Reapply: the input itself is not handled yet (an intent had to be
	// settled first): carry out this decision, then Decide the same input again.
	Reapply bool
	// Held, on a decision that holds the case (CodeWorkerEnded), is the
	// attention the case had (empty Code: none), kept for the operator's
	// retry to give back. A case's kept attention goes once it is no
	// longer held.
	Held *Attention
	// Code is a stable machine code for the decision (reject and no-op
	// reasons, attention codes); Reason is for humans (the timeline).
	Code   string
	Reason string
}

// Resolution settles an intent after asking the platform.
type Resolution struct {
	Key string
	// Done: the call took effect. Otherwise it is marked failed with Code.
	Done bool
	Code string
	Note string
}

// Policy is the configurable part of the workflow.
type Policy struct {
	// RefusalMessage is posted on a Taobao refund the seller refused; empty
	// posts nothing. "{reason}" is replaced by the seller's reason.
	RefusalMessage string
	// Recheck is how long a waiting case sleeps before re-checking the
	// platform when the platform gives no earlier deadline (0: no timer; the
	// reconciler still sweeps).
	Recheck time.Duration
	// StepTimeout wakes a case whose own step has not finished in this long
	// (a crash between steps), so it resumes (0: no timer).
	StepTimeout time.Duration
	// IntentGrace is how long an intent the platform cannot confirm either
	// way (PlatformView.Inconclusive, e.g. a 1688 create whose refund id was
	// lost in a crash) waits for evidence, such as a refund callback carrying
	// the refund id, before the case is parked for an operator. 0 parks at once;
	// so does a view whose refunds no case can own (PlatformView.Unattributed).
	IntentGrace time.Duration
	// InFlight is how long after we stopped waiting for a side effect's call
	// (Intent.LastAttempt: it timed out, lost its answer or was abandoned;
	// for a call cut off by a crash, when it began) a request of it may still
	// reach the platform: held in a proxy, a queue or the platform's own
	// backlog, it can take effect later. A view showing no effect is trusted
	// (and the step sent again under the same key) only after that; before,
	// the case waits until then and asks again. A view showing the effect
	// settles the intent at once. 0 trusts it at once. INFERRED
	// (upstream-api.md documents no idempotency key and no server-side
	// deadline).
	InFlight time.Duration
	// ResendLimit is how many resends in a row of an open intent's side
	// effect the platform may refuse (StepError.Refused) while it keeps
	// showing no effect, before the case parks (CodeResendsFailed) with
	// the platform's last answer: sending it again for ever would spend the
	// platform's rate limit and show the case as waiting for an attempt
	// that is not on its way. Resends whose outcome is unknown again (the
	// platform down) or that are rate limited do not count: an outage
	// must not stop every case it caught. The wait before each resend
	// doubles from InFlight, up to InFlight·2^ResendLimit (and Recheck).
	// An operator's resolve --retry sends it once more, the case out of
	// needs_attention meanwhile. 0: no limit (the waits double up to
	// Recheck).
	ResendLimit int
	// EndedLimit is how many worker processes in a row may end (killed,
	// out of memory, a crash no recover catches) while they hold the
	// case, before the case is held for an operator (CodeWorkerEnded):
	// parked, with no platform call and no timer until an operator
	// resolves it. A case whose own step or platform read ends the
	// process would otherwise be woken after every restart, for ever,
	// taking every input in flight down with it. The processes are
	// counted where another process takes over a lease its holder never
	// let go of (CaseView.LeasesAbandoned); a holder that lets go starts
	// the count again. 0: never held.
	EndedLimit int
	// FailingFlag is how many inputs of a case in a row may fail (each
	// retried at the backoff, CaseView's failed inputs) before the case
	// is flagged AttnInputsFailing for an operator to look at; it goes
	// on retrying. 0: never flagged.
	FailingFlag int
	// PlatformAwayLimit is how long failures while the platform pauses
	// us (a rate limit, a 5xx, a timeout) go uncounted towards a kept
	// input's dead letter, from when the input was first kept: long
	// enough to wait through any rate limit or outage, short enough that
	// an input the platform never answers (a refund id it fails on each
	// time) still becomes a dead letter rather than being read for ever.
	// How long the platform's outages last is not documented, so it is
	// the operator's to set. 0: such failures always count.
	PlatformAwayLimit time.Duration
}

// DefaultInFlight is the default Policy.InFlight: six times the default
// platform call timeout (UPSTREAM_TIMEOUT, 10 s).
const DefaultInFlight = time.Minute

// DefaultResendLimit is the default Policy.ResendLimit: with the default
// InFlight, resends go out 1, 2, 4, 8, 16 and then every 32 minutes, so a
// platform that refuses them all for half an hour stops the case.
const DefaultResendLimit = 5

// DefaultFailingFlag is the default Policy.FailingFlag: with the worker's
// default retry backoff (WORKER_RETRY_BASE 2 s doubling) the eighth
// failure in a row of a case's timer comes about four minutes after the
// first (sooner when kept callbacks and commands of the case fail too:
// every input counts). A failure or two flags nothing; an outage of
// minutes flags every case it caught, which an operator wants to see.
const DefaultFailingFlag = 8

// DefaultPlatformAwayLimit is the default Policy.PlatformAwayLimit: a
// day, far beyond a rate limit's window or an outage of hours.
const DefaultPlatformAwayLimit = 24 * time.Hour

// DefaultEndedLimit is the default Policy.EndedLimit: a process that ends
// for a reason of its own (a deploy's SIGKILL, the host going down) now
// and then rarely catches one case in flight three times in a row, while a
// case that ends the process is held after three restarts.
const DefaultEndedLimit = 3

// DefaultPolicy returns the defaults: no refusal message, re-check every 6 h,
// resume stalled steps after 5 min, wait 1 h for evidence of an unconfirmable
// intent (the platform retries a failed callback 30 min later), trust "no
// effect" only a minute after the newest attempt began, stop a case
// after five refused resends, hold one after three worker processes
// ended on it, flag one whose last eight inputs failed, and count the
// platform's pauses towards a kept input's dead letter after a day.
func DefaultPolicy() Policy {
	return Policy{Recheck: 6 * time.Hour, StepTimeout: 5 * time.Minute, IntentGrace: time.Hour, InFlight: DefaultInFlight,
		ResendLimit: DefaultResendLimit, EndedLimit: DefaultEndedLimit, FailingFlag: DefaultFailingFlag,
		PlatformAwayLimit: DefaultPlatformAwayLimit}
}
