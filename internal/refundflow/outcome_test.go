package refundflow_test

import (
	"context"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestCommandOutcomes: every command's own decision records its verdict,
// keyed by the command id, with the case it concerns.
func TestCommandOutcomes(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	ctx := context.Background()
	outcome := func(cmd refundflow.Command) casestore.CommandOutcome {
		t.Helper()
		o, err := r.store.CommandOutcome(ctx, cmd.ID)
		if err != nil {
			t.Fatalf("CommandOutcome(%s %s): %v", cmd.Kind, cmd.ID, err)
		}
		return o
	}
	check := func(name string, cmd refundflow.Command, verdict string, caseID int64, code string) {
		t.Helper()
		o := outcome(cmd)
		if o.Verdict != verdict || o.CaseID != caseID || o.Code != code || o.Reason == "" {
			t.Errorf("%s: outcome = %+v; want %s, case %d, code %s, with a reason", name, o, verdict, caseID, code)
		}
	}

	o, so := r.order(sandbox.PlatformTaobao, nil)
	req := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	req.Request = taobaoRequest(false)
	h := r.handle(req)
	check("request", req, casestore.VerdictApplied, h.CaseID, "requested")

	dup := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	dup.Request = taobaoRequest(false)
	r.handle(dup)
	check("the same request under another id", dup, casestore.VerdictRejected, h.CaseID, refundflow.CodeDuplicate)

	other := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	other.Request = taobaoRequest(false)
	other.Request.Description = "changed my mind"
	r.handle(other)
	check("another request on the open case", other, casestore.VerdictRejected, h.CaseID, refundflow.CodeCaseOpen)

	ship := r.command(refundflow.InputReportShipment, refundflow.PlatformTaobao, "", so)
	ship.Shipment = &refundflow.Shipment{Company: "SF", Waybill: "SF1"}
	r.handle(ship)
	check("ship on a refund-only case", ship, casestore.VerdictRejected, h.CaseID, refundflow.CodeNotNow)

	cancel := r.command(refundflow.InputCancel, refundflow.PlatformTaobao, "", so)
	r.handle(cancel)
	check("cancel", cancel, casestore.VerdictApplied, h.CaseID, "cancel")
	r.waitState(h.CaseID, refundflow.StateCancelled)

	again := r.command(refundflow.InputCancel, refundflow.PlatformTaobao, "", so)
	r.handle(again)
	check("cancel of a finished case", again, casestore.VerdictRejected, h.CaseID, refundflow.CodeCaseFinished)

	// A redelivery of a decided command is dropped by the inbox; its
	// verdict stands.
	if h2 := r.handle(req); !h2.Duplicate {
		t.Fatalf("redelivered request: %+v; want a duplicate", h2)
	}
	check("request after its redelivery", req, casestore.VerdictApplied, h.CaseID, "requested")

	ao, _ := r.order(sandbox.Platform1688, nil)
	areq := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, ao, "")
	areq.Request = alibabaRequest(false, false)
	ah := r.handle(areq)
	r.waitState(ah.CaseID, refundflow.StateWaitingSeller)
	acancel := r.command(refundflow.InputCancel, refundflow.Platform1688, ao, "")
	r.handle(acancel)
	check("cancel on 1688", acancel, casestore.VerdictRejected, ah.CaseID, refundflow.CodeNotSupported)
	// The reason says where to do it: the console shows it alone.
	if o := outcome(acancel); !strings.Contains(o.Reason, "withdraw the refund on 1688 itself") {
		t.Errorf("cancel on 1688: reason %q; want it to say where to withdraw the refund", o.Reason)
	}
	amsg := r.command(refundflow.InputSendMessage, refundflow.Platform1688, ao, "")
	amsg.Message = "hello"
	r.handle(amsg)
	check("message on 1688", amsg, casestore.VerdictRejected, ah.CaseID, refundflow.CodeNotSupported)
}
