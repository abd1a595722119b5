package casestore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub/internal/platform"
)

// OrderEvent is an order message (status change or price correction) kept
// as a fact about its order: cases of the order decide on the ones after
// their OrderEventsSeen, and a case opened later reads them all.
type OrderEvent struct {
	ID            int64
	Platform      platform.ID
	OrderID       string
	MsgID         string // the message's inbox key: an event is kept once
	MessageType   string
	Kind          platform.Kind
	OrderStatus   string
	Ended         bool // the profile says OrderStatus ends the order
	CloseReason   string
	TotalAmount   int64 // fen
	ProductAmount int64 // fen
	ShippingFee   int64 // fen
	Body          json.RawMessage
	ReceivedAt    time.Time // zero: the transaction's time
}

type orderEventRow struct {
	ID            int64  `db:"id"`
	Platform      string `db:"platform"`
	OrderID       string `db:"order_id"`
	MsgID         string `db:"msg_id"`
	MessageType   string `db:"message_type"`
	Kind          string `db:"kind"`
	OrderStatus   string `db:"order_status"`
	Ended         int64  `db:"ended"` // 0 or 1 (INTEGER on SQLite, BIGINT on PostgreSQL)
	CloseReason   string `db:"close_reason"`
	TotalAmount   int64  `db:"total_amount"`
	ProductAmount int64  `db:"product_amount"`
	ShippingFee   int64  `db:"shipping_fee"`
	Body          string `db:"body"`
	ReceivedAt    int64  `db:"received_at"`
}

func (r orderEventRow) event() OrderEvent {
	return OrderEvent{ID: r.ID, Platform: platform.ID(r.Platform), OrderID: r.OrderID, MsgID: r.MsgID,
		MessageType: r.MessageType, Kind: platform.Kind(r.Kind), OrderStatus: r.OrderStatus, Ended: r.Ended != 0,
		CloseReason: r.CloseReason, TotalAmount: r.TotalAmount, ProductAmount: r.ProductAmount,
		ShippingFee: r.ShippingFee, Body: json.RawMessage(r.Body), ReceivedAt: time.UnixMilli(r.ReceivedAt).UTC()}
}

const orderEventColumns = `id, platform, order_id, msg_id, message_type, kind, order_status, ended, close_reason,
	total_amount, product_amount, shipping_fee, body, received_at`

// OrderEventEntry is the timeline entry RecordOrderEvent gives each open
// case of the order.
type OrderEventEntry struct {
	// Summary is the entry's one line (the case page's timeline).
	Summary string
	// Detail is the entry's detail, given the event's id (known once the
	// event is kept); nil: none.
	Detail func(eventID int64) json.RawMessage
}

// RecordOrderEvent keeps an order event and tells every open case of its
// order, in the caller's transaction: each gets a timeline entry (entry)
// and reads the event at its next decision. With interrupt, each case also
// wakes now and its version is bumped, so that a decision made before the
// event and not yet committed is made again with it (at the cost of
// repeating a read step that ran meanwhile). It returns the event's id and
// the cases told, as they were before the event (read under the order's
// lock: the caller need not read them again); recorded is false when the
// event was kept before (its msg_id), and then nothing is written.
func (tx *Tx) RecordOrderEvent(ctx context.Context, ev OrderEvent, entry OrderEventEntry, interrupt bool) (id int64, cases []Case, recorded bool, err error) {
	if !ev.Platform.Valid() || ev.OrderID == "" || ev.MsgID == "" {
		return 0, nil, false, fmt.Errorf("order event: platform %q, order %q, message %q: all required", ev.Platform, ev.OrderID, ev.MsgID)
	}
	body, err := jsonText("order event body", ev.Body)
	if err != nil {
		return 0, nil, false, err
	}
	at := ev.ReceivedAt
	if at.IsZero() {
		at = tx.now
	}
	if err := tx.lockOrder(ctx, string(ev.Platform), ev.OrderID); err != nil {
		return 0, nil, false, err
	}
	ended := 0
	if ev.Ended {
		ended = 1
	}
	insert := `INSERT INTO order_events (platform, order_id, msg_id, message_type, kind,
		order_status, ended, close_reason, total_amount, product_amount, shipping_fee, body, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (msg_id) DO NOTHING`
	vals := []any{string(ev.Platform), ev.OrderID, ev.MsgID, ev.MessageType, string(ev.Kind), ev.OrderStatus, ended,
		ev.CloseReason, ev.TotalAmount, ev.ProductAmount, ev.ShippingFee, body, ms64(at)}
	var inserted bool
	if tx.tx.pg {
		// The event's id comes back with the open cases' read, in the
		// same round trip (the read is harmless when the event was kept
		// before, and then unused).
		err = laterOne(ctx, tx, &id, &inserted, insert+` RETURNING id`, vals...)
	} else {
		id, inserted, err = tx.insert(ctx, insert, vals...)
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("order event %s: %w", ev.MsgID, err)
	}
	if !tx.tx.pg && !inserted {
		return 0, nil, false, nil
	}
	rows, err := getAll[caseRow](ctx, tx, `SELECT `+caseColumns+` FROM cases
		WHERE platform = ? AND order_id = ? AND `+terminalFilter()+` ORDER BY id`, string(ev.Platform), ev.OrderID)
	if err != nil {
		return 0, nil, false, fmt.Errorf("order event %s, open cases of order %s: %w", ev.MsgID, ev.OrderID, err)
	}
	if !inserted {
		return 0, nil, false, nil
	}
	var detail json.RawMessage
	for i, r := range rows {
		if i == 0 && entry.Detail != nil { // only for an entry to write
			detail = entry.Detail(id)
		}
		cases = append(cases, r.toCase())
		c := r.ID
		// Without interrupt neither the version nor the wake changes:
		// order_events_latest is no column an update writes, and the case
		// reads the event at its next decision, before any step.
		q := `UPDATE cases SET order_events_latest = ? WHERE id = ?`
		args := []any{id, c}
		if interrupt {
			q = `UPDATE cases SET next_wake_at = ?, order_events_latest = ?, version = version + 1, updated_at = ? WHERE id = ?`
			args = []any{ms64(at), id, ms64(tx.now), c}
		}
		if err := tx.later(ctx, fmt.Sprintf("wake case %d", c), q, args...); err != nil {
			return 0, nil, false, err
		}
		if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c, At: at, Kind: KindCallback, Summary: entry.Summary, Detail: detail}); err != nil {
			return 0, nil, false, err
		}
	}
	return id, cases, true, nil
}

// OrderEventsAfter returns the events of an order kept after event id
// after, oldest first.
func (s *Store) OrderEventsAfter(ctx context.Context, p platform.ID, orderID string, after int64) ([]OrderEvent, error) {
	var rows []orderEventRow
	if err := sqlx.SelectContext(ctx, s.r, &rows, `SELECT `+orderEventColumns+` FROM order_events
		WHERE platform = ? AND order_id = ? AND id > ? ORDER BY id`, string(p), orderID, after); err != nil {
		return nil, fmt.Errorf("order events of %s %s: %w", p, orderID, err)
	}
	out := make([]OrderEvent, len(rows))
	for i, r := range rows {
		out[i] = r.event()
	}
	return out, nil
}
