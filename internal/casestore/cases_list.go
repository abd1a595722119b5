// Case lists: the operator's filtered pages, the timer's due cases, the
// reconciler's stale ones, and the counts the metrics read.

package casestore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub/internal/platform"
)

// CaseFilter selects cases for ListCases. Zero fields do not filter.
type CaseFilter struct {
	Platform      string
	States        []string
	OpenOnly      bool      // exclude terminal states
	UpdatedBefore time.Time // cases not written since this time
	MovedBefore   time.Time // cases that have not moved since this time (Case.MovedAt: idle)
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// Attention: cases carrying one of these attention codes (needs_attention
	// reasons, or flags such as waiting_evidence); AnyAttention: any code.
	Attention    []string
	AnyAttention bool
	// Text keeps the cases whose order, sub-order, refund id or opening
	// command id starts with it (an exact id is its own prefix): what an
	// operator pastes. TextCaseID adds the case with that id (the case a
	// command was applied to, which the command's id names elsewhere).
	Text       string
	TextCaseID int64
	// Sort and Desc order the list (SortID ascending when zero). After
	// pages on: the cases after that cursor in this order; it must come
	// from a list with the same Sort and Desc (CaseCursor.Matches).
	Sort    CaseSort
	Desc    bool
	After   *CaseCursor
	AfterID int64 // paging: ids greater than this (whatever the sort)
	Limit   int   // default 100, at most MaxListLimit
}

// CaseSort is an order of a case list. Each is a total order (the case id
// breaks ties), so that a cursor pages on without skipping or repeating a
// case, and each is served by an index (migration 16), but for the few
// cases an attention or the open filter picks, which are sorted (listQuery).
type CaseSort string

// The orders of a case list.
const (
	SortID      CaseSort = "id"      // id
	SortUpdated CaseSort = "updated" // last update, then id
	SortCreated CaseSort = "created" // creation, then id
	SortState   CaseSort = "state"   // state name (alphabetical), then last update, then id
)

var caseSorts = []CaseSort{SortUpdated, SortCreated, SortID, SortState}

// CaseSorts returns the orders of a case list.
func CaseSorts() []CaseSort { return slices.Clone(caseSorts) }

// Valid reports whether s is an order of a case list.
func (s CaseSort) Valid() bool { return slices.Contains(caseSorts, s) }

// keys are the columns s orders by, the id last.
func (s CaseSort) keys() []string {
	switch s {
	case SortUpdated:
		return []string{"updated_at", "id"}
	case SortCreated:
		return []string{"created_at", "id"}
	case SortState:
		return []string{"state", "updated_at", "id"}
	default:
		return []string{"id"}
	}
}

// CaseCursor is where a page of a sorted case list ended: the sort keys of
// its last case. Its text form (String) is opaque to clients.
type CaseCursor struct {
	Sort  CaseSort
	Desc  bool
	ID    int64
	At    int64  // updated_at or created_at (Unix ms) for those sorts
	State string // for SortState
}

// CursorAfter is the cursor that pages on after c in f's order.
func (f CaseFilter) CursorAfter(c Case) CaseCursor {
	cur := CaseCursor{Sort: f.sort(), Desc: f.Desc, ID: c.ID}
	switch cur.Sort {
	case SortUpdated:
		cur.At = ms64(c.UpdatedAt)
	case SortCreated:
		cur.At = ms64(c.CreatedAt)
	case SortState:
		cur.State, cur.At = c.State, ms64(c.UpdatedAt)
	}
	return cur
}

// Matches reports whether cur was made for f's order.
func (cur CaseCursor) Matches(f CaseFilter) bool { return cur.Sort == f.sort() && cur.Desc == f.Desc }

