// Decisions from the platform's view: the state a status implies, following it
// forwards, and settling an intent whose effect on the platform is not yet known.

package refundflow

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

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
		// The seller's words, whole. What to do is the runbook's (each
		// platform's way on), shown beside them by refundctl and the
		// console: said here too, it was said twice, and cut the
		// refusal off in lists.
		verb := "seller refused"
		if p == Platform1688 {
			verb = "seller rejected"
		}
		msg := verb + " (no reason given)"
		if reason := strings.TrimSpace(v.RefuseReason); reason != "" {
			msg = excerpt.Of(verb+": "+reason, MaxAttentionText)
		}
		return StateWaitingSeller, &Attention{Code: AttnSellerRefused, Message: msg}
	}
	name := "Taobao"
	if p == Platform1688 {
		name = "1688"
	}
	return "", &Attention{Code: AttnUnknownStatus, Message: fmt.Sprintf("unknown %s refund status %q", name, excerpt.Of(v.StatusText, 40))}
}

// fromView follows the platform view, forwards only, flagging a return the
// platform holds under another waybill than the case's.
func (d Decider) fromView(c CaseView, v PlatformView, now time.Time) Decision {
	return flagWaybill(c, v, d.followView(c, v, now))
}

// followView follows the platform view, forwards only.
func (d Decider) followView(c CaseView, v PlatformView, now time.Time) Decision {
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
	if attn != nil && attn.Code == AttnSellerRefused && modifyState(c.effective()) {
		// The refusal is what the modification under way answers.
		stay.Code, stay.Reason = CodeNoChange, "the refund is refused; the modification is under way"
		return stay
	}
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

// flagWaybill raises the return_waybill_differs flag on dec, a decision
// from view v that leaves the case waiting for the seller to receive its
// return, while the platform shows that return, of the case's refund, under
// another waybill than the case's, and drops it once the platform shows
// the case's. A view without a waybill (Taobao's query may leave it out),
// of another refund or of another phase changes neither (keepWaybillFlag
// keeps it). A decision that already carries an attention (a stop) is left
// as it is.
func flagWaybill(c CaseView, v PlatformView, dec Decision) Decision {
	if dec.State != StateWaitingSellerReceive || dec.Attention != nil || c.Shipment == nil || waybillKey(v.ReturnWaybill) == "" ||
		otherRefund(c, v) || v.Phase != platform.PhaseWaitSellerReceive {
		return dec
	}
	flagged := c.State == StateWaitingSellerReceive && c.AttentionCode == AttnReturnWaybillDiffers
	if !otherWaybill(c, v) {
		if flagged && dec.Outcome == OutcomeNoOp {
			dec.Outcome, dec.Code, dec.Reason = OutcomeAct, codeWaybillAgrees,
				fmt.Sprintf("the platform now holds the case's return waybill %q", excerpt.Of(c.Shipment.Waybill, 64))
		}
		return dec
	}
	msg := waybillMessage(c, v)
	if dec.Outcome == OutcomeNoOp && !(flagged && c.AttentionMessage == msg) {
		dec.Outcome, dec.Code, dec.Reason = OutcomeAct, AttnReturnWaybillDiffers, msg
	}
	dec.Attention = &Attention{Code: AttnReturnWaybillDiffers, Message: msg}
	return dec
}

// codeWaybillAgrees is the decision that drops the return_waybill_differs
// flag: the platform holds the case's waybill again.
const codeWaybillAgrees = "return_waybill_agrees"

// waybillMessage is the return_waybill_differs text: both waybills, and
// what an operator can do while the case follows the refund.
func waybillMessage(c CaseView, v PlatformView) string {
	theirs, mine := excerpt.Of(strings.TrimSpace(v.ReturnWaybill), 64), excerpt.Of(c.Shipment.Waybill, 64)
	msg := fmt.Sprintf("the platform holds return waybill %q, not this case's %q (%s): the seller looks for the parcel under the platform's. ",
		theirs, mine, excerpt.Of(c.Shipment.Company, 64))
	if c.Platform == PlatformTaobao {
		return msg + fmt.Sprintf("If the parcel travels under %q, tell the seller (refundctl message %d --text …); the case goes on following the refund", mine, c.ID)
	}
	return msg + fmt.Sprintf("If the parcel travels under %q, tell the seller in the platform's back office (1688 takes no message here); the case goes on following the refund", mine)
}

// ours reports whether the platform holds the case's return waybill.
func ours(c CaseView, v PlatformView) bool {
	return c.Shipment != nil && sameWaybill(v.ReturnWaybill, c.Shipment.Waybill)
}

// otherWaybill reports whether the platform holds a return waybill, and not
// the case's.
func otherWaybill(c CaseView, v PlatformView) bool {
	return c.Shipment != nil && waybillKey(v.ReturnWaybill) != "" && !ours(c, v)
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

// sameWaybill reports whether the platform's waybill is ours, comparing
// their letters and digits only, full-width ones as ASCII, in any case: a
// platform that stores a waybill without its spaces or hyphens, or folds
// its width, still holds ours.
func sameWaybill(platform, ours string) bool {
	p := waybillKey(platform)
	return p != "" && strings.EqualFold(p, waybillKey(ours))
}

// waybillKey is a waybill's letters and digits, full-width forms as ASCII.
func waybillKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0xFF01 && r <= 0xFF5E { // full-width ASCII
			r -= 0xFEE0
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	return b.String()
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
