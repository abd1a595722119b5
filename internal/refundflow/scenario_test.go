package refundflow

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/platform"
)

func mustCell(t *testing.T, what string, got Decision, want string) {
	t.Helper()
	if cell(got) != want {
		t.Fatalf("%s: decision %s (%s); want %s", what, cell(got), got.Reason, want)
	}
}

func TestTaobaoHappyPathWithReturn(t *testing.T) {
	c := CaseView{ID: 1, Platform: PlatformTaobao, State: StateRequested, Version: 1}
	req := taobaoRequest()
	dec := decider.Decide(c, nil, Input{Kind: InputRequestRefund, Now: now, Request: &req})
	mustCell(t, "request", dec, "act:rendering+render")
	if s := dec.Step; !s.ReturnGoods || s.GoodsStatus != "2" {
		t.Fatalf("render step = %+v; want a return, goodsStatus 2", s)
	}
	c = apply(c, dec)

	c, dec = finish(c, okResult(StepRender))
	mustCell(t, "render ok", dec, "act:submitting+submit")
	if s := dec.Step; s.ReasonID != 11 || s.Fee != 500 || !s.ReturnGoods || s.Key == "" || s.Description != req.Description {
		t.Fatalf("submit step = %+v; want reason 11, fee 500 within [100,1000], a key", s)
	}
	if c.Intent == nil || c.Intent.Step != StepSubmit {
		t.Fatalf("intent after submit decision = %+v", c.Intent)
	}

	c, dec = finish(c, okResult(StepSubmit))
	mustCell(t, "submit ok", dec, "act:waiting_seller")
	if c.RefundID != "R1" || !dec.WakeAt.Equal(now.Add(policy.Recheck)) {
		t.Fatalf("after submit: refund %q wake %v; want R1, now+recheck", c.RefundID, dec.WakeAt)
	}

	cb := Input{Kind: InputCallback, Now: now}
	mustCell(t, "callback without view", decider.Decide(c, nil, cb), "fetch/verify")
	dec = decider.Decide(c, tbView(tbWaitBuyerReturn), cb)
	mustCell(t, "seller wants the goods back", dec, "act:waiting_return_shipment")
	c = apply(c, dec)

	sh := shipment
	dec = decider.Decide(c, nil, Input{Kind: InputReportShipment, Now: now, Shipment: &sh})
	mustCell(t, "shipment", dec, "act:return_rendering+return_render")
	c = apply(c, dec)

	c, dec = finish(c, okResult(StepReturnRender))
	mustCell(t, "carriers", dec, "act:return_submitting+return_submit")
	if s := dec.Step; s.Company != "SF" || s.Waybill != "W1" || s.RefundID != "R1" || s.Key == "" {
		t.Fatalf("return submit step = %+v", s)
	}
	c, dec = finish(c, okResult(StepReturnSubmit))
	mustCell(t, "return submitted", dec, "act:waiting_seller_receive")

	dec = decider.Decide(c, tbView(tbSuccess), Input{Kind: InputReconcile, Now: now})
	mustCell(t, "success", dec, "act:succeeded")
	c = apply(c, dec)
	if !dec.WakeAt.IsZero() {
		t.Fatalf("terminal wake = %v; want none", dec.WakeAt)
	}
	// A late, reordered callback changes nothing.
	mustCell(t, "late callback", decider.Decide(c, tbView(tbWaitSellerAgree), cb), "noop/terminal")
}

