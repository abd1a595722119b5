package refundflow_test

import (
	"context"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// unverifiable1688 opens a 1688 case whose create's answer was lost and
// whose refund callback never comes: parked intent_unverifiable with its
// intent still open (the platform cannot be asked by order).
func unverifiable1688(t *testing.T) (*rig, *refundflow.Engine, string) {
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
	r.sb.SetFaults(sandbox.Faults{DropPushRate: 1, ForceErrors: []sandbox.ForcedError{{Endpoint: "alibaba_create_refund", Kind: sandbox.ErrHTTP503, Count: 1, AfterEffect: true}}})
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
	r, eng, o := unverifiable1688(t)
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
