// Decisions from the platform's view: the state a status implies, following it
// forwards, and settling an intent whose effect on the platform is not yet known.

package refundflow

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
	"github.com/refundhub/refundhub/internal/platform"
)

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
