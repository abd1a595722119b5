// Decisions on each kind of input (request, shipment, cancel, message, step
// result, form, reasons) and the platform steps they start.

package refundflow

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/refundhub/refundhub/internal/excerpt"
)

func (d Decider) onRequest(c CaseView, in Input) Decision {
	if in.Request == nil {
		return reject(c, CodeInvalidInput, "request_refund without a request")
	}
	if err := in.Request.Validate(c.Platform); err != nil {
		return reject(c, CodeInvalidInput, "invalid request: "+err.Error())
	}
	req := *in.Request
	// RequestReplaces is the rule the console shows too; no open intent
	// is the decider's own guard (decide settles one before a request
	// comes here, so it does not bind today).
	restart := c.State == StateRequested ||
		(RequestReplaces(c.State, c.Parked, c.RefundID, c.AttentionCode) && c.Intent == nil && !sameRequest(req, c.Request))
	if !restart {
		if sameRequest(req, c.Request) {
			if c.State == StateRendering || c.State == StateUploadingVouchers {
				// A redelivery after a transient failure of the read step: run it again.
				return d.resume(c, in.Now)
			}
			return keep(c, CodeDuplicate, "the same request again")
		}
		if c.State == StateNeedsAttention && c.AttentionCode == CodeUnverifiable && c.Parked == StateSubmitting && c.RefundID == "" {
			// The submission may be on the platform, its intent settled
			// unverified: the way out is the operator's, not a second one.
			return reject(c, CodeUnverifiable, unverifiableAdvice(c, StepSubmit))
		}
		if c.Platform == Platform1688 && !(c.RefundID == "" && c.beforeSubmit()) {
			return reject(c, CodeCaseOpen, "the case is already open with another request: let it finish, or withdraw its refund on 1688 itself (1688 has no cancel here), then request again")
		}
		return reject(c, CodeCaseOpen, "the case is already open with another request: cancel it first, or let it finish")
	}
	c.Request = req
	dec := d.to(StateRendering, nil, in.Now, "requested", "read the refund form")
	dec.Request, dec.Plan = &req, c.Plan.restart()
	dec.Step = renderStep(c)
	return dec
}

func (d Decider) onShipment(c CaseView, in Input) Decision {
	if in.Shipment == nil {
		return reject(c, CodeInvalidInput, "report_shipment without a shipment")
	}
	if err := in.Shipment.Validate(); err != nil {
		return reject(c, CodeInvalidInput, "invalid shipment: "+err.Error())
	}
	sh := *in.Shipment
	e := c.effective()
	switch {
	case c.State == StateWaitingReturnShipment ||
		(c.State == StateNeedsAttention && (e == StateWaitingReturnShipment || e == StateReturnRendering || e == StateReturnSubmitting)):
		if c.State == StateNeedsAttention && c.Shipment != nil && *c.Shipment == sh {
			return keep(c, CodeDuplicate, "the same shipment again")
		}
		if c.State == StateNeedsAttention && e == StateReturnSubmitting && c.AttentionCode == CodeUnverifiable {
			// The earlier return submission may be on the platform: another
			// one would be a second return. The platform's progress (or a
			// cancel) takes the case out.
			return reject(c, CodeNotNow, "the earlier return submission may have reached the platform; check it there")
		}
		dec := d.to(StateReturnRendering, nil, in.Now, "shipment_reported", "read the return carriers")
		dec.Shipment = &sh
		dec.Step = &Step{Name: StepReturnRender, RefundID: c.RefundID}
		return dec
	case c.State == StateReturnRendering && c.Shipment != nil && *c.Shipment == sh:
		// A redelivery after a transient failure of the read step: run it again.
		return d.resume(c, in.Now)
	case (e == StateReturnRendering || e == StateReturnSubmitting || e == StateWaitingSellerReceive) && c.Shipment != nil && *c.Shipment == sh:
		return keep(c, CodeDuplicate, "the same shipment again")
	case e == StateReturnRendering || e == StateReturnSubmitting || e == StateWaitingSellerReceive:
		return reject(c, CodeNotNow, shipmentTaken(c))
	default:
		if !c.Request.ReturnGoods && c.Plan.Adopted == "" { // (an adopted refund's request is not the case's)
			return reject(c, CodeNotNow, fmt.Sprintf("no return was requested (a refund only); case %d is %s", c.ID, describeState(c)))
		}
		// (It said "no return requested" of a return requested and not
		// yet agreed to.)
		return reject(c, CodeNotNow, fmt.Sprintf("a return shipment is reported once the seller has agreed to take the goods back (%s); case %d is %s",
			StateWaitingReturnShipment, c.ID, describeState(c)))
	}
}

