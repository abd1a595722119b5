// Settling an intent: a side effect that may have reached the platform is
// never sent again until the platform's view shows it did not take effect.

package refundflow

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/delay"
	"github.com/refundhub/refundhub/internal/excerpt"
)

// settleIntent handles any input while a side effect may have reached the
// platform: ask the platform, and only if it did not take effect send it
// again, under the same key.
//
// A command that arrives meanwhile is decided after the intent is settled
// (Decision.Reapply), on the case as the settlement left it; while the
// platform cannot tell yet, it waits (OutcomeRetry) rather than being lost.
func (d Decider) settleIntent(c CaseView, v *PlatformView, in Input) Decision {
	it := *c.Intent
	if v == nil {
		return fetch(c, CodeIntentUnsettled, fmt.Sprintf("a %s may have reached the platform: query it before anything else", it.Step))
	}
	var dec Decision
	switch {
	case it.Step == StepMessage:
		dec = d.settleMessage(c, it, *v, in.Now)
	case v.Inconclusive:
		return d.settleInconclusive(c, it, *v, in)
	case otherRefund(c, *v):
		return d.settleOtherRefund(c, it, *v, in)
	default:
		took, absent := intentEvidence(c, it.Step, *v)
		switch {
		case took:
			dec = d.settleTook(c, it, *v, in.Now)
		case !absent:
			dec = d.settleUnproven(c, it, *v, in.Now)
		default:
			var resent bool
			if dec, resent = d.settleAbsent(c, it, *v, in); !resent {
				return dec
			}
		}
	}
	dec.Reapply = isCommand(in.Kind)
	return dec
}

// intentEvidence reads what the platform's view proves about a side effect
// of step on case c. took: the view shows the effect. absent: the view
// positively shows it did not happen, so it may be sent again. Anything else
// (a view behind the case, an unknown status, a terminal status, another
// waybill) proves neither, and the effect is never sent again.
func intentEvidence(c CaseView, step StepName, v PlatformView) (took, absent bool) {
	t, attn := State(""), (*Attention)(nil)
	if v.Found {
		t, attn = target(c.Platform, v)
	}
	switch step {
	case StepSubmit:
		return v.Found, !v.Found
	case StepReturnSubmit:
		// A return under another waybill is one, but not this
		// submission's: neither.
		took = v.Found && (ours(c, v) || (t == StateWaitingSellerReceive && !otherWaybill(c, v)))
		absent = v.Found && t == StateWaitingReturnShipment && attn == nil && strings.TrimSpace(v.ReturnWaybill) == ""
		return took, absent
	case StepCancel:
		took = !v.Found || t == StateClosed
		absent = v.Found && t != "" && !t.Terminal() // a known open status: the refund is still there
		return took, absent
	case StepModify:
		// Only a refused refund is modified, and only the buyer moves it
		// out of refused (modify, cancel) or the platform closes it.
		absent = v.Found && attn != nil && attn.Code == AttnSellerRefused
		took = v.Found && attn == nil && t != "" && !t.Terminal()
		return took, absent
	}
	return false, false
}

// otherRefund reports whether the view is of a refund other than the case's:
// it says nothing about the case's own intent.
func otherRefund(c CaseView, v PlatformView) bool {
	return v.Found && c.RefundID != "" && v.RefundID != "" && v.RefundID != c.RefundID
}

// withoutIntent is the case as it would be with its intent settled.
func withoutIntent(c CaseView) CaseView {
	c.Intent = nil
	return c
}

// settleMessage closes a message intent: messages cannot be checked on the
// platform, so at most once means never sent again.
func (d Decider) settleMessage(c CaseView, it Intent, v PlatformView, now time.Time) Decision {
	dec := d.fromView(withoutIntent(c), v, now)
	if dec.Step != nil && dec.Step.Name == StepMessage {
		dec.Step = nil
	}
	dec.Resolve = &Resolution{Key: it.Key, Code: "unverified", Note: "a message may have been posted; not sent again"}
	return actOn(c, dec)
}

