package refundflow

import (
	"strings"
	"testing"
	"time"
)

// TestARefundNoCaseCanOwnParksWithTheOneWayOut: a Taobao case opened by an
// older build has no record of its sub-order's refunds before its first
// submission, so a refund the platform lists on the sub-order, owned by no
// case, can never be told its own or someone else's. The case waited out
// the grace for evidence that could not come, and its advice (a retry
// "again later", a callback that "moves the case on") led nowhere: only
// closing it does. It now parks at once, naming the refund and the way
// out, and says the same to a command, a retry and a parked case's next
// look.
func TestARefundNoCaseCanOwnParksWithTheOneWayOut(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.IntentGrace, d.Policy.ResendLimit = time.Hour, 3
	old := fixture(PlatformTaobao, StateSubmitting) // Plan.PriorListed false: an older build's
	old.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v3", Since: now.Add(-time.Minute), LastAttempt: now.Add(-time.Minute), Sends: 1}
	view := &PlatformView{Inconclusive: true, Unattributed: []string{"R900"}}
	says := func(what, text string) {
		t.Helper()
		for _, want := range []string{"R900", "older build", "cannot help", "refundctl resolve 7 --close --note", "refundctl resolve 7 --adopt R900"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: %q; want it to say %q", what, text, want)
			}
		}
		if strings.Contains(text, "--retry") || strings.Contains(text, "moves the case on") {
			t.Errorf("%s: %q; want no way out that cannot work", what, text)
		}
	}

	dec := d.Decide(old, view, Input{Kind: InputTimer, Now: now})
	if dec.State != StateNeedsAttention || dec.Code != CodeUnverifiable || dec.Step != nil || dec.Attention == nil {
		t.Fatalf("within the grace: %s; want parked %s at once, nothing sent", cell(dec), CodeUnverifiable)
	}
	says("the parked case's attention", dec.Attention.Message)
	parked := apply(old, dec)
	if dec := d.Decide(parked, view, Input{Kind: InputCancel, ID: "cmd-cancel-1", Now: now}); dec.Outcome != OutcomeReject {
		t.Errorf("a cancel on the parked case: %s; want it refused", cell(dec))
	} else {
		says("the cancel's refusal", dec.Reason)
	}

	// Parked before the reason was known: its next look says it.
	before := parked
	before.AttentionMessage = "cannot tell whether the submit took effect; check on the platform"
	if dec := d.Decide(before, view, Input{Kind: InputReconcile, Now: now}); dec.Attention == nil {
		t.Errorf("a case parked with the old advice, reconciled: %s; want its advice replaced", cell(dec))
	} else {
		says("the replaced advice", dec.Attention.Message)
	}

	// Carrying the advice already, its next look writes nothing.
	if dec := d.Decide(parked, view, Input{Kind: InputReconcile, Now: now}); dec.Attention != nil || dec.Outcome != OutcomeNoOp {
		t.Errorf("a case carrying the advice, reconciled: %s attention %+v; want nothing written", cell(dec), dec.Attention)
	}

	// Stopped on refused resends: the operator's retry, and any other
	// command, are refused saying why a retry cannot help, and the
	// case's next look replaces the resends' advice.
	stopped := fixture(PlatformTaobao, StateSubmitting)
	stopped.State, stopped.Parked, stopped.AttentionCode = StateNeedsAttention, StateSubmitting, CodeResendsFailed
	stopped.AttentionMessage = "the platform refused 3 resends … `refundctl resolve 7 --retry` …"
	stopped.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v3", Since: now.Add(-time.Hour), LastAttempt: now.Add(-time.Hour), Sends: 4, Refusals: 3}
	retry := Input{Kind: InputResolve, ID: "cmd-resolve-1", Now: now, Resolve: &Resolve{Action: ResolveRetry}}
	for _, in := range []Input{retry, {Kind: InputCancel, ID: "cmd-cancel-2", Now: now}} {
		if dec := d.Decide(stopped, view, in); dec.Outcome != OutcomeReject || dec.Step != nil {
			t.Errorf("a %s on the stopped case: %s; want it refused, nothing sent", in.Kind, cell(dec))
		} else {
			says("the refusal of a "+string(in.Kind), dec.Reason)
		}
	}
	if dec := d.Decide(stopped, view, Input{Kind: InputReconcile, Now: now}); dec.Attention == nil || dec.Step != nil {
		t.Errorf("the stopped case, reconciled: %s; want its advice replaced, nothing sent", cell(dec))
	} else {
		says("the stopped case's replaced advice", dec.Attention.Message)
	}

	// Refunds named in a stable order, the rest counted.
	many := &PlatformView{Inconclusive: true, Unattributed: []string{"R905", "R901", "R904", "R902"}}
	if dec := d.Decide(old, many, Input{Kind: InputTimer, Now: now}); dec.Attention == nil ||
		!strings.Contains(dec.Attention.Message, "R901, R902, R904 and 1 more") {
		t.Errorf("four unowned refunds: %s attention %+v; want the first three by id and 1 more", cell(dec), dec.Attention)
	}

	// A view that cannot tell for another reason (a list not read whole)
	// still waits out the grace.
	if dec := d.Decide(old, &PlatformView{Inconclusive: true}, Input{Kind: InputTimer, Now: now}); dec.State == StateNeedsAttention {
		t.Errorf("inconclusive for another reason, within the grace: %s; want it waiting", cell(dec))
	}
}

