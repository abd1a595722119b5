package sandbox

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// seed creates a refund through POST /_sandbox/refunds and fails the test on an error.
func (e *testEnv) seed(s RefundSeed) Refund {
	e.t.Helper()
	var r Refund
	e.adminOK(http.MethodPost, "/_sandbox/refunds", s, &r)
	return r
}

// callbackSubjects counts the recorded callbacks per subject (refund or order id).
func (e *testEnv) callbackSubjects() map[string]int {
	e.t.Helper()
	var v struct {
		Callbacks []CallbackRecord `json:"callbacks"`
	}
	e.adminOK(http.MethodGet, "/_sandbox/callbacks", nil, &v)
	out := map[string]int{}
	for _, c := range v.Callbacks {
		out[c.Subject]++
	}
	return out
}

// TestSeededTaobaoRefundActsLikeAnAPIRefund: for every status, a seeded
// refund and one driven there through the API (same form) answer a later
// submission, the render, the query and the list the same way; the seeded
// one counts no submission and pushes nothing.
func TestSeededTaobaoRefundActsLikeAnAPIRefund(t *testing.T) {
	v2 := mustProfile(t, v2Render) // the render with saleFlag
	e := newEnv(t, func(c *Config) { c.Profile = v2 })
	again := func(sub string) submitRefundReq {
		return submitRefundReq{SubOrderID: sub, RefundType: 1, GoodsStatus: 3, ReasonID: 3003, RefundFee: 100}
	}
	for _, status := range refundStatuses[PlatformTaobao] {
		t.Run(status, func(t *testing.T) {
			twin := e.refund(e.tbRefundIn(status))
			sub := e.s.randDigits(19)
			seeded := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: sub, Status: status,
				RefundType: 2, GoodsStatus: 3, ReasonID: 4001, RefundFee: 5000})
			if seeded.Status != status || seeded.RefundFee != 5000 || len(seeded.RefundID) != 19 {
				t.Fatalf("seeded %+v; want status %s, fee 5000, a 19-digit id", seeded, status)
			}
			if n := e.s.Stats().RefundSubmissions["taobao:"+sub]; n != 0 {
				t.Errorf("refund_submissions for the seeded sub-order = %d; want 0", n)
			}
			if n := e.callbackSubjects()[seeded.RefundID]; n != 0 {
				t.Errorf("callbacks for the seeded refund = %d; want 0", n)
			}

			// Query and list see the same refund.
			var tq, sq queryRefundResp
			e.mustOK(http.MethodGet, paths.TaobaoQuery+"?refundId="+twin.RefundID, nil, &tq)
			e.mustOK(http.MethodGet, paths.TaobaoQuery+"?refundId="+seeded.RefundID, nil, &sq)
			tro, sro := tq.RefundOrderAggregate.RefundOrder, sq.RefundOrderAggregate.RefundOrder
			if sro.status() != tro.status() || sro.CanEditFee != tro.CanEditFee || sro.TimeoutType != tro.TimeoutType ||
				sro.RefundFee != tro.RefundFee || (sq.RefundOrderAggregate.Logistics == nil) != (tq.RefundOrderAggregate.Logistics == nil) {
				t.Errorf("query seeded %+v\nwant as through the API %+v", sq.RefundOrderAggregate, tq.RefundOrderAggregate)
			}
			var list listRefundsResp
			e.mustOK(http.MethodPost, paths.TaobaoList, listRefundsReq{RefundID: seeded.RefundID, PageSize: 10}, &list)
			if list.Total != 1 || list.List[0].RefundOrder.status() != status {
				t.Errorf("list by the seeded id: %+v", list)
			}

			// The render and a new submission are answered the same.
			var tr, sr renderResp
			e.mustOK(http.MethodPost, e.paths.TaobaoRender, renderReq{SubOrderID: twin.SubOrderID, RefundType: 1, GoodsStatus: 3}, &tr)
			e.mustOK(http.MethodPost, e.paths.TaobaoRender, renderReq{SubOrderID: sub, RefundType: 1, GoodsStatus: 3}, &sr)
			if *sr.SaleFlag != *tr.SaleFlag || sr.RefundOrderTemplate.MaxRefundFee.MaxRefundFee != tr.RefundOrderTemplate.MaxRefundFee.MaxRefundFee {
				t.Errorf("render after seeding: saleFlag %v max %d; through the API: %v %d", *sr.SaleFlag,
					sr.RefundOrderTemplate.MaxRefundFee.MaxRefundFee, *tr.SaleFlag, tr.RefundOrderTemplate.MaxRefundFee.MaxRefundFee)
			}
			before := e.s.Stats().DuplicateSubmissions
			twinCode := e.call(http.MethodPost, paths.TaobaoSubmit, again(twin.SubOrderID)).Code
			dupTwin := e.s.Stats().DuplicateSubmissions - before
			seededCode := e.call(http.MethodPost, paths.TaobaoSubmit, again(sub)).Code
			dupSeeded := e.s.Stats().DuplicateSubmissions - before - dupTwin
			if seededCode != twinCode || dupSeeded != dupTwin {
				t.Errorf("submit after a seeded %s: code %d (duplicates +%d); after one through the API: %d (+%d)",
					status, seededCode, dupSeeded, twinCode, dupTwin)
			}
			wantCode := codeDuplicate
			if terminalStatus(status) {
				wantCode = codeOK
			}
			if seededCode != wantCode {
				t.Errorf("submit after a seeded %s: code %d; want %d", status, seededCode, wantCode)
			}
			if n := e.s.Stats().RefundSubmissions["taobao:"+sub]; n != 1 {
				t.Errorf("refund_submissions for the seeded sub-order = %d; want 1 (the API submission only)", n)
			}
		})
	}
}