// settleInconclusive: the platform cannot tell. Within the grace the case
// waits for evidence (a refund callback); after it, the case parks where
// only the platform or an operator moves it. A refund no case can ever
// own (PlatformView.Unattributed) parks it at once, saying why and that
// only closing it helps.
func (d Decider) settleInconclusive(c CaseView, it Intent, v PlatformView, in Input) Decision {
	dec := d.inconclusive(c, it, v, in)
	// Kept with the case: later reads, without the callback that named
	// the refund, would list the case's order and take its silence for
	// proof that the submission did not take effect. Only an act or a
	// no-op (made an act) is stored; a command that waits or is refused
	// leaves it to the next look, which reads the same.
	learned := (v.CallbackRefund != "" && c.Plan.CallbackRefund == "") || (v.OrderElsewhere != nil && c.Plan.OrderElsewhere == nil)
	if learned && (dec.Outcome == OutcomeAct || dec.Outcome == OutcomeNoOp) {
		plan := c.Plan
		plan.CallbackRefund = cmp.Or(plan.CallbackRefund, v.CallbackRefund) // the first kept: later looks read it and this run's
		if v.OrderElsewhere != nil {
			plan.OrderElsewhere = v.OrderElsewhere
		}
		dec.Plan = &plan
		if dec.Outcome == OutcomeNoOp {
			// Only an act stores documents. The attention stays dec's, or
			// the stopped case's own.
			dec.Outcome = OutcomeAct
			if dec.Attention == nil && dec.State == StateNeedsAttention {
				dec.Attention = &Attention{Code: c.AttentionCode, Message: c.AttentionMessage}
			}
		}
	}
	return dec
}

