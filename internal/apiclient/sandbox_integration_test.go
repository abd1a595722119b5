package apiclient_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/envconfig/logtest"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/sandbox"
	"github.com/refundhub/refundhub/internal/testenv/syncbuf"
)

const (
	sbKey    = "sandbox-access-key-0001"
	sbSecret = "sandbox-secret-DO-NOT-LOG-9f3a"
	sbUser   = "2100007341207"
)

// pngVoucher is a tiny image the sandbox accepts (it sniffs jpg/png).
var pngVoucher = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 64)...)

// startSandbox serves a sandbox over real loopback HTTP with Run going, and
// stops both when the test ends. The seller is manual so the tests drive
// every decision through the admin API and nothing happens on a timer.
func startSandbox(t *testing.T, mod func(*sandbox.Config)) (*sandbox.Sandbox, *httptest.Server) {
	t.Helper()
	cfg := sandbox.Config{AccessKey: sbKey, AccessSecret: sbSecret, AutoCreate: true,
		Seller: sandbox.SellerPolicy{Decision: sandbox.DecisionManual}, Seed: 42}
	if mod != nil {
		mod(&cfg)
	}
	sb, err := sandbox.New(cfg)
	if err != nil {
		t.Fatalf("sandbox.New: %v", err)
	}
	srv := httptest.NewServer(sb.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sb.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return sb, srv
}

// newClient returns a client for srv with fast retries and no rate limit.
func newClient(t *testing.T, srv *httptest.Server, mod func(*apiclient.Config)) *apiclient.Client {
	t.Helper()
	cfg := apiclient.Config{BaseURL: srv.URL, AccessKey: sbKey, AccessSecret: sbSecret, UserID: sbUser,
		RateLimit: rate.Inf, Timeout: 10 * time.Second,
		Retry: apiclient.RetryPolicy{InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond}}
	if mod != nil {
		mod(&cfg)
	}
	c, err := apiclient.New(cfg)
	if err != nil {
		t.Fatalf("apiclient.New: %v", err)
	}
	return c
}

// admin calls a /_sandbox/ endpoint and decodes the JSON answer into out (if not nil).
func admin(t *testing.T, srv *httptest.Server, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

func refundAction(t *testing.T, srv *httptest.Server, refundID, action string) {
	t.Helper()
	admin(t, srv, http.MethodPost, "/_sandbox/refunds/"+refundID+"/actions", map[string]string{"action": action}, nil)
}

func wantAPICode(t *testing.T, what string, err error, code int) *apiclient.APIError {
	t.Helper()
	var ae *apiclient.APIError
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("%s: error = %v; want *APIError code %d", what, err, code)
	}
	if ae.RequestID == "" {
		t.Errorf("%s: APIError without requestId: %+v", what, ae)
	}
	return ae
}

func TestSandboxTaobaoFlow(t *testing.T) {
	sb, srv := startSandbox(t, nil)
	c := newClient(t, srv, nil)
	ctx := context.Background()
	const sub = "1034499579120189839"

	// T2 render: return and refund of received goods.
	render, err := c.TaobaoRender(ctx, apiclient.RenderRequest{SubOrderID: sub, RefundType: platform.Default().Taobao.RefundType.ReturnAndRefund,
		GoodsStatus: platform.Default().Taobao.GoodsStatus.Received})
	if err != nil {
		t.Fatalf("TaobaoRender: %v", err)
	}
	tpl := render.Data.RefundOrderTemplate
	// saleFlag is the v2 render's (DOC-TB-RENDER-V2); the /open render of the
	// default profile has none (SEED-004).
	if render.RequestID == "" || render.DevelopID == "" || render.Data.SaleFlag != nil ||
		tpl.MaxRefundFee.MaxRefundFee <= 0 || len(tpl.RefundReasons) == 0 {
		t.Fatalf("TaobaoRender = %+v; want ids, no saleFlag (the /open render), a fee bound and reasons", render)
	}
	reason := -1
	for _, r := range tpl.RefundReasons {
		if r.Tips == "" { // no voucher needed
			reason = r.ReasonID
			break
		}
	}
	if reason < 0 {
		t.Fatalf("no reason without voucher in %+v", tpl.RefundReasons)
	}
	maxFee := tpl.MaxRefundFee.MaxRefundFee

	// T7 submit.
	submit, err := c.TaobaoSubmit(ctx, apiclient.SubmitRefundRequest{SubOrderID: sub, RefundType: platform.Default().Taobao.RefundType.ReturnAndRefund,
		GoodsStatus: platform.Default().Taobao.GoodsStatus.Received, ReasonID: reason, RefundFee: maxFee, RefundDesc: "尺码不合适"})
	if err != nil {
		t.Fatalf("TaobaoSubmit: %v", err)
	}
	refundID := string(submit.Data.RefundID)
	if !submit.Data.SubmitSuccess || refundID == "" || submit.RequestID == "" || submit.Attempts != 1 {
		t.Fatalf("TaobaoSubmit = %+v; want success, a refund id, a requestId, 1 attempt", submit)
	}
	// A second submit on the same sub-order is a duplicate: a verdict, not unknown.
	_, err = c.TaobaoSubmit(ctx, apiclient.SubmitRefundRequest{SubOrderID: sub, RefundType: platform.Default().Taobao.RefundType.ReturnAndRefund,
		GoodsStatus: platform.Default().Taobao.GoodsStatus.Received, ReasonID: reason, RefundFee: maxFee})
	if ae := wantAPICode(t, "duplicate TaobaoSubmit", err, platform.Default().Code(platform.ClassDuplicateRefund)); errors.Is(ae, apiclient.ErrRetryable) || apiclient.OutcomeUnknown(err) {
		t.Errorf("duplicate submit: retryable or unknown outcome: %v", err)
	}

	// T10 query.
	q, err := c.TaobaoQuery(ctx, refundID)
	if err != nil {
		t.Fatalf("TaobaoQuery: %v", err)
	}
	ro := q.Data.RefundOrderAggregate.RefundOrder
	if string(ro.RefundID) != refundID || ro.Phase != platform.PhaseWaitSellerAgree || ro.RefundFee != maxFee {
		t.Fatalf("TaobaoQuery refundOrder = %+v; want %s WAIT_SELLER_AGREE fee %d", ro, refundID, maxFee)
	}

	// T1 list.
	list, err := c.TaobaoList(ctx, apiclient.ListRefundsRequest{RefundID: refundID, PageNo: 1, PageSize: 10})
	if err != nil {
		t.Fatalf("TaobaoList: %v", err)
	}
	if list.Data.Total != 1 || len(list.Data.List) != 1 || list.Data.List[0].RefundOrder.Phase != platform.PhaseWaitSellerAgree {
		t.Fatalf("TaobaoList = %+v; want the one refund, WAIT_SELLER_AGREE", list.Data)
	}

	// T6 message, T8 message list.
	msg, err := c.TaobaoSubmitMessage(ctx, apiclient.SubmitMessageRequest{RefundID: refundID, RefundMessage: "请尽快处理"})
	if err != nil || !msg.Data.MessageSubmitSuccess {
		t.Fatalf("TaobaoSubmitMessage = %+v, %v", msg, err)
	}
	msgs, err := c.TaobaoListMessages(ctx, apiclient.ListMessagesRequest{RefundID: refundID, PageSize: 50})
	if err != nil {
		t.Fatalf("TaobaoListMessages: %v", err)
	}
	found := false
	for _, m := range msgs.Data.List {
		found = found || (m.Content == "请尽快处理" && m.Owner == "buyer")
	}
	if !found || msgs.Data.Total != len(msgs.Data.List) {
		t.Fatalf("TaobaoListMessages = %+v; want our buyer message", msgs.Data)
	}

	// T9 modify: lower the fee.
	mod, err := c.TaobaoModify(ctx, apiclient.ModifyRefundRequest{RefundID: refundID, RefundType: platform.Default().Taobao.RefundType.ReturnAndRefund,
		GoodsStatus: platform.Default().Taobao.GoodsStatus.Received, ReasonID: reason, RefundFee: maxFee / 2})
	if err != nil || !mod.Data.ModifySuccess {
		t.Fatalf("TaobaoModify = %+v, %v", mod, err)
	}
	if q, err = c.TaobaoQuery(ctx, refundID); err != nil || q.Data.RefundOrderAggregate.RefundOrder.RefundFee != maxFee/2 {
		t.Fatalf("after modify: query = %+v, %v; want fee %d", q.Data.RefundOrderAggregate.RefundOrder, err, maxFee/2)
	}

	// The seller requires the goods back.
	refundAction(t, srv, refundID, "require_return")

	// T3 return logistics render.
	lr, err := c.TaobaoReturnLogisticsRender(ctx, refundID)
	if err != nil {
		t.Fatalf("TaobaoReturnLogisticsRender: %v", err)
	}
	if len(lr.Data.LogisticsCompanies) == 0 || lr.Data.ReceiverAddress.DetailAddress == "" || lr.Data.RefundOrderAggregate == nil ||
		lr.Data.RefundOrderAggregate.RefundOrder.Phase != platform.PhaseWaitBuyerReturn {
		t.Fatalf("TaobaoReturnLogisticsRender = %+v; want carriers, an address and WAIT_BUYER_RETURN_GOODS", lr.Data)
	}
	carrier := lr.Data.LogisticsCompanies[0].LogisticsCompanyCode

	// T4 return logistics submit.
	ls, err := c.TaobaoReturnLogisticsSubmit(ctx, apiclient.ReturnLogisticsSubmitRequest{RefundID: refundID,
		LogisticsCompanyCode: carrier, LogisticsNo: "SF1234567890", BuyerPhone: "13900000000"})
	if err != nil || !ls.Data.SubmitSuccess {
		t.Fatalf("TaobaoReturnLogisticsSubmit = %+v, %v", ls, err)
	}
	q, err = c.TaobaoQuery(ctx, refundID)
	if err != nil {
		t.Fatalf("TaobaoQuery after return: %v", err)
	}
	agg := q.Data.RefundOrderAggregate
	if agg.RefundOrder.Phase != platform.PhaseWaitSellerReceive || agg.Logistics == nil ||
		agg.Logistics.LogisticsNo != "SF1234567890" || agg.Logistics.LogisticsCompany.LogisticsCompanyCode != carrier {
		t.Fatalf("after return submit: %+v / %+v; want WAIT_SELLER_CONFIRM_GOODS with the waybill", agg.RefundOrder, agg.Logistics)
	}
	// Cancel is no longer allowed once the goods are on their way back.
	_, err = c.TaobaoCancel(ctx, refundID)
	wantAPICode(t, "TaobaoCancel after return", err, platform.Default().Code(platform.ClassIllegalState))

	// T5 cancel on another refund (refund only, not shipped).
	const sub2 = "1034499579120189840"
	s2, err := c.TaobaoSubmit(ctx, apiclient.SubmitRefundRequest{SubOrderID: sub2, RefundType: platform.Default().Taobao.RefundType.RefundOnly,
		GoodsStatus: platform.Default().Taobao.GoodsStatus.NotShipped, ReasonID: 1001, RefundFee: 100})
	if err != nil {
		t.Fatalf("TaobaoSubmit #2: %v", err)
	}
	id2 := string(s2.Data.RefundID)
	cancel, err := c.TaobaoCancel(ctx, id2)
	if err != nil || !cancel.Data.CancelSuccess || cancel.Data.RefundOrderAggregate.RefundOrder.Phase != platform.PhaseClosed {
		t.Fatalf("TaobaoCancel = %+v, %v; want cancelSuccess and CLOSED", cancel.Data, err)
	}

	st := sb.Stats()
	if st.RefundSubmissions["taobao:"+sub] != 2 || st.DuplicateSubmissions != 1 || st.Cancels[id2] != 1 ||
		st.ReturnLogisticsSubmissions[refundID] != 1 || st.AuthFailures != 0 {
		t.Errorf("sandbox stats = %+v", st)
	}
	for _, ep := range []string{"taobao_list", "taobao_render", "taobao_return_logistics_render", "taobao_return_logistics_submit",
		"taobao_cancel", "taobao_submit_message", "taobao_submit", "taobao_list_messages", "taobao_modify", "taobao_query"} {
		if st.APICalls[ep] == 0 {
			t.Errorf("endpoint %s never reached the sandbox", ep)
		}
	}
}

func TestSandboxAlibabaFlow(t *testing.T) {
	sb, srv := startSandbox(t, nil)
	c := newClient(t, srv, nil)
	ctx := context.Background()
	const orderID = int64(3305075341149134260)

	// A2 reasons for received goods.
	reasons, err := c.AlibabaRefundReasons(ctx, apiclient.RefundReasonsRequest{OrderID: orderID,
		GoodsStatus: platform.Default().Alibaba.GoodsStatus.InSaleBuyerReceived})
	if err != nil || len(reasons.Data.Reasons) == 0 {
		t.Fatalf("AlibabaRefundReasons = %+v, %v", reasons.Data, err)
	}
	var reason apiclient.AlibabaRefundReason
	for _, r := range reasons.Data.Reasons {
		if r.NeedVoucher {
			reason = r
			break
		}
	}
	if reason.ID == 0 {
		t.Fatalf("no reason needing a voucher in %+v", reasons.Data.Reasons)
	}

	// A3 upload the voucher the reason needs.
	up, err := c.AlibabaUploadVoucher(ctx, "broken.png", bytes.NewReader(pngVoucher))
	if err != nil || up.Data.ImageRelativeURL == "" || !strings.HasPrefix(up.Data.URL(), "https://") {
		t.Fatalf("AlibabaUploadVoucher = %+v, %v", up.Data, err)
	}

	// A4 create a return-and-refund.
	created, err := c.AlibabaCreateRefund(ctx, apiclient.CreateRefundRequest{OrderID: orderID,
		DisputeRequest: platform.Default().Alibaba.DisputeRequest.ReturnRefund, ApplyPayment: 5000, ApplyCarriage: 0,
		ApplyReasonID: int64(reason.ID), Description: "收到的商品有破损", GoodsStatus: platform.Default().Alibaba.GoodsStatus.InSaleBuyerReceived,
		Vouchers: []string{up.Data.URL()}})
	if err != nil {
		t.Fatalf("AlibabaCreateRefund: %v", err)
	}
	refundID := created.Data.RefundID
	if !strings.HasPrefix(refundID, "TQ") || created.RequestID == "" {
		t.Fatalf("AlibabaCreateRefund = %+v; want a TQ id and a requestId", created)
	}

	// A1 info.
	info, err := c.AlibabaRefundInfo(ctx, refundID)
	if err != nil {
		t.Fatalf("AlibabaRefundInfo: %v", err)
	}
	if info.Data.RefundID != refundID || info.Data.Phase != platform.PhaseWaitSellerAgree ||
		info.Data.ApplyPayment != 5000 || int64(info.Data.OrderID) != orderID {
		t.Fatalf("AlibabaRefundInfo = %+v; want %s waitselleragree 5000 order %d", info.Data, refundID, orderID)
	}

	// The seller agrees; a returnRefund now waits for the goods.
	refundAction(t, srv, refundID, "agree")

	// A6 carriers, A5 goods return.
	companies, err := c.AlibabaLogisticsCompanies(ctx)
	if err != nil || len(companies.Data) == 0 || companies.Data[0].CompanyNo == "" {
		t.Fatalf("AlibabaLogisticsCompanies = %+v, %v", companies.Data, err)
	}
	ret, err := c.AlibabaGoodsReturn(ctx, apiclient.GoodsReturnRequest{RefundID: refundID,
		LogisticsCompanyNo: companies.Data[0].CompanyNo, FreightBill: "YT9876543210", Description: "已寄回"})
	if err != nil || !ret.Data.Success {
		t.Fatalf("AlibabaGoodsReturn = %+v, %v", ret.Data, err)
	}
	info, err = c.AlibabaRefundInfo(ctx, refundID)
	if err != nil || info.Data.Phase != platform.PhaseWaitSellerReceive || info.Data.FreightBill != "YT9876543210" {
		t.Fatalf("after goods return: info = %+v, %v; want waitsellerreceive with the freight bill", info.Data, err)
	}
	// A second goods return is a nested business failure (data.success false).
	_, err = c.AlibabaGoodsReturn(ctx, apiclient.GoodsReturnRequest{RefundID: refundID,
		LogisticsCompanyNo: companies.Data[0].CompanyNo, FreightBill: "YT9876543211"})
	ae := wantAPICode(t, "second AlibabaGoodsReturn", err, platform.Default().Envelope.SuccessCode)
	if !ae.Nested() || ae.NestedCode != fmt.Sprint(platform.Default().Code(platform.ClassIllegalState)) || ae.NestedMsg == "" || apiclient.OutcomeUnknown(err) {
		t.Errorf("nested error = %+v; want NestedCode %d with a message, known outcome", ae, platform.Default().Code(platform.ClassIllegalState))
	}

	st := sb.Stats()
	if st.RefundSubmissions[fmt.Sprint("1688:", orderID)] != 1 || st.ReturnLogisticsSubmissions[refundID] != 2 {
		t.Errorf("sandbox stats = %+v", st)
	}
	for _, ep := range []string{"alibaba_refund_info", "alibaba_refund_reasons", "alibaba_upload_voucher", "alibaba_create_refund",
		"alibaba_goods_return", "alibaba_logistics_companies"} {
		if st.APICalls[ep] == 0 {
			t.Errorf("endpoint %s never reached the sandbox", ep)
		}
	}
}

func TestSandboxSignatureFailures(t *testing.T) {
	sb, srv := startSandbox(t, nil)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tests := []struct {
		name string
		mod  func(*apiclient.Config)
		code int
	}{
		{"wrong secret", func(c *apiclient.Config) { c.AccessSecret = "not-the-secret-XYZ" }, platform.Default().Code(platform.ClassAuthBadSignature)},
		{"unknown key", func(c *apiclient.Config) { c.AccessKey = "nobody" }, platform.Default().Code(platform.ClassAuthUnknownKey)},
		{"expired timestamp", func(c *apiclient.Config) {
			c.Now = func() time.Time { return time.Now().Add(-20 * time.Minute) }
		}, platform.Default().Code(platform.ClassAuthExpiredTimestamp)},
		{"future timestamp", func(c *apiclient.Config) {
			c.Now = func() time.Time { return time.Now().Add(20 * time.Minute) }
		}, platform.Default().Code(platform.ClassAuthExpiredTimestamp)},
	}
	var out strings.Builder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, srv, func(cfg *apiclient.Config) { tt.mod(cfg); cfg.Logger = logger })
			_, err := c.TaobaoQuery(context.Background(), "1234567890123456789")
			ae := wantAPICode(t, tt.name, err, tt.code)
			if errors.Is(err, apiclient.ErrRetryable) || apiclient.OutcomeUnknown(err) || ae.Nested() {
				t.Errorf("auth failure must be a final, known verdict: %v", err)
			}
			fmt.Fprintf(&out, "%v\n%+v\n", err, ae)
		})
	}
	if got := sb.Stats().AuthFailures; got != int64(len(tests)) {
		t.Errorf("AuthFailures = %d; want %d (auth failures are not retried)", got, len(tests))
	}
	if all := out.String() + logs.String(); strings.Contains(all, sbSecret) || strings.Contains(all, "not-the-secret-XYZ") {
		t.Errorf("a secret appears in errors or logs:\n%s", all)
	}
}