// TestSeededAlibabaRefundActsLikeAnAPIRefund is the 1688 counterpart: A1
// and a new creation see the seeded refund as one made through the API.
func TestSeededAlibabaRefundActsLikeAnAPIRefund(t *testing.T) {
	e := newEnv(t, nil)
	for _, status := range refundStatuses[Platform1688] {
		t.Run(status, func(t *testing.T) {
			twin := e.refund(e.abRefundIn(status))
			order := e.s.randDigits(19)
			seeded := e.seed(RefundSeed{Platform: Platform1688, OrderID: order, Status: status,
				DisputeRequest: "returnRefund", GoodsStatus1688: "aftersaleBuyerReceived",
				ApplyReasonID: 20025, ApplyPayment: 5000})
			if seeded.Status != status || seeded.ApplyPayment != 5000 || len(seeded.RefundID) != 18 || seeded.RefundID[:2] != "TQ" {
				t.Fatalf("seeded %+v; want status %s, payment 5000, TQ + 16 digits", seeded, status)
			}
			if n := e.callbackSubjects()[seeded.RefundID]; n != 0 {
				t.Errorf("callbacks for the seeded refund = %d; want 0", n)
			}
			var ti, si refundInfoResp
			e.mustOK(http.MethodPost, paths.AlibabaRefundInfo, refundInfoReq{RefundID: twin.RefundID}, &ti)
			e.mustOK(http.MethodPost, paths.AlibabaRefundInfo, refundInfoReq{RefundID: seeded.RefundID}, &si)
			if si.Status != ti.Status || si.RefundGoods != ti.RefundGoods || si.GoodsStatus != ti.GoodsStatus ||
				si.BuyerSendGoods != ti.BuyerSendGoods || si.RefundPayment != ti.RefundPayment || si.CanRefundPayment != ti.CanRefundPayment ||
				si.DisputeType != ti.DisputeType || (si.GmtCompleted == "") != (ti.GmtCompleted == "") {
				t.Errorf("A1 seeded %+v\nwant as through the API %+v", si, ti)
			}
			before := e.s.Stats().DuplicateSubmissions
			twinOrder, _ := strconv.ParseInt(twin.OrderID, 10, 64)
			seededOrder, _ := strconv.ParseInt(order, 10, 64)
			twinCode := e.call(http.MethodPost, paths.AlibabaCreateRefund, ab(twinOrder, "refund", "refundBuyerReceived", 20025, 100, 0, "再来一次")).Code
			dupTwin := e.s.Stats().DuplicateSubmissions - before
			seededCode := e.call(http.MethodPost, paths.AlibabaCreateRefund, ab(seededOrder, "refund", "refundBuyerReceived", 20025, 100, 0, "再来一次")).Code
			dupSeeded := e.s.Stats().DuplicateSubmissions - before - dupTwin
			if seededCode != twinCode || dupSeeded != dupTwin {
				t.Errorf("create after a seeded %s: code %d (duplicates +%d); after one through the API: %d (+%d)",
					status, seededCode, dupSeeded, twinCode, dupTwin)
			}
			wantCode := codeDuplicate
			if terminalStatus(status) {
				wantCode = codeOK
			}
			if seededCode != wantCode {
				t.Errorf("create after a seeded %s: code %d; want %d", status, seededCode, wantCode)
			}
			if n := e.s.Stats().RefundSubmissions["1688:"+order]; n != 1 {
				t.Errorf("refund_submissions for the seeded order = %d; want 1 (the API submission only)", n)
			}
		})
	}
}

