// Case lists: the operator's filtered pages, the timer's due cases, the
// reconciler's stale ones, and the counts the metrics read.

package casestore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// CaseFilter selects cases for ListCases. Zero fields do not filter.
type CaseFilter struct {
	Platform      string
	States        []string
	OpenOnly      bool      // exclude terminal states
	UpdatedBefore time.Time // cases untouched since this time (age)
	CreatedAfter  time.Time
	// Attention: cases carrying one of these attention codes (needs_attention
	// reasons, or flags such as waiting_evidence); AnyAttention: any code.
	Attention    []string
	AnyAttention bool
	AfterID      int64 // paging: ids greater than this
	Limit        int   // default 100, at most MaxListLimit
}

// MaxListLimit is the most cases one ListCases or ListCasesPage call
// returns: a page, read in one query. Callers that want more page on with
// CaseFilter.AfterID.
const MaxListLimit = 1000

// ListCases returns the cases matching f in id order.
func (s *Store) ListCases(ctx context.Context, f CaseFilter) ([]Case, error) {
	q, args := listQuery(f)
	return selectCases(ctx, s.r, "list cases", q, append(args, clampLimit(f.Limit))...)
}

// ListCasesPage is ListCases that also reports whether more cases match
// after the last one returned (read as one row beyond the page, in the
// same query): the caller pages on with AfterID set to the last id.
func (s *Store) ListCasesPage(ctx context.Context, f CaseFilter) (cases []Case, more bool, err error) {
	n := clampLimit(f.Limit)
	q, args := listQuery(f)
	cases, err = selectCases(ctx, s.r, "list cases", q, append(args, n+1)...)
	if err != nil {
		return nil, false, err
	}
	if len(cases) > n {
		return cases[:n], true, nil
	}
	return cases, false, nil
}

// listQuery is the query of ListCases for f, with its arguments but the
// final LIMIT's.
func listQuery(f CaseFilter) (string, []any) {
	var where []string
	var args []any
	if f.Platform != "" {
		where, args = append(where, "platform = ?"), append(args, f.Platform)
	}
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	if f.OpenOnly {
		where = append(where, terminalFilter())
	}
	if len(f.Attention) > 0 {
		where = append(where, "attention_code IN (?"+strings.Repeat(", ?", len(f.Attention)-1)+")")
		for _, a := range f.Attention {
			args = append(args, a)
		}
	}
	if f.AnyAttention {
		where = append(where, "attention_code <> ''")
	}
	if !f.UpdatedBefore.IsZero() {
		where, args = append(where, "updated_at < ?"), append(args, ms64(f.UpdatedBefore))
	}
	if !f.CreatedAfter.IsZero() {
		where, args = append(where, "created_at > ?"), append(args, ms64(f.CreatedAfter))
	}
	if f.AfterID > 0 {
		where, args = append(where, "id > ?"), append(args, f.AfterID)
	}
	q := `SELECT ` + caseColumns + ` FROM cases`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id LIMIT ?"
	return q, args
}

// DueCases returns open cases whose timer is at or before now, earliest first.
func (s *Store) DueCases(ctx context.Context, now time.Time, limit int) ([]Case, error) {
	return selectCases(ctx, s.r, "due cases", `SELECT `+caseColumns+` FROM cases
		WHERE next_wake_at IS NOT NULL AND next_wake_at <= ? AND `+terminalFilter()+`
		ORDER BY next_wake_at, id LIMIT ?`, ms64(now), clampLimit(limit))
}

// StaleOpenCases returns open cases whose last platform check is before
// olderThan (or that were never checked and were created before it), the
// stalest first: the reconciler re-queries them so that callbacks the
// platform never delivered cannot strand a case.
func (s *Store) StaleOpenCases(ctx context.Context, olderThan time.Time, limit int) ([]Case, error) {
	return selectCases(ctx, s.r, "stale cases", `SELECT `+caseColumns+` FROM cases
		WHERE `+terminalFilter()+`
		AND COALESCE(last_platform_check_at, created_at) < ?
		ORDER BY COALESCE(last_platform_check_at, created_at), id LIMIT ?`, ms64(olderThan), clampLimit(limit))
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