func TestSandboxRetryRenderNotSubmit(t *testing.T) {
	sb, srv := startSandbox(t, nil)
	c := newClient(t, srv, nil)
	ctx := context.Background()

	sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_render", Kind: sandbox.ErrHTTP500, Count: 2}}})
	render, err := c.TaobaoRender(ctx, apiclient.RenderRequest{SubOrderID: "2000000000000000001",
		RefundType: platform.Default().Taobao.RefundType.RefundOnly, GoodsStatus: platform.Default().Taobao.GoodsStatus.NotShipped})
	if err != nil {
		t.Fatalf("TaobaoRender with 2 injected 500s: %v", err)
	}
	if got := sb.Stats().APICalls["taobao_render"]; got != 3 || render.Attempts != 3 {
		t.Errorf("APICalls[TaobaoRender] = %d, Attempts = %d; want 3, 3", got, render.Attempts)
	}

	sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: sandbox.ErrHTTP500, Count: 1}}})
	_, err = c.TaobaoSubmit(ctx, apiclient.SubmitRefundRequest{SubOrderID: "2000000000000000001",
		RefundType: platform.Default().Taobao.RefundType.RefundOnly, GoodsStatus: platform.Default().Taobao.GoodsStatus.NotShipped, ReasonID: 1001, RefundFee: 100})
	var he *apiclient.HTTPError
	if !errors.As(err, &he) || he.StatusCode != http.StatusInternalServerError {
		t.Fatalf("TaobaoSubmit with an injected 500: %v; want *HTTPError 500", err)
	}
	if !errors.Is(err, apiclient.ErrRetryable) || !apiclient.OutcomeUnknown(err) {
		t.Errorf("retryable = %v, OutcomeUnknown = %v; want true, true", errors.Is(err, apiclient.ErrRetryable), apiclient.OutcomeUnknown(err))
	}
	if got := sb.Stats().APICalls["taobao_submit"]; got != 1 {
		t.Errorf("APICalls[TaobaoSubmit] = %d; want 1 (never retried by the client)", got)
	}
}