func TestAlibabaVouchersAndCarrierCheck(t *testing.T) {
	c := CaseView{ID: 2, Platform: Platform1688, State: StateRequested, Version: 1}
	req := alibabaRequest()
	req.Carriage = 80
	dec := decider.Decide(c, nil, Input{Kind: InputRequestRefund, Now: now, Request: &req})
	mustCell(t, "request", dec, "act:rendering+reasons")
	c = apply(c, dec)

	c, dec = finish(c, &StepResult{Step: StepReasons, Reasons: []Reason{{ID: 20, Desc: "late"}, {ID: 21, Desc: "damaged", NeedVoucher: true}}})
	mustCell(t, "reason needs vouchers", dec, "act:uploading_vouchers+upload_vouchers")
	if !slices.Equal(dec.Step.Vouchers, []string{"photo-1.jpg"}) {
		t.Fatalf("upload step vouchers = %v", dec.Step.Vouchers)
	}
	c, dec = finish(c, okResult(StepUploadVouchers))
	mustCell(t, "uploaded", dec, "act:submitting+submit")
	if s := dec.Step; !s.ReturnGoods || s.Fee != 500 || s.Carriage != 80 ||
		s.ReasonID != 21 || !slices.Equal(s.Vouchers, []string{"https://img.example/v/1.jpg"}) {
		t.Fatalf("create step = %+v", s)
	}
	c, _ = finish(c, okResult(StepSubmit))
	dec = decider.Decide(c, alView(abWaitBuyerReturn), Input{Kind: InputCallback, Now: now})
	mustCell(t, "waitbuyersend", dec, "act:waiting_return_shipment")
	c = apply(c, dec)

	bad := Shipment{Company: "ZTO", Waybill: "W9"}
	c = apply(c, decider.Decide(c, nil, Input{Kind: InputReportShipment, Now: now, Shipment: &bad}))
	c, dec = finish(c, okResult(StepReturnRender))
	mustCell(t, "carrier not listed", dec, "act:needs_attention")
	if dec.Attention.Code != AttnCompanyRejected || dec.Parked != StateReturnRendering || !strings.Contains(dec.Attention.Message, "SF") {
		t.Fatalf("attention = %+v parked %s", dec.Attention, dec.Parked)
	}
	// The same wrong shipment again is a duplicate; a corrected one resumes.
	mustCell(t, "same bad shipment", decider.Decide(c, nil, Input{Kind: InputReportShipment, Now: now, Shipment: &bad}), "noop/duplicate")
	good := shipment
	dec = decider.Decide(c, nil, Input{Kind: InputReportShipment, Now: now, Shipment: &good})
	mustCell(t, "corrected shipment", dec, "act:return_rendering+return_render")
	c = apply(c, dec)
	if c.AttentionCode != "" {
		t.Fatalf("attention not cleared: %q", c.AttentionCode)
	}
	c, _ = finish(c, okResult(StepReturnRender))
	c, dec = finish(c, okResult(StepReturnSubmit))
	mustCell(t, "goods returned", dec, "act:waiting_seller_receive")
	dec = decider.Decide(c, alView(abClosed), Input{Kind: InputTimer, Now: now})
	mustCell(t, "closed", dec, "act:closed")
}

func TestAlibabaReasonWithoutCarriageAndMissingVouchers(t *testing.T) {
	c := fixture(Platform1688, StateRendering)
	c.Request.Carriage = 80
	_, dec := finish(c, &StepResult{Step: StepReasons, Reasons: []Reason{{ID: 21, Desc: "damaged", NoCarriage: true}}})
	mustCell(t, "no carriage", dec, "act:submitting+submit")
	if dec.Step.Carriage != 0 {
		t.Fatalf("carriage = %d; want 0 for a reason without freight refund", dec.Step.Carriage)
	}
	c.Request.Vouchers = nil
	_, dec = finish(c, &StepResult{Step: StepReasons, Reasons: []Reason{{ID: 21, Desc: "damaged", NeedVoucher: true}}})
	if dec.State != StateNeedsAttention || dec.Attention.Code != AttnVoucherRequired {
		t.Fatalf("reason needs vouchers, none given: %s %+v", cell(dec), dec.Attention)
	}
}

