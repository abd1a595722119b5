package sandbox

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

var requestIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

// checkEnvelope asserts the documented envelope shape on a raw body.
func checkEnvelope(t testing.TB, raw []byte) apiResp {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", raw, err)
	}
	for _, k := range []string{"requestId", "code", "developId", "msg", "data"} {
		if _, ok := fields[k]; !ok {
			t.Fatalf("envelope %s lacks %q", raw, k)
		}
	}
	var env apiResp
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("envelope %s: %v", raw, err)
	}
	if !requestIDRe.MatchString(env.RequestID) {
		t.Errorf("requestId %q: want 32 lowercase hex", env.RequestID)
	}
	if env.DevelopID == "" || fields["developId"][0] != '"' {
		t.Errorf("developId %s: want a non-empty string", fields["developId"])
	}
	if env.Code == codeOK && env.Msg != prof.Envelope.SuccessMsg {
		t.Errorf("msg %q with code 200; want %q", env.Msg, prof.Envelope.SuccessMsg)
	}
	if env.Code != codeOK && string(env.Data) != "null" {
		t.Errorf("error envelope data %s; want null", env.Data)
	}
	return env
}

func (e *testEnv) countRefunds() int {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	return len(e.s.refunds)
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AutoCreate = false })
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao, OrderID: "4000000000000000001",
		SubOrders: []SubOrder{{SubOrderID: "5000000000000000001", Amount: 8000}}}, nil)
	e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: Platform1688, OrderID: "3000000000000000001",
		Amount: 9500, Carriage: 500}, nil)
	const sub, order = "5000000000000000001", 3000000000000000001
	good := `{"subOrderId":"5000000000000000001","refundType":1,"goodsStatus":1,"reasonId":1001,"refundFee":100}`
	huge := `{"subOrderId":"` + strings.Repeat("1", maxJSONBody) + `"}`
	tests := []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"malformed json", "POST", paths.TaobaoSubmit, `{"subOrderId":`, codeMalformed},
		{"not an object", "POST", paths.TaobaoSubmit, `[1,2]`, codeMalformed},
		{"empty body", "POST", paths.TaobaoSubmit, ``, codeMalformed},
		{"trailing garbage", "POST", paths.TaobaoSubmit, good + `x`, codeMalformed},
		{"wrong type", "POST", paths.TaobaoSubmit, `{"subOrderId":"1","refundType":"one","goodsStatus":1,"reasonId":1001,"refundFee":1}`, codeMalformed},
		{"oversize", "POST", paths.TaobaoSubmit, huge, codeInvalid},
		{"missing fields", "POST", paths.TaobaoSubmit, `{"subOrderId":"5000000000000000001"}`, codeMissing},
		{"null field", "POST", paths.TaobaoSubmit, `{"subOrderId":null,"refundType":1,"goodsStatus":1,"reasonId":1001,"refundFee":1}`, codeMissing},
		{"bad refundType", "POST", paths.TaobaoSubmit, `{"subOrderId":"5000000000000000001","refundType":7,"goodsStatus":1,"reasonId":1001,"refundFee":1}`, codeInvalid},
		{"return unshipped", "POST", paths.TaobaoSubmit, `{"subOrderId":"5000000000000000001","refundType":2,"goodsStatus":1,"reasonId":4001,"refundFee":1}`, codeInvalid},
		{"reason not rendered", "POST", paths.TaobaoSubmit, `{"subOrderId":"5000000000000000001","refundType":1,"goodsStatus":1,"reasonId":4001,"refundFee":1}`, codeInvalid},
		{"fee above max", "POST", paths.TaobaoSubmit, `{"subOrderId":"5000000000000000001","refundType":1,"goodsStatus":1,"reasonId":1001,"refundFee":8001}`, codeInvalid},
		{"fee zero", "POST", paths.TaobaoSubmit, `{"subOrderId":"5000000000000000001","refundType":1,"goodsStatus":1,"reasonId":1001,"refundFee":0}`, codeInvalid},
		{"voucher reason without images", "POST", paths.TaobaoSubmit, `{"subOrderId":"5000000000000000001","refundType":1,"goodsStatus":3,"reasonId":3001,"refundFee":10}`, codeMissing},
		{"unknown sub-order", "POST", paths.TaobaoSubmit, `{"subOrderId":"999","refundType":1,"goodsStatus":1,"reasonId":1001,"refundFee":1}`, codeNotFound},
		{"render missing goodsStatus", "POST", paths.TaobaoRender, `{"subOrderId":"5000000000000000001","refundType":1}`, codeMissing},
		{"render bad goodsStatus", "POST", paths.TaobaoRender, `{"subOrderId":"5000000000000000001","refundType":1,"goodsStatus":9}`, codeInvalid},
		{"query without id", "GET", paths.TaobaoQuery, nil, codeMissing},
		{"query unknown", "GET", paths.TaobaoQuery + "?refundId=123", nil, codeNotFound},
		{"cancel unknown", "GET", fill(paths.TaobaoCancel, "123"), nil, codeNotFound},
		{"list without pageSize", "POST", paths.TaobaoList, `{}`, codeMissing},
		{"list pageSize too big", "POST", paths.TaobaoList, `{"pageSize":1000}`, codeInvalid},
		{"list bad status", "POST", paths.TaobaoList, `{"pageSize":10,"refundStatus":42}`, codeInvalid},
		{"message unknown refund", "POST", paths.TaobaoSubmitMessage, `{"refundId":"1","refundMessage":"hi"}`, codeNotFound},
		{"message missing text", "POST", paths.TaobaoSubmitMessage, `{"refundId":"1"}`, codeMissing},
		{"logistics missing no", "POST", paths.TaobaoReturnLogisticsSubmit, `{"refundId":"1","logisticsCompanyCode":"SF"}`, codeMissing},
		{"modify unknown", "POST", paths.TaobaoModify, `{"refundId":"1","refundType":1,"goodsStatus":1,"reasonId":1001,"refundFee":1}`, codeNotFound},
		{"1688 create unknown order", "POST", paths.AlibabaCreateRefund, `{"orderId":1,"disputeRequest":"refund","applyPayment":1,"applyCarriage":0,"applyReasonId":20001,"description":"不想要","goodsStatus":"refundWaitSellerSend"}`, codeNotFound},
		{"1688 create orderId string garbage", "POST", paths.AlibabaCreateRefund, `{"orderId":"abc"}`, codeMalformed},
		{"1688 create missing", "POST", paths.AlibabaCreateRefund, `{"orderId":3000000000000000001}`, codeMissing},
		{"1688 bad dispute", "POST", paths.AlibabaCreateRefund, ab(order, "refundz", "refundWaitSellerSend", 20001, 100, 0, "不想要"), codeInvalid},
		{"1688 returnRefund not received", "POST", paths.AlibabaCreateRefund, ab(order, "returnRefund", "refundWaitSellerSend", 20001, 100, 0, "不想要"), codeInvalid},
		{"1688 pay above paid", "POST", paths.AlibabaCreateRefund, ab(order, "refund", "refundWaitSellerSend", 20001, 9501, 0, "不想要"), codeInvalid},
		{"1688 carriage above paid", "POST", paths.AlibabaCreateRefund, ab(order, "refund", "refundWaitSellerSend", 20001, 100, 501, "不想要"), codeInvalid},
		{"1688 short description", "POST", paths.AlibabaCreateRefund, ab(order, "refund", "refundWaitSellerSend", 20001, 100, 0, "x"), codeInvalid},
		{"1688 long description", "POST", paths.AlibabaCreateRefund, ab(order, "refund", "refundWaitSellerSend", 20001, 100, 0, strings.Repeat("长", 151)), codeInvalid},
		{"1688 reason of other goodsStatus", "POST", paths.AlibabaCreateRefund, ab(order, "refund", "refundWaitSellerSend", 20021, 100, 0, "不想要"), codeInvalid},
		{"1688 voucher needed", "POST", paths.AlibabaCreateRefund, ab(order, "refund", "aftersaleBuyerReceived", 20021, 100, 0, "质量问题"), codeMissing},
		{"1688 too many vouchers", "POST", paths.AlibabaCreateRefund, `{"orderId":3000000000000000001,"disputeRequest":"refund","applyPayment":1,"applyCarriage":0,"applyReasonId":20021,"description":"质量问题","goodsStatus":"aftersaleBuyerReceived","vouchers":["a","b","c","d","e","f"]}`, codeInvalid},
		{"1688 reasons bad goodsStatus", "POST", paths.AlibabaRefundReasons, `{"orderId":3000000000000000001,"goodsStatus":"nope"}`, codeInvalid},
		{"1688 info unknown", "POST", paths.AlibabaRefundInfo, `{"refundId":"TQ1"}`, codeNotFound},
		{"1688 info no id", "POST", paths.AlibabaRefundInfo, `{}`, codeMissing},
		{"1688 goods return unknown", "POST", paths.AlibabaGoodsReturn, `{"refundId":"TQ1","logisticsCompanyNo":"SF","freightBill":"SF12345678"}`, codeNotFound},
		{"1688 goods return missing bill", "POST", paths.AlibabaGoodsReturn, `{"refundId":"TQ1","logisticsCompanyNo":"SF"}`, codeMissing},
		{"upload not multipart", "POST", paths.AlibabaUploadVoucher, `{}`, codeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeStats := e.countRefunds(), e.s.Stats()
			r := e.call(tc.method, tc.path, tc.body)
			if r.Code != tc.want {
				t.Fatalf("%s %s: code %d (%s); want %d", tc.method, tc.path, r.Code, r.Msg, tc.want)
			}
			if r.Msg == "" {
				t.Error("error without msg")
			}
			if n := e.countRefunds(); n != before {
				t.Errorf("refunds %d -> %d; want unchanged", before, n)
			}
			if got := e.s.Stats().DuplicateSubmissions; got != beforeStats.DuplicateSubmissions {
				t.Errorf("duplicate_submissions changed to %d", got)
			}
		})
	}
	// The sub-order still has its full amount: nothing was refunded.
	var render renderResp
	e.mustOK(http.MethodPost, paths.TaobaoRender, renderReq{SubOrderID: sub, RefundType: 1, GoodsStatus: 1}, &render)
	if got := render.RefundOrderTemplate.MaxRefundFee.MaxRefundFee; got != 8000 {
		t.Errorf("maxRefundFee after bad input = %d; want 8000", got)
	}
}

