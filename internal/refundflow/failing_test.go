package refundflow_test

import (
	"context"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestACaseWhoseInputsKeepFailingIsFlagged: the platform's answers to a
// waiting case's checks keep failing. From the Policy.FailingFlag-th
// failure in a row the case carries the inputs_failing flag, naming the
// failure and where to look; it stays in its state and goes on retrying,
// and the flag goes with the first check that gets through. (Such a case
// retried for ever, every RetryMax, with no attention code: no list or
// metric showed it.)
func TestACaseWhoseInputsKeepFailingIsFlagged(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		c, _, _, _ := r.submittedTaobaoCase()
		eng := r.flaggingEngine("engine-failing")
		ctx := context.Background()
		r.readsFail()
		for i := 1; i <= 3; i++ {
			if _, err := eng.Wake(ctx, c.ID, refundflow.InputTimer); err == nil {
				t.Fatalf("check %d while the platform fails: no error", i)
			}
			got, err := r.store.GetCase(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			flagged := got.AttentionCode == refundflow.AttnInputsFailing
			if flagged != (i == 3) || got.State != string(refundflow.StateWaitingSeller) || got.FailedInputs != i {
				t.Fatalf("after %d failed checks: %s, flag %q, %d failed; want waiting_seller, flagged from the third, %d failed",
					i, got.State, got.AttentionCode, got.FailedInputs, i)
			}
			if flagged && (!strings.Contains(got.AttentionMessage, "last 3 inputs failed") || !strings.Contains(got.AttentionMessage, "500") ||
				!strings.Contains(got.AttentionMessage, "refundctl show")) {
				t.Errorf("flag text %q; want the count, the last failure and where to look", got.AttentionMessage)
			}
		}
		// It takes the place of waiting_evidence, whose deadline waits for
		// the same reads; not of return_waybill_differs, whose advice
		// stands and only a view raises again.
		for _, tc := range []struct{ flag, want string }{
			{refundflow.AttnWaitingEvidence, refundflow.AttnInputsFailing},
			{refundflow.AttnReturnWaybillDiffers, refundflow.AttnReturnWaybillDiffers},
		} {
			if err := r.store.Update(ctx, func(tx *casestore.Tx) error {
				k, err := tx.GetCase(ctx, c.ID)
				if err != nil {
					return err
				}
				k.AttentionCode, k.AttentionMessage, k.FailedInputs = tc.flag, "set by the test", 0
				_, err = tx.UpdateCase(ctx, k)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := eng.Wake(ctx, c.ID, refundflow.InputTimer); err == nil {
					t.Fatal("a check while the platform fails: no error")
				}
			}
			if got, err := r.store.GetCase(ctx, c.ID); err != nil || got.AttentionCode != tc.want {
				t.Fatalf("a case flagged %s after 3 failed checks: flag %q, %v; want %s", tc.flag, got.AttentionCode, err, tc.want)
			}
		}
		r.sb.SetFaults(sandbox.Faults{})
		if _, err := eng.Wake(ctx, c.ID, refundflow.InputTimer); err != nil {
			t.Fatalf("check once the platform answers: %v", err)
		}
		got, err := r.store.GetCase(ctx, c.ID)
		if err != nil || got.AttentionCode != "" || got.FailedInputs != 0 || got.State != string(refundflow.StateWaitingSeller) {
			t.Fatalf("after a check that got through: %s, flag %q, %d failed, %v; want waiting_seller, no flag, none failed",
				got.State, got.AttentionCode, got.FailedInputs, err)
		}
	})
}

// TestARefusedCommandLeavesACasesFailingInputsAlone: a command the case
// refuses changes nothing, and reaches no platform: the case's count of
// failed inputs, which times its next retry, and its inputs_failing flag
// stay as they were. (A refusal counted as the case getting somewhere:
// it cleared the flag while the platform still failed, and set the retry
// backoff back to its first step.)
func TestARefusedCommandLeavesACasesFailingInputsAlone(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		c, o, so, _ := r.submittedTaobaoCase()
		eng := r.flaggingEngine("engine-refused")
		ctx := context.Background()
		r.readsFail()
		for i := 1; i <= 3; i++ {
			if _, err := eng.Wake(ctx, c.ID, refundflow.InputTimer); err == nil {
				t.Fatalf("check %d while the platform fails: no error", i)
			}
		}
		before, err := r.store.GetCase(ctx, c.ID)
		if err != nil || before.AttentionCode != refundflow.AttnInputsFailing || before.FailedInputs != 3 {
			t.Fatalf("after 3 failed checks: flag %q, %d failed, %v; want inputs_failing, 3", before.AttentionCode, before.FailedInputs, err)
		}
		again := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
		again.Request = taobaoRequest(true)
		if h, err := eng.HandleCommand(ctx, again, message(again)); err != nil || h.Outcome != refundflow.OutcomeReject {
			t.Fatalf("another request for the open case: %+v, %v; want it refused", h, err)
		}
		got, err := r.store.GetCase(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.AttentionCode != refundflow.AttnInputsFailing || got.AttentionMessage != before.AttentionMessage || got.FailedInputs != 3 {
			t.Errorf("after a refused command: flag %q, %d failed; want the flag and the count as they were (inputs_failing, 3)",
				got.AttentionCode, got.FailedInputs)
		}
		if !got.NextWakeAt.Equal(before.NextWakeAt) {
			t.Errorf("after a refused command the case wakes at %v; want its retry's time, %v", got.NextWakeAt, before.NextWakeAt)
		}
	})
}