func TestFormChoice(t *testing.T) {
	reasons := []Reason{{ID: 10, Desc: "Other"}, {ID: 11, Desc: "Damaged"}}
	for _, tc := range []struct {
		name     string
		reqID    int64
		reqText  string
		amount   int64
		form     Form
		wantCode string // attention code, "" for a submit
		wantFee  int64
		wantID   int64
	}{
		{"within bounds", 11, "", 500, Form{Reasons: reasons, MinFee: 100, MaxFee: 1000, CanEditFee: true}, "", 500, 11},
		{"zero means maximum", 11, "", 0, Form{Reasons: reasons, MinFee: 100, MaxFee: 1000, CanEditFee: true}, "", 1000, 11},
		{"at the upper bound", 11, "", 1000, Form{Reasons: reasons, MinFee: 100, MaxFee: 1000, CanEditFee: true}, "", 1000, 11},
		{"above the bound", 11, "", 1001, Form{Reasons: reasons, MinFee: 100, MaxFee: 1000, CanEditFee: true}, AttnFeeOutOfBounds, 0, 0},
		{"below the bound", 11, "", 99, Form{Reasons: reasons, MinFee: 100, MaxFee: 1000, CanEditFee: true}, AttnFeeOutOfBounds, 0, 0},
		{"fixed fee, none asked", 11, "", 0, Form{Reasons: reasons, DefaultFee: 700}, "", 700, 11},
		{"fixed fee, same asked", 11, "", 700, Form{Reasons: reasons, DefaultFee: 700}, "", 700, 11},
		{"fixed fee, other asked", 11, "", 500, Form{Reasons: reasons, DefaultFee: 700}, AttnFeeNotEditable, 0, 0},
		// A form whose most is 0 leaves nothing to file whatever is
		// asked: said as such, before the reason or the amount (a
		// corrected request cannot help).
		{"nothing refundable", 11, "", 0, Form{Reasons: reasons, CanEditFee: true}, AttnNothingRefundable, 0, 0},
		{"nothing refundable, an amount asked", 11, "", 500, Form{Reasons: reasons, CanEditFee: true}, AttnNothingRefundable, 0, 0},
		{"nothing refundable, a reason not offered", 99, "", 0, Form{Reasons: reasons, CanEditFee: true}, AttnNothingRefundable, 0, 0},
		{"nothing refundable, the fee fixed at 0", 11, "", 0, Form{Reasons: reasons}, AttnNothingRefundable, 0, 0},
		{"nothing refundable beside an open refund", 11, "", 0, Form{Reasons: reasons, CanEditFee: true, Existing: []string{"R0"}, ExistingOpen: []string{"R0"}}, AttnRefundExists, 0, 0},
		{"reason by text", 0, "  damaged ", 500, Form{Reasons: reasons, MinFee: 1, MaxFee: 1000, CanEditFee: true}, "", 500, 11},
		{"reason not offered", 99, "", 500, Form{Reasons: reasons, MinFee: 1, MaxFee: 1000, CanEditFee: true}, AttnReasonNotOffered, 0, 0},
		{"no reasons at all", 11, "", 500, Form{MinFee: 1, MaxFee: 1000, CanEditFee: true}, AttnReasonNotOffered, 0, 0},
		{"after-sale disabled", 11, "", 500, Form{Reasons: reasons, MaxFee: 1000, CanEditFee: true, SaleDisabled: true}, AttnSaleNotAllowed, 0, 0},
	} {
		c := fixture(PlatformTaobao, StateRendering)
		c.Request.ReasonID, c.Request.Reason, c.Request.Amount = tc.reqID, tc.reqText, tc.amount
		f := tc.form
		_, dec := finish(c, &StepResult{Step: StepRender, Form: &f})
		if tc.wantCode != "" {
			if dec.State != StateNeedsAttention || dec.Attention == nil || dec.Attention.Code != tc.wantCode || dec.Parked != StateRendering {
				t.Errorf("%s: %s attention %+v; want needs_attention %s parked at rendering", tc.name, cell(dec), dec.Attention, tc.wantCode)
			}
			continue
		}
		if cell(dec) != "act:submitting+submit" || dec.Step.Fee != tc.wantFee || dec.Step.ReasonID != tc.wantID || dec.Plan.Fee != tc.wantFee {
			t.Errorf("%s: %s step %+v; want submit with fee %d reason %d", tc.name, cell(dec), dec.Step, tc.wantFee, tc.wantID)
		}
	}
	// Nothing refundable names the refunds the platform lists on the
	// sub-order: those that may have taken its payment.
	c := fixture(PlatformTaobao, StateRendering)
	_, dec := finish(c, &StepResult{Step: StepRender, Form: &Form{Reasons: reasons, CanEditFee: true, Existing: []string{"R8", "R9"}}})
	if dec.Attention == nil || !strings.Contains(dec.Attention.Message, "allows nothing to refund (its most is 0 fen)") ||
		!strings.Contains(dec.Attention.Message, "lists refund R8, R9 on it") {
		t.Errorf("nothing refundable beside finished refunds: %+v; want the form's most and the listed refunds", dec.Attention)
	}
	// A corrected request restarts a case parked before submission.
	c = fixture(PlatformTaobao, StateRendering)
	c.Request.Amount = 5000
	c, _ = finish(c, &StepResult{Step: StepRender, Form: &Form{Reasons: reasons, MinFee: 100, MaxFee: 1000, CanEditFee: true}})
	fixed := c.Request
	fixed.Amount = 900
	mustCell(t, "corrected request", decider.Decide(c, nil, Input{Kind: InputRequestRefund, Now: now, Request: &fixed}), "act:rendering+render")
}

