package casestore

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/platform"
)

// TestCaseAndIntent: the one read the engine makes before each decision
// returns what GetCase and OpenIntent return apart, on both stores: the case
// without an intent, with the newest open one, after it is finished, and
// ErrNotFound for no case.
func TestCaseAndIntent(t *testing.T) { eachBackend(t, testCaseAndIntent) }

func testCaseAndIntent(t *testing.T, be backend) {
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
		got, it, err := s.CaseAndIntent(ctx, c.ID)
		if err != nil {
			t.Fatalf("%s: CaseAndIntent: %v", when, err)
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
	}
	check("no step yet", nil)
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
	for _, key := range []string{"k:render", "k:submit"} {
		if err := s.Update(ctx, func(tx *Tx) error {
			return tx.FinishStep(ctx, key, StepResult{Status: StepDone, Outcome: `{}`, RequestID: "rq"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	check("intents finished", nil)
	if _, _, err := s.CaseAndIntent(ctx, c.ID+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("CaseAndIntent(no such case) = %v; want ErrNotFound", err)
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
			MessageType: "ORDER_BUYER_VIEW_ORDER_PRICE_MODIFY", Kind: platform.KindPriceModify, Body: []byte(`{}`)}, "price modified", false)
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