// String is the cursor as a client carries it: base64url of
// "sort.dir.id.at.state".
func (cur CaseCursor) String() string {
	dir := "a"
	if cur.Desc {
		dir = "d"
	}
	raw := fmt.Sprintf("%s.%s.%d.%d.%s", cur.Sort, dir, cur.ID, cur.At, cur.State)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ErrBadCursor is returned by ParseCaseCursor for text no cursor has.
var ErrBadCursor = errors.New("not a case list cursor")

// ParseCaseCursor reads a cursor's text form (CaseCursor.String).
func ParseCaseCursor(s string) (CaseCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 200 {
		return CaseCursor{}, ErrBadCursor
	}
	parts := strings.SplitN(string(raw), ".", 5)
	if len(parts) != 5 || (parts[1] != "a" && parts[1] != "d") || !CaseSort(parts[0]).Valid() {
		return CaseCursor{}, ErrBadCursor
	}
	cur := CaseCursor{Sort: CaseSort(parts[0]), Desc: parts[1] == "d", State: parts[4]}
	if cur.ID, err = strconv.ParseInt(parts[2], 10, 64); err != nil || cur.ID < 0 {
		return CaseCursor{}, ErrBadCursor
	}
	if cur.At, err = strconv.ParseInt(parts[3], 10, 64); err != nil {
		return CaseCursor{}, ErrBadCursor
	}
	return cur, nil
}

func (f CaseFilter) sort() CaseSort {
	if f.Sort == "" {
		return SortID
	}
	return f.Sort
}

// MaxListLimit is the most cases one ListCases or ListCasesPage call
// returns: a page, read in one query. Callers that want more page on with
// CaseFilter.After (or AfterID in id order), or read them with EachCase.
const MaxListLimit = 1000

// ListCases returns the cases matching f in f's order.
func (s *Store) ListCases(ctx context.Context, f CaseFilter) ([]Case, error) {
	q, args, err := listQuery(f, s.r.pg)
	if err != nil {
		return nil, err
	}
	return selectCases(ctx, s.r, "list cases", q, append(args, clampLimit(f.Limit))...)
}

// ListCasesPage is ListCases that also reports whether more cases match
// after the last one returned (read as one row beyond the page, in the
// same query): the caller pages on with After set to f.CursorAfter(last).
func (s *Store) ListCasesPage(ctx context.Context, f CaseFilter) (cases []Case, more bool, err error) {
	n := clampLimit(f.Limit)
	q, args, err := listQuery(f, s.r.pg)
	if err != nil {
		return nil, false, err
	}
	cases, err = selectCases(ctx, s.r, "list cases", q, append(args, n+1)...)
	if err != nil {
		return nil, false, err
	}
	if len(cases) > n {
		return cases[:n], true, nil
	}
	return cases, false, nil
}

// EachCase calls fn with every case matching f, in f's order, from f.After
// on, reading a page (MaxListLimit) at a time: an export of any size in
// bounded memory. f.Limit is ignored. It stops at fn's first error.
func (s *Store) EachCase(ctx context.Context, f CaseFilter, fn func(Case) error) error {
	f.Limit = MaxListLimit
	for {
		page, more, err := s.ListCasesPage(ctx, f)
		if err != nil {
			return err
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
		cur := f.CursorAfter(page[len(page)-1])
		f.After = &cur
	}
}

// ListQueryPlan returns SQLite's EXPLAIN QUERY PLAN of ListCases for f, one
// line per step: tests pin that the lists use an index.
func (s *Store) ListQueryPlan(ctx context.Context, f CaseFilter) ([]string, error) {
	q, args, err := listQuery(f, false)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ID      int    `db:"id"`
		Parent  int    `db:"parent"`
		NotUsed int    `db:"notused"`
		Detail  string `db:"detail"`
	}
	if err := sqlx.SelectContext(ctx, s.r, &rows, "EXPLAIN QUERY PLAN "+q, append(args, clampLimit(f.Limit))...); err != nil {
		return nil, fmt.Errorf("explain list cases: %w", err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Detail
	}
	return out, nil
}

// listQuery is the query of ListCases for f, with its arguments but the
// final LIMIT's, on PostgreSQL if pg.
func listQuery(f CaseFilter, pg bool) (string, []any, error) {
	var where []string
	var args []any
	// Two platforms: an index on platform finds half the table, and the
	// planner (without statistics) would take one (cases_order) and sort
	// that half. noIndex keeps it to the order's index.
	if f.Platform != "" {
		where, args = append(where, noIndex("platform")+" = ?"), append(args, f.Platform)
	}
	stateTerm, stateArg := len(where), len(args)
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	if f.OpenOnly {
		where = append(where, terminalFilter())
	}
	// attention_code <> '' is spelled out with a code too: it is the
	// predicate of the partial index cases_attention.
	if len(f.Attention) > 0 {
		where = append(where, "attention_code <> '' AND attention_code IN (?"+strings.Repeat(", ?", len(f.Attention)-1)+")")
		for _, a := range f.Attention {
			args = append(args, a)
		}
	}
	if f.AnyAttention {
		where = append(where, "attention_code <> ''")
	}
	if !f.MovedBefore.IsZero() {
		// Not known (0: finished before migration 26, or written by an
		// older worker), the last update counts, as in Case.IdleSince.
		where, args = append(where, "moved_at < ? AND (moved_at <> 0 OR updated_at < ?)"), append(args, ms64(f.MovedBefore), ms64(f.MovedBefore))
	}
	if !f.UpdatedBefore.IsZero() {
		where, args = append(where, "updated_at < ?"), append(args, ms64(f.UpdatedBefore))
	}
	if !f.CreatedAfter.IsZero() {
		where, args = append(where, "created_at > ?"), append(args, ms64(f.CreatedAfter))
	}
	if !f.CreatedBefore.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, ms64(f.CreatedBefore))
	}
	if f.Text != "" {
		w, a := textFilter(f.Text, f.TextCaseID)
		where, args = append(where, w), append(args, a...)
	}
	if f.AfterID > 0 {
		where, args = append(where, "id > ?"), append(args, f.AfterID)
	}
	keys := f.sort().keys()
	// Few cases carry an attention code, and few are open beside the
	// history: those lists find them all (through cases_attention or
	// cases_open_platform_state) and sort them, rather than walk the
	// order's index (or the table) past every other case until a page is
	// full. Open cases are the newest, and finished ones are updated last:
	// walking the update order from either end reads the history. noIndex
	// keeps the planner off the order's index, for the order and for a
	// cursor's range.
	sortAll := len(f.Attention) > 0 || f.AnyAttention || (f.OpenOnly && len(f.States) == 0)
	if f.After != nil {
		if !f.After.Matches(f) {
			return "", nil, fmt.Errorf("list cases: %w: made for another order", ErrBadCursor)
		}
		col := func(k string) string { return k }
		if sortAll {
			col = noIndex
		}
		w, a := keysetFilter(keys, f.Desc, *f.After, col)
		where, args = append(where, w), append(args, a...)
	}
	dir := ""
	if f.Desc {
		dir = " DESC"
	}
	order := " ORDER BY " + strings.Join(keys, dir+", ") + dir
	findOrder := order
	switch {
	case sortAll:
		unindexed := make([]string, len(keys))
		for i, k := range keys {
			unindexed[i] = noIndex(k)
		}
		findOrder = " ORDER BY " + strings.Join(unindexed, dir+", ") + dir
	case pg && len(f.States) == 1 && f.sort() == SortID:
		// One state in id order on PostgreSQL: its planner, taking the
		// state for spread evenly over the ids, walks the primary key from
		// the oldest end and filters, and open states sit among the newest
		// cases: a page read nearly the whole history (refundctl list
		// --state). Ordering by the state first would change nothing, but
		// the planner drops a key an equality fixes; held by a range of
		// one value instead, the state stays a key, and only cases_state_id
		// gives the order.
		//
		// A page after a cursor starts at it in the index: (state, id)
		// past (the state, the cursor's id), up to the state's last.
		st := f.States[0]
		var from int64
		if f.After != nil {
			from = f.After.ID
		}
		if !f.Desc {
			from = max(from, f.AfterID)
		}
		switch {
		case from > 0 && f.Desc:
			where[stateTerm] = "(state, id) < (?, ?) AND state >= ?"
			args = slices.Replace(args, stateArg, stateArg+1, any(st), any(from), any(st))
		case from > 0:
			where[stateTerm] = "(state, id) > (?, ?) AND state <= ?"
			args = slices.Replace(args, stateArg, stateArg+1, any(st), any(from), any(st))
		default:
			where[stateTerm] = "state >= ? AND state <= ?"
			args = slices.Replace(args, stateArg, stateArg+1, any(st), any(st))
		}
		findOrder = " ORDER BY state" + dir + ", id" + dir
	}
	// The page's ids are found first and its rows read after: when the
	// matches must be sorted (a filter and an order no one index serves,
	// such as a creation range in update order), the sort holds the keys
	// alone, not every column of thousands of rows.
	inner := `SELECT id FROM cases`
	if len(where) > 0 {
		inner += " WHERE " + strings.Join(where, " AND ")
	}
	ids := `id IN (` + inner + findOrder + ` LIMIT ?)`
	if pg {
		// PostgreSQL joins an IN list of many ids (the largest page's
		// 1,001) by scanning the whole table, which it costs below 1,001
		// probes of the primary key; an array of them is an index
		// condition, read through the key at any length.
		ids = `id = ANY(ARRAY(` + inner + findOrder + ` LIMIT ?))`
	}
	return `SELECT ` + caseColumns + ` FROM cases WHERE ` + ids + order, args, nil
}

