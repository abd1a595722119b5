package apiclient

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/platform"
)

// TestProbeRefusesEndpointsWithSideEffects: whatever it is asked, a probe
// sends nothing to an endpoint that can change the platform, nor to a name
// the profile does not know.
func TestProbeRefusesEndpointsWithSideEffects(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, env(`{}`)) })
	c := newTestClient(t, testConfig(fs.URL))
	refused := 0
	for _, e := range platform.AllEndpoints() {
		if !e.SideEffect() {
			continue
		}
		refused++
		res := c.Probe(context.Background(), ProbeRequest{Endpoint: e, RefundID: "R1", Body: map[string]any{"refundId": "R1"}})
		if !errors.Is(res.Err, ErrSideEffect) {
			t.Errorf("Probe(%s) err = %v; want ErrSideEffect", e, res.Err)
		}
	}
	res := c.Probe(context.Background(), ProbeRequest{Endpoint: "taobao_everything", Body: map[string]any{}})
	if !errors.Is(res.Err, ErrInvalidArgument) {
		t.Errorf("Probe(unknown endpoint) err = %v; want ErrInvalidArgument", res.Err)
	}
	if refused != 8 {
		t.Errorf("%d endpoints have side effects; want 8 (the profile's vocabulary changed: review the probe)", refused)
	}
	if n := fs.count(); n != 0 {
		t.Errorf("the server got %d requests; want none", n)
	}
}

// probeCase is one read-only endpoint with an answer and how to call it.
type probeCase struct {
	e     platform.Endpoint
	req   ProbeRequest
	data  string
	check func(t *testing.T, data any)
}

func readOnlyCases() []probeCase {
	return []probeCase{
		{platform.TaobaoQuery, ProbeRequest{RefundID: "R1"},
			`{"refundOrderAggregate":{"refundOrder":{"refundId":"R1","refundStatus":"SUCCESS"}}}`,
			func(t *testing.T, d any) {
				if q := d.(*QueryRefundResponse); q.RefundOrderAggregate.RefundOrder.RefundStatus != "SUCCESS" {
					t.Errorf("query data = %+v", q)
				}
			}},
		{platform.TaobaoList, ProbeRequest{Body: map[string]any{"purchaseOrderId": "P1", "pageNo": 1, "pageSize": 20}},
			`{"list":[{"refundOrder":{"refundId":"R1"}}],"total":1}`,
			func(t *testing.T, d any) {
				if l := d.(*ListRefundsResponse); len(l.List) != 1 || !l.HasTotal || l.Total != 1 {
					t.Errorf("list data = %+v; want one item and total 1", l)
				}
			}},
		{platform.TaobaoRender, ProbeRequest{Body: RenderRequest{SubOrderID: "S1", RefundType: 1, GoodsStatus: 1}},
			`{"refundOrderTemplate":{"refundTypeList":["1"]}}`,
			func(t *testing.T, d any) {
				if r := d.(*RenderResponse); len(r.RefundOrderTemplate.RefundTypeList) != 1 {
					t.Errorf("render data = %+v", r)
				}
			}},
		{platform.TaobaoReturnLogisticsRender, ProbeRequest{RefundID: "R1"}, `{"currency":"CNY"}`, nil},
		{platform.TaobaoListMessages, ProbeRequest{Body: ListMessagesRequest{RefundID: "R1", PageSize: 20}}, `{"list":[]}`, nil},
		{platform.AlibabaRefundInfo, ProbeRequest{RefundID: "TQ1"}, `{"refundId":"TQ1","status":"refundsuccess"}`,
			func(t *testing.T, d any) {
				if i := d.(*RefundInfo); i.Status != "refundsuccess" {
					t.Errorf("info data = %+v", i)
				}
			}},
		{platform.AlibabaRefundReasons, ProbeRequest{Body: RefundReasonsRequest{OrderID: 1, GoodsStatus: "refundWaitSellerSend"}},
			`{"reasons":[{"id":1,"name":"x"}]}`, nil},
		{platform.AlibabaLogisticsCompanies, ProbeRequest{}, `{"result":[{"companyNo":"SF"}]}`,
			func(t *testing.T, d any) {
				if l := *d.(*[]AlibabaLogisticsCompany); len(l) != 1 || l[0].CompanyNo != "SF" {
					t.Errorf("companies = %+v; want SF (from the object form)", l)
				}
			}},
	}
}

