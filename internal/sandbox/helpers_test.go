package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

const (
	testKey    = "58c0201dfdf148eca63cbf6bb5e7cf03"
	testSecret = "test-secret"
)

// testEnv is a sandbox served over real loopback HTTP with Run going.
type testEnv struct {
	t     *testing.T
	s     *Sandbox
	srv   *httptest.Server
	paths testPaths // the endpoint paths of the sandbox's profile
}

// newEnv starts a sandbox with a manual seller (nothing moves unless the test
// says so) unless mod changes it.
func newEnv(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	cfg := Config{AccessKey: testKey, AccessSecret: testSecret, AutoCreate: true,
		Seller: SellerPolicy{Decision: DecisionManual}, Seed: 42}
	if mod != nil {
		mod(&cfg)
	}
	e, _ := startWith(t, cfg)
	return e
}

// startWith serves a sandbox made from cfg with Run going; stop ends Run
// (which writes the state file one last time) and the server.
func startWith(t *testing.T, cfg Config) (e *testEnv, stop func()) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			srv.Close()
		}
	}
	t.Cleanup(stop)
	return &testEnv{t: t, s: s, srv: srv, paths: pathsOf(s.prof)}, stop
}

// apiResp is a decoded envelope.
type apiResp struct {
	HTTPStatus int
	Raw        []byte          // the whole body
	RequestID  string          `json:"requestId"`
	Code       int             `json:"code"`
	DevelopID  string          `json:"developId"`
	Msg        string          `json:"msg"`
	Data       json.RawMessage `json:"data"`
}

func signedHeaders(h http.Header, key, secret string, ts string, nonce string) {
	h.Set(headerAccessKey, key)
	h.Set(headerTimestamp, ts)
	if nonce != "" {
		h.Set(headerNonce, nonce)
	}
	h.Set(headerUserID, "2100007341207")
	h.Set(headerSignature, testSign(key, ts, nonce, secret))
}

// call makes a signed API call. body is marshalled unless it is a string or []byte.
func (e *testEnv) call(method, path string, body any) apiResp {
	e.t.Helper()
	return e.callWith(method, path, body, func(h http.Header) {
		signedHeaders(h, testKey, testSecret, strconv.FormatInt(time.Now().UnixMilli(), 10), "abcdefghijklmnopqrstuvwxyz012345")
	})
}

func (e *testEnv) callWith(method, path string, body any, headers func(http.Header)) apiResp {
	e.t.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = bytes.NewReader([]byte(b))
	case []byte:
		rdr = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatalf("marshal: %v", err)
		}
		rdr = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rdr)
	if err != nil {
		e.t.Fatalf("new request: %v", err)
	}
	if rdr != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	headers(req.Header)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out apiResp
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("%s %s: body %q is not an envelope: %v", method, path, raw, err)
	}
	out.HTTPStatus, out.Raw = resp.StatusCode, raw
	return out
}

// mustOK calls and fails unless code is 200; it decodes data into out (if non-nil).
func (e *testEnv) mustOK(method, path string, body any, out any) {
	e.t.Helper()
	r := e.call(method, path, body)
	if r.Code != codeOK {
		e.t.Fatalf("%s %s: code %d (%s); want 200", method, path, r.Code, r.Msg)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			e.t.Fatalf("%s %s: decode data %s: %v", method, path, r.Data, err)
		}
	}
}

// admin calls an admin endpoint and returns status and body.
func (e *testEnv) admin(method, path string, body any) (int, []byte) {
	e.t.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = bytes.NewReader([]byte(b))
	default:
		raw, _ := json.Marshal(b)
		rdr = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rdr)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func (e *testEnv) adminOK(method, path string, body any, out any) {
	e.t.Helper()
	st, raw := e.admin(method, path, body)
	if st != http.StatusOK {
		e.t.Fatalf("%s %s: HTTP %d %s; want 200", method, path, st, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

func adminErrCode(t *testing.T, raw []byte) string {
	t.Helper()
	var v struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("admin error body %q: %v", raw, err)
	}
	return v.Error.Code
}

func (e *testEnv) refund(id string) Refund {
	e.t.Helper()
	var r Refund
	e.adminOK(http.MethodGet, "/_sandbox/refunds/"+url.PathEscape(id), nil, &r)
	return r
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-poll.C:
		}
	}
}

func (e *testEnv) waitStatus(id, want string) {
	e.t.Helper()
	waitFor(e.t, "refund "+id+" to reach "+want, func() bool { return e.refund(id).Status == want })
}

// tbSubmit submits a Taobao refund and returns its id.
func (e *testEnv) tbSubmit(subOrderID string, refundType, goodsStatus, reasonID int, fee int64) string {
	e.t.Helper()
	var resp submitRefundResp
	e.mustOK(http.MethodPost, paths.TaobaoSubmit, submitRefundReq{SubOrderID: subOrderID, RefundType: refundType,
		GoodsStatus: goodsStatus, ReasonID: reasonID, RefundFee: fee, RefundDesc: "不想要了"}, &resp)
	if resp.RefundID == "" || !resp.SubmitSuccess {
		e.t.Fatalf("submit: %+v", resp)
	}
	return string(resp.RefundID)
}

// abCreate creates a 1688 refund and returns its id.
func (e *testEnv) abCreate(orderID int64, dispute, goods string, reasonID int64, pay int64, vouchers []string) string {
	e.t.Helper()
	var resp createRefundResp
	e.mustOK(http.MethodPost, paths.AlibabaCreateRefund, createRefundReq{OrderID: orderID, DisputeRequest: dispute,
		ApplyPayment: pay, ApplyReasonID: reasonID, Description: "质量有问题", GoodsStatus: goods,
		Vouchers: vouchers}, &resp)
	return resp.RefundID
}

// receiver is a callback endpoint that records what it gets.
type receiver struct {
	mu     sync.Mutex
	got    []receivedPush
	status func(n int) int // HTTP status for the n-th push (0-based)
	srv    *httptest.Server
}

type receivedPush struct {
	ContentType string
	Raw         []byte
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	rc := &receiver{status: status}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, receivedPush{ContentType: r.Header.Get("Content-Type"), Raw: raw})
		rc.mu.Unlock()
		code := http.StatusOK
		if rc.status != nil {
			code = rc.status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) pushes() []receivedPush {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedPush(nil), rc.got...)
}
