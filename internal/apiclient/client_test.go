package apiclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/time/rate"
)

const (
	testKey    = "58c0201dfdf148eca63cbf6bb5e7cf03"
	testSecret = "unit-test-secret-Zq8w"
	testUser   = "2100007341207"
)

// testNow is the fixed signing clock of the unit tests.
var testNow = time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)

// capture is one request as the fake server saw it.
type capture struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

// fakeServer answers with handle(w, r, n) where n is the 1-based number of the
// request, and records every request.
type fakeServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []capture
}

func newFakeServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) *fakeServer {
	t.Helper()
	fs := &fakeServer{}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fs.mu.Lock()
		fs.reqs = append(fs.reqs, capture{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		n := len(fs.reqs)
		fs.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		handle(w, r, n)
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *fakeServer) requests() []capture {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]capture(nil), fs.reqs...)
}

func (fs *fakeServer) count() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.reqs)
}

// env renders a success envelope around data.
func env(data string) string {
	return `{"requestId":"5b950f5f7b064dc889c1a878b5c16234","code":200,"developId":"1021090911993463110","msg":"成功","data":` + data + `}`
}

func writeBody(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// testConfig returns a fast, unlimited configuration for url.
func testConfig(url string) Config {
	return Config{
		BaseURL: url, AccessKey: testKey, AccessSecret: testSecret, UserID: testUser,
		RateLimit: rate.Inf,
		Retry:     RetryPolicy{MaxAttempts: 3, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond},
		Timeout:   5 * time.Second,
		Now:       func() time.Time { return testNow },
	}
}

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestNewValidation(t *testing.T) {
	good := testConfig("http://127.0.0.1:1")
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error
	}{
		{"no base", func(c *Config) { c.BaseURL = "" }, "BaseURL is required"},
		{"bad scheme", func(c *Config) { c.BaseURL = "ftp://x" }, "scheme"},
		{"no host", func(c *Config) { c.BaseURL = "http://" }, "host"},
		{"query", func(c *Config) { c.BaseURL = "http://x/?a=1" }, "query"},
		{"no key", func(c *Config) { c.AccessKey = "" }, "AccessKey"},
		{"no secret", func(c *Config) { c.AccessSecret = "" }, "AccessSecret"},
		{"no user", func(c *Config) { c.UserID = "" }, "UserID"},
		{"newline key", func(c *Config) { c.AccessKey = "a\nb" }, "AccessKey"},
		{"neg timeout", func(c *Config) { c.Timeout = -1 }, "Timeout"},
		{"neg rate", func(c *Config) { c.RateLimit = -1 }, "RateLimit"},
		{"neg burst", func(c *Config) { c.RateBurst = -1 }, "RateBurst"},
		{"neg floor", func(c *Config) { c.RateFloor = -1 }, "RateFloor"},
		{"neg recovery", func(c *Config) { c.RateRecovery = -time.Second }, "RateRecovery"},
		{"neg attempts", func(c *Config) { c.Retry.MaxAttempts = -1 }, "Retry"},
		{"jitter > 1", func(c *Config) { c.Retry.RandomizationFactor = 2 }, "RandomizationFactor"},
		{"multiplier < 1", func(c *Config) { c.Retry.Multiplier = 0.5 }, "Multiplier"},
		{"initial > max", func(c *Config) { c.Retry.InitialInterval = time.Hour }, "InitialInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mod(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%s) error = %v; want it to mention %q", tt.name, err, tt.want)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Fatalf("New error leaks the secret: %v", err)
			}
		})
	}

	c, err := New(Config{BaseURL: "https://www.xportcn.com/api/", AccessKey: "k", AccessSecret: "s", UserID: "u"})
	if err != nil {
		t.Fatalf("New(minimal) = %v", err)
	}
	if c.base != "https://www.xportcn.com/api" {
		t.Errorf("base = %q; want trailing slash trimmed", c.base)
	}
	if c.timeout != DefaultTimeout || c.pace.lim.Limit() != DefaultRateLimit || c.pace.lim.Burst() != DefaultRateBurst ||
		c.pace.floor != DefaultRateFloor || c.pace.recovery != DefaultRateRecovery {
		t.Errorf("defaults: timeout %v limit %v burst %d floor %v recovery %v", c.timeout, c.pace.lim.Limit(), c.pace.lim.Burst(),
			c.pace.floor, c.pace.recovery)
	}
	want := RetryPolicy{MaxAttempts: 4, InitialInterval: 200 * time.Millisecond, MaxInterval: 5 * time.Second,
		MaxElapsedTime: 30 * time.Second, Multiplier: 2, RandomizationFactor: 0.5}
	if c.retry != want {
		t.Errorf("retry defaults = %+v; want %+v", c.retry, want)
	}
	if c.profile != platform.Default() {
		t.Error("profile: want the built-in default")
	}
	if c.hc == nil || c.hc.Timeout != 0 {
		t.Errorf("default http client has a global timeout: %+v", c.hc)
	}
}

func TestSignedHeadersFreshPerAttempt(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n < 3 {
			writeBody(w, 500, "boom")
			return
		}
		writeBody(w, 200, env(`{"currency":"CNY","distributorId":1231294146025}`))
	})
	c := newTestClient(t, testConfig(fs.URL))
	req := RenderRequest{SubOrderID: "1034499579120189839", RefundType: 1, GoodsStatus: 1}
	res, err := c.TaobaoRender(context.Background(), req)
	if err != nil {
		t.Fatalf("TaobaoRender: %v", err)
	}
	if res.Attempts != 3 || res.Data.DistributorID != "1231294146025" {
		t.Fatalf("result = %+v; want 3 attempts and distributorId 1231294146025", res)
	}
	reqs := fs.requests()
	if len(reqs) != 3 {
		t.Fatalf("server saw %d requests; want 3", len(reqs))
	}
	wantTS := fmt.Sprint(testNow.UnixMilli())
	nonces := map[string]bool{}
	for i, r := range reqs {
		h := r.Header
		if r.Method != http.MethodPost || r.Path != pathOf(platform.TaobaoRender) {
			t.Errorf("attempt %d: %s %s", i, r.Method, r.Path)
		}
		if h.Get(HeaderAccessKey) != testKey || h.Get(HeaderUserID) != testUser || h.Get(HeaderTimestamp) != wantTS {
			t.Errorf("attempt %d headers: key %q user %q ts %q; want %q %q %q", i,
				h.Get(HeaderAccessKey), h.Get(HeaderUserID), h.Get(HeaderTimestamp), testKey, testUser, wantTS)
		}
		nonce := h.Get(HeaderNonce)
		if len(nonce) != NonceLength {
			t.Errorf("attempt %d nonce %q: len %d; want %d", i, nonce, len(nonce), NonceLength)
		}
		nonces[nonce] = true
		if got, want := h.Get(HeaderSignature), Sign(platform.Default().Signature, testKey, wantTS, nonce, testSecret); got != want {
			t.Errorf("attempt %d signature = %s; want %s", i, got, want)
		}
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("attempt %d Content-Type = %q", i, ct)
		}
		if string(r.Body) != `{"subOrderId":"1034499579120189839","refundType":1,"goodsStatus":1}` {
			t.Errorf("attempt %d body = %s", i, r.Body)
		}
	}
	if len(nonces) != 3 {
		t.Errorf("nonces repeated across attempts: %v", nonces)
	}
}

