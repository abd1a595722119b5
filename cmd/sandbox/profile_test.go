package main

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// anotherProfile is the deliberately different profile of docs/sandbox.md:
// other Taobao status names, a moved path, another time layout and other list
// fields (with SANDBOX_TAOBAO_LIST_OMIT_TOTAL, a list without any total).
const anotherProfile = `
[endpoints.taobao_query]
path = "/v2/taobao/refund/detail"

[taobao.refund_status]
wait_seller_agree = { names = ["TB_WAIT_SELLER"], code = 10 }
wait_buyer_return = { names = ["TB_WAIT_RETURN"], code = 11 }
wait_seller_receive = { names = ["TB_WAIT_RECEIVE"], code = 12 }
seller_refused = { names = ["TB_REFUSED"], code = 13 }
closed = { names = ["TB_CLOSED"], code = 14 }
success = { names = ["TB_SUCCESS"], code = 15 }

[times]
layouts = ["2006/01/02T15:04:05"]
utc_offset = "-05:00"

[taobao.list]
items_field = "records"
total_field = "totalCount"
page_no_field = "page"
page_size_field = "size"
first_page = 0
`

// startRun runs the sandbox through run and returns its base URL; it stops
// with the test.
func startRun(t *testing.T, env map[string]string) string {
	t.Helper()
	var stdout, stderr syncBuffer
	addr, cancel, done := runSandbox(t, env, &stdout, &stderr)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return "http://" + addr
}

// signedCall makes an API call signed by the documented rule
// (UPPER(MD5(access-key + timestamp + nonce-str + secret))) and returns the
// HTTP status and the envelope.
func signedCall(t *testing.T, method, url, key, secret string, body any) (int, map[string]json.RawMessage) {
	t.Helper()
	var rdr io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rdr)
	if err != nil {
		t.Fatal(err)
	}
	ts, nonce := strconv.FormatInt(time.Now().UnixMilli(), 10), "abcdefghijklmnopqrstuvwxyz012345"
	sum := md5.Sum([]byte(key + ts + nonce + secret))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("access-key", key)
	req.Header.Set("timestamp", ts)
	req.Header.Set("nonce-str", nonce)
	req.Header.Set("user-id", "2100007341207")
	req.Header.Set("signature", strings.ToUpper(hex.EncodeToString(sum[:])))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env map[string]json.RawMessage
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: %s is not an envelope", method, url, raw)
	}
	return resp.StatusCode, env
}

// TestRunFollowsAnotherProfile starts the sandbox with UPSTREAM_PROFILE
// naming a deliberately different profile and shows its wire output follows
// it: other status names, a moved path, another time layout, a list without
// total.
func TestRunFollowsAnotherProfile(t *testing.T) {
	const key, secret = "dev-key", "dev-secret"
	profile := filepath.Join(t.TempDir(), "other.toml")
	if err := os.WriteFile(profile, []byte(anotherProfile), 0o600); err != nil {
		t.Fatal(err)
	}
	base := startRun(t, map[string]string{"UPSTREAM_ACCESS_KEY": key, "UPSTREAM_ACCESS_SECRET": secret,
		"SANDBOX_ADDR": "127.0.0.1:0", "UPSTREAM_PROFILE": profile, "SANDBOX_SELLER_DECISION": "manual",
		"SANDBOX_TAOBAO_LIST_OMIT_TOTAL": "true"})
	ok := func(method, path string, body any) json.RawMessage {
		t.Helper()
		st, env := signedCall(t, method, base+path, key, secret, body)
		if st != http.StatusOK || string(env["code"]) != "200" {
			t.Fatalf("%s %s: HTTP %d envelope %s", method, path, st, env)
		}
		return env["data"]
	}

	var submitted struct {
		RefundID string `json:"refundId"`
	}
	_ = json.Unmarshal(ok(http.MethodPost, "/open/order/refund/submit", map[string]any{"subOrderId": "9300000000000000001",
		"refundType": 1, "goodsStatus": 1, "reasonId": 1001, "refundFee": 100}), &submitted)

	// A moved path: the old one is not found.
	st, env := signedCall(t, http.MethodGet, base+"/v2/taobao/order/refund/query?refundId="+submitted.RefundID, key, secret, nil)
	if st != http.StatusNotFound || string(env["code"]) != "4041" {
		t.Errorf("the documented query path: HTTP %d code %s; want 404 and the not_found code", st, env["code"])
	}
	// Other status names and numbers (the v2 query's status is a number).
	var q struct {
		RefundOrderAggregate struct {
			RefundOrder struct {
				RefundStatus json.RawMessage `json:"refundStatus"`
				TimeoutDate  string          `json:"timeoutDate"`
			} `json:"refundOrder"`
		} `json:"refundOrderAggregate"`
	}
	_ = json.Unmarshal(ok(http.MethodGet, "/v2/taobao/refund/detail?refundId="+submitted.RefundID, nil), &q)
	if ro := q.RefundOrderAggregate.RefundOrder; string(ro.RefundStatus) != "10" {
		t.Errorf("query refundStatus %s; want the profile's 10", ro.RefundStatus)
	} else if _, err := time.Parse("2006/01/02T15:04:05", ro.TimeoutDate); err != nil {
		t.Errorf("timeoutDate %q; want the profile's layout", ro.TimeoutDate)
	}
	// A list without total, under the profile's field names.
	var list map[string]json.RawMessage
	_ = json.Unmarshal(ok(http.MethodPost, "/open/order/refund/queryList", map[string]any{"size": 10, "page": 0}), &list)
	var records []struct {
		RefundOrder struct {
			RefundStatus string `json:"refundStatus"`
		} `json:"refundOrder"`
	}
	_ = json.Unmarshal(list["records"], &records)
	if len(list) != 3 || string(list["page"]) != "0" || string(list["size"]) != "10" || len(records) != 1 ||
		records[0].RefundOrder.RefundStatus != "TB_WAIT_SELLER" {
		t.Errorf("list %v; want only records, page 0 and size 10, the refund TB_WAIT_SELLER, no total", list)
	}

	// Another time layout and zone.
	created := time.Date(2026, 5, 20, 7, 40, 0, 0, time.UTC)
	b, _ := json.Marshal(map[string]any{"platform": "1688", "order_id": "3305075341149134260", "status": "waitselleragree",
		"created_at": created})
	resp, err := http.Post(base+"/_sandbox/refunds", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var seeded struct {
		RefundID string `json:"refund_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&seeded)
	resp.Body.Close()
	var info struct {
		GmtCreate string `json:"gmtCreate"`
	}
	_ = json.Unmarshal(ok(http.MethodPost, "/alibaba/refund/info", map[string]string{"refundId": seeded.RefundID}), &info)
	if info.GmtCreate != "2026/05/20T02:40:00" {
		t.Errorf("gmtCreate %q; want 2026/05/20T02:40:00 (the profile's layout, UTC-5)", info.GmtCreate)
	}
}
