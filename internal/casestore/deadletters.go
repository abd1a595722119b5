package casestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// DeadLetter is a message the worker gave up on, kept with the reason so an
// operator can inspect it, and retry or discard it.
type DeadLetter struct {
	ID          int64
	MsgID       string
	Subject     string
	Headers     map[string][]string
	Payload     []byte
	Reason      string // an events.DeadReason (casestore stores it as given)
	Error       string
	Deliveries  int
	CreatedAt   time.Time
	RetriedAt   time.Time // zero until retried
	DiscardedAt time.Time // zero unless discarded
	DiscardedBy string    // the operator who discarded it
	DiscardNote string    // why
	// Stream and StreamSeq: the stream copy that died (empty for a dead
	// letter stored before migration 22). See PendingDeadLetter.
	Stream    string
	StreamSeq uint64
	// Supersedes, on insert only, is a reason whose pending row for the
	// message (not discarded by an operator) gives way to this dead letter
	// (InsertDeadLetter): a guess made without the handler, replaced by
	// the handler's own verdict.
	Supersedes string
}

// Errors of DiscardDeadLetter: the dead letter was dealt with already.
var (
	ErrDeadLetterRetried   = errors.New("casestore: dead letter already retried")
	ErrDeadLetterDiscarded = errors.New("casestore: dead letter already discarded")
)

type deadRow struct {
	ID          int64         `db:"id"`
	MsgID       string        `db:"msg_id"`
	Subject     string        `db:"subject"`
	Headers     string        `db:"headers"`
	Payload     []byte        `db:"payload"`
	Reason      string        `db:"reason"`
	Error       string        `db:"error"`
	Deliveries  int           `db:"deliveries"`
	CreatedAt   int64         `db:"created_at"`
	RetriedAt   sql.NullInt64 `db:"retried_at"`
	DiscardedAt sql.NullInt64 `db:"discarded_at"`
	DiscardedBy string        `db:"discarded_by"`
	DiscardNote string        `db:"discard_note"`
	Stream      string        `db:"stream"`
	StreamSeq   int64         `db:"stream_seq"`
}

const deadColumns = `id, msg_id, subject, headers, payload, reason, error, deliveries, created_at, retried_at,
	discarded_at, discarded_by, discard_note, stream, stream_seq`

func (r deadRow) toDeadLetter() (DeadLetter, error) {
	d := DeadLetter{ID: r.ID, MsgID: r.MsgID, Subject: r.Subject, Payload: r.Payload, Reason: r.Reason,
		Error: r.Error, Deliveries: r.Deliveries, CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), RetriedAt: fromMS(r.RetriedAt),
		DiscardedAt: fromMS(r.DiscardedAt), DiscardedBy: r.DiscardedBy, DiscardNote: r.DiscardNote,
		Stream: r.Stream, StreamSeq: uint64(r.StreamSeq)}
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
// returned with inserted == false. That holds for a discarded one too (see
// migration 10): the operator's discard covers the same message dying again.
// The existing row then takes d's stream copy (Stream, StreamSeq): the one
// that died last, whose redelivery PendingDeadLetter must find. An
// existing row of reason d.Supersedes, pending or discarded by the worker
// ("worker"), becomes d instead (reason, error, deliveries; pending
// again), and counts as inserted: its reason is new.
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
	id, inserted, err = tx.insert(ctx, `INSERT INTO dead_letters
		(msg_id, subject, headers, payload, reason, error, deliveries, created_at, stream, stream_seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (msg_id) WHERE retried_at IS NULL DO NOTHING`,
		d.MsgID, d.Subject, string(headers), payload, d.Reason, d.Error, d.Deliveries, ms64(at), d.Stream, int64(d.StreamSeq))
	if err != nil {
		return 0, false, fmt.Errorf("insert dead letter %q: %w", d.MsgID, err)
	}
	if inserted {
		return id, true, nil
	}
	if err := sqlx.GetContext(ctx, tx.tx, &id, `SELECT id FROM dead_letters WHERE msg_id = ? AND retried_at IS NULL`, d.MsgID); err != nil {
		return 0, false, fmt.Errorf("insert dead letter %q: %w", d.MsgID, err)
	}
	if d.Stream != "" {
		if _, err := tx.tx.ExecContext(ctx, `UPDATE dead_letters SET stream = ?, stream_seq = ?
			WHERE id = ? AND (stream <> ? OR stream_seq <> ?)`, d.Stream, int64(d.StreamSeq), id, d.Stream, int64(d.StreamSeq)); err != nil {
			return 0, false, fmt.Errorf("insert dead letter %q: %w", d.MsgID, err)
		}
	}
	if d.Supersedes != "" && d.Supersedes != d.Reason {
		res, err := tx.tx.ExecContext(ctx, `UPDATE dead_letters SET reason = ?, error = ?, deliveries = ?,
			discarded_at = NULL, discarded_by = '', discard_note = ''
			WHERE id = ? AND reason = ? AND (discarded_at IS NULL OR discarded_by = ?)`,
			d.Reason, d.Error, d.Deliveries, id, d.Supersedes, WorkerDiscards)
		if err != nil {
			return 0, false, fmt.Errorf("insert dead letter %q: %w", d.MsgID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, false, fmt.Errorf("insert dead letter %q: %w", d.MsgID, err)
		} else if n == 1 {
			return id, true, nil
		}
	}
	return id, false, nil
}