func TestRequestShapes(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeBody(w, 200, env(`{}`))
	})
	cfg := testConfig(fs.URL + "/api")
	c := newTestClient(t, cfg)
	ctx := context.Background()
	calls := []struct {
		name            string
		call            func() error
		method, path, q string
		body            string
	}{
		{"query", func() error { _, err := c.TaobaoQuery(ctx, "TQ 1"); return err },
			"GET", "/api/v2/taobao/order/refund/query", "refundId=TQ+1", ""},
		{"cancel", func() error { _, err := c.TaobaoCancel(ctx, "R/1"); return err },
			"GET", "/api/v2/taobao/order/refund/cancel/R/1", "", ""},
		{"logistics render", func() error { _, err := c.TaobaoReturnLogisticsRender(ctx, "R1"); return err },
			"GET", "/api/open/order/refund/logistics/render", "refundId=R1", ""},
		{"refund info", func() error { _, err := c.AlibabaRefundInfo(ctx, "TQ123"); return err },
			"POST", "/api/alibaba/refund/info", "refundId=TQ123", `{"refundId":"TQ123"}`},
		{"companies", func() error { _, err := c.AlibabaLogisticsCompanies(ctx); return err },
			"GET", "/api/alibaba/logistics/company/list", "", ""},
	}
	for i, tt := range calls {
		if err := tt.call(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		r := fs.requests()[i]
		if r.Method != tt.method || r.Path != tt.path || r.RawQuery != tt.q || string(r.Body) != tt.body {
			t.Errorf("%s: got %s %s ?%s body %q; want %s %s ?%s body %q", tt.name,
				r.Method, r.Path, r.RawQuery, r.Body, tt.method, tt.path, tt.q, tt.body)
		}
		if tt.method == "GET" && r.Header.Get("Content-Type") != "" {
			t.Errorf("%s: GET carries Content-Type %q", tt.name, r.Header.Get("Content-Type"))
		}
	}
}

func TestTypeDrift(t *testing.T) {
	tests := []struct {
		name                string
		body                string
		wantDevelop         string
		wantStatus          platform.Phase
		wantRaw             string
		wantFee             Amount
		wantAddr, wantCode  string
		wantSupplier        string
		wantPurchaseOrderID string
	}{
		{
			name: "documented v1 strings",
			body: `{"requestId":"r1","code":200,"developId":"1021090911993463110","msg":"成功","data":{"refundOrderAggregate":{
				"refundOrder":{"refundId":"R1","refundStatus":"WAIT_SELLER_AGREE","refundFee":1250},
				"purchaseOrderLine":{"supplierId":"77","purchaseOrderId":"900"},
				"logistics":{"receiverAddress":{"receiver":"Li","phone":"1","detailAddress":"Hangzhou"},"logisticsCompany":{"logisticCompanyCode":"SF","logisticsCompanyName":"顺丰"}}}}}`,
			wantDevelop: "1021090911993463110", wantStatus: platform.PhaseWaitSellerAgree, wantRaw: "WAIT_SELLER_AGREE",
			wantFee: 1250, wantAddr: "Hangzhou", wantCode: "SF", wantSupplier: "77", wantPurchaseOrderID: "900",
		},
		{
			name: "v2 numbers, code as string, developId as number",
			body: `{"requestId":"r2","code":"200","developId":1021090911993463110,"msg":"成功","data":{"refundOrderAggregate":{
				"refundOrder":{"refundId":"R1","refundStatus":1,"refundFee":"13.0"},
				"purchaseOrderLine":{"supplierId":77,"purchaseOrderId":900},
				"logistics":{"receiverAddress":"Hangzhou, Xihu","logisticsCompany":{"logisticsCompanyCode":"YTO"}}}}}`,
			wantDevelop: "1021090911993463110", wantStatus: platform.PhaseWaitBuyerReturn, wantRaw: "1",
			wantFee: 13, wantAddr: "Hangzhou, Xihu", wantCode: "YTO", wantSupplier: "77", wantPurchaseOrderID: "900",
		},
		{
			name: "lower-case status, whole decimal amount, null logistics",
			body: `{"requestId":"r3","code":200,"developId":null,"msg":null,"data":{"refundOrderAggregate":{
				"refundOrder":{"refundStatus":"success","refundFee":99.0},"logistics":null}}}`,
			wantStatus: platform.PhaseSuccess, wantRaw: "success", wantFee: 99,
		},
		{
			name:       "unknown status values keep the raw text",
			body:       `{"requestId":"r4","code":200,"data":{"refundOrderAggregate":{"refundOrder":{"refundStatus":"PARTIAL_THING"}}}}`,
			wantStatus: "", wantRaw: "PARTIAL_THING",
		},
		{
			name:       "unknown numeric status keeps the number",
			body:       `{"requestId":"r5","code":200,"data":{"refundOrderAggregate":{"refundOrder":{"refundStatus":42}}}}`,
			wantStatus: "", wantRaw: "42",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, tt.body) })
			c := newTestClient(t, testConfig(fs.URL))
			res, err := c.TaobaoQuery(context.Background(), "R1")
			if err != nil {
				t.Fatalf("TaobaoQuery: %v", err)
			}
			agg := res.Data.RefundOrderAggregate
			ro := agg.RefundOrder
			if res.DevelopID != tt.wantDevelop {
				t.Errorf("DevelopID = %q; want %q", res.DevelopID, tt.wantDevelop)
			}
			if ro.Phase != tt.wantStatus || string(ro.RefundStatus) != tt.wantRaw {
				t.Errorf("Phase = %q (raw %q); want %q (raw %q)", ro.Phase, ro.RefundStatus, tt.wantStatus, tt.wantRaw)
			}
			if ro.RefundFee != tt.wantFee {
				t.Errorf("RefundFee = %d; want %d", ro.RefundFee, tt.wantFee)
			}
			var addr, code string
			if agg.Logistics != nil {
				addr, code = agg.Logistics.ReceiverAddress.DetailAddress, agg.Logistics.LogisticsCompany.LogisticsCompanyCode
			}
			if addr != tt.wantAddr || code != tt.wantCode {
				t.Errorf("address %q code %q; want %q %q", addr, code, tt.wantAddr, tt.wantCode)
			}
			if string(agg.PurchaseOrderLine.SupplierID) != tt.wantSupplier || string(agg.PurchaseOrderLine.PurchaseOrderID) != tt.wantPurchaseOrderID {
				t.Errorf("purchase line ids %q %q; want %q %q", agg.PurchaseOrderLine.SupplierID,
					agg.PurchaseOrderLine.PurchaseOrderID, tt.wantSupplier, tt.wantPurchaseOrderID)
			}
		})
	}
}

