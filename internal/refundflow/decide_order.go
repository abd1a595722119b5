// Decisions on order events: the order's status changes and price
// corrections are facts about every case of the order.

package refundflow

import (
	"fmt"
	"slices"
	"strings"

	"github.com/refundhub/refundhub/internal/platform"
)

// onOrderEvents decides on the order events the case has not seen, before
// the input itself (which is then decided again: Reapply, for a command).
//
//   - Nothing of the case on the platform yet: an ended order ends the
//     request there, nothing submitted. A price correction renders the form
//     again, so the submission uses the order as it is now (the bounds
//     change). A case stopped for a reason the order's change may undo (the
//     form's bounds or verdict, a submission refused whole) reads the form
//     again on any news of the order; other news is noted.
//   - A refund on the platform, or one that may be: the events are a hint;
//     the case reads the refund and follows it, as on a callback.
//
// A case with an open intent does not get here: the intent is settled
// first (settleIntent), and an ended order settles a submission the
// platform shows no refund of there (settleAbsent).
func (d Decider) onOrderEvents(c CaseView, v *PlatformView, in Input) Decision {
	evs := c.OrderEvents
	seen := evs[len(evs)-1].ID
	done := func(dec Decision) Decision {
		dec = actOn(c, dec)
		dec.OrderEventsSeen = seen
		return dec
	}
	if in.Kind == InputCallback && v == nil {
		return fetch(c, CodeVerify, "a callback: read the refund before going on")
	}
	// A view read for an adoption is of the refund the operator named, not
	// the case's: the news is decided as without one, and the adoption
	// (decideInput) judges it.
	own := v
	if v != nil && v.Adopting != nil {
		own = nil
	}
	if !c.beforeSubmit() || (own != nil && own.Found) {
		if own == nil {
			return fetch(c, CodeVerify, "the order changed: read the refund before going on")
		}
		dec := done(d.onWake(c, own, Input{Kind: InputCallback, Now: in.Now}))
		dec.Reapply = isCommand(in.Kind)
		return dec
	}
	if i := slices.IndexFunc(evs, func(e OrderEvent) bool { return e.Ended }); i >= 0 {
		dec := done(d.to(StateCancelled, nil, in.Now, CodeOrderEnded,
			fmt.Sprintf("the order ended on the platform (%s): nothing was submitted; the request ends here", describeOrderEvent(evs[i]))))
		// A request that opened the case has its verdict here; another
		// command is then refused on the finished case, saying so.
		dec.Reapply = isCommand(in.Kind) && in.Kind != InputRequestRefund
		return dec
	}
	what := describeOrderEvent(evs[len(evs)-1])
	switch {
	case in.Kind == InputRequestRefund || (c.State == StateNeedsAttention && !orderCanUndo(c)) ||
		(c.State != StateNeedsAttention && !slices.ContainsFunc(evs, func(e OrderEvent) bool { return e.Kind == platform.KindPriceModify })):
		// Nothing the case depends on: a request reads the form anyway, a
		// stopped case stays stopped, and a case on its way is concerned
		// only by a new price (its form's bounds). The input is decided as
		// usual, the news noted with it.
		dec := d.decideInput(c, v, in)
		if dec.Outcome == OutcomeAct || (dec.Outcome == OutcomeNoOp && !isCommand(in.Kind)) {
			// (A command's no-op is its verdict, a duplicate, and stays one.)
			dec = done(dec)
		}
		return dec
	}
	if err := c.Request.Validate(c.Platform); err != nil {
		return done(park(c, CodeInvalidRequest, "the stored request is not valid: "+err.Error()))
	}
	dec := d.to(StateRendering, nil, in.Now, CodeOrderChanged, fmt.Sprintf("the order changed (%s): read the refund form again", what))
	dec.Plan, dec.Step = c.Plan.restart(), renderStep(c)
	dec = done(dec)
	dec.Reapply = isCommand(in.Kind)
	return dec
}

// orderCanUndo reports whether a change of the order's price or status can
// undo what stopped a case before submission: the form's bounds or verdict,
// or a submission the platform refused whole (an unpaid order, an amount
// above what was paid). The form is then read again and, if it allows, the
// refund submitted: nothing of the refused one is on the platform.
func orderCanUndo(c CaseView) bool {
	switch c.AttentionCode {
	case AttnFeeOutOfBounds, AttnFeeNotEditable, AttnSaleNotAllowed, AttnNothingRefundable:
		return true
	case AttnPlatformError:
		return c.Parked == StateSubmitting
	}
	return false
}

// describeOrderEvent says what an order event was, for the timeline.
func describeOrderEvent(e OrderEvent) string {
	var b strings.Builder
	b.WriteString(e.Type)
	if e.Status != "" {
		fmt.Fprintf(&b, ", status %s", e.Status)
	}
	if e.CloseReason != "" {
		fmt.Fprintf(&b, ", close reason %s", e.CloseReason)
	}
	if e.Kind == platform.KindPriceModify {
		fmt.Fprintf(&b, ", total %s", yuan(e.TotalAmount))
	}
	return b.String()
}

// yuan writes fen as yuan for operators.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}
