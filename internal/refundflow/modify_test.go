package refundflow_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// refundAction makes the sandbox's seller act on a refund.
func (r *rig) refundAction(refundID string, a sandbox.RefundAction) {
	r.t.Helper()
	r.adminPost("/_sandbox/refunds/"+refundID+"/actions", a)
}

// refusedTaobaoCase files a Taobao refund the seller then refuses.
func refusedTaobaoCase(t *testing.T, r *rig) (caseID int64, refundID, orderID, subOrderID string) {
	manual := sandbox.SellerPolicy{Decision: sandbox.DecisionManual}
	o, so := r.order(sandbox.PlatformTaobao, &manual)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	cmd.Request.Amount = 6000
	h := r.handle(cmd)
	c := r.waitState(h.CaseID, refundflow.StateWaitingSeller)
	r.refundAction(c.RefundID, sandbox.RefundAction{Action: "refuse", Reason: "金额过高 (amount too high)"})
	c = r.waitState(h.CaseID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.AttnSellerRefused || !strings.Contains(c.AttentionMessage, "amount too high") {
		t.Fatalf("after the refusal: %s %q; want seller_refused with the seller's reason", c.AttentionCode, c.AttentionMessage)
	}
	return c.ID, c.RefundID, o, so
}

func modifyCommand(r *rig, caseID int64, amount int64) refundflow.Command {
	cmd := r.command(refundflow.InputModify, refundflow.PlatformTaobao, "", "")
	cmd.CaseID, cmd.Modify = caseID, &refundflow.Modification{Amount: &amount}
	return cmd
}

// TestRefuseModifyAgreeSucceed: a refused Taobao refund is modified (a
// lower amount, checked against a fresh form), the seller agrees, and the
// refund succeeds; the timeline has each round, and the platform saw one
// modification.
func TestRefuseModifyAgreeSucceed(t *testing.T) {
	r := newRig(t, fast)
	id, refundID, _, _ := refusedTaobaoCase(t, r)
	h := r.handle(modifyCommand(r, id, 3000))
	if h.Outcome != refundflow.OutcomeAct {
		t.Fatalf("modify: %+v; want applied", h)
	}
	c := r.waitState(id, refundflow.StateWaitingSeller)
	if c.RefundID != refundID {
		t.Fatalf("refund %s after the modification; want the same refund %s", c.RefundID, refundID)
	}
	r.refundAction(refundID, sandbox.RefundAction{Action: "agree"})
	r.waitState(id, refundflow.StateSucceeded)
	st := r.sb.Stats()
	if st.Modifications[refundID] != 1 || st.DuplicateSubmissions != 0 {
		t.Errorf("modifications %d, duplicate submissions %d; want 1 and 0", st.Modifications[refundID], st.DuplicateSubmissions)
	}
	var b struct {
		RefundFee int64 `json:"refund_fee"`
	}
	resp, err := http.Get(r.url + "/_sandbox/refunds/" + refundID)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&b)
	resp.Body.Close()
	if b.RefundFee != 3000 {
		t.Errorf("the platform's refund fee is %d; want the modified 3000", b.RefundFee)
	}
	tl, _ := r.store.Timeline(context.Background(), id)
	var rounds []string
	for _, e := range tl {
		for _, w := range []string{"submitted", "seller_refused", "modify", "modified"} {
			if e.Kind == "decision" && strings.Contains(e.Summary, " "+w+":") {
				rounds = append(rounds, w)
			}
		}
	}
	if got := strings.Join(rounds, ","); !strings.Contains(got, "submitted") || !strings.Contains(got, "seller_refused") || !strings.Contains(got, "modified") {
		t.Errorf("timeline rounds %q; want the submission, the refusal and the modification", got)
	}
}

// TestModifyWhoseAnswerIsLostIsNotSentTwice: the modification reaches the
// platform but its answer is lost; the worker asks the platform (no longer
// refused: it took effect) and never sends it again.
func TestModifyWhoseAnswerIsLostIsNotSentTwice(t *testing.T) {
	r := newRig(t, fast)
	id, refundID, _, _ := refusedTaobaoCase(t, r)
	r.sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_modify", Kind: sandbox.ErrHTTP503, Count: 1, AfterEffect: true}}})
	r.handle(modifyCommand(r, id, 3000))
	r.sb.SetFaults(sandbox.Faults{})
	c := r.waitState(id, refundflow.StateWaitingSeller)
	if n := r.sb.Stats().Modifications[refundID]; n != 1 {
		t.Fatalf("modifications %d; want 1", n)
	}
	if c.RefundID != refundID {
		t.Fatalf("refund %s; want %s", c.RefundID, refundID)
	}
}

// TestModifyRefusedOn1688AndOutsideARefusal: 1688 has no modification; a
// Taobao refund the seller has not refused cannot be modified.
func TestModifyRefusedOn1688AndOutsideARefusal(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	r.waitState(h.CaseID, refundflow.StateWaitingSeller)
	if got := r.handle(modifyCommand(r, h.CaseID, 100)); got.Outcome != refundflow.OutcomeReject || got.Code != refundflow.CodeNotNow {
		t.Errorf("modify while the seller decides: %s/%s; want reject/%s", got.Outcome, got.Code, refundflow.CodeNotNow)
	}
	o2, _ := r.order(sandbox.Platform1688, nil)
	req := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o2, "")
	req.Request = alibabaRequest(false, false)
	h2 := r.handle(req)
	r.waitState(h2.CaseID, refundflow.StateWaitingSeller)
	m := modifyCommand(r, h2.CaseID, 100)
	m.Platform = refundflow.Platform1688
	if got := r.handle(m); got.Outcome != refundflow.OutcomeReject || got.Code != refundflow.CodeNotSupported {
		t.Errorf("modify on 1688: %s/%s; want reject/%s", got.Outcome, got.Code, refundflow.CodeNotSupported)
	}
}

// TestAModificationOnTheV2RenderIsSent: on the v2 render the platform's
// form carries saleFlag, which is off while the sub-order has an open
// refund (the sandbox's reading, as onForm's): read for a modification,
// the open refund is the one modified, and the modification goes out
// (every modification under a v2 profile stopped as sale_not_allowed).
func TestAModificationOnTheV2RenderIsSent(t *testing.T) {
	prof, err := platform.Parse([]byte("[endpoints.taobao_render]\npath = \"/v2/taobao/order/refund/render\"\nmethod = \"POST\"\nfamily = \"v2\"\nevidence = \"DOC\"\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	r := newRigProfiled(t, casestoretest.Backends()[0], fast, prof)
	id, refundID, _, _ := refusedTaobaoCase(t, r)
	if h := r.handle(modifyCommand(r, id, 3000)); h.Outcome != refundflow.OutcomeAct {
		t.Fatalf("modify: %+v; want applied", h)
	}
	c := r.waitState(id, refundflow.StateWaitingSeller)
	if st := r.sb.Stats(); c.RefundID != refundID || st.Modifications[refundID] != 1 {
		t.Errorf("after the modification: refund %s, %d modifications of %s; want the same refund modified once", c.RefundID, st.Modifications[refundID], refundID)
	}
}
