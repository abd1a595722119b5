package refundflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// adminPost posts v as JSON to the sandbox's admin API and fails the test
// unless it succeeds.
func (r *rig) adminPost(path string, v any) {
	r.t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(r.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, body)
	}
}

// orderEvent posts an order event to the sandbox, which pushes its callback.
func (r *rig) orderEvent(orderID string, ev sandbox.OrderEvent) {
	r.t.Helper()
	r.adminPost("/_sandbox/orders/"+orderID+"/events", ev)
}

// keptEvent waits until the store holds an event of the order of the
// message type, and returns it.
func (r *rig) keptEvent(p platform.ID, orderID, messageType string) casestore.OrderEvent {
	r.t.Helper()
	var ev casestore.OrderEvent
	r.waitFor("order event "+messageType+" kept", func() bool {
		evs, _ := r.store.OrderEventsAfter(context.Background(), p, orderID, 0)
		for _, e := range evs {
			if e.MessageType == messageType {
				ev = e
				return true
			}
		}
		return false
	})
	return ev
}

// TestOrderCancelledBeforeSubmissionSubmitsNothing: a request stopped before
// submission (a reason the form does not offer) ends when the buyer cancels
// the order, with nothing submitted and the reason on the timeline.
func TestOrderCancelledBeforeSubmissionSubmitsNothing(t *testing.T) {
	r := newRig(t, fast)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	cmd.Request.ReasonID = 999999
	h := r.handle(cmd)
	if c := r.waitState(h.CaseID, refundflow.StateNeedsAttention); c.AttentionCode != refundflow.AttnReasonNotOffered {
		t.Fatalf("attention %q; want %q", c.AttentionCode, refundflow.AttnReasonNotOffered)
	}
	r.orderEvent(o, sandbox.OrderEvent{Type: "cancel"})
	c := r.waitState(h.CaseID, refundflow.StateCancelled)
	tl, _ := r.store.Timeline(context.Background(), c.ID)
	var ended bool
	for _, e := range tl {
		ended = ended || (e.Kind == casestore.KindDecision && strings.Contains(e.Summary, "order_ended") && strings.Contains(e.Summary, "buyer_cancel"))
	}
	if !ended {
		t.Errorf("the timeline does not say the order ended:\n%+v", tl)
	}
	if n := r.sb.Stats().RefundSubmissions["taobao:"+so]; n != 0 {
		t.Errorf("submissions = %d; want 0", n)
	}
}

// TestRequestOnAnOrderCancelledEarlierEndsAtOnce: an order event for an
// order with no case is kept; a later request reads it and ends without a
// call to the platform, its verdict rejected (order_ended).
func TestRequestOnAnOrderCancelledEarlierEndsAtOnce(t *testing.T) {
	r := newRig(t, fast)
	o, so := r.order(sandbox.PlatformTaobao, nil)
	r.orderEvent(o, sandbox.OrderEvent{Type: "cancel", CloseReason: "seller_out_of_stock"})
	if ev := r.keptEvent(platform.Taobao, o, "ORDER_CANCEL"); !ev.Ended || ev.CloseReason != "seller_out_of_stock" {
		t.Fatalf("kept %+v; want the cancel, ended, with its close reason", ev)
	}
	before := calls(r)
	cmd := r.command(refundflow.InputRequestRefund, refundflow.PlatformTaobao, o, so)
	cmd.Request = taobaoRequest(false)
	h := r.handle(cmd)
	if h.State != refundflow.StateCancelled || h.Code != refundflow.CodeOrderEnded {
		t.Fatalf("request on a cancelled order: %+v; want cancelled, %s", h, refundflow.CodeOrderEnded)
	}
	if out, err := r.store.CommandOutcome(context.Background(), cmd.ID); err != nil || out.Verdict != casestore.VerdictRejected || !strings.Contains(out.Reason, "seller_out_of_stock") {
		t.Errorf("verdict %+v, %v; want rejected, naming the close reason", out, err)
	}
	if n := calls(r) - before; n != 0 {
		t.Errorf("%d platform calls; want none", n)
	}
}