func TestStatusNormalisedEverywhere(t *testing.T) {
	order := `{"refundId":"R1","refundStatus":3}`
	bodies := map[string]string{
		pathOf(platform.TaobaoRender):                env(`{"refundOrderTemplate":{"refundOrder":` + order + `}}`),
		"/v2/taobao/order/refund/cancel/R1":          env(`{"cancelSuccess":true,"refundOrderAggregate":{"refundOrder":` + order + `}}`),
		pathOf(platform.TaobaoQuery):                 env(`{"refundOrderAggregate":{"refundOrder":` + order + `}}`),
		pathOf(platform.TaobaoList):                  env(`{"total":2,"list":[{"refundOrder":` + order + `},{"refundOrder":{"refundStatus":"closed"}}]}`),
		pathOf(platform.TaobaoReturnLogisticsRender): env(`{"refundOrderAggregate":{"refundOrder":` + order + `}}`),
	}
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, bodies[r.URL.Path]) })
	cfg := testConfig(fs.URL)
	prof, err := platform.Parse([]byte("[taobao.refund_status]\nseller_refused = { names = [\"SELLER_REFUSE_BUYER\"], code = 33 }\nwait_seller_receive = { names = [\"WAIT_SELLER_CONFIRM_GOODS\"], code = 3 }\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Profile = prof
	c := newTestClient(t, cfg)
	ctx := context.Background()
	want := platform.PhaseWaitSellerReceive // code 3 in this profile

	render, err := c.TaobaoRender(ctx, RenderRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1})
	if err != nil || render.Data.RefundOrderTemplate.RefundOrder.Phase != want {
		t.Errorf("render status = %q, %v; want %q", render.Data.RefundOrderTemplate.RefundOrder.Phase, err, want)
	}
	cancel, err := c.TaobaoCancel(ctx, "R1")
	if err != nil || cancel.Data.RefundOrderAggregate.RefundOrder.Phase != want {
		t.Errorf("cancel status = %q, %v; want %q", cancel.Data.RefundOrderAggregate.RefundOrder.Phase, err, want)
	}
	query, err := c.TaobaoQuery(ctx, "R1")
	if err != nil || query.Data.RefundOrderAggregate.RefundOrder.Phase != want {
		t.Errorf("query status = %q, %v; want %q", query.Data.RefundOrderAggregate.RefundOrder.Phase, err, want)
	}
	list, err := c.TaobaoList(ctx, ListRefundsRequest{PageSize: 10})
	if err != nil || len(list.Data.List) != 2 || list.Data.List[0].RefundOrder.Phase != want || list.Data.List[1].RefundOrder.Phase != platform.PhaseClosed {
		t.Errorf("list = %+v, %v; want phases %q, closed", list.Data.List, err, want)
	}
	lr, err := c.TaobaoReturnLogisticsRender(ctx, "R1")
	if err != nil || lr.Data.RefundOrderAggregate == nil || lr.Data.RefundOrderAggregate.RefundOrder.Phase != want {
		t.Errorf("logistics render = %+v, %v", lr.Data.RefundOrderAggregate, err)
	}
}

