package doctor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/time/rate"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/platform"
)

// fakePlatform answers each "METHOD /path" with a fixed status and body;
// anything else with a gateway's 404 page. It knows nothing of the client:
// bodies are written out as the platform would send them.
type fakePlatform struct {
	*httptest.Server
	mu     sync.Mutex
	routes map[string]func(r *http.Request) (int, string)
	got    []string
}

func newFake(t *testing.T, routes map[string]func(r *http.Request) (int, string)) *fakePlatform {
	t.Helper()
	f := &fakePlatform{routes: routes}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.got = append(f.got, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		status, body := http.StatusNotFound, `<html><body>404 Not Found</body></html>`
		if h, ok := f.routes[r.Method+" "+r.URL.Path]; ok {
			status, body = h(r)
		}
		w.Header().Set("Allow", "POST") // read only on a 405
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakePlatform) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func fixed(status int, body string) func(*http.Request) (int, string) {
	return func(*http.Request) (int, string) { return status, body }
}

// ok wraps data in the documented success envelope.
func ok(data string) string {
	return `{"requestId":"5b950f5f7b064dc889c1a878b5c16234","code":200,"developId":"1021090911993463110","msg":"成功","data":` + data + `}`
}

func fail(code int, msg string) string {
	b, _ := json.Marshal(map[string]any{"requestId": "r", "code": code, "msg": msg, "data": nil})
	return string(b)
}

// queryRoute answers the made-up refund id with not found and refundId with data.
func queryRoute(refundID, data string) func(*http.Request) (int, string) {
	return func(r *http.Request) (int, string) {
		if r.URL.Query().Get("refundId") == refundID {
			return 200, ok(data)
		}
		return 200, fail(4041, "逆向单不存在")
	}
}

const (
	queryPath = "GET /v2/taobao/order/refund/query"
	infoPath  = "POST /alibaba/refund/info"
	listPath  = "POST /open/order/refund/queryList"
)

func runDoctor(t *testing.T, url string, opts Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), apiclient.Config{BaseURL: url, AccessKey: "k", AccessSecret: "doctor-unit-secret",
		UserID: "u", RateLimit: rate.Inf}, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if strings.Contains(rep.Patch, "doctor-unit-secret") {
		t.Fatal("the patch holds the secret")
	}
	return rep
}