// TestPriceCorrectionAndPaymentCarryARefusedRequest: a 1688 request on an
// order not yet paid, for more than its price, is refused by the platform
// (platform_error before submission). A price correction reads the reasons
// again and submits again (refused: still unpaid); the payment does the same
// and the refund goes through. Each change is on the timeline; nothing is
// submitted twice.
func TestPriceCorrectionAndPaymentCarryARefusedRequest(t *testing.T) {
	r := newRig(t, fast)
	b, _ := json.Marshal(sandbox.CreateOrderRequest{Platform: sandbox.Platform1688, OrderID: "7100000000000000001", Amount: 10000,
		Status: sandbox.OrderWaitingForPayment})
	resp, err := http.Post(r.url+"/_sandbox/orders", "application/json", bytes.NewReader(b))
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("create order: %v %v", resp, err)
	}
	resp.Body.Close()
	o := "7100000000000000001"
	cmd := r.command(refundflow.InputRequestRefund, refundflow.Platform1688, o, "")
	cmd.Request = alibabaRequest(false, false)
	cmd.Request.Amount = 12000
	h := r.handle(cmd)
	if c := r.waitState(h.CaseID, refundflow.StateNeedsAttention); c.AttentionCode != refundflow.AttnPlatformError || c.ParkedState != string(refundflow.StateSubmitting) {
		t.Fatalf("unpaid order: %s at %s; want platform_error at submitting", c.AttentionCode, c.ParkedState)
	}
	creates := func() int64 { return r.sb.Stats().APICalls["alibaba_create_refund"] }
	if n := creates(); n != 1 {
		t.Fatalf("creates = %d; want 1", n)
	}
	r.orderEvent(o, sandbox.OrderEvent{Type: "price_modify", TotalAmount: 13000})
	r.waitFor("a create after the price correction", func() bool { return creates() == 2 })
	r.waitState(h.CaseID, refundflow.StateNeedsAttention) // refused again: still unpaid
	r.orderEvent(o, sandbox.OrderEvent{Type: "pay"})
	c := r.waitState(h.CaseID, refundflow.StateSucceeded)
	if n := creates(); n != 3 {
		t.Errorf("creates = %d; want 3 (first, after the price, after the payment)", n)
	}
	if n := r.sb.Stats().APICalls["alibaba_refund_reasons"]; n != 3 {
		t.Errorf("reasons read %d times; want 3 (each change reads them again)", n)
	}
	if st := r.sb.Stats(); st.DuplicateSubmissions != 0 {
		t.Errorf("duplicate submissions %d; want 0", st.DuplicateSubmissions)
	}
	tl, _ := r.store.Timeline(context.Background(), c.ID)
	var price, paid bool
	for _, e := range tl {
		price = price || strings.Contains(e.Summary, "ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY")
		paid = paid || strings.Contains(e.Summary, "ORDER_PAY_SUCCESS")
	}
	if !price || !paid {
		t.Errorf("timeline has the price correction %v, the payment %v; want both", price, paid)
	}
}

// TestOrderEventCopyIsADuplicate: a copy of an order message whose event is
// kept already (a redelivery, or a copy racing the first) is a duplicate,
// found by the transaction that would keep it (no inbox read comes first):
// the event is kept once and its case told once.
func TestOrderEventCopyIsADuplicate(t *testing.T) {
	casestoretest.Each(t, func(t *testing.T, be casestoretest.Backend) {
		r := newRigOn(t, be, sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
		c, o, _, _ := r.submittedTaobaoCase()
		ctx := context.Background()
		body, _ := json.Marshal(map[string]any{"orderId": o, "orderStatus": "PAID"})
		raw, _ := json.Marshal(map[string]any{"messageType": "ORDER_PAY_SUCCESS", "messageBody": string(body),
			"messagePlatform": 0, "timestamp": "1764720000000"})
		ev, err := r.parser.Parse(raw)
		if err != nil || ev.Order == nil {
			t.Fatalf("parse: %v (%+v)", err, ev)
		}
		msg := func() *refundflow.Message {
			return &refundflow.Message{ID: ev.ID, Subject: "callbacks.taobao", Source: casestore.SourceCallbacks, Payload: raw}
		}
		before, err := r.store.Timeline(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		// The first copy's transaction has kept the event; its inbox row is
		// not there yet for the second copy's check to see.
		if err := r.store.Update(ctx, func(tx *casestore.Tx) error {
			_, _, _, err := tx.RecordOrderEvent(ctx, casestore.OrderEvent{Platform: platform.Taobao, OrderID: o, MsgID: ev.ID,
				MessageType: ev.Type, Kind: ev.Kind, OrderStatus: "PAID", Body: []byte(body)}, casestore.OrderEventEntry{Summary: "order event"}, false)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		h, err := r.engine().HandleCallback(ctx, ev, msg())
		if err != nil || !h.Duplicate {
			t.Fatalf("the copy: %+v, %v; want a duplicate", h, err)
		}
		evs, err := r.store.OrderEventsAfter(ctx, platform.Taobao, o, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs {
			if e.MsgID == ev.ID {
				n++
			}
		}
		if n != 1 {
			t.Errorf("events kept for the message: %d; want 1", n)
		}
		after, err := r.store.Timeline(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(after) - len(before); got != 1 {
			t.Errorf("timeline entries added: %d; want 1 (the first copy's)", got)
		}
	})
}