func TestEnvelopeCodes(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		wantCode      int
		wantRetryable bool
		wantCalls     int // TaobaoQuery is retried with MaxAttempts 3
	}{
		{"bad signature", `{"requestId":"x1","code":4013,"msg":"signature mismatch","data":null}`, platform.Default().Code(platform.ClassAuthBadSignature), false, 1},
		{"code as string", `{"requestId":"x2","code":"4012","msg":"unknown key"}`, platform.Default().Code(platform.ClassAuthUnknownKey), false, 1},
		{"code null", `{"requestId":"x3","code":null,"msg":"?"}`, 0, false, 1},
		{"code missing", `{"requestId":"x4","data":{}}`, 0, false, 1},
		{"rate limited", `{"requestId":"x5","code":4290,"msg":"slow down"}`, platform.Default().Code(platform.ClassRateLimited), true, 3},
		{"internal", `{"requestId":"x6","code":5000,"msg":"oops"}`, platform.Default().Code(platform.ClassInternal), true, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, tt.body) })
			c := newTestClient(t, testConfig(fs.URL))
			_, err := c.TaobaoQuery(context.Background(), "R1")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("TaobaoQuery error = %v (%T); want *APIError", err, err)
			}
			if ae.Code != tt.wantCode || ae.Endpoint != "taobao_query" || ae.HTTPStatus != 200 || ae.RequestID == "" {
				t.Errorf("APIError = %+v; want code %d, endpoint taobao_query, http 200, requestId set", ae, tt.wantCode)
			}
			if got := errors.Is(err, ErrRetryable); got != tt.wantRetryable {
				t.Errorf("errors.Is(err, ErrRetryable) = %v; want %v", got, tt.wantRetryable)
			}
			if fs.count() != tt.wantCalls {
				t.Errorf("server calls = %d; want %d", fs.count(), tt.wantCalls)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct{ name, body string }{
		{"empty", ""},
		{"html", "<html>gateway</html>"},
		{"array", "[]"},
		{"truncated", `{"code":200,"data":{`},
		{"code not a number", `{"code":"ok","data":{}}`},
		{"data wrong type", `{"code":200,"data":{"refundOrderAggregate":5}}`},
		{"data is string", `{"code":200,"data":"hello"}`},
		{"bad amount", `{"code":200,"data":{"refundOrderAggregate":{"refundOrder":{"refundFee":"1e999"}}}}`},
		{"fractional amount", `{"code":200,"data":{"refundOrderAggregate":{"refundOrder":{"refundFee":12.6}}}}`},
		{"fractional amount string", `{"code":200,"data":{"refundOrderAggregate":{"refundOrder":{"refundFee":"99.40"}}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, tt.body) })
			c := newTestClient(t, testConfig(fs.URL))
			_, err := c.TaobaoQuery(context.Background(), "R1")
			var de *DecodeError
			if !errors.As(err, &de) || de.Endpoint != "taobao_query" || de.HTTPStatus != 200 {
				t.Fatalf("TaobaoQuery(%q) error = %v (%T); want *DecodeError", tt.body, err, err)
			}
			if errors.Is(err, ErrRetryable) || fs.count() != 1 {
				t.Errorf("decode error retried (calls %d) or marked retryable", fs.count())
			}
			if !OutcomeUnknown(err) {
				t.Errorf("OutcomeUnknown(decode error) = false; want true")
			}
		})
	}

	t.Run("oversize", func(t *testing.T) {
		big := env(`{"currency":"` + strings.Repeat("x", 2000) + `"}`)
		fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, big) })
		cfg := testConfig(fs.URL)
		cfg.MaxResponseBytes = 1024
		c := newTestClient(t, cfg)
		_, err := c.TaobaoQuery(context.Background(), "R1")
		var de *DecodeError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "exceeds 1024 bytes") {
			t.Fatalf("oversize body error = %v; want *DecodeError about the limit", err)
		}
	})
}

func TestHTTPStatusClassification(t *testing.T) {
	tests := []struct {
		status        int
		wantRetryable bool
		wantUnknown   bool
		wantCalls     int
	}{
		{500, true, true, 3}, {502, true, true, 3}, {503, true, true, 3}, {504, true, true, 3},
		{429, true, false, 3}, {400, false, false, 1}, {404, false, false, 1}, {302, false, false, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if tt.status == 302 {
					w.Header().Set("Location", "http://example.invalid/elsewhere")
				}
				writeBody(w, tt.status, `{"requestId":"h1","code":9999,"msg":"gateway says no"}`)
			})
			c := newTestClient(t, testConfig(fs.URL))
			_, err := c.TaobaoRender(context.Background(), RenderRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1})
			var he *HTTPError
			if !errors.As(err, &he) || he.StatusCode != tt.status {
				t.Fatalf("error = %v (%T); want *HTTPError %d", err, err, tt.status)
			}
			if he.Code != 9999 || he.RequestID != "h1" || he.Msg != "gateway says no" {
				t.Errorf("HTTPError envelope fields = %+v", he)
			}
			if got := errors.Is(err, ErrRetryable); got != tt.wantRetryable {
				t.Errorf("retryable = %v; want %v", got, tt.wantRetryable)
			}
			if got := OutcomeUnknown(err); got != tt.wantUnknown {
				t.Errorf("OutcomeUnknown = %v; want %v", got, tt.wantUnknown)
			}
			if fs.count() != tt.wantCalls {
				t.Errorf("calls = %d; want %d", fs.count(), tt.wantCalls)
			}
		})
	}
}

// endpointCall invokes one client method with valid arguments.
type endpointCall struct {
	name string
	safe bool
	call func(ctx context.Context, c *Client) error
}

func allEndpoints() []endpointCall {
	return []endpointCall{
		{"taobao_list", true, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoList(ctx, ListRefundsRequest{PageSize: 10})
			return err
		}},
		{"taobao_render", true, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoRender(ctx, RenderRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1})
			return err
		}},
		{"taobao_return_logistics_render", true, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoReturnLogisticsRender(ctx, "R1")
			return err
		}},
		{"taobao_return_logistics_submit", false, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoReturnLogisticsSubmit(ctx, ReturnLogisticsSubmitRequest{RefundID: "R1", LogisticsCompanyCode: "SF", LogisticsNo: "SF1"})
			return err
		}},
		{"taobao_cancel", false, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoCancel(ctx, "R1")
			return err
		}},
		{"taobao_submit_message", false, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoSubmitMessage(ctx, SubmitMessageRequest{RefundID: "R1", RefundMessage: "hi"})
			return err
		}},
		{"taobao_submit", false, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoSubmit(ctx, SubmitRefundRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1, ReasonID: 1, RefundFee: 100})
			return err
		}},
		{"taobao_list_messages", true, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoListMessages(ctx, ListMessagesRequest{RefundID: "R1", PageSize: 10})
			return err
		}},
		{"taobao_modify", false, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoModify(ctx, ModifyRefundRequest{RefundID: "R1", RefundType: 1, GoodsStatus: 1, ReasonID: 1, RefundFee: 100})
			return err
		}},
		{"taobao_query", true, func(ctx context.Context, c *Client) error {
			_, err := c.TaobaoQuery(ctx, "R1")
			return err
		}},
		{"alibaba_refund_info", true, func(ctx context.Context, c *Client) error {
			_, err := c.AlibabaRefundInfo(ctx, "TQ1")
			return err
		}},
		{"alibaba_refund_reasons", true, func(ctx context.Context, c *Client) error {
			_, err := c.AlibabaRefundReasons(ctx, RefundReasonsRequest{OrderID: 1, GoodsStatus: platform.Default().Alibaba.GoodsStatus.InSaleWaitSellerSend})
			return err
		}},
		{"alibaba_upload_voucher", true, func(ctx context.Context, c *Client) error {
			_, err := c.AlibabaUploadVoucher(ctx, "v.png", strings.NewReader("\x89PNG\r\n\x1a\nfake"))
			return err
		}},
		{"alibaba_create_refund", false, func(ctx context.Context, c *Client) error {
			_, err := c.AlibabaCreateRefund(ctx, CreateRefundRequest{OrderID: 1, DisputeRequest: platform.Default().Alibaba.DisputeRequest.Refund,
				ApplyPayment: 100, ApplyReasonID: 1, Description: "broken", GoodsStatus: platform.Default().Alibaba.GoodsStatus.InSaleWaitSellerSend})
			return err
		}},
		{"alibaba_goods_return", false, func(ctx context.Context, c *Client) error {
			_, err := c.AlibabaGoodsReturn(ctx, GoodsReturnRequest{RefundID: "TQ1", LogisticsCompanyNo: "SF", FreightBill: "SF1"})
			return err
		}},
		{"alibaba_logistics_companies", true, func(ctx context.Context, c *Client) error {
			_, err := c.AlibabaLogisticsCompanies(ctx)
			return err
		}},
	}
}

// pathOf is an endpoint's path in the default profile.
func pathOf(e platform.Endpoint) string { return platform.Default().Endpoint(e).Path }

func TestRetryClasses(t *testing.T) {
	if got := len(allEndpoints()); got != len(platform.AllEndpoints()) {
		t.Fatalf("allEndpoints covers %d endpoints; the profile has %d", got, len(platform.AllEndpoints()))
	}
	for _, ep := range allEndpoints() {
		t.Run(ep.name, func(t *testing.T) {
			fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 500, "internal") })
			c := newTestClient(t, testConfig(fs.URL))
			err := ep.call(context.Background(), c)
			var he *HTTPError
			if !errors.As(err, &he) || he.StatusCode != 500 || he.Endpoint != ep.name {
				t.Fatalf("error = %v; want *HTTPError 500 from %s", err, ep.name)
			}
			want := 1
			if ep.safe {
				want = 3
			}
			if fs.count() != want {
				t.Errorf("%s after HTTP 500: %d calls; want %d (safe=%v)", ep.name, fs.count(), want, ep.safe)
			}
			if !errors.Is(err, ErrRetryable) || !OutcomeUnknown(err) {
				t.Errorf("retryable=%v unknown=%v; want both true", errors.Is(err, ErrRetryable), OutcomeUnknown(err))
			}
		})
	}
}

func TestRenderRetriedSubmitNot(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == pathOf(platform.TaobaoRender) && n <= 2 {
			writeBody(w, 500, "down")
			return
		}
		if r.URL.Path == pathOf(platform.TaobaoSubmit) {
			writeBody(w, 500, "down")
			return
		}
		writeBody(w, 200, env(`{"currency":"CNY"}`))
	})
	c := newTestClient(t, testConfig(fs.URL))
	ctx := context.Background()
	res, err := c.TaobaoRender(ctx, RenderRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1})
	if err != nil || res.Data.Currency != "CNY" || res.Attempts != 3 || res.RequestID == "" {
		t.Fatalf("TaobaoRender = %+v, %v; want success after 3 attempts", res, err)
	}
	_, err = c.TaobaoSubmit(ctx, SubmitRefundRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1, ReasonID: 1, RefundFee: 1})
	if err == nil || !errors.Is(err, ErrRetryable) || !OutcomeUnknown(err) {
		t.Fatalf("TaobaoSubmit error = %v; want retryable with unknown outcome", err)
	}
	if got := fs.count(); got != 4 {
		t.Errorf("server calls = %d; want 3 renders + 1 submit", got)
	}
}

func TestNestedFailures(t *testing.T) {
	tests := []struct {
		name       string
		data       string
		call       func(ctx context.Context, c *Client) error
		wantNested string
		wantMsg    string
	}{
		{"cancel false", `{"cancelSuccess":false}`, allEndpoints()[4].call, "cancelSuccess=false", "platform reported cancelSuccess false"},
		{"message false", `{"messageSubmitSuccess":false}`, allEndpoints()[5].call, "messageSubmitSuccess=false", ""},
		{"submit false", `{"submitSuccess":false}`, allEndpoints()[6].call, "submitSuccess=false", ""},
		{"modify false", `{"modifySuccess":false}`, allEndpoints()[8].call, "modifySuccess=false", ""},
		{"logistics submit false", `{"submitSuccess":false}`, allEndpoints()[3].call, "submitSuccess=false", ""},
		{"goods return false", `{"success":false,"errorCode":"ORDER_STATUS_ERROR","errorInfo":"wrong state"}`,
			allEndpoints()[14].call, "ORDER_STATUS_ERROR", "wrong state"},
		{"goods return false, no code", `{"success":false}`, allEndpoints()[14].call, "success=false", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, env(tt.data)) })
			c := newTestClient(t, testConfig(fs.URL))
			err := tt.call(context.Background(), c)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code != platform.Default().Envelope.SuccessCode || ae.NestedCode != tt.wantNested || !ae.Nested() {
				t.Fatalf("error = %v (%+v); want nested APIError %q", err, ae, tt.wantNested)
			}
			if tt.wantMsg != "" && ae.NestedMsg != tt.wantMsg {
				t.Errorf("NestedMsg = %q; want %q", ae.NestedMsg, tt.wantMsg)
			}
			if ae.RequestID != "5b950f5f7b064dc889c1a878b5c16234" || errors.Is(err, ErrRetryable) || OutcomeUnknown(err) {
				t.Errorf("APIError %+v: want requestId, not retryable, known outcome", ae)
			}
		})
	}
	// True or absent flags are success.
	for _, data := range []string{`{"cancelSuccess":true}`, `{}`, `null`, `{"cancelSuccess":null}`} {
		fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, env(data)) })
		c := newTestClient(t, testConfig(fs.URL))
		if _, err := c.TaobaoCancel(context.Background(), "R1"); err != nil {
			t.Errorf("TaobaoCancel with data %s: %v", data, err)
		}
	}
}

func TestInvalidArgumentsSendNothing(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, env(`{}`)) })
	c := newTestClient(t, testConfig(fs.URL))
	ctx := context.Background()
	calls := map[string]func() error{
		"list pageSize":  func() error { _, err := c.TaobaoList(ctx, ListRefundsRequest{}); return err },
		"render no sub":  func() error { _, err := c.TaobaoRender(ctx, RenderRequest{}); return err },
		"query empty":    func() error { _, err := c.TaobaoQuery(ctx, " "); return err },
		"cancel newline": func() error { _, err := c.TaobaoCancel(ctx, "a\nb"); return err },
		"t3 empty":       func() error { _, err := c.TaobaoReturnLogisticsRender(ctx, ""); return err },
		"t4 no waybill": func() error {
			_, err := c.TaobaoReturnLogisticsSubmit(ctx, ReturnLogisticsSubmitRequest{RefundID: "R"})
			return err
		},
		"message empty": func() error { _, err := c.TaobaoSubmitMessage(ctx, SubmitMessageRequest{RefundID: "R"}); return err },
		"submit negative": func() error {
			_, err := c.TaobaoSubmit(ctx, SubmitRefundRequest{SubOrderID: "S", RefundFee: -1})
			return err
		},
		"messages no id": func() error { _, err := c.TaobaoListMessages(ctx, ListMessagesRequest{PageSize: 1}); return err },
		"modify no id":   func() error { _, err := c.TaobaoModify(ctx, ModifyRefundRequest{}); return err },
		"info empty":     func() error { _, err := c.AlibabaRefundInfo(ctx, ""); return err },
		"reasons no order": func() error {
			_, err := c.AlibabaRefundReasons(ctx, RefundReasonsRequest{GoodsStatus: "x"})
			return err
		},
		"upload no name":  func() error { _, err := c.AlibabaUploadVoucher(ctx, "", strings.NewReader("x")); return err },
		"upload ctl name": func() error { _, err := c.AlibabaUploadVoucher(ctx, "a\r\nb.png", strings.NewReader("x")); return err },
		"upload empty":    func() error { _, err := c.AlibabaUploadVoucher(ctx, "a.png", strings.NewReader("")); return err },
		"upload nil":      func() error { _, err := c.AlibabaUploadVoucher(ctx, "a.png", nil); return err },
		"create no desc": func() error {
			_, err := c.AlibabaCreateRefund(ctx, CreateRefundRequest{OrderID: 1, DisputeRequest: "refund", GoodsStatus: "x"})
			return err
		},
		"return no bill": func() error {
			_, err := c.AlibabaGoodsReturn(ctx, GoodsReturnRequest{RefundID: "TQ1", LogisticsCompanyNo: "SF"})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: error = %v; want ErrInvalidArgument", name, err)
		}
	}
	if fs.count() != 0 {
		t.Errorf("invalid calls reached the server %d times", fs.count())
	}
	// Oversized voucher.
	cfg := testConfig(fs.URL)
	cfg.MaxVoucherBytes = 8
	small := newTestClient(t, cfg)
	if _, err := small.AlibabaUploadVoucher(ctx, "a.png", strings.NewReader("123456789")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("oversize voucher: %v; want ErrInvalidArgument", err)
	}
}

func TestUploadVoucherMultipartResent(t *testing.T) {
	file := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{7}, 3000)...)
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		f, hdr, err := r.FormFile(VoucherField)
		if err != nil {
			writeBody(w, 400, err.Error())
			return
		}
		got, _ := io.ReadAll(f)
		if !bytes.Equal(got, file) || hdr.Filename != `we"ird.png` || hdr.Header.Get("Content-Type") != "image/png" {
			writeBody(w, 400, fmt.Sprintf("bad upload: %d bytes, name %q, type %q", len(got), hdr.Filename, hdr.Header.Get("Content-Type")))
			return
		}
		if n == 1 {
			writeBody(w, 503, "busy")
			return
		}
		writeBody(w, 200, env(`{"imageDomain":"https://img.example","imageRelativeURL":"/v/1.png"}`))
	})
	c := newTestClient(t, testConfig(fs.URL))
	res, err := c.AlibabaUploadVoucher(context.Background(), `C:\tmp\we"ird.png`, bytes.NewReader(file))
	if err != nil {
		t.Fatalf("AlibabaUploadVoucher: %v", err)
	}
	if res.Attempts != 2 || res.Data.URL() != "https://img.example/v/1.png" {
		t.Errorf("result = %+v (url %q); want 2 attempts and the joined URL", res, res.Data.URL())
	}
}

