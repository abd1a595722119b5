package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// sandboxAdmin sends body to the sandbox's admin API and decodes its answer
// into out (when not nil); anything but 200 or 201 fails the test.
func sandboxAdmin(t *testing.T, sandboxAddr, method, path string, body, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, "http://"+sandboxAddr+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("%s %s %s: HTTP %d: %s", method, path, b, resp.StatusCode, buf.String())
	}
	if out != nil {
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, buf.String())
		}
	}
}

// sandboxRefund is what the tests read of a sandbox refund.
type sandboxRefund struct {
	Phase     string `json:"phase"`
	RefundFee int64  `json:"refund_fee"`
}

// shownCase is what the tests read of `refundctl show --json`.
type shownCase struct {
	Case struct {
		State            string `json:"state"`
		RefundID         string `json:"refundId"`
		AttentionCode    string `json:"attentionCode"`
		AttentionMessage string `json:"attentionMessage"`
	} `json:"case"`
}

func showCase(t *testing.T, ctl *cli, caseID string) shownCase {
	t.Helper()
	var s shownCase
	if err := json.Unmarshal([]byte(ctl.run("show", caseID, "--json")), &s); err != nil {
		t.Fatalf("show %s --json: %v", caseID, err)
	}
	return s
}

// refusedCase creates an order whose seller decides only through the admin
// API, requests a refund on it with request's arguments, has the seller
// refuse it, and returns the case (in needs_attention, seller_refused) and
// its refund id.
func refusedCase(t *testing.T, ctl *cli, sandboxAddr string, order map[string]any, request []string, refusal string) (caseID, refundID string) {
	t.Helper()
	order["seller"] = map[string]string{"decision": "manual"}
	sandboxAdmin(t, sandboxAddr, http.MethodPost, "/_sandbox/orders", order, nil)
	id, _, _ := strings.Cut(ctl.run(request...), "\n")
	caseID = strconv.FormatInt(caseOf(t, ctl.run("wait", "--command", id, "--state", "waiting_seller", "--deadline", "1m")), 10)
	refundID = showCase(t, ctl, caseID).Case.RefundID
	if refundID == "" {
		t.Fatalf("case %s waits for the seller without a refund id", caseID)
	}
	sandboxAdmin(t, sandboxAddr, http.MethodPost, "/_sandbox/refunds/"+refundID+"/actions", map[string]string{"action": "refuse", "reason": refusal}, nil)
	ctl.run("wait", caseID, "--state", "needs_attention", "--deadline", "1m")
	if s := showCase(t, ctl, caseID); s.Case.AttentionCode != "seller_refused" || !strings.Contains(s.Case.AttentionMessage, refusal) {
		t.Fatalf("case %s after the seller refused: %+v; want seller_refused with the seller's reason %q", caseID, s.Case, refusal)
	}
	return caseID, refundID
}