func TestAtMostOnceSubmit(t *testing.T) {
	// The worker recorded the submit intent, called the platform and died
	// before recording the result.
	c := fixture(PlatformTaobao, StateSubmitting)
	c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v2"}
	for _, k := range []InputKind{InputTimer, InputReconcile, InputCallback, InputCancel} {
		dec := decider.Decide(c, nil, Input{Kind: k, Now: now})
		if dec.Outcome != OutcomeFetch || dec.Code != CodeIntentUnsettled {
			t.Fatalf("%s with an open intent: %s/%s; want fetch/%s", k, dec.Outcome, dec.Code, CodeIntentUnsettled)
		}
	}
	// The platform has it: settle as done and follow the platform; never submit again.
	dec := decider.Decide(c, tbView(tbWaitSellerAgree), Input{Kind: InputTimer, Now: now})
	mustCell(t, "platform has the refund", dec, "act:waiting_seller")
	if dec.Resolve == nil || !dec.Resolve.Done || dec.Resolve.Key != c.Intent.Key || dec.RefundID != "R1" || dec.Reapply {
		t.Fatalf("resolution = %+v refund %q reapply %v", dec.Resolve, dec.RefundID, dec.Reapply)
	}
	// The platform has nothing: send again under the same key.
	dec = decider.Decide(c, &PlatformView{Found: false}, Input{Kind: InputTimer, Now: now})
	mustCell(t, "platform has nothing", dec, "act:submitting+submit")
	if !dec.Step.Resume || dec.Step.Key != c.Intent.Key || dec.Resolve != nil || dec.Step.Fee != c.Plan.Fee {
		t.Fatalf("resubmission = %+v resolve %+v; want resume under key %s with the planned fee", dec.Step, dec.Resolve, c.Intent.Key)
	}
	// The platform cannot tell: never guess.
	dec = decider.Decide(c, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now})
	if dec.State != StateNeedsAttention || dec.Attention.Code != CodeUnverifiable || dec.Step != nil {
		t.Fatalf("inconclusive: %s %+v; want needs_attention %s, no step", cell(dec), dec.Attention, CodeUnverifiable)
	}
	// With a grace period it first waits for evidence (a callback with the refund id).
	patient := Decider{Policy: policy}
	patient.Policy.IntentGrace = time.Hour
	c.Intent.Since = now.Add(-10 * time.Minute)
	dec = patient.Decide(c, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now})
	if dec.Outcome != OutcomeNoOp || dec.Code != CodeInconclusive || dec.WakeAt.IsZero() || dec.WakeAt.After(c.Intent.Since.Add(time.Hour)) {
		t.Fatalf("inconclusive within grace: %s/%s wake %v; want noop/%s, wake by the end of the grace", dec.Outcome, dec.Code, dec.WakeAt, CodeInconclusive)
	}
	if dec = patient.Decide(c, &PlatformView{Inconclusive: true}, Input{Kind: InputCancel, Now: now}); dec.Outcome != OutcomeRetry {
		t.Fatalf("command within grace: %s; want retry", dec.Outcome)
	}
	c.Intent.Since = now.Add(-2 * time.Hour)
	if dec = patient.Decide(c, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now}); dec.State != StateNeedsAttention {
		t.Fatalf("inconclusive after grace: %s; want needs_attention", cell(dec))
	}
	// A command waiting on the intent is applied after settling.
	dec = decider.Decide(c, tbView(tbWaitSellerAgree), Input{Kind: InputCancel, Now: now})
	if !dec.Reapply || dec.Resolve == nil || !dec.Resolve.Done {
		t.Fatalf("cancel during an open intent: reapply %v resolve %+v", dec.Reapply, dec.Resolve)
	}
	c2 := apply(c, dec)
	mustCell(t, "cancel reapplied", decider.Decide(c2, nil, Input{Kind: InputCancel, Now: now}), "act:cancelling+cancel")
	// The result of the intent's own call is taken as it comes.
	_, dec = finish(c, okResult(StepSubmit))
	mustCell(t, "result of the intent", dec, "act:waiting_seller")
}

