package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/runbook"
)

// seedCases writes three cases through casestore's API, as the worker would:
// 1 Taobao waiting for the seller with two steps and a timeline, 2 1688
// needing attention, 3 Taobao succeeded.
func seedCases(t *testing.T, st *casestore.Store) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		c1, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: "100", SubOrderID: "101", State: "requested",
			Request: json.RawMessage(`{"returnGoods":false,"goodsStatus":"1","reasonId":5,"amount":0,"description":"late"}`)})
		if err != nil {
			return err
		}
		if err := tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: c1.ID, Kind: casestore.KindCommand, Summary: "request_refund by alice"}); err != nil {
			return err
		}
		if err := tx.RecordStep(ctx, c1.ID, "render", `{"subOrderId":"101"}`, casestore.StepResult{Status: casestore.StepDone,
			Outcome: `{"maxFee":9500}`, RequestID: "req-render-1"}); err != nil {
			return err
		}
		if _, _, err := tx.BeginStep(ctx, c1.ID, "submit", "case-1-submit", `{"fee":9500}`); err != nil {
			return err
		}
		if err := tx.FinishStep(ctx, "case-1-submit", casestore.StepResult{Status: casestore.StepDone, Outcome: `{"refundId":"R1"}`, RequestID: "req-submit-2"}); err != nil {
			return err
		}
		if err := tx.RecordStep(ctx, c1.ID, "query", `{}`, casestore.StepResult{Status: casestore.StepFailed,
			ErrorCode: "upstream_5xx", ErrorMessage: "platform answered 502", RequestID: "req-query-3"}); err != nil {
			return err
		}
		if err := tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: c1.ID, Kind: casestore.KindCallback, Summary: "ORDER_BUYER_VIEW_ORDER_BUYER_REFUND R1",
			Detail: json.RawMessage(`{"msgId":"abc"}`)}); err != nil {
			return err
		}
		if err := tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: c1.ID, Kind: casestore.KindDecision, Summary: "submitted; wait for the seller"}); err != nil {
			return err
		}
		c1.State, c1.RefundID, c1.PlatformStatus = "waiting_seller", "R1", "WAIT_SELLER_AGREE"
		if _, err := tx.UpdateCase(ctx, c1); err != nil {
			return err
		}
		c2, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "1688", OrderID: "200", State: "requested"})
		if err != nil {
			return err
		}
		c2.State, c2.ParkedState, c2.AttentionCode, c2.AttentionMessage = "needs_attention", "waiting_seller", "seller_refused", "seller refused: used item"
		c2.Plan, c2.Shipment = json.RawMessage(`{"reasonId":20021,"reasonDesc":"质量问题","fee":500,"carriage":300}`), json.RawMessage(`{"company":"YTO","waybill":"YT1"}`)
		if _, err := tx.UpdateCase(ctx, c2); err != nil {
			return err
		}
		c3, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: "300", SubOrderID: "301", State: "requested"})
		if err != nil {
			return err
		}
		c3.State = "succeeded"
		_, err = tx.UpdateCase(ctx, c3)
		return err
	})
	if err != nil {
		t.Fatalf("seed cases: %v", err)
	}
}

