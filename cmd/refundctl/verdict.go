package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/runbook"
)

// Verdicts refundctl reports for a command: the worker's two
// (casestore.VerdictApplied, VerdictRejected) and its own for no verdict yet.
const verdictPending = opcommands.VerdictPending

// exitPending is the exit status of a command the worker gave no verdict on
// within --wait (pendingError). Rejected commands exit 4 (refusedError):
// nothing changed (but after worker_failed: see its advice).
const exitPending = 5

// pendingError: the command was published but the worker gave no verdict
// within the wait. Exit status 5.
type pendingError struct{ err error }

func (e *pendingError) Error() string { return e.err.Error() }
func (e *pendingError) Unwrap() error { return e.err }

// verdictOptions are the command verbs' flags for waiting on the verdict.
type verdictOptions struct {
	wait   time.Duration
	noWait bool
}

func addVerdictFlags(cmd *cobra.Command, o *verdictOptions) {
	f := cmd.Flags()
	f.DurationVar(&o.wait, "wait", 10*time.Second, "how long to wait for the worker's verdict (applied: exit 0, rejected: exit 4, none yet: exit 5) and, once applied, for the steps it started (the verdict then names the state they led to)")
	f.BoolVar(&o.noWait, "no-wait", false, "publish and exit without waiting for the verdict (prints the command id only)")
}

// verdictJSON is the worker's verdict on a command in --json output.
type verdictJSON struct {
	Verdict      string `json:"verdict"` // applied, rejected or pending
	CaseID       int64  `json:"caseId,omitempty"`
	State        string `json:"state,omitempty"`       // the case's state: once the verdict settled (settled) or at --wait; a batch row's as read with its verdict
	ParkedState  string `json:"parkedState,omitempty"` // where it stopped, when State is needs_attention
	Code         string `json:"code,omitempty"`        // the decision's code or the dead-letter reason
	Reason       string `json:"reason,omitempty"`
	DeadLetterID int64  `json:"deadLetterId,omitempty"`
	// The case's attention reason and text, read with State.
	Attention        string `json:"attention,omitempty"`
	AttentionMessage string `json:"attentionMessage,omitempty"`
	Next             string `json:"next,omitempty"` // what the operator can do
}

// describeVerdict is the verdict o with the case's state and what to do next.
func (a *app) describeVerdict(ctx context.Context, st *casestore.Store, c refundflow.Command, o casestore.CommandOutcome) (verdictJSON, error) {
	v, err := opcommands.Describe(ctx, st, o)
	if err != nil {
		return verdictJSON{}, err
	}
	return toVerdictJSON(c, v), nil
}

// toVerdictJSON is v as refundctl prints it, with what to do next (the
// direct and the remote way read v the same: opcommands.Verdict).
func toVerdictJSON(c refundflow.Command, v opcommands.Verdict) verdictJSON {
	out := verdictJSON{Verdict: v.Verdict, CaseID: v.CaseID, State: v.State, ParkedState: v.ParkedState, Code: v.Code, Reason: v.Reason,
		DeadLetterID: v.DeadLetterID, Attention: v.Attention, AttentionMessage: v.AttentionMessage}
	if out.Verdict == verdictPending {
		out.Next = fmt.Sprintf("the worker has not decided it yet (is it running?); follow it with: refundctl wait --command %s", c.ID)
		if out.Reason != "" { // why it could not be read: the worker is not in question
			out.Next = "follow it with: refundctl wait --command " + c.ID
		}
		return out
	}
	out.Next = nextStep(c, out)
	return out
}