// TestSandboxFaultKinds covers the other injected faults: a timeout and a
// rate-limit code on safe calls are retried to success; a lost response after
// the effect on a mutating call is reported as an unknown outcome, and the
// caller reconciles by listing instead of submitting again.
func TestSandboxFaultKinds(t *testing.T) {
	// The sandbox's timeout fault does not notice the client hanging up on a
	// POST (it never reads the body, so net/http cannot see the connection
	// close) and holds the handler, and so srv.Close, for TimeoutAfter. Keep
	// it short; the client's 1s per-attempt Timeout is what the test exercises.
	const hang = 3 * time.Second
	sb, srv := startSandbox(t, nil)
	fast := newClient(t, srv, func(cfg *apiclient.Config) { cfg.Timeout = time.Second })
	c := newClient(t, srv, nil)
	ctx := context.Background()
	var order sandbox.Order
	admin(t, srv, http.MethodPost, "/_sandbox/orders", sandbox.CreateOrderRequest{Platform: "taobao",
		OrderID: "7000000000000000001", SubOrders: []sandbox.SubOrder{{SubOrderID: "7000000000000000002", Amount: 3000}}}, &order)

	sb.SetFaults(sandbox.Faults{TimeoutAfter: hang, ForceErrors: []sandbox.ForcedError{
		{Endpoint: "taobao_render", Kind: sandbox.ErrTimeout, Count: 1},
		{Endpoint: "taobao_render", Kind: sandbox.ErrRateLimit, Count: 1},
	}})
	render, err := fast.TaobaoRender(ctx, apiclient.RenderRequest{SubOrderID: "7000000000000000002",
		RefundType: platform.Default().Taobao.RefundType.RefundOnly, GoodsStatus: platform.Default().Taobao.GoodsStatus.NotShipped})
	if err != nil || render.Attempts != 3 || render.Data.RefundOrderTemplate.MaxRefundFee.MaxRefundFee != 3000 {
		t.Fatalf("TaobaoRender after timeout + rate limit = %+v, %v; want success on attempt 3, max fee 3000", render, err)
	}

	sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_submit", Kind: sandbox.ErrReset, Count: 1, AfterEffect: true}}})
	_, err = c.TaobaoSubmit(ctx, apiclient.SubmitRefundRequest{SubOrderID: "7000000000000000002",
		RefundType: platform.Default().Taobao.RefundType.RefundOnly, GoodsStatus: platform.Default().Taobao.GoodsStatus.NotShipped, ReasonID: 1001, RefundFee: 3000})
	var te *apiclient.TransportError
	if !errors.As(err, &te) || !te.Sent || !apiclient.OutcomeUnknown(err) {
		t.Fatalf("TaobaoSubmit with reset after effect: %v; want *TransportError sent, outcome unknown", err)
	}
	// Reconcile: the refund exists although the submit failed.
	list, err := c.TaobaoList(ctx, apiclient.ListRefundsRequest{PurchaseOrderID: order.OrderID, PageSize: 10})
	if err != nil || len(list.Data.List) != 1 || list.Data.List[0].RefundOrder.Phase != platform.PhaseWaitSellerAgree {
		t.Fatalf("TaobaoList reconcile = %+v, %v; want the one refund the lost submit created", list.Data, err)
	}
	if got := sb.Stats().RefundSubmissions["taobao:7000000000000000002"]; got != 1 {
		t.Errorf("RefundSubmissions = %d; want 1", got)
	}

	// TaobaoCancel is a GET that changes state: a reset after the effect must
	// not be resent, neither by the client nor by net/http's idempotent replay.
	lostID := string(list.Data.List[0].RefundOrder.RefundID)
	sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "taobao_cancel", Kind: sandbox.ErrReset, Count: 1, AfterEffect: true}}})
	_, err = c.TaobaoCancel(ctx, lostID)
	if !errors.As(err, &te) || !apiclient.OutcomeUnknown(err) {
		t.Fatalf("TaobaoCancel with reset after effect: %v; want *TransportError, outcome unknown", err)
	}
	if st := sb.Stats(); st.APICalls["taobao_cancel"] != 1 || st.Cancels[lostID] != 1 {
		t.Errorf("TaobaoCancel calls = %d, cancels = %d; want 1, 1", st.APICalls["taobao_cancel"], st.Cancels[lostID])
	}
	q, err := c.TaobaoQuery(ctx, lostID)
	if err != nil || q.Data.RefundOrderAggregate.RefundOrder.Phase != platform.PhaseClosed {
		t.Fatalf("TaobaoQuery after the lost cancel = %+v, %v; want CLOSED", q.Data.RefundOrderAggregate.RefundOrder, err)
	}

	sb.SetFaults(sandbox.Faults{ForceErrors: []sandbox.ForcedError{{Endpoint: "alibaba_create_refund", Kind: sandbox.ErrInternal, Count: 1}}})
	_, err = c.AlibabaCreateRefund(ctx, apiclient.CreateRefundRequest{OrderID: 8000000000000000001,
		DisputeRequest: platform.Default().Alibaba.DisputeRequest.Refund, ApplyPayment: 100, ApplyReasonID: 20001, Description: "不想要了",
		GoodsStatus: platform.Default().Alibaba.GoodsStatus.InSaleWaitSellerSend})
	ae := wantAPICode(t, "AlibabaCreateRefund with internal error", err, platform.Default().Code(platform.ClassInternal))
	if !errors.Is(ae, apiclient.ErrRetryable) || !apiclient.OutcomeUnknown(err) || sb.Stats().APICalls["alibaba_create_refund"] != 1 {
		t.Errorf("internal error on create: retryable=%v unknown=%v calls=%d; want true true 1",
			errors.Is(ae, apiclient.ErrRetryable), apiclient.OutcomeUnknown(err), sb.Stats().APICalls["alibaba_create_refund"])
	}
}

