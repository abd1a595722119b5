package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/reasons"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

// TestReasons lists the reasons the sandbox offers over real HTTP, with the
// credentials doctor uses: Taobao from the rendered form of each refund
// type and goods status, 1688 from the reasons lookup of each goods status.
func TestReasons(t *testing.T) {
	p := startPlatform(t, sandbox.Config{})
	vars := p.upstreamVars("")

	r := runRefundctl(t, vars, "reasons", "--platform", "taobao", "--order", "3305075341149134260", "--sub-order", "3305075341149134261", "--json")
	if r.err != nil {
		t.Fatalf("reasons taobao: %v", r.err)
	}
	var tb reasons.Result
	decodeJSON(t, r.stdout, &tb)
	// refund × 1, 2, 3 and return × 2, 3: a return of goods never shipped is not asked.
	if len(tb.Forms) != 5 {
		t.Errorf("taobao forms = %+v; want 5 (refund 1-3, return 2-3)", tb.Forms)
	}
	for _, f := range tb.Forms {
		if f.Error != "" || f.RequestID == "" || f.MaxFee == nil || *f.MaxFee <= 0 {
			t.Errorf("taobao form %+v: want an answer with a requestId and a max fee", f)
		}
	}
	i := slices.IndexFunc(tb.Reasons, func(r reasons.Reason) bool { return r.Type == "refund" && r.GoodsStatus == "1" && r.ID == 1004 })
	if i < 0 || tb.Reasons[i].Reason != "未按约定时间发货" || tb.Reasons[i].NeedVoucher != nil {
		t.Errorf("taobao reasons lack refund/1 1004 未按约定时间发货 with needVoucher null: %+v", tb.Reasons)
	}

	r = runRefundctl(t, vars, "reasons", "--platform", "taobao", "--sub-order", "3305075341149134261", "--goods-status", "3", "--type", "return")
	if r.err != nil {
		t.Fatalf("reasons taobao table: %v", r.err)
	}
	for _, want := range []string{"TYPE", "GOODS-STATUS", "ID", "VOUCHER", "REASON (TIP)", "4002", "质量问题 (需要上传凭证", "return 3: the form allows up to"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("reasons taobao table lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "1004") {
		t.Errorf("reasons --type return --goods-status 3 lists a refund-only reason:\n%s", r.stdout)
	}

	r = runRefundctl(t, vars, "reasons", "--platform", "1688", "--order", "3305075341149134262", "--json")
	if r.err != nil {
		t.Fatalf("reasons 1688: %v", r.err)
	}
	var ab reasons.Result
	decodeJSON(t, r.stdout, &ab)
	if len(ab.Forms) != len(goodsStatuses("1688")) {
		t.Errorf("1688 forms = %+v; want one per goods status", ab.Forms)
	}
	need := map[int64]bool{}
	for _, rr := range ab.Reasons {
		if rr.NeedVoucher == nil {
			t.Errorf("1688 reason %+v: needVoucher missing", rr)
			continue
		}
		need[rr.ID] = *rr.NeedVoucher
	}
	if v, ok := need[20021]; !ok || !v {
		t.Errorf("1688 reason 20021 (质量问题): needVoucher %v, listed %v; want needed", v, ok)
	}
	if v, ok := need[20025]; !ok || v {
		t.Errorf("1688 reason 20025 (七天无理由退货): needVoucher %v, listed %v; want not needed", v, ok)
	}
	r = runRefundctl(t, vars, "reasons", "--platform", "1688", "--order", "3305075341149134262", "--goods-status", "aftersaleBuyerReceived")
	if r.err != nil || !strings.Contains(r.stdout, "20021") || !strings.Contains(r.stdout, "needed") || strings.Contains(r.stdout, "20001") {
		t.Errorf("reasons 1688 --goods-status aftersaleBuyerReceived: err %v\n%s", r.err, r.stdout)
	}
	for _, got := range p.requests() {
		if !strings.Contains(got, "render") && !strings.Contains(got, "eason") {
			t.Errorf("reasons called %s; want only the render and reasons endpoints", got)
		}
	}
}

// TestReasonsErrors: bad flags are usage errors naming the flag; a platform
// that answers nothing is exit 1.
func TestReasonsErrors(t *testing.T) {
	p := startPlatform(t, sandbox.Config{})
	vars := p.upstreamVars("")
	for _, tt := range []struct {
		code int
		want string
		args []string
	}{
		{2, `required flag(s) "platform" not set`, []string{"reasons", "--order", "1"}},
		{2, `--platform "amazon": want taobao or 1688`, []string{"reasons", "--platform", "amazon", "--order", "1"}},
		{2, "--sub-order: required for taobao", []string{"reasons", "--platform", "taobao", "--order", "1"}},
		{2, "--order: required for 1688", []string{"reasons", "--platform", "1688"}},
		{2, "--sub-order: 1688 reasons are per order", []string{"reasons", "--platform", "1688", "--order", "1", "--sub-order", "2"}},
		{2, "--type: 1688 offers the same reasons", []string{"reasons", "--platform", "1688", "--order", "1", "--type", "return"}},
		{2, `--order "12x": want 1 to 24 digits`, []string{"reasons", "--platform", "1688", "--order", "12x"}},
		{2, `--goods-status "4": want one of 1, 2, 3 for taobao`, []string{"reasons", "--platform", "taobao", "--sub-order", "1", "--goods-status", "4"}},
		{2, `--type "swap": want refund or return`, []string{"reasons", "--platform", "taobao", "--sub-order", "1", "--type", "swap"}},
	} {
		r := runRefundctl(t, vars, tt.args...)
		if r.code() != tt.code || !strings.Contains(r.line(), tt.want) || strings.Contains(r.line(), "\n") {
			t.Errorf("refundctl %s: exit %d, %q; want exit %d with %q", strings.Join(tt.args, " "), r.code(), r.line(), tt.code, tt.want)
		}
	}
	if got := p.requests(); len(got) != 0 {
		t.Errorf("bad flags reached the platform: %v", got)
	}

	delete(vars, "UPSTREAM_ACCESS_KEY")
	r := runRefundctl(t, vars, "reasons", "--platform", "1688", "--order", "1")
	if r.code() != 1 || !strings.Contains(r.line(), "UPSTREAM_ACCESS_KEY is not set") {
		t.Errorf("reasons without credentials: exit %d, %q; want exit 1 naming UPSTREAM_ACCESS_KEY", r.code(), r.line())
	}
	vars = p.upstreamVars("")
	vars["UPSTREAM_BASE_URL"] = "http://127.0.0.1:1"
	vars["UPSTREAM_MAX_ATTEMPTS"] = "1"
	r = runRefundctl(t, vars, "reasons", "--platform", "1688", "--order", "1", "--json")
	var out reasons.Result
	decodeJSON(t, r.stdout, &out)
	if r.code() != 1 || !strings.Contains(r.line(), "no reasons read: every look-up failed") || len(out.Forms) != 1 {
		t.Errorf("reasons with nothing listening: exit %d, %q, %d calls; want exit 1 after the first call", r.code(), r.line(), len(out.Forms))
	}
	// A refusal is about one combination: the others are still asked, and
	// one answer is enough for exit 0. Asked for goods not shipped, the
	// form refuses a return.
	r = runRefundctl(t, p.upstreamVars(""), "reasons", "--platform", "taobao", "--sub-order", "3305075341149134261", "--goods-status", "1")
	if r.err != nil || !strings.Contains(r.stdout, "1004") || !strings.Contains(r.stdout, "return 1: ") {
		t.Errorf("reasons --goods-status 1: %v; want the refund reasons and the return's refusal:\n%s", r.err, r.stdout)
	}
}

// TestGoodsStatusesAreRequests: reasons takes the goods statuses request
// takes (refundflow's vocabulary).
func TestGoodsStatusesAreRequests(t *testing.T) {
	for _, p := range []refundflow.Platform{refundflow.PlatformTaobao, refundflow.Platform1688} {
		for _, g := range goodsStatuses(string(p)) {
			if err := (refundflow.Request{GoodsStatus: g}).Validate(p); ruleOf(err, "goodsStatus") != "" {
				t.Errorf("%s goods status %q: refundflow refuses it: %v", p, g, err)
			}
		}
	}
	if got, want := "one of "+strings.Join(goodsStatuses("1688"), ", "), validationRules().alibabaGoods; got != want {
		t.Errorf("1688 goods statuses %q; refundflow says %q", got, want)
	}
}

// TestReasonsThePlatformRateLimitedAreNotReadNotAbsent: a look-up the
// platform answered rate-limited read no reasons; it must not say that the
// form offers none, and it says why and what to do.
func TestReasonsThePlatformRateLimitedAreNotReadNotAbsent(t *testing.T) {
	p := startPlatform(t, sandbox.Config{Faults: sandbox.Faults{RateQuota: 0.001, RateQuotaBurst: 1}})
	vars := p.upstreamVars("")
	vars["UPSTREAM_MAX_ATTEMPTS"] = "1"
	args := []string{"reasons", "--platform", "1688", "--order", "3305075341149134262", "--goods-status", "aftersaleBuyerReceived"}
	if r := runRefundctl(t, vars, args...); r.err != nil { // the quota's one call
		t.Fatalf("first look-up: %v", r.err)
	}
	r := runRefundctl(t, vars, args...)
	if r.code() != 1 || strings.Contains(r.stdout, "no reasons offered") || !strings.Contains(r.line(), "rate-limits the account") ||
		!strings.Contains(r.line(), "look up again") {
		t.Errorf("look-up the platform rate-limited: exit %d, stdout %q, %q; want exit 1, no \"no reasons offered\", the rate limit named with what to do",
			r.code(), r.stdout, r.line())
	}
	r = runRefundctl(t, vars, append(args, "--json")...)
	var out reasons.Result
	decodeJSON(t, r.stdout, &out)
	if len(out.Forms) != 1 || !out.Forms[0].RateLimited {
		t.Errorf("--json forms %+v; want one, rate-limited", out.Forms)
	}
}
