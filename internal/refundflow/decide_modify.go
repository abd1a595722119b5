// Modifying a refused Taobao refund: the operator's changed request is
// checked against a fresh render of the form, then sent as a modification
// (T9) with the same at-most-once protection as a submission.

package refundflow

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Modification is an operator's change to a refused Taobao refund: the
// fields it gives replace the request's, the others stay as filed.
type Modification struct {
	ReasonID int64  `json:"reasonId,omitempty"`
	Reason   string `json:"reason,omitempty"` // instead of ReasonID: the reason's text as the form offers it
	// Amount in fen; 0 asks for the most the form allows. nil: unchanged.
	Amount      *int64   `json:"amount,omitempty"`
	Description *string  `json:"description,omitempty"`
	Vouchers    []string `json:"vouchers,omitempty"` // replace the request's evidence images
}

// Validate checks that the modification changes something and that its
// fields are well formed; the request it makes is validated as a request.
func (m Modification) Validate() error {
	var errs []error
	if m.ReasonID == 0 && m.Reason == "" && m.Amount == nil && m.Description == nil && m.Vouchers == nil {
		errs = append(errs, errors.New("nothing to change: give a reason, an amount, a description or vouchers"))
	}
	if m.ReasonID < 0 {
		errs = append(errs, errors.New("reasonId: must be positive"))
	}
	if m.ReasonID != 0 && m.Reason != "" {
		errs = append(errs, errors.New("reason: give reasonId or reason, not both"))
	}
	if m.Amount != nil && *m.Amount < 0 {
		errs = append(errs, errors.New("amount: must not be negative (0: the most the form allows)"))
	}
	if utf8.RuneCountInString(m.Reason) > maxField*2 || !utf8.ValidString(m.Reason) {
		errs = append(errs, fmt.Errorf("reason: at most %d characters of UTF-8", maxField*2))
	}
	return errors.Join(errs...)
}

// CheckFor checks, before sending, what a modification of a case on
// platform p can be checked for on its own: the new description and
// vouchers as a Taobao request checks them (the worker validates the whole
// modified request again, and refuses any 1688 modification).
func (m Modification) CheckFor(p Platform) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if p != PlatformTaobao {
		return nil
	}
	probe := Request{GoodsStatus: "1", ReasonID: 1, Vouchers: m.Vouchers} // placeholders that pass
	if m.Description != nil {
		probe.Description = *m.Description
	}
	return probe.Validate(PlatformTaobao)
}

// apply is the request with the modification made.
func (m Modification) apply(r Request) Request {
	switch {
	case m.ReasonID != 0:
		r.ReasonID, r.Reason = m.ReasonID, ""
	case m.Reason != "":
		r.ReasonID, r.Reason = 0, m.Reason
	}
	if m.Amount != nil {
		r.Amount = *m.Amount
	}
	if m.Description != nil {
		r.Description = *m.Description
	}
	if m.Vouchers != nil {
		r.Vouchers = slices.Clone(m.Vouchers)
	}
	return r
}

// modifyBase is what a modification applies to: the request as the
// platform holds it. The case's request is that, unless a modification is
// under way, or stopped, or replaced, before it reached the platform (the
// case in, or stopped at, a modification's state): the plan keeps the
// filed one then (Plan.Filed; a case stopped so by an older build has
// none, and its request is taken).
func modifyBase(c CaseView) Request {
	if (modifyState(c.State) || modifyState(c.Parked)) && c.Plan.Filed != nil {
		return *c.Plan.Filed
	}
	return c.Request
}

// modifyState reports whether s is one of the modification's states.
func modifyState(s State) bool { return s == StateModifyRendering || s == StateModifying }

// canModify reports whether the case's refund may be modified now: the
// seller refused it, or an earlier modification stopped before it reached
// the platform (its form did not allow it, or the platform refused it whole).
func (c CaseView) canModify() bool {
	if c.RefundID == "" || c.State != StateNeedsAttention || c.Intent != nil {
		return false
	}
	switch c.Parked {
	case StateWaitingSeller:
		return c.AttentionCode == AttnSellerRefused
	case StateModifyRendering:
		return true
	case StateModifying:
		return c.AttentionCode == AttnPlatformError
	}
	return false
}