// WorkerDiscards is who a dead letter the worker discarded itself says
// discarded it (DiscardDeadLetter's by): one whose message was settled
// after all.
const WorkerDiscards = "worker"

// DeadLetterFilter selects dead letters. Zero fields do not filter.
type DeadLetterFilter struct {
	PendingOnly bool          // neither retried nor discarded
	Discarded   DiscardFilter // discarded or not
	Reasons     []string      // reason is one of these (events.DeadReason.StoredValues)
	AfterID     int64         // paging
	Limit       int           // default 100, at most 1000
}

// DiscardFilter selects dead letters by whether they were discarded.
type DiscardFilter int

// The discard filters. The zero value selects all, like every zero filter.
const (
	DiscardedAny  DiscardFilter = iota // discarded or not
	DiscardedNot                       // not discarded
	DiscardedOnly                      // discarded
)

// DeadLetters lists dead letters in id order.
func (s *Store) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	q := `SELECT ` + deadColumns + ` FROM dead_letters WHERE id > ?`
	args := []any{f.AfterID}
	if f.PendingOnly {
		q += ` AND retried_at IS NULL AND discarded_at IS NULL`
	}
	switch f.Discarded {
	case DiscardedNot:
		q += ` AND discarded_at IS NULL`
	case DiscardedOnly:
		q += ` AND discarded_at IS NOT NULL`
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

// PendingDeadLetter returns the dead letter, not yet retried (discarded or
// not), of the stream copy seq of stream of message msgID, or ErrNotFound:
// a redelivered copy that has one was dead-lettered by an earlier delivery
// whose Term did not reach the server (a crash after the commit, a copy
// that could not be published), and must not be applied now. Another copy
// under the same id (a replay, a callback pushed again, a command id used
// again) is not that copy, and has none.
func (s *Store) PendingDeadLetter(ctx context.Context, msgID, stream string, seq uint64) (DeadLetter, error) {
	var r deadRow
	if err := sqlx.GetContext(ctx, s.r, &r, `SELECT `+deadColumns+` FROM dead_letters
		WHERE msg_id = ? AND retried_at IS NULL AND stream = ? AND stream_seq = ?`, msgID, stream, int64(seq)); err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter of message %s (%s #%d): %w", msgID, stream, seq, notFound(err))
	}
	return r.toDeadLetter()
}

// DeadLettered reports whether message msgID has a dead letter not yet
// retried (discarded or not; whichever copy of it died last), or the
// stream copy seq of stream, under whatever id, has one, retried or not
// (a retried letter lives on as a new copy): given up, and not to be
// applied in passing (casework's earlier.go applies the unsettled
// commands issued before one). Both look-ups are on partial indexes.
func (s *Store) DeadLettered(ctx context.Context, msgID, stream string, seq uint64) (bool, error) {
	var n int
	if err := sqlx.GetContext(ctx, s.r, &n, `SELECT
		(SELECT COUNT(*) FROM dead_letters WHERE msg_id = ? AND retried_at IS NULL) +
		(SELECT COUNT(*) FROM dead_letters WHERE stream = ? AND stream_seq = ? AND stream <> '')`,
		msgID, stream, int64(seq)); err != nil {
		return false, fmt.Errorf("dead letter of message %s (%s #%d): %w", msgID, stream, seq, err)
	}
	return n > 0, nil
}

// PendingDeadLetterOfCopy returns the dead letter, not yet retried
// (discarded or not), of the stream copy seq of stream, whatever message
// id it was written under, or ErrNotFound. A stream copy is one message:
// the id a take-up knows it by (the callback's own, the command's) may
// differ from the Nats-Msg-Id its dead letter was written under.
func (s *Store) PendingDeadLetterOfCopy(ctx context.Context, stream string, seq uint64) (DeadLetter, error) {
	var r deadRow
	if err := sqlx.GetContext(ctx, s.r, &r, `SELECT `+deadColumns+` FROM dead_letters
		WHERE stream = ? AND stream_seq = ? AND retried_at IS NULL AND stream <> '' ORDER BY id DESC LIMIT 1`, stream, int64(seq)); err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter of %s #%d: %w", stream, seq, notFound(err))
	}
	return r.toDeadLetter()
}