func ab(order int64, dispute, goods string, reason, pay, carriage int64, desc string) string {
	b, _ := json.Marshal(map[string]any{"orderId": order, "disputeRequest": dispute, "goodsStatus": goods,
		"applyReasonId": reason, "applyPayment": pay, "applyCarriage": carriage, "description": desc})
	return string(b)
}

func TestWrongMethodAndUnknownPath(t *testing.T) {
	e := newEnv(t, nil)
	r := e.call(http.MethodGet, paths.TaobaoSubmit, nil)
	if r.HTTPStatus != http.StatusMethodNotAllowed || r.Code != codeInvalid {
		t.Errorf("GET submit: HTTP %d code %d; want 405 %d", r.HTTPStatus, r.Code, codeInvalid)
	}
	r = e.call(http.MethodPost, "/open/nothing/here", `{}`)
	if r.HTTPStatus != http.StatusNotFound || r.Code != codeNotFound {
		t.Errorf("unknown path: HTTP %d code %d; want 404 %d", r.HTTPStatus, r.Code, codeNotFound)
	}
}

func TestEnvelopeShape(t *testing.T) {
	e := newEnv(t, nil)
	req := httptest.NewRequest(http.MethodGet, paths.AlibabaLogisticsCompanies, nil)
	signedHeaders(req.Header, testKey, testSecret, strconv.FormatInt(time.Now().UnixMilli(), 10), "n")
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, req)
	env := checkEnvelope(t, rec.Body.Bytes())
	var companies []logisticsCompanyResp
	if err := json.Unmarshal(env.Data, &companies); err != nil || len(companies) == 0 || companies[0].CompanyNo == "" {
		t.Errorf("companies %s: %v", env.Data, err)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
}

