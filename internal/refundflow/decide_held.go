// A case the worker process keeps ending on: held for an operator.

package refundflow

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// heldCase decides an input for a case that worker processes keep ending
// on (ok true), before anything that could call the platform. A process
// that ends while it works on a case (killed, out of memory, a crash no
// recover catches) is woken again on the case after its restart, by the
// case's timer, the reconciler or the message redelivered; if it is the
// case that ends it, that never stops, and every input in flight goes
// down with it each time. So:
//
//   - once Policy.EndedLimit processes in a row ended holding the case
//     (CaseView.LeasesAbandoned), its next input holds it (CodeWorkerEnded):
//     needs_attention at the state it works at, with no timer, keeping the
//     attention it had (Decision.Held), and the input is decided again on
//     the held case (Reapply). Neither a step's result (the process that
//     ran the step is alive, and lets go of the case when the input ends,
//     which starts the count again) nor an operator's resolve (the operator
//     acts on the case as it is) holds it;
//   - a held case makes no platform call for any input: a timer or a
//     callback changes nothing but the record of it (a callback is a hint:
//     the platform is read once the hold is off; the reconciler leaves held
//     cases out), a command other than resolve is refused with what to do,
//     and resolve --retry takes the hold off (release) while --close closes
//     it as any parked case.
//
// An open intent stays open: once the hold is off, the case's timer
// settles it by asking the platform first, as after any crash.
func (d Decider) heldCase(c CaseView, in Input) (Decision, bool) {
	held := c.State == StateNeedsAttention && c.AttentionCode == CodeWorkerEnded
	switch {
	case in.Kind == InputStepResult:
		return Decision{}, false
	case held && in.Kind == InputResolve:
		if in.Resolve == nil || in.Resolve.Action != ResolveRetry || in.Resolve.Validate() != nil {
			return Decision{}, false // closed, or refused, as any parked case
		}
		return d.release(c, in), true
	case held:
		dec := keep(c, CodeWorkerEnded, "held because worker processes ended on it: no platform call until an operator resolves it")
		if isCommand(in.Kind) {
			dec.Outcome, dec.Reason = OutcomeReject, fmt.Sprintf("case %d is held because worker processes ended on it; "+
				"`refundctl resolve %d --retry` once the cause is fixed (or if another case was the cause), or close it with "+
				"`refundctl resolve %d --close --note …`; then send this command again", c.ID, c.ID, c.ID)
		}
		dec.WakeAt = time.Time{}
		return dec, true
	case in.Kind != InputResolve && d.Policy.EndedLimit > 0 && c.LeasesAbandoned >= d.Policy.EndedLimit:
		dec := park(c, CodeWorkerEnded, endedMessage(c))
		dec.Held = &Attention{}
		if c.AttentionCode != "" {
			dec.Held = &Attention{Code: c.AttentionCode, Message: c.AttentionMessage}
		}
		dec.Reapply = true
		return dec, true
	}
	return Decision{}, false
}

// release takes the hold off a held case at the operator's retry: the case
// is as it was before. A parked case is parked again for its own reason
// (the operator resolves it as before); any other goes back to its state,
// with its flag if it had one. Either way its timer is due now, so that the
// worker takes it up where it stopped (an open intent settled by asking
// the platform first, a step resumed, a wait checked, a timer the hold
// dropped made good). Nothing is sent to the platform by the retry itself.
func (d Decider) release(c CaseView, in Input) Decision {
	why := "the hold was taken off by the operator"
	if note := strings.TrimSpace(in.Resolve.Note); note != "" {
		why += ": " + note
	}
	if h := c.Held; h != nil && h.Code != "" && !slices.Contains(FlagCodes(), h.Code) {
		dec := parkAt(c.Parked, h.Code, h.Message)
		dec.Code, dec.Reason = "retried", fmt.Sprintf("%s; the case stops at %s again (%s)", why, c.Parked, h.Code)
		// Due now: whatever its timer was for (an open side effect, a
		// step's backoff, the order's news) was dropped by the hold; a
		// wake that finds nothing to do leaves a stopped case no timer.
		dec.WakeAt = in.Now
		return dec
	}
	dec := Decision{Outcome: OutcomeAct, State: c.Parked, WakeAt: in.Now, Code: "retried",
		Reason: fmt.Sprintf("%s; back at %s, taken up again now", why, c.Parked)}
	if h := c.Held; h != nil && h.Code != "" && h.Code != AttnInputsFailing { // that one's count and text are out of date
		dec.Attention = &Attention{Code: h.Code, Message: h.Message}
	}
	return dec
}

// endedMessage is the worker_ended text: what happened, what holding the
// case means, and what an operator does about it.
func endedMessage(c CaseView) string {
	msg := fmt.Sprintf("%d worker processes in a row ended while they held this case (killed, out of memory, or a crash the worker "+
		"cannot catch) with its work in flight: this case may be why, or it was in flight beside the one that is. "+
		"It is held so that it cannot end the worker again: no platform call and no timer, its callbacks recorded only. ", c.LeasesAbandoned)
	if c.State == StateNeedsAttention && c.AttentionCode != "" {
		msg += fmt.Sprintf("It was stopped for %s before; it stops for it again once the hold is off. ", c.AttentionCode)
	}
	if c.Intent != nil {
		msg += fmt.Sprintf("Its %s may have reached the platform: the platform is asked first once the hold is off. ", c.Intent.Step)
	}
	return msg + fmt.Sprintf("Look in the worker's log and the system's (an out-of-memory kill is in the kernel's) for why the process ended; "+
		"once that is fixed, or if another case was the cause, `refundctl resolve %d --retry` takes the hold off, "+
		"or close the case: `refundctl resolve %d --close --note …`", c.ID, c.ID)
}
