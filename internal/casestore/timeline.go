package casestore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// TimelineKind says what produced a timeline entry.
type TimelineKind string

// Timeline kinds (the schema's CHECK list).
const (
	KindCallback  TimelineKind = "callback"
	KindCommand   TimelineKind = "command"
	KindDecision  TimelineKind = "decision"
	KindStep      TimelineKind = "step"
	KindTimer     TimelineKind = "timer"
	KindReconcile TimelineKind = "reconcile"
	KindNote      TimelineKind = "note"
)

// TimelineEntry is one thing that happened to a case, for operators.
type TimelineEntry struct {
	ID      int64
	CaseID  int64
	At      time.Time
	Kind    TimelineKind
	Summary string
	Detail  json.RawMessage // JSON object; empty means {}
}

type timelineRow struct {
	ID      int64  `db:"id"`
	CaseID  int64  `db:"case_id"`
	At      int64  `db:"at"`
	Kind    string `db:"kind"`
	Summary string `db:"summary"`
	Detail  string `db:"detail"`
}

// AppendTimeline adds entries to case timelines, in order; a zero At means
// the transaction's time. On PostgreSQL the statement is queued
// (pipeline.go).
func (tx *Tx) AppendTimeline(ctx context.Context, entries ...TimelineEntry) error {
	switch len(entries) {
	case 0:
		return nil
	case 1:
	default:
		if len(entries) > maxTimelineBatch {
			if err := tx.AppendTimeline(ctx, entries[:maxTimelineBatch]...); err != nil {
				return err
			}
			return tx.AppendTimeline(ctx, entries[maxTimelineBatch:]...)
		}
	}
	// One multi-row INSERT: rows get ids in argument order.
	args := make([]any, 0, 5*len(entries))
	for _, e := range entries {
		detail, err := jsonText("timeline detail", e.Detail)
		if err != nil {
			return err
		}
		at := e.At
		if at.IsZero() {
			at = tx.now
		}
		args = append(args, e.CaseID, ms64(at), string(e.Kind), e.Summary, detail)
	}
	caseID := entries[0].CaseID
	return tx.later(ctx, fmt.Sprintf("append timeline of case %d", caseID), timelineInsert[len(entries)-1], args...)
}

// maxTimelineBatch bounds the rows of one timeline INSERT (so the statement
// texts, and the prepared statements cached for them, are few).
const maxTimelineBatch = 8

// timelineInsert[n-1] inserts n timeline rows.
var timelineInsert = func() []string {
	out := make([]string, maxTimelineBatch)
	q := `INSERT INTO timeline (case_id, at, kind, summary, detail) VALUES (?, ?, ?, ?, ?)`
	for i := range out {
		out[i] = q
		q += `, (?, ?, ?, ?, ?)`
	}
	return out
}()

// Timeline returns a case's timeline, oldest first.
func (s *Store) Timeline(ctx context.Context, caseID int64) ([]TimelineEntry, error) {
	var rows []timelineRow
	if err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT id, case_id, at, kind, summary, detail FROM timeline
		WHERE case_id = ? ORDER BY id`, caseID); err != nil {
		return nil, fmt.Errorf("timeline of case %d: %w", caseID, err)
	}
	out := make([]TimelineEntry, len(rows))
	for i, r := range rows {
		out[i] = TimelineEntry{ID: r.ID, CaseID: r.CaseID, At: time.UnixMilli(r.At).UTC(),
			Kind: TimelineKind(r.Kind), Summary: r.Summary, Detail: json.RawMessage(r.Detail)}
	}
	return out, nil
}

// TimelineTail returns the newest n entries of a case's timeline, oldest
// first (all of them when it has fewer).
func (s *Store) TimelineTail(ctx context.Context, caseID int64, n int) ([]TimelineEntry, error) {
	var rows []timelineRow
	if err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT id, case_id, at, kind, summary, detail FROM timeline
		WHERE case_id = ? ORDER BY id DESC LIMIT ?`, caseID, max(n, 0)); err != nil {
		return nil, fmt.Errorf("timeline tail of case %d: %w", caseID, err)
	}
	out := make([]TimelineEntry, len(rows))
	for i, r := range rows {
		out[len(rows)-1-i] = TimelineEntry{ID: r.ID, CaseID: r.CaseID, At: time.UnixMilli(r.At).UTC(),
			Kind: TimelineKind(r.Kind), Summary: r.Summary, Detail: json.RawMessage(r.Detail)}
	}
	return out, nil
}
