package casestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// CreateCase, UpdateCase and UpdateCaseFrom build the case they return
// instead of reading it back; over a random walk of changes to every mutable
// field (and changes that change nothing), what they return is exactly the
// stored row, and UpdateCaseFrom (writing only what differs) leaves the same
// row as UpdateCase (writing everything) does on a twin case.
func TestUpdatedCaseIsTheStoredCase(t *testing.T) { eachBackend(t, testUpdatedCaseIsTheStoredCase) }

func testUpdatedCaseIsTheStoredCase(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	rng := rand.New(rand.NewPCG(1, 2))
	wake := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.FixedZone("CST", 8*3600)) // sub-millisecond, not UTC
	// One clock for the twins: each moves (MovedAt) when the other does,
	// at the same time, and both were opened then.
	clock := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	create := func(sub string) Case {
		var c Case
		err := s.Update(ctx, func(tx *Tx) error {
			var err error
			c, err = tx.CreateCase(ctx, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: sub, State: "requested",
				Request: json.RawMessage(`{"amount": 100}`), NextWakeAt: wake, OpenedBy: "cmd-" + sub})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.GetCase(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, stored) {
			t.Fatalf("CreateCase returned\n%+v\nstored\n%+v", c, stored)
		}
		return c
	}
	from, all := create("s1"), create("s2")
	// a new value for field i of c; with probability 1/4 the value it has.
	mutate := func(c *Case, i int) {
		n := fmt.Sprint(rng.IntN(3))
		tm := func() time.Time {
			if rng.IntN(3) == 0 {
				return time.Time{}
			}
			return wake.Add(time.Duration(rng.IntN(3)) * time.Hour)
		}
		switch i {
		case 0:
			c.RefundID = "R" + n
		case 1:
			c.State = []string{"rendering", "submitting", "needs_attention"}[rng.IntN(3)]
		case 2:
			c.ParkedState = "p" + n
		case 3:
			c.Request = json.RawMessage(`{"amount":` + n + `}`)
		case 4:
			c.Plan = []json.RawMessage{nil, json.RawMessage(`{}`), json.RawMessage(`{"reasonId":` + n + `}`)}[rng.IntN(3)]
		case 5:
			c.Shipment = []json.RawMessage{nil, json.RawMessage(`{"waybill":"W` + n + `"}`)}[rng.IntN(2)]
		case 6:
			c.PlatformStatus = "st" + n
		case 7:
			c.LastPlatformCheckAt = tm()
		case 8:
			c.NextWakeAt = tm()
		case 9:
			c.AttentionCode = "code" + n
		case 10:
			c.AttentionMessage = "message " + n
		}
	}
	for round := range 200 {
		clock = clock.Add(time.Second) // (a move is told from a check by its time)
		next := from
		for range rng.IntN(4) {
			mutate(&next, rng.IntN(len(caseFields)))
		}
		twin := next
		twin.ID, twin.SubOrderID, twin.OpenedBy, twin.Version, twin.CreatedAt = all.ID, all.SubOrderID, all.OpenedBy, all.Version, all.CreatedAt
		if rng.IntN(2) == 0 {
			next.Version = 999 // ignored: prev's version counts
		}
		var gotFrom, gotAll Case
		err := s.Update(ctx, func(tx *Tx) error {
			var err error
			if gotFrom, err = tx.UpdateCaseFrom(ctx, from, next); err != nil {
				return err
			}
			gotAll, err = tx.UpdateCase(ctx, twin)
			return err
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, c := range []Case{gotFrom, gotAll} {
			stored, err := s.GetCase(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, stored) {
				t.Fatalf("round %d: returned\n%+v\nstored\n%+v", round, c, stored)
			}
		}
		a, b := gotFrom, gotAll
		b.ID, b.SubOrderID, b.OpenedBy, b.CreatedAt = a.ID, a.SubOrderID, a.OpenedBy, a.CreatedAt
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("round %d: UpdateCaseFrom left\n%+v\nUpdateCase left\n%+v", round, a, b)
		}
		from, all = gotFrom, gotAll
	}
	if from.Version != 201 {
		t.Fatalf("version after 200 updates = %d; want 201", from.Version)
	}

	// A stale prev writes nothing; a prev of another case is refused; bad
	// JSON in a changed document is refused.
	stale := from
	stale.Version--
	next := from
	next.State = "closed"
	for name, tc := range map[string]struct {
		prev, next Case
		want       error
	}{
		"stale":      {stale, next, ErrVersionConflict},
		"other case": {all, next, nil},
		"bad json":   {from, Case{ID: from.ID, Plan: json.RawMessage(`{`)}, nil},
	} {
		err := s.Update(ctx, func(tx *Tx) error { _, err := tx.UpdateCaseFrom(ctx, tc.prev, tc.next); return err })
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Fatalf("%s: err = %v; want %v", name, err, tc.want)
		}
		if got, _ := s.GetCase(ctx, from.ID); !reflect.DeepEqual(got, from) {
			t.Fatalf("%s changed the case:\n%+v\nwas\n%+v", name, got, from)
		}
	}
}