func TestSandboxNumericStatusDrift(t *testing.T) {
	_, srv := startSandbox(t, func(cfg *sandbox.Config) { cfg.TaobaoNumericStatus, cfg.NumericDevelopID = true, true })
	c := newClient(t, srv, nil)
	ctx := context.Background()
	s, err := c.TaobaoSubmit(ctx, apiclient.SubmitRefundRequest{SubOrderID: "3000000000000000001",
		RefundType: platform.Default().Taobao.RefundType.RefundOnly, GoodsStatus: platform.Default().Taobao.GoodsStatus.NotShipped, ReasonID: 1001, RefundFee: 100})
	if err != nil {
		t.Fatalf("TaobaoSubmit: %v", err)
	}
	if s.DevelopID != "1021090911993463110" {
		t.Errorf("numeric developId decoded as %q; want 1021090911993463110 digit for digit", s.DevelopID)
	}
	id := string(s.Data.RefundID)
	q, err := c.TaobaoQuery(ctx, id)
	if err != nil {
		t.Fatalf("TaobaoQuery: %v", err)
	}
	ro := q.Data.RefundOrderAggregate.RefundOrder
	if ro.RefundStatus != "0" || ro.Phase != platform.PhaseWaitSellerAgree {
		t.Fatalf("numeric drift: raw %q status %q; want raw 0 normalised to WAIT_SELLER_AGREE", ro.RefundStatus, ro.Phase)
	}
	refundAction(t, srv, id, "refuse")
	q, err = c.TaobaoQuery(ctx, id)
	if err != nil || q.Data.RefundOrderAggregate.RefundOrder.Phase != platform.PhaseSellerRefused {
		t.Fatalf("after refuse: %+v, %v; want SELLER_REFUSE_BUYER", q.Data.RefundOrderAggregate.RefundOrder, err)
	}
}

