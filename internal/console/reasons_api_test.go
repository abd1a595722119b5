package console

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/reasons"
)

// TestAPIReasons: GET /api/v1/reasons lists the reasons the platform
// offers (the sandbox over HTTP), as refundctl reasons does, to operators
// only; a console without platform credentials says so (not_configured),
// and a bad or unknown parameter is named (invalid_argument) without
// asking the platform. (A refundctl run through the console had no way to
// list reasons: "reasons is not available through the console".)
func TestAPIReasons(t *testing.T) {
	lookup, calls, _ := sandboxReasons(t)
	ts := newTestServer(t)
	const path = "/api/v1/reasons?platform=taobao&order=3305075341149134260&sub_order=3305075341149134261&type=refund&goods_status=1"

	errorOf := func(r reply) (code, param string) {
		t.Helper()
		var e struct {
			Error struct{ Code, Param string } `json:"error"`
		}
		if err := json.Unmarshal([]byte(r.body), &e); err != nil {
			t.Fatalf("error answer %d is not JSON: %s", r.status, r.body)
		}
		return e.Error.Code, e.Error.Param
	}
	if r := ts.do("GET", path, operatorToken, nil); r.status != http.StatusNotImplemented {
		t.Errorf("without credentials = %d %s; want 501", r.status, r.body)
	} else if code, _ := errorOf(r); code != CodeNotConfigured || !strings.Contains(r.body, "UPSTREAM_*") {
		t.Errorf("without credentials: %s; want %s naming UPSTREAM_*", r.body, CodeNotConfigured)
	}

	ts.srv.reasons = lookup
	for _, tc := range []struct {
		name, path, auth   string
		status             int
		code, param, inMsg string
	}{
		{"no token", path, "", http.StatusUnauthorized, CodeUnauthorized, "", ""},
		{"viewer", path, viewerToken, http.StatusForbidden, CodeForbidden, "", "looking up the platform's reasons needs the operator role"},
		{"no sub-order", "/api/v1/reasons?platform=taobao&order=1", operatorToken, http.StatusBadRequest, CodeInvalidArgument, "sub_order", ""},
		{"bad goods status", "/api/v1/reasons?platform=1688&order=3305075341149134260&goods_status=9", operatorToken, http.StatusBadRequest, CodeInvalidArgument, "goods_status", `goods_status \"9\": want one of`},
		{"bad platform", "/api/v1/reasons?platform=jd&order=1", operatorToken, http.StatusBadRequest, CodeInvalidArgument, "platform", ""},
		{"unknown parameter", path + "&subOrderId=1", operatorToken, http.StatusBadRequest, CodeInvalidArgument, "subOrderId", "not a parameter"},
	} {
		r := ts.do("GET", tc.path, tc.auth, nil)
		code, param := errorOf(r)
		if r.status != tc.status || code != tc.code || param != tc.param || !strings.Contains(r.body, tc.inMsg) {
			t.Errorf("%s: %d %s; want %d %s naming %q with %q", tc.name, r.status, r.body, tc.status, tc.code, tc.param, tc.inMsg)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("refused look-ups called the platform %d times", n)
	}

	r := ts.do("GET", path, operatorToken, nil)
	var res reasons.Result
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &res) != nil {
		t.Fatalf("look-up = %d %s; want 200 and a result", r.status, r.body)
	}
	if res.Platform != "taobao" || res.SubOrderID != "3305075341149134261" || len(res.Reasons) == 0 || len(res.Forms) != 1 || res.Err() != nil {
		t.Errorf("look-up = %+v; want the sub-order's reasons from one form (refund, 1)", res)
	}
	for _, reason := range res.Reasons {
		if reason.Type != "refund" || reason.GoodsStatus != "1" || reason.ID <= 0 {
			t.Errorf("reason %+v; want refund, goods status 1, an id", reason)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("a look-up for one type and goods status made %d platform calls; want 1", n)
	}

	// A script looping over look-ups is paced: after the burst, 429 with
	// Retry-After, and the platform is not asked.
	var refused reply
	asked := 1
	for range 2 * lookupBurst {
		r := ts.do("GET", path, operatorToken, nil)
		if r.status == http.StatusTooManyRequests {
			refused = r
			break
		}
		asked++
	}
	if code, _ := errorOf(refused); refused.status != http.StatusTooManyRequests || code != CodeRateLimited || refused.header.Get("Retry-After") == "" {
		t.Fatalf("look-ups in a loop: no 429 %s with Retry-After after %d (%d %s)", CodeRateLimited, asked, refused.status, refused.body)
	}
	if n := calls.Load(); n != int64(asked) {
		t.Errorf("%d look-ups answered made %d platform calls; want one each, none for the refused one", asked, n)
	}
}
