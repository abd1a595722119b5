package sandbox

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestDuplicateSubmissionsCounted(t *testing.T) {
	e := newEnv(t, nil)
	// Taobao: second submit on the same sub-order while the first is open.
	id := e.tbSubmit("6100000000000000001", 2, 3, 4001, 100)
	r := e.call(http.MethodPost, paths.TaobaoSubmit, submitRefundReq{SubOrderID: "6100000000000000001",
		RefundType: 1, GoodsStatus: 3, ReasonID: 3003, RefundFee: 50})
	if r.Code != codeDuplicate {
		t.Fatalf("second submit: code %d; want %d", r.Code, codeDuplicate)
	}
	// Return logistics twice.
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "agree"}, nil)
	if r := e.tbLogistics(id); r.Code != codeOK {
		t.Fatalf("first logistics: %d %s", r.Code, r.Msg)
	}
	if r := e.tbLogistics(id); r.Code != codeIllegal {
		t.Fatalf("second logistics: code %d; want %d", r.Code, codeIllegal)
	}
	// 1688: second create on the same order, second goods return.
	ab1 := e.abCreate(3400000000000000001, "returnRefund", "refundBuyerReceived", 20025, 100, nil)
	r = e.call(http.MethodPost, paths.AlibabaCreateRefund, ab(3400000000000000001, "refund", "refundBuyerReceived", 20025, 100, 0, "再来一次"))
	if r.Code != codeDuplicate {
		t.Fatalf("second create: code %d; want %d", r.Code, codeDuplicate)
	}
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+ab1+"/actions", RefundAction{Action: "agree"}, nil)
	for i, wantOK := range []bool{true, false} {
		var gr goodsReturnResp
		e.mustOK(http.MethodPost, paths.AlibabaGoodsReturn, goodsReturnReq{RefundID: ab1, LogisticsCompanyNo: "SF",
			FreightBill: "SF1234567890"}, &gr)
		if gr.Success != wantOK || (!wantOK && gr.ErrorCode != strconv.Itoa(codeIllegal)) {
			t.Errorf("goods return %d: %+v; want success=%v", i, gr, wantOK)
		}
	}
	st := e.s.Stats()
	if st.DuplicateSubmissions != 4 {
		t.Errorf("duplicate_submissions %d; want 4", st.DuplicateSubmissions)
	}
	if st.RefundSubmissions["taobao:6100000000000000001"] != 2 || st.RefundSubmissions["1688:3400000000000000001"] != 2 {
		t.Errorf("refund_submissions %v", st.RefundSubmissions)
	}
	if st.ReturnLogisticsSubmissions[id] != 2 || st.ReturnLogisticsSubmissions[ab1] != 2 {
		t.Errorf("return_logistics_submissions %v", st.ReturnLogisticsSubmissions)
	}
	// After the open refund ends, a new one is allowed.
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "receive"}, nil)
	e.tbSubmit("6100000000000000001", 1, 3, 3003, 50)
	// And max fee shrank by the refunded amount.
	var render renderResp
	e.mustOK(http.MethodPost, paths.TaobaoRender, renderReq{SubOrderID: "6100000000000000001", RefundType: 1, GoodsStatus: 3}, &render)
	if got := render.RefundOrderTemplate.MaxRefundFee.MaxRefundFee; got != DefaultOrderAmount-100 {
		t.Errorf("max after a 100 refund = %d; want %d", got, DefaultOrderAmount-100)
	}
}

