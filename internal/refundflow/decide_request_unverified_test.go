package refundflow

import "testing"

// TestARequestOnASubmissionSettledUnverifiedIsRefused: a case whose
// submission could not be told to have reached the platform or not had its
// intent settled "unverified" and parked at submitting (intent_unverifiable,
// no refund id, no open intent). A corrected request on it must not start
// the case again: its render and submit would send a second refund if the
// first took effect. RequestReplaces said it replaces (stopped before
// submitting's end, no refund id), and only the console's offer left the
// case out.
func TestARequestOnASubmissionSettledUnverifiedIsRefused(t *testing.T) {
	d := Decider{Policy: policy}
	c := fixture(PlatformTaobao, StateNeedsAttention)
	c.Parked, c.AttentionCode, c.AttentionMessage = StateSubmitting, CodeUnverifiable, "cannot tell whether the submit took effect; check on the platform"
	c.RefundID, c.Intent = "", nil
	if RequestReplaces(c.State, c.Parked, c.RefundID, c.AttentionCode) {
		t.Errorf("RequestReplaces on a submission parked %s = true; want false", CodeUnverifiable)
	}
	req := c.Request
	req.Description = "corrected"
	dec := d.Decide(c, nil, Input{Kind: InputRequestRefund, ID: "cmd-req-2", Now: now, Request: &req})
	if dec.Outcome != OutcomeReject || dec.Step != nil {
		t.Fatalf("a corrected request on a submission settled unverified: %s step %+v; want it refused, nothing sent", cell(dec), dec.Step)
	}

	// Stopped on a return submission that may be on the platform, the
	// refund there: a request is refused as on any open case, not with
	// advice about a submission in doubt.
	ret := fixture(PlatformTaobao, StateNeedsAttention)
	ret.Parked, ret.AttentionCode = StateReturnSubmitting, CodeUnverifiable
	if dec := d.Decide(ret, nil, Input{Kind: InputRequestRefund, ID: "cmd-req-4", Now: now, Request: &req}); dec.Outcome != OutcomeReject ||
		dec.Code != CodeCaseOpen {
		t.Errorf("a request on a case stopped %s at %s: %s; want %s", CodeUnverifiable, StateReturnSubmitting, cell(dec), CodeCaseOpen)
	}

	// Stopped at submitting for a reason that proves nothing reached the
	// platform (the fee out of bounds), the request replaces.
	c.AttentionCode = AttnFeeOutOfBounds
	if !RequestReplaces(c.State, c.Parked, c.RefundID, c.AttentionCode) {
		t.Errorf("RequestReplaces on a submission parked %s = false; want true", AttnFeeOutOfBounds)
	}
	if dec := d.Decide(c, nil, Input{Kind: InputRequestRefund, ID: "cmd-req-3", Now: now, Request: &req}); dec.Step == nil || dec.Step.Name != StepRender {
		t.Errorf("a corrected request on a case stopped at %s: %s; want it read the form again", AttnFeeOutOfBounds, cell(dec))
	}
}