// TestSeededRefundCreationTime: the given creation time is what A1 reports
// (gmtCreate, gmtApply: China time, "yyyy-MM-dd HH:mm:ss") and what the
// Taobao list filters on; the Taobao refund objects carry no refund creation
// time, and purchaseOrderLine.createTime stays the order line's.
func TestSeededRefundCreationTime(t *testing.T) {
	e := newEnv(t, nil)
	created := time.Date(2026, 5, 20, 7, 40, 0, 0, time.UTC) // 15:40 in China
	modified := created.Add(26 * time.Hour)

	abRef := e.seed(RefundSeed{Platform: Platform1688, OrderID: "3305075341149134260", Status: abClose,
		CreatedAt: created, ModifiedAt: modified})
	var info refundInfoResp
	e.mustOK(http.MethodPost, paths.AlibabaRefundInfo, refundInfoReq{RefundID: abRef.RefundID}, &info)
	if info.GmtCreate != "2026-05-20 15:40:00" || info.GmtApply != "2026-05-20 15:40:00" {
		t.Errorf("A1 gmtCreate %q gmtApply %q; want 2026-05-20 15:40:00", info.GmtCreate, info.GmtApply)
	}
	if info.GmtModified != "2026-05-21 17:40:00" || info.GmtCompleted != "2026-05-21 17:40:00" {
		t.Errorf("A1 gmtModified %q gmtCompleted %q; want 2026-05-21 17:40:00 (modified_at)", info.GmtModified, info.GmtCompleted)
	}

	// A refund created through the API reports its own creation, now.
	id := e.abCreate(3305075341149134261, "refund", "refundWaitSellerSend", 20001, 100, nil)
	e.mustOK(http.MethodPost, paths.AlibabaRefundInfo, refundInfoReq{RefundID: id}, &info)
	got, err := time.ParseInLocation(time.DateTime, info.GmtCreate, time.FixedZone("CST", 8*3600))
	if err != nil || time.Since(got) > time.Minute || time.Since(got) < -time.Minute || info.GmtApply != info.GmtCreate {
		t.Errorf("A1 of an API refund: gmtCreate %q (%v) gmtApply %q; want now in China time, both equal", info.GmtCreate, err, info.GmtApply)
	}

	tb := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6400000000000000001", Status: tbWaitAgree, CreatedAt: created})
	for name, tc := range map[string]struct {
		from, to time.Time
		want     int
	}{
		"window around it": {created.Add(-time.Minute), created.Add(time.Minute), 1},
		"window after it":  {created.Add(time.Minute), time.Now(), 0},
	} {
		var list listRefundsResp
		e.mustOK(http.MethodPost, paths.TaobaoList, listRefundsReq{PageSize: 10,
			RefundStartTime: tc.from.UnixMilli(), RefundEndTime: tc.to.UnixMilli()}, &list)
		if list.Total != tc.want {
			t.Errorf("list %s: total %d; want %d", name, list.Total, tc.want)
		}
	}
	r := e.call(http.MethodGet, paths.TaobaoQuery+"?refundId="+tb.RefundID, nil)
	var raw struct {
		RefundOrderAggregate struct {
			RefundOrder       map[string]json.RawMessage `json:"refundOrder"`
			PurchaseOrderLine struct {
				CreateTime int64 `json:"createTime"`
			} `json:"purchaseOrderLine"`
		} `json:"refundOrderAggregate"`
	}
	if err := json.Unmarshal(r.Data, &raw); err != nil {
		t.Fatalf("query data %s: %v", r.Data, err)
	}
	for _, k := range []string{"createTime", "gmtCreate", "created", "createdAt"} {
		if _, ok := raw.RefundOrderAggregate.RefundOrder[k]; ok {
			t.Errorf("Taobao refundOrder has %q; the documented object has no refund creation time", k)
		}
	}
	var o Order
	e.adminOK(http.MethodGet, "/_sandbox/orders/"+tb.OrderID, nil, &o)
	if raw.RefundOrderAggregate.PurchaseOrderLine.CreateTime != o.CreatedAt.UnixMilli() {
		t.Errorf("purchaseOrderLine.createTime %d; want the order's creation %d", raw.RefundOrderAggregate.PurchaseOrderLine.CreateTime, o.CreatedAt.UnixMilli())
	}
}

