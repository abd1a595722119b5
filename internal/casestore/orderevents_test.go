package casestore

import (
	"context"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/platform"
)

// TestOrderEventKeptOnceAndToldToOpenCases: an order event is kept once per
// message, whether or not a case is open; each open case of the order gets
// a timeline entry and a wake, with its version bumped; finished cases and
// other orders are left alone; later cases read every event of the order.
func TestOrderEventKeptOnceAndToldToOpenCases(t *testing.T) {
	eachBackend(t, testOrderEventKeptOnceAndToldToOpenCases)
}

func testOrderEventKeptOnceAndToldToOpenCases(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	a := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "submitting"})
	b := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s2", State: "waiting_seller"})
	done := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s3", State: "requested"})
	other := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o2", SubOrderID: "s4", State: "requested"})
	if err := s.Update(ctx, func(tx *Tx) error {
		done.State = "cancelled"
		_, err := tx.UpdateCase(ctx, done)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done, _ = s.GetCase(ctx, done.ID)
	ev := OrderEvent{Platform: platform.Taobao, OrderID: "o1", MsgID: "m1", MessageType: "ORDER_CANCEL", Kind: platform.KindOrderStatus,
		OrderStatus: "CANCEL", Ended: true, CloseReason: "buyer_cancel", TotalAmount: 10000, Body: []byte(`{"orderId":"o1"}`)}
	interrupt := true
	record := func() (int64, []Case, bool) {
		var id int64
		var cases []Case
		var recorded bool
		if err := s.Update(ctx, func(tx *Tx) error {
			var err error
			id, cases, recorded, err = tx.RecordOrderEvent(ctx, ev, OrderEventEntry{Summary: "order ORDER_CANCEL: CANCEL"}, interrupt)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return id, cases, recorded
	}
	id, cases, recorded := record()
	if !recorded || id == 0 || len(cases) != 2 || cases[0].ID != a.ID || cases[1].ID != b.ID {
		t.Fatalf("first record: id %d cases %v recorded %v; want the two open cases of o1", id, cases, recorded)
	}
	if _, cases, recorded := record(); recorded || len(cases) != 0 {
		t.Fatalf("the same message again: cases %v recorded %v; want nothing written", cases, recorded)
	}
	for _, c := range []Case{a, b} {
		got, _ := s.GetCase(ctx, c.ID)
		if got.Version != c.Version+1 || got.NextWakeAt.IsZero() || got.OrderEventsLatest != id {
			t.Errorf("case %d: version %d wake %v; want version %d and a wake", c.ID, got.Version, got.NextWakeAt, c.Version+1)
		}
		tl, _ := s.Timeline(ctx, c.ID)
		if n := len(tl); n == 0 || !strings.Contains(tl[n-1].Summary, "ORDER_CANCEL") {
			t.Errorf("case %d timeline %+v; want the order event last", c.ID, tl)
		}
	}
	for _, c := range []Case{done, other} {
		if got, _ := s.GetCase(ctx, c.ID); got.Version != c.Version {
			t.Errorf("case %d (%s, order %s) was touched", c.ID, c.State, c.OrderID)
		}
	}
	// News that need not interrupt a decision leave the version alone.
	interrupt, ev.MsgID, ev.MessageType, ev.Ended = false, "m2", "ORDER_PAY_SUCCESS", false
	a, _ = s.GetCase(ctx, a.ID)
	id2, _, _ := record()
	if got, _ := s.GetCase(ctx, a.ID); got.Version != a.Version || got.OrderEventsLatest != id2 || !got.NextWakeAt.Equal(a.NextWakeAt) {
		t.Errorf("a quiet event: version %d latest %d wake %v; want version %d, latest %d, the wake unchanged", got.Version, got.OrderEventsLatest,
			got.NextWakeAt, a.Version, id2)
	}
	ev.MsgID, ev.MessageType, ev.Ended = "m1", "ORDER_CANCEL", true
	evs, err := s.OrderEventsAfter(ctx, platform.Taobao, "o1", 0)
	if err != nil || len(evs) != 2 || !evs[0].Ended || evs[0].CloseReason != "buyer_cancel" || evs[0].TotalAmount != 10000 || evs[0].ID != id {
		t.Fatalf("events of o1: %+v, %v; want the one kept", evs, err)
	}
	if evs, _ := s.OrderEventsAfter(ctx, platform.Taobao, "o1", id); len(evs) != 1 || evs[0].ID != id2 {
		t.Errorf("events after %d: %+v; want the second only", id, evs)
	}
	if later := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s3", State: "requested"}); later.OrderEventsLatest != id2 || later.OrderEventsSeen != 0 {
		t.Errorf("a case opened later: latest %d seen %d; want latest %d, seen 0 (it reads the kept events)", later.OrderEventsLatest, later.OrderEventsSeen, id2)
	}
	if fresh := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o3", SubOrderID: "s9", State: "requested"}); fresh.OrderEventsLatest != 0 {
		t.Errorf("a case of an order without events: latest %d; want 0", fresh.OrderEventsLatest)
	}
}