func TestAtMostOnceReturnCancelMessage(t *testing.T) {
	c := fixture(PlatformTaobao, StateReturnSubmitting)
	c.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return_submit:v2"}
	shipped := tbView(tbWaitBuyerReturn)
	dec := decider.Decide(c, shipped, Input{Kind: InputTimer, Now: now})
	mustCell(t, "return not on the platform", dec, "act:return_submitting+return_submit")
	if !dec.Step.Resume || dec.Step.Key != c.Intent.Key {
		t.Fatalf("return resubmission = %+v", dec.Step)
	}
	shipped.ReturnWaybill = "W1"
	dec = decider.Decide(c, shipped, Input{Kind: InputTimer, Now: now})
	mustCell(t, "waybill already on the platform", dec, "act:waiting_seller_receive")
	if dec.Resolve == nil || !dec.Resolve.Done {
		t.Fatalf("resolve = %+v; want done", dec.Resolve)
	}

	c = fixture(PlatformTaobao, StateCancelling)
	c.RefundID = "R1"
	c.Intent = &Intent{Step: StepCancel, Key: "case:7:cancel:v2"}
	dec = decider.Decide(c, tbView(tbClosed), Input{Kind: InputCallback, Now: now})
	mustCell(t, "cancel took effect", dec, "act:cancelled")
	dec = decider.Decide(c, tbView(tbSuccess), Input{Kind: InputCallback, Now: now})
	mustCell(t, "refunded before the cancel", dec, "act:succeeded")
	if dec.Resolve == nil || dec.Resolve.Done || dec.Resolve.Code != "superseded" {
		t.Fatalf("resolve = %+v; want superseded", dec.Resolve)
	}

	c = fixture(PlatformTaobao, StateNeedsAttention)
	c.Intent = &Intent{Step: StepMessage, Key: "case:7:message:refusal"}
	dec = decider.Decide(c, tbView(tbSellerRefused), Input{Kind: InputTimer, Now: now})
	if dec.Outcome != OutcomeAct || dec.Step != nil || dec.Resolve == nil || dec.Resolve.Done || dec.Attention == nil {
		t.Fatalf("message of unknown fate: %s step %+v resolve %+v attention %+v; want settled, not resent, attention kept", cell(dec), dec.Step, dec.Resolve, dec.Attention)
	}
}

func TestRefusal(t *testing.T) {
	c := fixture(PlatformTaobao, StateWaitingSeller)
	refused := tbView(tbSellerRefused)
	refused.RefuseReason = "used item"
	dec := decider.Decide(c, refused, Input{Kind: InputCallback, Now: now})
	mustCell(t, "refused", dec, "act:needs_attention+message")
	if dec.Attention.Code != AttnSellerRefused || dec.Parked != StateWaitingSeller ||
		dec.Step.Message != "Please reconsider: used item" || dec.Step.Key != "case:7:message:refusal" || dec.Step.RefundID != "R1" {
		t.Fatalf("refusal decision = %+v step %+v", dec, dec.Step)
	}
	c = apply(c, dec)
	c.Intent = nil // the message was posted
	mustCell(t, "refused again", decider.Decide(c, refused, Input{Kind: InputCallback, Now: now}), "noop/needs_attention")
	// The buyer modified the refund; the seller is asked again.
	mustCell(t, "back to the seller", decider.Decide(c, tbView(tbWaitSellerAgree), Input{Kind: InputReconcile, Now: now}), "act:waiting_seller")

	quiet := Decider{Policy: Policy{Recheck: time.Hour}}
	mustCell(t, "no policy message", quiet.Decide(fixture(PlatformTaobao, StateWaitingSeller), refused, Input{Kind: InputCallback, Now: now}), "act:needs_attention")
	mustCell(t, "1688 rejection", decider.Decide(fixture(Platform1688, StateWaitingSeller), alView(abSellerRefused), Input{Kind: InputCallback, Now: now}), "act:needs_attention")
}

func TestReorderedViewsNeverGoBack(t *testing.T) {
	c := fixture(PlatformTaobao, StateWaitingSeller)
	// The platform's history, delivered newest first.
	for _, st := range []string{tbWaitSellerReceive, tbWaitBuyerReturn, tbWaitSellerAgree} {
		c = apply(c, decider.Decide(c, tbView(st), Input{Kind: InputCallback, Now: now}))
	}
	if c.State != StateWaitingSellerReceive {
		t.Fatalf("after reordered views: %s; want %s", c.State, StateWaitingSellerReceive)
	}
	other := tbView(tbClosed)
	other.RefundID = "R-old"
	mustCell(t, "view of an older refund", decider.Decide(c, other, Input{Kind: InputCallback, Now: now}), "noop/other_refund")
	mustCell(t, "refund vanished", decider.Decide(c, &PlatformView{Found: false}, Input{Kind: InputReconcile, Now: now}), "act:needs_attention")
	mustCell(t, "unknown status", decider.Decide(c, tbView("SOMETHING_NEW"), Input{Kind: InputReconcile, Now: now}), "act:needs_attention")
}