// inconclusive is settleInconclusive's decision, but for what it keeps
// in the plan.
func (d Decider) inconclusive(c CaseView, it Intent, v PlatformView, in Input) Decision {
	if c.State == StateNeedsAttention && c.AttentionCode == CodeResendsFailed {
		// Stopped on the platform's refusals: a view that cannot tell
		// changes nothing of that. Parked again as unverifiable, the case
		// would flip back at the next view showing no effect.
		if len(v.Unattributed) > 0 {
			// A refund no case can own: the resends' advice (a retry)
			// no longer holds, whatever comes.
			advice := unattributedAdvice(c, it.Step, v)
			if isCommand(in.Kind) {
				return reject(c, CodeResendsFailed, advice)
			}
			why := "the platform lists a refund no case owns: only an operator ends this case"
			if v.OrderElsewhere != nil {
				why = "the platform files the sub-order under another order: only an operator ends this case"
			}
			dec := keep(c, CodeResendsFailed, why)
			dec.WakeAt = time.Time{} // parked: no timer (as in resendsFailed)
			if advice != c.AttentionMessage {
				dec.Attention = &Attention{Code: CodeResendsFailed, Message: advice}
			}
			return dec
		}
		if in.Kind == InputResolve {
			// A retry needs the platform to show no effect first.
			return reject(c, CodeInconclusive, fmt.Sprintf("the platform cannot tell now whether case %d's %s took effect, and it is sent "+
				"again only once the platform shows it did not: `refundctl resolve %d --retry` again later; meanwhile check the order "+
				"in the platform's back office; to stop, `refundctl resolve %d --close --note …`", c.ID, it.Step, c.ID, c.ID))
		}
		dec := d.resendsFailed(c, it, in)
		if dec.Outcome == OutcomeNoOp {
			dec.Reason = fmt.Sprintf("the platform cannot tell whether the %s took effect; still stopped on its %d refused resends", it.Step, it.Refusals)
		}
		return dec
	}
	// A refund no case will ever own: no evidence will come, so no grace.
	// (A refund callback for it reaches this case, by its sub-order, only
	// as a hint, which the Taobao fetch never takes for the case's refund:
	// it lists again, and the list cannot tell; it only keeps the hint
	// from being read as absent (hintedTaobao). Were listTaobao to take
	// the hint as the case's refund, this early park would be wrong.)
	unattributed := len(v.Unattributed) > 0
	if until := it.Since.Add(d.Policy.IntentGrace); !unattributed && d.Policy.IntentGrace > 0 && !it.Since.IsZero() && in.Now.Before(until) {
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
	if c.State == StateNeedsAttention && c.AttentionCode == CodeUnverifiable {
		// Parked for this already. A command cannot be decided while the
		// effect is unknown (a new request could submit twice): refused
		// with the way out, rather than re-parked and decided again.
		if isCommand(in.Kind) {
			if unattributed {
				return reject(c, CodeUnverifiable, unattributedAdvice(c, it.Step, v))
			}
			return reject(c, CodeUnverifiable, unverifiableAdvice(c, it.Step))
		}
		dec := keep(c, CodeUnverifiable, fmt.Sprintf("still cannot tell whether the %s took effect", it.Step))
		dec.WakeAt = time.Time{} // parked: no timer left to fire every pass (as in resendsFailed)
		if advice := unattributedAdvice(c, it.Step, v); unattributed && c.AttentionMessage != advice {
			dec.Attention = &Attention{Code: CodeUnverifiable, Message: advice} // parked before the reason was known
		}
		return dec
	}
	msg := fmt.Sprintf("cannot tell whether the %s took effect; check on the platform", it.Step)
	if unattributed {
		msg = unattributedAdvice(c, it.Step, v)
	}
	dec := park(c, CodeUnverifiable, msg)
	dec.Reapply = isCommand(in.Kind) // the command is then decided on the parked case, not swallowed
	return dec
}

// unverifiableAdvice tells the operator of a case parked intent_unverifiable
// what to do: the platform cannot say whether the step took effect, so only
// its back office can, and resolve --close is the way out either way.
func unverifiableAdvice(c CaseView, step StepName) string {
	adopt := ""
	if step == StepSubmit {
		adopt = fmt.Sprintf(" (or have the case follow it now: `refundctl resolve %d --adopt REFUND`, with its id)", c.ID)
	}
	return fmt.Sprintf("the platform cannot tell whether case %d's %s took effect: check the refund in the platform's back office; "+
		"if it is there, its next callback moves the case on%s; if not, or to stop here, close the case with "+
		"`refundctl resolve %d --close --note …` (then request again if needed)", c.ID, step, adopt, c.ID)
}

// unattributedAdvice tells the operator of a case whose intent the
// platform can never settle (PlatformView.Unattributed) why, and the one
// way out: waiting, a retry or a callback cannot help, because no case
// will ever own the refunds listed, or (OrderElsewhere) the case's order
// is not the one the platform files its sub-order under.
func unattributedAdvice(c CaseView, step StepName, v PlatformView) string {
	if o := v.OrderElsewhere; o != nil {
		return fmt.Sprintf("the platform files case %d's sub-order %s under order %s, not the case's order %s, so the case cannot "+
			"list the sub-order's refunds: refund %s on it (a callback named it) may be this %s's, and the %s is not sent again. "+
			"Check the refund in the platform's back office (it goes on there whatever the case does): if it is this case's, "+
			"have the case follow it with `refundctl resolve %d --adopt %s`; otherwise close the case with "+
			"`refundctl resolve %d --close --note …`; a new request for the sub-order names order %s",
			c.ID, excerpt.Of(o.SubOrderID, 40), excerpt.Of(o.PlatformOrder, 40), excerpt.Of(o.CaseOrder, 40),
			excerpt.Of(o.RefundID, 40), step, step, c.ID, excerpt.Of(o.RefundID, 40), c.ID, excerpt.Of(o.PlatformOrder, 40))
	}
	sorted := slices.Sorted(slices.Values(v.Unattributed)) // the same text whatever order the list gave
	ids := make([]string, 0, min(len(sorted), 3))
	for _, id := range sorted[:min(len(sorted), 3)] {
		ids = append(ids, excerpt.Of(id, 40))
	}
	named := strings.Join(ids, ", ")
	if more := len(sorted) - len(ids); more > 0 {
		named += fmt.Sprintf(" and %d more", more)
	}
	return fmt.Sprintf("the platform lists refund %s on case %d's sub-order, which no case owns, and case %d was opened by an older build "+
		"that did not record the sub-order's refunds before its first %s: the platform's list cannot tell whether it is this case's, so "+
		"the %s is not sent again and a retry cannot help. Check the refund in the platform's back office (it goes on there "+
		"whatever the case does): if it is this case's, have the case follow it with `refundctl resolve %d --adopt %s`; "+
		"otherwise close the case with `refundctl resolve %d --close --note …`",
		named, c.ID, c.ID, step, step, c.ID, adoptArg(sorted), c.ID)
}

// adoptArg is the refund an adopt command in advice names: the one listed,
// or REFUND when there are several to choose from.
func adoptArg(refunds []string) string {
	if len(refunds) == 1 {
		return excerpt.Of(refunds[0], 40)
	}
	return "REFUND"
}

// settleOtherRefund leaves the intent open (neither settled nor sent again)
// and looks again later: a view of another refund says nothing about it.
func (d Decider) settleOtherRefund(c CaseView, it Intent, v PlatformView, in Input) Decision {
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

// settleTook: the platform shows the effect. The case follows the view, and
// never stays parked before the step that took effect.
func (d Decider) settleTook(c CaseView, it Intent, v PlatformView, now time.Time) Decision {
	dec := d.fromView(withoutIntent(c), v, now)
	after := map[StepName]State{StepSubmit: StateWaitingSeller, StepReturnSubmit: StateWaitingSellerReceive, StepCancel: StateCancelled,
		StepModify: StateWaitingSeller}[it.Step]
	if dec.State == StateNeedsAttention && !after.Terminal() && stateRank[dec.Parked] < stateRank[after] {
		// Parked (e.g. an unknown status), but past the step that took
		// effect: never parked where it would run it again.
		dec.Parked = after
	}
	if dec.Outcome == OutcomeNoOp {
		// The platform has the effect but its status has not moved yet.
		dec = d.to(after, &v, now, "intent_confirmed", "the platform has the effect")
		if c.RefundID == "" && v.RefundID != "" {
			dec.RefundID = v.RefundID
		}
	}
	dec.Resolve = &Resolution{Key: it.Key, Done: true, Note: "the platform confirmed it took effect"}
	return dec
}

// settleUnproven: the view proves neither the effect nor its absence. The
// intent is closed unconfirmed, and the case follows the view, unless that
// would run the step again: then it parks for the platform or an operator.
func (d Decider) settleUnproven(c CaseView, it Intent, v PlatformView, now time.Time) Decision {
	dec := actOn(c, d.fromView(withoutIntent(c), v, now))
	res := &Resolution{Key: it.Key, Code: "superseded", Note: fmt.Sprintf("not confirmed; the platform is now %q", v.Status(c.Platform))}
	if it.Step == StepReturnSubmit && otherWaybill(c, v) {
		// A return, but not shown to be this one: it may have been
		// replaced late, or changed on the platform after it took effect.
		res.Code = CodeOtherWaybill
		res.Note = fmt.Sprintf("cannot tell: the platform holds return waybill %q, not this submission's %q; not sent again",
			excerpt.Of(strings.TrimSpace(v.ReturnWaybill), 64), excerpt.Of(c.Shipment.Waybill, 64))
	}
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
	return dec
}

// settleAbsent: the platform shows no effect. Once the newest attempt can no
// longer be on its way (it timed out on our side, or its process died
// mid-call), the step is sent again under the same key (resent); until then
// the case waits and asks again (resending now could submit twice).
//
// A submission the platform shows no refund of, on an order that has ended
// since (an unseen order event), did not take effect and no longer can: the
// intent is settled and the request ends (CodeOrderEnded), rather than the
// submission being sent to a cancelled order for ever while the order's news
// waits behind the intent.
//
// Resends back off: the wait before each doubles from Policy.InFlight. Once
// the platform has refused Policy.ResendLimit of them (and still shows no
// effect), the case parks (CodeResendsFailed) and nothing more is sent until
// an operator retries (resolve --retry: sent once more, after the in-flight
// wait only, the case out of needs_attention meanwhile). Resends whose
// outcome is unknown again, or rate limited, do not count and start the
// count again: the platform is down or busy, and the case goes on when it
// is back.
func (d Decider) settleAbsent(c CaseView, it Intent, v PlatformView, in Input) (dec Decision, resent bool) {
	last, n := it.lastAttempt(), it.resends()
	// An operator's corrected shipment or modification replaces the open
	// one the platform shows absent (decide_replace.go) rather than
	// waiting behind it.
	replace := replacing(c, it, in)
	// resolve --retry, or a replacement: once more, whatever the count,
	// after the in-flight window only.
	operator := in.Kind == InputResolve || replace
	stop := !operator && d.Policy.ResendLimit > 0 && it.Refusals >= d.Policy.ResendLimit
	ended := -1 // an unseen order event that ended the order: it settles a submission
	if it.Step == StepSubmit {
		ended = slices.IndexFunc(c.OrderEvents, func(e OrderEvent) bool { return e.Ended })
	}
	// One wait: the in-flight window of the newest attempt, which must
	// pass before "no effect" is trusted, or longer, the backoff of a
	// resend still to come.
	wait := d.Policy.InFlight
	if !operator && !stop && ended < 0 && n > 0 {
		wait = max(wait, d.resendWait(n))
	}
	if until := last.Add(wait); wait > 0 && !last.IsZero() && in.Now.Before(until) {
		reason := fmt.Sprintf("the platform shows no %s yet, but the attempt (last at %s) may still reach it; asking again at %s%s",
			it.Step, last.Format(time.RFC3339), until.Format(time.RFC3339), sendsSoFar(it))
		flag := fmt.Sprintf("the platform shows no %s yet, but the last attempt may still reach it: asking again at %s, and sending it again then if it still shows none%s",
			it.Step, stamp(until), sendsSoFar(it))
		if replace {
			return replaceNotYet(c, it, in, until), false
		}
		switch {
		case ended >= 0:
			flag = fmt.Sprintf("the order ended on the platform (%s) and the platform shows no refund yet, but the last attempt may still reach it: "+
				"asking again at %s; if it still shows none, the request ends there", describeOrderEvent(c.OrderEvents[ended]), stamp(until))
			reason = flag
		case stop:
			flag = fmt.Sprintf("the platform refused %d resends of the %s in a row and shows no effect (the last answer: %s): "+
				"asking again at %s; if it still shows none, the case stops for an operator",
				it.Refusals, it.Step, lastAnswer(it), stamp(until))
			reason = flag
		case n > 0 && !operator:
			flag = fmt.Sprintf("the platform still shows no %s after %d sends under the same key (the last answer: %s): asking again at %s, "+
				"and sending it again then if it still shows none%s", it.Step, it.Sends, lastAnswer(it), stamp(until), d.refusalsSoFar(it))
			reason = flag
		}
		dec := keep(c, CodeInFlight, reason)
		dec.Attention = waiting(c, flag)
		return waitUntil(dec, until, in), false
	}
	if ended >= 0 {
		return d.submitEndedWithOrder(c, it, v, in, c.OrderEvents[ended]), false
	}
	if replace {
		return d.replaced(c, it, v, in), false
	}
	if stop {
		return d.resendsFailed(c, it, in), false
	}
	var st *Step
	switch it.Step {
	case StepSubmit:
		st = submitStep(c, c.Plan)
	case StepReturnSubmit:
		if c.Shipment == nil {
			return park(c, AttnBadStepResult, "return intent without a recorded shipment"), false
		}
		st = returnSubmitStep(c, *c.Shipment)
	case StepModify:
		st = modifyStep(c, c.Plan)
	default:
		st = cancelStep(c)
	}
	st.Key, st.Resume = it.Key, true
	dec = d.to(c.State, &v, in.Now, "intent_absent", fmt.Sprintf("the platform shows no effect of the %s: send it again", it.Step))
	switch {
	case c.State == StateNeedsAttention && c.AttentionCode == CodeResendsFailed:
		// The operator's retry (or a limit raised since it stopped): the
		// case goes back to where it stopped, as any case sending its
		// step, so that what follows (a refusal parks it again; no answer
		// backs off) reads true.
		dec = d.to(c.Parked, &v, in.Now, "intent_absent", fmt.Sprintf("the platform shows no effect of the %s: send it again (the case leaves %s)",
			it.Step, CodeResendsFailed))
	case c.State == StateNeedsAttention:
		dec.State, dec.Parked, dec.WakeAt = c.State, c.Parked, time.Time{}
		dec.Attention = &Attention{Code: c.AttentionCode, Message: c.AttentionMessage}
	}
	dec.Step = st
	return dec, true
}

// waitUntil is dec waiting for until: the case's timer then, and a command
// back then (not every few minutes, using up its deliveries).
func waitUntil(dec Decision, until time.Time, in Input) Decision {
	dec.WakeAt = until
	if isCommand(in.Kind) {
		dec.Outcome, dec.RetryAt = OutcomeRetry, until
	}
	return dec
}

// resendWait is how long after the newest attempt the intent's step is
// sent again once it has been resent n times: Policy.InFlight, doubled for
// each resend, up to InFlight·2^ResendLimit (the wait after the
// ResendLimit-th resend: a platform down for hours is asked that often,
// and the case goes on soon after it is back) and to Policy.Recheck (a
// day when that is 0).
func (d Decider) resendWait(n int) time.Duration {
	ceiling := cmp.Or(d.Policy.Recheck, 24*time.Hour)
	if d.Policy.ResendLimit > 0 {
		ceiling = min(ceiling, delay.Doubling(d.Policy.InFlight, ceiling, d.Policy.ResendLimit))
	}
	return delay.Doubling(d.Policy.InFlight, ceiling, n)
}

// refusalsSoFar tells how many resends the platform has refused of the
// Policy.ResendLimit that stop the case; nothing when there is no limit.
func (d Decider) refusalsSoFar(it Intent) string {
	if d.Policy.ResendLimit <= 0 {
		return ""
	}
	return fmt.Sprintf(" (%d refused in a row; the case stops for an operator after %d)", it.Refusals, d.Policy.ResendLimit)
}

// sendsSoFar says, after a resend, how many sends there were and what the
// last got; nothing before the first resend.
func sendsSoFar(it Intent) string {
	if it.resends() == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d sends under the same key so far; the last: %s)", it.Sends, lastAnswer(it))
}

// lastAnswer is what the intent's newest attempt got, for operators.
func lastAnswer(it Intent) string {
	if it.LastError == "" {
		return "no answer recorded"
	}
	return excerpt.Of(it.LastError, MaxAttentionText/2)
}

// resendsFailed parks a case whose intent's step the platform still shows
// no effect of after refusing Policy.ResendLimit resends. The intent stays
// open: a later view showing the effect settles it and moves the case on.
// A command meanwhile is refused with the ways out; resolve --retry
// (onResolve) sends the step once more, and a corrected shipment or
// modification replaces it (decide_replace.go).
func (d Decider) resendsFailed(c CaseView, it Intent, in Input) Decision {
	msg := fmt.Sprintf("the platform refused %d resends of the %s in a row and shows no effect of it (%d sends under the same key in all; "+
		"the last answer: %s); not sent again automatically. "+
		"Check the order in the platform's back office: if the %s took effect there, the case's next check moves it on; "+
		"to send it once more, `refundctl resolve %d --retry`%s; to stop, `refundctl resolve %d --close --note …`",
		it.Refusals, it.Step, it.Sends, lastAnswer(it), it.Step, c.ID, correctionWay(c, it), c.ID)
	if c.State == StateNeedsAttention && c.AttentionCode == CodeResendsFailed {
		if isCommand(in.Kind) {
			return reject(c, CodeResendsFailed, msg)
		}
		dec := keep(c, CodeResendsFailed, fmt.Sprintf("still no %s on the platform after %d refused resends", it.Step, it.Refusals))
		// No timer: a parked case is the operator's (the reconciler still
		// looks). One left from before (a retry's backoff, an order's
		// price change) would fire every timer pass, each time asking the
		// platform and deciding this again.
		dec.WakeAt = time.Time{}
		if msg != c.AttentionMessage {
			dec.Attention = &Attention{Code: CodeResendsFailed, Message: msg} // the count and last answer as they are now
		}
		return dec
	}
	dec := park(c, CodeResendsFailed, msg)
	dec.Reapply = isCommand(in.Kind) // the command is then decided on the parked case, and refused there
	return dec
}

// submitEndedWithOrder settles a submission the platform shows no refund
// of, on an order that ended since (ev): it did not take effect and no
// longer can, so the request ends there, as it does when the order ends
// before anything is submitted (onOrderEvents).
func (d Decider) submitEndedWithOrder(c CaseView, it Intent, v PlatformView, in Input, ev OrderEvent) Decision {
	dec := d.to(StateCancelled, &v, in.Now, CodeOrderEnded, fmt.Sprintf("the order ended on the platform (%s) and the platform shows no refund "+
		"from the submission: it did not take effect and no longer can; the request ends here", describeOrderEvent(ev)))
	dec.Resolve = &Resolution{Key: it.Key, Code: CodeOrderEnded,
		Note: fmt.Sprintf("no refund on the platform, and the order ended (%s): not sent again", describeOrderEvent(ev))}
	dec.OrderEventsSeen = c.OrderEvents[len(c.OrderEvents)-1].ID
	// A request that opened the case has its verdict here; another command
	// is then refused on the finished case, saying so.
	dec.Reapply = isCommand(in.Kind) && in.Kind != InputRequestRefund
	return dec
}

// correctionWay is the other way out of a return submission or a
// modification the platform keeps refusing: a corrected one (replaced).
func correctionWay(c CaseView, it Intent) string {
	switch it.Step {
	case StepReturnSubmit:
		return fmt.Sprintf("; to correct the carrier or waybill, `refundctl ship %d --company … --waybill …`", c.ID)
	case StepModify:
		return fmt.Sprintf("; to change the modification, `refundctl modify %d …`", c.ID)
	}
	return ""
}
