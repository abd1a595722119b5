package refundflow

import (
	"strings"
	"testing"
	"time"
)

// Edges of Decide that mutation testing found unpinned: zero policy
// durations, a wake that finds the case's own step unfinished, the refund id
// a decision learns, and the bounds of operator input.

// TestZeroPolicyDurationsSetNoTimer: Recheck 0 and StepTimeout 0 mean no
// timer (Policy), not a timer due now; a positive one is due that long
// after the input.
func TestZeroPolicyDurationsSetNoTimer(t *testing.T) {
	for _, c := range []struct {
		name  string
		p     Policy
		cv    CaseView
		v     *PlatformView
		wants time.Time
	}{
		{"waiting, Recheck 0", Policy{}, fixture(PlatformTaobao, StateWaitingSeller), tbView(tbWaitSellerAgree), time.Time{}},
		{"waiting, Recheck 1h", Policy{Recheck: time.Hour}, fixture(PlatformTaobao, StateWaitingSeller), tbView(tbWaitSellerAgree), now.Add(time.Hour)},
		{"own step, StepTimeout 0", Policy{}, fixture(PlatformTaobao, StateRequested), nil, time.Time{}},
		{"own step, StepTimeout 5m", Policy{StepTimeout: 5 * time.Minute}, fixture(PlatformTaobao, StateRequested), nil, now.Add(5 * time.Minute)},
	} {
		dec := Decider{Policy: c.p}.Decide(c.cv, c.v, Input{Kind: InputTimer, Now: now})
		if !dec.WakeAt.Equal(c.wants) {
			t.Errorf("%s: %s wakes at %v; want %v", c.name, cell(dec), dec.WakeAt, c.wants)
		}
	}
}

// TestWakeResumesTheCasesOwnStep: when a wake finds the platform with
// nothing new for a case in a state with a step of its own, the step runs
// again (a crash or a lost message left it unfinished), with what the case
// recorded for it.
func TestWakeResumesTheCasesOwnStep(t *testing.T) {
	rendering := fixture(PlatformTaobao, StateRendering)
	dec := decider.Decide(rendering, &PlatformView{Found: false}, Input{Kind: InputTimer, Now: now})
	if dec.Outcome != OutcomeAct || dec.Step == nil || dec.Step.Name != StepRender {
		t.Errorf("rendering, no refund on the platform yet: %s; want the render step again", cell(dec))
	}

	returning := fixture(PlatformTaobao, StateReturnSubmitting)
	dec = decider.Decide(returning, tbView(tbWaitBuyerReturn), Input{Kind: InputTimer, Now: now})
	if dec.Outcome != OutcomeAct || dec.Step == nil || dec.Step.Name != StepReturnSubmit || dec.Step.Waybill != shipment.Waybill {
		t.Errorf("return_submitting, platform still waiting for the return: %s (step %+v); want the return submission again with waybill %s",
			cell(dec), dec.Step, shipment.Waybill)
	}

	other := fixture(PlatformTaobao, StateReturnRendering)
	v := tbView(tbWaitBuyerReturn)
	v.RefundID = "R2"
	if dec := decider.Decide(other, v, Input{Kind: InputTimer, Now: now}); dec.Outcome != OutcomeNoOp || dec.Code != CodeOtherRefund {
		t.Errorf("view of another refund: %s; want no-op %s (a view of another refund says nothing about this case)", cell(dec), CodeOtherRefund)
	}
	if dec := decider.Decide(rendering, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now}); dec.Outcome != OutcomeNoOp || dec.Code != CodeInconclusive {
		t.Errorf("inconclusive view: %s; want no-op %s", cell(dec), CodeInconclusive)
	}
}

// TestZeroGraceAndInFlightActAtOnce: IntentGrace 0 parks an unverifiable
// intent at once and InFlight 0 trusts a view showing no effect at once,
// even when the intent's times are ahead of this worker's clock.
func TestZeroGraceAndInFlightActAtOnce(t *testing.T) {
	ahead := now.Add(time.Minute) // written by a worker whose clock is ahead
	c := fixture(PlatformTaobao, StateSubmitting)
	c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v3", Since: ahead, LastAttempt: ahead}

	dec := decider.Decide(c, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now})
	if dec.State != StateNeedsAttention || dec.Code != CodeUnverifiable {
		t.Errorf("IntentGrace 0, inconclusive view: %s; want parked %s at once", cell(dec), CodeUnverifiable)
	}
	dec = decider.Decide(c, &PlatformView{Found: false}, Input{Kind: InputTimer, Now: now})
	if dec.Step == nil || !dec.Step.Resume || dec.Step.Key != c.Intent.Key {
		t.Errorf("InFlight 0, no refund on the platform: %s; want the submit sent again under %s at once", cell(dec), c.Intent.Key)
	}
}