// DeadLetter reads a dead letter in the transaction: the row a message
// that died again shares (InsertDeadLetter), whose reason its verdict
// must give.
func (tx *Tx) DeadLetter(ctx context.Context, id int64) (DeadLetter, error) {
	var r deadRow
	if err := sqlx.GetContext(ctx, tx.tx, &r, `SELECT `+deadColumns+` FROM dead_letters WHERE id = ?`, id); err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", id, notFound(err))
	}
	return r.toDeadLetter()
}

// MarkDeadLetterRetried records that the dead letter was re-published. It
// returns ErrNotFound if there is no such dead letter or it was already
// retried. It marks a dead letter discarded since the caller read it too:
// the message went out, and the row says so.
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

// DiscardDeadLetter marks a dead letter discarded by an operator, with a
// note saying why; the row stays. It returns ErrNotFound without such a
// dead letter, ErrDeadLetterRetried if it was retried (the message went
// out: there is nothing left to discard) and ErrDeadLetterDiscarded if it
// was discarded already (the first discard's record stands), each
// changing nothing.
func (tx *Tx) DiscardDeadLetter(ctx context.Context, id int64, by, note string) error {
	var r deadRow
	if err := sqlx.GetContext(ctx, tx.tx, &r, `SELECT `+deadColumns+` FROM dead_letters WHERE id = ?`+tx.forUpdate(), id); err != nil {
		return fmt.Errorf("discard dead letter %d: %w", id, notFound(err))
	}
	switch {
	case r.RetriedAt.Valid:
		return fmt.Errorf("discard dead letter %d: %w", id, ErrDeadLetterRetried)
	case r.DiscardedAt.Valid:
		return fmt.Errorf("discard dead letter %d: %w", id, ErrDeadLetterDiscarded)
	}
	if _, err := tx.tx.ExecContext(ctx, `UPDATE dead_letters SET discarded_at = ?, discarded_by = ?, discard_note = ? WHERE id = ?`,
		ms64(tx.now), by, note, id); err != nil {
		return fmt.Errorf("discard dead letter %d: %w", id, err)
	}
	return nil
}
