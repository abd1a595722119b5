// A case the worker process keeps ending on: held for an operator.

package refundflow

import (
	"fmt"
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
//     (CaseView.LeasesAbandoned), an input other than a step's result
//     parks it (CodeWorkerEnded) with no timer, and is decided again on
//     the parked case (Reapply). A step's result is never parked on: the
//     process that ran the step is alive, and lets go of the case when the
//     input ends, which starts the count again;
//   - a case so parked makes no platform call for any input but an
//     operator's resolve, which takes it out as it does any parked case
//     (retry, close). A timer, a reconcile or a callback changes nothing
//     (a callback is a hint: the retry reads the platform), and any other
//     command is refused with what to do.
//
// An open intent stays open: the operator's retry settles it by asking the
// platform first, as after any park.
func (d Decider) heldCase(c CaseView, in Input) (Decision, bool) {
	held := c.State == StateNeedsAttention && c.AttentionCode == CodeWorkerEnded
	switch {
	case in.Kind == InputStepResult || (held && in.Kind == InputResolve):
		return Decision{}, false
	case held:
		dec := keep(c, CodeWorkerEnded, "held because worker processes ended on it: no platform call until an operator resolves it")
		if isCommand(in.Kind) {
			dec.Outcome, dec.Reason = OutcomeReject, fmt.Sprintf("case %d is held because worker processes ended on it; "+
				"`refundctl resolve %d --retry` once the cause is fixed (or if another case was the cause), or close it with "+
				"`refundctl resolve %d --close --note …`; then send this command again", c.ID, c.ID, c.ID)
		}
		dec.WakeAt = time.Time{}
		return dec, true
	case d.Policy.EndedLimit > 0 && c.LeasesAbandoned >= d.Policy.EndedLimit:
		dec := park(c, CodeWorkerEnded, endedMessage(c))
		dec.Reapply = true
		return dec, true
	}
	return Decision{}, false
}

// endedMessage is the worker_ended text: what happened, what holding the
// case means, and what an operator does about it.
func endedMessage(c CaseView) string {
	msg := fmt.Sprintf("%d worker processes in a row ended while they held this case (killed, out of memory, or a crash the worker "+
		"cannot catch), each with the case's step or a platform read in flight. The case is held so that it cannot end the worker "+
		"again: no platform call and no timer, its callbacks recorded only. ", c.LeasesAbandoned)
	if c.Intent != nil {
		msg += fmt.Sprintf("Its %s may have reached the platform: a retry asks the platform first. ", c.Intent.Step)
	}
	return msg + fmt.Sprintf("Look in the worker's log and the system's (an out-of-memory kill is in the kernel's) for why the process ended; "+
		"once that is fixed, or if another case was the cause, `refundctl resolve %d --retry`, or close it: `refundctl resolve %d --close --note …`",
		c.ID, c.ID)
}
