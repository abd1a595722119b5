package refundflow

import (
	"testing"
	"time"
)

// behindView is a view of the case's refund whose status is behind a return
// submission and carries no waybill: the seller refused (Taobao
// SELLER_REFUSE_BUYER, 1688 waitbuyermodify).
func behindView(p Platform) *PlatformView {
	if p == Platform1688 {
		return alView(abSellerRefused)
	}
	return tbView(tbSellerRefused)
}

func waitingSellerView(p Platform) *PlatformView {
	if p == Platform1688 {
		return alView(abWaitSellerAgree)
	}
	return tbView(tbWaitSellerAgree)
}

func waitReturnView(p Platform) *PlatformView {
	if p == Platform1688 {
		return alView(abWaitBuyerReturn)
	}
	return tbView(tbWaitBuyerReturn)
}

// TestReturnSubmitNeverSentTwice is the reviewer's repro: the answer to a
// return submission is lost, and the view is behind the case with no
// waybill. The intent cannot be confirmed either way, so the case must park
// and no later timer, callback or reconcile tick may submit the return again.
func TestReturnSubmitNeverSentTwice(t *testing.T) {
	for _, p := range []Platform{PlatformTaobao, Platform1688} {
		for _, v1 := range []*PlatformView{behindView(p), waitingSellerView(p)} {
			c := fixture(p, StateReturnSubmitting)
			c.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return_submit:v2", Since: now.Add(-time.Minute)}
			dec := decider.Decide(c, v1, Input{Kind: InputTimer, Now: now})
			where := string(p) + " " + v1.Status(p)
			if dec.Outcome != OutcomeAct || dec.State != StateNeedsAttention || dec.Parked != StateReturnSubmitting ||
				dec.Attention == nil || dec.Attention.Code != CodeUnverifiable || dec.Step != nil {
				t.Errorf("%s step 1: %s parked %s attention %+v step %+v; want needs_attention %s parked at return_submitting, no step",
					where, cell(dec), dec.Parked, dec.Attention, dec.Step, CodeUnverifiable)
			}
			if dec.Resolve == nil || dec.Resolve.Done || dec.Resolve.Key != c.Intent.Key {
				t.Errorf("%s step 1: resolve %+v; want the intent settled as not confirmed", where, dec.Resolve)
			}
			c2 := apply(c, dec)
			for _, k := range []InputKind{InputTimer, InputCallback, InputReconcile} {
				for _, v2 := range []*PlatformView{nil, behindView(p), waitingSellerView(p), waitReturnView(p)} {
					got := decider.Decide(c2, v2, Input{Kind: k, Now: now.Add(time.Hour)})
					if got.Step != nil && got.Step.Name == StepReturnSubmit {
						t.Fatalf("%s step 2 (%s, view %+v): %s key %s: the return was submitted again", where, k, v2, cell(got), got.Step.Key)
					}
				}
			}
			// Neither does a corrected shipment, nor a shipment command that
			// arrived while the intent was open (reapplied after settling).
			other := Shipment{Company: "YTO", Waybill: "Y2"}
			if got := decider.Decide(c2, nil, Input{Kind: InputReportShipment, Now: now, Shipment: &other}); got.Outcome != OutcomeReject {
				t.Errorf("%s: another shipment on a parked unverifiable return: %s; want reject", where, cell(got))
			}
			ship := Input{Kind: InputReportShipment, Now: now, Shipment: &other}
			if d1 := decider.Decide(c, v1, ship); d1.Reapply {
				if got := decider.Decide(apply(c, d1), v1, ship); got.Step != nil && got.Step.Name.SideEffect() || got.Outcome != OutcomeReject {
					t.Errorf("%s: shipment reapplied after settling: %s; want reject", where, cell(got))
				}
			}
			// Platform progress still moves the parked case on.
			after := tbView(tbWaitSellerReceive)
			if p == Platform1688 {
				after = alView(abWaitSellerReceive)
			}
			mustCell(t, where+" progress", decider.Decide(c2, after, Input{Kind: InputReconcile, Now: now}), "act:waiting_seller_receive")
		}
	}
}