// TestDecisionCarriesOnlyANewRefundID: Decision.RefundID is the refund id
// learned now: set when the view shows the refund the case did not know,
// empty when the case already has it.
func TestDecisionCarriesOnlyANewRefundID(t *testing.T) {
	unknown := fixture(PlatformTaobao, StateSubmitting) // no refund id, no intent
	dec := decider.Decide(unknown, tbView(tbWaitSellerAgree), Input{Kind: InputCallback, Now: now})
	if dec.State != StateWaitingSeller || dec.RefundID != "R1" {
		t.Errorf("view shows refund R1 the case lacks: %s, refund id %q; want waiting_seller learning R1", cell(dec), dec.RefundID)
	}
	known := fixture(PlatformTaobao, StateWaitingSeller)
	dec = decider.Decide(known, tbView(tbWaitBuyerReturn), Input{Kind: InputCallback, Now: now})
	if dec.State != StateWaitingReturnShipment || dec.RefundID != "" {
		t.Errorf("view of the refund the case has: %s, refund id %q; want waiting_return_shipment learning nothing", cell(dec), dec.RefundID)
	}

	// A submit that could not be confirmed parked the case at submitting;
	// the platform now shows the refund (under a status unknown to us).
	parked := fixture(PlatformTaobao, StateSubmitting)
	parked.State, parked.Parked, parked.AttentionCode = StateNeedsAttention, StateSubmitting, AttnUnknownStatus
	parked.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v3", Since: now.Add(-time.Hour)}
	weird := tbView("SOMETHING_NEW")
	dec = decider.Decide(parked, weird, Input{Kind: InputCallback, Now: now})
	if dec.State != StateWaitingSeller || dec.RefundID != "R1" || dec.Resolve == nil || !dec.Resolve.Done {
		t.Errorf("submit intent confirmed by a view of R1: %s, refund id %q, resolve %+v; want waiting_seller learning R1, the intent done",
			cell(dec), dec.RefundID, dec.Resolve)
	}

	// Cancelling learns the refund id from the view when the case lacks it.
	unverified := fixture(PlatformTaobao, StateSubmitting)
	unverified.State, unverified.Parked, unverified.AttentionCode = StateNeedsAttention, StateSubmitting, CodeUnverifiable
	dec = decider.Decide(unverified, tbView(tbWaitSellerAgree), Input{Kind: InputCancel, Now: now})
	if dec.State != StateCancelling || dec.RefundID != "R1" || dec.Step == nil || dec.Step.RefundID != "R1" {
		t.Errorf("cancel, refund R1 found by the view: %s, refund id %q; want cancelling R1, learning it", cell(dec), dec.RefundID)
	}
	dec = decider.Decide(known, nil, Input{Kind: InputCancel, Now: now})
	if dec.State != StateCancelling || dec.RefundID != "" || dec.Step == nil || dec.Step.RefundID != "R1" {
		t.Errorf("cancel of the case's own refund R1: %s, refund id %q; want cancelling R1, learning nothing", cell(dec), dec.RefundID)
	}
}

// TestCancelBeforeAnythingReachedThePlatform: the reason recorded says why
// nothing needs cancelling on the platform.
func TestCancelBeforeAnythingReachedThePlatform(t *testing.T) {
	for _, c := range []struct {
		state State
		says  string
	}{
		{StateRequested, "before anything reached the platform"},
		{StateSubmitting, "refused every submission"},
	} {
		dec := decider.Decide(fixture(PlatformTaobao, c.state), nil, Input{Kind: InputCancel, Now: now})
		if dec.State != StateCancelled || !strings.Contains(dec.Reason, c.says) {
			t.Errorf("cancel in %s: %s, reason %q; want cancelled, saying %q", c.state, cell(dec), dec.Reason, c.says)
		}
	}
}

// TestMessageBounds: a message is 1 to maxMessage characters (runes, not
// bytes) of text, posted only on a refund the platform has.
func TestMessageBounds(t *testing.T) {
	waiting := fixture(PlatformTaobao, StateWaitingSeller)
	for _, c := range []struct {
		name string
		cv   CaseView
		msg  string
		want string // cell
	}{
		{"short", waiting, "hello", "act:waiting_seller+message"},
		{"maxMessage runes", waiting, strings.Repeat("é", maxMessage), "act:waiting_seller+message"},
		{"one rune more", waiting, strings.Repeat("é", maxMessage+1), "reject/" + CodeInvalidInput},
		{"no refund yet", fixture(PlatformTaobao, StateRequested), "hello", "reject/" + CodeNotNow},
	} {
		dec := decider.Decide(c.cv, nil, Input{Kind: InputSendMessage, Now: now, Message: c.msg})
		if got := cell(dec); got != c.want {
			t.Errorf("%s: %s; want %s", c.name, got, c.want)
			continue
		}
		if dec.Step != nil && (dec.Step.RefundID != c.cv.RefundID || dec.Step.Message != c.msg) {
			t.Errorf("%s: step %+v; want the message on refund %s", c.name, dec.Step, c.cv.RefundID)
		}
	}
}