func TestLogisticsCompaniesShapes(t *testing.T) {
	for _, data := range []string{
		`[{"id":1,"companyName":"顺丰","companyNo":"SF"}]`,
		`{"list":[{"id":"1","companyName":"顺丰","companyNo":"SF"}]}`,
		`{"result":[{"id":1,"companyName":"顺丰","companyNo":"SF"}]}`,
	} {
		fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, env(data)) })
		c := newTestClient(t, testConfig(fs.URL))
		res, err := c.AlibabaLogisticsCompanies(context.Background())
		if err != nil || len(res.Data) != 1 || res.Data[0].CompanyNo != "SF" || res.Data[0].ID != 1 {
			t.Errorf("data %s: got %+v, %v; want one SF company", data, res.Data, err)
		}
	}
}

func TestTimeoutAndTransportOutcome(t *testing.T) {
	release := make(chan struct{})
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	cfg := testConfig(fs.URL)
	cfg.Timeout = 200 * time.Millisecond
	c := newTestClient(t, cfg)
	_, err := c.AlibabaCreateRefund(context.Background(), CreateRefundRequest{OrderID: 1, DisputeRequest: "refund",
		GoodsStatus: platform.Default().Alibaba.GoodsStatus.InSaleWaitSellerSend, Description: "d"})
	var te *TransportError
	if !errors.As(err, &te) || !te.Sent || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v; want *TransportError after send wrapping DeadlineExceeded", err)
	}
	if !errors.Is(err, ErrRetryable) || !OutcomeUnknown(err) || fs.count() != 1 {
		t.Errorf("retryable=%v unknown=%v calls=%d; want true true 1", errors.Is(err, ErrRetryable), OutcomeUnknown(err), fs.count())
	}

	// Connection refused: nothing was sent, so the outcome is known.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg = testConfig("http://" + addr)
	cfg.Retry.MaxAttempts = 1
	c = newTestClient(t, cfg)
	_, err = c.TaobaoSubmit(context.Background(), SubmitRefundRequest{SubOrderID: "S1", RefundFee: 1})
	if !errors.As(err, &te) || te.Sent || !errors.Is(err, ErrRetryable) || OutcomeUnknown(err) {
		t.Fatalf("refused: error = %v (sent=%v unknown=%v); want retryable, not sent, known outcome", err, te != nil && te.Sent, OutcomeUnknown(err))
	}
}

