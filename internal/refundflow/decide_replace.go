// Replacing an open side effect with the operator's corrected one: a return
// shipment or a modification the platform shows did not take effect.

package refundflow

import (
	"fmt"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// replacing reports whether in is an operator's correction of the open
// intent it: another carrier or waybill for a return submission, another
// modification of a refused Taobao refund. Once the platform shows the
// intent's effect absent, past its in-flight window, the correction
// replaces it (replaced) instead of waiting behind its resends, or being
// refused on a case stopped with intent_resends_failed: a carrier, a
// waybill, a reason or an amount the platform refuses is corrected, not
// only retried or given up.
func replacing(c CaseView, it Intent, in Input) bool {
	switch {
	case it.Step == StepReturnSubmit && in.Kind == InputReportShipment:
		return in.Shipment != nil && in.Shipment.Validate() == nil && otherShipment(c.Shipment, *in.Shipment) &&
			stoppedOrAt(c, StateReturnSubmitting)
	case it.Step == StepModify && in.Kind == InputModify:
		if in.Modify == nil || in.Modify.Validate() != nil || c.Platform != PlatformTaobao {
			return false
		}
		req := in.Modify.apply(modifyBase(c))
		return !sameRequest(req, c.Request) && req.Validate(c.Platform) == nil && stoppedOrAt(c, StateModifying)
	}
	return false
}

// stoppedOrAt reports whether the case is in s, or stopped there because
// the platform refused its resends.
func stoppedOrAt(c CaseView, s State) bool {
	return c.State == s || (c.State == StateNeedsAttention && c.Parked == s && c.AttentionCode == CodeResendsFailed)
}

// replaceNotYet refuses a correction while the open attempt may still reach
// the platform (until), saying when to send it again. It is not kept for
// then: the case's own timer, due at the same time, would resend the
// earlier one first.
func replaceNotYet(c CaseView, it Intent, in Input, until time.Time) Decision {
	if it.Step == StepModify {
		return reject(c, CodeNotNow, fmt.Sprintf("the earlier modification may still reach the platform until %s: "+
			"modify again after that; if the refund is then still refused, the new modification replaces the earlier one", stamp(until)))
	}
	return reject(c, CodeNotNow, fmt.Sprintf("the earlier return submission (%s) may still reach the platform until %s: "+
		"report the new shipment (%s) again after that; if the platform then shows no return, it replaces the earlier one",
		describeShipmentOf(c.Shipment), stamp(until), describeShipment(*in.Shipment)))
}

// replaced settles the open intent it, which the platform shows did not
// take effect, and takes the operator's correction as a first one, in one
// decision (the command's verdict): a new shipment has its carriers read,
// a new modification the refund form, then each goes out under a new key.
// As safe as a resend: the platform takes no idempotency key, so a resend
// is a new request to it too, sent on the same evidence.
func (d Decider) replaced(c CaseView, it Intent, v PlatformView, in Input) Decision {
	if it.Step == StepModify {
		req := in.Modify.apply(modifyBase(c)) // the earlier one did not take effect: not its base either
		c.Request = req
		dec := d.to(StateModifyRendering, &v, in.Now, CodeModificationReplaced,
			"the refund is still refused on the platform, so the earlier modification did not take effect: the new one replaces it; read the refund form")
		dec.Request, dec.Step = &req, renderStep(c)
		dec.Resolve = &Resolution{Key: it.Key, Code: CodeModificationReplaced,
			Note: "the platform showed the refund still refused; replaced by a new modification"}
		return dec
	}
	sh := *in.Shipment
	dec := d.to(StateReturnRendering, &v, in.Now, CodeShipmentReplaced, fmt.Sprintf(
		"the platform shows no return from the earlier submission (%s): the new shipment (%s) replaces it; read the return carriers",
		describeShipmentOf(c.Shipment), describeShipment(sh)))
	dec.Shipment = &sh
	dec.Step = &Step{Name: StepReturnRender, RefundID: c.RefundID}
	dec.Resolve = &Resolution{Key: it.Key, Code: CodeShipmentReplaced,
		Note: fmt.Sprintf("the platform showed no return from it; replaced by a new shipment (%s)", describeShipment(sh))}
	return dec
}

// otherShipment reports whether sh names another carrier or waybill than
// the recorded one (none recorded: another); a phone or a description
// alone does not make another shipment, nor does a letter's case. Unlike
// sameWaybill (the platform's waybill against ours) the operator's two
// waybills compare as typed: a full-width or hyphenated waybill the
// platform refused, typed again in ASCII, is the correction it looks like.
func otherShipment(recorded *Shipment, sh Shipment) bool {
	return recorded == nil || !strings.EqualFold(strings.TrimSpace(recorded.Company), strings.TrimSpace(sh.Company)) ||
		!strings.EqualFold(strings.TrimSpace(sh.Waybill), strings.TrimSpace(recorded.Waybill))
}

// describeShipment names a shipment for operators: carrier and waybill.
func describeShipment(sh Shipment) string {
	return excerpt.Of(sh.Company, 64) + " " + excerpt.Of(sh.Waybill, 64)
}

// describeShipmentOf is describeShipment of a recorded shipment, if any.
func describeShipmentOf(sh *Shipment) string {
	if sh == nil {
		return "none recorded"
	}
	return describeShipment(*sh)
}
