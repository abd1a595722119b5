package casestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub/internal/platform"
)

// Sources: the streams an input's message can come from (deferred_inputs.source).
const (
	SourceCommands  = "commands"
	SourceCallbacks = "callbacks"
)

// DeferredInput is a consumed message whose case had to wait before the
// message could be applied: it waits here, durably, until NotBefore, and
// the message itself is acknowledged. Waiting thus never holds one of the
// consumer's MaxAckPending slots, so one case's wait cannot delay another
// case. The worker takes due inputs up in order (oldest first per case,
// commands behind commands; see DueDeferredCases); the
// row is deleted in the transaction that records the input in the inbox
// (Tx.InboxRecord with the message marked as deferred).
type DeferredInput struct {
	ID        int64
	CaseID    int64
	MsgID     string // the inbox key of the message
	Source    string // SourceCommands or SourceCallbacks: how to decode Payload
	Payload   []byte // the message body as received
	Stream    string
	StreamSeq uint64
	Subject   string
	NotBefore time.Time // when it can get further
	Reason    string    // why it waits: a decision code, for operators
	// Attempts counts the times it was taken up and failed (a platform call
	// or the store, not a wait for a known time), or did not return (the
	// process ended: StartTakeUp): past a bound the worker gives it up as a
	// dead letter. Defer adds the given value.
	Attempts  int
	CreatedAt time.Time
}

type deferredRow struct {
	ID        int64  `db:"id"`
	CaseID    int64  `db:"case_id"`
	MsgID     string `db:"msg_id"`
	Source    string `db:"source"`
	Payload   []byte `db:"payload"`
	Stream    string `db:"stream"`
	StreamSeq int64  `db:"stream_seq"`
	Subject   string `db:"subject"`
	NotBefore int64  `db:"not_before"`
	Reason    string `db:"reason"`
	Attempts  int    `db:"attempts"`
	CreatedAt int64  `db:"created_at"`
}

const deferredColumns = `id, case_id, msg_id, source, payload, stream, stream_seq, subject, not_before, reason, attempts, created_at`

func (r deferredRow) toDeferred() DeferredInput {
	return DeferredInput{ID: r.ID, CaseID: r.CaseID, MsgID: r.MsgID, Source: r.Source, Payload: r.Payload,
		Stream: r.Stream, StreamSeq: uint64(r.StreamSeq), Subject: r.Subject, NotBefore: time.UnixMilli(r.NotBefore).UTC(),
		Reason: r.Reason, Attempts: r.Attempts, CreatedAt: time.UnixMilli(r.CreatedAt).UTC()}
}

// Defer keeps an input for its case until d.NotBefore. Deferring a message
// that already waits (the same MsgID: taken up again and still waiting, or a
// redelivered copy) moves its time and reason and adds d.Attempts (1 for a
// failure, 0 for a wait) to its count; it keeps its place in the case's
// order.
func (tx *Tx) Defer(ctx context.Context, d DeferredInput) error {
	if d.MsgID == "" || d.CaseID == 0 {
		return fmt.Errorf("defer input: empty message id or case")
	}
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	_, err := tx.tx.ExecContext(ctx, `INSERT INTO deferred_inputs
		(case_id, msg_id, source, payload, stream, stream_seq, subject, not_before, reason, attempts, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (msg_id) DO UPDATE SET not_before = excluded.not_before, reason = excluded.reason,
			attempts = deferred_inputs.attempts + excluded.attempts`,
		d.CaseID, d.MsgID, d.Source, payload, d.Stream, int64(d.StreamSeq), d.Subject, ms64(d.NotBefore), d.Reason,
		d.Attempts, ms64(tx.now))
	if err != nil {
		return fmt.Errorf("defer input %q of case %d: %w", d.MsgID, d.CaseID, err)
	}
	return nil
}

// DeferNew keeps an input for its case unless its message is kept already
// (the same MsgID) or was applied (it is in the inbox: a copy that came
// while another was being applied), in which case it changes nothing;
// fresh reports that it was kept now. The engine keeps a refund callback this way before verifying it
// (refundflow's recordCallback): a redelivered copy must neither move the
// row's time nor add a second "callback received" entry to the timeline.
func (tx *Tx) DeferNew(ctx context.Context, d DeferredInput) (fresh bool, err error) {
	if d.MsgID == "" || d.CaseID == 0 {
		return false, fmt.Errorf("defer input: empty message id or case")
	}
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	_, fresh, err = tx.insert(ctx, `INSERT INTO deferred_inputs
		(case_id, msg_id, source, payload, stream, stream_seq, subject, not_before, reason, attempts, created_at)
		SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE msg_id = ?)
		ON CONFLICT (msg_id) DO NOTHING`,
		d.CaseID, d.MsgID, d.Source, payload, d.Stream, int64(d.StreamSeq), d.Subject, ms64(d.NotBefore), d.Reason,
		d.Attempts, ms64(tx.now), d.MsgID)
	if err != nil {
		return false, fmt.Errorf("defer input %q of case %d: %w", d.MsgID, d.CaseID, err)
	}
	return fresh, nil
}