func TestContextCancelDuringBackoff(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 503, "busy") })
	cfg := testConfig(fs.URL)
	cfg.Retry = RetryPolicy{MaxAttempts: 10, InitialInterval: time.Hour, MaxInterval: time.Hour, MaxElapsedTime: 100 * time.Hour}
	c := newTestClient(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.TaobaoQuery(ctx, "R1")
		done <- err
	}()
	waitFor(t, func() bool { return fs.count() == 1 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v; want context.Canceled", err)
		}
		var he *HTTPError
		if !errors.As(err, &he) || he.StatusCode != 503 {
			t.Errorf("error = %v; want the last attempt's *HTTPError 503 kept", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("TaobaoQuery did not return after ctx was cancelled during the backoff wait")
	}
	if fs.count() != 1 {
		t.Errorf("calls = %d; want 1", fs.count())
	}
}

func TestRateLimiterSharedAcrossGoroutines(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, env(`{}`)) })
	cfg := testConfig(fs.URL)
	// Burst 3, then one token per hour: within the test only 3 calls can pass.
	cfg.RateLimit, cfg.RateBurst = rate.Every(time.Hour), 3
	c := newTestClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n = 8
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.TaobaoQuery(ctx, "R1")
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, context.DeadlineExceeded) && !OutcomeUnknown(err) && !errors.Is(err, ErrRetryable):
				limited.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 3 || limited.Load() != n-3 || fs.count() != 3 {
		t.Errorf("ok %d limited %d server calls %d; want 3, %d, 3", ok.Load(), limited.Load(), fs.count(), n-3)
	}
}

func TestRetriesTakeRateTokens(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 500, "x") })
	cfg := testConfig(fs.URL)
	cfg.RateLimit, cfg.RateBurst = rate.Every(time.Hour), 2
	cfg.Retry.MaxAttempts = 4
	c := newTestClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.TaobaoRender(ctx, RenderRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1})
	if !errors.Is(err, context.DeadlineExceeded) || fs.count() != 2 {
		t.Fatalf("error = %v, calls %d; want the limiter to stop the 3rd attempt (2 calls)", err, fs.count())
	}
	var he *HTTPError
	if !errors.As(err, &he) {
		t.Errorf("error = %v; want the last *HTTPError kept", err)
	}
}

func TestObserveHook(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 1:
			writeBody(w, 502, "bad gateway")
		case 2:
			writeBody(w, 200, `{"code":4290,"msg":"slow"}`)
		default:
			writeBody(w, 200, env(`{}`))
		}
	})
	type obs struct {
		ep   string
		code int
		err  bool
	}
	var mu sync.Mutex
	var got []obs
	cfg := testConfig(fs.URL)
	cfg.Observe = func(ep string, code int, d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if d < 0 {
			t.Errorf("negative duration %v", d)
		}
		got = append(got, obs{ep, code, err != nil})
	}
	c := newTestClient(t, cfg)
	if _, err := c.TaobaoQuery(context.Background(), "R1"); err != nil {
		t.Fatalf("TaobaoQuery: %v", err)
	}
	want := []obs{{"taobao_query", 502, true}, {"taobao_query", platform.Default().Code(platform.ClassRateLimited), true}, {"taobao_query", 200, false}}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("observations = %v; want %v", got, want)
	}
}

func TestSecretNeverLeaks(t *testing.T) {
	// A hostile server echoes every header it got into the body and msg.
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		echo := fmt.Sprintf("%v secret=%s", r.Header, testSecret)
		switch r.URL.Path {
		case pathOf(platform.TaobaoQuery):
			writeBody(w, 500, echo)
		case pathOf(platform.TaobaoRender):
			writeBody(w, 200, fmt.Sprintf(`{"code":4013,"msg":%q}`, echo))
		case pathOf(platform.AlibabaGoodsReturn):
			writeBody(w, 200, env(fmt.Sprintf(`{"success":false,"errorCode":"E","errorInfo":%q}`, echo)))
		default:
			writeBody(w, 200, "garbage "+echo)
		}
	})
	var logs bytes.Buffer
	cfg := testConfig(fs.URL)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newTestClient(t, cfg)
	ctx := context.Background()
	var errs []error
	for _, ep := range allEndpoints() {
		if ep.name == "taobao_query" || ep.name == "taobao_render" || ep.name == "alibaba_goods_return" || ep.name == "taobao_list" {
			errs = append(errs, ep.call(ctx, c))
		}
	}
	var out strings.Builder
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected every call to fail")
		}
		fmt.Fprintf(&out, "%v\n%+v\n", err, err)
	}
	out.WriteString(logs.String())
	text := out.String()
	if !strings.Contains(text, "[REDACTED]") {
		t.Errorf("expected the echoed credentials to be redacted; output:\n%s", text)
	}
	secrets := []string{testSecret}
	for _, r := range fs.requests() {
		secrets = append(secrets, r.Header.Get(HeaderSignature), r.Header.Get(HeaderNonce))
	}
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("output contains credential %q:\n%s", s, text)
		}
	}
	if !strings.Contains(logs.String(), "endpoint=taobao_query") || !strings.Contains(logs.String(), "attempt=3") {
		t.Errorf("debug log lacks per-attempt lines:\n%s", logs.String())
	}
}

