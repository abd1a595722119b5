package refundflow

import (
	"strings"
	"testing"
	"time"
)

// TestAReturnUnderAnotherWaybillIsNotOurs: the platform at "waiting for the
// seller to receive" holding another return waybill than the case's is a
// return, but not the one the open submission sent: the replaced
// submission reached the platform late, say, and the platform refused the
// correction. Before, the status alone settled the submission "the platform
// confirmed it took effect", and the case went on recording the corrected
// waybill while the seller looks for the parcel under the other one, with
// nothing to tell an operator. Now the intent is settled not taken and the
// case follows the refund flagged return_waybill_differs, naming both
// waybills and what to do; the flag goes when the platform holds the case's
// waybill, or the case moves on.
func TestAReturnUnderAnotherWaybillIsNotOurs(t *testing.T) {
	d := Decider{Policy: policy}
	d.Policy.InFlight = time.Minute
	c := fixture(PlatformTaobao, StateReturnSubmitting)
	c.RefundID, c.Shipment = "R1", &Shipment{Company: "SF", Waybill: "SF200"}
	c.Intent = &Intent{Step: StepReturnSubmit, Key: "case:7:return_submit:v3", Since: now.Add(-time.Hour), LastAttempt: now.Add(-30 * time.Minute),
		Sends: 1, Refusals: 1, LastError: "illegal_state: already has return logistics X100001"}
	other := tbView("WAIT_SELLER_CONFIRM_GOODS")
	other.ReturnWaybill = "X100001"

	dec := d.Decide(c, other, Input{Kind: InputTimer, Now: now})
	if dec.Outcome != OutcomeAct || dec.State != StateWaitingSellerReceive || dec.Resolve == nil || dec.Resolve.Done ||
		dec.Resolve.Code != CodeOtherWaybill || !strings.Contains(dec.Resolve.Note, "X100001") {
		t.Fatalf("another waybill on the platform: %s resolve %+v; want the submission settled not taken, the case following the refund",
			cell(dec), dec.Resolve)
	}
	if dec.Attention == nil || dec.Attention.Code != AttnReturnWaybillDiffers ||
		!strings.Contains(dec.Attention.Message, `"X100001"`) || !strings.Contains(dec.Attention.Message, `"SF200"`) ||
		!strings.Contains(dec.Attention.Message, "refundctl message 7 --text") {
		t.Fatalf("another waybill on the platform: attention %+v; want the flag naming both waybills and the way to tell the seller", dec.Attention)
	}

	// Once there, each look at the platform keeps the flag (without a
	// new timeline entry while nothing changed), and so does any decision
	// that says nothing of it: a view without a waybill (Taobao's query
	// may leave it out), of another refund, a message to the seller (what
	// the flag asks for). It goes when the platform holds the case's
	// waybill, in any spelling.
	at := fixture(PlatformTaobao, StateWaitingSellerReceive)
	at.RefundID, at.Shipment = "R1", &Shipment{Company: "SF", Waybill: "SF200"}
	raise := d.Decide(at, other, Input{Kind: InputTimer, Now: now})
	if raise.Outcome != OutcomeAct || raise.State != StateWaitingSellerReceive || raise.Attention == nil ||
		raise.Attention.Code != AttnReturnWaybillDiffers || raise.Code != AttnReturnWaybillDiffers {
		t.Fatalf("waiting for the seller, another waybill: %s %+v; want the flag raised", cell(raise), raise.Attention)
	}
	flagged := apply(at, raise)
	blank := tbView("WAIT_SELLER_CONFIRM_GOODS")
	otherRefund := tbView("WAIT_SELLER_CONFIRM_GOODS")
	otherRefund.RefundID, otherRefund.ReturnWaybill = "R-other", "Z900000"
	for _, tc := range []struct {
		name string
		v    *PlatformView
		in   Input
		noOp bool
	}{
		{"the same view again", other, Input{Kind: InputTimer, Now: now}, true},
		{"the same view, reconciling", other, Input{Kind: InputReconcile, Now: now}, true},
		{"a view without a waybill", blank, Input{Kind: InputTimer, Now: now}, true},
		{"a view of another refund", otherRefund, Input{Kind: InputTimer, Now: now}, true},
		{"a message to the seller", nil, Input{Kind: InputSendMessage, ID: "cmd-msg-1", Now: now, Message: "the parcel is SF200"}, false},
	} {
		dec := d.Decide(flagged, tc.v, tc.in)
		if (dec.Outcome == OutcomeNoOp) != tc.noOp || dec.State != StateWaitingSellerReceive || dec.Attention == nil ||
			dec.Attention.Code != AttnReturnWaybillDiffers || dec.Attention.Message != flagged.AttentionMessage {
			t.Errorf("flagged, %s: %s %+v; want the flag kept", tc.name, cell(dec), dec.Attention)
		}
		if again := apply(flagged, dec); again.AttentionCode != AttnReturnWaybillDiffers {
			t.Errorf("flagged, %s: applied, attention %q; want the flag kept", tc.name, again.AttentionCode)
		}
	}
	for _, spelled := range []string{" sf200 ", "SF-200", "ＳＦ２００"} {
		ours := tbView("WAIT_SELLER_CONFIRM_GOODS")
		ours.ReturnWaybill = spelled
		if dec := d.Decide(flagged, ours, Input{Kind: InputTimer, Now: now}); dec.Outcome != OutcomeAct || dec.Attention != nil ||
			dec.State != StateWaitingSellerReceive {
			t.Errorf("flagged, the platform holding %q: %s %+v; want the flag dropped", spelled, cell(dec), dec.Attention)
		}
		if dec := d.Decide(at, ours, Input{Kind: InputTimer, Now: now}); dec.Attention != nil {
			t.Errorf("unflagged, the platform holding %q: %s %+v; want no flag", spelled, cell(dec), dec.Attention)
		}
	}
	if dec := d.Decide(c, blank, Input{Kind: InputTimer, Now: now}); dec.Resolve == nil || !dec.Resolve.Done || dec.Attention != nil {
		t.Errorf("a return, no waybill shown: %s resolve %+v; want the submission confirmed by the status", cell(dec), dec.Resolve)
	}
	// The refund done, the flag goes with the state.
	if dec := d.Decide(flagged, tbView("SUCCESS"), Input{Kind: InputTimer, Now: now}); dec.State != StateSucceeded || dec.Attention != nil {
		t.Errorf("flagged, the refund done: %s %+v; want succeeded, unflagged", cell(dec), dec.Attention)
	}
	// 1688 too (freightBill).
	al := fixture(Platform1688, StateWaitingSellerReceive)
	al.RefundID, al.Shipment = "R1", &Shipment{Company: "SF", Waybill: "SF200"}
	alOther := alView("waitsellerreceive")
	alOther.ReturnWaybill = "X100001"
	if dec := d.Decide(al, alOther, Input{Kind: InputTimer, Now: now}); dec.Attention == nil || dec.Attention.Code != AttnReturnWaybillDiffers ||
		strings.Contains(dec.Attention.Message, "refundctl message") {
		t.Errorf("1688, another waybill: %s %+v; want the flag, without a message to the seller (1688 has none)", cell(dec), dec.Attention)
	}
}
