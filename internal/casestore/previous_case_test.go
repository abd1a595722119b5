package casestore

import (
	"context"
	"errors"
	"testing"
)

// TestPreviousCaseOfACaseCreatedInTheTransaction: the newest earlier case
// of the same order and sub-order is found for a case opened in the same
// transaction (on PostgreSQL from what the INSERT read, Tx.previousOf) as
// for one read back later; a case of another sub-order or order is not
// its predecessor, and the first case of an order has none. (That the
// first case's answer costs no round trip is pinned by
// TestPipelinedTransactionsTakeFewRoundTrips; this test keeps the answer
// right.)
func TestPreviousCaseOfACaseCreatedInTheTransaction(t *testing.T) {
	eachBackend(t, testPreviousCaseOfACaseCreated)
}

func testPreviousCaseOfACaseCreated(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	closeCase := func(id int64) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error {
			c, err := tx.GetCase(ctx, id)
			if err != nil {
				return err
			}
			done := c
			done.State = "closed"
			_, err = tx.UpdateCaseFrom(ctx, c, done)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	closed := func(n NewCase) Case {
		t.Helper()
		c := newCase(t, s, n)
		closeCase(c.ID)
		return c
	}
	// open creates n and returns PreviousCase's answer in the same
	// transaction and after it.
	open := func(n NewCase) (id, in, after int64) {
		t.Helper()
		var c Case
		if err := s.Update(ctx, func(tx *Tx) error {
			var err error
			if c, err = tx.CreateCase(ctx, n); err != nil {
				return err
			}
			p, err := tx.PreviousCase(ctx, c)
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			in = p.ID
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, func(tx *Tx) error {
			p, err := tx.PreviousCase(ctx, c)
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			after = p.ID
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return c.ID, in, after
	}

	first, in, after := open(NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	if in != 0 || after != 0 {
		t.Errorf("first case of the order: previous %d in its transaction, %d after; want none", in, after)
	}
	closeCase(first)
	older := closed(NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	closed(NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s2", State: "requested"}) // another sub-order
	closed(NewCase{Platform: "taobao", OrderID: "o9", SubOrderID: "s9", State: "requested"}) // another order
	if _, in, after := open(NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"}); in != older.ID || after != older.ID {
		t.Errorf("a case after case %d of its sub-order: previous %d in its transaction, %d after; want %d both times", older.ID, in, after, older.ID)
	}
	if _, in, after := open(NewCase{Platform: "1688", OrderID: "o1", State: "requested"}); in != 0 || after != 0 {
		t.Errorf("first 1688 case of an order id a Taobao order also has: previous %d, %d; want none", in, after)
	}
}
