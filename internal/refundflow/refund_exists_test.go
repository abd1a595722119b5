package refundflow_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

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
	o, so := r.order(sandbox.PlatformTaobao, nil)
	seeded, err := r.sb.SeedRefund(sandbox.RefundSeed{Platform: sandbox.PlatformTaobao, OrderID: o, SubOrderID: so,
		Status: "wait_seller_agree", CreatedAt: time.Now().Add(-30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	req := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	req.Request = taobaoRequest(false)
	r.handle(req)
	c := r.waitState(r.caseOf(refundflow.PlatformTaobao, o, so).ID, refundflow.StateNeedsAttention)
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