func TestErrorTypes(t *testing.T) {
	cause := errors.New("dial refused")
	tests := []struct {
		err       error
		retryable bool
		unknown   bool
	}{
		{&APIError{Endpoint: "E", Code: 4013, NotApplied: true}, false, false},
		{&APIError{Endpoint: "E", Code: platform.Default().Code(platform.ClassRateLimited), Retryable: true, NotApplied: true}, true, false},
		{&APIError{Endpoint: "E", Code: 4999}, false, true}, // a code not known to prove anything
		{fmt.Errorf("rate limiter: %w", context.Canceled), false, false},
		{&APIError{Endpoint: "E", Code: platform.Default().Code(platform.ClassInternal), Retryable: true}, true, true},
		{&HTTPError{Endpoint: "E", StatusCode: 503}, true, true},
		{&HTTPError{Endpoint: "E", StatusCode: 429}, true, false},
		{&HTTPError{Endpoint: "E", StatusCode: 403}, false, false},
		{&TransportError{Endpoint: "E", Err: cause}, true, false},
		{&TransportError{Endpoint: "E", Sent: true, Err: cause}, true, true},
		{&DecodeError{Endpoint: "E", Err: cause}, false, true},
		{fmt.Errorf("wrapped: %w", &HTTPError{StatusCode: 500}), true, true},
		{nil, false, false},
	}
	for _, tt := range tests {
		if got := errors.Is(tt.err, ErrRetryable); got != tt.retryable {
			t.Errorf("errors.Is(%v, ErrRetryable) = %v; want %v", tt.err, got, tt.retryable)
		}
		if got := OutcomeUnknown(tt.err); got != tt.unknown {
			t.Errorf("OutcomeUnknown(%v) = %v; want %v", tt.err, got, tt.unknown)
		}
		if got, want := NotApplied(tt.err), tt.err != nil && !tt.unknown; got != want {
			t.Errorf("NotApplied(%v) = %v; want %v", tt.err, got, want)
		}
	}
	var te *TransportError
	if err := error(&TransportError{Err: cause}); !errors.As(err, &te) || !errors.Is(err, cause) {
		t.Error("TransportError does not unwrap to its cause")
	}
	if err := error(&DecodeError{Err: cause}); !errors.Is(err, cause) {
		t.Error("DecodeError does not unwrap to its cause")
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatal("condition not met within 10s")
		case <-poll.C:
		}
	}
}

func TestRetryAfterHint(t *testing.T) {
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"1", time.Second}, {"0", 0}, {"-3", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.v, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v; want %v", tt.v, got, tt.want)
		}
	}
	b := &hintedBackOff{max: 5 * time.Second, exp: &backoff.ExponentialBackOff{InitialInterval: 10 * time.Millisecond,
		Multiplier: 2, MaxInterval: time.Second}}
	b.Reset()
	b.hint = 3 * time.Second
	if got := b.NextBackOff(); got != 3*time.Second {
		t.Errorf("with a 3s hint NextBackOff = %v; want 3s", got)
	}
	if got := b.NextBackOff(); got != 20*time.Millisecond {
		t.Errorf("after the hint NextBackOff = %v; want the exponential 20ms", got)
	}
	b.hint = time.Hour
	if got := b.NextBackOff(); got != 5*time.Second {
		t.Errorf("with a 1h hint NextBackOff = %v; want the 5s cap", got)
	}
}

// TestMutatingCallsNotReplayedByTransport: net/http resends idempotent
// requests (GET) that fail on a reused connection. TaobaoCancel is a GET that
// changes state, so the client must stop that; the POSTs are never resent.
func TestMutatingCallsNotReplayedByTransport(t *testing.T) {
	var hangUp atomic.Bool
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if hangUp.Load() && r.URL.Path != pathOf(platform.TaobaoQuery) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close() // request read, no response: "processed, answer lost"
			}
			return
		}
		writeBody(w, 200, env(`{"cancelSuccess":true}`))
	})
	c := newTestClient(t, testConfig(fs.URL))
	ctx := context.Background()
	// A normal cancel: a plain GET on the wire, no body, no chunking.
	if _, err := c.TaobaoCancel(ctx, "R1"); err != nil {
		t.Fatalf("TaobaoCancel: %v", err)
	}
	r := fs.requests()[0]
	if r.Method != http.MethodGet || len(r.Body) != 0 || r.Header.Get("Transfer-Encoding") != "" || r.Header.Get("Content-Length") != "" {
		t.Errorf("cancel request on the wire: %s body %q headers %v; want a bare GET", r.Method, r.Body, r.Header)
	}
	hangUp.Store(true)
	for _, ep := range allEndpoints() {
		if ep.safe {
			continue
		}
		before := fs.count()
		// Warm a keep-alive connection so the failing call runs on a reused one.
		if _, err := c.TaobaoQuery(ctx, "R1"); err != nil {
			t.Fatalf("TaobaoQuery: %v", err)
		}
		err := ep.call(ctx, c)
		var te *TransportError
		if !errors.As(err, &te) || !te.Sent || !OutcomeUnknown(err) {
			t.Errorf("%s with the connection dropped: %v; want *TransportError sent, outcome unknown", ep.name, err)
		}
		if got := fs.count() - before; got != 2 {
			t.Errorf("%s: server saw %d requests; want 2 (one query, one %s)", ep.name, got, ep.name)
		}
	}
}