// shipmentTaken is why a case whose return shipment is sent, or being
// sent, refuses another: which one it has (two commands sent at once
// leave their senders asking whose won), and how a wrong one is put
// right: while it is being sent, by a shipment once the send stops;
// once sent, by telling the seller, as no documented call changes a
// return's logistics.
func shipmentTaken(c CaseView) string {
	var b strings.Builder
	sending := c.State == StateReturnRendering || c.State == StateReturnSubmitting
	if sending {
		b.WriteString("a return shipment is being sent")
	} else {
		b.WriteString("a return shipment was reported already")
	}
	if sh := c.Shipment; sh != nil {
		fmt.Fprintf(&b, ": %s %s", excerpt.Of(sh.Company, 40), excerpt.Of(sh.Waybill, 60))
	}
	if sending {
		// A send that stops (a carrier refused, a refusal whole) parks
		// the case, and a shipment then replaces it (onShipment).
		fmt.Fprintf(&b, "; if it stops short of the platform, refundctl ship %d again replaces it; once it is sent, a case sends no other, "+
			"and if the parcel travels under another waybill, tell the seller: ", c.ID)
	} else {
		b.WriteString(", and a case sends one per refund; if the parcel travels under another waybill, tell the seller: ")
	}
	if c.Platform == PlatformTaobao {
		fmt.Fprintf(&b, "refundctl message %d --text …", c.ID)
	} else {
		b.WriteString("in the platform's back office (1688's API has no message)")
	}
	return b.String()
}

func (d Decider) onCancel(c CaseView, v *PlatformView, in Input) Decision {
	if c.State == StateCancelling || (c.State == StateNeedsAttention && c.Parked == StateCancelling && c.AttentionCode != AttnPlatformError) {
		return keep(c, CodeDuplicate, "already cancelling")
	}
	if c.beforeSubmit() {
		if c.effective() == StateSubmitting {
			return d.to(StateCancelled, nil, in.Now, "cancelled", "cancelled: the platform refused every submission, nothing of it is there")
		}
		return d.to(StateCancelled, nil, in.Now, "cancelled", "cancelled before anything reached the platform")
	}
	refundID := c.RefundID
	if refundID == "" {
		if v == nil {
			return fetch(c, CodeVerify, "find out whether a refund exists before cancelling")
		}
		if v.Inconclusive {
			return reject(c, CodeInconclusive, "cannot tell whether a refund exists; try again later")
		}
		if !v.Found {
			return d.to(StateCancelled, v, in.Now, "cancelled", "no refund on the platform: cancelled")
		}
		refundID = v.RefundID
	}
	if c.Platform == Platform1688 {
		return reject(c, CodeNotSupported, "1688's API has no cancel: withdraw the refund on 1688 itself")
	}
	dec := d.to(StateCancelling, v, in.Now, "cancel", "cancel the refund")
	if c.RefundID == "" {
		dec.RefundID = refundID
	}
	c.RefundID = refundID
	dec.Step = cancelStep(c)
	return dec
}

func (d Decider) onMessage(c CaseView, in Input) Decision {
	msg := strings.TrimSpace(in.Message)
	if msg == "" || len([]rune(msg)) > maxMessage || !printableText(msg) {
		return reject(c, CodeInvalidInput, fmt.Sprintf("message: 1 to %d characters of text", maxMessage))
	}
	if c.Platform == Platform1688 {
		return reject(c, CodeNotSupported, "1688's API has no message: write to the seller on 1688 itself")
	}
	if c.RefundID == "" {
		return reject(c, CodeNotNow, "no refund on the platform yet")
	}
	dec := keep(c, "message", "post a message")
	dec.Outcome = OutcomeAct
	if c.State == StateNeedsAttention {
		dec.Attention = &Attention{Code: c.AttentionCode, Message: c.AttentionMessage}
	}
	key := fmt.Sprintf("case:%d:message:v%d", c.ID, c.Version)
	if in.ID != "" {
		// Per command: a redelivered command finds its intent and never
		// posts again.
		key = fmt.Sprintf("case:%d:message:%s", c.ID, in.ID)
	}
	dec.Step = &Step{Name: StepMessage, Key: key, RefundID: c.RefundID, Message: msg}
	return dec
}

func printableText(s string) bool {
	for _, r := range s {
		if r == 0x7f || (r < 0x20 && r != '\n' && r != '\t') {
			return false
		}
	}
	return true
}

