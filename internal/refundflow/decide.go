package refundflow

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// Decision codes for no-ops and rejections (Decision.Code).
const (
	CodeInvalidCase     = "invalid_case"     // the case view is inconsistent
	CodeInvalidInput    = "invalid_input"    // the input is malformed
	CodeCaseFinished    = "case_finished"    // a command for a terminal case
	CodeTerminal        = "terminal"         // a non-command input for a terminal case
	CodeIntentUnsettled = "intent_unsettled" // a side effect may have reached the platform: query first
	CodeUnverifiable    = "intent_unverifiable"
	CodeResendsFailed   = "intent_resends_failed" // the platform refused Policy.ResendLimit resends and shows no effect
	// CodeWorkerEnded holds a case for an operator: Policy.EndedLimit
	// worker processes in a row ended while they held it (see heldCase).
	CodeWorkerEnded = "worker_ended"
	// CodeShipmentReplaced settles a return submission the platform shows
	// absent when the operator reports another shipment: with
	// CodeModificationReplaced, the intents settled not done whose step
	// then goes out under a new key, on the same evidence a resend would.
	CodeShipmentReplaced = "shipment_replaced"
	// CodeModificationReplaced is CodeShipmentReplaced for a modification
	// of a refund the platform still shows refused.
	CodeModificationReplaced = "modification_replaced"
	// CodeOtherWaybill settles a return submission while the platform
	// holds a return under another waybill: a return, not shown to be
	// this one; never sent again (the case is flagged
	// AttnReturnWaybillDiffers).
	CodeOtherWaybill   = "other_waybill"
	CodeStaleView      = "stale_view"       // the view is behind the case
	CodeOtherRefund    = "other_refund"     // the view is of another refund
	CodeInconclusive   = "inconclusive"     // the fetcher could not tell
	CodeInFlight       = "intent_in_flight" // no effect yet, but the last attempt may still arrive
	CodeNoChange       = "no_change"        // the view says what the case already knows
	CodeNoRefundYet    = "no_refund_yet"    // nothing submitted, nothing on the platform
	CodeAttention      = "needs_attention"  // parked; waiting for an operator
	CodeStaleResult    = "stale_result"     // a step result for a step this state does not run
	CodeTransient      = "transient"        // a transient step failure: retry later
	CodeDuplicate      = "duplicate"        // the same command again
	CodeCaseOpen       = "case_open"        // a different request for an open case
	CodeNotSupported   = "not_supported"    // the platform has no such operation
	CodeNotNow         = "not_now"          // the command does not fit the case's state
	CodeVerify         = "verify"           // fetch the platform view before acting
	CodeInvalidRequest = "invalid_request"  // the stored request is not valid
	CodeMessageSent    = "message_sent"
	CodeMessageFailed  = "message_failed"
	CodeOrderEnded     = "order_ended"   // the order ended (cancelled, closed): nothing submitted, or no refund from the submission
	CodeOrderChanged   = "order_changed" // an order event: noted, the form read again, or the refund re-read
	CodeNotParked      = "not_parked"    // a resolve for a case that is not in needs_attention
	CodeCannotRetry    = "cannot_retry"  // a retry that cannot help or could do a side effect twice
)

// Decider decides the next step of refund cases under a Policy.
type Decider struct {
	Policy Policy
}

// Decide returns what to do for input in on case c, given the platform view
// v (nil: not fetched). It is a pure function: no I/O, no clock (in.Now is
// the time), no randomness; the same arguments always give the same decision.
//
// Guarantees, tested over every state and input:
//   - a terminal case only ever gets a no-op or a rejection;
//   - no decision moves a case to a lower Rank;
//   - a callback without a view yields OutcomeFetch (a callback is a hint);
//   - with an open intent the decision is "fetch and settle the intent", never
//     a fresh call, until the platform has answered whether it took effect
//     (the one exception, an operator closing the case locally, makes no
//     call at all);
//   - except that a case worker processes keep ending on is held first, and
//     a held case makes no platform call at all (heldCase): its callbacks
//     and its open intent wait until an operator takes the hold off;
//   - news of the case's order is decided before the next step, and an
//     order that ended before submission never leads to one.
//
// The order of the checks below is that precedence: the case's validity,
// a finished case, a case the worker process keeps ending on (heldCase),
// an operator's resolve, an open intent, the order's news, then the input
// itself.
func (d Decider) Decide(c CaseView, v *PlatformView, in Input) Decision {
	return keepWaybillFlag(c, d.decide(c, v, in))
}

