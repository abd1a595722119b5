package sandbox

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// otherProfile changes every kind of guess the sandbox takes from the
// profile: a client with any of the default guesses baked in fails against
// a sandbox running it.
const otherProfile = `
[envelope]
success_code = 10000
success_msg = "OK"
error_http_status = 400

[signature]
parts = ["secret", "timestamp", "access-key", "nonce-str"]
letter_case = "lower"
window = "60s"

[error_codes]
not_found = [40400]
invalid_field = [40003, 40004]
auth_bad_signature = [40113]

[endpoints.taobao_query]
path = "/v2/taobao/refund/detail"
[endpoints.taobao_cancel]
path = "/open/order/refund/cancel/{refundId}"
method = "POST"
family = "open"

[times]
layouts = ["2006/01/02T15:04:05"]
utc_offset = "-05:00"

[amounts]
taobao = "yuan"
alibaba = "yuan"

[taobao.refund_status]
wait_seller_agree = { names = ["TB_WAIT_SELLER", "TB_NEW"], code = 10 }
wait_buyer_return = { names = ["TB_WAIT_RETURN"], code = 11 }
wait_seller_receive = { names = ["TB_WAIT_RECEIVE"], code = 12 }
seller_refused = { names = ["TB_REFUSED"], code = 13 }
closed = { names = ["TB_CLOSED"], code = 14 }
success = { names = ["TB_SUCCESS"], code = 15 }

[taobao.refund_type]
refund_only = 7
return_and_refund = 8

[taobao.goods_status]
not_shipped = 4
not_received = 5
received = 6

[taobao.list]
order_filter_field = "orderId"
page_no_field = "page"
page_size_field = "size"
first_page = 0
items_field = "records"
total_field = "totalCount"

[alibaba.refund_status]
wait_seller_agree = { names = ["AB_WAIT_SELLER"] }
seller_refused = { names = ["AB_REFUSED"] }
wait_buyer_return = { names = ["AB_WAIT_RETURN"] }
wait_seller_receive = { names = ["AB_WAIT_RECEIVE"] }
success = { names = ["AB_SUCCESS"] }
closed = { names = ["AB_CLOSED"] }

[alibaba.goods_status]
in_sale_wait_seller_send = "G1"
in_sale_wait_buyer_receive = "G2"
in_sale_buyer_received = "G3"
after_sale_not_received = "G4"
after_sale_received = "G5"

[alibaba.dispute_request]
refund = "ONLY_REFUND"
return_refund = "RETURN_REFUND"

# Tables merge key by key: the documented names are removed ("") so that
# B_TB_REFUND and A_TB_STATUS are the first of their kinds in byte order.
[callbacks.taobao]
types = { B_TB_REFUND = "refund", TB_STATUS = "order_status", A_TB_STATUS = "order_status", TB_PRICE = "price_modify", ORDER_CREATE = "", ORDER_CANCEL = "", ORDER_PAY_SUCCESS = "", ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY = "", ORDER_BUYER_VIEW_ORDER_BUYER_REFUND = "" }
[callbacks.taobao.fields]
refund = ["refundId", "refundStatus", "refundAmount", "mystery"]
order_status = ["orderId", "orderStatus", "totalAmount", "tbCreateTime"]
`

// otherSign signs as otherProfile says: secret, timestamp, access key,
// nonce; md5; lower case.
func otherSign(h http.Header, ts string) {
	const nonce = "n0nce"
	sum := md5.Sum([]byte(testSecret + ts + testKey + nonce))
	h.Set(headerAccessKey, testKey)
	h.Set(headerTimestamp, ts)
	h.Set(headerNonce, nonce)
	h.Set(headerUserID, "2100007341207")
	h.Set(headerSignature, hex.EncodeToString(sum[:]))
}

