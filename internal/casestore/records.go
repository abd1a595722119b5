package casestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
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
// the transaction's time.
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
	if _, err := tx.tx.ExecContext(ctx, timelineInsert[len(entries)-1], args...); err != nil {
		return fmt.Errorf("append timeline of case %d: %w", entries[0].CaseID, err)
	}
	return nil
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

// InboxEntry is a consumed message, recorded in the same transaction as its
// effect so that a redelivery is recognised and dropped.
type InboxEntry struct {
	MsgID      string // content hash
	Stream     string
	StreamSeq  uint64
	Subject    string
	ReceivedAt time.Time // zero: the transaction's time
	// Deferred: the message waited in deferred_inputs; its row goes with
	// this record (the input is applied now).
	Deferred bool
}

// InboxSeen reports whether the message was already applied, inside the
// transaction that would apply it.
func (tx *Tx) InboxSeen(ctx context.Context, msgID string) (bool, error) {
	return inboxSeen(ctx, tx.tx, msgID)
}

// InboxSeen reports whether the message was already applied (a cheap check
// before opening a write transaction; re-check inside it).
func (s *Store) InboxSeen(ctx context.Context, msgID string) (bool, error) {
	return inboxSeen(ctx, s.r, msgID)
}

func inboxSeen(ctx context.Context, q sqlx.QueryerContext, msgID string) (bool, error) {
	var n int
	if err := sqlx.GetContext(ctx, q, &n, `SELECT COUNT(*) FROM inbox WHERE msg_id = ?`, msgID); err != nil {
		return false, fmt.Errorf("inbox %q: %w", msgID, err)
	}
	return n > 0, nil
}

// InboxRecord marks a message applied. It returns false if it already was
// (the caller should then roll back its effect: it is a duplicate).
func (tx *Tx) InboxRecord(ctx context.Context, e InboxEntry) (bool, error) {
	if e.MsgID == "" {
		return false, fmt.Errorf("inbox record: empty message id")
	}
	at := e.ReceivedAt
	if at.IsZero() {
		at = tx.now
	}
	res, err := tx.tx.ExecContext(ctx, `INSERT INTO inbox (msg_id, stream, stream_seq, subject, received_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (msg_id) DO NOTHING`,
		e.MsgID, e.Stream, int64(e.StreamSeq), e.Subject, ms64(at))
	if err != nil {
		return false, fmt.Errorf("inbox record %q: %w", e.MsgID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("inbox record %q: %w", e.MsgID, err)
	}
	if e.Deferred {
		if err := tx.DeleteDeferred(ctx, e.MsgID); err != nil {
			return false, err
		}
	}
	return n == 1, nil
}

// PruneInbox deletes inbox rows received before the given time and returns
// how many it deleted. Keep them longer than any redelivery can arrive (days).
func (s *Store) PruneInbox(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.Update(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `DELETE FROM inbox WHERE received_at < ?`, ms64(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune inbox: %w", err)
	}
	return n, nil
}

// Checkpoint copies the WAL into the database file and truncates it
// (PRAGMA wal_checkpoint(TRUNCATE)). SQLite checkpoints on its own as the WAL
// grows; call this now and then from one process so that readers holding old
// snapshots cannot let the WAL grow without bound.
func (s *Store) Checkpoint(ctx context.Context) error {
	var busy, logFrames, checkpointed int
	if err := s.w.QueryRowxContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &checkpointed); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if busy != 0 {
		return fmt.Errorf("checkpoint: %w", ErrCheckpointBusy)
	}
	return nil
}

// DeadLetter is a message the worker gave up on, kept with the reason so an
// operator can inspect and retry it.
type DeadLetter struct {
	ID         int64
	MsgID      string
	Subject    string
	Headers    map[string][]string
	Payload    []byte
	Reason     string // an events.DeadReason (casestore stores it as given)
	Error      string
	Deliveries int
	CreatedAt  time.Time
	RetriedAt  time.Time // zero until retried
}

type deadRow struct {
	ID         int64         `db:"id"`
	MsgID      string        `db:"msg_id"`
	Subject    string        `db:"subject"`
	Headers    string        `db:"headers"`
	Payload    []byte        `db:"payload"`
	Reason     string        `db:"reason"`
	Error      string        `db:"error"`
	Deliveries int           `db:"deliveries"`
	CreatedAt  int64         `db:"created_at"`
	RetriedAt  sql.NullInt64 `db:"retried_at"`
}

const deadColumns = `id, msg_id, subject, headers, payload, reason, error, deliveries, created_at, retried_at`

func (r deadRow) toDeadLetter() (DeadLetter, error) {
	d := DeadLetter{ID: r.ID, MsgID: r.MsgID, Subject: r.Subject, Payload: r.Payload, Reason: r.Reason,
		Error: r.Error, Deliveries: r.Deliveries, CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), RetriedAt: fromMS(r.RetriedAt)}
	if d.Payload == nil {
		d.Payload = []byte{}
	}
	if r.Headers != "" && r.Headers != "{}" {
		if err := json.Unmarshal([]byte(r.Headers), &d.Headers); err != nil {
			return DeadLetter{}, fmt.Errorf("dead letter %d headers: %w", r.ID, err)
		}
	}
	return d, nil
}