// TestReturnSubmitWaybillMatching: the platform's waybill confirms our
// submission even with different case or spacing; another waybill means
// somebody submitted a return, so ours is not sent again.
func TestReturnSubmitWaybillMatching(t *testing.T) {
	for _, p := range []Platform{PlatformTaobao, Platform1688} {
		c := fixture(p, StateReturnSubmitting)
		c.Shipment = &Shipment{Company: "SF", Waybill: "sf123"}
		c.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return_submit:v2", Since: now.Add(-time.Minute)}
		v := waitReturnView(p)
		v.ReturnWaybill = " SF123 "
		dec := decider.Decide(c, v, Input{Kind: InputTimer, Now: now})
		if cell(dec) != "act:waiting_seller_receive" || dec.Resolve == nil || !dec.Resolve.Done {
			t.Fatalf("%s same waybill, other spelling: %s resolve %+v; want waiting_seller_receive, done", p, cell(dec), dec.Resolve)
		}
		v.ReturnWaybill = "YT999"
		dec = decider.Decide(c, v, Input{Kind: InputTimer, Now: now})
		if dec.State != StateNeedsAttention || dec.Attention.Code != CodeUnverifiable || dec.Step != nil {
			t.Fatalf("%s another waybill: %s attention %+v step %+v; want needs_attention %s, no step", p, cell(dec), dec.Attention, dec.Step, CodeUnverifiable)
		}
	}
}

// TestIntentViewOfAnotherRefund: a view of another refund says nothing about
// the case's intent: it is neither settled nor re-sent, and never taken as
// the cancel's effect.
func TestIntentViewOfAnotherRefund(t *testing.T) {
	other := tbView(tbClosed)
	other.RefundID = "R-other"
	c := fixture(PlatformTaobao, StateCancelling)
	c.RefundID = "R1"
	c.Intent = &Intent{Step: StepCancel, Key: "case:7:cancel:v2"}
	dec := decider.Decide(c, other, Input{Kind: InputCallback, Now: now})
	if dec.Outcome != OutcomeNoOp || dec.Code != CodeOtherRefund || dec.Resolve != nil || dec.Step != nil {
		t.Fatalf("cancel intent, view of another refund: %s/%s resolve %+v; want noop/%s, intent left open", dec.Outcome, dec.Code, dec.Resolve, CodeOtherRefund)
	}
	c = fixture(PlatformTaobao, StateReturnSubmitting)
	c.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return_submit:v2"}
	if dec = decider.Decide(c, other, Input{Kind: InputCancel, Now: now}); dec.Outcome != OutcomeRetry || dec.Resolve != nil {
		t.Fatalf("command, view of another refund: %s resolve %+v; want retry, intent left open", dec.Outcome, dec.Resolve)
	}
}

// TestCancelUnknownStatusNotResent: an unknown status cannot confirm that a
// cancel did not take effect.
func TestCancelUnknownStatusNotResent(t *testing.T) {
	c := fixture(PlatformTaobao, StateCancelling)
	c.RefundID = "R1"
	c.Intent = &Intent{Step: StepCancel, Key: "case:7:cancel:v2"}
	dec := decider.Decide(c, tbView("SOMETHING_NEW"), Input{Kind: InputTimer, Now: now})
	if dec.Step != nil || dec.State != StateNeedsAttention {
		t.Fatalf("cancel intent, unknown status: %s step %+v; want needs_attention, no step", cell(dec), dec.Step)
	}
	// A known open status does confirm it: resend under the same key.
	dec = decider.Decide(c, tbView(tbWaitSellerAgree), Input{Kind: InputTimer, Now: now})
	if cell(dec) != "act:cancelling+cancel" || !dec.Step.Resume || dec.Step.Key != c.Intent.Key {
		t.Fatalf("cancel intent, refund still open: %s step %+v; want resume under the same key", cell(dec), dec.Step)
	}
}