func TestWakeTimes(t *testing.T) {
	c := fixture(PlatformTaobao, StateWaitingSeller)
	v := tbView(tbWaitSellerAgree)
	v.Deadline = now.Add(10 * time.Minute)
	dec := decider.Decide(c, v, Input{Kind: InputTimer, Now: now})
	if dec.Outcome != OutcomeNoOp || !dec.WakeAt.Equal(v.Deadline) {
		t.Fatalf("deadline before recheck: %s wake %v; want noop, wake at the deadline %v", dec.Outcome, dec.WakeAt, v.Deadline)
	}
	v.Deadline = now.Add(48 * time.Hour)
	if dec = decider.Decide(c, v, Input{Kind: InputTimer, Now: now}); !dec.WakeAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("deadline after recheck: wake %v; want now+1h", dec.WakeAt)
	}
	v.Deadline = now.Add(-time.Hour)
	if dec = decider.Decide(c, v, Input{Kind: InputTimer, Now: now}); !dec.WakeAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("past deadline: wake %v; want now+1h", dec.WakeAt)
	}
	dec = decider.Decide(fixture(PlatformTaobao, StateRendering), nil, Input{Kind: InputTimer, Now: now})
	if !dec.WakeAt.Equal(now.Add(policy.StepTimeout)) {
		t.Fatalf("work in progress: wake %v; want now+step timeout", dec.WakeAt)
	}
	dec = decider.Decide(fixture(PlatformTaobao, StateWaitingSeller), nil, Input{Kind: InputCancel, Now: now})
	if !dec.WakeAt.Equal(now.Add(policy.StepTimeout)) {
		t.Fatalf("cancelling: wake %v; want now+step timeout", dec.WakeAt)
	}
}

// TestAnOpenRefundTheCaseDidNotFileBlocksItsSubmission: the platform
// refused a first submission for an open refund (a resend refused so stays
// with its intent: stepError makes it transient); the form read again while
// one is listed open sends nothing, nor does a new request's; a form that
// allows no after-sale while it lists one open names that refund.
func TestAnOpenRefundTheCaseDidNotFileBlocksItsSubmission(t *testing.T) {
	dup := &apiclient.APIError{Endpoint: "taobao_submit", Code: 4092, Class: platform.ClassDuplicateRefund, NotApplied: true}
	if se := stepError(dup, true, false); se.Transient || !se.OpenRefundExists {
		t.Fatalf("first submission refused for an open refund: %+v; want not transient, OpenRefundExists", se)
	}
	if se := stepError(dup, true, true); !se.Transient {
		t.Fatalf("a resend refused for an open refund: %+v; want transient (it stays with its intent: it may be the case's own)", se)
	}

	reasons := []Reason{{ID: 11, Desc: "Damaged"}}
	c := fixture(PlatformTaobao, StateSubmitting)
	c.Plan.PriorOpen = []string{"R9"}
	dec := decider.Decide(c, nil, Input{Kind: InputStepResult, Now: now, Result: &StepResult{Step: StepSubmit, Key: "k",
		Err: stepError(dup, true, false)}})
	if dec.Attention == nil || dec.Attention.Code != AttnRefundExists || !strings.Contains(dec.Attention.Message, "open refund R9") ||
		dec.Plan == nil || !dec.Plan.RefusedForOpen || dec.Parked != StateSubmitting {
		t.Fatalf("the refusal: %s %+v plan %+v; want parked at submitting %s naming R9, the plan keeping it", cell(dec), dec.Attention, dec.Plan, AttnRefundExists)
	}

	refused := fixture(PlatformTaobao, StateRendering)
	refused.Plan.RefusedForOpen = true
	form := Form{Reasons: reasons, MinFee: 1, MaxFee: 1000, CanEditFee: true, Existing: []string{"R8", "R9"}, ExistingOpen: []string{"R9"}}
	_, dec = finish(refused, &StepResult{Step: StepRender, Form: &form})
	if dec.Attention == nil || dec.Attention.Code != AttnRefundExists || !strings.Contains(dec.Attention.Message, "still open") || dec.Step != nil {
		t.Errorf("the form read again, R9 open: %s %+v; want stopped %s, nothing sent", cell(dec), dec.Attention, AttnRefundExists)
	}
	closed := form
	closed.ExistingOpen = nil
	if _, dec = finish(refused, &StepResult{Step: StepRender, Form: &closed}); cell(dec) != "act:submitting+submit" || dec.Plan.RefusedForOpen {
		t.Errorf("the form read again, none open: %s plan %+v; want the submission, the refusal forgotten", cell(dec), dec.Plan)
	}

	// A new request in place of the refused one waits the same way.
	parked := parkedCase(PlatformTaobao, StateSubmitting, AttnRefundExists)
	parked.Plan.RefusedForOpen = true
	other := parked.Request
	other.Amount = 300
	dec = decider.Decide(parked, nil, Input{Kind: InputRequestRefund, Now: now, Request: &other})
	if cell(dec) != "act:rendering+render" || dec.Plan == nil || !dec.Plan.RefusedForOpen {
		t.Fatalf("a new request: %s plan %+v; want the form read again, the refusal kept", cell(dec), dec.Plan)
	}

	plain := fixture(PlatformTaobao, StateRendering)
	disabled := Form{Reasons: reasons, MaxFee: 1000, CanEditFee: true, SaleDisabled: true, ExistingOpen: []string{"R7"}}
	if _, dec = finish(plain, &StepResult{Step: StepRender, Form: &disabled}); dec.Attention == nil || dec.Attention.Code != AttnRefundExists ||
		!strings.Contains(dec.Attention.Message, "allows no refund") || !strings.Contains(dec.Attention.Message, "open refund R7") ||
		dec.Plan == nil || dec.Plan.RefusedForOpen {
		t.Errorf("a form allowing no after-sale with R7 open: %s %+v plan %+v; want %s naming R7, nothing refused kept", cell(dec), dec.Attention, dec.Plan, AttnRefundExists)
	}
}