func TestSeedRefundPushCallbackAndSeller(t *testing.T) {
	e := newEnv(t, nil)
	r := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6500000000000000001", Status: tbWaitAgree, PushCallback: true})
	if n := e.callbackSubjects()[r.RefundID]; n != 1 {
		t.Errorf("callbacks with push_callback = %d; want 1", n)
	}
	// The seller acts on a seeded refund as on any other.
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+r.RefundID+"/actions", RefundAction{Action: "agree"}, nil)
	if got := e.refund(r.RefundID); got.Status != tbSuccess || got.RefundedAmount != DefaultOrderAmount {
		t.Errorf("after agree: %s refunded %d; want SUCCESS %d", got.Status, got.RefundedAmount, DefaultOrderAmount)
	}
	// A seeded refund waiting for the seller is decided under an automatic policy.
	e.s.SetSeller(SellerPolicy{Decision: DecisionRefuse})
	r = e.seed(RefundSeed{Platform: Platform1688, OrderID: "3600000000000000001", Status: abWaitAgree})
	e.waitStatus(r.RefundID, abWaitModify)
}

func TestSeedRefundRejects(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AutoCreate = false })
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao, OrderID: "T1",
		SubOrders: []SubOrder{{SubOrderID: "S1", Amount: 1000}, {SubOrderID: "S2", Amount: 1000}}}, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: Platform1688, OrderID: "100"}, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: Platform1688, OrderID: "101", Status: OrderWaitingForPayment}, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao, OrderID: "T2",
		SubOrders: []SubOrder{{SubOrderID: "S3"}}}, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders/T2/events", OrderEvent{Type: "cancel"}, nil)
	open := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "S1", Status: tbWaitAgree, RefundFee: 400})

	tests := []struct {
		name     string
		body     any
		status   int
		code     string
		sentinel error
	}{
		{"unknown platform", RefundSeed{Platform: "jd", Status: tbWaitAgree}, 400, AdminInvalidArgument, nil},
		{"status of the other platform", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", Status: abClose}, 400, AdminInvalidArgument, nil},
		{"no sub-order", RefundSeed{Platform: PlatformTaobao, Status: tbClosed}, 400, AdminInvalidArgument, nil},
		{"unknown sub-order", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S9", Status: tbClosed}, 404, AdminNotFound, ErrNotFound},
		{"unknown 1688 order", RefundSeed{Platform: Platform1688, OrderID: "999", Status: abClose}, 404, AdminNotFound, ErrNotFound},
		{"sub-order of another order", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", OrderID: "T2", Status: tbClosed}, 400, AdminInvalidArgument, nil},
		{"second open refund", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S1", Status: tbRefused}, 409, AdminConflict, ErrConflict},
		{"refund id taken", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", Status: tbClosed, RefundID: open.RefundID}, 409, AdminConflict, ErrConflict},
		{"bad taobao id", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", Status: tbClosed, RefundID: "TQ1"}, 400, AdminInvalidArgument, nil},
		{"bad 1688 id", RefundSeed{Platform: Platform1688, OrderID: "100", Status: abClose, RefundID: "123"}, 400, AdminInvalidArgument, nil},
		{"unpaid order", RefundSeed{Platform: Platform1688, OrderID: "101", Status: abClose}, 409, AdminIllegalState, ErrIllegalState},
		{"open on a cancelled order", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S3", Status: tbWaitAgree}, 409, AdminIllegalState, ErrIllegalState},
		{"fee above the rest", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", Status: tbSuccess, RefundFee: 1001}, 400, AdminInvalidArgument, nil},
		{"future", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", Status: tbClosed, CreatedAt: time.Now().Add(time.Hour)}, 400, AdminInvalidArgument, nil},
		{"modified before created", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", Status: tbClosed,
			CreatedAt: time.Now().Add(-time.Hour), ModifiedAt: time.Now().Add(-2 * time.Hour)}, 400, AdminInvalidArgument, nil},
		{"1688 fields on taobao", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", Status: tbClosed, ApplyPayment: 5}, 400, AdminInvalidArgument, nil},
		{"returnRefund without goods", RefundSeed{Platform: Platform1688, OrderID: "100", Status: abClose,
			DisputeRequest: "returnRefund", GoodsStatus1688: "refundWaitSellerSend"}, 400, AdminInvalidArgument, nil},
		{"reason not offered", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", Status: tbClosed, ReasonID: 4001}, 400, AdminInvalidArgument, nil},
		{"refuse reason on a closed refund", RefundSeed{Platform: PlatformTaobao, SubOrderID: "S2", Status: tbClosed, RefuseReason: "x"}, 400, AdminInvalidArgument, nil},
		{"unknown field", `{"platform":"taobao","sub_order_id":"S2","status":"CLOSED","stauts":"x"}`, 400, AdminMalformedJSON, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, raw := e.admin(http.MethodPost, "/_sandbox/refunds", tc.body)
			if st != tc.status || adminErrCode(t, raw) != tc.code {
				t.Errorf("POST /_sandbox/refunds %v: HTTP %d %s; want %d %s", tc.body, st, raw, tc.status, tc.code)
			}
			if seed, ok := tc.body.(RefundSeed); ok && tc.sentinel != nil {
				if _, err := e.s.SeedRefund(seed); !errors.Is(err, tc.sentinel) {
					t.Errorf("SeedRefund: %v; want %v", err, tc.sentinel)
				}
			}
		})
	}
	// Nothing above changed the state: S1 still holds one open refund, S2 none.
	var o Order
	e.adminOK(http.MethodGet, "/_sandbox/orders/T1", nil, &o)
	if len(o.RefundIDs) != 1 || o.RefundIDs[0] != open.RefundID {
		t.Errorf("order T1 refunds %v; want only %s", o.RefundIDs, open.RefundID)
	}
	if st := e.s.Stats(); len(st.RefundSubmissions) != 0 || st.DuplicateSubmissions != 0 {
		t.Errorf("stats moved: %+v", st)
	}
}

// TestSeededSuccessUsesItsAmount: a successful seeded refund has paid out,
// so later submissions see less left, as after a successful API refund; a
// closed one gave nothing back, so it may ask for an amount already used.
func TestSeededSuccessUsesItsAmount(t *testing.T) {
	e := newEnv(t, nil)
	e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6600000000000000001", Status: tbSuccess, RefundFee: 3000})
	e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: "6600000000000000001", Status: tbClosed, RefundFee: DefaultOrderAmount})
	var render renderResp
	e.mustOK(http.MethodPost, paths.TaobaoRender, renderReq{SubOrderID: "6600000000000000001", RefundType: 1, GoodsStatus: 1}, &render)
	if got := render.RefundOrderTemplate.MaxRefundFee.MaxRefundFee; got != DefaultOrderAmount-3000 {
		t.Errorf("max after a seeded 3000 success = %d; want %d", got, DefaultOrderAmount-3000)
	}
	r := e.call(http.MethodPost, paths.TaobaoSubmit, submitRefundReq{SubOrderID: "6600000000000000001",
		RefundType: 1, GoodsStatus: 1, ReasonID: 1001, RefundFee: DefaultOrderAmount - 3000 + 1})
	if r.Code != codeInvalid {
		t.Errorf("submit above the rest: code %d; want %d", r.Code, codeInvalid)
	}

	e.seed(RefundSeed{Platform: Platform1688, OrderID: "3700000000000000001", Status: abSuccess, ApplyPayment: DefaultOrderAmount})
	if st, raw := e.admin(http.MethodPost, "/_sandbox/refunds", RefundSeed{Platform: Platform1688, OrderID: "3700000000000000001",
		Status: abWaitAgree}); st != http.StatusConflict || adminErrCode(t, raw) != AdminIllegalState {
		t.Errorf("open seed on a fully refunded order: HTTP %d %s; want 409 illegal_state", st, raw)
	}
	var info refundInfoResp
	id := e.seed(RefundSeed{Platform: Platform1688, OrderID: "3700000000000000001", Status: abClose}).RefundID
	e.mustOK(http.MethodPost, paths.AlibabaRefundInfo, refundInfoReq{RefundID: id}, &info)
	if info.CanRefundPayment != 0 || info.ApplyPayment != DefaultOrderAmount {
		t.Errorf("closed seed on a fully refunded order: canRefundPayment %d applyPayment %d; want 0 %d",
			info.CanRefundPayment, info.ApplyPayment, DefaultOrderAmount)
	}
}