func TestListCases(t *testing.T) {
	e := newEnv(t)
	seedCases(t, e.openStore())

	r := e.mustRun("list")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("list printed %d lines; want a header and 3 rows:\n%s", len(lines), r.stdout)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "ID PLATFORM ORDER SUB-ORDER REFUND STATE AGE IDLE ATTENTION" {
		t.Errorf("header = %q", lines[0])
	}
	for i, want := range [][]string{
		{"1", "taobao", "100", "101", "R1", "waiting_seller"},
		{"2", "1688", "200", "-", "-", "needs_attention", "(at", "waiting_seller)"},
		{"3", "taobao", "300", "301", "-", "succeeded"},
	} {
		got := strings.Fields(lines[i+1])
		if len(got) < len(want) || strings.Join(got[:len(want)], " ") != strings.Join(want, " ") {
			t.Errorf("row %d = %q; want it to start with %q", i+1, lines[i+1], want)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(lines[2]), "seller_refused: seller refused: used item") {
		t.Errorf("row 2 lacks the attention code and message: %q", lines[2])
	}

	ids := func(args ...string) []int64 {
		t.Helper()
		e.wantErr(2, `--attention "stuck": want any or one of`, "list", "--attention", "stuck")

		var out []caseJSON
		decodeJSON(t, e.mustRun(append([]string{"list", "--json"}, args...)...).stdout, &out)
		var got []int64
		for _, c := range out {
			got = append(got, c.ID)
		}
		return got
	}
	for _, tt := range []struct {
		args []string
		want []int64
	}{
		{nil, []int64{1, 2, 3}},
		{[]string{"--platform", "taobao"}, []int64{1, 3}},
		{[]string{"--open"}, []int64{1, 2}},
		{[]string{"--state", "succeeded,needs_attention"}, []int64{2, 3}},
		{[]string{"--state", "waiting_seller", "--state", "succeeded"}, []int64{1, 3}},
		{[]string{"--older-than", "1h"}, nil},
		{[]string{"--limit", "1"}, []int64{1}},
		{[]string{"--after-id", "1", "--limit", "1"}, []int64{2}},
		{[]string{"--attention", "seller_refused"}, []int64{2}},
		{[]string{"--attention", "any"}, []int64{2}},
		{[]string{"--attention", "waiting_evidence"}, nil},
	} {
		if got := ids(tt.args...); !equalIDs(got, tt.want) {
			t.Errorf("list %v = %v; want %v", tt.args, got, tt.want)
		}
	}

	var out []caseJSON
	decodeJSON(t, e.mustRun("list", "--json", "--platform", "1688").stdout, &out)
	c := out[0]
	if c.Platform != "1688" || c.OrderID != "200" || c.State != "needs_attention" || c.ParkedState != "waiting_seller" ||
		c.AttentionCode != "seller_refused" || c.AttentionMessage != "seller refused: used item" || c.CreatedAt == "" || c.Version != 2 {
		t.Errorf("list --json case = %+v", c)
	}
	// An empty result is [] in JSON and a sentence for humans.
	if got := e.mustRun("list", "--json", "--state", "cancelled").stdout; strings.TrimSpace(got) != "[]" {
		t.Errorf("empty list --json = %q; want []", got)
	}
	if got := e.mustRun("list", "--state", "cancelled").stdout; got != "no cases\n" {
		t.Errorf("empty list = %q", got)
	}
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compact %q: %v", raw, err)
	}
	return b.String()
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestShowPrintsThePlatformsWordsWhole: an attention or step error whose
// cause comes late (the platform's "applyPayment 9500 超过可退金额 500" after
// a long prefix) is printed whole by show, wrapped, and list keeps the code
// and the start of the message.
func TestShowPrintsThePlatformsWordsWhole(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	ctx := context.Background()
	msg := "submit refused by the platform: alibaba_create_refund: platform error code 4003 " +
		strings.Repeat("(context) ", 12) + "\"applyPayment 9500 超过可退金额 500 (exceeds the refundable amount)\""
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "1688", OrderID: "900", State: "requested"})
		if err != nil {
			return err
		}
		c.State, c.ParkedState, c.AttentionCode, c.AttentionMessage = "needs_attention", "submitting", "platform_error", msg
		_, err = tx.UpdateCase(ctx, c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("show", "1").stdout
	if flat := strings.Join(strings.Fields(out), " "); !strings.Contains(flat, "applyPayment 9500 超过可退金额 500 (exceeds the refundable amount)") ||
		!strings.Contains(flat, "Attention: platform_error: submit refused") {
		t.Errorf("show lacks the whole attention text:\n%s", out)
	}
	// What to do next, from the runbook, as the console shows it: for a
	// 1688 case stopped at submitting.
	want := runbook.ForCase(runbook.Tailor(runbook.Embedded().Reasons["platform_error"].Do, "1688", "submitting"), 1)
	if flat := strings.Join(strings.Fields(out), " "); !strings.Contains(flat, "To do: "+want) || !strings.Contains(want, "refundctl request again for the order") ||
		strings.Contains(want, "refundctl ship") {
		t.Errorf("show lacks the runbook's advice for platform_error at submitting (%q):\n%s", want, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if n := len([]rune(line)); n > wrapWidth+20 {
			t.Errorf("line of %d characters; want it wrapped: %q", n, line)
		}
	}
	list := e.mustRun("list").stdout
	if !strings.Contains(list, "platform_error: submit refused by the platform") {
		t.Errorf("list lacks the code and the start of the message:\n%s", list)
	}
}

// TestShowCountsAnIntentsRefusals: show names how many times an open
// side effect was begun and how many of its resends the platform refused,
// in the table and in --json.
func TestShowCountsAnIntentsRefusals(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	ctx := context.Background()
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: "900", SubOrderID: "901", State: "submitting"})
		if err != nil {
			return err
		}
		for i := range 3 {
			if _, _, err := tx.BeginStep(ctx, c.ID, "submit", "case:1:submit:v1", `{}`); err != nil {
				return err
			}
			if err := tx.MarkAttempt(ctx, "case:1:submit:v1", "4091", "refused: the state does not allow it", i > 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := e.mustRun("show", "1").stdout; !strings.Contains(out, "intent (begun 3x, refused 2x)") {
		t.Errorf("show lacks the intent's sends and refusals:\n%s", out)
	}
	if out := e.mustRun("show", "1", "--json").stdout; !strings.Contains(out, `"begins": 3`) || !strings.Contains(out, `"refusals": 2`) {
		t.Errorf("show --json lacks begins 3 and refusals 2:\n%s", out)
	}
}

func TestWrapText(t *testing.T) {
	for _, tt := range []struct {
		in    string
		width int
		want  []string
	}{
		{"short", 10, []string{"short"}},
		{"one two three four", 9, []string{"one two", "three", "four"}},
		{"超过可退金额超过可退金额", 5, []string{"超过可退金", "额超过可退", "金额"}},
	} {
		if got := wrapText(tt.in, tt.width); !slices.Equal(got, tt.want) {
			t.Errorf("wrapText(%q, %d) = %q; want %q", tt.in, tt.width, got, tt.want)
		}
	}
}

func TestShowCase(t *testing.T) {
	e := newEnv(t)
	seedCases(t, e.openStore())

	r := e.mustRun("show", "1")
	for _, want := range []string{
		"Case 1", "Platform:", "taobao", "Sub-order:", "101", "Refund:", "R1", "State:", "waiting_seller",
		"Platform status:", "WAIT_SELLER_AGREE", "Request:", "Type:", "refund only", "Goods status:", "1 (not shipped)",
		"Amount:", "the most the refund form allows (max)", "Description:", "late",
		"Steps (3)", "render", "req-render-1", "submit", "req-submit-2", "case-1-submit", `{"refundId":"R1"}`,
		"query", "failed", "req-query-3", "upstream_5xx: platform answered 502",
		"Timeline (3)", "command", "request_refund by alice", "callback", "ORDER_BUYER_VIEW_ORDER_BUYER_REFUND R1",
		"decision", "submitted; wait for the seller",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show 1 lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, `"amount":0`) {
		t.Errorf("show 1 prints the request's amount as stored (0), not in words:\n%s", r.stdout)
	}
	r = e.mustRun("show", "2")
	if !strings.Contains(r.stdout, "needs_attention (stopped at waiting_seller)") || !strings.Contains(r.stdout, "seller_refused: seller refused: used item") ||
		!strings.Contains(r.stdout, "Steps (0)") || !regexp.MustCompile(`Planned:\s*\n\s+Reason:\s+20021 \(质量问题\)\n\s+Amount:\s+500 fen \(5.00 yuan\)\n\s+Carriage:\s+300 fen`).MatchString(r.stdout) ||
		!regexp.MustCompile(`Shipment:\s*\n\s+Carrier:\s+YTO\n\s+Waybill:\s+YT1\n`).MatchString(r.stdout) {
		t.Errorf("show 2:\n%s", r.stdout)
	}

	var got struct {
		Case     caseJSON       `json:"case"`
		Steps    []stepJSON     `json:"steps"`
		Timeline []timelineJSON `json:"timeline"`
	}
	decodeJSON(t, e.mustRun("show", "1", "--json").stdout, &got)
	if got.Case.ID != 1 || got.Case.RefundID != "R1" || string(got.Case.Request) == "" {
		t.Errorf("case = %+v", got.Case)
	}
	if len(got.Steps) != 3 {
		t.Fatalf("steps = %d; want 3", len(got.Steps))
	}
	s := got.Steps[1]
	if s.Step != "submit" || s.Status != "done" || s.RequestID != "req-submit-2" || s.IdempotencyKey != "case-1-submit" ||
		compact(t, s.Outcome) != `{"refundId":"R1"}` || compact(t, s.Request) != `{"fee":9500}` || s.Begins != 1 || s.FinishedAt == "" {
		t.Errorf("submit step = %+v", s)
	}
	if f := got.Steps[2]; f.Status != "failed" || f.ErrorCode != "upstream_5xx" || f.ErrorMessage != "platform answered 502" {
		t.Errorf("failed step = %+v", f)
	}
	if len(got.Timeline) != 3 || got.Timeline[1].Kind != "callback" || compact(t, got.Timeline[1].Detail) != `{"msgId":"abc"}` || got.Timeline[0].At == "" {
		t.Errorf("timeline = %+v", got.Timeline)
	}
	// Steps and timeline are [] (not null) when empty.
	if out := e.mustRun("show", "3", "--json").stdout; !strings.Contains(out, `"steps": []`) || !strings.Contains(out, `"timeline": []`) {
		t.Errorf("show 3 --json = %s", out)
	}
}

func TestReadCommandErrors(t *testing.T) {
	e := newEnv(t)
	seedCases(t, e.openStore())
	tests := []struct {
		name string
		code int
		want string
		args []string
	}{
		{"unknown case", 1, "case 99 not found", []string{"show", "99"}},
		{"malformed case id", 2, `case id "abc": want a positive integer`, []string{"show", "abc"}},
		{"zero case id", 2, `case id "0"`, []string{"show", "0"}},
		{"no case id", 2, "give CASE, --command, or --platform with --order or --sub-order", []string{"show"}},
		{"two case ids", 2, "accepts at most 1 arg(s), received 2", []string{"show", "1", "2"}},
		{"id and order", 2, "not both", []string{"show", "1", "--platform", "taobao", "--order", "100"}},
		{"order without platform", 2, "--platform is required with --order/--sub-order", []string{"show", "--order", "100"}},
		{"platform without order", 2, "--platform needs --order or --sub-order", []string{"show", "--platform", "taobao"}},
		{"malformed order", 2, `--sub-order "1x"`, []string{"show", "--platform", "taobao", "--sub-order", "1x"}},
		{"unknown order", 1, "no case for 1688 order 999", []string{"show", "--platform", "1688", "--order", "999"}},
		{"bad platform", 2, `--platform "ebay"`, []string{"list", "--platform", "ebay"}},
		{"bad state", 2, `--state "lost": want one of requested`, []string{"list", "--state", "lost"}},
		{"bad age", 2, `invalid argument "2 hours" for "--older-than"`, []string{"list", "--older-than", "2 hours"}},
		{"negative age", 2, "--older-than -1h0m0s: must not be negative", []string{"list", "--older-than", "-1h"}},
		{"bad limit", 2, "--limit 0: want 1 to 100000", []string{"list", "--limit", "0"}},
		{"huge limit", 2, "--limit 500000: want 1 to 100000", []string{"list", "--limit", "500000"}},
		{"bad cursor", 2, `--after "x7": not a cursor`, []string{"list", "--after", "x7"}},
		{"cursor and after-id", 2, "--after and --after-id: give one", []string{"list", "--after", "7", "--after-id", "7"}},
		{"missing store", 1, "no case store at", []string{"list", "--db", filepath.Join(t.TempDir(), "nope.db")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { e.wantErr(tt.code, tt.want, tt.args...) })
	}
	// A typo in DB_PATH must not create an empty store.
	missing := filepath.Join(t.TempDir(), "typo.db")
	e.vars["DB_PATH"] = missing
	e.wantErr(1, "no case store at "+missing+" (set DB_PATH or --db)", "show", "1")
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("show created %s", missing)
	}
}