func check(t *testing.T, rep *Report, key string) Check {
	t.Helper()
	for _, c := range rep.Checks {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("no check %s in %+v", key, rep.Checks)
	return Check{}
}

func decision(rep *Report, key string) (Decision, bool) {
	for _, d := range rep.Decisions {
		if d.Key == key {
			return d, true
		}
	}
	return Decision{}, false
}

func TestUnreachablePlatform(t *testing.T) {
	f := newFake(t, nil)
	f.Close()
	rep := runDoctor(t, f.URL, Options{Platform: Taobao, RefundIDs: []string{"1"}})
	if rep.Result != ResultUnreachable || len(rep.Calls) != 1 || rep.Calls[0].Outcome != string(outCalibration) {
		t.Errorf("result %s, calls %+v; want unreachable after the first call", rep.Result, rep.Calls)
	}
	if c := check(t, rep, "signature"); c.Status != NotObservable || !strings.HasPrefix(c.Detail, "network:") {
		t.Errorf("signature %s %q; want not observable: network", c.Status, c.Detail)
	}
}

// An unknown access key is the configuration's fault, not a guess's: the
// run stops there.
func TestCredentialsRefused(t *testing.T) {
	f := newFake(t, map[string]func(*http.Request) (int, string){queryPath: fixed(200, fail(4012, "access-key 不存在"))})
	rep := runDoctor(t, f.URL, Options{Platform: Taobao, RefundIDs: []string{"1"}, OrderID: "2"})
	if rep.Result != ResultRejected {
		t.Errorf("result %s; want rejected", rep.Result)
	}
	if n := len(f.requests()); n != 2 {
		t.Errorf("%d requests (%v); want 2: the unknown path and the first refusal, then nothing", n, f.requests())
	}
	if c := check(t, rep, "signature"); c.Status != NotObservable || !strings.Contains(c.Detail, "UPSTREAM_ACCESS_KEY") {
		t.Errorf("signature %s %q; want not observable, naming UPSTREAM_ACCESS_KEY", c.Status, c.Detail)
	}
}

// A status that matches no phase is left to the operator, with a line that
// validates once completed; one that contains a phase's name is suggested.
func TestUnmatchedStatusIsTheOperatorsDecision(t *testing.T) {
	f := newFake(t, map[string]func(*http.Request) (int, string){
		queryPath: queryRoute("77", `{"refundOrderAggregate":{"refundOrder":{"refundId":"77","refundStatus":"REFUND_FINISHED"}}}`),
		listPath:  fixed(200, ok(`{"list":[{"refundOrder":{"refundId":"78","refundStatus":"CLOSED_BY_SELLER"}}],"total":1}`)),
	})
	rep := runDoctor(t, f.URL, Options{Platform: Taobao, OrderID: "5", RefundIDs: []string{"77"}})
	c := check(t, rep, "taobao.refund_status")
	if c.Status != Contradicted || !strings.Contains(c.Seen, "REFUND_FINISHED") || !strings.Contains(c.Seen, "CLOSED_BY_SELLER") {
		t.Errorf("taobao.refund_status %s %q; want both statuses listed as outside the map", c.Status, c.Seen)
	}
	for _, ch := range rep.Changes {
		if strings.HasPrefix(ch.Key, "taobao.refund_status") {
			t.Errorf("change %s = %v; a status matching no phase must not be guessed", ch.Key, ch.Value)
		}
	}
	var lines []string
	for _, d := range rep.Decisions {
		if d.Key == "taobao.refund_status" {
			lines = append(lines, d.Suggestion)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "<phase>") || !strings.Contains(lines[1], "taobao.refund_status.closed") || !strings.Contains(lines[1], "perhaps") {
		t.Fatalf("suggestions %q; want a line to complete for REFUND_FINISHED and a suggested closed for CLOSED_BY_SELLER", lines)
	}
	// The operator decides that REFUND_FINISHED is success.
	done := strings.Replace(rep.Patch, "# "+lines[0], `taobao.refund_status.success = { names = ["REFUND_FINISHED", "SUCCESS"], code = 5 }`, 1)
	p, err := platform.Parse([]byte(done), "decided")
	if err != nil {
		t.Fatalf("the completed line does not validate: %v\n%s", err, done)
	}
	if ph, ok := p.TaobaoPhase("REFUND_FINISHED"); !ok || ph != platform.PhaseSuccess {
		t.Errorf("with the decision, REFUND_FINISHED is %q, %v; want success", ph, ok)
	}
}

// A path answering 405 names its method; a path answering like the unknown
// path is reported moved, with a line for the operator.
func TestMethodAndMovedPath(t *testing.T) {
	f := newFake(t, map[string]func(*http.Request) (int, string){
		queryPath:                                fixed(405, `{"code":4003,"msg":"method not allowed"}`),
		"GET /refundhub-doctor/no-such-endpoint": fixed(404, `<html><body>404 Not Found</body></html>`),
	})
	rep := runDoctor(t, f.URL, Options{Platform: Taobao, OrderID: "5"})
	if c := check(t, rep, "endpoints.taobao_query"); c.Status != Contradicted || !strings.Contains(c.Seen, "method not allowed") {
		t.Errorf("taobao_query %s %q; want contradicted: method not allowed", c.Status, c.Seen)
	}
	var method any
	for _, ch := range rep.Changes {
		if ch.Key == "endpoints.taobao_query.method" {
			method = ch.Value
		}
	}
	if method != "POST" {
		t.Errorf("changes %+v; want endpoints.taobao_query.method = POST (the Allow header)", rep.Changes)
	}
	if c := check(t, rep, "endpoints.taobao_list"); c.Status != Contradicted || !strings.Contains(c.Seen, "not found") {
		t.Errorf("taobao_list %s %q; want contradicted: not found", c.Status, c.Seen)
	}
	if d, ok := decision(rep, "endpoints.taobao_list.path"); !ok || d.Suggestion != `endpoints.taobao_list.path = "<the real path>"` {
		t.Errorf("decisions %+v; want the list's path left to the operator", rep.Decisions)
	}
	if rep.PatchError != "" {
		t.Errorf("patch error %s", rep.PatchError)
	}
}

// Where the platform answers an unknown id exactly as an unknown path, a
// not-found says nothing about the path; where it answers a REST-style 404
// with its envelope unlike the unknown path's page, the path is right.
func TestNotFoundAgainstTheUnknownPath(t *testing.T) {
	t.Run("ambiguous", func(t *testing.T) {
		notFound := fixed(200, fail(4041, "not found"))
		f := newFake(t, map[string]func(*http.Request) (int, string){infoPath: notFound,
			"GET /refundhub-doctor/no-such-endpoint": notFound, "GET /alibaba/logistics/company/list": fixed(200, ok(`[]`))})
		rep := runDoctor(t, f.URL, Options{Platform: Alibaba, RefundIDs: []string{"TQ1"}})
		if c := check(t, rep, "endpoints.alibaba_refund_info"); c.Status != NotObservable || !strings.Contains(c.Detail, "path or the id") {
			t.Errorf("refund info %s %q; want not observable: the path or the id", c.Status, c.Detail)
		}
		if c := check(t, rep, "error_codes.not_found"); c.Status != NotObservable {
			t.Errorf("not_found %s; want not observable", c.Status)
		}
		if c := check(t, rep, "signature"); c.Status != Confirmed || !strings.Contains(c.Seen, "alibaba_logistics_companies") {
			t.Errorf("signature %s %q; want confirmed by the carriers' answer", c.Status, c.Seen)
		}
	})
	t.Run("REST 404", func(t *testing.T) {
		f := newFake(t, map[string]func(*http.Request) (int, string){infoPath: fixed(404, fail(4041, "no such refund"))})
		rep := runDoctor(t, f.URL, Options{Platform: Alibaba})
		if c := check(t, rep, "endpoints.alibaba_refund_info"); c.Status != Confirmed {
			t.Errorf("refund info %s %q %q; want confirmed (the 404 carries the platform's envelope)", c.Status, c.Seen, c.Detail)
		}
		if c := check(t, rep, "envelope.error_http_status"); c.Status != Contradicted {
			t.Errorf("error_http_status %s; want contradicted (404, not 200)", c.Status)
		}
		if c := check(t, rep, "endpoints.alibaba_logistics_companies"); c.Status != Contradicted {
			t.Errorf("carriers %s; want contradicted (the gateway's 404 page, as for the unknown path)", c.Status)
		}
	})
}

// A code no class lists, with data, may be the real success code: the
// operator decides (a wrong success code would read failures as success).
func TestAnotherSuccessCode(t *testing.T) {
	f := newFake(t, map[string]func(*http.Request) (int, string){
		"GET /alibaba/logistics/company/list": fixed(200, `{"code":0,"msg":"success","data":[{"companyNo":"SF"}]}`),
	})
	rep := runDoctor(t, f.URL, Options{Platform: Alibaba})
	if d, ok := decision(rep, "envelope.success_code"); !ok || d.Suggestion != "envelope.success_code = 0" {
		t.Errorf("decisions %+v; want envelope.success_code = 0 left to the operator", rep.Decisions)
	}
	for _, ch := range rep.Changes {
		if ch.Key == "envelope.success_code" {
			t.Errorf("the patch sets the success code; it must be the operator's decision")
		}
	}
}

// Amounts, times, unknown fields and a documented misspelling the client
// reads.
func TestDataChecks(t *testing.T) {
	info := `{"refundId":"TQ1","status":"waitbuyersend","applyPayment":12.5,"refundPayment":"3.333",
		"gmtCreate":"2026/05/20 15:40:00","gmtTimeOut":1779000000000,"brandNewField":{"x":1}}`
	f := newFake(t, map[string]func(*http.Request) (int, string){
		infoPath: func(r *http.Request) (int, string) {
			if strings.Contains(r.URL.RawQuery, "TQ1") {
				return 200, ok(info)
			}
			return 200, fail(4041, "not found")
		},
	})
	rep := runDoctor(t, f.URL, Options{Platform: Alibaba, RefundIDs: []string{"TQ1"}})
	if c := check(t, rep, "amounts.alibaba"); c.Status != Contradicted || !strings.Contains(c.Seen, "applyPayment = 12.5") {
		t.Errorf("amounts %s %q; want contradicted by 12.5", c.Status, c.Seen)
	}
	if _, ok := decision(rep, "amounts.alibaba"); !ok {
		t.Errorf("3.333 has a fraction of a fen: want a decision, got %+v", rep.Decisions)
	}
	changes := map[string]any{}
	for _, ch := range rep.Changes {
		changes[ch.Key] = ch.Value
	}
	if changes["amounts.alibaba"] != "yuan" {
		t.Errorf("changes %v; want amounts.alibaba = yuan", changes)
	}
	if l, _ := changes["times.layouts"].([]string); len(l) != 2 || l[0] != "2006/01/02 15:04:05" {
		t.Errorf("times.layouts change %v; want the slash layout first", changes["times.layouts"])
	}
	if d, ok := decision(rep, "times.layouts"); !ok || !strings.Contains(d.Note, "gmtTimeOut") {
		t.Errorf("decisions %+v; want gmtTimeOut (a number) left for a code change", rep.Decisions)
	}
	if len(rep.UnknownFields) != 1 || rep.UnknownFields[0].Field != "brandNewField" {
		t.Errorf("unknown fields %+v; want brandNewField", rep.UnknownFields)
	}
}

func TestCustomDecodersReadTheirKeys(t *testing.T) {
	f := newFake(t, map[string]func(*http.Request) (int, string){
		queryPath: queryRoute("9", `{"refundOrderAggregate":{"refundOrder":{"refundId":"9","refundStatus":"SUCCESS"},
			"logistics":{"receiverAddress":"杭州市","logisticsCompany":{"logisticsCompanyName":"顺丰","logisticCompanyCode":"SF","extra":"?"}}}}`),
	})
	rep := runDoctor(t, f.URL, Options{Platform: Taobao, RefundIDs: []string{"9"}})
	if len(rep.UnknownFields) != 1 || !strings.HasSuffix(rep.UnknownFields[0].Field, "logisticsCompany.extra") {
		t.Errorf("unknown fields %+v; want only logisticsCompany.extra (logisticCompanyCode is the documented misspelling the client reads)", rep.UnknownFields)
	}
}

// The patch is the profile in use with doctor's changes: it replaces that
// file whole and still validates.
func TestPatchKeepsTheProfileInUse(t *testing.T) {
	override := []byte("# mine\n[endpoints.alibaba_refund_reasons]\npath = \"/alibaba/refund/reasons\"\n\n[callbacks.taobao.types]\nREFUND_X = \"refund\"\n")
	f := newFake(t, map[string]func(*http.Request) (int, string){
		infoPath:                              fixed(200, `{"code":4041,"msg":"nf","data":null}`),
		"GET /alibaba/logistics/company/list": fixed(200, `{"code":200,"msg":"OK","data":[]}`),
	})
	prof, err := platform.Parse(override, "mine.toml")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), apiclient.Config{BaseURL: f.URL, AccessKey: "k", AccessSecret: "s", UserID: "u",
		RateLimit: rate.Inf, Profile: prof}, Options{Platform: Alibaba, Override: override, ProfileName: "mine.toml"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PatchError != "" {
		t.Fatalf("patch error %s\n%s", rep.PatchError, rep.Patch)
	}
	p, err := platform.Parse([]byte(rep.Patch), "patch")
	if err != nil {
		t.Fatal(err)
	}
	if p.Endpoint(platform.AlibabaRefundReasons).Path != "/alibaba/refund/reasons" || p.Envelope.SuccessMsg != "OK" {
		t.Errorf("patched profile: reasons at %s, success msg %q; want the file's path kept and doctor's msg", p.Endpoint(platform.AlibabaRefundReasons).Path, p.Envelope.SuccessMsg)
	}
	if k, ok := p.CallbackKind(true, "REFUND_X"); !ok || k != platform.KindRefund {
		t.Errorf("the file's callback type is lost: %q %v", k, ok)
	}
	if !strings.Contains(rep.Patch, "mine.toml") {
		t.Errorf("the patch does not say which file it replaces:\n%s", rep.Patch)
	}
}

// The list's field names: its only array holds the items, a count named so
// is the total, paging keys never are.
func TestListFields(t *testing.T) {
	for _, tc := range []struct {
		name, data   string
		items, total any // the patch's values, nil for none
		totalStatus  Status
	}{
		{"renamed", `{"rows":[],"page":1,"size":20,"totalCount":3}`, "rows", "totalCount", Contradicted},
		{"no total", `{"list":[],"pageNo":1,"pageSize":50,"current":1}`, nil, nil, NotObservable},
		{"as guessed", `{"list":[],"pageNo":1,"pageSize":50,"total":0}`, nil, nil, Confirmed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, map[string]func(*http.Request) (int, string){listPath: fixed(200, ok(tc.data))})
			rep := runDoctor(t, f.URL, Options{Platform: Taobao, OrderID: "5"})
			changes := map[string]any{}
			for _, ch := range rep.Changes {
				changes[ch.Key] = ch.Value
			}
			if changes["taobao.list.items_field"] != tc.items || changes["taobao.list.total_field"] != tc.total {
				t.Errorf("changes %v; want items %v, total %v", changes, tc.items, tc.total)
			}
			if c := check(t, rep, "taobao.list.total_field"); c.Status != tc.totalStatus {
				t.Errorf("total_field %s (%s %s); want %s", c.Status, c.Seen, c.Detail, tc.totalStatus)
			}
		})
	}
}

