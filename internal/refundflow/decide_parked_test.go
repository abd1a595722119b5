package refundflow

import (
	"testing"
	"time"
)

// Review of issue 11: a case parked as intent_unverifiable keeps its open
// intent. When the platform later shows the effect positively absent, the
// side effect is sent again under the same key; its success must count
// (the refund id recorded, the case out of parking) rather than be dropped
// as a stale result.
func TestParkedCaseResendResultCounts(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.IntentGrace, d.Policy.InFlight = time.Minute, time.Minute
	c := fixture(PlatformTaobao, StateSubmitting)
	c.Plan.PriorListed = true
	since := now.Add(-2 * time.Hour)
	c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v3", Since: since, LastAttempt: since}
	dec := d.Decide(c, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now})
	if dec.State != StateNeedsAttention || dec.Code != CodeUnverifiable {
		t.Fatalf("past the grace: %s; want parked intent_unverifiable", cell(dec))
	}
	c = apply(c, dec)
	dec = d.Decide(c, &PlatformView{Found: false}, Input{Kind: InputReconcile, Now: now.Add(time.Hour)})
	if dec.Step == nil || !dec.Step.Resume || dec.Step.Key != "case:7:submit:v3" {
		t.Fatalf("parked, then positively absent: %s; want the submit sent again under its key", cell(dec))
	}
	c = apply(c, dec)
	c.Intent = &Intent{Step: StepSubmit, Key: dec.Step.Key}
	c, dec = finish(c, okResult(StepSubmit))
	if c.State != StateWaitingSeller || c.RefundID == "" || c.AttentionCode != "" {
		t.Fatalf("its success: %s; case %s refund %q attention %q; want waiting_seller with the refund, out of parking",
			cell(dec), c.State, c.RefundID, c.AttentionCode)
	}
}