// refusalPaths: the ways out of a seller's refusal, through the real
// refundctl. Taobao: modify (the amount halved) is sent once and the
// seller agrees, and the case succeeds; a second refusal is accepted with
// resolve --close. 1688: modify is rejected (not_supported) with what the
// platform allows instead, and the refusal is accepted. modify with no
// change is bad input. The sandbox saw one submission per order, one
// modification and no duplicates.
func refusalPaths(t *testing.T, ctl *cli, sandboxAddr string) {
	const (
		order1, sub1 = "3296711100591135001", "1034499579120190001"
		order2, sub2 = "3296711100591135002", "1034499579120190002"
		order3       = "3305075341149135003"
	)
	taobaoOrder := func(order, sub string) map[string]any {
		return map[string]any{"platform": "taobao", "order_id": order,
			"sub_orders": []map[string]any{{"sub_order_id": sub, "amount": 10000, "title": "运动鞋", "quantity": 1}}}
	}
	taobaoRequest := func(order, sub string) []string {
		return []string{"request", "--platform", "taobao", "--order", order, "--sub-order", sub,
			"--type", "refund", "--goods-status", "1", "--reason-id", "1004", "--amount", "max", "--description", "not shipped in time"}
	}
	var before sandboxStats
	getJSON(t, "http://"+sandboxAddr+"/_sandbox/stats", &before)
	modifyCalls := func() int64 {
		var st struct {
			APICalls map[string]int64 `json:"api_calls"`
		}
		getJSON(t, "http://"+sandboxAddr+"/_sandbox/stats", &st)
		return st.APICalls["taobao_modify"]
	}
	modifiesBefore := modifyCalls()

	// Taobao: refuse -> modify -> agree -> succeeded.
	c, refund := refusedCase(t, ctl, sandboxAddr, taobaoOrder(order1, sub1), taobaoRequest(order1, sub1), "只同意退一半")
	if _, errOut, code := ctl.try("modify", c); code != 2 || !strings.Contains(errOut, "--amount") || !strings.Contains(errOut, "--reason-id") ||
		strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("modify %s without a change: exit %d, stderr %q; want exit 2, one line naming the flags", c, code, errOut)
	}
	if out := ctl.run("modify", c, "--amount", "5000", "--description", "half: the other item arrived fine"); !strings.Contains(out, "applied: case "+c+" is ") {
		t.Errorf("modify %s --amount 5000 printed %q; want applied", c, out)
	}
	ctl.run("wait", c, "--state", "waiting_seller", "--deadline", "1m")
	var r sandboxRefund
	getJSON(t, "http://"+sandboxAddr+"/_sandbox/refunds/"+refund, &r)
	if r.RefundFee != 5000 || r.Phase != "wait_seller_agree" {
		t.Errorf("sandbox refund %s after modify: %+v; want fee 5000, waiting for the seller", refund, r)
	}
	// A modification of a refund the seller has not refused is refused.
	if _, errOut, code := ctl.try("modify", c, "--amount", "4000"); code != 4 || !strings.Contains(errOut, "rejected (not_now)") ||
		!strings.Contains(errOut, "refundctl cancel "+c+" ") {
		t.Errorf("modify %s while the seller decides: exit %d, stderr %q; want exit 4, not_now with the ways out", c, code, errOut)
	}
	sandboxAdmin(t, sandboxAddr, http.MethodPost, "/_sandbox/refunds/"+refund+"/actions", map[string]string{"action": "agree"}, nil)
	ctl.run("wait", c, "--state", "succeeded", "--deadline", "1m")

	// Taobao: refuse -> accept the refusal -> closed_locally.
	c, _ = refusedCase(t, ctl, sandboxAddr, taobaoOrder(order2, sub2), taobaoRequest(order2, sub2), "商品已发出")
	if out := ctl.run("resolve", c, "--close", "--note", "accepted the refusal: the goods were sent"); !strings.Contains(out, "applied: case "+c+" is closed_locally") {
		t.Errorf("resolve %s --close printed %q; want applied, closed_locally", c, out)
	}

	// 1688: no modification through the API; the verdict says what instead.
	c, _ = refusedCase(t, ctl, sandboxAddr, map[string]any{"platform": "1688", "order_id": order3, "amount": 10000},
		[]string{"request", "--platform", "1688", "--order", order3, "--type", "return", "--goods-status", "aftersaleBuyerReceived",
			"--reason-id", "20025", "--amount", "9500", "--description", "七天无理由退货"}, "不支持七天无理由")
	_, errOut, code := ctl.try("modify", c, "--amount", "5000")
	if code != 4 || !strings.Contains(errOut, "rejected (not_supported) on case "+c) || !strings.Contains(errOut, "refundctl resolve "+c+" --close --note") ||
		!strings.Contains(errOut, "request again") {
		t.Errorf("modify %s (1688): exit %d, stderr %q; want exit 4, not_supported, with a new request or resolve --close as the way out", c, code, errOut)
	}
	if s := showCase(t, ctl, c); s.Case.State != "needs_attention" || s.Case.AttentionCode != "seller_refused" {
		t.Errorf("1688 case %s after the rejected modify: %+v; want it unchanged (needs_attention, seller_refused)", c, s.Case)
	}
	ctl.run("resolve", c, "--close", "--note", "accepted the refusal")

	// The platform's ground truth: each refund submitted once, modified once.
	var st sandboxStats
	getJSON(t, "http://"+sandboxAddr+"/_sandbox/stats", &st)
	for _, key := range []string{"taobao:" + sub1, "taobao:" + sub2, "1688:" + order3} {
		if st.RefundSubmissions[key] != 1 {
			t.Errorf("sandbox submissions for %s = %d; want 1", key, st.RefundSubmissions[key])
		}
	}
	if st.DuplicateSubmissions != before.DuplicateSubmissions {
		t.Errorf("sandbox duplicate submissions went from %d to %d; want none", before.DuplicateSubmissions, st.DuplicateSubmissions)
	}
	if n := modifyCalls() - modifiesBefore; n != 1 {
		t.Errorf("sandbox taobao_modify calls = %d; want 1", n)
	}
}