// TestListSome: error texts list at most five items, and say when they cut.
func TestListSome(t *testing.T) {
	for _, c := range []struct {
		xs   []string
		want string
	}{
		{nil, "none"},
		{[]string{"a", "b", "c", "d", "e"}, "a, b, c, d, e"},
		{[]string{"a", "b", "c", "d", "e", "f"}, "a, b, c, d, e, …"},
	} {
		if got := listSome(c.xs); got != c.want {
			t.Errorf("listSome(%q) = %q; want %q", c.xs, got, c.want)
		}
	}
}

// TestResumeParksAnInvalidStoredRequest: a case whose stored request no
// longer validates (written by an older build, say) is parked for an
// operator when its first step would be run again, not sent to the platform.
func TestResumeParksAnInvalidStoredRequest(t *testing.T) {
	c := fixture(PlatformTaobao, StateRequested)
	c.Request.GoodsStatus = "9"
	dec := decider.Decide(c, nil, Input{Kind: InputTimer, Now: now})
	if dec.State != StateNeedsAttention || dec.Parked != StateRequested || dec.Code != CodeInvalidRequest || dec.Step != nil {
		t.Errorf("resume with goodsStatus 9: %s parked at %q; want parked %s at requested, no step", cell(dec), dec.Parked, CodeInvalidRequest)
	}
}

// TestAShipmentBeforeTheSellerAgreedSaysWhenItIsTaken: a return requested
// and stopped before the platform took it (a submission refused whole) is
// no place for the shipment; the refusal said "no return requested" of a
// return requested.
func TestAShipmentBeforeTheSellerAgreedSaysWhenItIsTaken(t *testing.T) {
	c := parkedCase(PlatformTaobao, StateSubmitting, AttnPlatformError)
	c.Request.ReturnGoods = true
	got := decider.Decide(c, nil, Input{Kind: InputReportShipment, Now: now, ID: "cmd-ship-early", Shipment: &Shipment{Company: "SF", Waybill: "SF1"}})
	if got.Outcome != OutcomeReject || got.Code != CodeNotNow || strings.Contains(got.Reason, "no return requested") ||
		!strings.Contains(got.Reason, "once the seller has agreed to take the goods back (waiting_return_shipment); case 7 is stopped at submitting (platform_error)") {
		t.Errorf("ship before the seller agreed: %s %s %q; want reject/%s saying when a shipment is taken and where the case is", cell(got), got.Code, got.Reason, CodeNotNow)
	}
	c.Request.ReturnGoods = false
	got = decider.Decide(c, nil, Input{Kind: InputReportShipment, Now: now, ID: "cmd-ship-none", Shipment: &Shipment{Company: "SF", Waybill: "SF1"}})
	if got.Outcome != OutcomeReject || !strings.Contains(got.Reason, "no return was requested (a refund only); case 7 is stopped at submitting") {
		t.Errorf("ship for a refund only: %s %q; want it refused saying no return was requested", cell(got), got.Reason)
	}
}

// TestASecondShipmentSaysWhichWasReportedAndHowToCorrectIt: two ship
// commands sent at once (two operators, a double click) leave one on the
// platform; the other's refusal said "a shipment was already reported",
// and its sender could not tell whether the waybill on the platform was
// theirs, nor how to put a wrong one right.
func TestASecondShipmentSaysWhichWasReportedAndHowToCorrectIt(t *testing.T) {
	for _, tc := range []struct {
		platform Platform
		state    State
		want     string
	}{
		{PlatformTaobao, StateWaitingSellerReceive, "refundctl message 7 --text"},
		{Platform1688, StateWaitingSellerReceive, "the platform's back office"},
		// Still being sent: should it stop, a shipment replaces it; once
		// sent, the seller is told.
		{PlatformTaobao, StateReturnSubmitting, "if it stops short of the platform, refundctl ship 7 again replaces it"},
		{PlatformTaobao, StateReturnSubmitting, "once it is sent, a case sends no other, and if the parcel travels under another waybill, tell the seller: refundctl message 7"},
		{Platform1688, StateReturnRendering, "if it stops short of the platform, refundctl ship 7 again replaces it"},
		{Platform1688, StateReturnRendering, "tell the seller: in the platform's back office"},
	} {
		c := fixture(tc.platform, tc.state)
		c.Request.ReturnGoods = true
		c.Shipment = &Shipment{Company: "SF", Waybill: "SF0000000001"}
		got := decider.Decide(c, nil, Input{Kind: InputReportShipment, Now: now, ID: "cmd-ship-other", Shipment: &Shipment{Company: "YTO", Waybill: "YT0000000002"}})
		if got.Outcome != OutcomeReject || got.Code != CodeNotNow ||
			!strings.Contains(got.Reason, "SF SF0000000001") || !strings.Contains(got.Reason, tc.want) {
			t.Errorf("%s %s, another shipment: %s %s %q; want reject/%s naming the shipment reported and %q", tc.platform, tc.state, cell(got), got.Code, got.Reason, CodeNotNow, tc.want)
		}
	}
}