// onModify starts a modification: the form is read again first, so that the
// changed reason and amount are checked against what the platform offers now.
func (d Decider) onModify(c CaseView, in Input) Decision {
	if in.Modify == nil {
		return reject(c, CodeInvalidInput, "modify_refund without a modification")
	}
	if err := in.Modify.Validate(); err != nil {
		return reject(c, CodeInvalidInput, "invalid modification: "+err.Error())
	}
	if c.Platform == Platform1688 {
		return reject(c, CodeNotSupported, fmt.Sprintf("1688 offers no way to modify a refund through its API: a refused refund (waitbuyermodify) "+
			"is closed by the platform in time, and a new request then opens a new case; to stop now, `refundctl resolve %d --close --note …`", c.ID))
	}
	base := modifyBase(c)
	req := in.Modify.apply(base)
	if modifyState(c.State) {
		if sameRequest(req, c.Request) {
			return keep(c, CodeDuplicate, "the same modification is under way")
		}
		return reject(c, CodeNotNow, "a modification is under way: wait for its outcome, then modify again if the seller refuses")
	}
	if c.Plan.Adopted != "" {
		return reject(c, CodeNotSupported, fmt.Sprintf("case %d follows refund %s, which an operator adopted: what that refund asks for "+
			"is the platform's, not this case's request, so a change made from here would send parts of a request that was never filed; "+
			"modify it on the platform's site (the case follows what the seller does then), or accept the refusal with `refundctl resolve %d --close --note …`",
			c.ID, c.Plan.Adopted, c.ID))
	}
	if !c.canModify() {
		return reject(c, CodeNotNow, fmt.Sprintf("only a refund the seller refused can be modified; case %d is %s", c.ID, describeState(c)))
	}
	if err := req.Validate(c.Platform); err != nil {
		return reject(c, CodeInvalidInput, "the modified request is not valid: "+err.Error())
	}
	c.Request = req
	plan := c.Plan
	plan.Filed = &base
	dec := d.to(StateModifyRendering, nil, in.Now, "modify", "read the refund form for the modification")
	dec.Request, dec.Plan, dec.Step = &req, &plan, renderStep(c)
	return dec
}

// onModifyForm checks the modified request against the form just read and
// sends the modification. The plan keeps what the first submission knew of
// the sub-order's earlier refunds: the form now lists this case's own.
func (d Decider) onModifyForm(c CaseView, f *Form, now time.Time) Decision {
	if f != nil && f.SaleDisabled && c.RefundID != "" && slices.Equal(f.ExistingOpen, []string{c.RefundID}) {
		// The v2 form turns saleFlag off while the sub-order has an open
		// refund (onForm names it as the cause), and the one open is the
		// refund being modified: not a refusal of the modification. Were
		// the flag off for another reason too (an after-sale window
		// passed), the platform refuses the modification whole, and the
		// case stops at modifying with its words (platform_error):
		// nothing is sent twice.
		g := *f
		g.SaleDisabled = false
		f = &g
	}
	chosen, stop := choose(c, f)
	if stop != nil {
		return *stop
	}
	plan := c.Plan
	plan.ReasonID, plan.ReasonDesc, plan.Fee = chosen.ReasonID, chosen.ReasonDesc, chosen.Fee
	dec := d.to(StateModifying, nil, now, "form_rendered", fmt.Sprintf("modify the refund: reason %d, fee %d", plan.ReasonID, plan.Fee))
	dec.Plan, dec.Step = &plan, modifyStep(c, plan)
	return dec
}

func modifyStep(c CaseView, p Plan) *Step {
	return &Step{Name: StepModify, Key: fmt.Sprintf("case:%d:modify:v%d", c.ID, c.Version), RefundID: c.RefundID,
		ReturnGoods: c.Request.ReturnGoods, GoodsStatus: c.Request.GoodsStatus, ReasonID: p.ReasonID, Fee: p.Fee,
		Description: c.Request.Description, Vouchers: slices.Clone(c.Request.Vouchers)}
}

// describeState is the case's state for a refusal: where it stopped and why.
func describeState(c CaseView) string {
	if c.State == StateNeedsAttention {
		return fmt.Sprintf("stopped at %s (%s)", c.Parked, c.AttentionCode)
	}
	return string(c.State)
}
