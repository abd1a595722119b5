package refundflow

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/refundhub/refundhub/internal/casestore"
)

// caseView projects a stored case and its open intent (nil when the case
// has none), with the order events the case has not seen yet: as loaded
// with them (Store.CaseToDecide), or read here for a case loaded without.
func caseView(ctx context.Context, s *casestore.Store, l loaded) (CaseView, error) {
	c, it := l.c, l.it
	cv, err := caseViewOf(c)
	if err != nil {
		return cv, err
	}
	if it != nil {
		cv.Intent = &Intent{Step: StepName(it.Step), Key: it.IdempotencyKey, Since: it.StartedAt, LastAttempt: it.LastAttemptAt,
			Sends: it.Begins, LastError: stepErrorText(it.ErrorCode, it.ErrorMessage), Refusals: it.Refusals}
	}
	evs := l.events
	if !l.eventsRead && c.OrderEventsLatest > c.OrderEventsSeen {
		if evs, err = s.OrderEventsAfter(ctx, c.Platform, c.OrderID, c.OrderEventsSeen); err != nil {
			return cv, err
		}
	}
	for _, e := range evs {
		cv.OrderEvents = append(cv.OrderEvents, OrderEvent{ID: e.ID, Type: e.MessageType, Kind: e.Kind, Status: e.OrderStatus,
			Ended: e.Ended, CloseReason: e.CloseReason, TotalAmount: e.TotalAmount})
	}
	return cv, nil
}

// caseViewOf projects a case row, without its open intent (Intent nil).
func caseViewOf(c casestore.Case) (CaseView, error) {
	cv := CaseView{ID: c.ID, Platform: Platform(c.Platform), State: State(c.State), Parked: State(c.ParkedState),
		Version: c.Version, RefundID: c.RefundID, AttentionCode: c.AttentionCode,
		AttentionMessage: c.AttentionMessage, WakeAt: c.NextWakeAt, LeasesAbandoned: c.LeasesAbandoned}
	if c.HeldCode != "" {
		cv.Held = &Attention{Code: c.HeldCode, Message: c.HeldMessage}
	}
	if err := decodeDoc(c.Request, &cv.Request); err != nil {
		return cv, fmt.Errorf("case %d request: %w", c.ID, err)
	}
	if err := decodeDoc(c.Plan, &cv.Plan); err != nil {
		return cv, fmt.Errorf("case %d plan: %w", c.ID, err)
	}
	var sh Shipment
	if err := decodeDoc(c.Shipment, &sh); err != nil {
		return cv, fmt.Errorf("case %d shipment: %w", c.ID, err)
	}
	if sh != (Shipment{}) {
		cv.Shipment = &sh
	}
	return cv, nil
}

func decodeDoc(doc json.RawMessage, v any) error {
	if len(doc) == 0 || string(doc) == "{}" {
		return nil
	}
	return json.Unmarshal(doc, v)
}

// stepErrorText is a step's recorded error as operators read it: its code,
// then the message (which names the platform's own code and words).
func stepErrorText(code, message string) string {
	switch {
	case code == "":
		return message
	case message == "":
		return code
	}
	return code + ": " + message
}
