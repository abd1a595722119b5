package apiclient_test

// The client against the seed pages' own examples: each documented response
// (internal/sandbox/testdata/seeds, one copy shared with the sandbox's
// tests) is served byte for byte from a local server, and the client must
// decode it exactly. Kept to the client's public calls and wire fields so it
// adapts easily when the client's types change.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
)

const seedDir = "../sandbox/testdata/seeds"

// seedExchange is a seed page's request line and example response.
type seedExchange struct {
	method, path string // path without query, {refundId} where the page takes an id
	response     []byte
}

func loadSeed(t *testing.T, dir string) seedExchange {
	t.Helper()
	req, err := os.ReadFile(filepath.Join(seedDir, dir, "request.http"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(req), "\n")
	method, target, _ := strings.Cut(line, " ")
	path, _, _ := strings.Cut(target, "?")
	resp, err := os.ReadFile(filepath.Join(seedDir, dir, "response.json"))
	if err != nil {
		t.Fatal(err)
	}
	return seedExchange{method: method, path: path, response: resp}
}

// variant rewrites the envelope's code and developId, keeping data byte for byte.
func variant(t *testing.T, raw []byte, code int, developID any) []byte {
	t.Helper()
	var env map[string]json.RawMessage
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	env["code"], _ = json.Marshal(code)
	env["developId"], _ = json.Marshal(developID)
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveSeed starts a server answering every request with body and returns a
// client for it and the method and path of the last request.
func serveSeed(t *testing.T, body []byte) (*apiclient.Client, func() (string, string)) {
	t.Helper()
	var method, path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method, path = r.Method, r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	c, err := apiclient.New(apiclient.Config{BaseURL: srv.URL, AccessKey: "58c0201dfdf148eca63cbf6bb5e7cf03",
		AccessSecret: "seed-secret", UserID: "2100007341207", Retry: apiclient.RetryPolicy{MaxAttempts: 1},
		Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c, func() (string, string) { return method, path }
}

// undecoded lists the keys of a JSON value that no json tag of t takes,
// recursively. A type with its own UnmarshalJSON, or a json.RawMessage,
// takes whatever it is given (its fields are checked one by one instead).
func undecoded(t reflect.Type, v any, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		return nil
	}
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct {
			return []string{path + ": an object into " + t.String()}
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" {
				fields[name] = t.Field(i).Type
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, undecoded(ft, v[k], path+"."+k)...)
		}
	case []any:
		for _, el := range v {
			out = append(out, undecoded(t.Elem(), el, path+"[]")...)
		}
	}
	return out
}

// checkDecodes fails when the page's data has a key the client's type drops.
func checkDecodes(t *testing.T, raw []byte, into any) {
	t.Helper()
	var env struct {
		Data any `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	if lost := undecoded(reflect.TypeOf(into), env.Data, "data"); len(lost) > 0 {
		t.Errorf("documented fields the client's %T does not decode: %s", into, strings.Join(lost, ", "))
	}
}

// eachForm runs check on the page's response with code 200 and developId in
// both documented forms (string and integer), and checks that the page's own
// placeholder code, when it is not 200, is not taken for success.
func eachForm(t *testing.T, seed seedExchange, call func(c *apiclient.Client) (requestID, developID string, err error),
	check func(t *testing.T, err error)) {
	t.Helper()
	var page struct {
		Code      int             `json:"code"`
		DevelopID json.RawMessage `json:"developId"`
	}
	if err := json.Unmarshal(seed.response, &page); err != nil {
		t.Fatal(err)
	}
	for _, form := range []struct {
		name string
		dev  any
		want string
	}{{"developId string", "1021090911993463110", "1021090911993463110"}, {"developId integer", 1021090911993463110, "1021090911993463110"}} {
		t.Run(form.name, func(t *testing.T) {
			c, last := serveSeed(t, variant(t, seed.response, 200, form.dev))
			_, dev, err := call(c)
			if m, p := last(); m != seed.method || !pathMatches(seed.path, p) {
				t.Errorf("client sent %s %s; the page documents %s %s", m, p, seed.method, seed.path)
			}
			if dev != form.want {
				t.Errorf("DevelopID %q; want %q", dev, form.want)
			}
			check(t, err)
		})
	}
	if page.Code != 200 {
		t.Run("page as shown", func(t *testing.T) {
			c, _ := serveSeed(t, seed.response)
			_, _, err := call(c)
			var ae *apiclient.APIError
			if !errors.As(err, &ae) || ae.Code != page.Code {
				t.Errorf("the page's placeholder code %d: err %v; want an *APIError with that code, not success", page.Code, err)
			}
		})
	}
}

// pathMatches compares a path with a documented template ({refundId} any segment).
func pathMatches(tmpl, path string) bool {
	prefix, suffix, ok := strings.Cut(tmpl, "{refundId}")
	if !ok {
		return tmpl == path
	}
	return strings.HasPrefix(path, prefix) && strings.HasSuffix(path, suffix) && len(path) > len(prefix)+len(suffix)
}

func TestSeedAlibabaGoodsReturnDecodes(t *testing.T) {
	seed := loadSeed(t, "000_alibaba_goods_return")
	checkDecodes(t, seed.response, apiclient.GoodsReturnResponse{})
	var got apiclient.GoodsReturnResponse
	eachForm(t, seed, func(c *apiclient.Client) (string, string, error) {
		res, err := c.AlibabaGoodsReturn(context.Background(), apiclient.GoodsReturnRequest{RefundID: "TQ1", LogisticsCompanyNo: "SF", FreightBill: "SF1234567890"})
		got = res.Data
		return res.RequestID, res.DevelopID, err
	}, func(t *testing.T, err error) {
		// The page's example says success false: a nested failure.
		var ae *apiclient.APIError
		if !errors.As(err, &ae) || !ae.Nested() {
			t.Errorf("err %v; want a nested *APIError (success false)", err)
		}
		if got != (apiclient.GoodsReturnResponse{ErrorCode: "", ErrorInfo: "", Success: false}) {
			t.Errorf("data %+v; want the page's empty errorCode and errorInfo, success false", got)
		}
	})
}

func TestSeedTaobaoSubmitMessageDecodes(t *testing.T) {
	seed := loadSeed(t, "001_taobao_submit_message")
	checkDecodes(t, seed.response, apiclient.SubmitMessageResponse{})
	var got apiclient.SubmitMessageResponse
	var reqID string
	eachForm(t, seed, func(c *apiclient.Client) (string, string, error) {
		res, err := c.TaobaoSubmitMessage(context.Background(), apiclient.SubmitMessageRequest{RefundID: "1", RefundMessage: "hi"})
		got, reqID = res.Data, res.RequestID
		return res.RequestID, res.DevelopID, err
	}, func(t *testing.T, err error) {
		if err != nil {
			t.Fatalf("err %v", err)
		}
		if got.Currency != "CNY" || got.DistributorID != "1231294146025" || !got.MessageSubmitSuccess ||
			reqID != "5b950f5f7b064dc889c1a878b5c16234" {
			t.Errorf("data %+v requestId %q; want the page's CNY, 1231294146025, true, 5b950f5f…", got, reqID)
		}
	})
}

func TestSeedAlibabaRefundInfoDecodesAll71Fields(t *testing.T) {
	seed := loadSeed(t, "002_alibaba_refund_info")
	checkDecodes(t, seed.response, apiclient.RefundInfo{})
	var page struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(seed.response, &page); err != nil || len(page.Data) != 71 {
		t.Fatalf("fixture: %d data fields (%v); want 71", len(page.Data), err)
	}
	var got apiclient.RefundInfo
	eachForm(t, seed, func(c *apiclient.Client) (string, string, error) {
		res, err := c.AlibabaRefundInfo(context.Background(), "TQ1234567890123456")
		got = res.Data
		return res.RequestID, res.DevelopID, err
	}, func(t *testing.T, err error) {
		if err != nil {
			t.Fatalf("err %v; want all 71 fields decoded", err)
		}
		// The page's placeholders: "string", 0 and true.
		for name, ok := range map[string]bool{
			"refundId":           got.RefundID == "string",
			"status":             string(got.Status) == "string",
			"gmtCreate":          got.GmtCreate == "string",
			"gmtTimeOut":         got.GmtTimeOut == "string",
			"freightBill":        got.FreightBill == "string",
			"applyReason":        got.ApplyReason == "string",
			"sellerLoginId":      got.SellerLoginID == "string",
			"orderEntryIdList":   got.OrderEntryIDList == "string",
			"orderId":            got.OrderID == 0,
			"applyPayment":       got.ApplyPayment == 0,
			"canRefundPayment":   got.CanRefundPayment == 0,
			"goodsStatus":        got.GoodsStatus == 0,
			"goodsReceived":      got.GoodsReceived,
			"onlyRefund":         got.OnlyRefund,
			"refundGoods":        got.RefundGoods,
			"buyerSendGoods":     got.BuyerSendGoods,
			"supportNewSteppay":  got.SupportNewSteppay,
			"sellerUserId (str)": string(got.SellerUserID) == "string",
		} {
			if !ok {
				t.Errorf("%s decoded wrong: %+v", name, got)
			}
		}
	})
}

func TestSeedTaobaoCancelDecodes(t *testing.T) {
	seed := loadSeed(t, "003_taobao_cancel")
	checkDecodes(t, seed.response, apiclient.CancelResponse{})
	// logisticCompanyCode (sic) is taken by LogisticsCompany's own decoder:
	// a page value must reach LogisticsCompanyCode.
	withCode := bytes.Replace(seed.response, []byte(`"logisticCompanyCode": ""`), []byte(`"logisticCompanyCode": "SF"`), 1)
	if bytes.Equal(withCode, seed.response) {
		t.Fatal("fixture lacks logisticCompanyCode")
	}
	seed.response = withCode
	var got apiclient.CancelResponse
	eachForm(t, seed, func(c *apiclient.Client) (string, string, error) {
		res, err := c.TaobaoCancel(context.Background(), "5522969564146403731")
		got = res.Data
		return res.RequestID, res.DevelopID, err
	}, func(t *testing.T, err error) {
		// The page's example says cancelSuccess false: a flag failure.
		var ae *apiclient.APIError
		if !errors.As(err, &ae) || !ae.Nested() {
			t.Errorf("err %v; want a nested *APIError (cancelSuccess false)", err)
		}
		agg := got.RefundOrderAggregate
		lg := agg.Logistics
		if got.CancelSuccess || agg.RefundOrder.RefundStatus != "" || agg.RefundOrder.RefundType != 0 ||
			agg.PurchaseOrderLine.CreateTime != 0 || agg.PurchaseOrderLine.Quantity != 0 ||
			string(agg.PurchaseOrderLine.Properties) == "" || lg == nil || lg.LogisticsCompany.LogisticsCompanyCode != "SF" {
			t.Errorf("data %+v logistics %+v; want the page's values, logisticCompanyCode read", got, lg)
		}
	})
}

func TestSeedTaobaoRenderDecodes(t *testing.T) {
	seed := loadSeed(t, "004_taobao_render")
	checkDecodes(t, seed.response, apiclient.RenderResponse{})
	var got apiclient.RenderResponse
	eachForm(t, seed, func(c *apiclient.Client) (string, string, error) {
		res, err := c.TaobaoRender(context.Background(), apiclient.RenderRequest{SubOrderID: "1034499579120189839", GoodsStatus: 1, RefundType: 1})
		got = res.Data
		return res.RequestID, res.DevelopID, err
	}, func(t *testing.T, err error) {
		if err != nil {
			t.Fatalf("err %v", err)
		}
		tpl := got.RefundOrderTemplate
		if got.Currency != "string" || got.DistributorID != "string" || got.SaleFlag != nil ||
			len(tpl.GoodsStatusList) != 1 || tpl.GoodsStatusList[0] != "string" || len(tpl.RefundTypeList) != 1 ||
			!tpl.MaxRefundFee.CanEditRefundFee || tpl.MaxRefundFee.FeeTips != "string" ||
			len(tpl.RefundReasons) != 1 || tpl.RefundReasons[0].ReasonDesc != "string" ||
			!tpl.RefundOrder.CanEditFee || tpl.RefundOrder.RefundStatus != "string" || tpl.RefundOrder.TimeoutType != "string" {
			t.Errorf("data %+v; want the page's placeholders and no saleFlag", got)
		}
	})
}

// TestUndecodedCatchesALostField: the field check is not vacuous.
func TestUndecodedCatchesALostField(t *testing.T) {
	type inner struct {
		X int `json:"x"`
	}
	type outer struct {
		A  string  `json:"a"`
		In []inner `json:"in"`
	}
	v := map[string]any{"a": "", "b": 1, "in": []any{map[string]any{"x": 1, "y": 2}}}
	if got := undecoded(reflect.TypeFor[outer](), v, "data"); strings.Join(got, " ") != "data.b data.in[].y" {
		t.Errorf("undecoded = %q; want data.b and data.in[].y", got)
	}
}
