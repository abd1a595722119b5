package refundflow_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestTheCaseFlagsAReturnThePlatformHoldsUnderAnotherWaybill: the engine
// against the sandbox. A Taobao return shipped with the operator's waybill;
// the buyer then changes the waybill on the platform itself (no callback).
// The reconciler's next look flags the case, naming both waybills, while it
// goes on waiting for the seller, and the look after keeps it; once the
// platform holds the case's waybill again, the next look drops the flag. Before, the case showed the
// operator's waybill with nothing to say the seller was told another.
func TestTheCaseFlagsAReturnThePlatformHoldsUnderAnotherWaybill(t *testing.T) {
	r := newRig(t, sandbox.SellerPolicy{Decision: sandbox.DecisionAgree, DecideAfter: 20 * time.Millisecond, ReceiveAfter: time.Hour})
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(true)
	c := r.waitState(r.handle(cmd).CaseID, refundflow.StateWaitingReturnShipment)
	ship := r.command(refundflow.InputReportShipment, refundflow.PlatformTaobao, o, so)
	ship.Shipment = &refundflow.Shipment{Company: "SF", Waybill: "SF5550003333"}
	r.handle(ship)
	c = r.waitState(c.ID, refundflow.StateWaitingSellerReceive)
	if c.AttentionCode != "" {
		t.Fatalf("shipped: attention %s %q; want none", c.AttentionCode, c.AttentionMessage)
	}

	look := func(waybill string) casestore.Case {
		t.Helper()
		if waybill != "" {
			r.adminPost("/_sandbox/refunds/"+c.RefundID+"/actions", sandbox.RefundAction{Action: "change_return_waybill", Waybill: waybill})
		}
		if _, err := r.engine().Wake(context.Background(), c.ID, refundflow.InputReconcile); err != nil {
			t.Fatal(err)
		}
		got, err := r.store.GetCase(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	got := look("YT9000000001")
	if got.State != string(refundflow.StateWaitingSellerReceive) || got.AttentionCode != refundflow.AttnReturnWaybillDiffers ||
		!strings.Contains(got.AttentionMessage, `"YT9000000001"`) || !strings.Contains(got.AttentionMessage, `"SF5550003333"`) {
		t.Fatalf("the platform's waybill changed: %s %s %q; want %s flagged with both waybills",
			got.State, got.AttentionCode, got.AttentionMessage, refundflow.StateWaitingSellerReceive)
	}
	// Looked at again, nothing changed: the flag stays.
	if again := look(""); again.AttentionCode != refundflow.AttnReturnWaybillDiffers || again.AttentionMessage != got.AttentionMessage {
		t.Fatalf("looked at again: %s %q; want the flag kept", again.AttentionCode, again.AttentionMessage)
	}
	if got = look("SF5550003333"); got.State != string(refundflow.StateWaitingSellerReceive) || got.AttentionCode != "" {
		t.Fatalf("the platform's waybill the case's again: %s %s %q; want the flag dropped", got.State, got.AttentionCode, got.AttentionMessage)
	}
	r.noDuplicates()
}