// noIndex is column col as an expression with the same value, which no
// index serves: how SQLite is told not to use an index for a term (its
// documented unary +, spelled so that PostgreSQL reads it too).
func noIndex(col string) string {
	switch col {
	case "platform", "state":
		return col + " || ''"
	default:
		return col + " + 0"
	}
}

// keysetFilter is the condition "after cur" in the order of keys: a row
// value comparison, which SQLite (and PostgreSQL) answer from an index on
// the keys. col spells each key in the condition (noIndex, to keep the
// planner off the order's index).
func keysetFilter(keys []string, desc bool, cur CaseCursor, col func(string) string) (string, []any) {
	op := ">"
	if desc {
		op = "<"
	}
	var vals []any
	cols := make([]string, len(keys))
	for i, k := range keys {
		cols[i] = col(k)
		switch k {
		case "id":
			vals = append(vals, cur.ID)
		case "state":
			vals = append(vals, cur.State)
		default:
			vals = append(vals, cur.At)
		}
	}
	if len(keys) == 1 {
		return cols[0] + " " + op + " ?", vals
	}
	return "(" + strings.Join(cols, ", ") + ") " + op + " (?" + strings.Repeat(", ?", len(keys)-1) + ")", vals
}

// textColumns are the ids Text matches, each with the index that answers
// a prefix of it: the worker's own look-ups by platform and id (migrations
// 3, 14 and the first), searched once per platform, and cases_opened_by.
// Single-column indexes on the ids (migration 16) served the search alone
// and cost every case update an entry each; migration 17 dropped them.
// partial: the index holds non-empty values only, and the term says so,
// so that the planner can use it.
var textColumns = []struct {
	col              string
	partial, perPlat bool
}{{"order_id", false, true}, {"sub_order_id", true, true}, {"refund_id", true, true}, {"opened_by", true, false}}