// KeepCallback keeps a callback's message for its case (DeferNew) and, when
// it was neither kept nor applied already, appends its timeline entry e,
// committed at once:
// the record of a callback before its verification, which every refund
// callback costs. On PostgreSQL it is one statement in one round trip
// (BEGIN, two INSERTs and COMMIT would be four, and a connection of the
// writer pool held for all of them), on a pool of its own that does not
// wait for the WAL flush (postgres.go says why that is safe); on SQLite
// one transaction of the group commit. fresh reports that the message was
// not kept before. A message applied already (its inbox row exists) is
// neither kept nor recorded, and the error is ErrInInbox: the statement
// answers the inbox look-up that would otherwise be a read before it.
func (s *Store) KeepCallback(ctx context.Context, d DeferredInput, e TimelineEntry) (fresh bool, err error) {
	if d.MsgID == "" || d.CaseID == 0 || e.CaseID != d.CaseID {
		return false, fmt.Errorf("keep callback: message %q, case %d, timeline entry of case %d", d.MsgID, d.CaseID, e.CaseID)
	}
	if !s.w.pg {
		err = s.Update(ctx, func(tx *Tx) error {
			var err error
			fresh, err = tx.keepCallback(ctx, d, e)
			return err
		})
		if errors.Is(err, ErrInInbox) {
			return false, fmt.Errorf("keep callback %q of case %d: %w", d.MsgID, d.CaseID, err)
		}
		return fresh, err
	}
	var r struct {
		Applied bool `db:"applied"`
		Fresh   bool `db:"fresh"`
	}
	err = s.keepCallbackPG(ctx, &r, `SELECT ?::bigint AS id`, []any{d.CaseID}, ``, d, e)
	switch {
	case err != nil:
		return false, fmt.Errorf("keep callback %q of case %d: %w", d.MsgID, d.CaseID, err)
	case r.Applied:
		return false, fmt.Errorf("keep callback %q of case %d: message %s: %w", d.MsgID, d.CaseID, d.MsgID, ErrInInbox)
	}
	return r.Fresh, nil
}

// KeepRefundCallback is KeepCallback for a callback about refund refundID
// of platform plat, kept for the case that recorded that refund (the one
// that follows it, as CaseByRefundID finds it), which it returns: d's and e's case
// are that case's. On PostgreSQL the look-up is part of the one statement,
// so that recording the callbacks of a known refund, most of them, costs
// one round trip instead of two. No such case is ErrNotFound, and nothing
// is written; a message applied already is ErrInInbox (with the case).
func (s *Store) KeepRefundCallback(ctx context.Context, plat platform.ID, refundID string, d DeferredInput, e TimelineEntry) (c Case, fresh bool, err error) {
	if d.MsgID == "" || refundID == "" {
		return Case{}, false, fmt.Errorf("keep callback: message %q, refund %q", d.MsgID, refundID)
	}
	if !s.w.pg {
		err = s.Update(ctx, func(tx *Tx) error {
			var err error
			if c, err = caseByRefundID(ctx, tx.tx, plat, refundID); err != nil {
				return err
			}
			d.CaseID, e.CaseID = c.ID, c.ID
			fresh, err = tx.keepCallback(ctx, d, e)
			return err
		})
	} else {
		var r struct {
			caseRow
			Applied bool `db:"applied"`
			Fresh   bool `db:"fresh"`
		}
		err = s.keepCallbackPG(ctx, &r, caseByRefundQuery(), []any{string(plat), refundID}, `c.*, `, d, e)
		c, fresh = r.toCase(), r.Fresh
		switch {
		case errors.Is(err, sql.ErrNoRows):
			err = ErrNotFound
		case err == nil && r.Applied:
			err = fmt.Errorf("message %s: %w", d.MsgID, ErrInInbox)
		}
	}
	if err != nil {
		return c, false, fmt.Errorf("keep callback %q of %s refund %s: %w", d.MsgID, plat, refundID, err)
	}
	return c, fresh, nil
}

// keepCallback is KeepCallback's transaction on SQLite.
func (tx *Tx) keepCallback(ctx context.Context, d DeferredInput, e TimelineEntry) (fresh bool, err error) {
	if err := tx.InboxAbsent(ctx, d.MsgID); err != nil {
		return false, err
	}
	if fresh, err = tx.DeferNew(ctx, d); err != nil || !fresh {
		return false, err
	}
	return true, tx.AppendTimeline(ctx, e)
}

