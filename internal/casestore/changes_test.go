package casestore

import (
	"context"
	"slices"
	"testing"
	"time"
)

// CaseChanges lists cases after a position in (updated_at, id) order, so
// that a follower resuming from the last change it saw misses none and
// repeats none, even when two cases were updated in the same millisecond.
func TestCaseChanges(t *testing.T) { eachBackend(t, testCaseChanges) }

func testCaseChanges(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	at := t0
	s.now = func() time.Time { return at }
	a := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	b := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s2", State: "requested"}) // same ms as a
	at = t0.Add(time.Second)
	if err := s.Update(ctx, func(tx *Tx) error {
		a.State, a.AttentionCode = "needs_attention", "reason_not_offered"
		var err error
		a, err = tx.UpdateCase(ctx, a)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ms := t0.UnixMilli()
	for _, tc := range []struct {
		name string
		f    ChangesFilter
		want []int64 // case ids, in order
	}{
		{"from the start", ChangesFilter{}, []int64{b.ID, a.ID}},
		{"after b at t0", ChangesFilter{AfterMS: ms, AfterID: b.ID}, []int64{a.ID}},
		{"within the millisecond", ChangesFilter{AfterMS: ms, AfterID: 0}, []int64{b.ID, a.ID}},
		{"after everything", ChangesFilter{AfterMS: a.UpdatedAt.UnixMilli(), AfterID: a.ID}, nil},
		{"one case", ChangesFilter{CaseID: b.ID}, []int64{b.ID}},
		{"limit", ChangesFilter{Limit: 1}, []int64{b.ID}},
	} {
		got, err := s.CaseChanges(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: CaseChanges(%+v): %v", tc.name, tc.f, err)
		}
		var ids []int64
		for _, c := range got {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%s: CaseChanges(%+v) = ids %v; want %v", tc.name, tc.f, ids, tc.want)
		}
	}
	got, err := s.CaseChanges(ctx, ChangesFilter{CaseID: a.ID})
	if err != nil || len(got) != 1 {
		t.Fatalf("CaseChanges(case %d) = %v, %v; want one change", a.ID, got, err)
	}
	want := CaseChange{ID: a.ID, State: "needs_attention", AttentionCode: "reason_not_offered", Version: a.Version, UpdatedAt: t0.Add(time.Second)}
	if got[0] != want {
		t.Errorf("CaseChanges(case %d) = %+v; want %+v", a.ID, got[0], want)
	}
}
