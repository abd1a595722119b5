package refundflow

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
)

// fakeList serves the Taobao list (T1) over n refunds of one order, paged
// in ways the sandbox does not offer (a stale or uncounted total, pages that
// ignore pageNo): refund i is on sub-order "9"+i, the one at targetIdx on
// sub-order "555"; the page size is capped at pageCap, pages are numbered
// from base (99: pageNo ignored), and totalOf gives the total (nil: none).
func fakeList(t *testing.T, n, targetIdx, pageCap, base int, totalOf func(pageLen int) *int) *Engine {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.ListRefundsRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		size := req.PageSize
		if pageCap > 0 && size > pageCap {
			size = pageCap
		}
		start := (req.PageNo - base) * size
		if base == 99 { // a platform that ignores pageNo: every page is the first
			start = 0
		}
		var list []map[string]any
		for i := start; i < start+size && i < n; i++ {
			sub := fmt.Sprintf("9%d", i)
			if i == targetIdx {
				sub = "555"
			}
			list = append(list, map[string]any{"refundOrder": map[string]any{"refundId": fmt.Sprintf("R%d", i), "refundStatus": "WAIT_SELLER_AGREE"},
				"purchaseOrderLine": map[string]any{"purchaseOrderLineId": sub}})
		}
		data := map[string]any{"pageNo": req.PageNo, "pageSize": size, "list": list}
		if totalOf != nil {
			if tot := totalOf(len(list)); tot != nil {
				data["total"] = *tot
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"code": 200, "requestId": "x", "data": data})
	}))
	t.Cleanup(srv.Close)
	cl, err := apiclient.New(apiclient.Config{BaseURL: srv.URL, AccessKey: "k", AccessSecret: "secret-0123456789", UserID: "u",
		RateLimit: rate.Inf, Retry: apiclient.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := casestore.Open(context.Background(), filepath.Join(t.TempDir(), "x.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e, err := NewEngine(EngineConfig{Store: st, Client: cl})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestListWalkProvesCompleteness: the Taobao list walk may call a list
// complete only with proof (see listSubOrder). A stale or uncounted total,
// a missing total, a capped page size, a total the walk never reaches and
// pages that repeat each other must not make it miss the sub-order's
// refund and report the list complete (the submit would then be taken as
// absent and sent again).
func TestListWalkProvesCompleteness(t *testing.T) {
	ptr := func(v int) *int { return &v }
	for _, tc := range []struct {
		name                 string
		n, target, cap, base int
		total                func(int) *int
		wantFound, wantDone  bool
	}{
		{"capped, stale total", 45, 30, 20, 1, func(int) *int { return ptr(15) }, true, true},
		{"capped, total 0 (not counted)", 45, 30, 20, 1, func(int) *int { return ptr(0) }, true, true},
		{"capped, no total", 45, 30, 20, 1, nil, true, true},
		{"capped, right total", 45, 30, 20, 1, func(int) *int { return ptr(45) }, true, true},
		{"no cap, no total, one page", 3, 2, 0, 1, nil, true, true},
		{"no cap, no total, exact pages", 100, 99, 0, 1, nil, true, true},
		{"total says more than there is", 45, 30, 20, 1, func(int) *int { return ptr(50) }, true, false},
		{"no refund of the sub-order, capped, no total", 45, -1, 20, 1, nil, false, true},
		{"pages ignore pageNo", 45, 30, 20, 99, nil, false, false},
	} {
		e := fakeList(t, tc.n, tc.target, tc.cap, tc.base, tc.total)
		mine, complete, err := e.listSubOrder(context.Background(), "1", "555")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		found := len(mine) > 0
		if found != tc.wantFound || complete != tc.wantDone {
			t.Errorf("%s: found %v complete %v; want %v %v", tc.name, found, complete, tc.wantFound, tc.wantDone)
		}
		if complete && !found && tc.target >= 0 {
			t.Errorf("%s: complete but missed the sub-order's refund", tc.name)
		}
	}
}
