package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// rawCall makes a signed call and returns the HTTP status and body, or the transport error.
func (e *testEnv) rawCall(method, path string, body any, timeout time.Duration) (int, []byte, error) {
	var rdr io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rdr = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rdr)
	signedHeaders(req.Header, testKey, testSecret, strconv.FormatInt(time.Now().UnixMilli(), 10), "n")
	// A fresh connection per call: the transport silently retries a GET whose
	// reused connection was reset, which would hide the reset fault.
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, nil
}

func TestForcedErrorKinds(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		kind       ErrorKind
		wantStatus int
		wantCode   int // envelope code when HTTP 200
		wantErr    bool
	}{
		{ErrHTTP500, http.StatusInternalServerError, 0, false},
		{ErrHTTP503, http.StatusServiceUnavailable, 0, false},
		{ErrRateLimit, http.StatusOK, codeRateLimited, false},
		{ErrInternal, http.StatusOK, codeInternal, false},
		{ErrRefused, http.StatusOK, codeIllegal, false},
		{ErrTimeout, http.StatusGatewayTimeout, 0, false},
		{ErrReset, 0, 0, true},
		{ErrLate, http.StatusOK, codeOK, false}, // the client waited: the normal answer, late
	}
	for _, tc := range tests {
		t.Run(string(tc.kind), func(t *testing.T) {
			e.s.SetFaults(Faults{TimeoutAfter: 50 * time.Millisecond,
				ForceErrors: []ForcedError{{Endpoint: "alibaba_logistics_companies", Kind: tc.kind, Count: 1}}})
			status, raw, err := e.rawCall(http.MethodGet, paths.AlibabaLogisticsCompanies, nil, 10*time.Second)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("reset: got HTTP %d; want a transport error", status)
				}
			} else {
				if err != nil {
					t.Fatalf("call: %v", err)
				}
				if status != tc.wantStatus {
					t.Fatalf("HTTP %d; want %d", status, tc.wantStatus)
				}
				if tc.wantCode != 0 {
					if env := checkEnvelope(t, raw); env.Code != tc.wantCode {
						t.Errorf("code %d; want %d", env.Code, tc.wantCode)
					}
				}
			}
			// Count was 1: the next call succeeds.
			if r := e.call(http.MethodGet, paths.AlibabaLogisticsCompanies, nil); r.Code != codeOK {
				t.Errorf("call after the forced error: code %d", r.Code)
			}
			if f := e.s.Faults(); len(f.ForceErrors) != 0 {
				t.Errorf("force_errors left: %+v", f.ForceErrors)
			}
		})
	}
}

func TestTimeoutHonoursClientGivingUp(t *testing.T) {
	e := newEnv(t, nil)
	e.s.SetFaults(Faults{ForceErrors: []ForcedError{{Endpoint: "taobao_query", Kind: ErrTimeout, Count: 1}}}) // default 30s
	start := time.Now()
	_, _, err := e.rawCall(http.MethodGet, paths.TaobaoQuery+"?refundId=1", nil, 200*time.Millisecond)
	if err == nil {
		t.Fatal("timeout fault answered before the client gave up")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("client waited %s", d)
	}
}

