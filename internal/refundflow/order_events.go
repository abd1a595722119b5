package refundflow

import (
	"context"
	"encoding/json"
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
		return e.ignore(ctx, msg)
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
	var cases []casestore.Case
	err := e.store.Update(context.WithoutCancel(ctx), func(tx *casestore.Tx) error {
		if msg != nil && msg.ID != "" {
			if err := tx.InboxAdd(ctx, inboxEntry(msg)); err != nil {
				return err
			}
		}
		// An ended order or a new price must stop a decision made
		// without it (a submission with the old bounds); other news waits
		// for the case's next decision.
		entry := casestore.OrderEventEntry{Summary: summary, Detail: func(id int64) json.RawMessage {
			d := OrderEventDetail{OrderEvent: id, Type: oe.MessageType, OrderStatus: oe.OrderStatus}
			if msg != nil {
				// A copy: msg's own lag is set once the event commits
				// (below), so that a rolled-back attempt records none.
				m := *msg
				d.CallbackDetail = m.detail(tx.Now())
			}
			b, _ := json.Marshal(d)
			return b
		}}
		_, told, recorded, err := tx.RecordOrderEvent(ctx, oe, entry, interrupt)
		if err == nil && !recorded {
			// Kept before under the message's id (oe.MsgID): a copy of
			// a message applied already, or being applied beside this one.
			err = errOrderEventSeen
		}
		cases = told
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
	ids := make([]int64, 0, len(cases))
	for _, c := range cases {
		// Quieter news is read at each case's next decision, except by a
		// case it may take out of its stop (a payment after a submission
		// the platform refused whole): that one is woken now.
		if interrupt || undoable(c) {
			ids = append(ids, c.ID)
		}
	}
	for _, id := range ids {
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

// undoable reports whether c (as it was when the order event came) is
// stopped before submission for a reason a change of its order may undo
// (orderCanUndo). A case it misses (changed since) reads the event at its
// next decision anyway.
func undoable(c casestore.Case) bool {
	cv, err := caseViewOf(c)
	return err == nil && cv.State == StateNeedsAttention && cv.beforeSubmit() && orderCanUndo(cv)
}
