package sandbox

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
)

// Taobao: bring a refund into each state using only documented transitions.
func (e *testEnv) tbRefundIn(state string) string {
	e.t.Helper()
	sub := e.s.randDigits(19)
	refundType, goods, reason := prof.Taobao.RefundType.ReturnAndRefund, prof.Taobao.GoodsStatus.Received, 4001
	id := e.tbSubmit(sub, refundType, goods, reason, 5000)
	steps := map[string][]func(){
		tbWaitAgree: nil,
		tbRefused: {func() {
			e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "refuse", Reason: "no"}, nil)
		}},
		tbWaitReturn: {func() {
			e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "agree"}, nil)
		}},
		tbWaitConfirm: {
			func() {
				e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "agree"}, nil)
			},
			func() { e.tbLogistics(id) },
		},
		tbSuccess: {
			func() {
				e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "agree"}, nil)
			},
			func() { e.tbLogistics(id) },
			func() {
				e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "receive"}, nil)
			},
		},
		tbClosed: {func() { e.mustOK(http.MethodGet, fill(paths.TaobaoCancel, id), nil, nil) }},
	}
	for _, f := range steps[state] {
		f()
	}
	if got := e.refund(id).Status; got != state {
		e.t.Fatalf("setup: refund in %s; want %s", got, state)
	}
	return id
}

func (e *testEnv) tbLogistics(id string) apiResp {
	return e.call(http.MethodPost, paths.TaobaoReturnLogisticsSubmit, returnLogisticsSubmitReq{
		RefundID: id, LogisticsCompanyCode: "SF", LogisticsNo: "SF1234567890"})
}

// TestTaobaoTransitions drives every operation from every state and checks
// the documented transitions happen and every other combination is refused
// with the state unchanged.
func TestTaobaoTransitions(t *testing.T) {
	e := newEnv(t, nil)
	type op struct {
		name string
		do   func(id string) (code int) // returns the API code, or 200/4091 mapped from admin HTTP status
	}
	adminAction := func(action string) func(string) int {
		return func(id string) int {
			st, raw := e.admin(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: action, Reason: "不同意"})
			switch st {
			case http.StatusOK:
				return codeOK
			case http.StatusConflict:
				if c := adminErrCode(t, raw); c != AdminIllegalState {
					t.Errorf("admin %s: code %q; want %q", action, c, AdminIllegalState)
				}
				return codeIllegal
			}
			t.Fatalf("admin %s: HTTP %d %s", action, st, raw)
			return 0
		}
	}
	ops := []op{
		{"cancel", func(id string) int { return e.call(http.MethodGet, fill(paths.TaobaoCancel, id), nil).Code }},
		{"modify", func(id string) int {
			return e.call(http.MethodPost, paths.TaobaoModify, modifyRefundReq{RefundID: id, RefundType: 2,
				GoodsStatus: 3, ReasonID: 4005, RefundFee: 4000}).Code
		}},
		{"logistics", func(id string) int { return e.tbLogistics(id).Code }},
		{"agree", adminAction("agree")},
		{"refuse", adminAction("refuse")},
		{"require_return", adminAction("require_return")},
		{"receive", adminAction("receive")},
		{"close", adminAction("close")},
	}
	// want[state][op] = next state; absent = illegal.
	want := map[string]map[string]string{
		tbWaitAgree:   {"cancel": tbClosed, "modify": tbWaitAgree, "agree": tbWaitReturn, "refuse": tbRefused, "require_return": tbWaitReturn, "close": tbClosed},
		tbRefused:     {"cancel": tbClosed, "modify": tbWaitAgree, "close": tbClosed},
		tbWaitReturn:  {"cancel": tbClosed, "logistics": tbWaitConfirm, "close": tbClosed},
		tbWaitConfirm: {"receive": tbSuccess, "close": tbClosed},
		tbSuccess:     {},
		tbClosed:      {},
	}
	for state, next := range want {
		for _, o := range ops {
			t.Run(state+"/"+o.name, func(t *testing.T) {
				id := e.tbRefundIn(state)
				code := o.do(id)
				got := e.refund(id).Status
				if to, ok := next[o.name]; ok {
					if code != codeOK || got != to {
						t.Errorf("%s in %s: code %d, state %s; want 200, %s", o.name, state, code, got, to)
					}
					return
				}
				if code != codeIllegal || got != state {
					t.Errorf("%s in %s: code %d, state %s; want %d, unchanged", o.name, state, code, got, codeIllegal)
				}
			})
		}
	}
}

func TestTaobaoRefundOnlyAgreeSucceeds(t *testing.T) {
	v2 := mustProfile(t, v2Render) // the render with saleFlag
	e := newEnv(t, func(c *Config) { c.Profile = v2 })
	id := e.tbSubmit("1034499579120189839", prof.Taobao.RefundType.RefundOnly, prof.Taobao.GoodsStatus.NotShipped, 1001, 10000)
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "agree"}, nil)
	r := e.refund(id)
	if r.Status != tbSuccess || r.RefundedAmount != 10000 {
		t.Fatalf("refund-only agree: status %s refunded %d; want SUCCESS 10000", r.Status, r.RefundedAmount)
	}
	// Fully refunded: render says no after-sale and max 0; a new submit is refused.
	var render renderResp
	e.mustOK(http.MethodPost, e.paths.TaobaoRender, renderReq{SubOrderID: "1034499579120189839", RefundType: 1, GoodsStatus: 1}, &render)
	if render.SaleFlag == nil || *render.SaleFlag || render.RefundOrderTemplate.MaxRefundFee.MaxRefundFee != 0 {
		t.Errorf("render after full refund: saleFlag %v max %d; want false 0", render.SaleFlag, render.RefundOrderTemplate.MaxRefundFee.MaxRefundFee)
	}
	res := e.call(http.MethodPost, paths.TaobaoSubmit, submitRefundReq{SubOrderID: "1034499579120189839",
		RefundType: 1, GoodsStatus: 1, ReasonID: 1001, RefundFee: 1})
	if res.Code != codeIllegal {
		t.Errorf("submit after full refund: code %d; want %d", res.Code, codeIllegal)
	}
}

