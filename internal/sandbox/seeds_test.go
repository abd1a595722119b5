package sandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/platform"
)

// seedFixture is one seed page's example exchange (testdata/seeds/*/).
type seedFixture struct {
	method, path string   // path with {refundId} where the page takes an id
	body         []byte   // nil without a body
	response     any      // the page's example response, numbers as json.Number
	nullable     []string // JSON paths the page declares nullable; "x.*" is every field of x
}

func loadSeedFixture(t *testing.T, dir string) seedFixture {
	t.Helper()
	dir = filepath.Join("testdata", "seeds", dir)
	req, err := os.ReadFile(filepath.Join(dir, "request.http"))
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := bytes.Cut(req, []byte("\n\n"))
	line, _, _ := strings.Cut(string(head), "\n")
	var f seedFixture
	f.method, f.path, _ = strings.Cut(line, " ")
	if len(bytes.TrimSpace(body)) > 0 {
		f.body = body
	}
	resp, err := os.ReadFile(filepath.Join(dir, "response.json"))
	if err != nil {
		t.Fatal(err)
	}
	f.response = decodeNumbers(t, resp)
	nul, err := os.ReadFile(filepath.Join(dir, "nullable.txt"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(nul))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			f.nullable = append(f.nullable, l)
		}
	}
	return f
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

func (f seedFixture) isNullable(path string) bool {
	for _, n := range f.nullable {
		if n == path {
			return true
		}
		if parent, ok := strings.CutSuffix(n, ".*"); ok {
			if rest, ok := strings.CutPrefix(path, parent+"."); ok && !strings.ContainsAny(rest, ".[") {
				return true
			}
		}
	}
	return false
}

// jsonKind names a decoded JSON value's type.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// shapeDiff lists where got differs from want in field names or JSON kinds:
// an object must have exactly want's keys, every value want's kind (null
// only where the page marks the field nullable), every array element the
// kind of want's first element. developId may be a string or a number: the
// pages disagree (testdata/seeds/README.md).
func shapeDiff(f seedFixture, path string, want, got any) []string {
	at := path
	if at == "" {
		at = "(top)"
	}
	wk, gk := jsonKind(want), jsonKind(got)
	switch {
	case gk == "null" && (wk == "null" || f.isNullable(path)):
		return nil
	case path == "developId" && (gk == "string" || gk == "number"):
		return nil
	case wk != gk:
		return []string{fmt.Sprintf("%s: %s; the page shows %s", at, gk, wk)}
	}
	var diffs []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for _, k := range sortedKeys(w) {
			p := strings.TrimPrefix(path+"."+k, ".")
			if _, ok := g[k]; !ok {
				diffs = append(diffs, p+": missing")
				continue
			}
			diffs = append(diffs, shapeDiff(f, p, w[k], g[k])...)
		}
		for _, k := range sortedKeys(g) {
			if _, ok := w[k]; !ok {
				diffs = append(diffs, strings.TrimPrefix(path+"."+k, ".")+": not on the page")
			}
		}
	case []any:
		if len(w) == 0 {
			break
		}
		for _, el := range got.([]any) {
			diffs = append(diffs, shapeDiff(f, path+"[]", w[0], el)...)
		}
	}
	return diffs
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// exchange sends the fixture's request with refundId put in (path, query
// and body) and returns the decoded answer.
func (e *testEnv) exchange(f seedFixture, refundID string, bodyPatch map[string]any) (apiResp, any) {
	e.t.Helper()
	var body any
	if f.body != nil {
		var m map[string]any
		if err := json.Unmarshal(f.body, &m); err != nil {
			e.t.Fatalf("fixture body %s: %v", f.body, err)
		}
		if _, ok := m["refundId"]; ok && refundID != "" {
			m["refundId"] = refundID
		}
		for k, v := range bodyPatch {
			m[k] = v
		}
		body = m
	}
	r := e.call(f.method, fill(f.path, refundID), body)
	if r.Code != codeOK {
		e.t.Fatalf("%s %s: code %d (%s); want success", f.method, f.path, r.Code, r.Msg)
	}
	return r, decodeNumbers(e.t, r.Raw)
}

// TestSeedFixturesMatchTheDefaultProfile: the documented paths of the five
// seed pages are the default profile's, so the fixtures drive the sandbox
// as they are.
func TestSeedFixturesMatchTheDefaultProfile(t *testing.T) {
	for dir, ep := range map[string]platform.Endpoint{
		"000_alibaba_goods_return": platform.AlibabaGoodsReturn, "001_taobao_submit_message": platform.TaobaoSubmitMessage,
		"002_alibaba_refund_info": platform.AlibabaRefundInfo, "003_taobao_cancel": platform.TaobaoCancel,
		"004_taobao_render": platform.TaobaoRender,
	} {
		f := loadSeedFixture(t, dir)
		path, _, _ := strings.Cut(f.path, "?")
		if fact := prof.Endpoint(ep); fact.Path != path || fact.Method != f.method {
			t.Errorf("%s: the page documents %s %s; the default profile has %s %s", dir, f.method, path, fact.Method, fact.Path)
		}
	}
}