// TestLateTakesEffectAfterClientGaveUp: a late request (held in a proxy)
// takes effect TimeoutAfter after it arrived although the client stopped
// waiting long before, and the client's resend is then a duplicate.
func TestLateTakesEffectAfterClientGaveUp(t *testing.T) {
	e := newEnv(t, nil)
	e.s.SetFaults(Faults{TimeoutAfter: time.Second,
		ForceErrors: []ForcedError{{Endpoint: "taobao_submit", Kind: ErrLate, Count: 1}}})
	req := submitRefundReq{SubOrderID: "9000000000000000001", RefundType: 1, GoodsStatus: 1, ReasonID: 1001, RefundFee: 100}
	if _, _, err := e.rawCall(http.MethodPost, paths.TaobaoSubmit, req, 50*time.Millisecond); err == nil {
		t.Fatal("late submit answered before the client gave up")
	}
	if n := e.countRefunds(); n != 0 {
		t.Fatalf("refunds right after the client gave up: %d; want 0 (the request has not arrived yet)", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.countRefunds() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the late submit never took effect")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
	if r := e.call(http.MethodPost, paths.TaobaoSubmit, req); r.Code == codeOK {
		t.Fatalf("resend after the late submit took effect: code %d; want it refused as a duplicate", r.Code)
	}
	if st := e.s.Stats(); st.DuplicateSubmissions != 1 || st.RefundSubmissions["taobao:9000000000000000001"] != 2 {
		t.Fatalf("stats %+v; want 2 submissions, 1 duplicate", st)
	}
}

// TestAfterEffect: the refund is created although the client sees an error,
// and a retry is rejected as a duplicate and counted.
func TestAfterEffect(t *testing.T) {
	e := newEnv(t, nil)
	e.s.SetFaults(Faults{ForceErrors: []ForcedError{{Endpoint: "taobao_submit", Kind: ErrHTTP500, Count: 1, AfterEffect: true}}})
	req := submitRefundReq{SubOrderID: "9000000000000000001", RefundType: 1, GoodsStatus: 1, ReasonID: 1001, RefundFee: 100}
	status, _, err := e.rawCall(http.MethodPost, paths.TaobaoSubmit, req, 10*time.Second)
	if err != nil || status != http.StatusInternalServerError {
		t.Fatalf("forced submit: HTTP %d err %v; want 500", status, err)
	}
	if n := e.countRefunds(); n != 1 {
		t.Fatalf("refunds after after-effect error: %d; want 1", n)
	}
	r := e.call(http.MethodPost, paths.TaobaoSubmit, req)
	if r.Code != codeDuplicate {
		t.Fatalf("retry: code %d; want %d", r.Code, codeDuplicate)
	}
	st := e.s.Stats()
	if st.RefundSubmissions["taobao:9000000000000000001"] != 2 || st.DuplicateSubmissions != 1 || st.APICalls["taobao_submit"] != 2 {
		t.Errorf("stats %+v; want 2 submissions, 1 duplicate, 2 calls", st)
	}
	// The client can find the refund it does not know the id of.
	var list listRefundsResp
	e.mustOK(http.MethodPost, paths.TaobaoList, listRefundsReq{PageSize: 10}, &list)
	if list.Total != 1 || list.List[0].PurchaseOrderLine.PurchaseOrderLineID != "9000000000000000001" {
		t.Errorf("list %+v", list)
	}
}

func TestErrorRateWithSeedIsDeterministic(t *testing.T) {
	outcomes := func() []int {
		e := newEnv(t, func(c *Config) {
			c.Seed = 7
			c.Faults = Faults{ErrorRate: 0.5, ErrorKinds: []ErrorKind{ErrRateLimit, ErrInternal}, Endpoints: []string{"alibaba_logistics_companies"}}
		})
		var codes []int
		for range 40 {
			codes = append(codes, e.call(http.MethodGet, paths.AlibabaLogisticsCompanies, nil).Code)
		}
		// Other endpoints are not targeted.
		for range 10 {
			if r := e.call(http.MethodPost, paths.TaobaoList, listRefundsReq{PageSize: 1}); r.Code != codeOK {
				t.Errorf("untargeted endpoint failed: %d", r.Code)
			}
		}
		return codes
	}
	a, b := outcomes(), outcomes()
	failures := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("run 1 %v != run 2 %v", a, b)
		}
		if a[i] != codeOK {
			failures++
		}
	}
	if failures < 8 || failures > 32 {
		t.Errorf("%d of 40 failed at rate 0.5", failures)
	}
}

func TestLatency(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Faults = Faults{LatencyMin: 60 * time.Millisecond, LatencyMax: 80 * time.Millisecond}
	})
	start := time.Now()
	e.call(http.MethodGet, paths.AlibabaLogisticsCompanies, nil)
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("call took %s; want at least the 60ms minimum latency", d)
	}
}