func (d Decider) onResult(c CaseView, in Input) Decision {
	r := in.Result
	if r == nil || r.Step == "" {
		return reject(c, CodeInvalidInput, "step_result without a result")
	}
	if r.Step == StepMessage {
		if r.Err != nil {
			return keep(c, CodeMessageFailed, excerpt.Of(fmt.Sprintf("message failed: %s %s", excerpt.Of(r.Err.Code, 40), r.Err.Message), MaxAttentionText))
		}
		return keep(c, CodeMessageSent, "message posted")
	}
	if c.State == StateNeedsAttention && r.Key != "" && c.Intent != nil && c.Intent.Key == r.Key && stepOf(c.Platform, c.Parked) == r.Step {
		// A side effect sent again from a parked case (the platform showed
		// its earlier attempt absent): its result counts as the parked
		// state's own step, and a success takes the case out of parking.
		c.State, c.Parked = c.Parked, ""
	}
	if c.State == StateRequested || c.State == StateNeedsAttention || stepOf(c.Platform, c.State) != r.Step {
		return keep(c, CodeStaleResult, fmt.Sprintf("a %s result while %s", excerpt.Of(string(r.Step), 40), c.State))
	}
	if r.Err != nil {
		if r.Err.Transient {
			dec := keep(c, CodeTransient, excerpt.Of(fmt.Sprintf("%s failed transiently: %s %s", r.Step, excerpt.Of(r.Err.Code, 40), r.Err.Message), MaxAttentionText))
			dec.Outcome = OutcomeRetry
			return dec
		}
		if r.Step == StepSubmit && r.Err.OpenRefundExists {
			return refundExists(c, r.Err)
		}
		if r.Step == StepUploadVouchers && r.Err.Code == StepCodeVoucherUnreadable {
			return park(c, AttnVoucherUnreadable, excerpt.Of(fmt.Sprintf("the worker could not send a voucher of the request, and nothing of it was filed: %s "+
				"(vouchers are plain file names in WORKER_VOUCHER_DIR, on every worker's host)", r.Err.Message), MaxAttentionText))
		}
		return park(c, AttnPlatformError, excerpt.Of(fmt.Sprintf("%s failed: code %s: %s", r.Step, excerpt.Of(r.Err.Code, 40), r.Err.Message), MaxAttentionText))
	}
	switch r.Step {
	case StepRender:
		if c.State == StateModifyRendering {
			return d.onModifyForm(c, r.Form, in.Now)
		}
		return d.onForm(c, r.Form, in.Now)
	case StepModify:
		return d.to(StateWaitingSeller, nil, in.Now, "modified", "refund modified; waiting for the seller again")
	case StepReasons:
		return d.onReasons(c, r.Reasons, in.Now)
	case StepUploadVouchers:
		if len(r.Vouchers) == 0 {
			return park(c, AttnBadStepResult, "voucher upload returned no references")
		}
		plan := c.Plan
		plan.Vouchers = slices.Clone(r.Vouchers)
		dec := d.to(StateSubmitting, nil, in.Now, "vouchers_uploaded", "submit the refund")
		dec.Plan, dec.Step = &plan, submitStep(c, plan)
		return dec
	case StepSubmit:
		dec := d.to(StateWaitingSeller, nil, in.Now, "submitted", "refund submitted; waiting for the seller")
		if r.RefundID != "" && r.RefundID != c.RefundID {
			dec.RefundID = r.RefundID
		}
		return dec
	case StepReturnRender:
		if c.Shipment == nil {
			return park(c, AttnBadStepResult, "return carriers read without a recorded shipment")
		}
		if !slices.ContainsFunc(r.Companies, func(s string) bool { return strings.EqualFold(s, c.Shipment.Company) }) {
			return park(c, AttnCompanyRejected, fmt.Sprintf("carrier %q is not accepted (accepted: %s)", c.Shipment.Company, listSome(r.Companies)))
		}
		dec := d.to(StateReturnSubmitting, nil, in.Now, "carrier_accepted", "submit the return shipment")
		dec.Step = returnSubmitStep(c, *c.Shipment)
		return dec
	case StepReturnSubmit:
		return d.to(StateWaitingSellerReceive, nil, in.Now, "return_submitted", "return submitted; waiting for the seller to receive it")
	default: // StepCancel
		dec := d.to(StateCancelled, nil, in.Now, "cancelled", "refund cancelled on the platform")
		status := r.Status
		dec.PlatformStatus = &status
		return dec
	}
}

