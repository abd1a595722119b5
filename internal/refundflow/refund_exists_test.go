package refundflow_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestARefundFiledOutsideTheCaseStopsItSayingSoAndIsNotSentAgain: the buyer
// filed a refund for the sub-order on the platform's site a month ago, and
// it is still open; an operator then requests one. The platform refuses the
// submission: the sub-order has an open refund. The case stops
// refund_exists, naming that refund and the ways out (it stopped
// platform_error, whose retry sent the submission again, refused again).
// A retry while that refund is open reads the form again and sends
// nothing; once it is closed, the retry files the request.
func TestARefundFiledOutsideTheCaseStopsItSayingSoAndIsNotSentAgain(t *testing.T) {
	r := newRig(t, manual)
	ctx := context.Background()
	c, seeded, o, so := r.blockedByOutsideRefund(30 * 24 * time.Hour)
	id := strconv.FormatInt(c.ID, 10)
	if c.AttentionCode != refundflow.AttnRefundExists || !strings.Contains(c.AttentionMessage, "open refund "+seeded.RefundID) ||
		!strings.Contains(c.AttentionMessage, "resolve "+id+" --retry") || !strings.Contains(c.AttentionMessage, "resolve "+id+" --close") {
		t.Fatalf("case stopped %s: %q; want %s naming refund %s and both ways out", c.AttentionCode, c.AttentionMessage,
			refundflow.AttnRefundExists, seeded.RefundID)
	}
	refused := func() int64 { return r.sb.Stats().DuplicateSubmissions }
	if n := refused(); n != 1 {
		t.Fatalf("%d submissions refused as duplicates; want the one", n)
	}

	retry := func() {
		cmd := r.command(refundflow.InputResolve, refundflow.PlatformTaobao, o, so)
		cmd.CaseID, cmd.Resolve = c.ID, &refundflow.Resolve{Action: refundflow.ResolveRetry}
		r.handle(cmd)
	}
	retry() // the refund still open
	got, err := r.store.GetCase(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != string(refundflow.StateNeedsAttention) || got.AttentionCode != refundflow.AttnRefundExists ||
		!strings.Contains(got.AttentionMessage, "still open") {
		t.Errorf("after a retry while refund %s is open: %s %s %q; want stopped %s, saying it is still open", seeded.RefundID,
			got.State, got.AttentionCode, got.AttentionMessage, refundflow.AttnRefundExists)
	}
	if n := refused(); n != 1 {
		t.Errorf("%d submissions refused as duplicates after the retry; want still 1: nothing sent while it is open", n)
	}

	r.refundAction(seeded.RefundID, sandbox.RefundAction{Action: "close"})
	retry()
	got = r.waitState(c.ID, refundflow.StateWaitingSeller)
	if got.RefundID == "" || got.RefundID == seeded.RefundID {
		t.Errorf("after the other refund closed and a retry: refund %q; want a new one", got.RefundID)
	}
	if n := refused(); n != 1 {
		t.Errorf("%d submissions refused as duplicates; want 1", n)
	}
	if n := r.sb.Stats().RefundSubmissions["taobao:"+so]; n != 2 {
		t.Errorf("%d submissions for sub-order %s; want 2: the one refused, the one filed", n, so)
	}
}

// blockedByOutsideRefund is a Taobao sub-order with an open refund the
// buyer filed age ago on the platform's site, and the case an operator
// then requested for it, stopped where the platform refused its
// submission: the case, that refund, the order and the sub-order.
func (r *rig) blockedByOutsideRefund(age time.Duration) (casestore.Case, *sandbox.Refund, string, string) {
	r.t.Helper()
	o, so := r.order(sandbox.PlatformTaobao, nil)
	seeded, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.PlatformTaobao, OrderID: o, SubOrderID: so,
		Status: "wait_seller_agree", CreatedAt: time.Now().Add(-age)})
	if err != nil {
		r.t.Fatal(err)
	}
	req := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	req.Request = taobaoRequest(false)
	r.handle(req)
	return r.waitState(r.caseOf(refundflow.PlatformTaobao, o, so).ID, refundflow.StateNeedsAttention), seeded, o, so
}

