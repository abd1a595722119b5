package refundflow

import (
	"fmt"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

var (
	now     = time.Date(2026, 5, 20, 8, 0, 0, 0, time.UTC)
	oldWake = now.Add(-time.Minute)
	policy  = Policy{RefusalMessage: "Please reconsider: {reason}", Recheck: time.Hour, StepTimeout: 5 * time.Minute, EndedLimit: 3}
	decider = Decider{Policy: policy}
)

func taobaoRequest() Request {
	return Request{ReturnGoods: true, GoodsStatus: "2", ReasonID: 11, Amount: 500, Description: "arrived broken"}
}

func alibabaRequest() Request {
	return Request{ReturnGoods: true, GoodsStatus: "aftersaleBuyerReceived", ReasonID: 21,
		Amount: 500, Description: "arrived broken", Vouchers: []string{"photo-1.jpg"}}
}

func requestFor(p Platform) Request {
	if p == Platform1688 {
		return alibabaRequest()
	}
	return taobaoRequest()
}

var shipment = Shipment{Company: "SF", Waybill: "W1"}

// fixture is a plausible case in state s: a refund id once submitted, a
// shipment once reported; needs_attention is parked at waiting_seller after a refusal.
func fixture(p Platform, s State) CaseView {
	c := CaseView{ID: 7, Platform: p, State: s, Version: 3, Request: requestFor(p), WakeAt: oldWake}
	r := Rank(s, "")
	if s == StateNeedsAttention {
		c.Parked, c.AttentionCode, c.AttentionMessage = StateWaitingSeller, AttnSellerRefused, "seller refused"
		r = Rank(StateWaitingSeller, "")
	}
	if r >= stateRank[StateSubmitting] && s != StateRendering && s != StateUploadingVouchers {
		c.Plan = Plan{ReasonID: c.Request.ReasonID, Fee: 500}
	}
	if r >= stateRank[StateWaitingSeller] {
		c.RefundID = "R1"
	}
	if r >= stateRank[StateReturnRendering] && r < stateRank[StateCancelling] {
		sh := shipment
		c.Shipment = &sh
	}
	return c
}

// okResult is a successful result of step n with plausible payloads.
func okResult(n StepName) *StepResult {
	r := &StepResult{Step: n}
	switch n {
	case StepRender:
		r.Form = &Form{Reasons: []Reason{{ID: 10, Desc: "other"}, {ID: 11, Desc: "damaged"}}, MinFee: 100, MaxFee: 1000, DefaultFee: 1000, CanEditFee: true}
	case StepReasons:
		r.Reasons = []Reason{{ID: 21, Desc: "damaged"}}
	case StepUploadVouchers:
		r.Vouchers = []string{"https://img.example/v/1.jpg"}
	case StepSubmit:
		r.RefundID = "R1"
	case StepReturnRender:
		r.Companies = []string{"YTO", "SF"}
	}
	return r
}

func failResult(n StepName, transient bool) *StepResult {
	return &StepResult{Step: n, Err: &StepError{Code: "4091", Message: "illegal state", Transient: transient}}
}

// apply does to the case what the worker would after persisting dec (and,
// for a step, its intent).
func apply(c CaseView, dec Decision) CaseView {
	if dec.Outcome != OutcomeAct && dec.Outcome != OutcomeNoOp {
		return c
	}
	c.State, c.Parked, c.WakeAt = dec.State, dec.Parked, dec.WakeAt
	if dec.Attention != nil {
		c.AttentionCode, c.AttentionMessage = dec.Attention.Code, dec.Attention.Message
	} else {
		c.AttentionCode, c.AttentionMessage = "", ""
	}
	if dec.RefundID != "" {
		c.RefundID = dec.RefundID
	}
	if dec.Request != nil {
		c.Request = *dec.Request
	}
	if dec.Plan != nil {
		c.Plan = *dec.Plan
	}
	if dec.Shipment != nil {
		sh := *dec.Shipment
		c.Shipment = &sh
	}
	if dec.Resolve != nil {
		c.Intent = nil
	}
	if dec.Step != nil && dec.Step.Name.SideEffect() {
		c.Intent = &Intent{Step: dec.Step.Name, Key: dec.Step.Key}
	}
	if dec.Outcome == OutcomeAct {
		c.Version++
	}
	return c
}

// finish records a step's result on the case (FinishStep) and decides on it.
func finish(c CaseView, r *StepResult) (CaseView, Decision) {
	if c.Intent != nil && c.Intent.Step == r.Step {
		r.Key = c.Intent.Key
	}
	dec := decider.Decide(c, nil, Input{Kind: InputStepResult, Now: now, Result: r})
	if c.Intent != nil && c.Intent.Step == r.Step {
		c.Intent = nil
	}
	return apply(c, dec), dec
}

// cell renders a decision compactly: "act:state+step", "noop/code", …
func cell(d Decision) string {
	if d.Outcome != OutcomeAct {
		return fmt.Sprintf("%s/%s", d.Outcome, d.Code)
	}
	s := "act:" + string(d.State)
	if d.Step != nil {
		s += "+" + string(d.Step.Name)
	}
	return s
}

// The statuses the platform sends for each phase, as the default profile
// names them.
var (
	tbWaitSellerAgree   = platform.Default().TaobaoName(platform.PhaseWaitSellerAgree)
	tbWaitBuyerReturn   = platform.Default().TaobaoName(platform.PhaseWaitBuyerReturn)
	tbWaitSellerReceive = platform.Default().TaobaoName(platform.PhaseWaitSellerReceive)
	tbSellerRefused     = platform.Default().TaobaoName(platform.PhaseSellerRefused)
	tbClosed            = platform.Default().TaobaoName(platform.PhaseClosed)
	tbSuccess           = platform.Default().TaobaoName(platform.PhaseSuccess)
	abWaitSellerAgree   = platform.Default().AlibabaName(platform.PhaseWaitSellerAgree)
	abWaitBuyerReturn   = platform.Default().AlibabaName(platform.PhaseWaitBuyerReturn)
	abWaitSellerReceive = platform.Default().AlibabaName(platform.PhaseWaitSellerReceive)
	abSellerRefused     = platform.Default().AlibabaName(platform.PhaseSellerRefused)
	abClosed            = platform.Default().AlibabaName(platform.PhaseClosed)
	abSuccess           = platform.Default().AlibabaName(platform.PhaseSuccess)
)

// tbView is what the fetcher makes of a Taobao refund the platform reports
// with status st (a wire name, mapped by the default profile).
func tbView(st string) *PlatformView {
	ph, _ := platform.Default().TaobaoPhase(string(st))
	return &PlatformView{Found: true, RefundID: "R1", Phase: ph, StatusText: string(st)}
}

// alView is tbView for a 1688 refund.
func alView(st string) *PlatformView {
	ph, _ := platform.Default().AlibabaPhase(string(st))
	return &PlatformView{Found: true, RefundID: "R1", Phase: ph, StatusText: string(st)}
}