// textFilter matches text as a prefix of the id columns: a range
// [text, text with its last character incremented), which an index on each
// column answers (LIKE would not, being case-insensitive in SQLite); a
// column indexed after the platform is searched under each platform
// (platform.IDs, the schema's CHECK), a range per platform. The range
// compares bytes, as SQLite's BINARY collation does, and as
// schema_postgres.sql's COLLATE "C" on these columns makes PostgreSQL do.
func textFilter(text string, caseID int64) (string, []any) {
	hi := prefixEnd(text)
	plats := platform.IDs()
	var terms []string
	var args []any
	for _, tc := range textColumns {
		t := tc.col + " >= ? AND " + tc.col + " < ?"
		if tc.partial {
			t = tc.col + " <> '' AND " + t
		}
		var a []any
		if tc.perPlat {
			t = "platform IN (?" + strings.Repeat(", ?", len(plats)-1) + ") AND " + t
			for _, p := range plats {
				a = append(a, string(p))
			}
		}
		terms, args = append(terms, "("+t+")"), append(append(args, a...), text, hi)
	}
	if caseID > 0 {
		terms, args = append(terms, "id = ?"), append(args, caseID)
	}
	return "(" + strings.Join(terms, " OR ") + ")", args
}

// prefixEnd is the least string greater than every string starting with
// p: p with its last character incremented (a last character that cannot
// be is dropped first). An empty p has no end: text filters need a
// non-empty one.
func prefixEnd(p string) string {
	r := []rune(p)
	for len(r) > 0 {
		switch last := r[len(r)-1]; {
		case last == 0xD7FF: // the next rune, a surrogate, is no character
			r[len(r)-1] = 0xE000
			return string(r)
		case last < utf8.MaxRune:
			r[len(r)-1] = last + 1
			return string(r)
		}
		r = r[:len(r)-1]
	}
	return string(utf8.MaxRune)
}