// nextStep is the advice for a verdict: how to follow an applied command,
// what to do instead of a rejected one.
func nextStep(c refundflow.Command, v verdictJSON) string {
	caseRef := fmt.Sprintf("refundctl show %d", v.CaseID)
	if v.Verdict == casestore.VerdictApplied && v.State == string(refundflow.StateNeedsAttention) {
		// Stopped (a modification too, stopped again at once): following
		// it would wait for the operator.
		return stoppedNextStep(v.Attention, v.CaseID, string(c.Platform), v.ParkedState)
	}
	if v.Verdict == casestore.VerdictApplied && refundflow.State(v.State).Terminal() {
		return "it has ended: " + caseRef + " shows how"
	}
	if c.Kind == refundflow.InputModify {
		if next := modifyNextStep(c, v, caseRef); next != "" {
			return next
		}
	}
	if v.Verdict == casestore.VerdictApplied {
		return "follow it with: refundctl wait --command " + c.ID + " --state STATE, or " + caseRef
	}
	if v.DeadLetterID > 0 {
		dl := fmt.Sprintf("refundctl dead-letters show %d", v.DeadLetterID)
		switch events.DeadReason(v.Code) {
		case events.DeadUnknownCase:
			return "no case matches --case, --order or --sub-order: check them with refundctl list, or request a refund first; the command is kept as a dead letter (" + dl + ")"
		case events.DeadInvalidCommand, events.DeadPermanentError:
			return "the worker will not take this command as it is: correct it and send a new one; see " + dl
		case events.DeadWorkerFailed, events.DeadDeliveryLimit:
			look := "find its case with refundctl list"
			if v.CaseID > 0 {
				look = caseRef + " shows what it did"
			}
			if events.DeadReason(v.Code) == events.DeadDeliveryLimit {
				return "no worker finished it: the worker processes ended while handling it, each time (out of memory, killed; see their logs and exits), " +
					"or it waited past the delivery limit (a copy a worker still held may apply it yet: its verdict then becomes applied, and the dead letter is discarded). " +
					"It may have changed the case: " + look + ". Once the cause is found, retry the dead letter (refundctl dead-letters retry " +
					fmt.Sprint(v.DeadLetterID) + " --force) only if the case still needs it; see " + dl
			}
			return "the worker failed on it (a bug of its build: report it with " + dl + "); it may have changed the case: " + look +
				". Once a fixed build runs, retry the dead letter (refundctl dead-letters retry " + fmt.Sprint(v.DeadLetterID) + " --force) only if the case still needs it"
		}
		return "see " + dl + "; retry it with refundctl dead-letters retry " + fmt.Sprint(v.DeadLetterID)
	}
	switch v.Code {
	case refundflow.CodeDuplicate:
		return fmt.Sprintf("case %d already has it: nothing to do; follow the case with refundctl wait --command %s --state STATE, or %s", v.CaseID, c.ID, caseRef)
	case refundflow.CodeCaseOpen: // the reason says what to do; these, the commands
		if c.Platform == refundflow.Platform1688 {
			return "follow it with " + caseRef
		}
		return fmt.Sprintf("refundctl cancel %d, or follow it with %s", v.CaseID, caseRef)
	case refundflow.CodeCaseFinished:
		if c.Kind == refundflow.InputRequestRefund {
			return caseRef + " shows how it ended"
		}
		return "to refund again, start a new case with refundctl request" // the reason says it is finished
	case refundflow.CodeNotSupported:
		// The reason says where to do it instead (the console shows it
		// alone); this, what the case does then.
		if c.Kind == refundflow.InputCancel {
			return fmt.Sprintf("case %d follows the platform and ends closed once %s shows the refund closed (refundctl wait %d --state closed)",
				v.CaseID, c.Platform, v.CaseID)
		}
		at := refundflow.State(v.State)
		if at == refundflow.StateNeedsAttention {
			at = refundflow.State(v.ParkedState)
		}
		switch at { // the states of a case whose refund is on the platform
		case refundflow.StateWaitingSeller, refundflow.StateWaitingReturnShipment, refundflow.StateReturnRendering, refundflow.StateReturnSubmitting,
			refundflow.StateWaitingSellerReceive, refundflow.StateModifyRendering, refundflow.StateModifying, refundflow.StateCancelling:
			return fmt.Sprintf("case %d goes on following the refund", v.CaseID)
		}
		return fmt.Sprintf("case %d is as it was: %s", v.CaseID, caseRef) // (stopped before its refund, say: no refund to follow)
	case refundflow.CodeWorkerEnded:
		return fmt.Sprintf("case %d is held because worker processes kept ending while they worked on it (%s says how many times; "+
			"the worker's and the system's logs say why). Once the cause is fixed, or if another case was it: refundctl resolve %d --retry "+
			"(or --close --note TEXT), then send this command again", v.CaseID, caseRef, v.CaseID)
	}
	if v.CaseID > 0 {
		return "see the case: " + caseRef
	}
	return ""
}

// stoppedNextStep is what to do about case id on platform, stopped at
// parked ("" when not known) with the attention reason code: the
// runbook's advice, as show and the console give it (runbookAdvice).
func stoppedNextStep(code string, id int64, platform, parked string) string {
	if do := runbookAdvice(code, id, platform, parked); do != "" {
		return "to do: " + do
	}
	return fmt.Sprintf("refundctl show %d says why the case stopped, and docs/runbook.md the way out", id)
}