func TestFaultsAdmin(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"latency_min":"1ms","latency_max":"2ms","error_rate":0.25,"error_kinds":["http503"],
		"force_errors":[{"endpoint":"taobao_submit","kind":"reset","count":2,"after_effect":true}],"drop_push_rate":0.1}`
	var got Faults
	e.adminOK(http.MethodPut, "/_sandbox/faults", body, &got)
	if got.LatencyMax != 2*time.Millisecond || got.ErrorRate != 0.25 || len(got.ForceErrors) != 1 || !got.ForceErrors[0].AfterEffect {
		t.Errorf("faults %+v", got)
	}
	for name, bad := range map[string]string{
		"rate above 1":     `{"error_rate":1.5}`,
		"unknown kind":     `{"error_kinds":["boom"]}`,
		"unknown endpoint": `{"force_errors":[{"endpoint":"Nope","kind":"http500","count":1}]}`,
		"zero count":       `{"force_errors":[{"endpoint":"taobao_submit","kind":"http500","count":0}]}`,
		"bad duration":     `{"latency_min":"soon"}`,
		"unknown field":    `{"error_rat":0.1}`,
		"not json":         `{`,
		"min above max":    `{"latency_min":"2s","latency_max":"1s"}`,
	} {
		st, raw := e.admin(http.MethodPut, "/_sandbox/faults", bad)
		if st != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d %s; want 400", name, st, raw)
			continue
		}
		if code := adminErrCode(t, raw); code != AdminInvalidArgument && code != AdminMalformedJSON {
			t.Errorf("%s: code %q", name, code)
		}
	}
	if f := e.s.Faults(); f.ErrorRate != 0.25 {
		t.Errorf("bad PUTs changed faults: %+v", f)
	}
}

// TestTimeoutOnPOSTStopsWhenClientGivesUp: a hanging POST handler must notice
// the client hanging up (it reads the body before waiting), so the server can
// close promptly instead of holding the request for TimeoutAfter.
func TestTimeoutOnPOSTStopsWhenClientGivesUp(t *testing.T) {
	e := newEnv(t, nil)
	e.s.SetFaults(Faults{TimeoutAfter: 10 * time.Minute,
		ForceErrors: []ForcedError{{Endpoint: "taobao_submit", Kind: ErrTimeout, Count: 1}}})
	req := submitRefundReq{SubOrderID: "9000000000000000009", RefundType: 1, GoodsStatus: 1, ReasonID: 1001, RefundFee: 100}
	if _, _, err := e.rawCall(http.MethodPost, paths.TaobaoSubmit, req, 200*time.Millisecond); err == nil {
		t.Fatal("timeout fault answered before the client gave up")
	}
	closed := make(chan struct{})
	go func() { e.srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(60 * time.Second):
		t.Fatal("server still holding the abandoned POST after 60s (TimeoutAfter is 10m)")
	}
}

// TestForcedRateLimitLiftedAtRunTime: a long forced ratelimit (count 100) is
// what a test uses to hold an endpoint down; replacing the faults, by
// SetFaults or PUT /_sandbox/faults, must lift it at once although most of
// its count is left.
func TestForcedRateLimitLiftedAtRunTime(t *testing.T) {
	create := func(e *testEnv, orderID int64) apiResp {
		return e.call(http.MethodPost, paths.AlibabaCreateRefund, ab(orderID, "refund", "refundWaitSellerSend", 20001, 100, 0, "不想要了"))
	}
	held := Faults{ForceErrors: []ForcedError{{Endpoint: "alibaba_create_refund", Kind: ErrRateLimit, Count: 100}}}
	lifts := map[string]func(e *testEnv){
		"SetFaults": func(e *testEnv) { e.s.SetFaults(Faults{}) },
		"PUT":       func(e *testEnv) { e.adminOK(http.MethodPut, "/_sandbox/faults", `{}`, nil) },
	}
	for name, lift := range lifts {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Faults = held })
			for i := range 3 {
				if r := create(e, 3500000000000000001); r.Code != codeRateLimited {
					t.Fatalf("create %d while held: code %d (%s); want %d", i, r.Code, r.Msg, codeRateLimited)
				}
			}
			if f := e.s.Faults(); len(f.ForceErrors) != 1 || f.ForceErrors[0].Count != 97 {
				t.Fatalf("force_errors after 3 calls: %+v; want one with count 97", f.ForceErrors)
			}
			lift(e)
			if f := e.s.Faults(); len(f.ForceErrors) != 0 {
				t.Fatalf("force_errors after lifting: %+v; want none", f.ForceErrors)
			}
			if r := create(e, 3500000000000000001); r.Code != codeOK {
				t.Fatalf("create after lifting: code %d (%s); want 200", r.Code, r.Msg)
			}
			st := e.s.Stats()
			// Rate-limited calls are stopped before authentication: they are
			// API calls but not submissions.
			if st.APICalls["alibaba_create_refund"] != 4 || st.RefundSubmissions["1688:3500000000000000001"] != 1 {
				t.Errorf("stats: %d calls, %d submissions; want 4 calls, 1 submission",
					st.APICalls["alibaba_create_refund"], st.RefundSubmissions["1688:3500000000000000001"])
			}
		})
	}
}

// TestLatencyMinOnOneEndpoint: LatencyMin without LatencyMax is a fixed
// latency, and Endpoints confines it to the endpoints named.
func TestLatencyMinOnOneEndpoint(t *testing.T) {
	e := newEnv(t, nil)
	render := renderReq{SubOrderID: "6300000000000000001", RefundType: 1, GoodsStatus: 1}

	e.adminOK(http.MethodPut, "/_sandbox/faults", `{"latency_min":"100ms","endpoints":["taobao_render"]}`, nil)
	start := time.Now()
	if r := e.call(http.MethodPost, paths.TaobaoRender, render); r.Code != codeOK {
		t.Fatalf("render: code %d (%s)", r.Code, r.Msg)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("render took %s; want at least latency_min 100ms", d)
	}

	// With a latency no test waits for, only the lower bound on the targeted
	// endpoint and the absence of it elsewhere are observable without timing
	// races: the render outlives a short client timeout, the others answer.
	e.s.SetFaults(Faults{LatencyMin: time.Minute, Endpoints: []string{"taobao_render"}})
	if _, _, err := e.rawCall(http.MethodPost, paths.TaobaoRender, render, 300*time.Millisecond); err == nil {
		t.Error("render answered within 300ms under a 1m latency_min")
	}
	status, raw, err := e.rawCall(http.MethodGet, paths.AlibabaLogisticsCompanies, nil, 30*time.Second)
	if err != nil || status != http.StatusOK || checkEnvelope(t, raw).Code != codeOK {
		t.Errorf("untargeted endpoint under a TaobaoRender latency: HTTP %d err %v %s", status, err, raw)
	}
}

// TestRateQuotaRefusesCallsPastTheBucket: the account's quota lets its burst
// through and answers every further call rate_limited, counting only those,
// until the bucket refills; a new quota starts full, and none lets all pass.
func TestRateQuotaRefusesCallsPastTheBucket(t *testing.T) {
	e := newEnv(t, nil)
	// One call per 1000 s: nothing refills within the test.
	e.adminOK(http.MethodPut, "/_sandbox/faults", Faults{RateQuota: 0.001, RateQuotaBurst: 3}, nil)
	var codes []int
	for range 6 {
		codes = append(codes, e.call(http.MethodGet, paths.AlibabaLogisticsCompanies, nil).Code)
	}
	want := []int{codeOK, codeOK, codeOK, codeRateLimited, codeRateLimited, codeRateLimited}
	if !slices.Equal(codes, want) {
		t.Fatalf("codes %v; want %v", codes, want)
	}
	st := e.s.Stats()
	if st.QuotaRefused != 3 || st.APICalls["alibaba_logistics_companies"] != 6 {
		t.Fatalf("quota_refused %d, calls %d; want 3 refused of 6", st.QuotaRefused, st.APICalls["alibaba_logistics_companies"])
	}

	// Another burst is another quota: full again.
	e.adminOK(http.MethodPut, "/_sandbox/faults", Faults{RateQuota: 0.001, RateQuotaBurst: 1}, nil)
	if c := e.call(http.MethodGet, paths.AlibabaLogisticsCompanies, nil).Code; c != codeOK {
		t.Fatalf("first call under a new quota: code %d; want %d", c, codeOK)
	}
	if c := e.call(http.MethodGet, paths.AlibabaLogisticsCompanies, nil).Code; c != codeRateLimited {
		t.Fatalf("second call under a quota of burst 1: code %d; want %d", c, codeRateLimited)
	}

	e.adminOK(http.MethodPut, "/_sandbox/faults", Faults{}, nil)
	for range 5 {
		if c := e.call(http.MethodGet, paths.AlibabaLogisticsCompanies, nil).Code; c != codeOK {
			t.Fatalf("without a quota: code %d", c)
		}
	}
	if got := e.s.Stats().QuotaRefused; got != 4 {
		t.Fatalf("quota_refused %d after the quota was lifted; want 4", got)
	}

	for _, bad := range []string{`{"rate_quota":-1}`, `{"rate_quota":1e9}`, `{"rate_quota_burst":-2}`} {
		status, raw := e.admin(http.MethodPut, "/_sandbox/faults", json.RawMessage(bad))
		if status != http.StatusBadRequest || adminErrCode(t, raw) != "invalid_argument" {
			t.Errorf("PUT faults %s: HTTP %d %s; want 400 invalid_argument", bad, status, raw)
		}
	}
}
