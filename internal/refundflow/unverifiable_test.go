package refundflow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// unverifiable1688 opens a 1688 case whose create's answer was lost and
// whose refund callback never comes: parked intent_unverifiable with its
// intent still open (the platform cannot be asked by order). tookEffect:
// the platform created the refund before the answer was lost.
func unverifiable1688(t *testing.T, tookEffect bool) (*rig, *refundflow.Engine, string) {
	r := newRig(t, fast)
	r.sb.SetFaults(sandbox.Faults{DropPushRate: 1})
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client,
		Policy: refundflow.Policy{StepTimeout: time.Minute, Recheck: time.Hour}, Owner: "no-grace"})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := r.order(sandbox.Platform1688, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	cmd.Request = alibabaRequest(false, false)
	r.sb.SetFaults(sandbox.Faults{DropPushRate: 1, ForceErrors: []sandbox.ForcedError{{Endpoint: "alibaba_create_refund", Kind: sandbox.ErrHTTP503, Count: 1, AfterEffect: tookEffect}}})
	if _, err := eng.HandleCommand(context.Background(), cmd, message(cmd)); err != nil {
		t.Fatal(err)
	}
	_, _ = eng.Wake(context.Background(), r.caseOf(refundflow.Platform1688, o, "").ID, refundflow.InputReconcile)
	c := r.caseOf(refundflow.Platform1688, o, "")
	if c.State != string(refundflow.StateNeedsAttention) || c.AttentionCode != refundflow.CodeUnverifiable {
		t.Fatalf("case %s attention %q; want needs_attention %q", c.State, c.AttentionCode, refundflow.CodeUnverifiable)
	}
	return r, eng, o
}

// TestCommandOnAnUnverifiableCaseIsDecidedOnce: a command on a case parked
// intent_unverifiable, whose intent the platform still cannot settle, is
// decided on the parked case once. It used to be decided again and again
// (each round re-parked the case and asked to reapply the command), asking
// the platform each time, without end.
func TestCommandOnAnUnverifiableCaseIsDecidedOnce(t *testing.T) {
	r, eng, o := unverifiable1688(t, true)
	before := calls(r)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := r.command(refundflow.InputCancel, refundflow.Platform1688, o, "")
	h, err := eng.HandleCommand(ctx, cmd, message(cmd))
	if err != nil || ctx.Err() != nil {
		t.Fatalf("cancel on the parked case: %+v, %v (context: %v); want a verdict", h, err, ctx.Err())
	}
	if h.Outcome != refundflow.OutcomeReject || h.Code != refundflow.CodeUnverifiable {
		t.Errorf("cancel on the parked case: %s/%s; want reject/%s (with the way out)", h.Outcome, h.Code, refundflow.CodeUnverifiable)
	}
	if n := calls(r) - before; n > 4 {
		t.Errorf("the platform was asked %d times for one command; want a few at most", n)
	}
}

// calls counts the platform API calls the sandbox has served.
func calls(r *rig) int64 {
	var n int64
	for _, c := range r.sb.Stats().APICalls {
		n += c
	}
	return n
}

// TestResolveTakesAStuck1688CaseOut: the case that had no way out. A retry
// asks the platform, which still cannot tell, and is refused with the way
// out; closing it locally ends it without a platform call, with the note on
// the timeline, and the order takes a new request as a new case.
func TestResolveTakesAStuck1688CaseOut(t *testing.T) {
	r, eng, o := unverifiable1688(t, false) // the operator finds no refund in the back office
	stuck := r.caseOf(refundflow.Platform1688, o, "")
	ctx := context.Background()

	retry := r.command(refundflow.InputResolve, refundflow.Platform1688, "", "")
	retry.CaseID, retry.Resolve = stuck.ID, &refundflow.Resolve{Action: refundflow.ResolveRetry}
	if h, err := eng.HandleCommand(ctx, retry, message(retry)); err != nil || h.Outcome != refundflow.OutcomeReject || h.Code != refundflow.CodeUnverifiable {
		t.Fatalf("retry: %+v, %v; want reject/%s", h, err, refundflow.CodeUnverifiable)
	}
	if o, err := r.store.CommandOutcome(ctx, retry.ID); err != nil || o.Verdict != "rejected" || !strings.Contains(o.Reason, "--close") {
		t.Fatalf("retry's verdict: %+v, %v; want rejected with the way out", o, err)
	}

	before := calls(r)
	closeIt := r.command(refundflow.InputResolve, refundflow.Platform1688, "", "")
	closeIt.CaseID, closeIt.Resolve = stuck.ID, &refundflow.Resolve{Action: refundflow.ResolveClose, Note: "no refund in the back office"}
	if h, err := eng.HandleCommand(ctx, closeIt, message(closeIt)); err != nil || h.Outcome != refundflow.OutcomeAct || h.State != refundflow.StateClosedLocally {
		t.Fatalf("close: %+v, %v; want act, closed_locally", h, err)
	}
	if n := calls(r) - before; n != 0 {
		t.Errorf("closing locally made %d platform calls; want none", n)
	}
	tl, err := r.store.Timeline(ctx, stuck.ID)
	if err != nil {
		t.Fatal(err)
	}
	var noted bool
	for _, e := range tl {
		noted = noted || strings.Contains(e.Summary+" "+string(e.Detail), "no refund in the back office")
	}
	if !noted {
		t.Errorf("the timeline does not keep the operator's note")
	}
	steps, err := r.store.Steps(ctx, stuck.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.Status == "intent" {
			t.Errorf("step %s %s still open after the close", s.Step, s.IdempotencyKey)
		}
	}

	r.sb.SetFaults(sandbox.Faults{}) // callbacks flow again
	again := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	again.Request = alibabaRequest(false, false)
	h := r.handle(again)
	if h.CaseID == stuck.ID || h.CaseID == 0 {
		t.Fatalf("a new request after the close: case %d; want a new case", h.CaseID)
	}
	r.waitState(h.CaseID, refundflow.StateSucceeded)
	for id, want := range map[int64]string{h.CaseID: fmt.Sprintf("follows case %d (closed_locally", stuck.ID), stuck.ID: fmt.Sprintf("followed by case %d", h.CaseID)} {
		tl, _ := r.store.Timeline(ctx, id)
		var linked bool
		for _, e := range tl {
			linked = linked || strings.HasPrefix(e.Summary, want)
		}
		if !linked {
			t.Errorf("case %d's timeline does not say %q", id, want)
		}
	}
}