// keepCallbackPG runs KeepCallback's one statement on PostgreSQL into r:
// the case is the first row of the query caseQuery (its arguments
// caseArgs, a column id at least; no row keeps nothing, and the answer is
// sql.ErrNoRows), and the answer is selected columns (ending with ", ")
// of it, then applied and fresh. It goes on a pool of its own that does
// not wait for the WAL flush (postgres.go says why that is safe).
func (s *Store) keepCallbackPG(ctx context.Context, r any, caseQuery string, caseArgs []any, selected string, d DeferredInput, e TimelineEntry) (err error) {
	detail, err := jsonText("timeline detail", e.Detail)
	if err != nil {
		return err
	}
	now := s.now()
	at := e.At
	if at.IsZero() {
		at = now
	}
	payload := d.Payload
	if payload == nil {
		payload = []byte{}
	}
	p := s.records
	if p == nil {
		p = s.w
	}
	ctx, bounded := s.bound(ctx)
	defer func() { err = bounded(err) }()
	// Every part of a WITH runs once, read or not: the timeline row is
	// written for a message kept now, and the answer says which it was.
	args := append(slices.Clone(caseArgs), d.MsgID, d.MsgID, d.Source, payload, d.Stream, int64(d.StreamSeq), d.Subject,
		ms64(d.NotBefore), d.Reason, d.Attempts, ms64(now), ms64(at), string(e.Kind), e.Summary, detail)
	return sqlx.GetContext(ctx, p, r, `WITH c AS (`+caseQuery+`),
		applied AS (SELECT 1 FROM inbox WHERE msg_id = ?),
		kept AS (INSERT INTO deferred_inputs
			(case_id, msg_id, source, payload, stream, stream_seq, subject, not_before, reason, attempts, created_at)
			SELECT c.id, ?, ?, ?::bytea, ?, ?, ?, ?, ?, ?, ? FROM c WHERE NOT EXISTS (SELECT 1 FROM applied)
			ON CONFLICT (msg_id) DO NOTHING RETURNING case_id),
		recorded AS (INSERT INTO timeline (case_id, at, kind, summary, detail) SELECT case_id, ?, ?, ?, ? FROM kept RETURNING 1)
		SELECT `+selected+`EXISTS (SELECT 1 FROM applied) AS applied, EXISTS (SELECT 1 FROM recorded) AS fresh FROM c`, args...)
}

// DeleteDeferred removes a waiting input (no-op if there is none). On
// PostgreSQL the statement is queued (pipeline.go).
func (tx *Tx) DeleteDeferred(ctx context.Context, msgID string) error {
	return tx.later(ctx, fmt.Sprintf("delete deferred input %q", msgID), `DELETE FROM deferred_inputs WHERE msg_id = ?`, msgID)
}

// DueDeferredCases returns the cases with a waiting input that can be
// taken up at now, the longest-waiting first: the oldest waiting command,
// when it is due, or any due callback. Commands keep their order among
// themselves, so the commands behind the oldest wait for it, whatever
// their own time (a case whose first command has to wait again must not be
// picked up, and crowd out other cases, on every tick). Callbacks are hints
// taken up in any order: one that waits (a read that failed, backing off)
// holds up neither the commands of its case nor the other callbacks.
func (s *Store) DueDeferredCases(ctx context.Context, now time.Time, limit int) ([]int64, error) {
	var ids []int64
	if err := sqlx.SelectContext(ctx, s.r, &ids, `SELECT d.case_id FROM deferred_inputs d
		WHERE d.not_before <= ? AND (d.source = ? OR d.id = (SELECT MIN(f.id) FROM deferred_inputs f
			WHERE f.case_id = d.case_id AND f.source = ?))
		GROUP BY d.case_id ORDER BY MIN(d.not_before), d.case_id LIMIT ?`,
		ms64(now), SourceCallbacks, SourceCommands, clampLimit(limit)); err != nil {
		return nil, fmt.Errorf("due deferred inputs: %w", err)
	}
	return ids, nil
}

