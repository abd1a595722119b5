package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

func mustProfile(t *testing.T, toml string) *platform.Profile {
	t.Helper()
	p, err := platform.Parse([]byte(toml), "test")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestYuanAmountsAreConvertedBothWays: a platform whose profile says its
// amounts are yuan gets fen written as two-place decimals, and its decimals
// read back as exact fen; 1688 stays in fen.
func TestYuanAmountsAreConvertedBothWays(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case pathOf(platform.TaobaoRender):
			writeBody(w, 200, env(`{"refundOrderTemplate":{"maxRefundFee":{"maxRefundFee":"12.34","minRefundFee":0.01,"refundFee":12},"refundOrder":{"refundFee":9.9}}}`))
		case pathOf(platform.AlibabaRefundInfo):
			writeBody(w, 200, env(`{"refundId":"TQ1","applyPayment":1234}`))
		default:
			writeBody(w, 200, env(`{"submitSuccess":true,"refundId":"R1"}`))
		}
	})
	cfg := testConfig(fs.URL)
	cfg.Profile = mustProfile(t, "[amounts]\ntaobao = \"yuan\"\n")
	c := newTestClient(t, cfg)
	ctx := context.Background()
	render, err := c.TaobaoRender(ctx, RenderRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := render.Data.RefundOrderTemplate.MaxRefundFee
	if m.MaxRefundFee != 1234 || m.MinRefundFee != 1 || m.RefundFee != 1200 || render.Data.RefundOrderTemplate.RefundOrder.RefundFee != 990 {
		t.Errorf("render amounts = %+v, order fee %d; want 1234, 1, 1200 and 990 fen", m, render.Data.RefundOrderTemplate.RefundOrder.RefundFee)
	}
	if _, err := c.TaobaoSubmit(ctx, SubmitRefundRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1, ReasonID: 1, RefundFee: 1205}); err != nil {
		t.Fatal(err)
	}
	reqs := fs.requests()
	var sent map[string]json.RawMessage
	if err := json.Unmarshal(reqs[len(reqs)-1].Body, &sent); err != nil || string(sent["refundFee"]) != "12.05" {
		t.Errorf("submit sent refundFee %s (%v); want 12.05", sent["refundFee"], err)
	}
	info, err := c.AlibabaRefundInfo(ctx, "TQ1")
	if err != nil || info.Data.ApplyPayment != 1234 {
		t.Errorf("1688 applyPayment = %d, %v; want 1234 fen untouched", info.Data.ApplyPayment, err)
	}
}

// TestYuanWithAFractionOfAFenIsRefused: 12.345 yuan cannot be held in fen.
func TestYuanWithAFractionOfAFenIsRefused(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeBody(w, 200, env(`{"refundOrderAggregate":{"refundOrder":{"refundFee":12.345}}}`))
	})
	cfg := testConfig(fs.URL)
	cfg.Profile = mustProfile(t, "[amounts]\ntaobao = \"yuan\"\n")
	_, err := newTestClient(t, cfg).TaobaoQuery(context.Background(), "R1")
	var de *DecodeError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "refundFee") {
		t.Errorf("error = %v; want a DecodeError naming refundFee", err)
	}
}

// TestListFollowsTheProfilesFieldNamesAndPaging: a list whose fields and
// first page differ from the guess is read under the profile's names, and
// callers still count pages from 1.
func TestListFollowsTheProfilesFieldNamesAndPaging(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeBody(w, 200, env(`{"totalCount":3,"current":0,"size":2,"records":[{"refundOrder":{"refundId":"R1","refundStatus":"CLOSED"}}]}`))
	})
	cfg := testConfig(fs.URL)
	cfg.Profile = mustProfile(t, `[taobao.list]
order_filter_field = "orderId"
page_no_field = "current"
page_size_field = "size"
first_page = 0
items_field = "records"
total_field = "totalCount"
`)
	res, err := newTestClient(t, cfg).TaobaoList(context.Background(), ListRefundsRequest{PurchaseOrderID: "O1", PageNo: 1, PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Data
	if !d.HasTotal || d.Total != 3 || d.PageNo != 1 || d.PageSize != 2 || len(d.List) != 1 || d.List[0].RefundOrder.Phase != platform.PhaseClosed {
		t.Errorf("page = %+v; want total 3, page 1 (the platform's 0), size 2, one closed refund", d)
	}
	var sent map[string]any
	if err := json.Unmarshal(fs.requests()[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	if sent["orderId"] != "O1" || sent["current"] != float64(0) || sent["size"] != float64(2) || sent["purchaseOrderId"] != nil || sent["pageNo"] != nil {
		t.Errorf("request = %v; want orderId, current 0, size 2 and none of the default names", sent)
	}
}

// TestSignatureFollowsTheProfile: seconds instead of milliseconds, another
// order of the parts and lower-case hex are all the profile's to say.
func TestSignatureFollowsTheProfile(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, env(`{}`)) })
	cfg := testConfig(fs.URL)
	cfg.Profile = mustProfile(t, `[signature]
parts = ["secret", "timestamp", "access-key"]
letter_case = "lower"
timestamp_unit = "s"
`)
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	if _, err := newTestClient(t, cfg).TaobaoQuery(context.Background(), "R1"); err != nil {
		t.Fatal(err)
	}
	h := fs.requests()[0].Header
	if got := h.Get(HeaderTimestamp); got != "1796198400" {
		t.Errorf("timestamp = %q; want seconds 1796198400", got)
	}
	want := Sign(cfg.Profile.Signature, testKey, "1796198400", h.Get(HeaderNonce), testSecret)
	if got := h.Get(HeaderSignature); got != want || strings.ToLower(got) != got {
		t.Errorf("signature = %q; want lower-case %q", got, want)
	}
	if Sign(cfg.Profile.Signature, "k", "1", "n", "s") != Sign(cfg.Profile.Signature, "k", "1", "other-nonce", "s") {
		t.Error("a nonce outside the signed parts changed the signature")
	}
}

// TestUnknownStatusHasNoPhase: a status the profile does not name is kept
// raw with no phase, so the worker parks it instead of guessing.
func TestUnknownStatusHasNoPhase(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeBody(w, 200, env(`{"refundId":"TQ1","status":"refundpending"}`))
	})
	info, err := newTestClient(t, testConfig(fs.URL)).AlibabaRefundInfo(context.Background(), "TQ1")
	if err != nil || info.Data.Phase != "" || info.Data.Status != "refundpending" {
		t.Errorf("info = %+v, %v; want raw status kept and no phase", info.Data, err)
	}
}

// TestYuanListIsConverted: a Taobao list in yuan reads as fen like every
// other answer (the list decodes through its own page reader, which once
// skipped the conversion and refused 123.45).
func TestYuanListIsConverted(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeBody(w, 200, env(`{"total":1,"list":[{"refundOrder":{"refundId":"R1","refundFee":123.45},"purchaseOrderLine":{"price":"9.90"}}]}`))
	})
	cfg := testConfig(fs.URL)
	cfg.Profile = mustProfile(t, "[amounts]\ntaobao = \"yuan\"\n")
	res, err := newTestClient(t, cfg).TaobaoList(context.Background(), ListRefundsRequest{PageSize: 10})
	if err != nil {
		t.Fatalf("TaobaoList in yuan: %v", err)
	}
	if l := res.Data.List; len(l) != 1 || l[0].RefundOrder.RefundFee != 12345 || l[0].PurchaseOrderLine.Price != 990 {
		t.Errorf("list = %+v; want 12345 and 990 fen", l)
	}
}