// 1688: bring a refund into each state.
func (e *testEnv) abRefundIn(state string) string {
	e.t.Helper()
	orderID, _ := strconv.ParseInt(e.s.randDigits(19), 10, 64)
	id := e.abCreate(orderID, "returnRefund", "aftersaleBuyerReceived", 20025, 5000, nil)
	act := func(a string) func() {
		return func() { e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: a}, nil) }
	}
	ret := func() {
		var gr goodsReturnResp
		e.mustOK(http.MethodPost, paths.AlibabaGoodsReturn, goodsReturnReq{RefundID: id,
			LogisticsCompanyNo: "ZTO", FreightBill: "7312345678901"}, &gr)
		if !gr.Success {
			e.t.Fatalf("goods return: %+v", gr)
		}
	}
	steps := map[string][]func(){
		abWaitAgree:   nil,
		abWaitModify:  {act("refuse")},
		abWaitSend:    {act("agree")},
		abWaitReceive: {act("agree"), ret},
		abSuccess:     {act("agree"), ret, act("receive")},
		abClose:       {act("close")},
	}
	for _, f := range steps[state] {
		f()
	}
	if got := e.refund(id).Status; got != state {
		e.t.Fatalf("setup: refund in %s; want %s", got, state)
	}
	return id
}

func TestAlibabaTransitions(t *testing.T) {
	e := newEnv(t, nil)
	adminAction := func(action string) func(string) int {
		return func(id string) int {
			st, raw := e.admin(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: action})
			switch st {
			case http.StatusOK:
				return codeOK
			case http.StatusConflict:
				return codeIllegal
			}
			t.Fatalf("admin %s: HTTP %d %s", action, st, raw)
			return 0
		}
	}
	goodsReturn := func(id string) int {
		r := e.call(http.MethodPost, paths.AlibabaGoodsReturn, goodsReturnReq{RefundID: id,
			LogisticsCompanyNo: "SF", FreightBill: "SF1234567890"})
		if r.Code != codeOK {
			t.Fatalf("goods return envelope code %d (%s); want 200 with nested result", r.Code, r.Msg)
		}
		var gr goodsReturnResp
		if err := json.Unmarshal(r.Data, &gr); err != nil {
			t.Fatalf("goods return data %s: %v", r.Data, err)
		}
		if gr.Success {
			return codeOK
		}
		code, _ := strconv.Atoi(gr.ErrorCode)
		if gr.ErrorInfo == "" {
			t.Errorf("goods return failure without errorInfo: %+v", gr)
		}
		return code
	}
	ops := map[string]func(string) int{
		"goods_return": goodsReturn, "agree": adminAction("agree"), "refuse": adminAction("refuse"),
		"require_return": adminAction("require_return"), "receive": adminAction("receive"), "close": adminAction("close"),
	}
	want := map[string]map[string]string{
		abWaitAgree:   {"agree": abWaitSend, "refuse": abWaitModify, "require_return": abWaitSend, "close": abClose},
		abWaitModify:  {"close": abClose},
		abWaitSend:    {"goods_return": abWaitReceive, "close": abClose},
		abWaitReceive: {"receive": abSuccess, "close": abClose},
		abSuccess:     {},
		abClose:       {},
	}
	for state, next := range want {
		for name, do := range ops {
			t.Run(state+"/"+name, func(t *testing.T) {
				id := e.abRefundIn(state)
				code := do(id)
				got := e.refund(id).Status
				if to, ok := next[name]; ok {
					if code != codeOK || got != to {
						t.Errorf("%s in %s: code %d, state %s; want 200, %s", name, state, code, got, to)
					}
					return
				}
				if code != codeIllegal || got != state {
					t.Errorf("%s in %s: code %d, state %s; want %d, unchanged", name, state, code, got, codeIllegal)
				}
			})
		}
	}
}

func TestAlibabaRefundOnlyAgreeSucceeds(t *testing.T) {
	e := newEnv(t, nil)
	id := e.abCreate(3305075341149134260, "refund", "refundWaitSellerSend", 20001, 10000, nil)
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "agree"}, nil)
	var info refundInfoResp
	e.mustOK(http.MethodPost, paths.AlibabaRefundInfo, refundInfoReq{RefundID: id}, &info)
	if info.Status != abSuccess || info.RefundPayment != 10000 || !info.OnlyRefund || info.RefundGoods {
		t.Errorf("info after agree: status %s refundPayment %d onlyRefund %v refundGoods %v; want refundsuccess 10000 true false",
			info.Status, info.RefundPayment, info.OnlyRefund, info.RefundGoods)
	}
	if info.RefundID != id || int64(info.OrderID) != 3305075341149134260 || info.ApplyPayment != 10000 || info.GmtCompleted == "" {
		t.Errorf("info fields: %+v", info)
	}
	if len(id) != 18 || id[:2] != "TQ" {
		t.Errorf("refund id %q; want TQ + 16 digits", id)
	}
}