// keepWaybillFlag carries a case's return_waybill_differs flag over a
// decision that leaves it waiting for the seller to receive and says
// nothing of it: a message to the seller, an order's news, a view without
// a waybill. A decision's attention replaces the case's (caseRow), so
// without this any of them would drop the flag; only a view showing the
// waybills agree (flagWaybill), or another state, ends it.
func keepWaybillFlag(c CaseView, dec Decision) Decision {
	if c.AttentionCode == AttnReturnWaybillDiffers && c.State == StateWaitingSellerReceive && dec.State == StateWaitingSellerReceive &&
		dec.Attention == nil && dec.Code != codeWaybillAgrees && (dec.Outcome == OutcomeAct || dec.Outcome == OutcomeNoOp) {
		dec.Attention = &Attention{Code: c.AttentionCode, Message: c.AttentionMessage}
	}
	return dec
}

func (d Decider) decide(c CaseView, v *PlatformView, in Input) Decision {
	if err := c.check(); err != nil {
		return reject(c, CodeInvalidCase, err.Error())
	}
	if in.Now.IsZero() || !slices.Contains(InputKinds(), in.Kind) {
		return reject(c, CodeInvalidInput, fmt.Sprintf("input %q without time or of unknown kind", excerpt.Of(string(in.Kind), 40)))
	}
	if c.State.Terminal() {
		dec := keep(c, CodeTerminal, "case is finished")
		dec.WakeAt = time.Time{}
		if isCommand(in.Kind) {
			dec.Outcome, dec.Code = OutcomeReject, CodeCaseFinished
		}
		return dec
	}
	if dec, ok := d.heldCase(c, in); ok {
		return dec
	}
	if in.Kind == InputResolve && (in.Resolve == nil || (in.Resolve.Action != ResolveRetry && in.Resolve.Action != ResolveAdopt) ||
		c.State != StateNeedsAttention || c.Intent != nil) {
		// Before any open intent: closing touches nothing on the platform,
		// a refusal changes nothing, a retry is itself the settling of the
		// intent (onResolve), and so is an adoption (of the refund the
		// operator found for an unconfirmed submission). A plain retry, or
		// an adoption, waits for the order's news.
		return d.onResolve(c, v, in)
	}
	if c.Intent != nil && !(in.Kind == InputStepResult && in.Result != nil && in.Result.Key == c.Intent.Key) {
		return d.settleIntent(c, v, in)
	}
	if len(c.OrderEvents) > 0 && (in.Kind != InputStepResult || (in.Result != nil && !in.Result.Step.SideEffect())) {
		// News of the order comes before the next step, so before what a
		// read's result would lead to. (A side effect's result is the
		// record of a call made: it is never put off.)
		return d.onOrderEvents(c, v, in)
	}
	return d.decideInput(c, v, in)
}

// decideInput decides the input itself, once nothing comes before it.
func (d Decider) decideInput(c CaseView, v *PlatformView, in Input) Decision {
	switch in.Kind {
	case InputRequestRefund:
		return d.onRequest(c, in)
	case InputReportShipment:
		return d.onShipment(c, in)
	case InputCancel:
		return d.onCancel(c, v, in)
	case InputSendMessage:
		return d.onMessage(c, in)
	case InputResolve:
		return d.onResolve(c, v, in)
	case InputModify:
		return d.onModify(c, in)
	case InputStepResult:
		return d.onResult(c, in)
	default: // callback, timer, reconcile
		return d.onWake(c, v, in)
	}
}

