package console

import (
	"fmt"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/runbook"
)

// advice is what to do about each attention code: the "What to do"
// column of docs/runbook.md's "Attention reasons" table, read from the
// embedded runbook (package runbook), so the page and the runbook never
// disagree. The runbook writes refundctl's commands; the case page's
// Retry and Close buttons are resolve --retry and --close.
var advice = adviceFromRunbook(runbook.Embedded())

func adviceFromRunbook(b runbook.Book) map[string]string {
	m := make(map[string]string, len(b.Reasons))
	for code, r := range b.Reasons {
		m[code] = r.Do
	}
	return m
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
		"(refundctl ship N --company C --waybill W)",
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
	switch {
	case c.AttentionCode == refundflow.AttnWaitingEvidence:
		line += "; waiting for evidence: " + c.AttentionMessage
	case c.AttentionCode != "" && st != refundflow.StateNeedsAttention:
		// A flag on a case that goes on: what to do is in the attention box.
		line += "; flagged " + c.AttentionCode + ", what to do is below"
	}
	return runbook.ForCase(line, c.ID) + wakeClause(c.NextWakeAt, now) + "."
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