// DueCases returns open cases whose timer is at or before now, earliest
// first. A case a process (this one included) holds the lease of until
// after now is left out: that process's decision moves its timer, and a
// wake would only find it leased (and, asked again every tick, write a
// claim each time). A lease its holder failed to let go of keeps the case
// out until it expires.
func (s *Store) DueCases(ctx context.Context, now time.Time, limit int) ([]Case, error) {
	return selectCases(ctx, s.r, "due cases", `SELECT `+caseColumns+` FROM cases
		WHERE next_wake_at IS NOT NULL AND next_wake_at <= ? AND `+terminalFilter()+`
		AND (lease_owner = '' OR lease_until < ?)
		ORDER BY next_wake_at, id LIMIT ?`, ms64(now), ms64(now), clampLimit(limit))
}

// StaleOpenCases returns open cases whose last platform check is before
// olderThan (or that were never checked and were created before it), the
// stalest first: the reconciler re-queries them so that callbacks the
// platform never delivered cannot strand a case. Cases whose attention
// code is held (refundflow's worker_ended: no platform call until an
// operator acts) are left out: they would head the list for ever, since
// nothing checks them. So are cases whose last inputs failed and whose
// timer is the retry's backoff, still ahead (no further than backoffMax,
// the longest backoff): a platform read that keeps failing does not move
// last_platform_check_at, and such cases would head the list at every
// pass, read again each time whatever their backoff, and crowd out the
// others; their timer reads them again. A timer further ahead is not a
// backoff (the state's own re-check, hours away): not waited for.
func (s *Store) StaleOpenCases(ctx context.Context, olderThan time.Time, backoffMax time.Duration, limit int, held ...string) ([]Case, error) {
	now := s.now()
	args := []any{ms64(olderThan), ms64(now), ms64(now), ms64(now.Add(backoffMax))}
	skip := ""
	if len(held) > 0 {
		skip = " AND attention_code NOT IN (?" + strings.Repeat(", ?", len(held)-1) + ")"
		for _, h := range held {
			args = append(args, h)
		}
	}
	args = append(args, clampLimit(limit))
	return selectCases(ctx, s.r, "stale cases", `SELECT `+caseColumns+` FROM cases
		WHERE `+terminalFilter()+`
		AND COALESCE(last_platform_check_at, created_at) < ?
		AND (lease_owner = '' OR lease_until < ?)
		AND (failed_inputs = 0 OR next_wake_at IS NULL OR next_wake_at <= ? OR next_wake_at > ?)`+skip+`
		ORDER BY COALESCE(last_platform_check_at, created_at), id LIMIT ?`, args...)
}

// CountByState returns the number of cases in each state (for metrics).
func (s *Store) CountByState(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		State string `db:"state"`
		N     int    `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT state, COUNT(*) AS n FROM cases GROUP BY state`); err != nil {
		return nil, fmt.Errorf("count cases by state: %w", err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.State] = r.N
	}
	return out, nil
}