func (c CaseView) check() error {
	if !c.Platform.Valid() {
		return fmt.Errorf("platform %q", excerpt.Of(string(c.Platform), 40))
	}
	if !c.State.Valid() {
		return fmt.Errorf("state %q", excerpt.Of(string(c.State), 40))
	}
	if c.Platform == PlatformTaobao && (c.State == StateUploadingVouchers || c.Parked == StateUploadingVouchers) {
		return errors.New("uploading_vouchers is a 1688 state")
	}
	if c.Platform == Platform1688 && (c.State == StateCancelling || c.Parked == StateCancelling) {
		return errors.New("1688 has no cancel operation, so no cancelling state")
	}
	if c.Platform == Platform1688 && (modifyState(c.State) || modifyState(c.Parked)) {
		return errors.New("1688 has no modify operation, so no modify states")
	}
	if c.State == StateNeedsAttention {
		if !c.Parked.Valid() || c.Parked.Terminal() || c.Parked == StateNeedsAttention {
			return fmt.Errorf("needs_attention parked at %q", excerpt.Of(string(c.Parked), 40))
		}
	} else if c.Parked != "" {
		return fmt.Errorf("state %s parked at %q", c.State, excerpt.Of(string(c.Parked), 40))
	}
	if c.Intent != nil && (!c.Intent.Step.SideEffect() || c.Intent.Key == "") {
		return fmt.Errorf("intent %q with key %q", excerpt.Of(string(c.Intent.Step), 40), excerpt.Of(c.Intent.Key, 40))
	}
	return nil
}

func isCommand(k InputKind) bool {
	return k == InputRequestRefund || k == InputReportShipment || k == InputCancel || k == InputSendMessage || k == InputResolve ||
		k == InputModify
}

// effective is the state that counts for a needs_attention case.
func (c CaseView) effective() State {
	if c.State == StateNeedsAttention {
		return c.Parked
	}
	return c.State
}

// beforeSubmit reports whether nothing of the case can be on the platform:
// no refund id, no open intent, and the case is not past submitting. In
// submitting, every earlier attempt then ended with the platform refusing
// it (not applied: its intent was closed), unless the case parked there
// because an attempt could not be confirmed either way (intent_unverifiable).
func (c CaseView) beforeSubmit() bool {
	if c.RefundID != "" || c.Intent != nil {
		return false
	}
	switch c.effective() {
	case StateRequested, StateRendering, StateUploadingVouchers:
		return true
	case StateSubmitting:
		return !(c.State == StateNeedsAttention && c.AttentionCode == CodeUnverifiable)
	}
	return false
}

// MaxAttentionText bounds an attention message or decision reason that
// carries text from the platform (a seller's refusal reason, an error
// message): whole up to this many bytes, so the cause is never cut off as
// it was at 40, yet one odd answer cannot bloat every case row.
const MaxAttentionText = 2000

func keep(c CaseView, code, reason string) Decision {
	return Decision{Outcome: OutcomeNoOp, State: c.State, Parked: c.Parked, WakeAt: c.WakeAt, Code: code, Reason: reason}
}

func reject(c CaseView, code, reason string) Decision {
	d := keep(c, code, reason)
	d.Outcome = OutcomeReject
	return d
}

func fetch(c CaseView, code, reason string) Decision {
	d := keep(c, code, reason)
	d.Outcome = OutcomeFetch
	return d
}

// to moves the case to state s (leaving needs_attention if it was there).
func (d Decider) to(s State, v *PlatformView, now time.Time, code, reason string) Decision {
	return Decision{Outcome: OutcomeAct, State: s, WakeAt: d.wake(s, v, now), Code: code, Reason: reason}
}

// park moves the case to needs_attention, parked at its effective state.
func park(c CaseView, code, msg string) Decision {
	return parkAt(c.effective(), code, msg)
}