// TestProbeReadOnlyEndpoints: each read-only endpoint is called once, signed,
// with the profile's method and path, and the raw answer is kept next to the
// data decoded by the client's type.
func TestProbeReadOnlyEndpoints(t *testing.T) {
	for _, tc := range readOnlyCases() {
		t.Run(string(tc.e), func(t *testing.T) {
			body := env(tc.data)
			fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 200, body) })
			c := newTestClient(t, testConfig(fs.URL))
			tc.req.Endpoint = tc.e
			res := c.Probe(context.Background(), tc.req)
			if res.Err != nil {
				t.Fatalf("Probe: %v", res.Err)
			}
			fact := platform.Default().Endpoint(tc.e)
			reqs := fs.requests()
			if len(reqs) != 1 {
				t.Fatalf("server got %d requests; want 1 (no retries)", len(reqs))
			}
			got := reqs[0]
			wantPath := strings.ReplaceAll(fact.Path, "{refundId}", tc.req.RefundID)
			if got.Method != fact.Method || got.Path != wantPath || res.Method != fact.Method || res.Path != wantPath {
				t.Errorf("sent %s %s (reported %s %s); want %s %s", got.Method, got.Path, res.Method, res.Path, fact.Method, wantPath)
			}
			// The documented signature, computed here on its own:
			// UPPER(HEX(MD5(access-key + timestamp + nonce-str + secret))).
			h := got.Header
			sum := md5.Sum([]byte(h.Get("access-key") + h.Get("timestamp") + h.Get("nonce-str") + testSecret))
			if want := strings.ToUpper(hex.EncodeToString(sum[:])); h.Get("signature") != want || h.Get("user-id") != testUser {
				t.Errorf("signature %q, user-id %q; want %q, %q", h.Get("signature"), h.Get("user-id"), want, testUser)
			}
			if res.HTTPStatus != 200 || string(res.Body) != body || res.Envelope == nil || res.Envelope.Code != 200 ||
				res.Envelope.Msg != "成功" || res.Envelope.DevelopID != "1021090911993463110" {
				t.Errorf("result status %d, body %q, envelope %+v; want the raw answer and its envelope", res.HTTPStatus, res.Body, res.Envelope)
			}
			if reflect.TypeOf(res.Data) != reflect.PointerTo(ResponseType(tc.e)) {
				t.Fatalf("Data is %T; want *%v", res.Data, ResponseType(tc.e))
			}
			if tc.check != nil {
				tc.check(t, res.Data)
			}
		})
	}
}

// TestProbeFailuresKeepTheRawAnswer: every kind of failure is reported with
// what the platform sent, so doctor can tell a missing path from a rejected
// signature from a network failure.
func TestProbeFailuresKeepTheRawAnswer(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		wantErr   any
		wantClass platform.ErrorClass
		wantEnv   bool
	}{
		{"404 with an envelope", 404, `{"code":4041,"msg":"no such path","data":null}`, &HTTPError{}, platform.ClassNotFound, true},
		{"404 page", 404, `<html>Not Found</html>`, &HTTPError{}, platform.ClassUnknown, false},
		{"signature rejected", 200, `{"code":4013,"msg":"签名错误","data":null}`, &APIError{}, platform.ClassAuthBadSignature, true},
		{"unlisted code", 200, `{"code":401,"msg":"sign error"}`, &APIError{}, platform.ClassUnknown, true},
		{"not an envelope", 200, `Bad Gateway`, &DecodeError{}, platform.ClassUnknown, false},
		{"data the type cannot hold", 200, env(`{"refundId":"TQ1","gmtTimeOut":1779000000000}`), &DecodeError{}, platform.ClassUnknown, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, tc.status, tc.body) })
			c := newTestClient(t, testConfig(fs.URL))
			res := c.Probe(context.Background(), ProbeRequest{Endpoint: platform.AlibabaRefundInfo, RefundID: "TQ1"})
			if reflect.TypeOf(res.Err) != reflect.TypeOf(tc.wantErr) {
				t.Fatalf("err = %T %v; want %T", res.Err, res.Err, tc.wantErr)
			}
			if res.HTTPStatus != tc.status || string(res.Body) != tc.body || res.Class != tc.wantClass || (res.Envelope != nil) != tc.wantEnv {
				t.Errorf("status %d, body %q, class %q, envelope %+v; want %d, the raw body, %q, envelope %v",
					res.HTTPStatus, res.Body, res.Class, res.Envelope, tc.status, tc.wantClass, tc.wantEnv)
			}
			if res.Data != nil {
				t.Errorf("Data = %v on a failure; want nil", res.Data)
			}
			if fs.count() != 1 {
				t.Errorf("server got %d requests; want 1 (probes never retry)", fs.count())
			}
		})
	}

	t.Run("network", func(t *testing.T) {
		fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {})
		fs.Close()
		c := newTestClient(t, testConfig(fs.URL))
		res := c.Probe(context.Background(), ProbeRequest{Endpoint: platform.TaobaoQuery, RefundID: "R1"})
		var te *TransportError
		if !errors.As(res.Err, &te) || res.HTTPStatus != 0 || res.Envelope != nil {
			t.Errorf("err %T %v, status %d; want a *TransportError and no response", res.Err, res.Err, res.HTTPStatus)
		}
	})
}

