package refundflow

import (
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/runbook"
)

var (
	orderCancelled = OrderEvent{ID: 41, Type: "ORDER_CANCEL", Kind: platform.KindOrderStatus, Status: "CANCEL", Ended: true, CloseReason: "buyer_cancel"}
	priceCorrected = OrderEvent{ID: 42, Type: "ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY", Kind: platform.KindPriceModify, Status: "WAITING_FOR_PAYMENT", TotalAmount: 9800}
	orderPaid      = OrderEvent{ID: 43, Type: "ORDER_PAY_SUCCESS", Kind: platform.KindOrderStatus, Status: "WAITING_FOR_SENT"}
)

func withEvents(c CaseView, evs ...OrderEvent) CaseView {
	c.OrderEvents = evs
	return c
}

// TestOrderEventsBeforeSubmission: nothing of the case is on the platform.
// An ended order ends it; any other change reads the form again, unless the
// case is parked for a reason the order cannot change.
func TestOrderEventsBeforeSubmission(t *testing.T) {
	timer := Input{Kind: InputTimer, Now: now}
	for _, tc := range []struct {
		name string
		c    CaseView
		in   Input
		want string
		seen int64
	}{
		{"ended, rendering", withEvents(fixture(PlatformTaobao, StateRendering), orderCancelled), timer, "act:cancelled", 41},
		{"ended, submitting (every attempt refused)", withEvents(fixture(PlatformTaobao, StateSubmitting), priceCorrected, orderCancelled), timer, "act:cancelled", 41},
		{"ended, 1688 uploading vouchers", withEvents(fixture(Platform1688, StateUploadingVouchers), orderCancelled), timer, "act:cancelled", 41},
		{"ended, parked reason_not_offered", withEvents(parkedCase(PlatformTaobao, StateRendering, AttnReasonNotOffered), orderCancelled), timer, "act:cancelled", 41},
		{"ended, the request that opens the case", withEvents(fixture(PlatformTaobao, StateRequested), orderCancelled),
			Input{Kind: InputRequestRefund, Now: now, Request: ptrTo(taobaoRequest())}, "act:cancelled", 41},
		{"price, submitting: read the form again", withEvents(fixture(PlatformTaobao, StateSubmitting), priceCorrected), timer, "act:rendering+render", 42},
		{"price, 1688 submitting: reasons again", withEvents(fixture(Platform1688, StateSubmitting), priceCorrected), timer, "act:rendering+reasons", 42},
		{"paid, parked fee_out_of_bounds: read the form again", withEvents(parkedCase(PlatformTaobao, StateRendering, AttnFeeOutOfBounds), orderPaid), timer, "act:rendering+render", 43},
		{"paid, parked nothing_refundable: read the form again", withEvents(parkedCase(PlatformTaobao, StateRendering, AttnNothingRefundable), orderPaid), timer, "act:rendering+render", 43},
		{"paid, submission refused: again", withEvents(parkedCase(Platform1688, StateSubmitting, AttnPlatformError), priceCorrected, orderPaid), timer, "act:rendering+reasons", 43},
		{"price, parked reason_not_offered: noted", withEvents(parkedCase(PlatformTaobao, StateRendering, AttnReasonNotOffered), priceCorrected), timer, "act:needs_attention", 42},
		{"paid, rendering: noted, the render goes on", withEvents(fixture(PlatformTaobao, StateRendering), orderPaid),
			Input{Kind: InputStepResult, Now: now, Result: okResult(StepRender)}, "act:submitting+submit", 43},
		{"a render's result from before the price: read again", withEvents(fixture(PlatformTaobao, StateRendering), priceCorrected),
			Input{Kind: InputStepResult, Now: now, Result: okResult(StepRender)}, "act:rendering+render", 42},
	} {
		got := decider.Decide(tc.c, nil, tc.in)
		if cell(got) != tc.want || got.OrderEventsSeen != tc.seen {
			t.Errorf("%s: %s seen %d (%s); want %s seen %d", tc.name, cell(got), got.OrderEventsSeen, got.Reason, tc.want, tc.seen)
		}
		if got.State == StateCancelled && (got.Code != CodeOrderEnded || !strings.Contains(got.Reason, "buyer_cancel")) {
			t.Errorf("%s: ended as %s %q; want %s naming the close reason", tc.name, got.Code, got.Reason, CodeOrderEnded)
		}
		if got.Step != nil && got.Plan == nil {
			t.Errorf("%s: the form is read again with the old plan kept", tc.name)
		}
		if got.State == StateNeedsAttention && (got.Attention == nil || got.Attention.Code != tc.c.AttentionCode) {
			t.Errorf("%s: parked case lost its attention: %+v", tc.name, got.Attention)
		}
	}
	// The request of a case whose order only changed reads the form anyway,
	// and notes the news.
	c := withEvents(fixture(PlatformTaobao, StateRequested), priceCorrected)
	got := decider.Decide(c, nil, Input{Kind: InputRequestRefund, Now: now, Request: ptrTo(taobaoRequest())})
	if cell(got) != "act:rendering+render" || got.OrderEventsSeen != 42 || got.Reapply {
		t.Errorf("a request after a price correction: %s seen %d reapply %v; want the form read, the news noted", cell(got), got.OrderEventsSeen, got.Reapply)
	}
}

