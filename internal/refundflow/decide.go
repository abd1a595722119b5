package refundflow

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

// Decision codes for no-ops and rejections (Decision.Code).
const (
	CodeInvalidCase     = "invalid_case"     // the case view is inconsistent
	CodeInvalidInput    = "invalid_input"    // the input is malformed
	CodeCaseFinished    = "case_finished"    // a command for a terminal case
	CodeTerminal        = "terminal"         // a non-command input for a terminal case
	CodeIntentUnsettled = "intent_unsettled" // a side effect may have reached the platform: query first
	CodeUnverifiable    = "intent_unverifiable"
	CodeStaleView       = "stale_view"       // the view is behind the case
	CodeOtherRefund     = "other_refund"     // the view is of another refund
	CodeInconclusive    = "inconclusive"     // the fetcher could not tell
	CodeInFlight        = "intent_in_flight" // no effect yet, but the last attempt may still arrive
	CodeNoChange        = "no_change"        // the view says what the case already knows
	CodeNoRefundYet     = "no_refund_yet"    // nothing submitted, nothing on the platform
	CodeAttention       = "needs_attention"  // parked; waiting for an operator
	CodeStaleResult     = "stale_result"     // a step result for a step this state does not run
	CodeTransient       = "transient"        // a transient step failure: retry later
	CodeDuplicate       = "duplicate"        // the same command again
	CodeCaseOpen        = "case_open"        // a different request for an open case
	CodeNotSupported    = "not_supported"    // the platform has no such operation
	CodeNotNow          = "not_now"          // the command does not fit the case's state
	CodeVerify          = "verify"           // fetch the platform view before acting
	CodeInvalidRequest  = "invalid_request"  // the stored request is not valid
	CodeMessageSent     = "message_sent"
	CodeMessageFailed   = "message_failed"
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
//     a fresh call, until the platform has answered whether it took effect.
func (d Decider) Decide(c CaseView, v *PlatformView, in Input) Decision {
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
	if c.Intent != nil && !(in.Kind == InputStepResult && in.Result != nil && in.Result.Key == c.Intent.Key) {
		return d.settleIntent(c, v, in)
	}
	switch in.Kind {
	case InputRequestRefund:
		return d.onRequest(c, in)
	case InputReportShipment:
		return d.onShipment(c, in)
	case InputCancel:
		return d.onCancel(c, v, in)
	case InputSendMessage:
		return d.onMessage(c, in)
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
	return k == InputRequestRefund || k == InputReportShipment || k == InputCancel || k == InputSendMessage
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
	case StateNeedsAttention:
		return keep(c, CodeAttention, "waiting for an operator")
	default: // waiting states
		dec := keep(c, CodeNoChange, "waiting")
		dec.WakeAt = d.wake(c.State, nil, now)
		return dec
	}
}

// target is the state a platform status implies, or an attention. Both
// platforms' statuses arrive as phases (the profile maps the names).
func target(p Platform, v PlatformView) (State, *Attention) {
	switch v.Phase {
	case platform.PhaseWaitSellerAgree:
		return StateWaitingSeller, nil
	case platform.PhaseWaitBuyerReturn:
		return StateWaitingReturnShipment, nil
	case platform.PhaseWaitSellerReceive:
		return StateWaitingSellerReceive, nil
	case platform.PhaseSuccess:
		return StateSucceeded, nil
	case platform.PhaseClosed:
		return StateClosed, nil
	case platform.PhaseSellerRefused:
		verb := "refused"
		if p == Platform1688 {
			verb = "rejected"
		}
		return StateWaitingSeller, &Attention{Code: AttnSellerRefused, Message: excerpt.Of("seller "+verb+": "+v.RefuseReason, MaxAttentionText)}
	}
	name := "Taobao"
	if p == Platform1688 {
		name = "1688"
	}
	return "", &Attention{Code: AttnUnknownStatus, Message: fmt.Sprintf("unknown %s refund status %q", name, excerpt.Of(v.StatusText, 40))}
}

// fromView follows the platform view, forwards only.
func (d Decider) fromView(c CaseView, v PlatformView, now time.Time) Decision {
	stay := keep(c, CodeNoChange, "the platform shows nothing new")
	stay.WakeAt = d.wake(c.State, &v, now)
	if v.Inconclusive {
		stay.Code, stay.Reason = CodeInconclusive, "the platform could not say whether a refund exists"
		return stay
	}
	if !v.Found {
		switch {
		case c.State == StateCancelling:
			dec := d.to(StateCancelled, &v, now, "refund_gone", "the refund no longer exists: cancelled")
			return dec
		case c.RefundID == "" && Rank(c.State, c.Parked) <= stateRank[StateSubmitting]:
			stay.Code, stay.Reason = CodeNoRefundYet, "no refund on the platform yet"
			return stay
		case c.State == StateNeedsAttention && c.AttentionCode == AttnRefundMissing:
			return stay
		}
		return park(c, AttnRefundMissing, "the platform has no refund for this case")
	}
	if c.RefundID != "" && v.RefundID != "" && v.RefundID != c.RefundID {
		stay.Code, stay.Reason = CodeOtherRefund, fmt.Sprintf("view of refund %s, case has %s", excerpt.Of(v.RefundID, 40), c.RefundID)
		return stay
	}
	t, attn := target(c.Platform, v)
	if t == StateClosed && c.effective() == StateCancelling {
		t = StateCancelled
	}
	cur := Rank(c.State, c.Parked)
	var dec Decision
	if attn != nil {
		parked := t
		if parked == "" { // unknown status: stop where we are
			parked = c.effective()
		}
		tr := stateRank[parked]
		switch {
		case tr < cur:
			stay.Code, stay.Reason = CodeStaleView, "the view is behind the case"
			return stay
		case c.State == StateNeedsAttention && (c.AttentionCode == attn.Code || !slices.Contains(viewRaised, c.AttentionCode)) && tr == cur:
			stay.Code, stay.Reason = CodeAttention, "still needs attention"
			return stay
		}
		dec = parkAt(parked, attn.Code, attn.Message)
		if attn.Code == AttnSellerRefused && c.Platform == PlatformTaobao && d.Policy.RefusalMessage != "" {
			refundID := c.RefundID
			if refundID == "" {
				refundID = v.RefundID
			}
			dec.Step = &Step{Name: StepMessage, Key: fmt.Sprintf("case:%d:message:refusal", c.ID), RefundID: refundID,
				Message: strings.ReplaceAll(d.Policy.RefusalMessage, "{reason}", v.RefuseReason)}
		}
	} else {
		tr := stateRank[t]
		switch {
		case tr < cur:
			stay.Code, stay.Reason = CodeStaleView, "the view is behind the case"
			return stay
		case tr == cur && c.State == t:
			return stay
		case tr == cur && c.State == StateNeedsAttention && c.Parked == t && slices.Contains(viewRaised, c.AttentionCode):
			// The platform moved past what parked the case (e.g. the buyer's
			// modified refund waits for the seller again).
		case tr == cur:
			stay.Code, stay.Reason = CodeAttention, "still needs attention"
			return stay
		}
		dec = d.to(t, &v, now, "platform_progress", fmt.Sprintf("platform status %s", v.Status(c.Platform)))
	}
	if c.RefundID == "" && v.RefundID != "" {
		dec.RefundID = v.RefundID
	}
	return dec
}

// settleIntent handles any input while a side effect may have reached the
// platform: ask the platform, and only if it did not take effect send it
// again, under the same key.
func (d Decider) settleIntent(c CaseView, v *PlatformView, in Input) Decision {
	it := *c.Intent
	if v == nil {
		return fetch(c, CodeIntentUnsettled, fmt.Sprintf("a %s may have reached the platform: query it before anything else", it.Step))
	}
	reapply := isCommand(in.Kind)
	base := c
	base.Intent = nil
	if it.Step == StepMessage {
		// Messages cannot be checked: at most once means never resent.
		dec := d.fromView(base, *v, in.Now)
		if dec.Step != nil && dec.Step.Name == StepMessage {
			dec.Step = nil
		}
		dec.Resolve = &Resolution{Key: it.Key, Code: "unverified", Note: "a message may have been posted; not sent again"}
		dec = actOn(c, dec)
		dec.Reapply = reapply
		return dec
	}
	if v.Inconclusive {
		if until := it.Since.Add(d.Policy.IntentGrace); d.Policy.IntentGrace > 0 && !it.Since.IsZero() && in.Now.Before(until) {
			dec := keep(c, CodeInconclusive, fmt.Sprintf("cannot tell yet whether the %s took effect; waiting for evidence", it.Step))
			dec.Attention = waiting(c, fmt.Sprintf("cannot tell yet whether the %s took effect: waiting for evidence (a refund callback) until %s, then parked (%s)",
				it.Step, stamp(until), CodeUnverifiable))
			dec.WakeAt = until
			if w := d.wake(StateSubmitting, nil, in.Now); !w.IsZero() && w.Before(until) {
				dec.WakeAt = w
			}
			if isCommand(in.Kind) {
				// The command comes back when the grace ends (the timer and
				// callbacks look earlier): not every few minutes, using up
				// its deliveries.
				dec.Outcome, dec.RetryAt = OutcomeRetry, until
			}
			return dec
		}
		dec := park(c, CodeUnverifiable, fmt.Sprintf("cannot tell whether the %s took effect; check on the platform", it.Step))
		dec.Reapply = isCommand(in.Kind) // the command is then decided on the parked case, not swallowed
		return dec
	}
	if v.Found && c.RefundID != "" && v.RefundID != "" && v.RefundID != c.RefundID {
		// A view of another refund says nothing about this intent: leave it
		// open (neither settled nor sent again) and look again later.
		dec := keep(c, CodeOtherRefund, fmt.Sprintf("view of refund %s, case has %s: cannot settle the %s", excerpt.Of(v.RefundID, 40), c.RefundID, it.Step))
		dec.WakeAt = d.wake(StateSubmitting, nil, in.Now)
		if !dec.WakeAt.IsZero() {
			dec.Attention = waiting(c, fmt.Sprintf("cannot tell yet whether the %s took effect (the platform showed refund %s): asking again at %s",
				it.Step, excerpt.Of(v.RefundID, 40), stamp(dec.WakeAt)))
		}
		if isCommand(in.Kind) {
			dec.Outcome = OutcomeRetry
		}
		return dec
	}
	t, attn := State(""), (*Attention)(nil)
	if v.Found {
		t, attn = target(c.Platform, *v)
	}
	// took: the platform shows the effect. absent: the platform positively
	// shows it did not happen, so it may be sent again under the same key.
	// Anything else (a view behind the case, an unknown status, a terminal
	// status, another waybill) proves neither: the effect is never sent again.
	var took, absent bool
	switch it.Step {
	case StepSubmit:
		took, absent = v.Found, !v.Found
	case StepReturnSubmit:
		took = v.Found && (t == StateWaitingSellerReceive ||
			(c.Shipment != nil && sameWaybill(v.ReturnWaybill, c.Shipment.Waybill)))
		absent = v.Found && t == StateWaitingReturnShipment && attn == nil && strings.TrimSpace(v.ReturnWaybill) == ""
	case StepCancel:
		took = !v.Found || t == StateClosed
		absent = v.Found && t != "" && !t.Terminal() // a known open status: the refund is still there
	}
	if took {
		dec := d.fromView(base, *v, in.Now)
		after := map[StepName]State{StepSubmit: StateWaitingSeller, StepReturnSubmit: StateWaitingSellerReceive, StepCancel: StateCancelled}[it.Step]
		if dec.State == StateNeedsAttention && !after.Terminal() && stateRank[dec.Parked] < stateRank[after] {
			// Parked (e.g. an unknown status), but past the step that took
			// effect: never parked where it would run it again.
			dec.Parked = after
		}
		if dec.Outcome == OutcomeNoOp {
			// The platform has the effect but its status has not moved yet.
			dec = d.to(after, v, in.Now, "intent_confirmed", "the platform has the effect")
			if c.RefundID == "" && v.RefundID != "" {
				dec.RefundID = v.RefundID
			}
		}
		dec.Resolve = &Resolution{Key: it.Key, Done: true, Note: "the platform confirmed it took effect"}
		dec.Reapply = reapply
		return dec
	}
	if !absent {
		dec := actOn(c, d.fromView(base, *v, in.Now))
		res := &Resolution{Key: it.Key, Code: "superseded", Note: fmt.Sprintf("not confirmed; the platform is now %q", v.Status(c.Platform))}
		next := dec.State
		if next == StateNeedsAttention {
			next = dec.Parked
		}
		if !next.Terminal() && stepOf(c.Platform, next).SideEffect() {
			// The case would run the step again (a resume, a reapplied
			// command) under a new key although nothing shows the first call
			// failed: park it where only the platform or an operator moves it.
			dec = park(c, CodeUnverifiable, fmt.Sprintf("cannot tell whether the %s took effect (platform status %q); check on the platform",
				it.Step, excerpt.Of(v.Status(c.Platform), 40)))
			res = &Resolution{Key: it.Key, Code: "unverified", Note: fmt.Sprintf("the platform (%q) shows neither the %s nor its absence; not sent again",
				excerpt.Of(v.Status(c.Platform), 40), it.Step)}
		}
		dec.Resolve = res
		dec.Reapply = reapply
		return dec
	}
	// Absent, but the newest attempt may still be on its way (it timed
	// out on our side, or its process died mid-call): wait until it cannot
	// be, then ask again. Resending now could submit twice.
	if until := it.lastAttempt().Add(d.Policy.InFlight); d.Policy.InFlight > 0 && !it.lastAttempt().IsZero() && in.Now.Before(until) {
		dec := keep(c, CodeInFlight, fmt.Sprintf("the platform shows no %s yet, but the attempt (last at %s) may still reach it; asking again at %s",
			it.Step, it.lastAttempt().Format(time.RFC3339), until.Format(time.RFC3339)))
		dec.Attention = waiting(c, fmt.Sprintf("the platform shows no %s yet, but the last attempt may still reach it: asking again at %s, and sending it again then if it still shows none",
			it.Step, stamp(until)))
		dec.WakeAt = until
		if isCommand(in.Kind) {
			dec.Outcome, dec.RetryAt = OutcomeRetry, until // the command comes back then
		}
		return dec
	}
	// Confirmed absent: send again under the same key.
	var st *Step
	switch it.Step {
	case StepSubmit:
		st = submitStep(c, c.Plan)
	case StepReturnSubmit:
		if c.Shipment == nil {
			return park(c, AttnBadStepResult, "return intent without a recorded shipment")
		}
		st = returnSubmitStep(c, *c.Shipment)
	default:
		st = cancelStep(c)
	}
	st.Key, st.Resume = it.Key, true
	dec := d.to(c.State, v, in.Now, "intent_absent", fmt.Sprintf("the platform shows no effect of the %s: send it again", it.Step))
	if c.State == StateNeedsAttention {
		dec.State, dec.Parked, dec.WakeAt = c.State, c.Parked, time.Time{}
		dec.Attention = &Attention{Code: c.AttentionCode, Message: c.AttentionMessage}
	}
	dec.Step = st
	dec.Reapply = reapply
	return dec
}

// waiting is the waiting_evidence flag for a case that waits for its open
// intent to be settled, or nil for a parked case (its own attention stays).
func waiting(c CaseView, msg string) *Attention {
	if c.State == StateNeedsAttention {
		return nil
	}
	return &Attention{Code: AttnWaitingEvidence, Message: msg}
}

// stamp formats a deadline for operators.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// sameWaybill reports whether the platform's waybill is ours, ignoring case
// and surrounding space.
func sameWaybill(platform, ours string) bool {
	p := strings.TrimSpace(platform)
	return p != "" && strings.EqualFold(p, strings.TrimSpace(ours))
}

// actOn turns a no-op into an act (to record an intent's resolution) that
// keeps the case as it is, attention included.
func actOn(c CaseView, dec Decision) Decision {
	if dec.Outcome != OutcomeNoOp {
		return dec
	}
	dec.Outcome = OutcomeAct
	if c.State == StateNeedsAttention {
		dec.Attention = &Attention{Code: c.AttentionCode, Message: c.AttentionMessage}
	}
	return dec
}

func (d Decider) onRequest(c CaseView, in Input) Decision {
	if in.Request == nil {
		return reject(c, CodeInvalidInput, "request_refund without a request")
	}
	if err := in.Request.Validate(c.Platform); err != nil {
		return reject(c, CodeInvalidInput, "invalid request: "+err.Error())
	}
	req := *in.Request
	restart := c.State == StateRequested ||
		(c.State == StateNeedsAttention && c.RefundID == "" && Rank(c.State, c.Parked) <= stateRank[StateSubmitting] &&
			!sameRequest(req, c.Request))
	if !restart {
		if sameRequest(req, c.Request) {
			if c.State == StateRendering || c.State == StateUploadingVouchers {
				// A redelivery after a transient failure of the read step: run it again.
				return d.resume(c, in.Now)
			}
			return keep(c, CodeDuplicate, "the same request again")
		}
		return reject(c, CodeCaseOpen, "the case is already open with another request; cancel it first")
	}
	c.Request = req
	dec := d.to(StateRendering, nil, in.Now, "requested", "read the refund form")
	dec.Request, dec.Plan = &req, &Plan{}
	dec.Step = renderStep(c)
	return dec
}

func (d Decider) onShipment(c CaseView, in Input) Decision {
	if in.Shipment == nil {
		return reject(c, CodeInvalidInput, "report_shipment without a shipment")
	}
	if err := in.Shipment.Validate(); err != nil {
		return reject(c, CodeInvalidInput, "invalid shipment: "+err.Error())
	}
	sh := *in.Shipment
	e := c.effective()
	switch {
	case c.State == StateWaitingReturnShipment ||
		(c.State == StateNeedsAttention && (e == StateWaitingReturnShipment || e == StateReturnRendering || e == StateReturnSubmitting)):
		if c.State == StateNeedsAttention && c.Shipment != nil && *c.Shipment == sh {
			return keep(c, CodeDuplicate, "the same shipment again")
		}
		if c.State == StateNeedsAttention && e == StateReturnSubmitting && c.AttentionCode == CodeUnverifiable {
			// The earlier return submission may be on the platform: another
			// one would be a second return. The platform's progress (or a
			// cancel) takes the case out.
			return reject(c, CodeNotNow, "the earlier return submission may have reached the platform; check it there")
		}
		dec := d.to(StateReturnRendering, nil, in.Now, "shipment_reported", "read the return carriers")
		dec.Shipment = &sh
		dec.Step = &Step{Name: StepReturnRender, RefundID: c.RefundID}
		return dec
	case c.State == StateReturnRendering && c.Shipment != nil && *c.Shipment == sh:
		// A redelivery after a transient failure of the read step: run it again.
		return d.resume(c, in.Now)
	case (e == StateReturnRendering || e == StateReturnSubmitting || e == StateWaitingSellerReceive) && c.Shipment != nil && *c.Shipment == sh:
		return keep(c, CodeDuplicate, "the same shipment again")
	case e == StateReturnRendering || e == StateReturnSubmitting || e == StateWaitingSellerReceive:
		return reject(c, CodeNotNow, "a shipment was already reported")
	default:
		return reject(c, CodeNotNow, fmt.Sprintf("no return requested (case is %s)", e))
	}
}

func (d Decider) onCancel(c CaseView, v *PlatformView, in Input) Decision {
	if c.State == StateCancelling || (c.State == StateNeedsAttention && c.Parked == StateCancelling && c.AttentionCode != AttnPlatformError) {
		return keep(c, CodeDuplicate, "already cancelling")
	}
	if c.beforeSubmit() {
		if c.effective() == StateSubmitting {
			return d.to(StateCancelled, nil, in.Now, "cancelled", "cancelled: the platform refused every submission, nothing of it is there")
		}
		return d.to(StateCancelled, nil, in.Now, "cancelled", "cancelled before anything reached the platform")
	}
	refundID := c.RefundID
	if refundID == "" {
		if v == nil {
			return fetch(c, CodeVerify, "find out whether a refund exists before cancelling")
		}
		if v.Inconclusive {
			return reject(c, CodeInconclusive, "cannot tell whether a refund exists; try again later")
		}
		if !v.Found {
			return d.to(StateCancelled, v, in.Now, "cancelled", "no refund on the platform: cancelled")
		}
		refundID = v.RefundID
	}
	if c.Platform == Platform1688 {
		return reject(c, CodeNotSupported, "1688 has no cancel operation; cancel on the platform")
	}
	dec := d.to(StateCancelling, v, in.Now, "cancel", "cancel the refund")
	if c.RefundID == "" {
		dec.RefundID = refundID
	}
	c.RefundID = refundID
	dec.Step = cancelStep(c)
	return dec
}

func (d Decider) onMessage(c CaseView, in Input) Decision {
	msg := strings.TrimSpace(in.Message)
	if msg == "" || len([]rune(msg)) > maxMessage || !printableText(msg) {
		return reject(c, CodeInvalidInput, fmt.Sprintf("message: 1 to %d characters of text", maxMessage))
	}
	if c.Platform == Platform1688 {
		return reject(c, CodeNotSupported, "1688 has no message operation")
	}
	if c.RefundID == "" {
		return reject(c, CodeNotNow, "no refund on the platform yet")
	}
	dec := keep(c, "message", "post a message")
	dec.Outcome = OutcomeAct
	if c.State == StateNeedsAttention {
		dec.Attention = &Attention{Code: c.AttentionCode, Message: c.AttentionMessage}
	}
	key := fmt.Sprintf("case:%d:message:v%d", c.ID, c.Version)
	if in.ID != "" {
		// Per command: a redelivered command finds its intent and never
		// posts again.
		key = fmt.Sprintf("case:%d:message:%s", c.ID, in.ID)
	}
	dec.Step = &Step{Name: StepMessage, Key: key, RefundID: c.RefundID, Message: msg}
	return dec
}

func printableText(s string) bool {
	for _, r := range s {
		if r == 0x7f || (r < 0x20 && r != '\n' && r != '\t') {
			return false
		}
	}
	return true
}

func (d Decider) onResult(c CaseView, in Input) Decision {
	r := in.Result
	if r == nil || r.Step == "" {
		return reject(c, CodeInvalidInput, "step_result without a result")
	}
	if r.Step == StepMessage {
		if r.Err != nil {
			return keep(c, CodeMessageFailed, excerpt.Of(fmt.Sprintf("message failed: %s %s", excerpt.Of(r.Err.Code, 40), r.Err.Message), MaxAttentionText))
		}
		return keep(c, CodeMessageSent, "message posted")
	}
	if c.State == StateNeedsAttention && r.Key != "" && c.Intent != nil && c.Intent.Key == r.Key && stepOf(c.Platform, c.Parked) == r.Step {
		// A side effect sent again from a parked case (the platform showed
		// its earlier attempt absent): its result counts as the parked
		// state's own step, and a success takes the case out of parking.
		c.State, c.Parked = c.Parked, ""
	}
	if c.State == StateRequested || c.State == StateNeedsAttention || stepOf(c.Platform, c.State) != r.Step {
		return keep(c, CodeStaleResult, fmt.Sprintf("a %s result while %s", excerpt.Of(string(r.Step), 40), c.State))
	}
	if r.Err != nil {
		if r.Err.Transient {
			dec := keep(c, CodeTransient, excerpt.Of(fmt.Sprintf("%s failed transiently: %s %s", r.Step, excerpt.Of(r.Err.Code, 40), r.Err.Message), MaxAttentionText))
			dec.Outcome = OutcomeRetry
			return dec
		}
		return park(c, AttnPlatformError, excerpt.Of(fmt.Sprintf("%s failed: code %s: %s", r.Step, excerpt.Of(r.Err.Code, 40), r.Err.Message), MaxAttentionText))
	}
	switch r.Step {
	case StepRender:
		return d.onForm(c, r.Form, in.Now)
	case StepReasons:
		return d.onReasons(c, r.Reasons, in.Now)
	case StepUploadVouchers:
		if len(r.Vouchers) == 0 {
			return park(c, AttnBadStepResult, "voucher upload returned no references")
		}
		plan := c.Plan
		plan.Vouchers = slices.Clone(r.Vouchers)
		dec := d.to(StateSubmitting, nil, in.Now, "vouchers_uploaded", "submit the refund")
		dec.Plan, dec.Step = &plan, submitStep(c, plan)
		return dec
	case StepSubmit:
		dec := d.to(StateWaitingSeller, nil, in.Now, "submitted", "refund submitted; waiting for the seller")
		if r.RefundID != "" && r.RefundID != c.RefundID {
			dec.RefundID = r.RefundID
		}
		return dec
	case StepReturnRender:
		if c.Shipment == nil {
			return park(c, AttnBadStepResult, "return carriers read without a recorded shipment")
		}
		if !slices.ContainsFunc(r.Companies, func(s string) bool { return strings.EqualFold(s, c.Shipment.Company) }) {
			return park(c, AttnCompanyRejected, fmt.Sprintf("carrier %q is not accepted (accepted: %s)", c.Shipment.Company, listSome(r.Companies)))
		}
		dec := d.to(StateReturnSubmitting, nil, in.Now, "carrier_accepted", "submit the return shipment")
		dec.Step = returnSubmitStep(c, *c.Shipment)
		return dec
	case StepReturnSubmit:
		return d.to(StateWaitingSellerReceive, nil, in.Now, "return_submitted", "return submitted; waiting for the seller to receive it")
	default: // StepCancel
		return d.to(StateCancelled, nil, in.Now, "cancelled", "refund cancelled on the platform")
	}
}

// onForm chooses the reason and fee from the rendered Taobao form.
func (d Decider) onForm(c CaseView, f *Form, now time.Time) Decision {
	if f == nil {
		return park(c, AttnBadStepResult, "render returned no form")
	}
	if f.SaleDisabled {
		return park(c, AttnSaleNotAllowed, "the platform does not allow an after-sale refund for this order")
	}
	reason, err := pickReason(f.Reasons, c.Request)
	if err != nil {
		return park(c, AttnReasonNotOffered, err.Error())
	}
	req := c.Request.Amount
	var fee int64
	switch {
	case !f.CanEditFee:
		if req != 0 && req != f.DefaultFee {
			return park(c, AttnFeeNotEditable, fmt.Sprintf("the form fixes the fee at %d; requested %d", f.DefaultFee, req))
		}
		fee = f.DefaultFee
	case req == 0:
		fee = f.MaxFee
	case req < f.MinFee || req > f.MaxFee:
		return park(c, AttnFeeOutOfBounds, fmt.Sprintf("requested %d outside [%d, %d]", req, f.MinFee, f.MaxFee))
	default:
		fee = req
	}
	if fee <= 0 {
		return park(c, AttnFeeOutOfBounds, fmt.Sprintf("nothing refundable (fee %d)", fee))
	}
	plan := Plan{ReasonID: reason.ID, ReasonDesc: reason.Desc, Fee: fee, PriorListed: true, PriorRefunds: slices.Clone(f.Existing)}
	dec := d.to(StateSubmitting, nil, now, "form_rendered", fmt.Sprintf("submit with reason %d and fee %d", reason.ID, fee))
	dec.Plan, dec.Step = &plan, submitStep(c, plan)
	return dec
}

// onReasons chooses the 1688 reason and whether vouchers are needed.
func (d Decider) onReasons(c CaseView, reasons []Reason, now time.Time) Decision {
	reason, err := pickReason(reasons, c.Request)
	if err != nil {
		return park(c, AttnReasonNotOffered, err.Error())
	}
	plan := Plan{ReasonID: reason.ID, ReasonDesc: reason.Desc, NeedVoucher: reason.NeedVoucher,
		Fee: c.Request.Amount, Carriage: c.Request.Carriage}
	if reason.NoCarriage {
		plan.Carriage = 0
	}
	if reason.NeedVoucher {
		if len(c.Request.Vouchers) == 0 {
			return park(c, AttnVoucherRequired, fmt.Sprintf("reason %d needs vouchers and the request has none", reason.ID))
		}
		dec := d.to(StateUploadingVouchers, nil, now, "reason_chosen", "upload the vouchers")
		dec.Plan = &plan
		dec.Step = &Step{Name: StepUploadVouchers, Vouchers: slices.Clone(c.Request.Vouchers)}
		return dec
	}
	dec := d.to(StateSubmitting, nil, now, "reason_chosen", fmt.Sprintf("create the refund with reason %d", reason.ID))
	dec.Plan, dec.Step = &plan, submitStep(c, plan)
	return dec
}

// pickReason finds the requested reason by id, else by its text.
func pickReason(offered []Reason, r Request) (Reason, error) {
	for _, o := range offered {
		if r.ReasonID != 0 && o.ID == r.ReasonID {
			return o, nil
		}
	}
	want := strings.TrimSpace(r.Reason)
	for _, o := range offered {
		if want != "" && strings.EqualFold(strings.TrimSpace(o.Desc), want) {
			return o, nil
		}
	}
	names := make([]string, 0, len(offered))
	for _, o := range offered {
		names = append(names, fmt.Sprintf("%d %s", o.ID, o.Desc))
	}
	return Reason{}, errors.New("requested reason not offered (offered: " + listSome(names) + ")")
}

func listSome(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	if len(xs) > 5 {
		return strings.Join(xs[:5], ", ") + ", …"
	}
	return strings.Join(xs, ", ")
}

func sameRequest(a, b Request) bool {
	return a.ReturnGoods == b.ReturnGoods && a.GoodsStatus == b.GoodsStatus && a.ReasonID == b.ReasonID &&
		a.Reason == b.Reason && a.Amount == b.Amount && a.Carriage == b.Carriage && a.Description == b.Description &&
		slices.Equal(a.Vouchers, b.Vouchers) && slices.Equal(a.OrderEntryIDs, b.OrderEntryIDs)
}

func renderStep(c CaseView) *Step {
	if c.Platform == Platform1688 {
		return &Step{Name: StepReasons, GoodsStatus: c.Request.GoodsStatus, OrderEntryIDs: slices.Clone(c.Request.OrderEntryIDs)}
	}
	return &Step{Name: StepRender, ReturnGoods: c.Request.ReturnGoods, GoodsStatus: c.Request.GoodsStatus}
}

func submitStep(c CaseView, p Plan) *Step {
	s := &Step{Name: StepSubmit, Key: fmt.Sprintf("case:%d:submit:v%d", c.ID, c.Version),
		ReturnGoods: c.Request.ReturnGoods, GoodsStatus: c.Request.GoodsStatus, ReasonID: p.ReasonID, Fee: p.Fee,
		Description: c.Request.Description}
	if c.Platform == Platform1688 {
		s.Carriage, s.Vouchers, s.OrderEntryIDs = p.Carriage, slices.Clone(p.Vouchers), slices.Clone(c.Request.OrderEntryIDs)
	} else {
		s.Vouchers = slices.Clone(c.Request.Vouchers)
	}
	return s
}

func returnSubmitStep(c CaseView, sh Shipment) *Step {
	return &Step{Name: StepReturnSubmit, Key: fmt.Sprintf("case:%d:return_submit:v%d", c.ID, c.Version),
		RefundID: c.RefundID, Company: sh.Company, Waybill: sh.Waybill, Phone: sh.Phone, Description: sh.Description}
}

func cancelStep(c CaseView) *Step {
	return &Step{Name: StepCancel, Key: fmt.Sprintf("case:%d:cancel:v%d", c.ID, c.Version), RefundID: c.RefundID}
}
