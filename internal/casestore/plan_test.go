package casestore

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// textPlan is how a free-text search finds its cases: a range of each id
// column, under each platform where its index starts with the platform
// (migration 17), merged; no scan of the table or of an order's index.
const textPlan = "MULTI-INDEX OR\n" +
	"SEARCH cases USING INDEX cases_order (platform=? AND order_id>? AND order_id<?)\n" +
	"SEARCH cases USING INDEX cases_taobao_sub_order (platform=? AND sub_order_id>? AND sub_order_id<?)\n" +
	"SEARCH cases USING INDEX cases_refund (platform=? AND refund_id>? AND refund_id<?)\n" +
	"SEARCH cases USING INDEX cases_opened_by (opened_by>? AND opened_by<?)"

// TestListQueryPlans pins that every case list query reads the cases
// through an index (migration 16), never by scanning the table, and that
// the orders an index serves are read in that order (no sort of the
// matches: the page stops at its limit). The plans are SQLite's for an
// empty, unanalysed store, which is what the planner sees in production
// too (the worker never runs ANALYZE). SQLite only: PostgreSQL's planner
// weighs its statistics, so its plans on an empty table say nothing of a
// full one.
func TestListQueryPlans(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cases.db"))
	ctx := context.Background()
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	cur := &CaseCursor{Sort: SortUpdated, Desc: true, ID: 10, At: 1}
	for _, tc := range []struct {
		name string
		f    CaseFilter
		// uses is how the page's cases are found (lines of the plan,
		// each on a line of its own here).
		uses string
		// sorted: the matches are sorted, being few by construction
		// (attention codes, text) or served by no single index.
		sorted bool
	}{
		{"default order", CaseFilter{Sort: SortUpdated, Desc: true}, "SCAN cases USING COVERING INDEX cases_updated", false},
		{"default order, next page", CaseFilter{Sort: SortUpdated, Desc: true, After: cur}, "SEARCH cases USING COVERING INDEX cases_updated (updated_at<?)", false},
		{"id", CaseFilter{}, "SCAN cases", false}, // the table is the id order's index
		{"id desc", CaseFilter{Desc: true}, "SCAN cases", false},
		{"id, next page", CaseFilter{After: &CaseCursor{Sort: SortID, ID: 5}}, "SEARCH cases USING INTEGER PRIMARY KEY (rowid>?)", false},
		{"created", CaseFilter{Sort: SortCreated}, "SCAN cases USING COVERING INDEX cases_created", false},
		{"created desc", CaseFilter{Sort: SortCreated, Desc: true}, "SCAN cases USING COVERING INDEX cases_created", false},
		{"state", CaseFilter{Sort: SortState}, "SCAN cases USING COVERING INDEX cases_state", false},
		{"state desc", CaseFilter{Sort: SortState, Desc: true}, "SCAN cases USING COVERING INDEX cases_state", false},
		{"state filter, updated", CaseFilter{States: []string{"waiting_seller"}, Sort: SortUpdated, Desc: true}, "SEARCH cases USING COVERING INDEX cases_state (state=?)", false},
		{"state filter, created", CaseFilter{States: []string{"waiting_seller"}, Sort: SortCreated}, "SEARCH cases USING COVERING INDEX cases_state_created (state=?)", false},
		{"state filter, id", CaseFilter{States: []string{"waiting_seller"}, Desc: true}, "SEARCH cases USING COVERING INDEX cases_state_id (state=?)", false},
		{"platform and state, state order", CaseFilter{Platform: "1688", States: []string{"waiting_seller"}, Sort: SortState}, "SEARCH cases USING INDEX cases_state (state=?)", false},
		{"platform, updated", CaseFilter{Platform: "1688", Sort: SortUpdated, Desc: true}, "SCAN cases USING INDEX cases_updated", false},
		{"open, oldest", CaseFilter{OpenOnly: true, Sort: SortUpdated}, "SCAN cases USING INDEX cases_updated", false},
		{"not updated since", CaseFilter{UpdatedBefore: at, Sort: SortUpdated, Desc: true}, "SEARCH cases USING COVERING INDEX cases_updated (updated_at<?)", false},
		{"opened between, created", CaseFilter{CreatedAfter: at, CreatedBefore: at.Add(time.Hour), Sort: SortCreated},
			"SEARCH cases USING COVERING INDEX cases_created (created_at>? AND created_at<?)", false},
		{"opened between, updated", CaseFilter{CreatedAfter: at, CreatedBefore: at.Add(time.Hour), Sort: SortUpdated, Desc: true},
			"SEARCH cases USING INDEX cases_created (created_at>? AND created_at<?)", true},
		{"attention code", CaseFilter{Attention: []string{"seller_refused"}, Sort: SortUpdated, Desc: true}, "SEARCH cases USING COVERING INDEX cases_attention (attention_code=?)", true},
		{"any attention, id", CaseFilter{AnyAttention: true}, "SCAN cases USING COVERING INDEX cases_attention", true},
		{"any attention, created", CaseFilter{AnyAttention: true, Sort: SortCreated}, "SCAN cases USING COVERING INDEX cases_attention", true},
		{"open with attention, oldest", CaseFilter{AnyAttention: true, OpenOnly: true, Sort: SortUpdated}, "SCAN cases USING COVERING INDEX cases_attention", true},
		{"text", CaseFilter{Text: "3100", Sort: SortUpdated, Desc: true}, textPlan, true},
		{"text or case", CaseFilter{Text: "cmd-1", TextCaseID: 7, Sort: SortCreated}, textPlan + "\nSEARCH cases USING INTEGER PRIMARY KEY (rowid=?)", true},
		{"text and platform", CaseFilter{Text: "3100", Platform: "taobao", Sort: SortUpdated, Desc: true}, textPlan, true},
	} {
		plan, err := s.ListQueryPlan(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		text := strings.Join(plan, "\n")
		for _, uses := range strings.Split(tc.uses, "\n") {
			if !slices.Contains(plan, uses) {
				t.Errorf("%s: the plan does not read %q:\n%s", tc.name, uses, text)
			}
		}
		sorts := 0
		for _, line := range plan {
			if line == "SCAN cases" && tc.uses != line {
				t.Errorf("%s: the plan scans the cases table:\n%s", tc.name, text)
			}
			if strings.HasPrefix(line, "USE TEMP B-TREE FOR") {
				sorts++
			}
		}
		// The outer query sorts the page's rows (at most its limit) but in
		// id order, its IN list's; the inner one, which finds them, sorts
		// only where allowed.
		want := 0
		if tc.f.sort() != SortID {
			want++
		}
		if tc.sorted {
			want++
		}
		if sorts != want {
			t.Errorf("%s: %d sorts; want %d:\n%s", tc.name, sorts, want, text)
		}
	}
}