func TestTaobaoReadEndpoints(t *testing.T) {
	v2 := mustProfile(t, v2Render)
	e := newEnv(t, func(c *Config) { c.TaobaoNumericStatus = true; c.Profile = v2 })
	var render renderResp
	e.mustOK(http.MethodPost, e.paths.TaobaoRender, renderReq{SubOrderID: "6200000000000000001", RefundType: 2, GoodsStatus: 3}, &render)
	tpl := render.RefundOrderTemplate
	if render.SaleFlag == nil || !*render.SaleFlag || tpl.MaxRefundFee.MaxRefundFee != DefaultOrderAmount || tpl.MaxRefundFee.MinRefundFee != 1 ||
		!tpl.MaxRefundFee.CanEditRefundFee || len(tpl.RefundReasons) == 0 || render.Currency != "CNY" {
		t.Errorf("render %+v", render)
	}
	id := e.tbSubmit("6200000000000000001", 2, 3, tpl.RefundReasons[0].ReasonID, 100)

	// Query: numeric status.
	r := e.call(http.MethodGet, paths.TaobaoQuery+"?refundId="+id, nil)
	var raw struct {
		RefundOrderAggregate struct {
			RefundOrder map[string]json.RawMessage `json:"refundOrder"`
		} `json:"refundOrderAggregate"`
	}
	_ = json.Unmarshal(r.Data, &raw)
	if got := string(raw.RefundOrderAggregate.RefundOrder["refundStatus"]); got != "0" {
		t.Errorf("query refundStatus %s; want 0 (WAIT_SELLER_AGREE)", got)
	}
	// The same refund decodes with the wire types.
	var q queryRefundResp
	_ = json.Unmarshal(r.Data, &q)
	if string(q.RefundOrderAggregate.RefundOrder.RefundID) != id || q.RefundOrderAggregate.PurchaseOrderLine.PurchaseOrderLineID != "6200000000000000001" {
		t.Errorf("query %+v", q)
	}

	// Messages: buyer description + system note at submit, then ours.
	e.mustOK(http.MethodPost, paths.TaobaoSubmitMessage, submitMessageReq{RefundID: id, RefundMessage: "请尽快处理"}, nil)
	var msgs listMessagesResp
	e.mustOK(http.MethodPost, paths.TaobaoListMessages, listMessagesReq{RefundID: id, PageSize: 2, PageNo: 2}, &msgs)
	if msgs.Total != 3 || len(msgs.List) != 1 || msgs.List[0].Content != "请尽快处理" || msgs.List[0].Owner != "buyer" {
		t.Errorf("messages page 2: %+v", msgs)
	}

	// List filters by status (numeric) and paging.
	id2 := e.tbSubmit("6200000000000000002", 1, 1, 1001, 100)
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id2+"/actions", RefundAction{Action: "refuse"}, nil)
	three := 3
	var list listRefundsResp
	e.mustOK(http.MethodPost, paths.TaobaoList, listRefundsReq{RefundStatus: &three, PageSize: 10}, &list)
	if list.Total != 1 || string(list.List[0].RefundOrder.RefundID) != id2 || list.List[0].RefundOrder.status() != tbRefused {
		t.Errorf("list by status 3: %+v", list)
	}
	e.mustOK(http.MethodPost, paths.TaobaoList, listRefundsReq{PageSize: 1, PageNo: 2}, &list)
	if list.Total != 2 || len(list.List) != 1 {
		t.Errorf("list page 2 of 1: total %d items %d", list.Total, len(list.List))
	}
	e.mustOK(http.MethodPost, paths.TaobaoList, listRefundsReq{PageSize: 10, RefundEndTime: time.Now().Add(-time.Hour).UnixMilli()}, &list)
	if list.Total != 0 {
		t.Errorf("list ending an hour ago: %d", list.Total)
	}

	// Return logistics render only once the seller wants the goods back.
	if r := e.call(http.MethodGet, paths.TaobaoReturnLogisticsRender+"?refundId="+id, nil); r.Code != codeIllegal {
		t.Errorf("logistics render before agree: %d", r.Code)
	}
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "agree"}, nil)
	var lr returnLogisticsRenderResp
	e.mustOK(http.MethodGet, paths.TaobaoReturnLogisticsRender+"?refundId="+id, nil, &lr)
	if len(lr.LogisticsCompanies) == 0 || lr.ReceiverAddress.DetailAddress == "" {
		t.Errorf("logistics render %+v", lr)
	}
	bad := e.call(http.MethodPost, paths.TaobaoReturnLogisticsSubmit, returnLogisticsSubmitReq{RefundID: id,
		LogisticsCompanyCode: "NOPE", LogisticsNo: "SF1234567890"})
	if bad.Code != codeInvalid || e.refund(id).Status != tbWaitReturn {
		t.Errorf("unknown company: code %d status %s", bad.Code, e.refund(id).Status)
	}
	if r := e.tbLogistics(id); r.Code != codeOK {
		t.Fatalf("logistics: %d %s", r.Code, r.Msg)
	}
	e.mustOK(http.MethodGet, paths.TaobaoQuery+"?refundId="+id, nil, &q)
	lg := q.RefundOrderAggregate.Logistics
	if lg == nil || lg.LogisticsNo != "SF1234567890" || lg.LogisticsCompany.Code != "SF" {
		t.Errorf("logistics in query: %+v", lg)
	}
}

func TestAlibabaReasonsAndCompanies(t *testing.T) {
	e := newEnv(t, nil)
	var rs refundReasonsResp
	e.mustOK(http.MethodPost, paths.AlibabaRefundReasons, refundReasonsReq{OrderID: 3500000000000000001,
		GoodsStatus: "aftersaleBuyerReceived"}, &rs)
	var needs, free bool
	for _, r := range rs.Reasons {
		needs = needs || r.NeedVoucher
		free = free || !r.NeedVoucher
	}
	if !needs || !free {
		t.Errorf("reasons %+v; want some with and some without needVoucher", rs.Reasons)
	}
	// Refund info via the query-parameter variant.
	id := e.abCreate(3500000000000000001, "refund", "aftersaleBuyerReceived", 20025, 100, nil)
	var info refundInfoResp
	e.mustOK(http.MethodPost, paths.AlibabaRefundInfo+"?refundId="+id, nil, &info)
	if info.RefundID != id || info.Status != abWaitAgree || info.DisputeType != 2 || !info.GoodsReceived {
		t.Errorf("info %+v", info)
	}
	// Unknown company and bad freight bill: nested failure, state unchanged.
	e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "require_return"}, nil)
	for _, req := range []goodsReturnReq{
		{RefundID: id, LogisticsCompanyNo: "NOPE", FreightBill: "SF1234567890"},
		{RefundID: id, LogisticsCompanyNo: "SF", FreightBill: "x"},
	} {
		var gr goodsReturnResp
		e.mustOK(http.MethodPost, paths.AlibabaGoodsReturn, req, &gr)
		if gr.Success || gr.ErrorCode != strconv.Itoa(codeInvalid) {
			t.Errorf("goods return %+v: %+v; want failure 4003", req, gr)
		}
	}
	if got := e.refund(id).Status; got != abWaitSend {
		t.Errorf("status %s; want unchanged waitbuyersend", got)
	}
}