func multipartBody(t *testing.T, field string, data []byte) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, err := w.CreateFormFile(field, "v.png")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(data)
	_ = w.Close()
	return w.FormDataContentType(), buf.Bytes()
}

var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00")

func TestUploadVoucher(t *testing.T) {
	e := newEnv(t, nil)
	upload := func(field string, data []byte) apiResp {
		ct, body := multipartBody(t, field, data)
		return e.callWith(http.MethodPost, paths.AlibabaUploadVoucher, body, func(h http.Header) {
			signedHeaders(h, testKey, testSecret, strconv.FormatInt(time.Now().UnixMilli(), 10), "n")
			h.Set("Content-Type", ct)
		})
	}
	r := upload("imageData", pngHeader)
	if r.Code != codeOK {
		t.Fatalf("png upload: code %d (%s)", r.Code, r.Msg)
	}
	var v uploadVoucherResp
	_ = json.Unmarshal(r.Data, &v)
	if v.ImageDomain == "" || !strings.HasSuffix(v.ImageRelativeURL, ".png") {
		t.Errorf("upload response %+v", v)
	}
	// The voucher works in a create that needs one.
	id := e.abCreate(3100000000000000001, "returnRefund", "aftersaleBuyerReceived", 20021, 100, []string{v.URL()})
	if got := e.refund(id).Vouchers; len(got) != 1 || got[0] != v.URL() {
		t.Errorf("vouchers %v; want [%s]", got, v.URL())
	}
	for name, tc := range map[string]struct {
		field string
		data  []byte
		want  int
	}{
		"gif":         {"imageData", []byte("GIF89a......"), codeInvalid},
		"too big":     {"imageData", append(append([]byte{}, pngHeader...), make([]byte, maxVoucherSize)...), codeInvalid},
		"wrong field": {"file", pngHeader, codeMissing},
	} {
		if r := upload(tc.field, tc.data); r.Code != tc.want {
			t.Errorf("%s: code %d (%s); want %d", name, r.Code, r.Msg, tc.want)
		}
	}
}