// InsertDeadLetter stores a dead letter and returns its id. A message that is
// already dead and not yet retried is not stored twice: the existing id is
// returned with inserted == false.
func (tx *Tx) InsertDeadLetter(ctx context.Context, d DeadLetter) (id int64, inserted bool, err error) {
	headers := []byte("{}")
	if len(d.Headers) > 0 {
		if headers, err = json.Marshal(d.Headers); err != nil {
			return 0, false, fmt.Errorf("dead letter headers: %w", err)
		}
	}
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	at := d.CreatedAt
	if at.IsZero() {
		at = tx.now
	}
	res, err := tx.tx.ExecContext(ctx, `INSERT INTO dead_letters
		(msg_id, subject, headers, payload, reason, error, deliveries, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (msg_id) WHERE retried_at IS NULL DO NOTHING`,
		d.MsgID, d.Subject, string(headers), payload, d.Reason, d.Error, d.Deliveries, ms64(at))
	if err != nil {
		return 0, false, fmt.Errorf("insert dead letter %q: %w", d.MsgID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return 0, false, fmt.Errorf("insert dead letter %q: %w", d.MsgID, err)
	} else if n == 1 {
		id, err := res.LastInsertId()
		return id, true, err
	}
	if err := sqlx.GetContext(ctx, tx.tx, &id, `SELECT id FROM dead_letters WHERE msg_id = ? AND retried_at IS NULL`, d.MsgID); err != nil {
		return 0, false, fmt.Errorf("insert dead letter %q: %w", d.MsgID, err)
	}
	return id, false, nil
}

// DeadLetterFilter selects dead letters. Zero fields do not filter.
type DeadLetterFilter struct {
	PendingOnly bool     // not yet retried
	Reasons     []string // reason is one of these (events.DeadReason.StoredValues)
	AfterID     int64    // paging
	Limit       int      // default 100, at most 1000
}

// DeadLetters lists dead letters in id order.
func (s *Store) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	q := `SELECT ` + deadColumns + ` FROM dead_letters WHERE id > ?`
	args := []any{f.AfterID}
	if f.PendingOnly {
		q += ` AND retried_at IS NULL`
	}
	if len(f.Reasons) > 0 {
		q += ` AND reason IN (?` + strings.Repeat(`, ?`, len(f.Reasons)-1) + `)`
		for _, r := range f.Reasons {
			args = append(args, r)
		}
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, clampLimit(f.Limit))
	var rows []deadRow
	if err := sqlx.SelectContext(ctx, s.r, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out := make([]DeadLetter, 0, len(rows))
	for _, r := range rows {
		d, err := r.toDeadLetter()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// DeadLetter returns one dead letter, or ErrNotFound.
func (s *Store) DeadLetter(ctx context.Context, id int64) (DeadLetter, error) {
	var r deadRow
	if err := sqlx.GetContext(ctx, s.r, &r, `SELECT `+deadColumns+` FROM dead_letters WHERE id = ?`, id); err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", id, notFound(err))
	}
	return r.toDeadLetter()
}

// MarkDeadLetterRetried records that the dead letter was re-published. It
// returns ErrNotFound if there is no such dead letter or it was already retried.
func (tx *Tx) MarkDeadLetterRetried(ctx context.Context, id int64) error {
	res, err := tx.tx.ExecContext(ctx, `UPDATE dead_letters SET retried_at = ? WHERE id = ? AND retried_at IS NULL`,
		ms64(tx.now), id)
	if err != nil {
		return fmt.Errorf("mark dead letter %d retried: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("mark dead letter %d retried: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("mark dead letter %d retried: %w", id, ErrNotFound)
	}
	return nil
}
