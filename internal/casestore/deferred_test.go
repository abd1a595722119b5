package casestore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/platform"
)

// TestDueDeferredCasesCountsTheOldestInputOnly: 200 cases each have an
// input queued behind a first one that waits again (an hour on), while the
// one behind keeps its older, due time. Those cases are not due (their
// first input is not), so they cannot crowd out a case whose only input is
// due.
func TestDueDeferredCasesCountsTheOldestInputOnly(t *testing.T) {
	eachBackend(t, testDueDeferredCasesCountsTheOldestInputOnly)
}

func testDueDeferredCasesCountsTheOldestInputOnly(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	now := time.Now()
	var victim int64
	if err := s.Update(ctx, func(tx *Tx) error {
		for i := range 201 {
			c, err := tx.CreateCase(ctx, NewCase{Platform: PlatformTaobao, OrderID: "1", SubOrderID: fmt.Sprint(1000 + i), State: "waiting_seller"})
			if err != nil {
				return err
			}
			if i == 200 {
				victim = c.ID
				return tx.Defer(ctx, DeferredInput{CaseID: c.ID, MsgID: "v", Source: SourceCommands, Payload: []byte("{}"), NotBefore: now.Add(-time.Second)})
			}
			if err := tx.Defer(ctx, DeferredInput{CaseID: c.ID, MsgID: fmt.Sprint("a", i), Source: SourceCommands, Payload: []byte("{}"), NotBefore: now.Add(time.Hour)}); err != nil {
				return err
			}
			if err := tx.Defer(ctx, DeferredInput{CaseID: c.ID, MsgID: fmt.Sprint("b", i), Source: SourceCommands, Payload: []byte("{}"), NotBefore: now.Add(-time.Minute)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ids, err := s.DueDeferredCases(ctx, now, 200)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != victim {
		t.Errorf("due cases %v; want only case %d (the others' first inputs are due in an hour)", ids, victim)
	}
}

// TestDeferNewKeepsTheFirstCopy: DeferNew keeps an input once; a second
// copy of the same message changes neither its time nor its reason and
// reports that it was not new. FirstDeferredCommand passes over callbacks.
func TestDeferNewKeepsTheFirstCopy(t *testing.T) {
	eachBackend(t, testDeferNewKeepsTheFirstCopy)
}

func testDeferNewKeepsTheFirstCopy(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	var caseID int64
	var fresh []bool
	if err := s.Update(ctx, func(tx *Tx) error {
		c, err := tx.CreateCase(ctx, NewCase{Platform: PlatformTaobao, OrderID: "1", SubOrderID: "2", State: "waiting_seller"})
		if err != nil {
			return err
		}
		caseID = c.ID
		for i, d := range []DeferredInput{
			{CaseID: c.ID, MsgID: "cb", Source: SourceCallbacks, Payload: []byte(`{"a":1}`), NotBefore: now.Add(time.Minute), Reason: "verifying"},
			{CaseID: c.ID, MsgID: "cb", Source: SourceCallbacks, Payload: []byte(`{"a":2}`), NotBefore: now, Reason: "again"},
			{CaseID: c.ID, MsgID: "cmd", Source: SourceCommands, Payload: []byte(`{}`), NotBefore: now, Reason: "wait"},
		} {
			f, err := tx.DeferNew(ctx, d)
			if err != nil {
				return fmt.Errorf("DeferNew %d: %w", i, err)
			}
			fresh = append(fresh, f)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fresh[0] != true || fresh[1] != false || fresh[2] != true {
		t.Errorf("fresh = %v; want true, false, true", fresh)
	}
	kept, err := s.DeferredInputs(ctx, caseID)
	if err != nil || len(kept) != 2 {
		t.Fatalf("DeferredInputs = %+v, %v; want two", kept, err)
	}
	if cb := kept[0]; cb.MsgID != "cb" || !cb.NotBefore.Equal(now.Add(time.Minute)) || cb.Reason != "verifying" || string(cb.Payload) != `{"a":1}` {
		t.Errorf("kept callback %+v; want the first copy unchanged", cb)
	}
	if d, err := s.FirstDeferredCommand(ctx, caseID); err != nil || d.MsgID != "cmd" {
		t.Errorf("FirstDeferredCommand = %+v, %v; want cmd (the callback before it is no command)", d, err)
	}
}

// TestKeepCallbackOnce: KeepCallback keeps a callback and appends its
// timeline entry once; a second copy of the message adds neither, and a
// bad entry is refused with nothing written.
func TestKeepCallbackOnce(t *testing.T) {
	eachBackend(t, testKeepCallbackOnce)
}

func testKeepCallbackOnce(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	var caseID int64
	if err := s.Update(ctx, func(tx *Tx) error {
		c, err := tx.CreateCase(ctx, NewCase{Platform: PlatformTaobao, OrderID: "1", SubOrderID: "2", State: "waiting_seller"})
		caseID = c.ID
		return err
	}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Truncate(time.Millisecond)
	d := DeferredInput{CaseID: caseID, MsgID: "cb-1", Source: SourceCallbacks, Payload: []byte(`{"x":1}`), Stream: "CALLBACKS",
		StreamSeq: 9, Subject: "callbacks.taobao", NotBefore: at.Add(2 * time.Minute), Reason: "verifying"}
	e := TimelineEntry{CaseID: caseID, At: at, Kind: KindCallback, Summary: "callback X refund 1", Detail: []byte(`{"lagMs":3}`)}
	for i, want := range []bool{true, false} {
		fresh, err := s.KeepCallback(ctx, d, e)
		if err != nil || fresh != want {
			t.Fatalf("KeepCallback #%d = %v, %v; want %v", i+1, fresh, err, want)
		}
	}
	if _, err := s.KeepCallback(ctx, DeferredInput{CaseID: caseID, MsgID: "cb-2", Source: SourceCallbacks},
		TimelineEntry{CaseID: caseID, Kind: KindCallback, Summary: "bad", Detail: []byte(`{not json`)}); err == nil {
		t.Error("KeepCallback with a detail that is no JSON: no error")
	}
	// A copy of a callback applied meanwhile (its inbox row written) is
	// not kept again, and says so; nor is a copy of one kept before and
	// applied since.
	if err := s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.InboxRecord(ctx, InboxEntry{MsgID: "cb-done"}); err != nil {
			return err
		}
		_, err := tx.InboxRecord(ctx, InboxEntry{MsgID: "cb-1"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"cb-done", "cb-1"} {
		if fresh, err := s.KeepCallback(ctx, DeferredInput{CaseID: caseID, MsgID: id, Source: SourceCallbacks},
			TimelineEntry{CaseID: caseID, Kind: KindCallback, Summary: "late copy"}); !errors.Is(err, ErrInInbox) || fresh {
			t.Errorf("KeepCallback of the applied callback %s = %v, %v; want not kept, ErrInInbox", id, fresh, err)
		}
	}
	kept, err := s.DeferredInputs(ctx, caseID)
	if err != nil || len(kept) != 1 {
		t.Fatalf("DeferredInputs = %+v, %v; want the one callback", kept, err)
	}
	if k := kept[0]; k.MsgID != "cb-1" || string(k.Payload) != `{"x":1}` || k.Stream != "CALLBACKS" || k.StreamSeq != 9 ||
		!k.NotBefore.Equal(d.NotBefore) || k.Reason != "verifying" {
		t.Errorf("kept %+v; want the callback as given", k)
	}
	tl, err := s.Timeline(ctx, caseID)
	if err != nil || len(tl) != 1 {
		t.Fatalf("Timeline = %+v, %v; want one entry", tl, err)
	}
	if got := tl[0]; got.Summary != e.Summary || got.Kind != KindCallback || !got.At.Equal(at) || string(got.Detail) != `{"lagMs":3}` {
		t.Errorf("timeline entry %+v; want %+v", got, e)
	}
}

// TestCallbackRecordsSkipTheFlushOnPostgres: on PostgreSQL, KeepCallback's
// pool commits without waiting for the WAL flush, and only it: the writer
// pool, which commits decisions, intents and inbox rows, still waits.
func TestCallbackRecordsSkipTheFlushOnPostgres(t *testing.T) {
	be := casestoretest.Backends()[1]
	s := openTest(t, be.Fresh(t))
	if s.records == nil {
		t.Fatal("no record pool on PostgreSQL")
	}
	// The test clusters run with synchronous_commit off themselves (for
	// speed), so the value alone proves nothing for the writer: where it
	// comes from does. The record pool sets it per connection ("client").
	type setting struct {
		Value  string `db:"setting"`
		Source string `db:"source"`
	}
	const q = `SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'`
	var rec, w setting
	if err := s.records.Get(&rec, q); err != nil {
		t.Fatal(err)
	}
	if err := s.w.Get(&w, q); err != nil {
		t.Fatal(err)
	}
	if rec.Value != "off" || rec.Source != "client" || w.Source == "client" {
		t.Errorf("synchronous_commit: record pool %+v, writer %+v; want the record pool's off by the client, the writer's the server's", rec, w)
	}
}

// TestDueDeferredCasesPassesOverWaitingCallbacks: a callback that waits
// holds up nothing, and a due callback is taken up even behind a command
// that waits; a command behind a command that waits still waits.
func TestDueDeferredCasesPassesOverWaitingCallbacks(t *testing.T) {
	eachBackend(t, testDueDeferredCasesPassesOverWaitingCallbacks)
}

func testDueDeferredCasesPassesOverWaitingCallbacks(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	now := time.Now()
	later, due := now.Add(time.Hour), now.Add(-time.Minute)
	var ids [3]int64
	if err := s.Update(ctx, func(tx *Tx) error {
		for i, rows := range [3][2]DeferredInput{
			{{Source: SourceCallbacks, NotBefore: later}, {Source: SourceCommands, NotBefore: due}}, // due: the command
			{{Source: SourceCommands, NotBefore: later}, {Source: SourceCallbacks, NotBefore: due}}, // due: the callback
			{{Source: SourceCommands, NotBefore: later}, {Source: SourceCommands, NotBefore: due}},  // not due
		} {
			c, err := tx.CreateCase(ctx, NewCase{Platform: PlatformTaobao, OrderID: "1", SubOrderID: fmt.Sprint(100 + i), State: "waiting_seller"})
			if err != nil {
				return err
			}
			ids[i] = c.ID
			for j, d := range rows {
				d.CaseID, d.MsgID, d.Payload = c.ID, fmt.Sprint("m", i, j), []byte("{}")
				if err := tx.Defer(ctx, d); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.DueDeferredCases(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, ids[:2]) {
		t.Errorf("due cases %v; want %d and %d (not %d, whose due command waits behind another)", got, ids[0], ids[1], ids[2])
	}
}

// TestStoreInboxRecord: a message recorded on its own is new the first
// time and not after; a Deferred one drops its kept copy with it (on
// PostgreSQL in the same statement), whether or not it was new.
func TestStoreInboxRecord(t *testing.T) { eachBackend(t, testStoreInboxRecord) }

func testStoreInboxRecord(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	c := newCase(t, s, NewCase{Platform: PlatformTaobao, OrderID: "1", SubOrderID: "2", State: "waiting_seller"})
	for i, want := range []bool{true, false} {
		if fresh, err := s.InboxRecord(ctx, InboxEntry{MsgID: "m-1", Stream: "CALLBACKS", StreamSeq: 3, Subject: "callbacks.taobao"}); err != nil || fresh != want {
			t.Fatalf("InboxRecord #%d = %v, %v; want %v", i+1, fresh, err, want)
		}
	}
	if seen, err := s.InboxSeen(ctx, "m-1"); err != nil || !seen {
		t.Fatalf("InboxSeen(m-1) = %v, %v; want recorded", seen, err)
	}
	for _, id := range []string{"kept-new", "m-1"} {
		if err := s.Update(ctx, func(tx *Tx) error {
			return tx.Defer(ctx, DeferredInput{CaseID: c.ID, MsgID: id, Source: SourceCallbacks, Payload: []byte(`{}`),
				NotBefore: time.Now().Add(time.Minute), Reason: "verifying"})
		}); err != nil {
			t.Fatal(err)
		}
		fresh, err := s.InboxRecord(ctx, InboxEntry{MsgID: id, Stream: "CALLBACKS", Deferred: true})
		if err != nil || fresh != (id == "kept-new") {
			t.Errorf("InboxRecord(%s, deferred) = %v, %v; want new only for kept-new", id, fresh, err)
		}
	}
	if kept, err := s.DeferredInputs(ctx, c.ID); err != nil || len(kept) != 0 {
		t.Errorf("kept inputs after recording them: %+v, %v; want none", kept, err)
	}
	if _, err := s.InboxRecord(ctx, InboxEntry{}); err == nil {
		t.Error("InboxRecord without a message id: no error")
	}
}

// TestKeepRefundCallback: KeepRefundCallback finds the case of a refund and
// keeps the callback for it, as CaseByRefundID and KeepCallback in a row
// would: the newest case that recorded the refund, the callback kept and
// recorded once, ErrInInbox for a message applied already; no case of the
// refund (another platform's, none at all) is ErrNotFound with nothing
// written.
func TestKeepRefundCallback(t *testing.T) { eachBackend(t, testKeepRefundCallback) }

func testKeepRefundCallback(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	withRefund := func(order, refund, state string) Case {
		t.Helper()
		c := newCase(t, s, NewCase{Platform: PlatformTaobao, OrderID: order, SubOrderID: "s-" + order, State: "requested"})
		if err := s.Update(ctx, func(tx *Tx) error {
			next := c
			next.RefundID, next.State = refund, state
			var err error
			c, err = tx.UpdateCaseFrom(ctx, c, next)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	withRefund("o1", "rf-1", "closed") // an older case of the same refund id
	want := withRefund("o2", "rf-1", "waiting_seller")
	other := withRefund("o3", "rf-3", "waiting_seller")
	at := time.Now().Truncate(time.Millisecond)
	d := DeferredInput{MsgID: "cb-1", Source: SourceCallbacks, Payload: []byte(`{"x":1}`), NotBefore: at.Add(time.Minute), Reason: "verifying"}
	e := TimelineEntry{At: at, Kind: KindCallback, Summary: "callback refund rf-1", Detail: []byte(`{"lagMs":3}`)}
	for i, wantFresh := range []bool{true, false} {
		c, fresh, err := s.KeepRefundCallback(ctx, PlatformTaobao, "rf-1", d, e)
		if err != nil || fresh != wantFresh || !reflect.DeepEqual(c, mustCase(t, s, want.ID)) {
			t.Fatalf("KeepRefundCallback #%d = case %d, %v, %v; want case %d as stored, fresh %v", i+1, c.ID, fresh, err, want.ID, wantFresh)
		}
	}
	kept, err := s.DeferredInputs(ctx, want.ID)
	if err != nil || len(kept) != 1 || kept[0].MsgID != "cb-1" || string(kept[0].Payload) != `{"x":1}` || kept[0].Reason != "verifying" {
		t.Fatalf("kept for case %d: %+v, %v; want cb-1 as given", want.ID, kept, err)
	}
	if tl, err := s.Timeline(ctx, want.ID); err != nil || len(tl) != 1 || tl[0].Summary != e.Summary || !tl[0].At.Equal(at) {
		t.Errorf("timeline of case %d: %+v, %v; want the callback's entry once", want.ID, tl, err)
	}
	for _, tc := range []struct {
		plat   platform.ID
		refund string
	}{{Platform1688, "rf-1"}, {PlatformTaobao, "rf-9"}} {
		if _, _, err := s.KeepRefundCallback(ctx, tc.plat, tc.refund, DeferredInput{MsgID: "cb-2", Source: SourceCallbacks, Payload: []byte(`{}`)},
			TimelineEntry{Kind: KindCallback, Summary: "no case"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("KeepRefundCallback(%s %s) = %v; want ErrNotFound", tc.plat, tc.refund, err)
		}
	}
	var left int
	if err := s.r.GetContext(ctx, &left, `SELECT COUNT(*) FROM deferred_inputs WHERE msg_id = ?`, "cb-2"); err != nil || left != 0 {
		t.Errorf("cb-2 kept %d times after ErrNotFound (%v); want nothing written", left, err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.InboxRecord(ctx, InboxEntry{MsgID: "cb-done"}); return err }); err != nil {
		t.Fatal(err)
	}
	if c, fresh, err := s.KeepRefundCallback(ctx, PlatformTaobao, "rf-3", DeferredInput{MsgID: "cb-done", Source: SourceCallbacks, Payload: []byte(`{}`)},
		TimelineEntry{Kind: KindCallback, Summary: "late copy"}); !errors.Is(err, ErrInInbox) || fresh || c.ID != other.ID {
		t.Errorf("KeepRefundCallback of an applied message = case %d, %v, %v; want case %d, not kept, ErrInInbox", c.ID, fresh, err, other.ID)
	}
	for _, id := range []int64{other.ID} {
		if kept, err := s.DeferredInputs(ctx, id); err != nil || len(kept) != 0 {
			t.Errorf("kept for case %d: %+v, %v; want nothing", id, kept, err)
		}
		if tl, err := s.Timeline(ctx, id); err != nil || len(tl) != 0 {
			t.Errorf("timeline of case %d: %+v, %v; want nothing", id, tl, err)
		}
	}
}

func mustCase(t *testing.T, s *Store, id int64) Case {
	t.Helper()
	c, err := s.GetCase(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestATakeUpCountsBeforeItRuns: StartTakeUp counts a take-up and moves
// the input's time on, only as the input was read (a second take-up of
// the same read, another process's, takes nothing); EndTakeUp gives the
// count back, so a take-up that returned counts as its outcome says (a
// failure's Defer adds one) and one whose process ended keeps it.
func TestATakeUpCountsBeforeItRuns(t *testing.T) { eachBackend(t, testATakeUpCountsBeforeItRuns) }

func testATakeUpCountsBeforeItRuns(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	c := newCase(t, s, NewCase{Platform: PlatformTaobao, OrderID: "1", SubOrderID: "2", State: "waiting_seller"})
	input := DeferredInput{CaseID: c.ID, MsgID: "cb", Source: SourceCallbacks, Payload: []byte(`{}`), NotBefore: now, Reason: "kept"}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Defer(ctx, input) }); err != nil {
		t.Fatal(err)
	}
	read := func() DeferredInput {
		t.Helper()
		kept, err := s.DeferredInputs(ctx, c.ID)
		if err != nil || len(kept) != 1 {
			t.Fatalf("DeferredInputs = %+v, %v; want one", kept, err)
		}
		return kept[0]
	}
	d := read()
	until := now.Add(time.Minute)
	if taken, err := s.StartTakeUp(ctx, d.ID, d.NotBefore, until); err != nil || !taken {
		t.Fatalf("StartTakeUp = %v, %v; want taken", taken, err)
	}
	if taken, err := s.StartTakeUp(ctx, d.ID, d.NotBefore, until); err != nil || taken {
		t.Errorf("a second StartTakeUp of the same read = %v, %v; want nothing taken", taken, err)
	}
	// While it runs, its time is held ahead; a hold from a time it no
	// longer has moves nothing.
	next := until.Add(time.Minute)
	if held, err := s.HoldTakeUp(ctx, d.ID, until, next); err != nil || !held {
		t.Fatalf("HoldTakeUp = %v, %v; want held", held, err)
	}
	if held, err := s.HoldTakeUp(ctx, d.ID, until, next.Add(time.Minute)); err != nil || held {
		t.Errorf("HoldTakeUp from a time the row no longer has = %v, %v; want nothing moved", held, err)
	}
	until = next
	if got := read(); got.Attempts != 1 || !got.NotBefore.Equal(until) {
		t.Errorf("after the take-up started: %d attempts, due %s; want 1 (a process that ends keeps it), due %s", got.Attempts, got.NotBefore, until)
	}
	// It failed: Defer adds one, and the take-up gives its count back.
	failed := input
	failed.Attempts, failed.NotBefore = 1, now.Add(time.Second)
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Defer(ctx, failed) }); err != nil {
		t.Fatal(err)
	}
	if err := s.EndTakeUp(ctx, d.ID, "cb", d.CreatedAt); err != nil {
		t.Fatal(err)
	}
	if got := read(); got.Attempts != 1 {
		t.Errorf("after a failed take-up: %d attempts; want 1", got.Attempts)
	}
	// One that waits adds nothing: the count it took goes back.
	if taken, err := s.StartTakeUp(ctx, d.ID, read().NotBefore, until); err != nil || !taken {
		t.Fatalf("StartTakeUp = %v, %v; want taken", taken, err)
	}
	if err := s.EndTakeUp(ctx, d.ID, "cb", d.CreatedAt); err != nil {
		t.Fatal(err)
	}
	if got := read(); got.Attempts != 1 {
		t.Errorf("after a take-up that returned with no failure: %d attempts; want 1", got.Attempts)
	}
	// Applied, and kept again under the same id: the new row is not the
	// one the take-up counted on, and gives nothing back.
	<-time.After(2 * time.Millisecond) // kept again at a later millisecond than the first row, as in any later transaction
	if err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.DeleteDeferred(ctx, "cb"); err != nil {
			return err
		}
		again := input
		again.Attempts = 1
		return tx.Defer(ctx, again)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.EndTakeUp(ctx, d.ID, "cb", d.CreatedAt); err != nil {
		t.Errorf("EndTakeUp of an input applied: %v; want nothing done", err)
	}
	if got := read(); got.Attempts != 1 {
		t.Errorf("the input kept again (row %d, kept at %s): %d attempts; want its own 1", got.ID, got.CreatedAt, got.Attempts)
	}
}
