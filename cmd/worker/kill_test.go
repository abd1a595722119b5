package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// httpStats reads the sandbox's counters over its admin API
// (GET /_sandbox/stats), as an operator or an external test would.
func (s *stack) httpStats() sandbox.Stats {
	s.t.Helper()
	resp, err := http.Get(s.sbURL + "/_sandbox/stats")
	if err != nil {
		s.t.Fatalf("GET /_sandbox/stats: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("GET /_sandbox/stats: HTTP %d", resp.StatusCode)
	}
	var st sandbox.Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		s.t.Fatalf("decode /_sandbox/stats: %v", err)
	}
	return st
}

// stepsOf returns the recorded attempts of one step of a case, oldest first.
func (s *stack) stepsOf(id int64, step refundflow.StepName) []casestore.StepAttempt {
	s.t.Helper()
	steps, err := s.store.Steps(context.Background(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []casestore.StepAttempt
	for _, sa := range steps {
		if sa.Step == string(step) {
			out = append(out, sa)
		}
	}
	return out
}

// killedStep is a side effect after the submission that a worker is killed
// in the middle of.
type killedStep struct {
	name     string
	platform refundflow.Platform
	endpoint string // the sandbox endpoint that takes the call, then hangs
	seller   *sandbox.SellerPolicy
	req      refundflow.Request
	ship     bool             // a return: the kill is in the return-logistics submission
	wait     refundflow.State // the state in which the test sends the command
	step     refundflow.StepName
	mid      refundflow.State // the state the killed worker leaves behind
	want     refundflow.State
	count    func(sandbox.Stats) map[string]int64 // per refund id
}

func killedSteps() []killedStep {
	returnSeller := &sandbox.SellerPolicy{Decision: sandbox.DecisionRequireReturn, DecideAfter: 30 * time.Millisecond, ReceiveAfter: 30 * time.Millisecond}
	manual := &sandbox.SellerPolicy{Decision: sandbox.DecisionManual}
	returns := func(st sandbox.Stats) map[string]int64 { return st.ReturnLogisticsSubmissions }
	cancels := func(st sandbox.Stats) map[string]int64 { return st.Cancels }
	return []killedStep{
		{"taobao return", refundflow.PlatformTaobao, "taobao_return_logistics_submit", returnSeller,
			refundflow.Request{ReturnGoods: true, GoodsStatus: "3", ReasonID: 4001, Amount: 5000, Description: "不合适"},
			true, refundflow.StateWaitingReturnShipment, refundflow.StepReturnSubmit, refundflow.StateReturnSubmitting,
			refundflow.StateSucceeded, returns},
		{"1688 return", refundflow.Platform1688, "alibaba_goods_return", returnSeller,
			refundflow.Request{ReturnGoods: true, GoodsStatus: "aftersaleBuyerReceived", ReasonID: 20021,
				Amount: 3000, Description: "质量问题", Vouchers: []string{"photo-1.png"}},
			true, refundflow.StateWaitingReturnShipment, refundflow.StepReturnSubmit, refundflow.StateReturnSubmitting,
			refundflow.StateSucceeded, returns},
		{"taobao cancel", refundflow.PlatformTaobao, "taobao_cancel", manual,
			refundflow.Request{GoodsStatus: "1", ReasonID: 1001, Description: "不想要了"},
			false, refundflow.StateWaitingSeller, refundflow.StepCancel, refundflow.StateCancelling,
			refundflow.StateCancelled, cancels},
	}
}

// TestKilledMidReturnAndCancel: the platform takes the return-logistics
// submission (Taobao T4, 1688 goods return) or the Taobao cancel, then hangs;
// the worker is stopped with no shutdown grace while the call is in flight,
// so the intent is recorded and its result is not. A new worker on the same
// database and consumer settles the intent by asking the platform, never
// calls again, and finishes the case in the sandbox's state.
func TestKilledMidReturnAndCancel(t *testing.T) {
	for _, tc := range killedSteps() {
		t.Run(tc.name, func(t *testing.T) {
			faults := sandbox.Faults{TimeoutAfter: 20 * time.Second,
				ForceErrors: []sandbox.ForcedError{{Endpoint: tc.endpoint, Kind: sandbox.ErrTimeout, Count: 1, AfterEffect: true}}}
			s := newStack(t, faults, quickSeller, 1, map[string]string{"WORKER_SHUTDOWN_TIMEOUT": "0s",
				"UPSTREAM_TIMEOUT": "10s", "WORKER_LEASE_TTL": "15s"})
			w := s.start()
			plat := sandbox.PlatformTaobao
			if tc.platform == refundflow.Platform1688 {
				plat = sandbox.Platform1688
			}
			o, so := s.order(plat, tc.seller)
			req := tc.req
			s.publish(refundflow.Command{Kind: refundflow.InputRequestRefund, Platform: tc.platform, OrderID: o, SubOrderID: so, Request: &req})
			id := s.caseFor(tc.platform, o, so)
			c := s.waitState(id, tc.wait, 20*time.Second)
			if c.RefundID == "" {
				t.Fatalf("case %d in %s without a refund id", id, c.State)
			}
			if tc.ship {
				s.publish(refundflow.Command{Kind: refundflow.InputReportShipment, Platform: tc.platform, OrderID: o, SubOrderID: so,
					Shipment: &refundflow.Shipment{Company: "SF", Waybill: fmt.Sprintf("SF%010d", id)}})
			} else {
				s.publish(refundflow.Command{Kind: refundflow.InputCancel, Platform: tc.platform, OrderID: o, SubOrderID: so})
			}
			waitFor(t, 20*time.Second, tc.endpoint+" on the platform", func() bool {
				return tc.count(s.httpStats())[c.RefundID] == 1
			})
			w.stop() // killed between the call and the commit

			it, err := s.store.OpenIntent(context.Background(), id)
			if err != nil || it.Step != string(tc.step) {
				t.Fatalf("after the kill: open intent %+v, %v; want the %s intent", it, err, tc.step)
			}
			if c, _ := s.store.GetCase(context.Background(), id); c.State != string(tc.mid) {
				t.Fatalf("after the kill: state %s; want %s", c.State, tc.mid)
			}

			s.start()
			c = s.waitState(id, tc.want, 40*time.Second)
			s.agrees(c)
			st := s.httpStats()
			if n := tc.count(st)[c.RefundID]; n != 1 {
				t.Errorf("%s calls for refund %s = %d; want exactly 1", tc.endpoint, c.RefundID, n)
			}
			if st.DuplicateSubmissions != 0 {
				t.Errorf("duplicate_submissions = %d; want 0", st.DuplicateSubmissions)
			}
			for k, n := range st.RefundSubmissions {
				if n != 1 {
					t.Errorf("refund submissions %s = %d; want 1", k, n)
				}
			}
			attempts := s.stepsOf(id, tc.step)
			for _, sa := range attempts {
				if sa.Status != casestore.StepDone {
					t.Errorf("%s attempt %+v; want done", tc.step, sa)
				}
			}
			if len(attempts) != 1 {
				t.Errorf("%d %s attempts recorded; want 1", len(attempts), tc.step)
				s.dump()
			}
		})
	}
}
