package refundflow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestResendsThatKeepFailingParkTheCase: a Taobao submission whose outcome
// is unknown (a 503) is sent again under its key each time the platform
// shows no refund. A platform that refuses every resend used to get one
// every WORKER_INTENT_IN_FLIGHT for ever, the case flagged as waiting for
// an attempt that "may still reach it", spending the rate limit other
// cases share. Now the waits double and, once the platform has refused
// Policy.ResendLimit resends, the case parks (intent_resends_failed) with
// the platform's last answer and the ways out; nothing more is sent until
// an operator retries, and that retry goes out under the same key.
func TestResendsThatKeepFailingParkTheCase(t *testing.T) {
	const limit = 3
	r, h := requestWithSubmitFaults(t, 20*time.Millisecond, limit, sandbox.ForcedError{Endpoint: "taobao_submit", Kind: sandbox.ErrHTTP503, Count: 1},
		sandbox.ForcedError{Endpoint: "taobao_submit", Kind: sandbox.ErrRefused, Count: 1000})
	submits := func() int64 { return r.sb.Stats().APICalls["taobao_submit"] }

	c := r.waitState(h.CaseID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.CodeResendsFailed || c.ParkedState != string(refundflow.StateSubmitting) {
		t.Fatalf("parked %s at %s; want %s at submitting", c.AttentionCode, c.ParkedState, refundflow.CodeResendsFailed)
	}
	for _, want := range []string{"refused 3 resends", "4 sends", "4091", fmt.Sprintf("refundctl resolve %d --retry", c.ID),
		fmt.Sprintf("refundctl resolve %d --close", c.ID)} {
		if !strings.Contains(c.AttentionMessage, want) {
			t.Errorf("attention %q; want it to say %q", c.AttentionMessage, want)
		}
	}
	if n := submits(); n != 4 {
		t.Errorf("%d submit calls; want 4: the first and %d resends", n, limit)
	}
	steps := r.stepsNamed(c.ID, refundflow.StepSubmit)
	if len(steps) != 1 || steps[0].Status != casestore.StepIntent || steps[0].Begins != 4 || steps[0].Refusals != 3 || steps[0].ErrorCode != "4091" {
		t.Fatalf("submit steps %+v; want one intent, begun 4 times, refused 3, its last error 4091", steps)
	}

	// Parked: neither its timer nor the reconciler sends it again.
	ctx := context.Background()
	for _, k := range []refundflow.InputKind{refundflow.InputTimer, refundflow.InputReconcile} {
		if _, err := r.engine().Wake(ctx, c.ID, k); err != nil {
			t.Fatalf("wake %s: %v", k, err)
		}
	}
	if n := submits(); n != 4 {
		t.Errorf("%d submit calls after a timer and a reconcile of the parked case; want still 4", n)
	}

	// The platform takes submissions again; the operator retries: the
	// same key, one refund.
	r.sb.SetFaults(sandbox.Faults{})
	retry := refundflow.Command{ID: "cmd-resolve-resends", Kind: refundflow.InputResolve, Platform: refundflow.PlatformTaobao,
		CaseID: c.ID, Resolve: &refundflow.Resolve{Action: refundflow.ResolveRetry}, Operator: "tester", IssuedAt: time.Now()}
	r.handle(retry)
	c = r.waitState(c.ID, refundflow.StateWaitingSeller)
	if c.AttentionCode != "" || c.RefundID == "" {
		t.Errorf("after the retry: attention %q, refund %q; want none and the refund", c.AttentionCode, c.RefundID)
	}
	if steps := r.stepsNamed(c.ID, refundflow.StepSubmit); len(steps) != 1 || steps[0].Status != casestore.StepDone {
		t.Errorf("submit steps %+v; want the one intent, done", steps)
	}
	r.noDuplicates()
}

// TestResendsDuringAnOutageGoOnWhenThePlatformIsBack: resends whose
// outcome is unknown again (the platform answering 503) are not refusals:
// however many there are, the case does not stop for an operator (an
// outage would otherwise stop every case it caught); it backs off, and
// goes on when the platform is back, with one refund.
func TestResendsDuringAnOutageGoOnWhenThePlatformIsBack(t *testing.T) {
	r, h := requestWithSubmitFaults(t, 10*time.Millisecond, 2, sandbox.ForcedError{Endpoint: "taobao_submit", Kind: sandbox.ErrHTTP503, Count: 1000})
	r.waitFor("five resends", func() bool {
		r.drive(r.engine(), h.CaseID)
		return r.sb.Stats().APICalls["taobao_submit"] >= 6
	})
	c, err := r.store.GetCase(context.Background(), h.CaseID)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != string(refundflow.StateSubmitting) {
		t.Fatalf("after five resends answered 503: %s (%s %q); want still submitting", c.State, c.AttentionCode, c.AttentionMessage)
	}
	r.sb.SetFaults(sandbox.Faults{})
	c = r.waitState(c.ID, refundflow.StateWaitingSeller)
	if steps := r.stepsNamed(c.ID, refundflow.StepSubmit); len(steps) != 1 || steps[0].Status != casestore.StepDone || steps[0].Refusals != 0 {
		t.Errorf("submit steps %+v; want the one intent, done, none refused", steps)
	}
	r.noDuplicates()
}

// TestOrderCancelledWhileASubmissionIsUnknownEndsTheCase: the first Taobao
// submission failed with an unknown outcome, and the buyer cancelled the
// order. The platform shows no refund and refuses every resend (the order is
// cancelled); the case used to send it again for ever, its order's news
// never applied because an open intent is settled first. The two facts
// together settle it: no refund on the platform, and an order that ended
// can no longer take one. The case ends as order_ended, nothing more sent.
func TestOrderCancelledWhileASubmissionIsUnknownEndsTheCase(t *testing.T) {
	r := newRig(t, manual)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: sandbox.ErrHTTP503, Count: 1}}})
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	if steps := r.stepsNamed(h.CaseID, refundflow.StepSubmit); len(steps) != 1 || steps[0].Status != casestore.StepIntent {
		t.Fatalf("submit steps %+v; want one intent left open by the 503", steps)
	}
	r.orderEvent(o, sandbox.OrderEvent{Type: "cancel"})

	c := r.waitState(h.CaseID, refundflow.StateCancelled)
	steps := r.stepsNamed(c.ID, refundflow.StepSubmit)
	if len(steps) != 1 || steps[0].Status != casestore.StepFailed || steps[0].ErrorCode != refundflow.CodeOrderEnded {
		t.Fatalf("submit steps %+v; want the intent closed as %s", steps, refundflow.CodeOrderEnded)
	}
	if !r.timelineHas(c.ID, "the order ended on the platform") {
		t.Error("the timeline does not say the order ended")
	}
	sent := r.sb.Stats().APICalls["taobao_submit"]
	if _, err := r.engine().Wake(context.Background(), c.ID, refundflow.InputReconcile); err != nil {
		t.Fatal(err)
	}
	if n := r.sb.Stats().APICalls["taobao_submit"]; n != sent {
		t.Errorf("submit calls %d after the case ended, %d before; want none more", n, sent)
	}
	if st := r.sb.Stats(); st.RefundSubmissions["taobao:"+so] > 1 {
		t.Errorf("submissions the sandbox took for %s: %d; want at most the one resend that met the cancelled order",
			so, st.RefundSubmissions["taobao:"+so])
	}
}

