package sandbox

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestAdminOrders(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AutoCreate = false })
	var o Order
	e.adminOK(http.MethodPost, "/_sandbox/orders", `{"platform":"taobao","order_id":"T100","sub_orders":[
		{"sub_order_id":"S1","amount":3000,"post_fee":500,"title":"杯子","quantity":2},{"sub_order_id":"S2","amount":7000}],
		"carriage":500,"status":"WAITING_FOR_PAYMENT","seller":{"decision":"refuse","decide_after":"1s"}}`, &o)
	if o.Amount != 10000 || len(o.SubOrders) != 2 || o.OrderNo == "" || o.Seller.DecideAfter != time.Second || o.Status != OrderWaitingForPayment {
		t.Errorf("created %+v", o)
	}
	// Unpaid: a refund is refused.
	r := e.call(http.MethodPost, paths.TaobaoSubmit, submitRefundReq{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1, ReasonID: 1001, RefundFee: 1})
	if r.Code != codeIllegal {
		t.Errorf("refund on unpaid order: code %d; want %d", r.Code, codeIllegal)
	}
	e.adminOK(http.MethodPost, "/_sandbox/orders/T100/events", OrderEvent{Type: "pay"}, &o)
	if o.Status != OrderWaitingForSent || o.PaidAt == nil {
		t.Errorf("after pay %+v", o)
	}
	e.adminOK(http.MethodGet, "/_sandbox/orders/T100?platform=taobao", nil, &o)
	if o.OrderID != "T100" {
		t.Errorf("get order %+v", o)
	}
	tests := []struct {
		name, method, path string
		body               string
		status             int
		code               string
	}{
		{"bad platform", "POST", "/_sandbox/orders", `{"platform":"jd"}`, 400, AdminInvalidArgument},
		{"duplicate order", "POST", "/_sandbox/orders", `{"platform":"taobao","order_id":"T100"}`, 409, AdminConflict},
		{"sub-order of another order", "POST", "/_sandbox/orders", `{"platform":"taobao","sub_orders":[{"sub_order_id":"S1"}]}`, 409, AdminConflict},
		{"1688 non-numeric id", "POST", "/_sandbox/orders", `{"platform":"1688","order_id":"abc"}`, 400, AdminInvalidArgument},
		{"negative amount", "POST", "/_sandbox/orders", `{"platform":"taobao","amount":-1}`, 400, AdminInvalidArgument},
		{"bad status", "POST", "/_sandbox/orders", `{"platform":"taobao","status":"LOST"}`, 400, AdminInvalidArgument},
		{"bad seller", "POST", "/_sandbox/orders", `{"platform":"taobao","seller":{"decision":"maybe"}}`, 400, AdminInvalidArgument},
		{"unknown field", "POST", "/_sandbox/orders", `{"platform":"taobao","colour":"red"}`, 400, AdminMalformedJSON},
		{"wrong type", "POST", "/_sandbox/orders", `{"platform":1}`, 400, AdminMalformedJSON},
		{"not json", "POST", "/_sandbox/orders", `nope`, 400, AdminMalformedJSON},
		{"unknown order", "GET", "/_sandbox/orders/nope", ``, 404, AdminNotFound},
		{"pay twice", "POST", "/_sandbox/orders/T100/events", `{"type":"pay"}`, 409, AdminIllegalState},
		{"price after pay", "POST", "/_sandbox/orders/T100/events", `{"type":"price_modify","total_amount":5000}`, 409, AdminIllegalState},
		{"unknown event", "POST", "/_sandbox/orders/T100/events", `{"type":"ship"}`, 400, AdminInvalidArgument},
		{"event unknown order", "POST", "/_sandbox/orders/nope/events", `{"type":"pay"}`, 404, AdminNotFound},
		{"unknown refund", "GET", "/_sandbox/refunds/nope", ``, 404, AdminNotFound},
		{"action unknown refund", "POST", "/_sandbox/refunds/nope/actions", `{"action":"agree"}`, 404, AdminNotFound},
		{"wrong method", "DELETE", "/_sandbox/orders", ``, 405, AdminMethodNotAllowed},
		{"unknown admin path", "GET", "/_sandbox/nothing", ``, 404, AdminNotFound},
		{"bad seller put", "PUT", "/_sandbox/seller", `{"decision":"later"}`, 400, AdminInvalidArgument},
		{"negative delay", "PUT", "/_sandbox/seller", `{"decision":"agree","decide_after":"-1s"}`, 400, AdminInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			st, raw := e.admin(tc.method, tc.path, body)
			if st != tc.status {
				t.Fatalf("HTTP %d %s; want %d", st, raw, tc.status)
			}
			if code := adminErrCode(t, raw); code != tc.code {
				t.Errorf("code %q; want %q", code, tc.code)
			}
		})
	}
	// Refund action errors.
	id := e.tbSubmit("S2", 1, 1, 1001, 100)
	st, raw := e.admin(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", `{"action":"explode"}`)
	if st != 400 || adminErrCode(t, raw) != AdminInvalidArgument {
		t.Errorf("bad action: HTTP %d %s", st, raw)
	}
	// A return waybill changed on a refund without a return, or to no
	// waybill: refused, nothing changed.
	for _, tc := range []struct {
		body, code string
		status     int
	}{
		{`{"action":"change_return_waybill","waybill":"SF1234567"}`, AdminIllegalState, 409},
		{`{"action":"change_return_waybill","waybill":"x"}`, AdminInvalidArgument, 400},
		{`{"action":"change_return_waybill"}`, AdminInvalidArgument, 400},
	} {
		st, raw := e.admin(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", tc.body)
		if st != tc.status || adminErrCode(t, raw) != tc.code {
			t.Errorf("%s: HTTP %d %s; want %d %s", tc.body, st, raw, tc.status, tc.code)
		}
	}
	// Cancel an order with an open refund: refused.
	st, raw = e.admin(http.MethodPost, "/_sandbox/orders/T100/events", `{"type":"cancel"}`)
	if st != 409 {
		t.Errorf("cancel with open refund: HTTP %d %s; want 409", st, raw)
	}
}

func TestAdminSellerStatsReset(t *testing.T) {
	e := newEnv(t, nil)
	var p SellerPolicy
	e.adminOK(http.MethodPut, "/_sandbox/seller", `{"decision":"require_return","decide_after":"5ms","receive_after":"1s"}`, &p)
	if p.Decision != DecisionRequireReturn || p.DecideAfter != 5*time.Millisecond || p.ReceiveAfter != time.Second || p.RefuseReason == "" {
		t.Errorf("seller %+v", p)
	}
	var raw map[string]any
	e.adminOK(http.MethodGet, "/_sandbox/seller", nil, &raw)
	if raw["decide_after"] != "5ms" {
		t.Errorf("seller JSON %v; want decide_after \"5ms\"", raw)
	}
	id := e.tbSubmit("6300000000000000001", 1, 3, 3003, 100)
	e.waitStatus(id, tbWaitReturn)
	e.call(http.MethodPost, paths.TaobaoRender, `{`)
	var stats map[string]json.RawMessage
	e.adminOK(http.MethodGet, "/_sandbox/stats", nil, &stats)
	for _, k := range []string{"api_calls", "auth_failures", "refund_submissions", "return_logistics_submissions", "cancels", "duplicate_submissions", "callbacks"} {
		if _, ok := stats[k]; !ok {
			t.Errorf("stats lacks %q: %v", k, stats)
		}
	}
	var s Stats
	e.adminOK(http.MethodGet, "/_sandbox/stats", nil, &s)
	if s.APICalls["taobao_submit"] != 1 || s.APICalls["taobao_render"] != 1 {
		t.Errorf("api_calls %v", s.APICalls)
	}
	var health map[string]string
	e.adminOK(http.MethodGet, "/_sandbox/healthz", nil, &health)
	if health["status"] != "ok" {
		t.Errorf("healthz %v", health)
	}
	e.adminOK(http.MethodPost, "/_sandbox/reset", nil, nil)
	if st, _ := e.admin(http.MethodGet, "/_sandbox/refunds/"+id, nil); st != http.StatusNotFound {
		t.Errorf("refund after reset: HTTP %d; want 404", st)
	}
	if s := e.s.Stats(); len(s.APICalls) != 0 || len(s.RefundSubmissions) != 0 {
		t.Errorf("stats after reset %+v", s)
	}
}

func TestNewValidates(t *testing.T) {
	bad := []Config{
		{},
		{AccessKey: "k"},
		{AccessKey: "k", AccessSecret: "s", Seller: SellerPolicy{Decision: "later"}},
		{AccessKey: "k", AccessSecret: "s", Faults: Faults{ErrorRate: 2}},
		{AccessKey: "k", AccessSecret: "s", Profile: mustProfile(t, `endpoints.taobao_list.path = "/_sandbox/stats"`)},
	}
	for i, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("config %d accepted: %+v", i, c)
		}
	}
	// A custom path with {refundId} in the middle is routed.
	custom := mustProfile(t, `endpoints.taobao_query.path = "/x/{refundId}/detail"`)
	e := newEnv(t, func(c *Config) { c.Profile = custom })
	if r := e.call(http.MethodGet, "/x/123/detail", nil); r.Code != codeNotFound {
		t.Errorf("custom path: code %d (%s); want %d (routed, refund unknown)", r.Code, r.Msg, codeNotFound)
	}
	// Two endpoints on one path, told apart by method.
	shared := mustProfile(t, "endpoints.taobao_list.path = \"/refunds\"\nendpoints.taobao_query.path = \"/refunds\"")
	e = newEnv(t, func(c *Config) { c.Profile = shared })
	if r := e.call(http.MethodGet, "/refunds?refundId=1", nil); r.Code != codeNotFound {
		t.Errorf("GET /refunds: code %d (%s); want %d from TaobaoQuery", r.Code, r.Msg, codeNotFound)
	}
	if r := e.call(http.MethodPost, "/refunds", listRefundsReq{PageSize: 5}); r.Code != codeOK {
		t.Errorf("POST /refunds: code %d (%s); want 200 from TaobaoList", r.Code, r.Msg)
	}
	if r := e.call(http.MethodPut, "/refunds", nil); r.HTTPStatus != http.StatusMethodNotAllowed {
		t.Errorf("PUT /refunds: HTTP %d; want 405", r.HTTPStatus)
	}
}

