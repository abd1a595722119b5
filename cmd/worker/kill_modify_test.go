package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestKilledMidModify: the seller refuses a Taobao refund; the operator
// modifies it; the platform takes the modification, then hangs, and the
// worker is killed while the call is in flight. A new worker settles the
// intent by asking the platform (no longer refused: it took effect), never
// modifies again, and the refund goes on to succeed.
func TestKilledMidModify(t *testing.T) {
	faults := sandbox.Faults{TimeoutAfter: 20 * time.Second,
		ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_modify", Kind: sandbox.ErrTimeout, Count: 1, AfterEffect: true}}}
	s := newStack(t, faults, quickSeller, 1, map[string]string{"WORKER_SHUTDOWN_TIMEOUT": "0s",
		"UPSTREAM_TIMEOUT": "10s", "WORKER_LEASE_TTL": "15s"})
	w := s.start()
	o, so := s.order(sandbox.PlatformTaobao, &sandbox.SellerPolicy{Decision: sandbox.DecisionManual})
	s.publish(refundflow.Command{Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao, OrderID: o, SubOrderID: so,
		Request: &refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Amount: 6000, Description: "不想要了"}})
	id := s.caseFor(refundflow.PlatformTaobao, o, so)
	c := s.waitState(id, refundflow.StateWaitingSeller, 20*time.Second)
	action := func(a string) {
		b, _ := json.Marshal(sandbox.RefundAction{Action: a, Reason: "金额过高"})
		resp, err := http.Post(s.sbURL+"/_sandbox/refunds/"+c.RefundID+"/actions", "application/json", bytes.NewReader(b))
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("%s: %v %v", a, resp, err)
		}
		resp.Body.Close()
	}
	action("refuse")
	s.waitState(id, refundflow.StateNeedsAttention, 20*time.Second)
	amount := int64(3000)
	s.publish(refundflow.Command{Kind: refundflow.InputModify, Platform: refundflow.PlatformTaobao, CaseID: id,
		Modify: &refundflow.Modification{Amount: &amount}})
	waitFor(t, 20*time.Second, "the modification on the platform", func() bool {
		return s.httpStats().Modifications[c.RefundID] == 1
	})
	w.stop() // killed between the call and the commit

	it, err := s.store.OpenIntent(context.Background(), id)
	if err != nil || it.Step != string(refundflow.StepModify) {
		t.Fatalf("after the kill: open intent %+v, %v; want the modify intent", it, err)
	}
	s.start()
	s.waitState(id, refundflow.StateWaitingSeller, 40*time.Second)
	action("agree")
	c = s.waitState(id, refundflow.StateSucceeded, 40*time.Second)
	s.agrees(c)
	st := s.httpStats()
	if n := st.Modifications[c.RefundID]; n != 1 {
		t.Errorf("modifications of %s = %d; want exactly 1", c.RefundID, n)
	}
	if st.DuplicateSubmissions != 0 {
		t.Errorf("duplicate_submissions = %d; want 0", st.DuplicateSubmissions)
	}
	if attempts := s.stepsOf(id, refundflow.StepModify); len(attempts) != 1 {
		t.Errorf("%d modify attempts recorded; want 1", len(attempts))
		s.dump()
	}
}
