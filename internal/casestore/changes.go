package casestore

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// CaseChange is what a reader following the store needs to know of a
// case that moved: enough to tell whether it is news (Version) and what
// it became, without reading the whole row.
type CaseChange struct {
	ID            int64
	State         string
	AttentionCode string
	Version       int64
	UpdatedAt     time.Time
}

// ChangesFilter selects CaseChanges: cases whose (updated_at, id) comes
// after (AfterMS, AfterID), in that order.
type ChangesFilter struct {
	AfterMS int64 // updated_at in Unix milliseconds
	AfterID int64 // among cases updated at AfterMS, ids greater than this
	CaseID  int64 // 0: every case
	Limit   int   // default 100, at most MaxListLimit
}

// CaseChanges returns the cases updated after f's position, oldest update
// first (ties by id), so that a follower can resume from the last one it
// saw. The console polls it about once a second per open stream: the
// position is a range of cases_updated (updated_at, id) where the index
// holds it, not a filter over the history.
func (s *Store) CaseChanges(ctx context.Context, f ChangesFilter) ([]CaseChange, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, MaxListLimit)
	q, args := changesQuery(f)
	var rows []struct {
		ID            int64  `db:"id"`
		State         string `db:"state"`
		AttentionCode string `db:"attention_code"`
		Version       int64  `db:"version"`
		UpdatedAt     int64  `db:"updated_at"`
	}
	if err := sqlx.SelectContext(ctx, s.r, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("case changes: %w", err)
	}
	out := make([]CaseChange, len(rows))
	for i, r := range rows {
		out[i] = CaseChange{ID: r.ID, State: r.State, AttentionCode: r.AttentionCode, Version: r.Version,
			UpdatedAt: time.UnixMilli(r.UpdatedAt).UTC()}
	}
	return out, nil
}

// changesQuery is CaseChanges' query for f, with its arguments.
func changesQuery(f ChangesFilter) (string, []any) {
	q := `SELECT id, state, attention_code, version, updated_at FROM cases
		WHERE updated_at >= ? AND (updated_at > ? OR id > ?)`
	args := []any{f.AfterMS, f.AfterMS, f.AfterID}
	if f.CaseID > 0 {
		q += ` AND id = ?`
		args = append(args, f.CaseID)
	}
	return q + ` ORDER BY updated_at, id LIMIT ?`, append(args, f.Limit)
}