// TestCancelAfterPermanentCreateFailure: a 1688 create that failed with a
// business error left nothing on the platform and no refund id; the
// platform cannot be asked (no lookup by order), so cancel must not need it.
func TestCancelAfterPermanentCreateFailure(t *testing.T) {
	for _, p := range []Platform{Platform1688, PlatformTaobao} {
		c := fixture(p, StateSubmitting)
		c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v3"}
		c, dec := finish(c, failResult(StepSubmit, false))
		if dec.State != StateNeedsAttention || c.Parked != StateSubmitting || c.AttentionCode != AttnPlatformError || c.Intent != nil || c.RefundID != "" {
			t.Fatalf("%s permanent create failure: %s %+v", p, cell(dec), c)
		}
		dec = decider.Decide(c, nil, Input{Kind: InputCancel, Now: now})
		mustCell(t, string(p)+" cancel without a view", dec, "act:cancelled")
		dec = decider.Decide(c, &PlatformView{Inconclusive: true}, Input{Kind: InputCancel, Now: now})
		mustCell(t, string(p)+" cancel with an inconclusive view", dec, "act:cancelled")
	}
	// Still verified when the create's fate is open or its failure was not ours to judge.
	c := fixture(Platform1688, StateNeedsAttention)
	c.Parked, c.AttentionCode, c.RefundID = StateSubmitting, CodeUnverifiable, ""
	mustCell(t, "unverifiable create", decider.Decide(c, nil, Input{Kind: InputCancel, Now: now}), "fetch/verify")
	c.AttentionCode = AttnPlatformError
	c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v3"}
	mustCell(t, "open create intent", decider.Decide(c, nil, Input{Kind: InputCancel, Now: now}), "fetch/intent_unsettled")
}

// TestConfirmedIntentParksPastItsStep: an intent the platform confirms, on a
// view whose status is unknown, parks the case past the step (so no corrected
// command can run it again), never at it.
func TestConfirmedIntentParksPastItsStep(t *testing.T) {
	for _, p := range []Platform{PlatformTaobao, Platform1688} {
		unknown := tbView("SOMETHING_NEW")
		if p == Platform1688 {
			unknown = alView("somethingnew")
		}
		c := fixture(p, StateReturnSubmitting)
		c.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return_submit:v2"}
		unknown.ReturnWaybill = shipment.Waybill
		dec := decider.Decide(c, unknown, Input{Kind: InputTimer, Now: now})
		if dec.State != StateNeedsAttention || dec.Parked != StateWaitingSellerReceive || dec.Resolve == nil || !dec.Resolve.Done {
			t.Fatalf("%s return confirmed, unknown status: %s parked %s resolve %+v; want needs_attention parked at waiting_seller_receive, done", p, cell(dec), dec.Parked, dec.Resolve)
		}
		other := Shipment{Company: "YTO", Waybill: "Y2"}
		if got := decider.Decide(apply(c, dec), nil, Input{Kind: InputReportShipment, Now: now, Shipment: &other}); got.Outcome != OutcomeReject {
			t.Fatalf("%s another shipment after a confirmed return: %s; want reject", p, cell(got))
		}
		c = fixture(p, StateSubmitting)
		c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v2"}
		unknown.ReturnWaybill = ""
		dec = decider.Decide(c, unknown, Input{Kind: InputTimer, Now: now})
		if dec.State != StateNeedsAttention || dec.Parked != StateWaitingSeller || dec.RefundID != "R1" {
			t.Fatalf("%s submit confirmed, unknown status: %s parked %s refund %q; want parked at waiting_seller with the refund id", p, cell(dec), dec.Parked, dec.RefundID)
		}
	}
}