// TestAnotherRequestForAnOpenCaseSaysTheWayOutOfItsPlatform: 1688 has no
// cancel, so its refusal must not advise one (the console shows the
// reason as it is).
func TestAnotherRequestForAnOpenCaseSaysTheWayOutOfItsPlatform(t *testing.T) {
	for _, tc := range []struct {
		p         Platform
		want, not string
	}{
		{PlatformTaobao, "cancel it first", "1688"},
		{Platform1688, "withdraw its refund on 1688", "cancel it first"},
	} {
		c := fixture(tc.p, StateWaitingSeller)
		other := c.Request
		other.Amount++
		dec := decider.Decide(c, nil, Input{Kind: InputRequestRefund, Now: now, Request: &other})
		if dec.Code != CodeCaseOpen || !strings.Contains(dec.Reason, tc.want) || strings.Contains(dec.Reason, tc.not) {
			t.Errorf("%s: %s %q; want %s saying %q, not %q", tc.p, dec.Code, dec.Reason, CodeCaseOpen, tc.want, tc.not)
		}
	}
	// Before anything reached 1688, the case can be cancelled.
	c := fixture(Platform1688, StateRendering)
	other := c.Request
	other.Amount++
	c.State, c.Parked, c.AttentionCode = StateNeedsAttention, StateRendering, AttnVoucherRequired
	if dec := decider.Decide(c, nil, Input{Kind: InputRequestRefund, Now: now, Request: &other}); dec.Code == CodeCaseOpen &&
		!strings.Contains(dec.Reason, "cancel it first") {
		t.Errorf("1688 before submission: %q; want it to offer the cancel", dec.Reason)
	}
}

// TestAModificationThatNeverReachedThePlatformIsNotTheBaseOfTheNext: an
// operator modifies a refused refund with a reason the form does not offer
// (stopped at modify_rendering), then modifies only the amount: what is
// left out stays as the platform holds it, the reason filed, not the
// reason of the modification that never went out.
func TestAModificationThatNeverReachedThePlatformIsNotTheBaseOfTheNext(t *testing.T) {
	c := fixture(PlatformTaobao, StateNeedsAttention) // refused by the seller
	filed := c.Request
	modify := func(m Modification) Decision {
		return decider.Decide(c, nil, Input{Kind: InputModify, ID: "cmd-modify", Now: now, Modify: &m})
	}
	dec := modify(Modification{ReasonID: 9999})
	mustCell(t, "modify with reason 9999", dec, "act:modify_rendering+render")
	c = apply(c, dec)
	form := Form{Reasons: []Reason{{ID: filed.ReasonID, Desc: "filed"}}, MinFee: 1, MaxFee: 1000, CanEditFee: true}
	c, dec = finish(c, &StepResult{Step: StepRender, Form: &form})
	if dec.Attention == nil || dec.Attention.Code != AttnReasonNotOffered || c.Parked != StateModifyRendering {
		t.Fatalf("the form without 9999: %s %+v; want parked at modify_rendering, %s", cell(dec), dec.Attention, AttnReasonNotOffered)
	}

	amount := int64(300)
	dec = modify(Modification{Amount: &amount})
	mustCell(t, "modify the amount only", dec, "act:modify_rendering+render")
	if dec.Request == nil || dec.Request.ReasonID != filed.ReasonID || dec.Request.Amount != 300 {
		t.Fatalf("the second modification's request %+v; want the filed reason %d with amount 300", dec.Request, filed.ReasonID)
	}
	c = apply(c, dec)
	// The same modification again while it is under way is a duplicate.
	if dec := modify(Modification{Amount: &amount}); dec.Code != CodeDuplicate {
		t.Errorf("the same modification under way: %s; want %s", cell(dec), CodeDuplicate)
	}
	b, _ := json.Marshal(c.Plan)
	if fs := DescribePlan(b); !slices.ContainsFunc(fs, func(f Field) bool {
		return f.Name == "Before the last modification" && strings.Contains(f.Value, strconv.FormatInt(filed.ReasonID, 10))
	}) {
		t.Errorf("the plan described %+v; want the request before the modification, reason %d", fs, filed.ReasonID)
	}
	_, dec = finish(c, &StepResult{Step: StepRender, Form: &form})
	mustCell(t, "the second modification's form", dec, "act:modifying+modify")
	if dec.Step.ReasonID != filed.ReasonID || dec.Step.Fee != 300 {
		t.Errorf("modification sent with reason %d fee %d; want %d and 300", dec.Step.ReasonID, dec.Step.Fee, filed.ReasonID)
	}
}

