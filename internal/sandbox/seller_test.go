package sandbox

import (
	"net/http"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

func TestSellerPolicies(t *testing.T) {
	tests := []struct {
		decision   string
		refundType int
		goods      int
		reason     int
		want       string
	}{
		{DecisionAgree, prof.Taobao.RefundType.RefundOnly, prof.Taobao.GoodsStatus.NotShipped, 1001, tbSuccess},
		{DecisionAgree, prof.Taobao.RefundType.ReturnAndRefund, prof.Taobao.GoodsStatus.Received, 4001, tbWaitReturn},
		{DecisionRefuse, prof.Taobao.RefundType.RefundOnly, prof.Taobao.GoodsStatus.NotShipped, 1001, tbRefused},
		{DecisionRequireReturn, prof.Taobao.RefundType.RefundOnly, prof.Taobao.GoodsStatus.Received, 3003, tbWaitReturn},
	}
	for _, tc := range tests {
		t.Run(tc.decision, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Seller = SellerPolicy{Decision: tc.decision, RefuseReason: "库存不足"} })
			id := e.tbSubmit("7000000000000000001", tc.refundType, tc.goods, tc.reason, 100)
			e.waitStatus(id, tc.want)
			if tc.decision == DecisionRefuse {
				if r := e.refund(id); r.RefuseReason != "库存不足" {
					t.Errorf("refuse reason %q; want 库存不足", r.RefuseReason)
				}
			}
		})
	}
}

// TestSellerReturnFlowAutomatic: agree -> return shipped -> received after ReceiveAfter -> success,
// with the per-order policy overriding a manual global one.
func TestSellerReturnFlowAutomatic(t *testing.T) {
	e := newEnv(t, nil) // global manual
	e.adminOK(http.MethodPost, "/_sandbox/orders", map[string]any{"platform": "1688", "order_id": "3200000000000000001",
		"amount": 9500, "carriage": 500, "seller": map[string]any{"decision": "agree", "decide_after": "10ms", "receive_after": "10ms"}}, nil)
	id := e.abCreate(3200000000000000001, "returnRefund", "refundBuyerReceived", 20025, 9500, nil)
	e.waitStatus(id, abWaitSend)
	var gr goodsReturnResp
	e.mustOK(http.MethodPost, paths.AlibabaGoodsReturn, goodsReturnReq{RefundID: id, LogisticsCompanyNo: "YTO",
		FreightBill: "YT8888888888"}, &gr)
	if !gr.Success {
		t.Fatalf("goods return: %+v", gr)
	}
	e.waitStatus(id, abSuccess)
	r := e.refund(id)
	want := []platform.Phase{platform.PhaseWaitSellerAgree, platform.PhaseWaitBuyerReturn, platform.PhaseWaitSellerReceive, platform.PhaseSuccess}
	if len(r.History) != len(want) {
		t.Fatalf("history %v; want %v", r.History, want)
	}
	for i := range want {
		if r.History[i] != want[i] {
			t.Fatalf("history %v; want %v", r.History, want)
		}
	}
	// A refund on another order still follows the manual global policy.
	other := e.abCreate(3200000000000000002, "refund", "refundWaitSellerSend", 20001, 100, nil)
	if got := e.refund(other).Status; got != abWaitAgree {
		t.Errorf("manual refund moved to %s", got)
	}
}

// TestModifyReschedules: a refused refund modified by the buyer goes back to the seller, who decides again.
func TestModifyReschedules(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Seller = SellerPolicy{Decision: DecisionRefuse} })
	id := e.tbSubmit("7100000000000000001", 1, 1, 1001, 100)
	e.waitStatus(id, tbRefused)
	e.s.SetSeller(SellerPolicy{Decision: DecisionAgree, DecideAfter: 5 * time.Millisecond})
	e.mustOK(http.MethodPost, paths.TaobaoModify, modifyRefundReq{RefundID: id, RefundType: 1, GoodsStatus: 1,
		ReasonID: 1002, RefundFee: 200}, nil)
	e.waitStatus(id, tbSuccess)
	if r := e.refund(id); r.RefundFee != 200 || r.ReasonID != 1002 {
		t.Errorf("modified refund fee %d reason %d; want 200 1002", r.RefundFee, r.ReasonID)
	}
}

// TestPutSellerDecisionOnlyKeepsDelays: PUT /_sandbox/seller changes only the
// fields its body names; the others keep their current values.
func TestPutSellerDecisionOnlyKeepsDelays(t *testing.T) {
	start := SellerPolicy{Decision: DecisionAgree, RefuseReason: "库存不足", DecideAfter: 2 * time.Second, ReceiveAfter: 3 * time.Second}
	tests := []struct {
		name string
		body string
		want SellerPolicy
	}{
		{"decision only", `{"decision":"refuse"}`,
			SellerPolicy{Decision: DecisionRefuse, RefuseReason: "库存不足", DecideAfter: 2 * time.Second, ReceiveAfter: 3 * time.Second}},
		{"one delay only", `{"decide_after":"5s"}`,
			SellerPolicy{Decision: DecisionAgree, RefuseReason: "库存不足", DecideAfter: 5 * time.Second, ReceiveAfter: 3 * time.Second}},
		{"delay set to zero", `{"receive_after":"0s"}`,
			SellerPolicy{Decision: DecisionAgree, RefuseReason: "库存不足", DecideAfter: 2 * time.Second}},
		{"null is absent", `{"decision":null,"refuse_reason":"缺货"}`,
			SellerPolicy{Decision: DecisionAgree, RefuseReason: "缺货", DecideAfter: 2 * time.Second, ReceiveAfter: 3 * time.Second}},
		{"empty body changes nothing", `{}`, start},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Seller = start })
			var got SellerPolicy
			e.adminOK(http.MethodPut, "/_sandbox/seller", tc.body, &got)
			if got != tc.want {
				t.Errorf("PUT /_sandbox/seller %s answered %+v; want %+v", tc.body, got, tc.want)
			}
			if stored := e.s.Seller(); stored != tc.want {
				t.Errorf("PUT /_sandbox/seller %s stored %+v; want %+v", tc.body, stored, tc.want)
			}
		})
	}
}

// TestPutSellerRejectedKeepsPolicy: an invalid partial update changes nothing.
func TestPutSellerRejectedKeepsPolicy(t *testing.T) {
	start := SellerPolicy{Decision: DecisionRefuse, RefuseReason: "库存不足", DecideAfter: 2 * time.Second, ReceiveAfter: 3 * time.Second}
	e := newEnv(t, func(c *Config) { c.Seller = start })
	for _, body := range []string{`{"decision":"later"}`, `{"decide_after":"-1s"}`, `{"decision":"agree","colour":"red"}`} {
		if status, raw := e.admin(http.MethodPut, "/_sandbox/seller", body); status != http.StatusBadRequest {
			t.Errorf("PUT /_sandbox/seller %s: status %d (%s); want 400", body, status, raw)
		}
		if got := e.s.Seller(); got != start {
			t.Errorf("after rejected PUT %s the policy is %+v; want %+v", body, got, start)
		}
	}
}