// TestACaseStoppedBeforeItsOrderShowedElsewhereKeepsIt: a refund callback
// shows the case's sub-order filed under another order only after the
// case stopped (intent_unverifiable, or intent_resends_failed after the
// platform refused its resends). The decision must store that in the plan,
// which only an act does (a no-op's documents are not written): else the
// next read, without the callback, lists the case's order again, sees
// nothing, and the advice goes back to a retry that resends the submit.
func TestACaseStoppedBeforeItsOrderShowedElsewhereKeepsIt(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.IntentGrace, d.Policy.ResendLimit = time.Hour, 3
	elsewhere := &OrderElsewhere{SubOrderID: "201", CaseOrder: "200", PlatformOrder: "300", RefundID: "R900"}
	view := &PlatformView{Inconclusive: true, Unattributed: []string{"R900"}, OrderElsewhere: elsewhere, CallbackRefund: "R900"}
	for _, code := range []string{CodeUnverifiable, CodeResendsFailed} {
		c := fixture(PlatformTaobao, StateSubmitting)
		c.Plan.PriorListed = true
		c.State, c.Parked, c.AttentionCode, c.AttentionMessage = StateNeedsAttention, StateSubmitting, code, "stopped before"
		c.Intent = &Intent{Step: StepSubmit, Key: "case:7:submit:v3", Since: now.Add(-2 * time.Hour), LastAttempt: now.Add(-time.Hour), Sends: 4, Refusals: 3}
		dec := d.Decide(c, view, Input{Kind: InputCallback, Now: now})
		if dec.Outcome != OutcomeAct || dec.Plan == nil || dec.Plan.OrderElsewhere == nil || dec.Plan.CallbackRefund != "R900" || dec.Step != nil {
			t.Errorf("%s, the callback showing the order elsewhere: %s, plan %+v; want an act storing it, nothing sent", code, cell(dec), dec.Plan)
			continue
		}
		if dec.Attention == nil || !strings.Contains(dec.Attention.Message, "under order 300, not the case's order 200") ||
			!strings.Contains(dec.Attention.Message, "names order 300") || strings.Contains(dec.Attention.Message, "--retry") {
			t.Errorf("%s: attention %+v; want the order elsewhere, the platform's order for a new request, no retry", code, dec.Attention)
		}
		// Stored, the next read (from the plan) changes nothing more.
		stored := c
		stored.Plan, stored.AttentionMessage = *dec.Plan, dec.Attention.Message
		if again := d.Decide(stored, view, Input{Kind: InputReconcile, Now: now}); again.Outcome != OutcomeNoOp || again.Plan != nil || again.Step != nil {
			t.Errorf("%s, stored, reconciled: %s; want nothing written, nothing sent", code, cell(again))
		}
	}
}
