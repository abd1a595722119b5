package casestore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub/internal/excerpt"
)

// CaseMessage is one message of a refund's conversation on the platform
// (Taobao T8), kept once per case and platform message id.
type CaseMessage struct {
	ID         int64
	CaseID     int64
	MessageID  string // the platform's id
	Author     string // buyer, seller or system, as the platform says
	Content    string
	Images     string
	SentAt     time.Time // the platform's time; zero when it gave none
	RecordedAt time.Time
}

type caseMessageRow struct {
	ID         int64  `db:"id"`
	CaseID     int64  `db:"case_id"`
	MessageID  string `db:"message_id"`
	Author     string `db:"author"`
	Content    string `db:"content"`
	Images     string `db:"images"`
	SentAt     int64  `db:"sent_at"`
	RecordedAt int64  `db:"recorded_at"`
}

// AuthorSeller is the author of the seller's messages.
const AuthorSeller = "seller"

// RecordCaseMessages keeps the messages of the case's refund the store does
// not have yet, puts each new one on the timeline, adds the seller's new
// ones to the case's unread count, and records checkedAt as the time the
// list was read. It returns the new messages. The case's version is not
// bumped: none of these columns is one a decision writes.
func (tx *Tx) RecordCaseMessages(ctx context.Context, caseID int64, msgs []CaseMessage, checkedAt time.Time) ([]CaseMessage, error) {
	var fresh []CaseMessage
	unread := 0
	for _, m := range msgs {
		if m.MessageID == "" {
			continue
		}
		res, err := tx.tx.ExecContext(ctx, `INSERT INTO case_messages (case_id, message_id, author, content, images, sent_at, recorded_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, message_id) DO NOTHING`,
			caseID, m.MessageID, m.Author, m.Content, m.Images, msOrZero(m.SentAt), ms64(tx.now))
		if err != nil {
			return nil, fmt.Errorf("case %d message %s: %w", caseID, m.MessageID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return nil, fmt.Errorf("case %d message %s: %w", caseID, m.MessageID, err)
			}
			continue
		}
		m.CaseID, m.RecordedAt = caseID, tx.now
		fresh = append(fresh, m)
		if m.Author == AuthorSeller {
			unread++
		}
		detail, _ := json.Marshal(map[string]any{"messageId": m.MessageID, "author": m.Author, "images": m.Images})
		at := m.SentAt
		if at.IsZero() {
			at = tx.now
		}
		if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: caseID, At: at, Kind: KindNote,
			Summary: fmt.Sprintf("%s message: %s", m.Author, excerpt.Of(m.Content, 500)), Detail: detail}); err != nil {
			return nil, err
		}
	}
	if _, err := tx.tx.ExecContext(ctx, `UPDATE cases SET messages_checked_at = ?,
		unread_seller_messages = unread_seller_messages + ? WHERE id = ?`, ms64(checkedAt), unread, caseID); err != nil {
		return nil, fmt.Errorf("case %d messages checked: %w", caseID, err)
	}
	return fresh, nil
}

// CaseMessages returns the case's conversation, oldest first.
func (s *Store) CaseMessages(ctx context.Context, caseID int64) ([]CaseMessage, error) {
	var rows []caseMessageRow
	if err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT id, case_id, message_id, author, content, images, sent_at, recorded_at
		FROM case_messages WHERE case_id = ? ORDER BY sent_at, id`, caseID); err != nil {
		return nil, fmt.Errorf("case %d messages: %w", caseID, err)
	}
	out := make([]CaseMessage, len(rows))
	for i, r := range rows {
		out[i] = CaseMessage{ID: r.ID, CaseID: r.CaseID, MessageID: r.MessageID, Author: r.Author, Content: r.Content,
			Images: r.Images, RecordedAt: time.UnixMilli(r.RecordedAt).UTC()}
		if r.SentAt > 0 {
			out[i].SentAt = time.UnixMilli(r.SentAt).UTC()
		}
	}
	return out, nil
}

// MarkMessagesRead clears the case's unread seller messages, returning how
// many there were.
func (tx *Tx) MarkMessagesRead(ctx context.Context, caseID int64) (int, error) {
	var n int
	if err := sqlx.GetContext(ctx, tx.tx, &n, `SELECT unread_seller_messages FROM cases WHERE id = ?`+tx.forUpdate(), caseID); err != nil {
		return 0, fmt.Errorf("case %d: %w", caseID, notFound(err))
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.tx.ExecContext(ctx, `UPDATE cases SET unread_seller_messages = 0 WHERE id = ?`, caseID); err != nil {
		return 0, fmt.Errorf("case %d: %w", caseID, err)
	}
	return n, nil
}

// PreviousCase returns the newest case of the same order (and, on Taobao,
// sub-order) opened before case c, or ErrNotFound. For a case CreateCase
// made in this transaction on PostgreSQL, that none exists is known
// without a round trip (Tx.previousOf): a new request's usual answer.
func (tx *Tx) PreviousCase(ctx context.Context, c Case) (Case, error) {
	if prev, ok := tx.previousOf[c.ID]; ok && prev == 0 {
		return Case{}, fmt.Errorf("case before %d: %w", c.ID, ErrNotFound)
	}
	r, err := getOne[caseRow](ctx, tx, `SELECT `+caseColumns+` FROM cases
		WHERE platform = ? AND order_id = ? AND sub_order_id = ? AND id < ? ORDER BY id DESC LIMIT 1`,
		string(c.Platform), c.OrderID, c.SubOrderID, c.ID)
	if err != nil {
		return Case{}, fmt.Errorf("case before %d: %w", c.ID, notFound(err))
	}
	return r.toCase(), nil
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