// CountOpenByPlatformState returns the number of open cases by platform,
// then state (the console's overview).
func (s *Store) CountOpenByPlatformState(ctx context.Context) (map[platform.ID]map[string]int, error) {
	var rows []struct {
		Platform string `db:"platform"`
		State    string `db:"state"`
		N        int    `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT platform, state, COUNT(*) AS n FROM cases
		WHERE `+terminalFilter()+` GROUP BY platform, state`); err != nil {
		return nil, fmt.Errorf("count open cases: %w", err)
	}
	out := map[platform.ID]map[string]int{}
	for _, r := range rows {
		p := platform.ID(r.Platform)
		if out[p] == nil {
			out[p] = map[string]int{}
		}
		out[p][r.State] = r.N
	}
	return out, nil
}

// IdlestOpenCases returns the open cases that have not moved for the
// longest (Case.MovedAt, oldest first; the id breaks ties), at most limit;
// with attention, only those carrying an attention code: the console's
// overview of what waits longest. Read from cases_open_moved (migration
// 27) in its order: the open cases alone, however long the history. The
// update time would not do: every check that finds nothing new moves it.
func (s *Store) IdlestOpenCases(ctx context.Context, attention bool, limit int) ([]Case, error) {
	return selectCases(ctx, s.r, "idlest open cases", idlestQuery(attention), clampLimit(limit))
}

// idlestQuery is IdlestOpenCases' query; its one argument, the limit.
func idlestQuery(attention bool) string {
	where := terminalFilter()
	if attention {
		where += " AND attention_code <> ''"
	}
	return `SELECT ` + caseColumns + ` FROM cases WHERE ` + where + ` ORDER BY moved_at, id LIMIT ?`
}

// CountOpenByAttention returns the number of open cases carrying each
// attention code (needs_attention reasons and flags such as
// waiting_evidence), for metrics.
func (s *Store) CountOpenByAttention(ctx context.Context) (map[string]int, error) {
	var rows []struct {
		Code string `db:"attention_code"`
		N    int    `db:"n"`
	}
	if err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT attention_code, COUNT(*) AS n FROM cases
		WHERE attention_code <> '' AND `+terminalFilter()+` GROUP BY attention_code`); err != nil {
		return nil, fmt.Errorf("count cases by attention: %w", err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.Code] = r.N
	}
	return out, nil
}

// RecentStepErrors returns the step attempts with a platform error code,
// newest error first (StepAttempt.ErrorAt; the console's overview), among
// them open intents whose newest attempt failed: read in order from the
// partial index step_attempts_error_times (migration 20), whose expression
// the ORDER BY repeats.
func (s *Store) RecentStepErrors(ctx context.Context, limit int) ([]StepAttempt, error) {
	var rows []stepRow
	if err := sqlx.SelectContext(ctx, s.r, &rows, recentStepErrors, clampLimit(limit)); err != nil {
		return nil, fmt.Errorf("recent step errors: %w", err)
	}
	out := make([]StepAttempt, len(rows))
	for i, r := range rows {
		out[i] = r.toStep()
	}
	return out, nil
}

// recentStepErrors is RecentStepErrors' query.
const recentStepErrors = `SELECT ` + stepColumns + ` FROM step_attempts WHERE error_code <> ''
	ORDER BY COALESCE(finished_at, last_attempt_at, started_at) DESC, id DESC LIMIT ?`

func selectCases(ctx context.Context, q sqlx.QueryerContext, what, query string, args ...any) ([]Case, error) {
	var rows []caseRow
	if err := sqlx.SelectContext(ctx, q, &rows, query, args...); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]Case, len(rows))
	for i, r := range rows {
		out[i] = r.toCase()
	}
	return out, nil
}

// clampLimit is a query's LIMIT for a requested n: 100 when unset, at most
// MaxListLimit.
func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > MaxListLimit:
		return MaxListLimit
	default:
		return n
	}
}