// onForm chooses the reason and fee from the rendered Taobao form and
// submits the refund.
func (d Decider) onForm(c CaseView, f *Form, now time.Time) Decision {
	if f != nil && len(f.ExistingOpen) > 0 && (c.Plan.RefusedForOpen || f.SaleDisabled || refundable(f) <= 0) {
		// The platform refused this case's submission for an open refund
		// on the sub-order, and lists one open still: sent now, it would be
		// refused again. Or the form allows no after-sale, or no amount,
		// while the list shows one open: that refund is the way out to
		// name, not "nothing can be filed".
		why := blockedStill
		if !c.Plan.RefusedForOpen {
			why = blockedForm // nothing refused: the rule holds while the form does
		}
		plan := c.Plan
		plan.PriorOpen = slices.Clone(f.ExistingOpen)
		dec := park(c, AttnRefundExists, refundExistsText(c, plan.PriorOpen, "", why))
		dec.Plan = &plan
		return dec
	}
	chosen, stop := choose(c, f)
	if stop != nil {
		return *stop
	}
	plan := Plan{ReasonID: chosen.ReasonID, ReasonDesc: chosen.ReasonDesc, Fee: chosen.Fee, PriorListed: true, PriorRefunds: slices.Clone(f.Existing),
		PriorOpen: slices.Clone(f.ExistingOpen)}
	dec := d.to(StateSubmitting, nil, now, "form_rendered", fmt.Sprintf("submit with reason %d and fee %d", plan.ReasonID, plan.Fee))
	dec.Plan, dec.Step = &plan, submitStep(c, plan)
	return dec
}

// choose picks the request's reason and fee from a rendered Taobao form
// (the reason, its text and the fee in the Plan), or stops the case when
// the form does not allow the request.
func choose(c CaseView, f *Form) (Plan, *Decision) {
	stop := func(code, msg string) (Plan, *Decision) {
		dec := park(c, code, msg)
		return Plan{}, &dec
	}
	if f == nil {
		return stop(AttnBadStepResult, "render returned no form")
	}
	if f.SaleDisabled {
		return stop(AttnSaleNotAllowed, "the platform does not allow an after-sale refund for this order")
	}
	if most := refundable(f); most <= 0 {
		// Before the reason and the amount: no correction of either
		// can file anything.
		if c.State == StateModifyRendering {
			// The refund the modification was for is still on the
			// platform as filed (and refused): nothing was taken.
			return stop(AttnNothingRefundable, fmt.Sprintf("the refund form read for the modification allows nothing to refund (its most is %d fen): "+
				"no modification can be sent, and refund %s stands as filed", most, excerpt.Of(c.RefundID, 40)))
		}
		return stop(AttnNothingRefundable, nothingRefundableText(most, f.Existing))
	}
	reason, err := pickReason(f.Reasons, c.Request)
	if err != nil {
		return stop(AttnReasonNotOffered, err.Error())
	}
	req := c.Request.Amount
	var fee int64
	switch {
	case !f.CanEditFee:
		if req != 0 && req != f.DefaultFee {
			return stop(AttnFeeNotEditable, fmt.Sprintf("the form fixes the fee at %d; requested %d", f.DefaultFee, req))
		}
		fee = f.DefaultFee
	case req == 0:
		fee = f.MaxFee
	case req < f.MinFee || req > f.MaxFee:
		return stop(AttnFeeOutOfBounds, fmt.Sprintf("requested %d outside [%d, %d]", req, f.MinFee, f.MaxFee))
	default:
		fee = req
	}
	if fee <= 0 {
		return stop(AttnFeeOutOfBounds, fmt.Sprintf("requested %d: nothing to refund", fee))
	}
	return Plan{ReasonID: reason.ID, ReasonDesc: reason.Desc, Fee: fee}, nil
}

// refundable is the most form f lets a request ask for: its fixed fee
// when the fee cannot be edited.
func refundable(f *Form) int64 {
	if !f.CanEditFee {
		return f.DefaultFee
	}
	return f.MaxFee
}

// nothingRefundableText is AttnNothingRefundable's text: what the form
// said, why it may say so, and the refunds the platform lists on the
// sub-order (the earlier refunds that may have taken its payment).
func nothingRefundableText(most int64, listed []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the refund form allows nothing to refund (its most is %d fen): the sub-order's payment is refunded already", most)
	if len(listed) > 0 {
		ids := make([]string, 0, maxNamed)
		for _, id := range listed[:min(len(listed), maxNamed)] {
			ids = append(ids, excerpt.Of(id, 40))
		}
		fmt.Fprintf(&b, " (the platform lists refund %s on it", strings.Join(ids, ", "))
		if more := len(listed) - len(ids); more > 0 {
			fmt.Fprintf(&b, " and %d more", more)
		}
		b.WriteString(")")
	}
	b.WriteString(", or was never paid; no request can be filed for it")
	return b.String()
}

