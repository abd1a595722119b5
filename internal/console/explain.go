package console

import (
	"fmt"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// advice is what to do about each attention code, in the words of
// docs/runbook.md's "Attention reasons" table, shortened for the case
// page. (The runbook is the fuller text; TestAdviceForEveryCode keeps
// this table complete, not equal: the page says less.)
var advice = map[string]string{
	refundflow.AttnSellerRefused: "Wait: the seller may still agree, and the platform's next status moves the case on (Retry asks now). " +
		"Taobao: refundctl modify CASE --amount … changes the request and sends it again; cancel withdraws it. " +
		"To accept the refusal, Close with a note. 1688: the platform closes it in time; to stop sooner, Close with a note.",
	refundflow.AttnRefundMissing: "Check the refund in the platform's back office. If it is back, Retry follows it; if it is gone, Close with a note.",
	refundflow.AttnUnknownStatus: "Map the status in the platform profile (refundctl doctor prints the line) and restart the worker; " +
		"then Retry moves the case on. Or Close with a note.",
	refundflow.AttnPlatformError: "Fix the cause on the platform, then Retry sends the step again. To change what was asked, " +
		"re-request (refundctl cancel, then request). Or Close with a note.",
	refundflow.AttnReasonNotOffered: "The requested reason is not on the platform's form: re-request with a reason the form offers " +
		"(refundctl reasons lists them; stopped at modify_rendering: refundctl modify with one). " +
		"Retry reads the form again, if the seller's offer may have changed. Or Close with a note.",
	refundflow.AttnFeeOutOfBounds: "The amount is outside the bounds the attention text names: re-request within them " +
		"(Taobao: --amount max takes the most allowed; stopped at modify_rendering: refundctl modify). Retry reads the form again.",
	refundflow.AttnFeeNotEditable:  "The form fixes the amount: re-request with that amount (or --amount max).",
	refundflow.AttnSaleNotAllowed:  "Nothing can be filed on this sub-order: refundctl cancel (nothing reached the platform). Retry reads the form again if the platform may have changed its mind.",
	refundflow.AttnVoucherRequired: "The reason needs evidence images: re-request with --voucher.",
	refundflow.AttnCompanyRejected: "The carrier is not one the platform accepts: refundctl ship again with one from the list in the attention text; Retry reads the list again.",
	refundflow.AttnBadStepResult:   "Retry runs the step again (a side effect only where the platform shows it did not happen); if it keeps failing, report it and Close with a note.",
	refundflow.AttnWaitingEvidence: "A flag, not a stop: the side effect cannot be confirmed yet. Wait; at the deadline the case goes on or stops with intent_unverifiable.",
	refundflow.CodeUnverifiable: "Check the platform's back office. If the refund is there, its next callback (or Retry) moves the case on. " +
		"If not, Close with a note, then request again.",
	refundflow.CodeInvalidRequest: "The stored request is no longer valid: re-request (refundctl cancel, then request), or Close with a note; a retry cannot help.",
}

// doing says what the worker is doing in a state it moves through by itself.
var doing = map[refundflow.State]string{
	refundflow.StateRequested:         "The request is recorded; the worker reads the refund form next",
	refundflow.StateRendering:         "The worker is reading the refund form (read-only)",
	refundflow.StateUploadingVouchers: "The worker is uploading the evidence images the reason needs",
	refundflow.StateSubmitting:        "The worker is submitting the refund, guarded by its recorded intent",
	refundflow.StateModifyRendering:   "The worker is reading the refund form again to check the modification",
	refundflow.StateModifying:         "The worker is sending the modification, guarded by its recorded intent",
	refundflow.StateReturnRendering:   "The worker is reading the carriers the platform accepts",
	refundflow.StateReturnSubmitting:  "The worker is submitting the return shipment, guarded by its recorded intent",
	refundflow.StateCancelling:        "The worker is withdrawing the refund",
	refundflow.StateWaitingSeller:     "Waiting for the seller to decide",
	refundflow.StateWaitingReturnShipment: "The seller wants the goods back: ship them, then report the waybill " +
		"(refundctl ship --case N --company C --waybill W)",
	refundflow.StateWaitingSellerReceive: "The goods are on their way back; waiting for the seller to confirm receipt",
}

// finished says how a case ended.
var finished = map[refundflow.State]string{
	refundflow.StateSucceeded:     "Refunded: the case is finished",
	refundflow.StateClosed:        "The platform closed the refund without refunding: the case is finished; a new request opens a new case",
	refundflow.StateCancelled:     "Cancelled: the case is finished; a new request opens a new case",
	refundflow.StateClosedLocally: "Closed locally by an operator (the platform was not told): the case is finished; a new request opens a new case",
}

// whyNext is the case's "why here, what next" line: where it is and why,
// who moves it next, and when the worker looks at it again. It reads the
// stored fields only, never the timeline's prose.
func whyNext(c casestore.Case, now time.Time) string {
	st := refundflow.State(c.State)
	if s, ok := finished[st]; ok {
		return s + "."
	}
	var line string
	switch {
	case st == refundflow.StateNeedsAttention:
		line = fmt.Sprintf("Stopped at %s (%s): nothing moves until an operator acts or the platform's next status does; what to do is below", c.ParkedState, c.AttentionCode)
	case doing[st] != "":
		line = doing[st]
	default:
		line = "In state " + c.State
	}
	if c.AttentionCode == refundflow.AttnWaitingEvidence {
		line += "; waiting for evidence: " + c.AttentionMessage
	}
	return line + wakeClause(c.NextWakeAt, now) + "."
}

// wakeClause says when the worker looks at the case again.
func wakeClause(wake, now time.Time) string {
	switch {
	case wake.IsZero():
		return ""
	case !wake.After(now):
		return "; the worker's check is due now"
	default:
		return fmt.Sprintf("; the worker checks again at %s (in %s)", fmtTime(wake), wake.Sub(now).Round(time.Second))
	}
}

// fmtTime is how pages write a time: UTC, to the second.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