// TestAbsentNotTrustedWhileInFlight: a side effect whose newest attempt may
// still reach the platform (it timed out on our side) is not sent again on a
// view showing no effect until Policy.InFlight has passed since that attempt
// began: timers and callbacks wait (WakeAt then), commands come back then.
// A view showing the effect settles it at once.
func TestAbsentNotTrustedWhileInFlight(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.InFlight = time.Minute
	type sideEffect struct {
		name   string
		state  State
		step   StepName
		absent *PlatformView // positively shows no effect
		took   *PlatformView
	}
	var cases []sideEffect
	for _, p := range []Platform{PlatformTaobao, Platform1688} {
		took := waitingSellerView(p)
		cases = append(cases,
			sideEffect{string(p) + " submit", StateSubmitting, StepSubmit, &PlatformView{Found: false}, took},
			sideEffect{string(p) + " return", StateReturnSubmitting, StepReturnSubmit, waitReturnView(p), nil},
		)
	}
	tbClosed := tbView(tbClosed)
	cases = append(cases, sideEffect{"taobao cancel", StateCancelling, StepCancel, tbView(tbWaitSellerAgree), tbClosed})
	for _, tc := range cases {
		p := PlatformTaobao
		if tc.name[:4] == "1688" {
			p = Platform1688
		}
		c := fixture(p, tc.state)
		if tc.step == StepSubmit {
			c.RefundID = ""
		}
		first := now.Add(-2 * time.Hour)
		last := now.Add(-10 * time.Second) // resumed 10 s ago; the first attempt is long past
		c.Intent = &Intent{Step: tc.step, Key: "case:7:" + string(tc.step) + ":v2", Since: first, LastAttempt: last}
		until := last.Add(time.Minute)

		for _, k := range []InputKind{InputTimer, InputCallback, InputReconcile} {
			dec := d.Decide(c, tc.absent, Input{Kind: k, Now: now})
			if dec.Outcome != OutcomeNoOp || dec.Code != CodeInFlight || dec.Step != nil || dec.Resolve != nil || !dec.WakeAt.Equal(until) {
				t.Errorf("%s, %s within the window: %s/%s step %+v resolve %+v wake %v; want noop/%s, wake %v, intent open",
					tc.name, k, dec.Outcome, dec.Code, dec.Step, dec.Resolve, dec.WakeAt, CodeInFlight, until)
			}
		}
		dec := d.Decide(c, tc.absent, Input{Kind: InputCancel, Now: now})
		if dec.Outcome != OutcomeRetry || !dec.RetryAt.Equal(until) || dec.Step != nil {
			t.Errorf("%s, a command within the window: %s retry at %v; want retry at %v", tc.name, cell(dec), dec.RetryAt, until)
		}
		// The window is the newest attempt's, not the first's: with only
		// Since known, it counts from Since.
		old := c
		old.Intent = &Intent{Step: tc.step, Key: c.Intent.Key, Since: now.Add(-10 * time.Second)}
		if dec := d.Decide(old, tc.absent, Input{Kind: InputTimer, Now: now}); dec.Code != CodeInFlight {
			t.Errorf("%s, only Since known, 10 s ago: %s/%s; want %s", tc.name, dec.Outcome, dec.Code, CodeInFlight)
		}
		// Once the attempt is old enough, send again under the same key.
		dec = d.Decide(c, tc.absent, Input{Kind: InputTimer, Now: until})
		if dec.Step == nil || dec.Step.Name != tc.step || !dec.Step.Resume || dec.Step.Key != c.Intent.Key {
			t.Errorf("%s after the window: %s step %+v; want %s resumed under %s", tc.name, cell(dec), dec.Step, tc.step, c.Intent.Key)
		}
		// Evidence of the effect settles it at once.
		if tc.took != nil {
			dec = d.Decide(c, tc.took, Input{Kind: InputCallback, Now: now})
			if dec.Resolve == nil || !dec.Resolve.Done || dec.Step != nil {
				t.Errorf("%s, effect shown within the window: %s resolve %+v; want settled done", tc.name, cell(dec), dec.Resolve)
			}
		}
		// InFlight 0 trusts the view at once (the previous behaviour).
		if dec := decider.Decide(c, tc.absent, Input{Kind: InputTimer, Now: now}); dec.Step == nil || !dec.Step.Resume {
			t.Errorf("%s with InFlight 0: %s; want resumed at once", tc.name, cell(dec))
		}
	}
}
