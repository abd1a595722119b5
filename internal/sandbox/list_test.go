package sandbox

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"
)

// manyRefundsOnOneOrder gives order LIST1 three sub-orders and, on each, two
// refunds the buyer cancelled and a third still open, plus one seeded CLOSED
// refund from last week: ten refunds on one order. It returns their ids in
// list order (creation time, then id).
func (e *testEnv) manyRefundsOnOneOrder() []string {
	e.t.Helper()
	subs := []string{"7100000000000000001", "7100000000000000002", "7100000000000000003"}
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao, OrderID: "LIST1",
		SubOrders: []SubOrder{{SubOrderID: subs[0]}, {SubOrderID: subs[1]}, {SubOrderID: subs[2]}}}, nil)
	ids := []string{e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: subs[1], Status: tbClosed,
		CreatedAt: time.Now().Add(-7 * 24 * time.Hour)}).RefundID}
	for round := range 3 {
		for _, sub := range subs {
			id := e.tbSubmit(sub, 1, 1, 1001, 100)
			if round < 2 {
				e.mustOK(http.MethodGet, fill(paths.TaobaoCancel, id), nil, nil)
			}
			ids = append(ids, id)
		}
	}
	return ids
}

// listPage calls T1 and returns the data as raw keys and decoded.
func (e *testEnv) listPage(req listRefundsReq) (map[string]json.RawMessage, listRefundsResp) {
	e.t.Helper()
	r := e.call(http.MethodPost, paths.TaobaoList, req)
	if r.Code != codeOK {
		e.t.Fatalf("list %+v: code %d (%s)", req, r.Code, r.Msg)
	}
	var raw map[string]json.RawMessage
	var page listRefundsResp
	if err := json.Unmarshal(r.Data, &raw); err != nil {
		e.t.Fatalf("list data %s: %v", r.Data, err)
	}
	if err := json.Unmarshal(r.Data, &page); err != nil {
		e.t.Fatalf("list data %s: %v", r.Data, err)
	}
	return raw, page
}

func pageIDs(p listRefundsResp) []string {
	var ids []string
	for _, a := range p.List {
		ids = append(ids, string(a.RefundOrder.RefundID))
	}
	return ids
}

// TestTaobaoListManyRefundsOnOneOrder: terminal refunds do not stop new ones,
// so one order (and one sub-order) collects refunds; T1 pages through all of
// them in creation order.
func TestTaobaoListManyRefundsOnOneOrder(t *testing.T) {
	e := newEnv(t, nil)
	want := e.manyRefundsOnOneOrder()
	var got []string
	for pageNo := 1; ; pageNo++ {
		raw, page := e.listPage(listRefundsReq{PurchaseOrderID: "LIST1", PageNo: pageNo, PageSize: 4})
		if _, ok := raw["total"]; !ok || page.Total != len(want) || page.PageSize != 4 || page.PageNo != pageNo {
			t.Fatalf("page %d: total %d pageSize %d pageNo %d; want %d, 4, %d", pageNo, page.Total, page.PageSize, page.PageNo, len(want), pageNo)
		}
		if len(page.List) == 0 {
			break
		}
		got = append(got, pageIDs(page)...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages of 4: %v; want %v", got, want)
	}
	var o Order
	e.adminOK(http.MethodGet, "/_sandbox/orders/LIST1", nil, &o)
	if len(o.RefundIDs) != len(want) {
		t.Errorf("order LIST1 has %d refunds; want %d", len(o.RefundIDs), len(want))
	}
}

func TestTaobaoListPagingFaults(t *testing.T) {
	e := newEnv(t, nil)
	want := e.manyRefundsOnOneOrder()

	t.Run("max page size", func(t *testing.T) {
		e.adminOK(http.MethodPut, "/_sandbox/faults", `{"taobao_list_max_page_size":3}`, nil)
		tests := []struct {
			pageNo, pageSize int
			wantSize         int
			wantIDs          []string
		}{
			{1, 4, 3, want[0:3]},
			{2, 4, 3, want[3:6]}, // offset (2-1)*3, not (2-1)*4
			{4, 4, 3, want[9:10]},
			{5, 4, 3, nil},
			{2, 2, 2, want[2:4]}, // below the cap: as asked
			{1, 100, 3, want[0:3]},
		}
		for _, tc := range tests {
			raw, page := e.listPage(listRefundsReq{PurchaseOrderID: "LIST1", PageNo: tc.pageNo, PageSize: tc.pageSize})
			if got := pageIDs(page); page.PageSize != tc.wantSize || !slices.Equal(got, tc.wantIDs) {
				t.Errorf("pageNo %d pageSize %d: pageSize %d list %v; want %d %v", tc.pageNo, tc.pageSize, page.PageSize, got, tc.wantSize, tc.wantIDs)
			}
			if _, ok := raw["total"]; !ok || page.Total != len(want) {
				t.Errorf("pageNo %d pageSize %d: total %d present %v; want %d", tc.pageNo, tc.pageSize, page.Total, ok, len(want))
			}
		}
	})

	t.Run("omit total", func(t *testing.T) {
		e.s.SetFaults(Faults{TaobaoListOmitTotal: true})
		for _, req := range []listRefundsReq{
			{PurchaseOrderID: "LIST1", PageSize: 4},
			{PurchaseOrderID: "nope", PageSize: 4}, // also without matches: absent, not 0
		} {
			raw, page := e.listPage(req)
			if v, ok := raw["total"]; ok {
				t.Errorf("list %+v: total %s present; want the key absent", req, v)
			}
			for _, k := range []string{"pageNo", "pageSize", "list"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("list %+v: %q missing", req, k)
				}
			}
			if req.PurchaseOrderID == "LIST1" && !slices.Equal(pageIDs(page), want[:4]) {
				t.Errorf("list %+v: %v; want %v", req, pageIDs(page), want[:4])
			}
		}
	})

	t.Run("both, and off again", func(t *testing.T) {
		var f Faults
		e.adminOK(http.MethodPut, "/_sandbox/faults", `{"taobao_list_omit_total":true,"taobao_list_max_page_size":2}`, &f)
		if !f.TaobaoListOmitTotal || f.TaobaoListMaxPageSize != 2 {
			t.Fatalf("PUT faults answered %+v", f)
		}
		raw, page := e.listPage(listRefundsReq{PurchaseOrderID: "LIST1", PageNo: 3, PageSize: 10})
		if _, ok := raw["total"]; ok || page.PageSize != 2 || !slices.Equal(pageIDs(page), want[4:6]) {
			t.Errorf("both faults, page 3: %s", mustJSON(t, raw))
		}
		e.adminOK(http.MethodPut, "/_sandbox/faults", `{}`, nil)
		raw, page = e.listPage(listRefundsReq{PurchaseOrderID: "LIST1", PageNo: 1, PageSize: 10})
		if _, ok := raw["total"]; !ok || page.Total != len(want) || page.PageSize != 10 || !slices.Equal(pageIDs(page), want) {
			t.Errorf("faults off: %s", mustJSON(t, raw))
		}
	})

	t.Run("validation", func(t *testing.T) {
		for _, body := range []string{`{"taobao_list_max_page_size":-1}`, `{"taobao_list_max_page_size":101}`} {
			if st, raw := e.admin(http.MethodPut, "/_sandbox/faults", body); st != http.StatusBadRequest {
				t.Errorf("PUT %s: HTTP %d %s; want 400", body, st, raw)
			}
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}