func TestPathOverridesWithTemplate(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, env(`{}`)) })
	cfg := testConfig(fs.URL)
	prof, err := platform.Parse([]byte(`
[endpoints.taobao_query]
path = "/open/order/refund/query/{refundId}"
[endpoints.taobao_cancel]
path = "/open/order/refund/cancel"
[endpoints.alibaba_refund_info]
method = "GET"
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Profile = prof
	c := newTestClient(t, cfg)
	ctx := context.Background()
	if _, err := c.TaobaoQuery(ctx, "R 9"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TaobaoCancel(ctx, "R9"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AlibabaRefundInfo(ctx, "TQ9"); err != nil {
		t.Fatal(err)
	}
	reqs := fs.requests()
	if reqs[0].Path != "/open/order/refund/query/R 9" || reqs[0].RawQuery != "" {
		t.Errorf("templated query went to %s ?%s; want the id in the path", reqs[0].Path, reqs[0].RawQuery)
	}
	if reqs[1].Path != "/open/order/refund/cancel" || reqs[1].RawQuery != "refundId=R9" {
		t.Errorf("untemplated cancel went to %s ?%s; want ?refundId=R9", reqs[1].Path, reqs[1].RawQuery)
	}
	if reqs[2].Method != http.MethodGet || reqs[2].RawQuery != "refundId=TQ9" || len(reqs[2].Body) != 0 {
		t.Errorf("refund info as GET: %s ?%s body %q; want a GET with ?refundId=TQ9", reqs[2].Method, reqs[2].RawQuery, reqs[2].Body)
	}
}

// TestNotAppliedCodesConfigured: which envelope codes prove that a
// side-effecting call had no effect is the profile's. With the defaults a
// rate-limited submit (4290) is not applied and a platform-internal failure
// (5000) leaves the outcome unknown; a profile's classes replace the defaults.
func TestNotAppliedCodesConfigured(t *testing.T) {
	code := 0
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeBody(w, 200, fmt.Sprintf(`{"requestId":"r1","code":%d,"msg":"x"}`, code))
	})
	submit := func(cfg Config) error {
		c := newTestClient(t, cfg)
		_, err := c.TaobaoSubmit(context.Background(), SubmitRefundRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1, ReasonID: 1, RefundFee: 100})
		if err == nil {
			t.Fatalf("code %d: no error", code)
		}
		return err
	}
	custom, err := platform.Parse([]byte("[error_codes]\ninternal = [5000, 4999]\nnot_applied = [\"internal\"]\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		profile    *platform.Profile
		code       int
		notApplied bool
		class      platform.ErrorClass
	}{
		{nil, 4290, true, platform.ClassRateLimited},
		{nil, 4092, true, platform.ClassDuplicateRefund},
		{nil, 5000, false, platform.ClassInternal},
		{nil, 4999, false, platform.ClassUnknown},
		{custom, 4999, true, platform.ClassInternal},
		{custom, 4290, false, platform.ClassRateLimited},
	} {
		code = tt.code
		cfg := testConfig(fs.URL)
		cfg.Profile = tt.profile
		err := submit(cfg)
		if got := NotApplied(err); got != tt.notApplied || OutcomeUnknown(err) == got || ErrorClass(err) != tt.class {
			t.Errorf("custom %v, code %d: NotApplied = %v, OutcomeUnknown = %v, class %q; want %v, %v, %q",
				tt.profile != nil, tt.code, got, OutcomeUnknown(err), ErrorClass(err), tt.notApplied, !tt.notApplied, tt.class)
		}
	}
}

// TestFailuresAtTheProfilesErrorStatusAreReadByTheirCode: where the profile
// says the platform answers its failures with another HTTP status than 200
// (envelope.error_http_status, UNKNOWN, which refundctl doctor tells an
// operator to set), a failure envelope at that status is the platform's
// own answer and is read by its code, as at 200: a rate limit is retried, an
// internal error leaves a submission's outcome open (it used to be read as
// a 4xx refusal, proof that nothing was done, and a side effect could then
// be sent again without asking), a refusal is a refusal, a not-found is one.
// Another status, or an answer that is not an envelope, is still read by
// its status: a gateway's, not the platform's.
func TestFailuresAtTheProfilesErrorStatusAreReadByTheirCode(t *testing.T) {
	prof, err := platform.Parse([]byte("[envelope]\nerror_http_status = 400\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	def := platform.Default()
	for _, tt := range []struct {
		name          string
		status        int
		body          string
		wantAPI       bool // read as the platform's envelope failure (*APIError)
		wantClass     platform.ErrorClass
		wantRetryable bool
		wantUnknown   bool // OutcomeUnknown
		wantCalls     int  // the submission is not retried by the client; the query is, MaxAttempts 3
	}{
		{"rate limited at the error status", 400, fmt.Sprintf(`{"requestId":"r1","code":%d,"msg":"slow down"}`, def.Code(platform.ClassRateLimited)),
			true, platform.ClassRateLimited, true, false, 1},
		{"internal error at the error status", 400, fmt.Sprintf(`{"requestId":"r2","code":%d,"msg":"oops"}`, def.Code(platform.ClassInternal)),
			true, platform.ClassInternal, true, true, 1},
		{"illegal state at the error status", 400, fmt.Sprintf(`{"requestId":"r3","code":%d,"msg":"no"}`, def.Code(platform.ClassIllegalState)),
			true, platform.ClassIllegalState, false, false, 1},
		{"a code the profile does not list", 400, `{"requestId":"r4","code":4999,"msg":"?"}`,
			true, platform.ClassUnknown, false, true, 1},
		{"another 4xx is a gateway's", 404, fmt.Sprintf(`{"requestId":"r5","code":%d,"msg":"oops"}`, def.Code(platform.ClassInternal)),
			false, platform.ClassInternal, false, false, 1},
		{"not an envelope at the error status", 400, `<html>bad request</html>`,
			false, platform.ClassUnknown, false, false, 1},
		// A JSON object at the error status that is not a readable failure
		// envelope proves nothing either way: outcome unknown, as at 200.
		{"JSON without a code at the error status", 400, `{"error":"bad request"}`,
			true, platform.ClassUnknown, false, true, 1},
		{"a broken envelope at the error status", 400, `{"requestId":"r6","code":5000,"msg":{"text":"oops"}}`,
			false, platform.ClassUnknown, false, true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, tt.status, tt.body) })
			cfg := testConfig(fs.URL)
			cfg.Profile = prof
			c := newTestClient(t, cfg)
			_, err := c.TaobaoSubmit(context.Background(), SubmitRefundRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1, ReasonID: 1, RefundFee: 100})
			var ae *APIError
			if got := errors.As(err, &ae); got != tt.wantAPI {
				t.Fatalf("error %v (%T): read as the platform's failure envelope %v; want %v", err, err, got, tt.wantAPI)
			}
			if ae != nil && (ae.HTTPStatus != tt.status || (strings.Contains(tt.body, "requestId") && ae.RequestID == "")) {
				t.Errorf("APIError = %+v; want HTTP %d and the request id", ae, tt.status)
			}
			if got := ErrorClass(err); got != tt.wantClass {
				t.Errorf("class %q; want %q", got, tt.wantClass)
			}
			if got := errors.Is(err, ErrRetryable); got != tt.wantRetryable {
				t.Errorf("retryable %v; want %v", got, tt.wantRetryable)
			}
			if got := OutcomeUnknown(err); got != tt.wantUnknown {
				t.Errorf("outcome unknown %v; want %v", got, tt.wantUnknown)
			}
			if got := NotApplied(err); got == tt.wantUnknown {
				t.Errorf("not applied %v; want %v", got, !tt.wantUnknown)
			}
			if fs.count() != tt.wantCalls {
				t.Errorf("calls %d; want %d", fs.count(), tt.wantCalls)
			}
		})
	}
}

// TestARateLimitEnvelopeHonoursRetryAfter: a rate limit the platform
// answers with its envelope (at its error status, or at 200) and a
// Retry-After header is retried no sooner than the header says, as a 429
// is: the hint was read from HTTP errors only.
func TestARateLimitEnvelopeHonoursRetryAfter(t *testing.T) {
	prof, err := platform.Parse([]byte("[envelope]\nerror_http_status = 400\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{400, 200} {
		var mu sync.Mutex
		var at []time.Time
		fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			mu.Lock()
			at = append(at, time.Now())
			mu.Unlock()
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				writeBody(w, status, fmt.Sprintf(`{"requestId":"r1","code":%d,"msg":"slow down"}`, platform.Default().Code(platform.ClassRateLimited)))
				return
			}
			writeBody(w, 200, env(`{"refundId":"R1","status":"WAIT_SELLER_AGREE"}`))
		})
		cfg := testConfig(fs.URL)
		cfg.Profile = prof
		cfg.Retry.MaxInterval = 2 * time.Second
		if _, err := newTestClient(t, cfg).TaobaoQuery(context.Background(), "R1"); err != nil {
			t.Fatalf("HTTP %d: query after the rate limit: %v", status, err)
		}
		mu.Lock()
		if len(at) != 2 || at[1].Sub(at[0]) < 900*time.Millisecond {
			t.Errorf("HTTP %d: %d requests, the retry %v after the first; want it after the 1 s Retry-After", status, len(at), at[len(at)-1].Sub(at[0]))
		}
		mu.Unlock()
	}
}