func TestTaobaoListFilters(t *testing.T) {
	e := newEnv(t, nil)
	var o1, o2 Order
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao, OrderID: "P1", OrderNo: "SO1",
		SubOrders: []SubOrder{{SubOrderID: "L1"}}}, &o1)
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao, OrderID: "P2", OrderNo: "SO2",
		SubOrders: []SubOrder{{SubOrderID: "L2"}}}, &o2)
	id1 := e.tbSubmit("L1", 1, 1, 1001, 100)
	id2 := e.tbSubmit("L2", 1, 1, 1001, 100)
	// A 1688 refund never shows up in the Taobao list.
	e.abCreate(3600000000000000001, "refund", "refundWaitSellerSend", 20001, 100, nil)
	for name, tc := range map[string]struct {
		req  listRefundsReq
		want []string
	}{
		"all":             {listRefundsReq{PageSize: 10}, []string{id1, id2}},
		"by refundId":     {listRefundsReq{PageSize: 10, RefundID: id2}, []string{id2}},
		"by purchase":     {listRefundsReq{PageSize: 10, PurchaseOrderID: "P1"}, []string{id1}},
		"by sales order":  {listRefundsReq{PageSize: 10, SalesOrderID: "SO2"}, []string{id2}},
		"by start time":   {listRefundsReq{PageSize: 10, RefundStartTime: time.Now().Add(time.Hour).UnixMilli()}, nil},
		"no match":        {listRefundsReq{PageSize: 10, RefundID: "nope"}, nil},
		"page past data":  {listRefundsReq{PageSize: 10, PageNo: 3}, nil},
		"combined filter": {listRefundsReq{PageSize: 10, PurchaseOrderID: "P1", SalesOrderID: "SO2"}, nil},
	} {
		var list listRefundsResp
		e.mustOK(http.MethodPost, paths.TaobaoList, tc.req, &list)
		var got []string
		for _, a := range list.List {
			got = append(got, string(a.RefundOrder.RefundID))
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v; want %v", name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: got %v; want %v", name, got, tc.want)
			}
		}
	}
}

func TestTaobaoModifyValidation(t *testing.T) {
	e := newEnv(t, nil)
	id := e.tbSubmit("6400000000000000001", 1, 1, 1001, 100)
	for name, req := range map[string]modifyRefundReq{
		"fee above max": {RefundID: id, RefundType: 1, GoodsStatus: 1, ReasonID: 1001, RefundFee: DefaultOrderAmount + 1},
		"bad reason":    {RefundID: id, RefundType: 1, GoodsStatus: 1, ReasonID: 4001, RefundFee: 10},
		"bad type":      {RefundID: id, RefundType: 3, GoodsStatus: 1, ReasonID: 1001, RefundFee: 10},
	} {
		r := e.call(http.MethodPost, paths.TaobaoModify, req)
		if r.Code != codeInvalid {
			t.Errorf("%s: code %d; want %d", name, r.Code, codeInvalid)
		}
	}
	if r := e.refund(id); r.RefundFee != 100 || r.ReasonID != 1001 || len(r.History) != 1 {
		t.Errorf("refund changed by rejected modifies: %+v", r)
	}
}

func TestAlibabaOrderEntries(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AutoCreate = false })
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: Platform1688, OrderID: "3700000000000000001",
		SubOrders: []SubOrder{{SubOrderID: "11", Amount: 400}, {SubOrderID: "12", Amount: 600}}}, nil)
	r := e.call(http.MethodPost, paths.AlibabaCreateRefund, `{"orderId":3700000000000000001,"orderEntryIds":[13],"disputeRequest":"refund",
		"applyPayment":100,"applyCarriage":0,"applyReasonId":20001,"description":"不想要了","goodsStatus":"refundWaitSellerSend"}`)
	if r.Code != codeInvalid {
		t.Errorf("foreign orderEntryId: code %d; want %d", r.Code, codeInvalid)
	}
	r = e.call(http.MethodPost, paths.AlibabaCreateRefund, `{"orderId":3700000000000000001,"orderEntryIds":[11],"disputeRequest":"refund",
		"applyPayment":1000,"applyCarriage":0,"applyReasonId":20001,"description":"不想要了","goodsStatus":"refundWaitSellerSend"}`)
	if r.Code != codeOK {
		t.Fatalf("create with an entry of the order: code %d %s", r.Code, r.Msg)
	}
}