// TestAModificationTheFormAllowsNoAmountForSaysTheRefundStands: the form
// read for a modification allows nothing: the refund as filed (refused)
// is still on the platform, so the text must not say "refunded already,
// no request can be filed" of it, nor name the case's own refund as one
// that took the payment.
func TestAModificationTheFormAllowsNoAmountForSaysTheRefundStands(t *testing.T) {
	c := fixture(PlatformTaobao, StateNeedsAttention) // refused by the seller
	amount := int64(300)
	dec := decider.Decide(c, nil, Input{Kind: InputModify, ID: "cmd-modify", Now: now, Modify: &Modification{Amount: &amount}})
	mustCell(t, "modify the amount", dec, "act:modify_rendering+render")
	c = apply(c, dec)
	form := Form{Reasons: []Reason{{ID: c.Request.ReasonID, Desc: "filed"}}, CanEditFee: true, Existing: []string{c.RefundID}, ExistingOpen: []string{c.RefundID}}
	c, dec = finish(c, &StepResult{Step: StepRender, Form: &form})
	if dec.Attention == nil || dec.Attention.Code != AttnNothingRefundable || c.Parked != StateModifyRendering {
		t.Fatalf("the modification's form with a most of 0: %s %+v; want parked at modify_rendering, %s", cell(dec), dec.Attention, AttnNothingRefundable)
	}
	if msg := dec.Attention.Message; !strings.Contains(msg, "refund "+c.RefundID+" stands as filed") ||
		strings.Contains(msg, "refunded already") || strings.Contains(msg, "no request can be filed") {
		t.Errorf("the modification's text %q; want it to say the refund stands as filed", msg)
	}
}

// TestAModificationIsNotStoppedByTheFlagItsOwnRefundTurnsOff: the v2 form
// turns saleFlag off while the sub-order has an open refund (the sandbox
// does, as onForm reads it), and the refund a modification is for is
// open: read for the modification, the form said "after-sale not
// allowed" of the case's own refund, and every modification stopped as
// sale_not_allowed.
func TestAModificationIsNotStoppedByTheFlagItsOwnRefundTurnsOff(t *testing.T) {
	c := fixture(PlatformTaobao, StateNeedsAttention) // refused by the seller
	amount := int64(300)
	dec := decider.Decide(c, nil, Input{Kind: InputModify, ID: "cmd-modify", Now: now, Modify: &Modification{Amount: &amount}})
	mustCell(t, "modify the amount", dec, "act:modify_rendering+render")
	c = apply(c, dec)
	form := Form{Reasons: []Reason{{ID: c.Request.ReasonID, Desc: "filed"}}, MinFee: 1, MaxFee: 1000, CanEditFee: true, SaleDisabled: true,
		Existing: []string{"R0", c.RefundID}, ExistingOpen: []string{c.RefundID}}
	_, dec = finish(c, &StepResult{Step: StepRender, Form: &form})
	mustCell(t, "the modification's form, the flag off for its own refund", dec, "act:modifying+modify")
	// Another refund open beside it: the flag may be the platform's word
	// on the sub-order, and the case stops as before.
	form.ExistingOpen = []string{"R0", c.RefundID}
	_, dec = finish(c, &StepResult{Step: StepRender, Form: &form})
	if dec.Attention == nil || dec.Attention.Code != AttnSaleNotAllowed {
		t.Errorf("the flag off with another refund open: %s %+v; want %s", cell(dec), dec.Attention, AttnSaleNotAllowed)
	}
}