// FuzzAPI throws arbitrary bodies at every endpoint: no panic (the recoverer
// would answer CodeInternal, which nothing else produces here) and always a
// well-formed envelope.
func FuzzAPI(f *testing.F) {
	seeds := []string{
		`{"subOrderId":"1034499579120189839","goodsStatus":1,"refundType":1}`,
		`{"subOrderId":"1","refundType":2,"goodsStatus":3,"reasonId":4001,"refundFee":"12.5"}`,
		`{"refundId":"TQ1234567890123456","logisticsCompanyNo":"SF","freightBill":"SF123456"}`,
		`{"orderId":"3305075341149134260","disputeRequest":"returnRefund","applyPayment":1e30,"applyCarriage":-1,"applyReasonId":20025,"description":"ok","goodsStatus":"aftersaleBuyerReceived","vouchers":[null]}`,
		`{"pageSize":10,"pageNo":-5,"refundStatus":3,"refundStartTime":-1}`,
		`{"refundId":"x","refundMessage":"` + strings.Repeat("a", 600) + `"}`,
		`{"orderId":1,"orderEntryIds":[0,-1],"goodsStatus":"refundBuyerReceived"}`,
		`null`, `[]`, `"str"`, `{"a":{"b":[1,2,{"c":null}]}}`, "\x00\xff", `{"refundFee":NaN}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	s, err := New(Config{AccessKey: testKey, AccessSecret: testSecret, AutoCreate: true, Seed: 1,
		Seller: SellerPolicy{Decision: DecisionAgree}})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	routes := s.routes
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := routes[int(which)%len(routes)]
		path := rt.prefix
		if rt.hasID {
			path += "TQ1234" + rt.suffix
		}
		req := httptest.NewRequest(rt.method, path+"?refundId="+strconv.Itoa(len(body)), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		signedHeaders(req.Header, testKey, testSecret, strconv.FormatInt(time.Now().UnixMilli(), 10), "n")
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() { defer close(done); h.ServeHTTP(rec, req) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("hung on %s body %q\n%s", rt.name, body, buf[:n])
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("%s %s body %q: HTTP %d", rt.method, path, body, rec.Code)
		}
		env := checkEnvelope(t, rec.Body.Bytes())
		if env.Code == codeInternal {
			t.Fatalf("%s body %q: internal error (panic?) %s", rt.name, body, env.Msg)
		}
	})
}

// FuzzAdmin throws arbitrary bodies at the admin endpoints that take one:
// never a 500, always a JSON answer.
func FuzzAdmin(f *testing.F) {
	for i, s := range []string{
		`{"platform":"taobao","sub_orders":[{"sub_order_id":"S1","amount":1}]}`,
		`{"platform":"1688","order_id":"3305075341149134260","seller":{"decision":"refuse","decide_after":"1s"}}`,
		`{"type":"price_modify","total_amount":-5}`, `{"action":"agree"}`, `{"latency_min":"1ms","error_rate":0.5}`,
		`{"decision":"manual"}`, `{"sub_orders":[null]}`, `null`, `{`, `{"decide_after":1e99}`,
	} {
		f.Add(uint8(i), []byte(s))
	}
	s, err := New(Config{AccessKey: testKey, AccessSecret: testSecret, AutoCreate: true, Seed: 1})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Handler()
	targets := []struct{ method, path string }{
		{"POST", "/_sandbox/orders"}, {"POST", "/_sandbox/orders/O1/events"}, {"POST", "/_sandbox/refunds/R1/actions"},
		{"PUT", "/_sandbox/faults"}, {"PUT", "/_sandbox/seller"},
	}
	// An order and a refund so events and actions reach their validation.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/_sandbox/orders", strings.NewReader(`{"platform":"taobao","order_id":"O1"}`)))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		tg := targets[int(which)%len(targets)]
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tg.method, tg.path, bytes.NewReader(body)))
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: HTTP %d %s", tg.method, tg.path, body, rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s %q: body %q is not JSON", tg.method, tg.path, body, rec.Body)
		}
		s.SetFaults(Faults{}) // keep injected faults from leaking into later inputs
	})
}
