package refundflow

import (
	"context"
	"errors"
	"fmt"

	"github.com/refundhub/refundhub/internal/callback"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/platform"
)

// errOrderEventSeen rolls back an order event whose message was applied
// before (a redelivery).
var errOrderEventSeen = errors.New("order event already applied")

// handleOrderEvent keeps an order message (status change or price
// correction) as a fact about its order, in one transaction with its inbox
// record: every open case of the order gets it on its timeline and reads it
// before its next step, and a case opened later reads it. An ended order or
// a new price also wakes each case (a stored wake, in the same transaction)
// and takes it up at once; a case this pass cannot take up (busy, an error)
// is woken by the worker's timer, so nothing depends on this pass.
func (e *Engine) handleOrderEvent(ctx context.Context, ev callback.Event, msg *Message) (Handled, error) {
	p := ev.Platform.ID()
	ob := ev.Order
	orderID := ob.OrderID.String()
	if orderID == "" || !p.Valid() {
		return Handled{Ignored: true}, e.recordInbox(ctx, msg)
	}
	oe := casestore.OrderEvent{Platform: p, OrderID: orderID, MsgID: ev.ID, MessageType: ev.Type, Kind: ev.Kind,
		OrderStatus: ob.OrderStatus, Ended: e.client.Profile().OrderEnded(p == platform.Taobao, ob.OrderStatus),
		TotalAmount: int64(ob.TotalAmount), ProductAmount: int64(ob.ProductAmount), ShippingFee: int64(ob.ShippingFee),
		Body: []byte(ev.Body)}
	if ob.CloseReason != nil {
		oe.CloseReason = *ob.CloseReason
	}
	if msg != nil && msg.ID != "" {
		oe.MsgID = msg.ID
	}
	summary := "order event " + describeOrderEvent(OrderEvent{Type: ev.Type, Kind: ev.Kind, Status: oe.OrderStatus,
		CloseReason: oe.CloseReason, TotalAmount: oe.TotalAmount})
	interrupt := oe.Ended || oe.Kind == platform.KindPriceModify
	var cases []int64
	err := e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		if msg != nil && msg.ID != "" {
			fresh, err := tx.InboxRecord(ctx, inboxEntry(msg))
			if err != nil {
				return err
			}
			if !fresh {
				return errOrderEventSeen
			}
		}
		var err error
		// An ended order or a new price must stop a decision made
		// without it (a submission with the old bounds); other news waits
		// for the case's next decision.
		_, cases, _, err = tx.RecordOrderEvent(ctx, oe, summary, interrupt)
		return err
	})
	switch {
	case errors.Is(err, errOrderEventSeen):
		return Handled{Duplicate: true}, nil
	case err != nil:
		return Handled{}, fmt.Errorf("order event %s on %s %s: %w", ev.Type, p, orderID, err)
	}
	msg.applied(e.now())
	h := Handled{Ignored: len(cases) == 0}
	if !interrupt {
		// Quieter news is read at each case's next decision, except by a
		// case it may take out of its stop (a payment after a submission
		// the platform refused whole): that one is woken now.
		cases = e.undoable(ctx, cases)
	}
	for _, id := range cases {
		ch, err := e.Wake(ctx, id, InputTimer)
		if err != nil {
			e.log.InfoContext(ctx, "order event: case left to its timer", "case", id, "order", orderID, "err", err)
			continue
		}
		h.CaseID, h.State, h.Outcome, h.Code = ch.CaseID, ch.State, ch.Outcome, ch.Code
		h.Steps += ch.Steps
	}
	return h, nil
}

// undoable returns the cases among ids stopped before submission for a
// reason a change of their order may undo (orderCanUndo).
func (e *Engine) undoable(ctx context.Context, ids []int64) []int64 {
	var out []int64
	for _, id := range ids {
		c, err := e.store.GetCase(ctx, id)
		if err != nil {
			continue // its timer or next input reads the event anyway
		}
		cv, err := caseViewOf(c)
		if err == nil && cv.State == StateNeedsAttention && cv.beforeSubmit() && orderCanUndo(cv) {
			out = append(out, id)
		}
	}
	return out
}
