package casestore

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestACheckThatFindsNothingNewLeavesACaseIdle: a case stopped for hours is
// checked by the reconciler every WORKER_RECONCILE_AGE, a write that finds
// nothing new. refundctl list's IDLE and --older-than read updated_at,
// which every write moves: the stopped case read as idle for minutes, and
// `list --open --older-than 2h` found no stuck case. MovedAt moves only
// when the case does (opened; its state, where it stopped, its attention,
// its refund or the platform's status changed), and MovedBefore filters
// on it.
func TestACheckThatFindsNothingNewLeavesACaseIdle(t *testing.T) {
	eachBackend(t, testACheckThatFindsNothingNewLeavesACaseIdle)
}

func testACheckThatFindsNothingNewLeavesACaseIdle(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	at := func(d time.Duration) { s.now = func() time.Time { return t0.Add(d) } }
	at(0)
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "rendering"})
	other := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o2", SubOrderID: "s2", State: "waiting_seller"})
	if !c.MovedAt.Equal(t0) {
		t.Fatalf("a new case moved at %s; want its creation, %s", c.MovedAt, t0)
	}
	update := func(prev Case, change func(*Case)) Case {
		t.Helper()
		next := prev
		change(&next)
		var got Case
		if err := s.Update(ctx, func(tx *Tx) error {
			var err error
			got, err = tx.UpdateCaseFrom(ctx, prev, next)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		stored, err := s.GetCase(ctx, prev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !stored.MovedAt.Equal(got.MovedAt) {
			t.Fatalf("case %d stored moved at %s; the update returned %s", prev.ID, stored.MovedAt, got.MovedAt)
		}
		return stored
	}
	// Stopped at 00:10; checked at 03:00 and 05:00, nothing new.
	at(10 * time.Minute)
	c = update(c, func(n *Case) {
		n.State, n.ParkedState, n.AttentionCode, n.AttentionMessage = "needs_attention", "rendering", "fee_out_of_bounds", "requested 2 outside [0, 1]"
	})
	for _, h := range []time.Duration{3 * time.Hour, 5 * time.Hour} {
		at(h)
		c = update(c, func(n *Case) { n.LastPlatformCheckAt, n.FailedInputs = t0.Add(h), 1 })
		other = update(other, func(n *Case) { n.PlatformStatus = "WAIT_SELLER_AGREE_" + h.String() }) // the platform moved it
	}
	if want := t0.Add(10 * time.Minute); !c.MovedAt.Equal(want) || !c.UpdatedAt.Equal(t0.Add(5*time.Hour)) {
		t.Errorf("the stopped case, checked since: moved at %s, updated at %s; want moved at %s (when it stopped), updated at the last check", c.MovedAt, c.UpdatedAt, want)
	}
	if !other.MovedAt.Equal(t0.Add(5 * time.Hour)) {
		t.Errorf("the case whose platform status changed: moved at %s; want %s", other.MovedAt, t0.Add(5*time.Hour))
	}
	ids := func(f CaseFilter) []int64 {
		t.Helper()
		cs, err := s.ListCases(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, k := range cs {
			out = append(out, k.ID)
		}
		return out
	}
	// refundctl list --open --older-than 2h, at 05:00.
	if got := ids(CaseFilter{OpenOnly: true, MovedBefore: t0.Add(3 * time.Hour)}); !slices.Equal(got, []int64{c.ID}) {
		t.Errorf("open cases that have not moved for 2h = %v; want the stopped case %d", got, c.ID)
	}
	// The console's overview: the open cases idle longest, and those of
	// them carrying an attention code.
	for _, tc := range []struct {
		attention bool
		want      []int64
	}{{false, []int64{c.ID, other.ID}}, {true, []int64{c.ID}}} {
		got, err := s.IdlestOpenCases(ctx, tc.attention, 10)
		var gotIDs []int64
		for _, k := range got {
			gotIDs = append(gotIDs, k.ID)
		}
		if err != nil || !slices.Equal(gotIDs, tc.want) {
			t.Errorf("IdlestOpenCases(attention %v) = %v, %v; want %v", tc.attention, gotIDs, err, tc.want)
		}
	}
	// Each kind of move moves it.
	for _, move := range []func(*Case){
		func(n *Case) { n.AttentionCode = "reason_not_offered" },
		func(n *Case) { n.ParkedState = "submitting" },
		func(n *Case) { n.State, n.ParkedState, n.AttentionCode, n.AttentionMessage = "rendering", "", "", "" },
		func(n *Case) { n.RefundID = "R1" },
	} {
		at(c.UpdatedAt.Sub(t0) + time.Hour)
		if c = update(c, move); !c.MovedAt.Equal(s.now()) {
			t.Errorf("after a move: moved at %s; want %s", c.MovedAt, s.now())
		}
	}
}

// TestMigrations26And27TakeWhenAnOpenCaseLastMovedAsNearAsKnown: a store
// upgraded to when cases last moved gives each open case its last
// decision that acted (or its opening), not its last update (the
// reconciler's last check) nor a check's entries (a failed read's retry,
// a wait, nothing new): every case stuck at the upgrade would have read
// as idle for minutes. A finished case is left
// unknown (its last update counts, in the age filter too), its row
// unwritten.
func TestMigrations26And27TakeWhenAnOpenCaseLastMovedAsNearAsKnown(t *testing.T) {
	eachBackend(t, testMigrations26And27)
}

func testMigrations26And27(t *testing.T, be backend) {
	ctx := context.Background()
	path := be.Fresh(t)
	old, err := open(ctx, path, nil, 25)
	if err != nil {
		t.Fatalf("open v25: %v", err)
	}
	for _, q := range []string{
		`INSERT INTO cases (id, platform, order_id, state, created_at, updated_at) VALUES
			(1, '1688', 'o-stuck', 'needs_attention', 1000, 5000), (2, '1688', 'o-new', 'requested', 1000, 5000),
			(3, '1688', 'o-done', 'succeeded', 1000, 6000)`,
		// Case 1's history as the worker writes it: opened and acted on,
		// stopped at 2000; then a reconcile that found nothing new, a
		// timer whose platform read failed (a retry), and one that waited.
		`INSERT INTO timeline (case_id, at, kind, summary, detail) VALUES
			(1, 1000, 'command', 'case opened by command cmd-1', '{}'), (1, 1000, 'decision', 'act requested: read the refund form', '{}'),
			(1, 2000, 'decision', 'act fee_out_of_bounds: requested 2 outside [0, 1]', '{}'),
			(1, 3000, 'reconcile', 'reconcile', '{}'), (1, 3000, 'decision', 'noop no_change: the platform shows nothing new', '{}'),
			(1, 4000, 'decision', 'retry in 1s: platform read failed: timeout', '{"attempt":1,"afterMs":1000}'),
			(1, 4800, 'timer', 'timer', '{}'), (1, 4800, 'decision', 'keep waiting: evidence', '{}')`,
	} {
		if _, err := old.w.Exec(q); err != nil {
			t.Fatalf("seed v25: %v", err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, path)
	for id, want := range map[int64]int64{1: 2000, 2: 1000, 3: 0} {
		c, err := s.GetCase(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := msOrZero(c.MovedAt); got != want || c.Version != 1 {
			t.Errorf("case %d after the upgrade: moved at %d, version %d; want %d, the row as it was", id, got, c.Version, want)
		}
	}
	for _, tc := range []struct {
		before int64
		want   []int64
	}{{1500, []int64{2}}, {5500, []int64{1, 2}}, {7000, []int64{1, 2, 3}}} {
		cs, err := s.ListCases(ctx, CaseFilter{MovedBefore: time.UnixMilli(tc.before)})
		var got []int64
		for _, c := range cs {
			got = append(got, c.ID)
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("not moved since %d = %v, %v; want %v (the finished case by its last update)", tc.before, got, err, tc.want)
		}
	}
}
