package casestore

import (
	"context"
	"encoding/json"
	"github.com/jmoiron/sqlx"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
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
// full one (TestListPlansOnPostgreSQL reads them on a full one).
func TestListQueryPlans(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cases.db"))
	ctx := context.Background()
	for _, tc := range listShapes() {
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

// TestIdlestOpenCasesReadAnIndex: the overview's open cases unmoved
// longest, and those of them needing attention, are read from the open
// cases' index by when they moved, in its order (the open cases alone,
// however long the history), never sorted.
func TestIdlestOpenCasesReadAnIndex(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cases.db"))
	for _, tc := range []struct {
		attention bool
		uses      string
		sorted    bool
	}{{false, "SCAN cases USING INDEX cases_open_moved", false}, {true, "SCAN cases USING INDEX cases_open_moved", false}} {
		var rows []struct {
			ID      int    `db:"id"`
			Parent  int    `db:"parent"`
			NotUsed int    `db:"notused"`
			Detail  string `db:"detail"`
		}
		if err := s.r.Select(&rows, "EXPLAIN QUERY PLAN "+idlestQuery(tc.attention), 10); err != nil {
			t.Fatal(err)
		}
		var plan []string
		for _, r := range rows {
			plan = append(plan, r.Detail)
		}
		text := strings.Join(plan, "\n")
		if !slices.Contains(plan, tc.uses) || strings.Contains(text, "TEMP B-TREE") != tc.sorted {
			t.Errorf("IdlestOpenCases(attention %v) plan:\n%s\nwant %q, sorted %v", tc.attention, text, tc.uses, tc.sorted)
		}
	}
}

// listShape is a case list query and how SQLite's plan finds its page.
type listShape struct {
	name string
	f    CaseFilter
	// uses is how the page's cases are found (lines of SQLite's plan,
	// each on a line of its own here).
	uses string
	// sorted: the matches are sorted, being few by construction
	// (attention codes, text) or served by no single index.
	sorted bool
}

// listAt is the time the list shapes' time filters are about.
var listAt = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// listShapes are the case lists' filters and orders the plan tests read.
func listShapes() []listShape {
	at := listAt
	cur := &CaseCursor{Sort: SortUpdated, Desc: true, ID: 50000, At: at.Add(-90 * 24 * time.Hour).UnixMilli()}
	deep := &CaseCursor{Sort: SortID, ID: 95000}
	return []listShape{
		{"default order", CaseFilter{Sort: SortUpdated, Desc: true}, "SCAN cases USING COVERING INDEX cases_updated", false},
		{"default order, next page", CaseFilter{Sort: SortUpdated, Desc: true, After: cur}, "SEARCH cases USING COVERING INDEX cases_updated (updated_at<?)", false},
		{"default order, largest page", CaseFilter{Sort: SortUpdated, Desc: true, Limit: MaxListLimit}, "SCAN cases USING COVERING INDEX cases_updated", false},
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
		{"rare state filter, created", CaseFilter{States: []string{"needs_attention"}, Sort: SortCreated}, "SEARCH cases USING COVERING INDEX cases_state_created (state=?)", false},
		{"rare state filter, id", CaseFilter{States: []string{"needs_attention"}}, "SEARCH cases USING COVERING INDEX cases_state_id (state=?)", false},
		// refundctl list --state: id order, oldest first, a page at a time.
		{"state filter, id, oldest first", CaseFilter{States: []string{"waiting_seller"}}, "SEARCH cases USING COVERING INDEX cases_state_id (state=?)", false},
		{"state filter, id, a page deep", CaseFilter{States: []string{"waiting_seller"}, After: deep}, "SEARCH cases USING COVERING INDEX cases_state_id (state=? AND rowid>?)", false},
		{"state filter, id, largest page", CaseFilter{States: []string{"waiting_seller"}, Limit: MaxListLimit}, "SEARCH cases USING COVERING INDEX cases_state_id (state=?)", false},
		{"state filter, created, oldest first", CaseFilter{States: []string{"waiting_return_shipment"}, Sort: SortCreated}, "SEARCH cases USING COVERING INDEX cases_state_created (state=?)", false},
		{"state filter, after an id", CaseFilter{States: []string{"waiting_seller"}, AfterID: 95000}, "SEARCH cases USING COVERING INDEX cases_state_id (state=? AND rowid>?)", false},
		{"state filter, id desc, a page deep", CaseFilter{States: []string{"waiting_seller"}, Desc: true, After: &CaseCursor{Sort: SortID, Desc: true, ID: 95000}},
			"SEARCH cases USING COVERING INDEX cases_state_id (state=? AND rowid<?)", false},
		{"platform and state, id, oldest first", CaseFilter{Platform: "1688", States: []string{"waiting_seller"}}, "SEARCH cases USING INDEX cases_state_id (state=?)", false},
		{"platform and state, state order", CaseFilter{Platform: "1688", States: []string{"waiting_seller"}, Sort: SortState}, "SEARCH cases USING INDEX cases_state (state=?)", false},
		{"platform and common state, updated", CaseFilter{Platform: "1688", States: []string{"succeeded"}, Sort: SortUpdated, Desc: true}, "SEARCH cases USING INDEX cases_state (state=?)", false},
		{"platform and common state, state order", CaseFilter{Platform: "1688", States: []string{"succeeded"}, Sort: SortState}, "SEARCH cases USING INDEX cases_state (state=?)", false},
		{"platform, updated", CaseFilter{Platform: "1688", Sort: SortUpdated, Desc: true}, "SCAN cases USING INDEX cases_updated", false},
		{"open, oldest", CaseFilter{OpenOnly: true, Sort: SortUpdated}, "SCAN cases USING INDEX cases_open_platform_state", true},
		{"open, oldest, a page deep", CaseFilter{OpenOnly: true, Sort: SortUpdated, After: &CaseCursor{Sort: SortUpdated, ID: 90000, At: at.Add(-10 * 24 * time.Hour).UnixMilli()}},
			"SCAN cases USING INDEX cases_open_platform_state", true},
		// refundctl list --open --older-than 2h; the console's older_than.
		// (The open cases idle that long are few: sorted.)
		{"open, idle for 2h", CaseFilter{OpenOnly: true, MovedBefore: at}, "SEARCH cases USING INDEX cases_open_moved (moved_at<?)", true},
		{"idle for 2h, updated", CaseFilter{MovedBefore: at, Sort: SortUpdated, Desc: true}, "SCAN cases USING INDEX cases_updated", false},
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
	}
}

// listPlanCases is how many cases TestListPlansOnPostgreSQL seeds: the
// console's scale (issue 16).
const listPlanCases = 100000

// TestCaseChangesReadARangeOfTheIndex: the console's event streams poll
// the changes after a position near the newest update about once a second
// each. The position was a condition SQLite could not seek with
// (updated_at > ? OR (updated_at = ? AND id > ?)), so each poll walked
// cases_updated from the oldest update: the whole history, every second,
// per open stream. It is now a range of the index, and one case's changes
// are read by its id.
func TestCaseChangesReadARangeOfTheIndex(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "cases.db"))
	for _, tc := range []struct {
		f    ChangesFilter
		uses string
	}{
		{ChangesFilter{AfterMS: 1, AfterID: -1, Limit: 100}, "SEARCH cases USING INDEX cases_updated (updated_at>?)"},
		{ChangesFilter{AfterMS: 1, AfterID: -1, CaseID: 7, Limit: 100}, "SEARCH cases USING INTEGER PRIMARY KEY (rowid=?)"},
	} {
		q, args := changesQuery(tc.f)
		var rows []struct {
			ID, Parent, NotUsed int
			Detail              string
		}
		if err := sqlx.SelectContext(context.Background(), s.r, &rows, "EXPLAIN QUERY PLAN "+q, args...); err != nil {
			t.Fatal(err)
		}
		var plan []string
		for _, r := range rows {
			plan = append(plan, r.Detail)
		}
		if !slices.Contains(plan, tc.uses) {
			t.Errorf("changes %+v: plan %q; want it to read %q", tc.f, plan, tc.uses)
		}
	}
}

// TestListPlansOnPostgreSQL bounds the rows of cases each case list reads
// on PostgreSQL, with its statistics (VACUUM ANALYZE, as autovacuum keeps
// them), at the console's scale, in a history where open cases are the
// newest: a page never scans the table, and never reads more than a few
// thousand rows to find its 100, or, for the open cases (found whole and
// sorted), more than there are. PostgreSQL's planner weighs its
// statistics, so its plans are not pinned index by index as SQLite's are
// (TestListQueryPlans). Its statistics take a state for spread evenly
// over the table: a state filter in id order walked the primary key from
// the oldest end through nearly the whole history (listQuery now holds it
// to cases_state_id), and every page of 1,000 scanned the table (listQuery
// now reads the page's ids as an array).
func TestListPlansOnPostgreSQL(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, pgtest.NewDatabase(t))
	// A busy store's history: ids and creation times rise together (an
	// hour's jitter) over the 180 days to a day after listAt; the oldest
	// 85% of the cases are mostly finished (82% succeeded, 12% closed, 5%
	// cancelled, 1% stopped), the newest 15% mostly open (40% waiting for
	// the seller, 20% for the return, 20% submitting, 10% stopped): a
	// backlog in which a state is common enough for the planner to expect
	// a page of it soon along any order's index; 60% Taobao. Open states sit among the newest ids: a plan that walks an
	// order's index from the oldest end and filters by state reads nearly
	// all the history first, which a seed without that correlation hides.
	const seed = `INSERT INTO cases (id, platform, order_id, sub_order_id, refund_id, state, attention_code, opened_by,
			created_at, updated_at, duplicate_of)
		SELECT i, CASE WHEN i % 10 < 4 THEN '1688' ELSE 'taobao' END, (3100000000000000000 + i * 7919)::text,
			CASE WHEN i % 10 < 4 THEN '' ELSE (4200000000000000000 + i * 104729)::text END,
			CASE WHEN st = 'submitting' THEN '' ELSE 'RF' || (i * 31)::text END,
			st, CASE WHEN st = 'needs_attention' THEN 'seller_refused' ELSE '' END, 'req-' || i,
			created, created + (i * 40503) % 1209600000, i
		FROM (SELECT i, $1::bigint + 86400000 - ($2::bigint - i) * (15552000000 / $2::bigint) - h * 36000 AS created,
				CASE WHEN i <= $2::bigint * 85 / 100 THEN
					CASE WHEN h < 82 THEN 'succeeded' WHEN h < 94 THEN 'closed' WHEN h < 99 THEN 'cancelled' ELSE 'needs_attention' END
				ELSE
					CASE WHEN h < 40 THEN 'waiting_seller' WHEN h < 60 THEN 'waiting_return_shipment' WHEN h < 80 THEN 'submitting'
						WHEN h < 90 THEN 'needs_attention' ELSE 'succeeded' END
				END AS st
			FROM (SELECT i, (i * 2654435761) % 4294967291 % 100 AS h FROM generate_series(1, $2::bigint) AS i) AS g) AS c`
	if _, err := s.w.ExecContext(ctx, seed, listAt.UnixMilli(), listPlanCases); err != nil {
		t.Fatal(err)
	}
	// The statistics of the whole table, not of a random sample (ANALYZE
	// samples 300 rows per unit of the largest statistics target): the
	// same plans at every run.
	if _, err := s.w.ExecContext(ctx, "ALTER TABLE cases ALTER COLUMN state SET STATISTICS 400"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, "VACUUM ANALYZE cases"); err != nil {
		t.Fatal(err)
	}
	var open int
	if err := s.r.Get(&open, `SELECT count(*) FROM cases WHERE `+terminalFilter()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range listShapes() {
		q, args, err := listQuery(tc.f, true)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// ListCasesPage's limit: the page and one row more.
		read, scans, out := pgRowsRead(t, s, q, append(args, clampLimit(tc.f.Limit)+1))
		bound := float64(listPlanMaxRows)
		if tc.f.OpenOnly && len(tc.f.States) == 0 && len(tc.f.Attention) == 0 && !tc.f.AnyAttention {
			// The open cases are found whole and sorted, by design
			// (listQuery): as many as there are, never the history.
			bound = float64(open) * 1.02
		}
		t.Logf("%-30s %6.0f rows of cases read", tc.name, read)
		if scans > 0 || read > bound {
			t.Errorf("%s: the page read %.0f rows of cases (%d scans of the table); want at most %.0f, no scan:\n%s",
				tc.name, read, scans, bound, out)
		}
	}
	// The console's event streams poll the changes behind the newest
	// update about once a second each: a range of cases_updated, not the
	// history up to it.
	var newest int64
	if err := s.r.Get(&newest, `SELECT max(updated_at) FROM cases`); err != nil {
		t.Fatal(err)
	}
	for _, f := range []ChangesFilter{{AfterMS: newest - 5000, AfterID: -1, Limit: 100}, {AfterMS: newest - 5000, AfterID: -1, CaseID: 7, Limit: 100}} {
		q, args := changesQuery(f)
		read, scans, out := pgRowsRead(t, s, q, args)
		t.Logf("changes %+v: %.0f rows of cases read", f, read)
		if scans > 0 || read > 100 {
			t.Errorf("changes %+v read %.0f rows of cases (%d scans of the table); want at most 100:\n%s", f, read, scans, out)
		}
	}
}

// pgRowsRead runs EXPLAIN ANALYZE of q on PostgreSQL and returns the rows
// of cases its plan read, its sequential scans of cases, and the plan.
func pgRowsRead(t *testing.T, s *Store, q string, args []any) (read float64, scans int, out []byte) {
	t.Helper()
	if err := s.r.Get(&out, "EXPLAIN (ANALYZE, FORMAT JSON) "+q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN: %v\n%s", err, out)
	}
	var walk func(n planNode)
	walk = func(n planNode) {
		// A bitmap index scan's rows are the heap scan's above it.
		if (n.Relation == "cases" || strings.HasPrefix(n.Index, "cases")) && n.Type != "Bitmap Index Scan" {
			read += n.Rows*max(n.Loops, 1) + n.Filtered + n.Rechecked
		}
		if n.Type == "Seq Scan" && n.Relation == "cases" {
			scans++
		}
		for _, k := range n.Plans {
			walk(k)
		}
	}
	walk(plans[0].Plan)
	return read, scans, out
}

// listPlanMaxRows bounds the rows of cases a page of 100 (or the largest,
// MaxListLimit) may read: 8% of the table. The most a shape reads at
// listPlanCases is about 6,100 (all the cases of a state, sorted, under a
// platform filter).
const listPlanMaxRows = 8000