func TestSandboxFollowsTheProfile(t *testing.T) {
	other := mustProfile(t, otherProfile)
	rc := newReceiver(t, nil)
	e := newEnv(t, func(c *Config) {
		c.Profile, c.CallbackURL, c.PushConcurrency, c.TaobaoNumericStatus = other, rc.srv.URL, 1, true
	})
	now := func() string { return strconv.FormatInt(time.Now().UnixMilli(), 10) }
	call := func(method, path string, body any) apiResp {
		t.Helper()
		return e.callWith(method, path, body, func(h http.Header) { otherSign(h, now()) })
	}
	ok := func(method, path string, body any) apiResp {
		t.Helper()
		r := call(method, path, body)
		if r.HTTPStatus != http.StatusOK || r.Code != 10000 || r.Msg != "OK" {
			t.Fatalf("%s %s: HTTP %d code %d %q; want 200, the profile's 10000 OK", method, path, r.HTTPStatus, r.Code, r.Msg)
		}
		return r
	}
	p := e.paths

	t.Run("signature", func(t *testing.T) {
		// The documented default rule is refused, with the profile's code and HTTP status.
		r := e.callWith(http.MethodGet, p.AlibabaLogisticsCompanies, nil, func(h http.Header) {
			signedHeaders(h, testKey, testSecret, now(), "n0nce")
		})
		if r.HTTPStatus != http.StatusBadRequest || r.Code != 40113 {
			t.Errorf("signed by the default rule: HTTP %d code %d; want 400 and 40113", r.HTTPStatus, r.Code)
		}
		// A timestamp outside the profile's 60s window.
		r = e.callWith(http.MethodGet, p.AlibabaLogisticsCompanies, nil, func(h http.Header) {
			otherSign(h, strconv.FormatInt(time.Now().Add(-2*time.Minute).UnixMilli(), 10))
		})
		if r.Code != other.Code(platform.ClassAuthExpiredTimestamp) {
			t.Errorf("2 minutes old: code %d; want the expired code", r.Code)
		}
		ok(http.MethodGet, p.AlibabaLogisticsCompanies, nil)
	})

	var tbID string
	t.Run("taobao", func(t *testing.T) {
		r := ok(http.MethodPost, p.TaobaoRender, renderReq{SubOrderID: "9100000000000000001", RefundType: 8, GoodsStatus: 6})
		var render struct {
			RefundOrderTemplate struct {
				GoodsStatusList []string `json:"goodsStatusList"`
				RefundTypeList  []string `json:"refundTypeList"`
			} `json:"refundOrderTemplate"`
		}
		_ = json.Unmarshal(r.Data, &render)
		if tpl := render.RefundOrderTemplate; !slices.Equal(tpl.GoodsStatusList, []string{"5", "6"}) || !slices.Equal(tpl.RefundTypeList, []string{"7", "8"}) {
			t.Errorf("render lists %+v; want the profile's integers", tpl)
		}
		if !bytes.Contains(r.Data, []byte(`"maxRefundFee":100.00`)) {
			t.Errorf("render %s; want amounts in yuan with two decimals", r.Data)
		}
		if r := call(http.MethodPost, p.TaobaoRender, renderReq{SubOrderID: "9100000000000000001", RefundType: 1, GoodsStatus: 1}); r.Code != 40003 {
			t.Errorf("the default integers: code %d; want the profile's invalid_field 40003", r.Code)
		}
		// refundFee in yuan; a fraction of a fen is invalid.
		sub := map[string]any{"subOrderId": "9100000000000000001", "refundType": 8, "goodsStatus": 6, "reasonId": 4001, "refundFee": 12.345}
		if r := call(http.MethodPost, p.TaobaoSubmit, sub); r.Code != 40003 {
			t.Errorf("refundFee 12.345 yuan: code %d; want 40003", r.Code)
		}
		sub["refundFee"] = 12.34
		var out submitRefundResp
		_ = json.Unmarshal(ok(http.MethodPost, p.TaobaoSubmit, sub).Data, &out)
		tbID = out.RefundID
		if ref := e.refund(tbID); ref.RefundFee != 1234 || ref.Status != "TB_WAIT_SELLER" || ref.Phase != platform.PhaseWaitSellerAgree {
			t.Errorf("refund %+v; want 1234 fen, TB_WAIT_SELLER", ref)
		}
		// The query moved: the old path is not found, with the profile's code.
		if r := call(http.MethodGet, paths.TaobaoQuery+"?refundId="+tbID, nil); r.HTTPStatus != http.StatusNotFound || r.Code != 40400 {
			t.Errorf("old query path: HTTP %d code %d; want 404 40400", r.HTTPStatus, r.Code)
		}
		r = ok(http.MethodGet, p.TaobaoQuery+"?refundId="+tbID, nil)
		var q queryRefundResp
		_ = json.Unmarshal(r.Data, &q)
		ro := q.RefundOrderAggregate.RefundOrder
		if ro.status() != "10" || !bytes.Contains(r.Data, []byte(`"refundFee":12.34`)) {
			t.Errorf("query %s; want refundStatus 10 and refundFee 12.34", r.Data)
		}
		if _, err := time.Parse("2006/01/02T15:04:05", ro.TimeoutDate); err != nil {
			t.Errorf("timeoutDate %q: want the profile's layout", ro.TimeoutDate)
		}
		// The list: the profile's field names, first page 0, status filter by its numbers.
		r = ok(http.MethodPost, p.TaobaoList, map[string]any{"size": 5, "page": 0, "refundStatus": 10})
		var list map[string]json.RawMessage
		_ = json.Unmarshal(r.Data, &list)
		var records []aggregateResp
		_ = json.Unmarshal(list["records"], &records)
		if string(list["totalCount"]) != "1" || string(list["page"]) != "0" || string(list["size"]) != "5" || len(list) != 4 ||
			len(records) != 1 || records[0].RefundOrder.status() != "TB_WAIT_SELLER" {
			t.Errorf("list %s; want records, totalCount 1, page 0, size 5 and the profile's status name", r.Data)
		}
		if r := call(http.MethodPost, p.TaobaoList, map[string]any{"pageSize": 5}); r.Code != other.Code(platform.ClassMissingField) {
			t.Errorf("list with the default field names: code %d; want missing_field", r.Code)
		}
		// Cancel moved to a POST with the id in the path.
		r = ok(http.MethodPost, fill(p.TaobaoCancel, tbID), nil)
		if !bytes.Contains(r.Data, []byte(`"refundStatus":"TB_CLOSED"`)) {
			t.Errorf("cancel %s; want TB_CLOSED", r.Data)
		}
	})

	t.Run("1688", func(t *testing.T) {
		create := map[string]any{"orderId": 3900000000000000001, "disputeRequest": "RETURN_REFUND", "goodsStatus": "G5",
			"applyPayment": 50.5, "applyCarriage": 0, "applyReasonId": 20025, "description": "不想要了"}
		var out createRefundResp
		_ = json.Unmarshal(ok(http.MethodPost, p.AlibabaCreateRefund, create).Data, &out)
		r := ok(http.MethodPost, p.AlibabaRefundInfo+"?refundId="+out.RefundID, nil)
		var info map[string]any
		_ = json.Unmarshal(r.Data, &info)
		ref := e.refund(out.RefundID)
		wantTime := ref.CreatedAt.In(time.FixedZone("", -5*3600)).Format("2006/01/02T15:04:05")
		if info["status"] != "AB_WAIT_SELLER" || info["gmtCreate"] != wantTime || !bytes.Contains(r.Data, []byte(`"applyPayment":50.50`)) ||
			ref.ApplyPayment != 5050 {
			t.Errorf("refund info %s; want AB_WAIT_SELLER, gmtCreate %s, applyPayment 50.50", r.Data, wantTime)
		}
		create["goodsStatus"] = "aftersaleBuyerReceived"
		if r := call(http.MethodPost, p.AlibabaCreateRefund, create); r.Code != 40003 {
			t.Errorf("the default goods status: code %d; want 40003", r.Code)
		}
	})

	t.Run("callbacks", func(t *testing.T) {
		e.adminOK(http.MethodPost, "/_sandbox/orders", CreateOrderRequest{Platform: PlatformTaobao, OrderID: "CB1"}, nil)
		// Taobao: the submit and the cancel of the taobao subtest, then this order.
		taobaoPushes := func() []receivedPush {
			var out []receivedPush
			for _, push := range rc.pushes() {
				if env, _ := decodePush(t, push); env.MessagePlatform == messagePlatform(true) {
					out = append(out, push)
				}
			}
			return out
		}
		waitFor(t, "3 taobao pushes", func() bool { return len(taobaoPushes()) == 3 })
		var kinds []string
		for _, push := range taobaoPushes() {
			env, body := decodePush(t, push)
			kinds = append(kinds, env.MessageType)
			keys := bodyKeys(t, env.MessageBody)
			switch env.MessageType {
			case "B_TB_REFUND":
				if !slices.Equal(keys, []string{"refundId", "refundStatus", "refundAmount", "mystery"}) || body["mystery"] != nil ||
					body["refundAmount"] != 12.34 {
					t.Errorf("refund body %s; want the profile's fields, mystery null, 12.34 yuan", env.MessageBody)
				}
			case "A_TB_STATUS":
				if !slices.Equal(keys, []string{"orderId", "orderStatus", "totalAmount", "tbCreateTime"}) || body["orderId"] != "CB1" {
					t.Errorf("order body %s; want the profile's fields", env.MessageBody)
				}
				if _, err := time.Parse("2006/01/02T15:04:05", body["tbCreateTime"].(string)); err != nil {
					t.Errorf("tbCreateTime %v: want the profile's layout", body["tbCreateTime"])
				}
			}
		}
		if !slices.Equal(kinds, []string{"B_TB_REFUND", "B_TB_REFUND", "A_TB_STATUS"}) {
			t.Errorf("types %v; want B_TB_REFUND twice, then A_TB_STATUS (the first names of their kinds in byte order)", kinds)
		}
	})

	t.Run("admin", func(t *testing.T) {
		// Seeds take the profile's names, or phase names.
		for _, status := range []string{"TB_NEW", "closed"} {
			seed := e.seed(RefundSeed{Platform: PlatformTaobao, SubOrderID: e.s.randDigits(19), Status: status})
			if want := map[string]string{"TB_NEW": "TB_WAIT_SELLER", "closed": "TB_CLOSED"}[status]; seed.Status != want {
				t.Errorf("seeded %q: status %q; want %q", status, seed.Status, want)
			}
		}
		st, raw := e.admin(http.MethodPost, "/_sandbox/refunds", RefundSeed{Platform: PlatformTaobao, SubOrderID: "1", Status: tbClosed})
		if st != http.StatusBadRequest {
			t.Errorf("seed with a default name: HTTP %d %s; want 400", st, raw)
		}
	})
}