// TestA1688RefundFiledOutsideTheCaseStopsItSayingSo: 1688 refuses the
// submission for an order with an open refund; 1688 cannot list an order's
// refunds, so the text says its answer names it.
func TestA1688RefundFiledOutsideTheCaseStopsItSayingSo(t *testing.T) {
	r := newRig(t, manual)
	o, _ := r.order(sandbox.Platform1688, nil)
	if _, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.Platform1688, OrderID: o, Status: "waitselleragree",
		CreatedAt: time.Now().Add(-30 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	req := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	req.Request = alibabaRequest(false, false)
	r.handle(req)
	c := r.waitState(r.caseOf(refundflow.Platform1688, o, "").ID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.AttnRefundExists || !strings.Contains(c.AttentionMessage, "the order has an open refund already") ||
		!strings.Contains(c.AttentionMessage, "1688 does not list") || !strings.Contains(c.AttentionMessage, "The platform said: ") {
		t.Fatalf("case stopped %s: %q; want %s saying 1688's answer names the refund", c.AttentionCode, c.AttentionMessage, refundflow.AttnRefundExists)
	}
}

// adopt has the rig's engine decide an operator's adoption of refund on
// case id: the command's verdict.
func (r *rig) adopt(p refundflow.Platform, id int64, refund string) casestore.CommandOutcome {
	r.t.Helper()
	cmd := r.command(refundflow.InputResolve, p, "", "")
	cmd.CaseID, cmd.Resolve = id, &refundflow.Resolve{Action: refundflow.ResolveAdopt, Refund: refund, Note: "the buyer filed it on the site"}
	r.handle(cmd)
	out, err := r.store.CommandOutcome(context.Background(), cmd.ID)
	if err != nil {
		r.t.Fatalf("the adoption's verdict: %v", err)
	}
	return out
}

// TestARefundFiledOutsideTheCaseCanBeAdoptedAndIsFollowedToItsEnd: the
// buyer's refund, filed on the platform's site, blocks the case's. The
// operator adopts it: the platform is asked what it is, nothing is sent,
// and the case follows it to its end as its own. Another sub-order's
// refund, or one the platform does not have, is refused, changing nothing:
// not the case's platform status, not its conversation (the other
// refund's seller messages are not the case's).
func TestARefundFiledOutsideTheCaseCanBeAdoptedAndIsFollowedToItsEnd(t *testing.T) {
	r := newRig(t, manual)
	ctx := context.Background()
	eng, err := refundflow.NewEngine(refundflow.EngineConfig{Store: r.store, Client: r.client, Policy: testPolicy, Owner: "adopting",
		RetryDelay: 50 * time.Millisecond, MessagesInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	r.setEngine(eng)
	c, seeded, _, so := r.blockedByOutsideRefund(3 * 24 * time.Hour)
	o2, so2 := r.order(sandbox.PlatformTaobao, nil)
	elsewhere, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.PlatformTaobao, OrderID: o2, SubOrderID: so2,
		Status: "wait_seller_agree", CreatedAt: time.Now().Add(-3 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if c.AttentionCode != refundflow.AttnRefundExists {
		t.Fatalf("case stopped %s: %q; want %s", c.AttentionCode, c.AttentionMessage, refundflow.AttnRefundExists)
	}
	r.sellerSays(elsewhere.RefundID, "about another sub-order", false)

	for _, bad := range []struct{ refund, says string }{
		{elsewhere.RefundID, "under sub-order " + so2 + ", not this case's"},
		{"4000000000000000001", "has no refund 4000000000000000001"},
	} {
		h := r.adopt(refundflow.PlatformTaobao, c.ID, bad.refund)
		got, err := r.store.GetCase(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if h.Verdict != casestore.VerdictRejected || h.Code != refundflow.CodeCannotAdopt || !strings.Contains(h.Reason, bad.says) {
			t.Errorf("adopt %s: %s %s %q; want rejected %s saying %q", bad.refund, h.Verdict, h.Code, h.Reason, refundflow.CodeCannotAdopt, bad.says)
		}
		if got.State != c.State || got.RefundID != "" || got.AttentionCode != refundflow.AttnRefundExists || string(got.Plan) != string(c.Plan) ||
			got.PlatformStatus != c.PlatformStatus {
			t.Errorf("adopt %s refused: case %s refund %q %s platform status %q plan %s; want it unchanged", bad.refund, got.State, got.RefundID,
				got.AttentionCode, got.PlatformStatus, got.Plan)
		}
		if msgs, err := r.store.CaseMessages(ctx, c.ID); err != nil || len(msgs) != 0 {
			t.Errorf("adopt %s refused: the case's conversation holds %d messages (%v); want none of the other refund's", bad.refund, len(msgs), err)
		}
	}

	h := r.adopt(refundflow.PlatformTaobao, c.ID, seeded.RefundID)
	if h.Verdict != casestore.VerdictApplied || h.Code != refundflow.CodeAdopted {
		t.Fatalf("adopt %s: %s %s %q; want it adopted", seeded.RefundID, h.Verdict, h.Code, h.Reason)
	}
	got := r.waitState(c.ID, refundflow.StateWaitingSeller)
	if got.RefundID != seeded.RefundID {
		t.Fatalf("after the adoption: refund %q; want %s", got.RefundID, seeded.RefundID)
	}
	if !strings.Contains(string(got.Plan), `"adopted":"`+seeded.RefundID+`"`) {
		t.Errorf("plan %s; want it to say the refund was adopted", got.Plan)
	}
	if !r.timelineHas(c.ID, "refund "+seeded.RefundID+" adopted by the operator (was refund_exists at submitting): the buyer filed it on the site") {
		t.Errorf("the timeline does not say who adopted what")
	}
	if n := r.sb.Stats().RefundSubmissions["taobao:"+so]; n != 1 {
		t.Errorf("%d submissions for sub-order %s; want the one refused: adopting sends nothing", n, so)
	}

	r.refundAction(seeded.RefundID, sandbox.RefundAction{Action: "agree"})
	r.waitState(c.ID, refundflow.StateSucceeded)
}

// TestARefundAnEarlierCaseLeftOpenCanBeAdoptedByTheNext: an operator
// closed a case locally while the seller's refusal of its refund stood,
// leaving that refund open; the next case for the sub-order is refused
// for it, and adopts it from the closed case. The refund's callbacks then
// move the new case (the refund closed by the platform: closed). The
// seller's refusal came before the adoption: the policy's message to the
// seller, sent by the first case, is not sent again.
func TestARefundAnEarlierCaseLeftOpenCanBeAdoptedByTheNext(t *testing.T) {
	r := newRig(t, manual) // testPolicy has a refusal message
	first, refund, o, so := refusedTaobaoCase(t, r)
	messages := func() int64 { return r.sb.Stats().APICalls["taobao_submit_message"] }
	r.waitFor("the first case's message on the refusal", func() bool { return messages() == 1 })
	closeIt := r.command(refundflow.InputResolve, refundflow.PlatformTaobao, "", "")
	closeIt.CaseID, closeIt.Resolve = first, &refundflow.Resolve{Action: refundflow.ResolveClose, Note: "handled by phone"}
	r.handle(closeIt)
	r.waitState(first, refundflow.StateClosedLocally)

	req := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	req.Request = taobaoRequest(false)
	h := r.handle(req)
	c := r.waitState(h.CaseID, refundflow.StateNeedsAttention)
	if c.ID == first || c.AttentionCode != refundflow.AttnRefundExists || !strings.Contains(c.AttentionMessage, "open refund "+refund) {
		t.Fatalf("the next case %d stopped %s: %q; want %s naming %s", c.ID, c.AttentionCode, c.AttentionMessage, refundflow.AttnRefundExists, refund)
	}
	if a := r.adopt(refundflow.PlatformTaobao, c.ID, refund); a.Code != refundflow.CodeAdopted ||
		!strings.Contains(a.Reason, "from case "+strconv.FormatInt(first, 10)+" (closed_locally)") {
		t.Fatalf("adopt %s: %s %s %q; want it adopted from case %d", refund, a.Verdict, a.Code, a.Reason, first)
	}
	got := r.waitState(c.ID, refundflow.StateNeedsAttention)
	if got.RefundID != refund || got.AttentionCode != refundflow.AttnSellerRefused {
		t.Fatalf("after the adoption: refund %q %s; want %s, stopped %s as the platform shows it", got.RefundID, got.AttentionCode, refund, refundflow.AttnSellerRefused)
	}
	if n := messages(); n != 1 {
		t.Errorf("%d messages sent on the refusal; want the first case's one: adopting sends nothing", n)
	}
	r.refundAction(refund, sandbox.RefundAction{Action: "close"})
	r.waitState(c.ID, refundflow.StateClosed)
	if old, err := r.store.GetCase(context.Background(), first); err != nil || old.State != string(refundflow.StateClosedLocally) {
		t.Errorf("the earlier case: %s %v; want it left closed_locally", old.State, err)
	}
}

// TestA1688RefundFiledOutsideTheCaseCanBeAdopted: 1688 cannot list an
// order's refunds; the operator names the refund its answer named, and the
// platform's refund info says it is for the case's order.
func TestA1688RefundFiledOutsideTheCaseCanBeAdopted(t *testing.T) {
	r := newRig(t, manual)
	o, _ := r.order(sandbox.Platform1688, nil)
	seeded, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.Platform1688, OrderID: o, Status: "waitselleragree",
		CreatedAt: time.Now().Add(-3 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	req := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	req.Request = alibabaRequest(false, false)
	r.handle(req)
	c := r.waitState(r.caseOf(refundflow.Platform1688, o, "").ID, refundflow.StateNeedsAttention)
	if c.AttentionCode != refundflow.AttnRefundExists {
		t.Fatalf("case stopped %s: %q; want %s", c.AttentionCode, c.AttentionMessage, refundflow.AttnRefundExists)
	}
	if h := r.adopt(refundflow.Platform1688, c.ID, seeded.RefundID); h.Code != refundflow.CodeAdopted {
		t.Fatalf("adopt %s: %s %s %q; want it adopted", seeded.RefundID, h.Verdict, h.Code, h.Reason)
	}
	got := r.waitState(c.ID, refundflow.StateWaitingSeller)
	if got.RefundID != seeded.RefundID {
		t.Fatalf("after the adoption: refund %q; want %s", got.RefundID, seeded.RefundID)
	}
	r.refundAction(seeded.RefundID, sandbox.RefundAction{Action: "agree"})
	r.waitState(c.ID, refundflow.StateSucceeded)
}