// requestWithSubmitFaults files a Taobao refund request on a rig whose
// engine trusts "no effect" inFlight after an attempt and stops after limit
// refused resends (its retry backoff capped, so that the test's waits
// hold on a loaded machine), the sandbox failing its submissions with
// faults: the rig and the request's handling.
func requestWithSubmitFaults(t *testing.T, inFlight time.Duration, limit int, faults ...sandbox.ForcedError) (*rig, refundflow.Handled) {
	t.Helper()
	r := newRig(t, manual)
	pol := testPolicy
	pol.InFlight, pol.ResendLimit = inFlight, limit
	r.setEngine(r.newEngineWith("engine-a", pol, 200*time.Millisecond))
	o, so := r.order(sandbox.PlatformTaobao, nil)
	r.sb.SetFaults(sandbox.Faults{ForceErrors: faults})
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	return r, r.handle(cmd)
}

// TestANewShipmentReplacesARefusedReturn: a Taobao return submission whose
// first answer was lost and whose resends the platform refused stops the
// case (intent_resends_failed); the operator's corrected shipment then
// replaces it, and the refund gets exactly one return shipment, the new
// one. Before, the corrected shipment was refused on the stopped case, and
// the only way out was to close a case whose refund is on the platform.
func TestANewShipmentReplacesARefusedReturn(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionAgree, DecideAfter: 20 * time.Millisecond, ReceiveAfter: time.Hour})
	pol := testPolicy
	pol.InFlight, pol.ResendLimit = 20*time.Millisecond, 2
	r.setEngine(r.newEngineWith("engine-a", pol, 200*time.Millisecond))
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(true)
	c := r.waitState(r.handle(cmd).CaseID, refundflow.StateWaitingReturnShipment)

	r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_return_logistics_submit", Kind: sandbox.ErrHTTP503, Count: 1},
		{Endpoint: "taobao_return_logistics_submit", Kind: sandbox.ErrRefused, Count: 1000}}})
	ship := r.command(refundflow.InputReportShipment, refundflow.PlatformTaobao, o, so)
	ship.Shipment = &refundflow.Shipment{Company: "SF", Waybill: "SF5550001111"}
	r.handle(ship)
	c = r.waitState(c.ID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.CodeResendsFailed || !strings.Contains(c.AttentionMessage, fmt.Sprintf("refundctl ship %d --company", c.ID)) {
		t.Fatalf("attention %s %q; want %s offering a corrected shipment", c.AttentionCode, c.AttentionMessage, refundflow.CodeResendsFailed)
	}

	r.sb.SetFaults(sandbox.Faults{})
	corrected := r.command(refundflow.InputReportShipment, refundflow.PlatformTaobao, o, so)
	corrected.Shipment = &refundflow.Shipment{Company: "SF", Waybill: "SF5550002222"}
	r.handle(corrected)
	if o, err := r.store.CommandOutcome(context.Background(), corrected.ID); err != nil || o.Verdict != casestore.VerdictApplied {
		t.Fatalf("the corrected shipment's verdict: %+v, %v; want applied", o, err)
	}
	c = r.waitState(c.ID, refundflow.StateWaitingSellerReceive)
	steps := r.stepsNamed(c.ID, refundflow.StepReturnSubmit)
	if len(steps) != 2 || steps[0].Status != casestore.StepFailed || steps[0].ErrorCode != refundflow.CodeShipmentReplaced || steps[1].Status != casestore.StepDone ||
		!strings.Contains(steps[1].Request, "SF5550002222") {
		t.Fatalf("return submissions %+v; want the first superseded, the second (SF5550002222) done", steps)
	}
	r.noDuplicates()
}