// TestSandboxFollowsTheSeeds: the differences from earlier sandboxes that
// the seed pages call for.
func TestSandboxFollowsTheSeeds(t *testing.T) {
	t.Run("saleFlag only on the v2 render", func(t *testing.T) {
		for _, tc := range []struct {
			profile string
			want    bool
		}{{"", false}, {v2Render, true}} {
			p := mustProfile(t, tc.profile)
			e := newEnv(t, func(c *Config) { c.Profile = p })
			r := e.call(http.MethodPost, e.paths.TaobaoRender, renderReq{SubOrderID: "9200000000000000001", RefundType: 1, GoodsStatus: 1})
			var data map[string]json.RawMessage
			_ = json.Unmarshal(r.Data, &data)
			if _, has := data["saleFlag"]; has != tc.want {
				t.Errorf("render at %s: saleFlag present %v; want %v", e.paths.TaobaoRender, has, tc.want)
			}
		}
	})
	t.Run("1688 gmtTimeOut while open, null fields while unknown", func(t *testing.T) {
		e := newEnv(t, nil)
		id := e.abRefundIn(abWaitSend)
		var info map[string]any
		e.mustOK(http.MethodPost, paths.AlibabaRefundInfo, refundInfoReq{RefundID: id}, &info)
		modified, err := prof.ParseTime(info["gmtModified"].(string))
		if err != nil {
			t.Fatal(err)
		}
		timeout, _ := info["gmtTimeOut"].(string)
		if deadline, err := prof.ParseTime(timeout); err != nil || !deadline.Equal(modified.Add(refundTimeout)) {
			t.Errorf("gmtTimeOut %v; want gmtModified + 7 days", info["gmtTimeOut"])
		}
		for _, k := range []string{"id", "gmtCompleted", "freightBill", "refundPayment", "rejectReason", "buyerAlipayId", "disputeRequest"} {
			if v, ok := info[k]; !ok || v != nil {
				t.Errorf("%s = %v (present %v); want null", k, v, ok)
			}
		}
		e.adminOK(http.MethodPost, "/_sandbox/refunds/"+id+"/actions", RefundAction{Action: "close"}, nil)
		e.mustOK(http.MethodPost, paths.AlibabaRefundInfo, refundInfoReq{RefundID: id}, &info)
		if info["gmtTimeOut"] != nil || info["gmtCompleted"] == nil {
			t.Errorf("closed: gmtTimeOut %v gmtCompleted %v; want null and a time", info["gmtTimeOut"], info["gmtCompleted"])
		}
	})
}