// TestSandboxAnswersAsTheSeedPages: the sandbox's responses to the five
// documented endpoints have exactly the field names and JSON types of the
// pages' examples (null only where a page marks the field nullable).
func TestSandboxAnswersAsTheSeedPages(t *testing.T) {
	e := newEnv(t, nil)
	check := func(t *testing.T, f seedFixture, got any) {
		t.Helper()
		if diffs := shapeDiff(f, "", f.response, got); len(diffs) > 0 {
			t.Errorf("the sandbox's answer differs from the page:\n  %s", strings.Join(diffs, "\n  "))
		}
	}
	t.Run("000 alibaba goods return", func(t *testing.T) {
		f := loadSeedFixture(t, "000_alibaba_goods_return")
		id := e.abRefundIn(abWaitSend)
		// The page's placeholders name no real carrier: the nested failure.
		r, got := e.exchange(f, id, nil)
		var fail goodsReturnResp
		if err := json.Unmarshal(r.Data, &fail); err != nil || fail.Success || fail.ErrorCode == "" || fail.ErrorInfo == "" {
			t.Fatalf("goods return with the page's placeholders: %s; want success false with errorCode and errorInfo", r.Data)
		}
		check(t, f, got)
		// A real one: success, errorCode and errorInfo null.
		r, got = e.exchange(f, id, map[string]any{"logisticsCompanyNo": "SF", "freightBill": "SF1234567890"})
		if string(r.Data) != `{"errorCode":null,"errorInfo":null,"success":true}` {
			t.Errorf("goods return data %s; want success with errorCode and errorInfo null", r.Data)
		}
		check(t, f, got)
	})
	t.Run("001 taobao submit message", func(t *testing.T) {
		f := loadSeedFixture(t, "001_taobao_submit_message")
		_, got := e.exchange(f, e.tbRefundIn(tbWaitAgree), nil)
		check(t, f, got)
	})
	t.Run("002 alibaba refund info", func(t *testing.T) {
		f := loadSeedFixture(t, "002_alibaba_refund_info")
		for _, status := range []string{abWaitAgree, abWaitModify, abWaitReceive, abSuccess} {
			_, got := e.exchange(f, e.abRefundIn(status), nil)
			check(t, f, got)
			if n := len(got.(map[string]any)["data"].(map[string]any)); n != 71 {
				t.Errorf("%s: %d data fields; want the page's 71", status, n)
			}
		}
	})
	t.Run("003 taobao cancel", func(t *testing.T) {
		f := loadSeedFixture(t, "003_taobao_cancel")
		for _, status := range []string{tbWaitAgree, tbWaitReturn, tbRefused} {
			r, got := e.exchange(f, e.tbRefundIn(status), nil)
			check(t, f, got)
			if !bytes.Contains(r.Data, []byte(`"logisticCompanyCode"`)) {
				t.Errorf("cancel from %s: %s; want the page's logisticCompanyCode (sic)", status, r.Data)
			}
		}
	})
	t.Run("004 taobao render", func(t *testing.T) {
		f := loadSeedFixture(t, "004_taobao_render")
		_, got := e.exchange(f, "", nil)
		check(t, f, got) // no saleFlag: the /open render documents none
	})
}

// TestShapeDiffCatchesDrift: the comparison is not vacuous.
func TestShapeDiffCatchesDrift(t *testing.T) {
	f := loadSeedFixture(t, "003_taobao_cancel")
	for name, tc := range map[string]struct {
		mutate func(map[string]any)
		want   []string
	}{
		"renamed key": {func(m map[string]any) {
			lc := m["data"].(map[string]any)["refundOrderAggregate"].(map[string]any)["logistics"].(map[string]any)["logisticsCompany"].(map[string]any)
			lc["logisticsCompanyCode"] = lc["logisticCompanyCode"]
			delete(lc, "logisticCompanyCode")
		}, []string{"data.refundOrderAggregate.logistics.logisticsCompany.logisticCompanyCode: missing",
			"data.refundOrderAggregate.logistics.logisticsCompany.logisticsCompanyCode: not on the page"}},
		"extra key": {func(m map[string]any) { m["data"].(map[string]any)["saleFlag"] = true }, []string{"data.saleFlag: not on the page"}},
		"wrong kind": {func(m map[string]any) {
			m["data"].(map[string]any)["refundOrderAggregate"].(map[string]any)["refundOrder"].(map[string]any)["refundStatus"] = json.Number("0")
		}, []string{"data.refundOrderAggregate.refundOrder.refundStatus: number; the page shows string"}},
		"null where not nullable": {func(m map[string]any) {
			m["data"].(map[string]any)["refundOrderAggregate"].(map[string]any)["logistics"] = nil
		}, []string{"data.refundOrderAggregate.logistics: null; the page shows object"}},
	} {
		got := decodeNumbers(t, []byte(mustJSON(t, f.response)))
		tc.mutate(got.(map[string]any))
		if diffs := shapeDiff(f, "", f.response, got); !slices.Equal(diffs, tc.want) {
			t.Errorf("%s: diffs %q; want %q", name, diffs, tc.want)
		}
	}
	// Null is allowed where the page says so, and developId either way.
	got := decodeNumbers(t, []byte(mustJSON(t, f.response))).(map[string]any)
	got["data"].(map[string]any)["currency"] = nil
	got["developId"] = "1021090911993463110"
	if diffs := shapeDiff(f, "", f.response, got); len(diffs) != 0 {
		t.Errorf("nullable currency and string developId: diffs %q; want none", diffs)
	}
}