// TestOrderEventsAfterSubmission: a refund is (or may be) on the platform:
// the events are a hint; the case reads the refund and follows it, and an
// open side effect is settled first.
func TestOrderEventsAfterSubmission(t *testing.T) {
	c := withEvents(fixture(PlatformTaobao, StateWaitingSeller), orderCancelled)
	mustCell(t, "no view", decider.Decide(c, nil, Input{Kind: InputTimer, Now: now}), "fetch/verify")
	got := decider.Decide(c, tbView(tbSuccess), Input{Kind: InputTimer, Now: now})
	if cell(got) != "act:succeeded" || got.OrderEventsSeen != 41 {
		t.Errorf("refund succeeded: %s seen %d; want act:succeeded, seen 41", cell(got), got.OrderEventsSeen)
	}
	got = decider.Decide(c, tbView(tbWaitSellerAgree), Input{Kind: InputTimer, Now: now})
	if cell(got) != "act:waiting_seller" || got.OrderEventsSeen != 41 {
		t.Errorf("nothing new on the refund: %s seen %d; want the events noted", cell(got), got.OrderEventsSeen)
	}
	withIntent := withEvents(fixture(PlatformTaobao, StateSubmitting), orderCancelled)
	withIntent.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v2"}
	mustCell(t, "open submit intent", decider.Decide(withIntent, nil, Input{Kind: InputTimer, Now: now}), "fetch/intent_unsettled")
	if got := decider.Decide(withIntent, nil, Input{Kind: InputStepResult, Now: now, Result: &StepResult{Step: StepSubmit, Key: "case:7:submit:v2", RefundID: "R1"}}); cell(got) != "act:waiting_seller" {
		t.Errorf("the submit's own result: %s; want it recorded (act:waiting_seller) before the events", cell(got))
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestYuan(t *testing.T) {
	for fen, want := range map[int64]string{0: "0.00", 5: "0.05", 9800: "98.00", 12345: "123.45", -250: "-2.50"} {
		if got := yuan(fen); got != want {
			t.Errorf("yuan(%d) = %q; want %q", fen, got, want)
		}
	}
}

// TestDecisionTexts pins the operator-facing words that carry a fact: the
// order event's status and new total, the platform's name in a refusal and
// in an unknown status.
func TestDecisionTexts(t *testing.T) {
	if got := describeOrderEvent(priceCorrected); got != "ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY, status WAITING_FOR_PAYMENT, total 98.00" {
		t.Errorf("price correction described as %q", got)
	}
	if got := describeOrderEvent(OrderEvent{Type: "ORDER_CREATE", Kind: platform.KindOrderStatus}); got != "ORDER_CREATE" {
		t.Errorf("an event without status described as %q", got)
	}
	if got := describeOrderEvent(orderCancelled); got != "ORDER_CANCEL, status CANCEL, close reason buyer_cancel" {
		t.Errorf("cancel described as %q", got)
	}
	tv, av := *tbView(tbSellerRefused), *alView(abSellerRefused)
	tv.RefuseReason, av.RefuseReason = "用过了", "已使用"
	_, tb := target(PlatformTaobao, tv)
	_, ab := target(Platform1688, av)
	// The seller's words alone: what to do is the runbook's (refundctl's
	// "to do", the console's "What to do"), which names each platform's
	// way on; both here, it was said twice, the refusal cut in lists.
	if tb.Message != "seller refused: 用过了" || ab.Message != "seller rejected: 已使用" {
		t.Errorf("refusal texts %q, %q; want the seller's words alone", tb.Message, ab.Message)
	}
	if do := runbook.Embedded().Reasons[AttnSellerRefused].Do; !strings.Contains(do, "refundctl modify") || !strings.Contains(do, "1688: no modification (waitbuyermodify; modify is refused)") {
		t.Errorf("the runbook's advice for %s = %q; want each platform's way on", AttnSellerRefused, do)
	}
	tv.RefuseReason = " "
	if _, a := target(PlatformTaobao, tv); a.Message != "seller refused (no reason given)" {
		t.Errorf("a refusal without a reason reads %q", a.Message)
	}
	_, tu := target(PlatformTaobao, *tbView("SOMETHING_NEW"))
	_, au := target(Platform1688, *alView("somethingnew"))
	if !strings.HasPrefix(tu.Message, "unknown Taobao refund status") || !strings.HasPrefix(au.Message, "unknown 1688 refund status") {
		t.Errorf("unknown status texts %q, %q; want the platform named", tu.Message, au.Message)
	}
}

// TestOrderEndedReappliesOtherCommands: an ended order ends a request not
// yet submitted; a command other than the request that opened the case is
// then decided on the finished case (and refused, saying so).
func TestOrderEndedReappliesOtherCommands(t *testing.T) {
	c := withEvents(fixture(PlatformTaobao, StateRendering), orderCancelled)
	if got := decider.Decide(c, nil, Input{Kind: InputCancel, Now: now}); got.State != StateCancelled || !got.Reapply {
		t.Errorf("cancel on an ended order: %s reapply %v; want cancelled, the cancel decided again", cell(got), got.Reapply)
	}
	if got := decider.Decide(c, nil, Input{Kind: InputTimer, Now: now}); got.State != StateCancelled || got.Reapply {
		t.Errorf("timer on an ended order: %s reapply %v; want cancelled, nothing to decide again", cell(got), got.Reapply)
	}
}

// TestRefusalSeenWhileModifyingIsNotAStop: the refusal a modification
// answers does not park the case again.
func TestRefusalSeenWhileModifyingIsNotAStop(t *testing.T) {
	got := decider.Decide(fixture(PlatformTaobao, StateModifyRendering), tbView(tbSellerRefused), Input{Kind: InputTimer, Now: now})
	if cell(got) != "act:modify_rendering+render" {
		t.Errorf("refused view while modifying: %s (%s); want the form read on", cell(got), got.Reason)
	}
}

// TestWaitingEvidenceFlagsOnlyAMovingCase: a case waiting for evidence of
// its side effect is flagged; a parked one keeps its own attention.
func TestWaitingEvidenceFlagsOnlyAMovingCase(t *testing.T) {
	patient := Decider{Policy: policy}
	patient.Policy.IntentGrace = time.Hour
	it := &Intent{Step: StepSubmit, Key: "case:7:submit:v2", Since: now.Add(-time.Minute)}
	moving := fixture(Platform1688, StateSubmitting)
	moving.Intent = it
	got := patient.Decide(moving, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now})
	if got.Attention == nil || got.Attention.Code != AttnWaitingEvidence {
		t.Errorf("moving case: attention %+v; want waiting_evidence", got.Attention)
	}
	parked := parkedCase(Platform1688, StateSubmitting, AttnPlatformError)
	parked.Intent = it
	got = patient.Decide(parked, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now})
	if got.Attention != nil && got.Attention.Code == AttnWaitingEvidence {
		t.Errorf("parked case flagged waiting_evidence: %+v", got.Attention)
	}
}

// TestAPriceChangeKeepsARefusalForAnOpenRefund: a case the platform refused
// for an open refund on the sub-order, retried and reading its form again,
// meets a price change: the form is read again, and the refusal is kept, so
// that nothing is sent while that refund is listed open.
func TestAPriceChangeKeepsARefusalForAnOpenRefund(t *testing.T) {
	c := fixture(PlatformTaobao, StateRendering)
	c.Plan.RefusedForOpen = true
	got := decider.Decide(withEvents(c, priceCorrected), nil, Input{Kind: InputTimer, Now: now})
	if cell(got) != "act:rendering+render" || got.Plan == nil || !got.Plan.RefusedForOpen {
		t.Errorf("price change: %s plan %+v; want the form read again, the refusal kept", cell(got), got.Plan)
	}
}