// TestAutoCreatedTaobaoOrderCarriesAskedID: an order auto-created for an
// unknown Taobao sub-order is found under the id asked for. The Taobao API
// names only the sub-order, so the one-line order takes its id (as a
// one-item Taobao order's tid equals its oid); a seed that names the order
// gets that order id.
func TestAutoCreatedTaobaoOrderCarriesAskedID(t *testing.T) {
	tests := []struct {
		name      string
		create    func(e *testEnv)
		wantOrder string
		wantSub   string
	}{
		{"refund submission", func(e *testEnv) { e.tbSubmit("5001", 1, 1, 1001, 100) }, "5001", "5001"},
		{"refund render", func(e *testEnv) {
			e.mustOK(http.MethodPost, paths.TaobaoRender, renderReq{SubOrderID: "5002", RefundType: 1, GoodsStatus: 1}, nil)
		}, "5002", "5002"},
		{"seed naming the sub-order", func(e *testEnv) {
			e.adminOK(http.MethodPost, "/_sandbox/refunds", RefundSeed{Platform: PlatformTaobao, SubOrderID: "5003", Status: tbWaitAgree}, nil)
		}, "5003", "5003"},
		{"seed naming the order", func(e *testEnv) {
			e.adminOK(http.MethodPost, "/_sandbox/refunds", RefundSeed{Platform: PlatformTaobao, OrderID: "9004", SubOrderID: "5004", Status: tbWaitAgree}, nil)
		}, "9004", "5004"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tc.create(e)
			var o Order
			status, raw := e.admin(http.MethodGet, "/_sandbox/orders/"+tc.wantOrder, nil)
			if status != http.StatusOK {
				t.Fatalf("GET /_sandbox/orders/%s: status %d (%s); want 200", tc.wantOrder, status, raw)
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Fatalf("decode order %s: %v", raw, err)
			}
			if o.OrderID != tc.wantOrder || !o.AutoCreated || len(o.SubOrders) != 1 || o.SubOrders[0].SubOrderID != tc.wantSub {
				t.Errorf("GET /_sandbox/orders/%s = %+v; want auto-created order %s with the one sub-order %s", tc.wantOrder, o, tc.wantOrder, tc.wantSub)
			}
		})
	}
}

// TestAutoCreatedTaobaoOrderIDTaken: when an existing order already has the
// sub-order's id as its order id, the auto-created order still gets made
// (under a generated id) rather than failing the request.
func TestAutoCreatedTaobaoOrderIDTaken(t *testing.T) {
	e := newEnv(t, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders", `{"platform":"taobao","order_id":"5001","sub_orders":[{"sub_order_id":"S1"}]}`, nil)
	id := e.tbSubmit("5001", 1, 1, 1001, 100)
	if r := e.refund(id); r.SubOrderID != "5001" || r.OrderID == "5001" || r.OrderID == "" {
		t.Errorf("refund on sub-order 5001 whose id is a taken order id: order %q sub-order %q; want a new order holding sub-order 5001", r.OrderID, r.SubOrderID)
	}
}
