package casestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

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

// ErrInInbox is the error of a transaction whose InboxAbsent check found
// the message applied already.
var ErrInInbox = errors.New("casestore: message applied already (inbox)")

// InboxAbsent checks, inside the transaction that would apply it, that the
// message is not applied already; if it is, the transaction fails with
// ErrInInbox. On PostgreSQL the check is queued with the transaction's
// writes (pipeline.go): its answer comes out of a later call or Update,
// and COMMIT waits for it.
func (tx *Tx) InboxAbsent(ctx context.Context, msgID string) error {
	if tx.tx.pipe == nil { // SQLite: a read now (Exec's row count is not a SELECT's there)
		seen, err := inboxSeen(ctx, tx.tx, msgID)
		if err == nil && seen {
			err = fmt.Errorf("message %s: %w", msgID, ErrInInbox)
		}
		return err
	}
	return tx.laterChecked(ctx, `SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM inbox WHERE msg_id = ?)`, []any{msgID},
		func(n int64, err error) error {
			switch {
			case err != nil:
				return fmt.Errorf("inbox %q: %w", msgID, err)
			case n == 0:
				return errRecheck
			}
			return nil
		},
		func(context.Context, sqlx.QueryerContext) error {
			return fmt.Errorf("message %s: %w", msgID, ErrInInbox)
		})
}

const inboxCount = `SELECT COUNT(*) FROM inbox WHERE msg_id = ?`

// InboxSeen reports whether the message was already applied (a cheap check
// before opening a write transaction; re-check inside it).
func (s *Store) InboxSeen(ctx context.Context, msgID string) (bool, error) {
	return inboxSeen(ctx, s.r, msgID)
}

func inboxSeen(ctx context.Context, q sqlx.QueryerContext, msgID string) (bool, error) {
	var n int
	if err := sqlx.GetContext(ctx, q, &n, inboxCount, msgID); err != nil {
		return false, fmt.Errorf("inbox %q: %w", msgID, err)
	}
	return n > 0, nil
}

// InboxRecord marks a message applied. It returns false if it already was
// (the caller should then roll back its effect: it is a duplicate).
func (tx *Tx) InboxRecord(ctx context.Context, e InboxEntry) (bool, error) {
	query, args, err := inboxRow(e, tx.now, false)
	if err != nil {
		return false, err
	}
	res, err := tx.tx.ExecContext(ctx, query, args...)
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

// InboxRecord is Tx.InboxRecord committed on its own. On PostgreSQL it is
// one statement (with the kept copy's DELETE, for a Deferred message),
// committed by itself: one round trip where a transaction takes two or
// three.
func (s *Store) InboxRecord(ctx context.Context, e InboxEntry) (fresh bool, err error) {
	if !s.w.pg {
		err = s.Update(ctx, func(tx *Tx) error {
			fresh, err = tx.InboxRecord(ctx, e)
			return err
		})
		return fresh, err
	}
	query, args, err := inboxRow(e, s.now(), e.Deferred)
	if err != nil {
		return false, err
	}
	res, err := s.w.ExecContext(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("inbox record %q: %w", e.MsgID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("inbox record %q: %w", e.MsgID, err)
	}
	return n == 1, nil
}

// InboxAdd is InboxRecord for a caller that does not ask whether the
// message was new (a duplicate is refused by an earlier write or check:
// KeepCallback, InboxAbsent, an order event's own row): on PostgreSQL its
// statements are queued (pipeline.go).
func (tx *Tx) InboxAdd(ctx context.Context, e InboxEntry) error {
	query, args, err := inboxRow(e, tx.now, false)
	if err != nil {
		return err
	}
	if err := tx.later(ctx, fmt.Sprintf("inbox record %q", e.MsgID), query, args...); err != nil || !e.Deferred {
		return err
	}
	return tx.DeleteDeferred(ctx, e.MsgID)
}

const inboxInsert = `INSERT INTO inbox (msg_id, stream, stream_seq, subject, received_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (msg_id) DO NOTHING`

// inboxRow is the INSERT of e's inbox row and its arguments, received at
// now unless e says when. With dropKept (PostgreSQL's WITH, every part of
// which runs whatever the INSERT finds) the message's kept copy is deleted
// in the same statement.
func inboxRow(e InboxEntry, now time.Time, dropKept bool) (query string, args []any, err error) {
	if e.MsgID == "" {
		return "", nil, fmt.Errorf("inbox record: empty message id")
	}
	at := e.ReceivedAt
	if at.IsZero() {
		at = now
	}
	query, args = inboxInsert, []any{e.MsgID, e.Stream, int64(e.StreamSeq), e.Subject, ms64(at)}
	if dropKept {
		query, args = `WITH dropped AS (DELETE FROM deferred_inputs WHERE msg_id = ?) `+query, append([]any{e.MsgID}, args...)
	}
	return query, args, nil
}

// InboxClaim is InboxAbsent and InboxAdd in one statement, for the
// transaction that both checks a message and applies it (a callback's
// last decision): it writes the message's inbox row, and a message applied
// already (its row there) fails the transaction with ErrInInbox, as
// InboxAbsent would. One that another transaction is applying meanwhile
// waits for it, and is then refused or written. A kept copy of the message
// (e.Deferred) goes in the same statement on PostgreSQL: one statement
// instead of three. On PostgreSQL it is queued (pipeline.go), and COMMIT
// waits for its answer.
func (tx *Tx) InboxClaim(ctx context.Context, e InboxEntry) error {
	query, args, err := inboxRow(e, tx.now, e.Deferred && tx.tx.pg)
	if err != nil {
		return err
	}
	err = tx.laterChecked(ctx, query, args,
		func(n int64, err error) error {
			switch {
			case err != nil:
				return fmt.Errorf("inbox claim %q: %w", e.MsgID, err)
			case n == 0:
				return errRecheck
			}
			return nil
		},
		func(context.Context, sqlx.QueryerContext) error {
			return fmt.Errorf("message %s: %w", e.MsgID, ErrInInbox)
		})
	if err != nil || !e.Deferred || tx.tx.pg {
		return err
	}
	return tx.DeleteDeferred(ctx, e.MsgID)
}

// PruneInbox deletes inbox rows received before the given time and returns
// how many it deleted. Keep them longer than any redelivery can arrive (days).
// Command outcomes recorded before then go too (not counted): a verdict is
// read within seconds of its command, and for days at most.
func (s *Store) PruneInbox(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	// Not bounded by SetUpdateTimeout: after a backlog one DELETE may take
	// longer, and cut, it would never catch up.
	err := s.Update(unbounded(ctx), func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `DELETE FROM inbox WHERE received_at < ?`, ms64(before))
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.tx.ExecContext(ctx, `DELETE FROM command_outcomes WHERE recorded_at < ?`, ms64(before))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune inbox: %w", err)
	}
	return n, nil
}