// TestANewModificationReplacesARefusedOne: a Taobao modification whose
// first answer was lost and whose resends the platform refused stops the
// case (intent_resends_failed); the operator's next modification then
// replaces it, and the platform takes exactly one modification, the new
// amount. Before, the next modification was refused on the stopped case.
func TestANewModificationReplacesARefusedOne(t *testing.T) {
	r := newRig(t, fast)
	pol := testPolicy
	pol.InFlight, pol.ResendLimit = 20*time.Millisecond, 2
	r.setEngine(r.newEngineWith("engine-a", pol, 200*time.Millisecond))
	id, refundID, _, _ := refusedTaobaoCase(t, r)

	r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_modify", Kind: sandbox.ErrHTTP503, Count: 1},
		{Endpoint: "taobao_modify", Kind: sandbox.ErrRefused, Count: 1000}}})
	r.handle(modifyCommand(r, id, 4000))
	var c casestore.Case
	r.waitFor("the modification's resends refused", func() bool {
		r.drive(r.engine(), id)
		c, _ = r.store.GetCase(context.Background(), id)
		return c.State == string(refundflow.StateNeedsAttention) && c.AttentionCode != refundflow.AttnSellerRefused
	})
	if c.AttentionCode != refundflow.CodeResendsFailed || !strings.Contains(c.AttentionMessage, fmt.Sprintf("refundctl modify %d", id)) {
		t.Fatalf("attention %s %q; want %s offering another modification", c.AttentionCode, c.AttentionMessage, refundflow.CodeResendsFailed)
	}

	r.sb.SetFaults(sandbox.Faults{})
	next := modifyCommand(r, id, 3000)
	r.handle(next)
	if o, err := r.store.CommandOutcome(context.Background(), next.ID); err != nil || o.Verdict != casestore.VerdictApplied {
		t.Fatalf("the next modification's verdict: %+v, %v; want applied", o, err)
	}
	r.waitState(id, refundflow.StateWaitingSeller)
	steps := r.stepsNamed(id, refundflow.StepModify)
	if len(steps) != 2 || steps[0].ErrorCode != refundflow.CodeModificationReplaced || steps[1].Status != casestore.StepDone {
		t.Fatalf("modifications %+v; want the first replaced, the second done", steps)
	}
	if n := r.sb.Stats().Modifications[refundID]; n != 1 {
		t.Errorf("the platform took %d modifications; want 1", n)
	}
}