// TestCancelledCaseShowsThePlatformsStatus: a case cancelled on the
// platform records the status the cancel's answer shows. It used to keep
// the status of the last read before the cancel (WAIT_SELLER_AGREE on a
// cancelled case).
func TestCancelledCaseShowsThePlatformsStatus(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	r.waitState(h.CaseID, refundflow.StateWaitingSeller)
	_, _ = r.engine().Wake(context.Background(), h.CaseID, refundflow.InputReconcile) // the case reads the platform's status
	r.handle(r.command(refundflow.InputCancel, refundflow.PlatformTaobao, "", so))
	c := r.waitState(h.CaseID, refundflow.StateCancelled)
	if want := r.platformStatus(c.RefundID); c.PlatformStatus != want {
		t.Fatalf("cancelled case records platform status %q; the platform shows %q", c.PlatformStatus, want)
	}
}

// TestAStuck1688CaseAdoptsTheRefundFoundInTheBackOffice: the operator
// finds the refund the lost create made (or the buyer's) in 1688's back
// office and adopts it: the case follows it, its create is closed
// unconfirmed, and nothing is sent again; another order's refund is
// refused, changing nothing.
func TestAStuck1688CaseAdoptsTheRefundFoundInTheBackOffice(t *testing.T) {
	r, eng, o := unverifiable1688(t, false)
	stuck := r.caseOf(refundflow.Platform1688, o, "")
	ctx := context.Background()
	found, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.Platform1688, OrderID: o, Status: "waitselleragree", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	o2, _ := r.order(sandbox.Platform1688, nil)
	other, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.Platform1688, OrderID: o2, Status: "waitselleragree", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	creates := func() int64 { return r.sb.Stats().APICalls["alibaba_create_refund"] }
	before := creates()
	adopt := func(refund string) (refundflow.Handled, string) {
		cmd := r.command(refundflow.InputResolve, refundflow.Platform1688, "", "")
		cmd.CaseID, cmd.Resolve = stuck.ID, &refundflow.Resolve{Action: refundflow.ResolveAdopt, Refund: refund, Note: "found in the back office"}
		h, err := eng.HandleCommand(ctx, cmd, message(cmd))
		if err != nil {
			t.Fatalf("adopt %s: %v", refund, err)
		}
		out, err := r.store.CommandOutcome(ctx, cmd.ID)
		if err != nil {
			t.Fatal(err)
		}
		return h, out.Reason
	}
	if h, why := adopt(other.RefundID); h.Outcome != refundflow.OutcomeReject || h.Code != refundflow.CodeCannotAdopt || !strings.Contains(why, "under order "+o2) {
		t.Errorf("adopt another order's refund: %s/%s %q; want reject/%s naming its order", h.Outcome, h.Code, why, refundflow.CodeCannotAdopt)
	}
	if h, why := adopt(found.RefundID); h.Outcome != refundflow.OutcomeAct || h.Code != refundflow.CodeAdopted || h.State != refundflow.StateWaitingSeller {
		t.Fatalf("adopt %s: %s/%s %s %q; want adopted, waiting_seller", found.RefundID, h.Outcome, h.Code, h.State, why)
	}
	got, err := r.store.GetCase(ctx, stuck.ID)
	if err != nil || got.RefundID != found.RefundID || got.AttentionCode != "" {
		t.Fatalf("after the adoption: refund %q attention %q, %v; want %s, no attention", got.RefundID, got.AttentionCode, err, found.RefundID)
	}
	steps, err := r.store.Steps(ctx, stuck.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.Status == "intent" {
			t.Errorf("step %s %s still open after the adoption", s.Step, s.IdempotencyKey)
		}
	}
	if n := creates() - before; n != 0 {
		t.Errorf("%d creates sent after the adoption; want none: the create is closed, never sent again", n)
	}
}
