package casestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// TestCaseToDecide: the one read the engine makes before each decision
// returns what GetCase, OpenIntent and OrderEventsAfter return apart, on
// both stores: the case without an intent, with the newest open one (of
// two), after they are finished, each with and without order events the
// case has not seen; ErrNotFound for no case.
func TestCaseToDecide(t *testing.T) { eachBackend(t, testCaseToDecide) }

func testCaseToDecide(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	var c Case
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		c, err = tx.CreateCase(ctx, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested",
			Request: []byte(`{"reason":"r"}`), LeaseOwner: "w1", LeaseTTL: time.Minute, OpenedBy: "cmd-1"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, wantIntent *StepAttempt) {
		t.Helper()
		got, it, evs, err := s.CaseToDecide(ctx, c.ID)
		if err != nil {
			t.Fatalf("%s: CaseToDecide: %v", when, err)
		}
		want, err := s.GetCase(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: case\n got %+v\nwant %+v", when, got, want)
		}
		if !reflect.DeepEqual(it, wantIntent) {
			t.Errorf("%s: intent %+v; want %+v", when, it, wantIntent)
		}
		var wantEvs []OrderEvent
		if want.OrderEventsLatest > want.OrderEventsSeen {
			if wantEvs, err = s.OrderEventsAfter(ctx, want.Platform, want.OrderID, want.OrderEventsSeen); err != nil {
				t.Fatal(err)
			}
		}
		if len(evs) != len(wantEvs) || (len(evs) > 0 && !reflect.DeepEqual(evs, wantEvs)) {
			t.Errorf("%s: order events\n got %+v\nwant %+v", when, evs, wantEvs)
		}
	}
	// event records an order event of the case's order and checks again;
	// seen then marks every event seen and checks again.
	events := 0
	event := func(when string, wantIntent *StepAttempt) {
		t.Helper()
		events++
		if err := s.Update(ctx, func(tx *Tx) error {
			_, _, _, err := tx.RecordOrderEvent(ctx, OrderEvent{Platform: "taobao", OrderID: "o1", MsgID: fmt.Sprintf("ev-%d", events),
				MessageType: "ORDER_STATUS", Kind: "order_status", OrderStatus: "paid", Body: json.RawMessage(`{"n":1}`)}, OrderEventEntry{Summary: "paid"}, false)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		check(when+", an unseen order event", wantIntent)
		if got, _, evs, _ := s.CaseToDecide(ctx, c.ID); len(evs) == 0 || evs[len(evs)-1].ID != got.OrderEventsLatest {
			t.Errorf("%s: %d unseen events read, the last not the case's latest (%d)", when, len(evs), got.OrderEventsLatest)
		}
	}
	seen := func(when string, wantIntent *StepAttempt) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error {
			cur, err := tx.GetCase(ctx, c.ID)
			if err != nil {
				return err
			}
			next := cur
			next.OrderEventsSeen = cur.OrderEventsLatest
			_, err = tx.UpdateCaseFrom(ctx, cur, next)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		check(when+", every event seen", wantIntent)
		if _, _, evs, _ := s.CaseToDecide(ctx, c.ID); len(evs) != 0 {
			t.Errorf("%s, every event seen: %d events read; want none", when, len(evs))
		}
	}
	check("no step yet", nil)
	event("no step yet", nil)
	event("no step yet, two", nil)
	seen("no step yet", nil)
	for _, key := range []string{"k:render", "k:submit"} { // the newest open intent is the one
		if err := s.Update(ctx, func(tx *Tx) error {
			_, _, err := tx.BeginStep(ctx, c.ID, "submit", key, `{"fee":100}`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	open, err := s.OpenIntent(ctx, c.ID)
	if err != nil || open.IdempotencyKey != "k:submit" {
		t.Fatalf("OpenIntent = %+v, %v; want k:submit", open, err)
	}
	check("two open intents", &open)
	event("two open intents", &open)
	event("two open intents, two", &open)
	seen("two open intents", &open)
	for _, key := range []string{"k:render", "k:submit"} {
		if err := s.Update(ctx, func(tx *Tx) error {
			return tx.FinishStep(ctx, key, StepResult{Status: StepDone, Outcome: `{}`, RequestID: "rq"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	check("intents finished", nil)
	event("intents finished", nil)
	if _, _, _, err := s.CaseToDecide(ctx, c.ID+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("CaseToDecide(no such case) = %v; want ErrNotFound", err)
	}
}

// TestCreateCaseReturnsTheStoredRow: the engine decides a new case's first
// input on the case CreateCase returned, without reading it back; it must be
// the row as stored.
func TestCreateCaseReturnsTheStoredRow(t *testing.T) {
	eachBackend(t, testCreateCaseReturnsTheStoredRow)
}

func testCreateCaseReturnsTheStoredRow(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	if err := s.Update(ctx, func(tx *Tx) error { // an event of the order before the case: order_events_latest
		_, _, _, err := tx.RecordOrderEvent(ctx, OrderEvent{Platform: "1688", OrderID: "o9", MsgID: "m1",
			MessageType: "ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY", Kind: platform.KindPriceModify, Body: []byte(`{}`)}, OrderEventEntry{Summary: "price modified"}, false)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []NewCase{
		{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested", Request: []byte(`{"reason":"r"}`),
			NextWakeAt: time.Now().Add(time.Hour), LeaseOwner: "w1", LeaseTTL: time.Minute, OpenedBy: "cmd-1"},
		{Platform: "1688", OrderID: "o9", State: "requested", OpenedBy: "cmd-2"},
	} {
		var created Case
		if err := s.Update(ctx, func(tx *Tx) error {
			var err error
			created, err = tx.CreateCase(ctx, n)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		stored, err := s.GetCase(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(created, stored) {
			t.Errorf("%s case: CreateCase returned\n %+v\nstored\n %+v", n.Platform, created, stored)
		}
	}
}

// TestRequestCases: the one read a new request makes returns the open case
// of its platform key and the case the command opened, each only when it
// exists, on both stores and for both platforms' keys.
func TestRequestCases(t *testing.T) { eachBackend(t, testRequestCases) }

func testRequestCases(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	create := func(n NewCase) Case {
		t.Helper()
		var c Case
		if err := s.Update(ctx, func(tx *Tx) error {
			var err error
			c, err = tx.CreateCase(ctx, n)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ids := func(open, by *Case) (int64, int64) {
		var o, b int64
		if open != nil {
			o = open.ID
		}
		if by != nil {
			b = by.ID
		}
		return o, b
	}
	// The command cmd-1 opened a Taobao case that finished; cmd-2 opened
	// the open one of the same sub-order; a 1688 order has one open case.
	done := create(NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested", OpenedBy: "cmd-1"})
	if err := s.Update(ctx, func(tx *Tx) error {
		next := done
		next.State = "succeeded"
		_, err := tx.UpdateCase(ctx, next)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	open := create(NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested", OpenedBy: "cmd-2"})
	ali := create(NewCase{Platform: "1688", OrderID: "o9", State: "requested", OpenedBy: "cmd-3"})
	for _, tc := range []struct {
		plat             platform.ID
		order, sub, cmd  string
		wantOpen, wantBy int64
	}{
		{"taobao", "o1", "s1", "cmd-1", open.ID, done.ID},
		{"taobao", "o1", "s1", "cmd-2", open.ID, open.ID},
		{"taobao", "o1", "s1", "cmd-new", open.ID, 0},
		{"taobao", "o1", "s2", "cmd-1", 0, done.ID},
		{"taobao", "o1", "s2", "cmd-new", 0, 0},
		{"1688", "o9", "", "cmd-3", ali.ID, ali.ID},
		{"1688", "o8", "", "", 0, 0}, // an empty command id opened nothing
	} {
		o, by, err := s.RequestCases(ctx, tc.plat, tc.order, tc.sub, tc.cmd)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if gotO, gotB := ids(o, by); gotO != tc.wantOpen || gotB != tc.wantBy {
			t.Errorf("RequestCases(%s %s/%s, %s) = open %d, opened by the command %d; want %d, %d",
				tc.plat, tc.order, tc.sub, tc.cmd, gotO, gotB, tc.wantOpen, tc.wantBy)
		}
		if o != nil {
			want, _ := s.GetCase(ctx, o.ID)
			if !reflect.DeepEqual(*o, want) {
				t.Errorf("open case\n got %+v\nwant %+v", *o, want)
			}
		}
	}
}
