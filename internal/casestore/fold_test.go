package casestore

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// TestTwoDecisionsOfACaseInOneTransaction: a transaction that writes a
// case twice (refundflow's lookahead commits a decision and the one its
// step's result leads to) leaves the case exactly as the two writes in a
// row would: the second's values over the first's, the version moved on
// by two, the second's lease; and when the first cannot be written (a
// stale version, another process's lease) or the second could not be (a
// lease the first did not check), nothing is. On PostgreSQL the two are
// folded into one UPDATE while the first waits to be sent, so the row
// gets one new version: the transaction's own statistics count one
// update of the case table, where two writes made two.
func TestTwoDecisionsOfACaseInOneTransaction(t *testing.T) { eachBackend(t, testTwoDecisionsOfACase) }

func testTwoDecisionsOfACase(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	stored := func(id int64) Case {
		t.Helper()
		got, err := s.GetCase(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	timeline := func(id int64) int {
		t.Helper()
		entries, err := s.Timeline(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return len(entries)
	}
	// twice writes c as rendering (leased to first for a minute), a
	// timeline entry, then as submitting with a refund id and a plan
	// (the lease let go, or kept by second); rows is the number of case
	// updates the transaction made, as PostgreSQL counts them.
	twice := func(c Case, firstLeased bool, second string) (got Case, rows int64, err error) {
		const updates = `SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'cases'`
		err = s.Update(ctx, func(tx *Tx) error {
			// The counter may hold earlier transactions' updates not yet
			// reported by this backend: the difference is this one's.
			var before int64
			if tx.tx.pg {
				var err error
				if before, err = getOne[int64](ctx, tx, updates); err != nil {
					return err
				}
			}
			a := c
			a.State, a.Plan = "rendering", json.RawMessage(`{"step":"render"}`)
			var err error
			if firstLeased {
				a, err = tx.UpdateCaseLeased(ctx, c, a, "me", time.Minute)
			} else {
				a, err = tx.UpdateCaseFrom(ctx, c, a)
			}
			if err != nil {
				return err
			}
			if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindDecision, Summary: "rendered"}); err != nil {
				return err
			}
			b := a
			b.State, b.RefundID, b.Plan = "submitting", "rf-"+c.OrderID, json.RawMessage(`{"step":"submit"}`)
			keep := time.Duration(0)
			if second != "me" {
				keep = time.Minute
			}
			if got, err = tx.UpdateCaseLeased(ctx, a, b, second, keep); err != nil {
				return err
			}
			if tx.tx.pg {
				rows, err = getOne[int64](ctx, tx, updates)
				rows -= before
			}
			return err
		})
		return got, rows, err
	}

	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	got, rows, err := twice(c, true, "me")
	if err != nil {
		t.Fatalf("two decisions: %v", err)
	}
	st := stored(c.ID)
	if !reflect.DeepEqual(got, st) {
		t.Errorf("two decisions returned\n%+v\nstored\n%+v", got, st)
	}
	if st.State != "submitting" || st.RefundID != "rf-o1" || string(st.Plan) != `{"step":"submit"}` ||
		st.Version != c.Version+2 || st.LeaseOwner != "" || timeline(c.ID) != 1 {
		t.Errorf("after two decisions: %q refund %q plan %s v%d (from v%d) leased to %q, %d timeline entries; want the second's values, two versions on, no lease, the entry",
			st.State, st.RefundID, st.Plan, st.Version, c.Version, st.LeaseOwner, timeline(c.ID))
	}
	if be.Name == "postgres" && rows != 1 {
		t.Errorf("PostgreSQL counted %d updates of cases in the transaction; want 1 (the second write folded into the first)", rows)
	}

	// The first write without a lease, the second with one: not folded
	// (the second's lease check must not move ahead of the first write),
	// and the second's lease is written.
	c2 := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o2", SubOrderID: "s2", State: "requested"})
	_, rows, err = twice(c2, false, "second")
	if err != nil {
		t.Fatal(err)
	}
	if st := stored(c2.ID); st.LeaseOwner != "second" || st.Version != c2.Version+2 || st.State != "submitting" {
		t.Errorf("unleased then leased: %q v%d leased to %q; want submitting, v%d, leased to second", st.State, st.Version, st.LeaseOwner, c2.Version+2)
	}
	if be.Name == "postgres" && rows != 2 {
		t.Errorf("unleased then leased: PostgreSQL counted %d updates of cases; want 2 (not folded)", rows)
	}
	// A stale version under another process's lease, the first write
	// unleased: the version conflict the first write meets, not the
	// lease the second would have checked.
	c5 := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o5", SubOrderID: "s5", State: "requested"})
	if _, err := s.ClaimLease(ctx, c5.ID, "other", time.Hour); err != nil {
		t.Fatal(err)
	}
	moved5 := c5
	moved5.State = "needs_attention"
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.UpdateCaseFrom(ctx, c5, moved5); return err }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := twice(c5, false, "me"); !errors.Is(err, ErrVersionConflict) {
		t.Errorf("stale version, leased elsewhere, first write unleased: %v; want ErrVersionConflict", err)
	}

	// Another write of the case between the two (an order event's wake
	// bumps the version): the second write meets the row as it leaves it,
	// a version conflict, as it would unfolded.
	c6 := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o6", SubOrderID: "s6", State: "requested"})
	err = s.Update(ctx, func(tx *Tx) error {
		a := c6
		a.State = "rendering"
		a, err := tx.UpdateCaseLeased(ctx, c6, a, "me", time.Minute)
		if err != nil {
			return err
		}
		if err := tx.later(ctx, "wake", `UPDATE cases SET version = version + 1 WHERE id = ?`, c6.ID); err != nil {
			return err
		}
		b := a
		b.State = "submitting"
		_, err = tx.UpdateCaseLeased(ctx, a, b, "me", 0)
		return err
	})
	if !errors.Is(err, ErrVersionConflict) {
		t.Errorf("a write of the case between the two: %v; want ErrVersionConflict", err)
	}

	// A stale first version: a version conflict, nothing written.
	c3 := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o3", SubOrderID: "s3", State: "requested"})
	moved := c3
	moved.State = "needs_attention"
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.UpdateCaseFrom(ctx, c3, moved); return err }); err != nil {
		t.Fatal(err)
	}
	before := stored(c3.ID)
	if _, _, err := twice(c3, true, "me"); !errors.Is(err, ErrVersionConflict) {
		t.Errorf("stale version: %v; want ErrVersionConflict", err)
	}
	if st := stored(c3.ID); !reflect.DeepEqual(st, before) || timeline(c3.ID) != 0 {
		t.Errorf("stale version: case\n%+v\nwant untouched\n%+v\n(%d timeline entries; want none)", st, before, timeline(c3.ID))
	}

	// Another process's lease, checked by the first write or only by the
	// second: a LeasedError, nothing written.
	for _, firstLeased := range []bool{true, false} {
		c4 := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o4", SubOrderID: "s4", State: "requested"})
		held, err := s.ClaimLease(ctx, c4.ID, "other", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		before := stored(c4.ID)
		_, _, err = twice(before, firstLeased, "me")
		var le *LeasedError
		if !errors.As(err, &le) || !le.Until.Equal(held) {
			t.Errorf("leased elsewhere (first write leased %v): %v; want a LeasedError until %v", firstLeased, err, held)
		}
		if st := stored(c4.ID); !reflect.DeepEqual(st, before) || timeline(c4.ID) != 0 {
			t.Errorf("leased elsewhere (first write leased %v): case\n%+v\nwant untouched\n%+v", firstLeased, st, before)
		}
		if err := s.ReleaseLease(ctx, c4.ID, "other"); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, func(tx *Tx) error {
			cur, err := tx.GetCase(ctx, c4.ID)
			if err != nil {
				return err
			}
			done := cur
			done.State = "closed"
			_, err = tx.UpdateCaseFrom(ctx, cur, done)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
}