func parkAt(parked State, code, msg string) Decision {
	return Decision{Outcome: OutcomeAct, State: StateNeedsAttention, Parked: parked,
		Attention: &Attention{Code: code, Message: msg}, Code: code, Reason: msg}
}

// wake is the timer for a case entering or staying in state s.
func (d Decider) wake(s State, v *PlatformView, now time.Time) time.Time {
	switch {
	case s.Terminal() || s == StateNeedsAttention:
		return time.Time{}
	case s.waiting():
		var w time.Time
		if d.Policy.Recheck > 0 {
			w = now.Add(d.Policy.Recheck)
		}
		if v != nil && v.Deadline.After(now) && (w.IsZero() || v.Deadline.Before(w)) {
			w = v.Deadline
		}
		return w
	default:
		if d.Policy.StepTimeout > 0 {
			return now.Add(d.Policy.StepTimeout)
		}
		return time.Time{}
	}
}

// onWake handles callbacks, timers and reconcile ticks: verify by fetching,
// then follow the platform, or resume our own pending step.
func (d Decider) onWake(c CaseView, v *PlatformView, in Input) Decision {
	if v == nil {
		if in.Kind == InputCallback || !c.beforeSubmit() {
			return fetch(c, CodeVerify, "fetch the refund from the platform before acting")
		}
		return d.resume(c, in.Now)
	}
	dec := d.fromView(c, *v, in.Now)
	if dec.Outcome == OutcomeNoOp && stepOf(c.Platform, c.State) != "" && dec.Code != CodeOtherRefund && dec.Code != CodeInconclusive {
		return d.resume(c, in.Now)
	}
	return dec
}

// resume re-runs the step of a work-in-progress state (after a crash or a
// lost message); waiting and parked cases have nothing to resume.
func (d Decider) resume(c CaseView, now time.Time) Decision {
	switch c.State {
	case StateRequested, StateRendering:
		if err := c.Request.Validate(c.Platform); err != nil {
			return park(c, CodeInvalidRequest, "the stored request is not valid: "+err.Error())
		}
		dec := d.to(StateRendering, nil, now, "resume", "read the refund form")
		dec.Step = renderStep(c)
		return dec
	case StateUploadingVouchers:
		dec := d.to(c.State, nil, now, "resume", "upload vouchers")
		dec.Step = &Step{Name: StepUploadVouchers, Vouchers: c.Request.Vouchers}
		return dec
	case StateSubmitting:
		dec := d.to(c.State, nil, now, "resume", "submit the refund")
		dec.Step = submitStep(c, c.Plan)
		return dec
	case StateReturnRendering:
		dec := d.to(c.State, nil, now, "resume", "read the return carriers")
		dec.Step = &Step{Name: StepReturnRender, RefundID: c.RefundID}
		return dec
	case StateReturnSubmitting:
		if c.Shipment == nil {
			return park(c, AttnBadStepResult, "return submission without a recorded shipment")
		}
		dec := d.to(c.State, nil, now, "resume", "submit the return shipment")
		dec.Step = returnSubmitStep(c, *c.Shipment)
		return dec
	case StateCancelling:
		dec := d.to(c.State, nil, now, "resume", "cancel the refund")
		dec.Step = cancelStep(c)
		return dec
	case StateModifyRendering:
		dec := d.to(c.State, nil, now, "resume", "read the refund form for the modification")
		dec.Step = renderStep(c)
		return dec
	case StateModifying:
		dec := d.to(c.State, nil, now, "resume", "modify the refund")
		dec.Step = modifyStep(c, c.Plan)
		return dec
	case StateNeedsAttention:
		// No timer: a stopped case waits for an operator (or the
		// reconciler), and a timer kept from before would stay due,
		// waking it every tick for nothing.
		dec := keep(c, CodeAttention, "waiting for an operator")
		dec.WakeAt = time.Time{}
		return dec
	default: // waiting states
		dec := keep(c, CodeNoChange, "waiting")
		dec.WakeAt = d.wake(c.State, nil, now)
		return dec
	}
}