// DeferredInputs returns the inputs waiting for a case, in their order.
func (s *Store) DeferredInputs(ctx context.Context, caseID int64) ([]DeferredInput, error) {
	var rows []deferredRow
	if err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT `+deferredColumns+` FROM deferred_inputs
		WHERE case_id = ? ORDER BY id`, caseID); err != nil {
		return nil, fmt.Errorf("deferred inputs of case %d: %w", caseID, err)
	}
	out := make([]DeferredInput, len(rows))
	for i, r := range rows {
		out[i] = r.toDeferred()
	}
	return out, nil
}

// FirstDeferredCommand returns the oldest command waiting for a case, or
// ErrNotFound: a new command for the case goes behind it, so commands apply
// in the order they came. Callbacks waiting are no reason to queue: they are
// hints, applied in any order, and a callback kept while it is verified
// (refundflow's recordCallback) would otherwise send every command that
// comes meanwhile to the timer.
func (s *Store) FirstDeferredCommand(ctx context.Context, caseID int64) (DeferredInput, error) {
	var r deferredRow
	if err := sqlx.GetContext(ctx, s.r, &r, `SELECT `+deferredColumns+` FROM deferred_inputs
		WHERE case_id = ? AND source = ? ORDER BY id LIMIT 1`, caseID, SourceCommands); err != nil {
		return DeferredInput{}, fmt.Errorf("first deferred command of case %d: %w", caseID, notFound(err))
	}
	return r.toDeferred(), nil
}

// CountDeferred returns how many inputs wait, for metrics.
func (s *Store) CountDeferred(ctx context.Context) (int, error) {
	var n int
	if err := sqlx.GetContext(ctx, s.r, &n, `SELECT COUNT(*) FROM deferred_inputs`); err != nil {
		return 0, fmt.Errorf("count deferred inputs: %w", err)
	}
	return n, nil
}

// DeferredKept reports whether an input is kept under msgID: waiting for
// its case, or a refund callback recorded and not yet verified. The
// sweeps take it up, whatever became of the stream copy it came in.
func (s *Store) DeferredKept(ctx context.Context, msgID string) (bool, error) {
	var n int
	if err := sqlx.GetContext(ctx, s.r, &n, `SELECT COUNT(*) FROM deferred_inputs WHERE msg_id = ?`, msgID); err != nil {
		return false, fmt.Errorf("deferred input %q: %w", msgID, err)
	}
	return n > 0, nil
}

// KeptInput returns the input kept under msgID (ErrNotFound: none): what
// an operator is told of a command the worker keeps for its case.
func (s *Store) KeptInput(ctx context.Context, msgID string) (DeferredInput, error) {
	var r deferredRow
	if err := sqlx.GetContext(ctx, s.r, &r, `SELECT `+deferredColumns+` FROM deferred_inputs WHERE msg_id = ?`, msgID); err != nil {
		return DeferredInput{}, fmt.Errorf("kept input %q: %w", msgID, notFound(err))
	}
	return r.toDeferred(), nil
}

// StartTakeUp counts a take-up of the kept input (its row id) before it
// runs, and moves its time to until: a take-up that ends the worker
// process (a kill, out of memory) counts like a failure, so an input that
// ends the process each time is given up after as many as any other
// failures (casework's takeUp), instead of being taken up again at every
// start for ever; and meanwhile no other take-up (this process's next
// tick, another process) starts it again before until (HoldTakeUp keeps it
// ahead while the take-up runs). It takes the input only as it was read
// (notBefore): false if another take-up took it first, or it changed.
func (s *Store) StartTakeUp(ctx context.Context, id int64, notBefore, until time.Time) (bool, error) {
	return s.moveTakeUp(ctx, "take up", `UPDATE deferred_inputs SET attempts = attempts + 1, not_before = ?
		WHERE id = ? AND not_before = ?`, ms64(until), id, ms64(notBefore))
}

// HoldTakeUp moves a running take-up's time from until (as StartTakeUp
// or the last hold left it) to next; false once the row is not as it left
// it (the take-up deferred it again, or it is gone).
func (s *Store) HoldTakeUp(ctx context.Context, id int64, until, next time.Time) (bool, error) {
	return s.moveTakeUp(ctx, "hold take-up", `UPDATE deferred_inputs SET not_before = ? WHERE id = ? AND not_before = ?`,
		ms64(next), id, ms64(until))
}

func (s *Store) moveTakeUp(ctx context.Context, what, query string, args ...any) (bool, error) {
	var moved bool
	err := s.Update(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		moved = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s of deferred input %d: %w", what, args[1], err)
	}
	return moved, nil
}

// EndTakeUp gives back the count StartTakeUp took, once the take-up
// returned (the process did not end): what it came to counts as it says
// (Defer adds a failure; a wait adds nothing; an applied input has no row
// left). The row is the one taken up (its id, message and when it was
// kept): SQLite gives a row kept after the last one went the same id.
func (s *Store) EndTakeUp(ctx context.Context, id int64, msgID string, keptAt time.Time) error {
	err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `UPDATE deferred_inputs SET attempts = attempts - 1
			WHERE id = ? AND msg_id = ? AND created_at = ? AND attempts > 0`, id, msgID, ms64(keptAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("end take-up of deferred input %d: %w", id, err)
	}
	return nil
}