// TestProbeScrubsCredentialsFromTheBody: a server echoing the request's
// headers cannot put the signature or the nonce into a report.
func TestProbeScrubsCredentialsFromTheBody(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeBody(w, 200, `{"code":4013,"msg":"bad signature `+r.Header.Get("signature")+` for nonce `+r.Header.Get("nonce-str")+` secret `+testSecret+`"}`)
	})
	c := newTestClient(t, testConfig(fs.URL))
	res := c.Probe(context.Background(), ProbeRequest{Endpoint: platform.TaobaoQuery, RefundID: "R1"})
	sent := fs.requests()[0].Header
	for _, secret := range []string{sent.Get("signature"), sent.Get("nonce-str"), testSecret} {
		if strings.Contains(string(res.Body), secret) || strings.Contains(res.Envelope.Msg, secret) || strings.Contains(res.Err.Error(), secret) {
			t.Errorf("the probe's answer contains a credential: body %q", res.Body)
		}
	}
}

// TestProbeUnknownPath asks for a path no profile endpoint uses, and refuses
// when a (strange) profile puts an endpoint there.
func TestProbeUnknownPath(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) { writeBody(w, 404, `{"status":404}`) })
	c := newTestClient(t, testConfig(fs.URL))
	res := c.ProbeUnknownPath(context.Background())
	var he *HTTPError
	if !errors.As(res.Err, &he) || res.HTTPStatus != 404 || res.Path != UnknownPath {
		t.Errorf("ProbeUnknownPath = %d %v at %s; want the 404 from %s", res.HTTPStatus, res.Err, res.Path, UnknownPath)
	}
	if got := fs.requests(); len(got) != 1 || got[0].Method != http.MethodGet || got[0].Path != UnknownPath {
		t.Errorf("requests = %+v; want one GET %s", got, UnknownPath)
	}

	cfg := testConfig(fs.URL)
	cfg.Profile = mustProfile(t, "[endpoints.taobao_query]\npath = \"/refundhub-doctor/query\"\n")
	c = newTestClient(t, cfg)
	if res := c.ProbeUnknownPath(context.Background()); !errors.Is(res.Err, ErrInvalidArgument) {
		t.Errorf("with a profile path under it: err = %v; want ErrInvalidArgument", res.Err)
	}
	if fs.count() != 1 {
		t.Errorf("server got %d requests; want the refused probe to send nothing", fs.count())
	}
}

// TestProbeDecodesYuan: with amounts in yuan the data is read as the
// client's methods read it (fen inside the product).
func TestProbeDecodesYuan(t *testing.T) {
	fs := newFakeServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		writeBody(w, 200, env(`{"refundOrderAggregate":{"refundOrder":{"refundFee":"12.34"}}}`))
	})
	cfg := testConfig(fs.URL)
	cfg.Profile = mustProfile(t, "[amounts]\ntaobao = \"yuan\"\n")
	c := newTestClient(t, cfg)
	res := c.Probe(context.Background(), ProbeRequest{Endpoint: platform.TaobaoQuery, RefundID: "R1"})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if fee := res.Data.(*QueryRefundResponse).RefundOrderAggregate.RefundOrder.RefundFee; fee != 1234 {
		t.Errorf("refundFee = %d; want 1234 fen", fee)
	}
}