// withAttention is "STATE (code: message)" for a case with an attention
// reason, STATE otherwise (attentionText).
func withAttention(state, code, msg string) string {
	if code == "" && msg == "" {
		return state
	}
	return state + " (" + attentionText(code, msg) + ")"
}

// attentionText is "code: message" made safe for one line: the message is
// often the seller's own words, so its control characters (a newline, a
// terminal escape) become spaces; it is whole, never cut before its cause.
func attentionText(code, msg string) string {
	return cell(strings.TrimSuffix(code+": "+msg, ": "), 0)
}

// modifyNextStep is the advice for a modify_refund verdict where it differs
// from other commands' ("" where it does not): what follows a modification,
// and the ways out of a refusal when modify does not fit.
func modifyNextStep(c refundflow.Command, v verdictJSON, caseRef string) string {
	follow := fmt.Sprintf("refundctl wait %d --state waiting_seller,needs_attention", v.CaseID)
	if v.Verdict == casestore.VerdictApplied && refundflow.State(v.State).Resting() {
		// Settled: sent, and the seller decides again (a stop is
		// nextStep's).
		return fmt.Sprintf("the change was checked against the form read again and sent; the seller decides again: %s, or refundctl wait %d --state STATE", caseRef, v.CaseID)
	}
	if v.Verdict == casestore.VerdictApplied {
		return "the form is read again and the change checked against it, then sent; follow it with: " + follow + ", or " + caseRef
	}
	switch v.Code {
	case refundflow.CodeNotSupported:
		if c.Platform == refundflow.PlatformTaobao { // a refund the case adopted: the reason says where to change it
			return fmt.Sprintf("follow the case with %s, or withdraw the refund with refundctl cancel %d", caseRef, v.CaseID)
		}
		return fmt.Sprintf("accept the refusal with refundctl resolve %d --close --note TEXT, or wait for the platform to close it and request again", v.CaseID)
	case refundflow.CodeNotNow:
		if v.State == string(refundflow.StateNeedsAttention) {
			return fmt.Sprintf("%s says why the case stopped, and docs/runbook.md the way out (modify fits seller_refused only)", caseRef)
		}
		return fmt.Sprintf("the case is not stopped: follow it with %s, or withdraw the refund with refundctl cancel %d "+
			"(refundctl list --attention seller_refused lists the refusals to modify)", follow, v.CaseID)
	case refundflow.CodeDuplicate:
		return fmt.Sprintf("case %d is already making this change: nothing to do; follow it with: %s", v.CaseID, follow)
	}
	return ""
}

// verdictLine is the verdict in one line for the operator.
func verdictLine(v verdictJSON, wait time.Duration) string {
	var s string
	switch v.Verdict {
	case casestore.VerdictApplied:
		s = fmt.Sprintf("applied: case %d is %s", v.CaseID, withAttention(v.State, v.Attention, v.AttentionMessage))
	case casestore.VerdictRejected:
		s = fmt.Sprintf("rejected (%s)", v.Code)
		if v.CaseID > 0 {
			s += fmt.Sprintf(" on case %d (%s)", v.CaseID, v.State)
		}
		if v.Reason != "" {
			s += ": " + cell(v.Reason, 0)
		}
	default:
		s = fmt.Sprintf("pending: no verdict within %s", wait)
		if v.Reason != "" {
			s = "pending: " + cell(v.Reason, 0)
		}
	}
	if v.Next != "" {
		s += "; " + v.Next
	}
	return s
}

// verdictErr is the error (and so the exit status) of a verdict: nil for
// applied, refused (4) for rejected, pending (5) otherwise.
func verdictErr(v verdictJSON, wait time.Duration) error {
	switch v.Verdict {
	case casestore.VerdictApplied:
		return nil
	case casestore.VerdictRejected:
		return &refusedError{err: errors.New(verdictLine(v, wait))}
	}
	return &pendingError{err: errors.New(verdictLine(v, wait))}
}

// runbookAdvice is the runbook's advice for attention code, for case id
// on platform stopped at parked: its sentences for other platforms or
// stops left out (runbook.Tailor), its commands naming the case
// (runbook.ForCase). "" for a code the runbook does not list.
func runbookAdvice(code string, id int64, platform, parked string) string {
	r, ok := runbook.Embedded().Reasons[code]
	if !ok || r.Do == "" {
		return ""
	}
	return runbook.ForCase(runbook.Tailor(r.Do, platform, parked), id)
}