// TestACodeAtTheProfilesErrorStatusIsReadAsTheClientReadsIt: the profile
// says failures come with HTTP 400 (envelope.error_http_status), and the
// made-up refund id is answered at 400 with a code no class lists. The
// doctor reads it as the client does, by its code: the status is
// confirmed, and whether the code means "not found" is left to the
// operator (it was read as a gateway's HTTP error, and said nothing).
func TestACodeAtTheProfilesErrorStatusIsReadAsTheClientReadsIt(t *testing.T) {
	prof, err := platform.Parse([]byte("[envelope]\nerror_http_status = 400\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	f := newFake(t, map[string]func(*http.Request) (int, string){infoPath: fixed(400, fail(4999, "no such refund"))})
	rep, err := Run(context.Background(), apiclient.Config{BaseURL: f.URL, AccessKey: "k", AccessSecret: "doctor-unit-secret",
		UserID: "u", RateLimit: rate.Inf, Profile: prof}, Options{Platform: Alibaba})
	if err != nil {
		t.Fatal(err)
	}
	if c := check(t, rep, "envelope.error_http_status"); c.Status != Confirmed {
		t.Errorf("error_http_status %s %q; want confirmed (400, as the profile says)", c.Status, c.Seen)
	}
	if d, ok := decision(rep, "error_codes.not_found"); !ok || !strings.Contains(d.Suggestion, "4999") {
		t.Errorf("decisions %+v; want whether 4999 means not found left to the operator", rep.Decisions)
	}
}