// TestAClientAboveThePlatformsQuotaSlowsDownInsteadOfBeingRefused: the
// platform's quota is not documented, so the configured rate may be above
// it. Calls from many goroutines at ten times the sandbox's quota must
// learn the quota from the rate-limited answers: refused for a while, as
// it learns, not nine calls in ten for as long as they run.
func TestAClientAboveThePlatformsQuotaSlowsDownInsteadOfBeingRefused(t *testing.T) {
	sb, srv := startSandbox(t, func(c *sandbox.Config) { c.Faults = sandbox.Faults{RateQuota: 100, RateQuotaBurst: 5} })
	var logs syncbuf.Buffer
	c := newClient(t, srv, func(cfg *apiclient.Config) {
		cfg.RateLimit, cfg.RateBurst, cfg.Retry.MaxAttempts = 1000, 10, 1
		cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	})
	const want = 200
	var done, refused atomic.Int64
	var wg sync.WaitGroup
	// As many goroutines as a worker's slots: each waits for its token, so
	// many were given theirs at the rate before a cut.
	for range 32 {
		wg.Go(func() {
			for done.Load() < want {
				_, err := c.AlibabaLogisticsCompanies(context.Background())
				switch {
				case err == nil:
					done.Add(1)
				case apiclient.ErrorClass(err) == platform.ClassRateLimited:
					refused.Add(1)
				default:
					t.Errorf("call: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := sb.Stats()
	t.Logf("%d calls answered, %d refused for the quota; the client's rate is now %.0f/s", done.Load(), st.QuotaRefused, c.Rate())
	if st.QuotaRefused != refused.Load() {
		t.Fatalf("the sandbox refused %d calls for its quota, the client saw %d rate-limited", st.QuotaRefused, refused.Load())
	}
	if refused.Load() > want { // nearly nine in ten before the rate adapted
		t.Fatalf("%d calls refused for %d answered: the client went on at its configured rate, ten times the quota", refused.Load(), done.Load())
	}
	if r := c.Rate(); r >= 1000 || r < 1 {
		t.Fatalf("rate now %.1f/s; want it cut below the configured 1000/s, not below the floor of 1/s", r)
	}
	// Each cut leaves 0.7 of the rate or of what the platform took: calls
	// in flight together, or paced together, cut the rate once, so it does
	// not sink far below the quota.
	cuts := 0
	for _, l := range logtest.Parse(t, logs.String()) {
		if !strings.HasPrefix(l.Msg(), "apiclient: the platform rate-limits") {
			continue
		}
		cuts++
		// Answers paced at one rate cutting it again and again took it to
		// the floor within a second; a client starved of CPU may cut
		// below the quota, as its own take is low, but not that far.
		if to, _ := l["to_calls_per_second"].(float64); to < 10 {
			t.Errorf("a cut to %.1f/s against a quota of 100/s: answers paced at one rate cut it again and again", to)
		}
	}
	if cuts == 0 {
		t.Error("no cut was logged")
	}
}
