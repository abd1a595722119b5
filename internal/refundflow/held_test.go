package refundflow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestAHeldCaseMakesNoPlatformCall: a case that three worker processes in
// a row ended while they held it (each left its lease behind) is held by
// its next input (worker_ended), here the reconciler's wake; from then on a
// wake, a refund callback and an operator's command make no platform call
// (the command is refused, saying how to resolve the case), until the
// operator's resolve --retry takes it back to waiting for the seller.
func TestAHeldCaseMakesNoPlatformCall(t *testing.T) {
	casestoretest.Each(t, testAHeldCaseMakesNoPlatformCall)
}

func testAHeldCaseMakesNoPlatformCall(t *testing.T, be casestoretest.Backend) {
	r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	c, o, so, refundID := r.submittedTaobaoCase()
	for i := range 3 {
		dead := fmt.Sprintf("worker@host/ns/%d/dead", 100+i)
		if _, err := r.store.ClaimLease(ctx, c.ID, dead, refundflow.DefaultInFlight); err != nil {
			t.Fatal(err)
		}
		if _, err := r.store.ReleaseLeasesOf(ctx, dead); err != nil {
			t.Fatal(err)
		}
	}
	policy := testPolicy
	policy.EndedLimit = 3
	eng := r.newEngineWith("engine-held", policy, 0)
	calls := func() (n int64) {
		for _, k := range r.sb.Stats().APICalls {
			n += k
		}
		return n
	}
	before := calls()

	h, err := eng.Wake(ctx, c.ID, refundflow.InputReconcile)
	if err != nil || h.State != refundflow.StateNeedsAttention {
		t.Fatalf("the wake after three processes ended: %+v, %v; want the case held", h, err)
	}
	got, err := r.store.GetCase(ctx, c.ID)
	if err != nil || got.AttentionCode != refundflow.CodeWorkerEnded || got.ParkedState != string(refundflow.StateWaitingSeller) ||
		!got.NextWakeAt.IsZero() || got.LeaseOwner != "" || got.LeasesAbandoned != 0 {
		t.Fatalf("held case: %s at %s, timer %v, lease %q, count %d, %v; want worker_ended at waiting_seller, no timer, no lease, the count 0",
			got.AttentionCode, got.ParkedState, got.NextWakeAt, got.LeaseOwner, got.LeasesAbandoned, err)
	}

	if _, err := eng.Wake(ctx, c.ID, refundflow.InputTimer); err != nil {
		t.Fatalf("a timer wake of the held case: %v", err)
	}
	msg, _ := r.refundCallback(o, so, refundID, 77)
	ev, err := r.parser.Parse(msg.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := eng.HandleCallback(ctx, ev, msg); err != nil || h.Duplicate || h.Code != refundflow.CodeWorkerEnded {
		t.Fatalf("a refund callback for the held case: %+v, %v; want it recorded, changing nothing (%s)", h, err, refundflow.CodeWorkerEnded)
	}
	if seen, err := r.store.InboxSeen(ctx, msg.ID); err != nil || !seen {
		t.Errorf("the callback in the inbox: %v, %v; want it recorded as applied", seen, err)
	}
	cancel := r.command(refundflow.InputCancel, refundflow.PlatformTaobao, o, so)
	h, err = eng.HandleCommand(ctx, cancel, message(cancel))
	if err != nil || h.Outcome != refundflow.OutcomeReject || h.Code != refundflow.CodeWorkerEnded {
		t.Fatalf("a cancel for the held case: %+v, %v; want it refused (%s)", h, err, refundflow.CodeWorkerEnded)
	}
	if out, err := r.store.CommandOutcome(ctx, cancel.ID); err != nil || out.Verdict != casestore.VerdictRejected ||
		!strings.Contains(out.Reason, fmt.Sprintf("refundctl resolve %d --retry", c.ID)) {
		t.Errorf("the cancel's verdict: %+v, %v; want rejected, saying how to resolve the case", out, err)
	}
	if n := calls(); n != before {
		t.Errorf("%d platform calls for the held case; want none", n-before)
	}

	resolve := r.command(refundflow.InputResolve, refundflow.PlatformTaobao, o, so)
	resolve.CaseID, resolve.Resolve = c.ID, &refundflow.Resolve{Action: refundflow.ResolveRetry, Note: "not this case"}
	h, err = eng.HandleCommand(ctx, resolve, message(resolve))
	if err != nil || h.Outcome != refundflow.OutcomeAct || h.State != refundflow.StateWaitingSeller {
		t.Fatalf("resolve --retry of the held case: %+v, %v; want it back at waiting_seller", h, err)
	}
	if got, err := r.store.GetCase(ctx, c.ID); err != nil || got.AttentionCode != "" || got.NextWakeAt.IsZero() {
		t.Errorf("after the retry: attention %q, timer %v, %v; want none, and its timer set again", got.AttentionCode, got.NextWakeAt, err)
	}
	if n := calls(); n == before {
		t.Errorf("no platform call for the retry; want the refund read")
	}
}