// TestARefusedCommandAfterAReadThatGotThroughEndsTheFailingCount: a
// command that reads the platform (the read gets through: here it settles
// the case's open submission) and is then refused shows the platform
// answers again: the case's failed-input count starts over and its
// inputs_failing flag goes, as with any input that gets through. (Once
// refusals no longer reset the count, this one, which is no mere refusal,
// kept the flag and a retry backoff at its top.)
func TestARefusedCommandAfterAReadThatGotThroughEndsTheFailingCount(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		eng := r.flaggingEngine("engine-viewed")
		ctx := context.Background()
		o, so := r.order(sandbox.PlatformTaobao, nil)
		// The submission takes effect and its answer is lost: an open
		// intent, which only a read can settle.
		r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: sandbox.ErrHTTP500, Count: 1, AfterEffect: true}}})
		req := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
		req.Request = taobaoRequest(true)
		h, _ := eng.HandleCommand(ctx, req, message(req))
		r.readsFail()
		id := h.CaseID
		if id == 0 {
			id = r.caseOf(refundflow.PlatformTaobao, o, so).ID
		}
		for range 3 {
			_, _ = eng.Wake(ctx, id, refundflow.InputTimer)
		}
		before, err := r.store.GetCase(ctx, id)
		if err != nil || before.AttentionCode != refundflow.AttnInputsFailing {
			t.Fatalf("after 3 failed reads: %s, flag %q, %d failed, %v; want inputs_failing", before.State, before.AttentionCode, before.FailedInputs, err)
		}
		r.sb.SetFaults(sandbox.Faults{})
		// A shipment, which the case refuses (no return was asked for),
		// after its read settles the submission.
		ship := r.command(refundflow.InputReportShipment, refundflow.PlatformTaobao, o, so)
		ship.Shipment = &refundflow.Shipment{Company: "SF", Waybill: "SF9876543210"}
		if h, err := eng.HandleCommand(ctx, ship, message(ship)); err != nil || h.Outcome != refundflow.OutcomeReject {
			t.Fatalf("a shipment for a refund with no return: %+v, %v; want it refused", h, err)
		}
		got, err := r.store.GetCase(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != string(refundflow.StateWaitingSeller) {
			t.Errorf("case %s; want waiting_seller (the submission settled as taken)", got.State)
		}
		if got.FailedInputs != 0 || got.AttentionCode != "" {
			t.Errorf("after a refused command whose read got through: %d failed, flag %q; want neither", got.FailedInputs, got.AttentionCode)
		}
	})
}

// readsFail makes every Taobao refund read fail (HTTP 500) until the
// faults are set again.
func (r *rig) readsFail() {
	r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{
		{Endpoint: "taobao_query", Kind: sandbox.ErrHTTP500, Count: 1000},
		{Endpoint: "taobao_list", Kind: sandbox.ErrHTTP500, Count: 1000}}})
}

// flaggingEngine is an engine that flags a case inputs_failing at its
// third failed input in a row.
func (r *rig) flaggingEngine(owner string) *refundflow.Engine {
	policy := testPolicy
	policy.FailingFlag = 3
	return r.newEngineWith(owner, policy, 0)
}