// onReasons chooses the 1688 reason and whether vouchers are needed.
func (d Decider) onReasons(c CaseView, reasons []Reason, now time.Time) Decision {
	reason, err := pickReason(reasons, c.Request)
	if err != nil {
		return park(c, AttnReasonNotOffered, err.Error())
	}
	plan := Plan{ReasonID: reason.ID, ReasonDesc: reason.Desc, NeedVoucher: reason.NeedVoucher,
		Fee: c.Request.Amount, Carriage: c.Request.Carriage}
	if reason.NoCarriage {
		plan.Carriage = 0
	}
	if reason.NeedVoucher {
		if len(c.Request.Vouchers) == 0 {
			return park(c, AttnVoucherRequired, fmt.Sprintf("reason %d needs vouchers and the request has none", reason.ID))
		}
		dec := d.to(StateUploadingVouchers, nil, now, "reason_chosen", "upload the vouchers")
		dec.Plan = &plan
		dec.Step = &Step{Name: StepUploadVouchers, Vouchers: slices.Clone(c.Request.Vouchers)}
		return dec
	}
	dec := d.to(StateSubmitting, nil, now, "reason_chosen", fmt.Sprintf("create the refund with reason %d", reason.ID))
	dec.Plan, dec.Step = &plan, submitStep(c, plan)
	return dec
}

// pickReason finds the requested reason by id, else by its text.
func pickReason(offered []Reason, r Request) (Reason, error) {
	for _, o := range offered {
		if r.ReasonID != 0 && o.ID == r.ReasonID {
			return o, nil
		}
	}
	want := strings.TrimSpace(r.Reason)
	for _, o := range offered {
		if want != "" && strings.EqualFold(strings.TrimSpace(o.Desc), want) {
			return o, nil
		}
	}
	names := make([]string, 0, len(offered))
	for _, o := range offered {
		names = append(names, fmt.Sprintf("%d %s", o.ID, o.Desc))
	}
	return Reason{}, errors.New("requested reason not offered (offered: " + listSome(names) + ")")
}

func listSome(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	if len(xs) > 5 {
		return strings.Join(xs[:5], ", ") + ", …"
	}
	return strings.Join(xs, ", ")
}

func sameRequest(a, b Request) bool {
	return a.ReturnGoods == b.ReturnGoods && a.GoodsStatus == b.GoodsStatus && a.ReasonID == b.ReasonID &&
		a.Reason == b.Reason && a.Amount == b.Amount && a.Carriage == b.Carriage && a.Description == b.Description &&
		slices.Equal(a.Vouchers, b.Vouchers) && slices.Equal(a.OrderEntryIDs, b.OrderEntryIDs)
}

func renderStep(c CaseView) *Step {
	if c.Platform == Platform1688 {
		return &Step{Name: StepReasons, GoodsStatus: c.Request.GoodsStatus, OrderEntryIDs: slices.Clone(c.Request.OrderEntryIDs)}
	}
	return &Step{Name: StepRender, ReturnGoods: c.Request.ReturnGoods, GoodsStatus: c.Request.GoodsStatus}
}

func submitStep(c CaseView, p Plan) *Step {
	s := &Step{Name: StepSubmit, Key: fmt.Sprintf("case:%d:submit:v%d", c.ID, c.Version),
		ReturnGoods: c.Request.ReturnGoods, GoodsStatus: c.Request.GoodsStatus, ReasonID: p.ReasonID, Fee: p.Fee,
		Description: c.Request.Description}
	if c.Platform == Platform1688 {
		s.Carriage, s.Vouchers, s.OrderEntryIDs = p.Carriage, slices.Clone(p.Vouchers), slices.Clone(c.Request.OrderEntryIDs)
	} else {
		s.Vouchers = slices.Clone(c.Request.Vouchers)
	}
	return s
}

func returnSubmitStep(c CaseView, sh Shipment) *Step {
	return &Step{Name: StepReturnSubmit, Key: fmt.Sprintf("case:%d:return_submit:v%d", c.ID, c.Version),
		RefundID: c.RefundID, Company: sh.Company, Waybill: sh.Waybill, Phone: sh.Phone, Description: sh.Description}
}

func cancelStep(c CaseView) *Step {
	return &Step{Name: StepCancel, Key: fmt.Sprintf("case:%d:cancel:v%d", c.ID, c.Version), RefundID: c.RefundID}
}
