package casestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub"
)

func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newCase(t *testing.T, s *Store, n NewCase) Case {
	t.Helper()
	var c Case
	err := s.Update(context.Background(), func(tx *Tx) error {
		var err error
		c, err = tx.CreateCase(context.Background(), n)
		return err
	})
	if err != nil {
		t.Fatalf("CreateCase(%+v): %v", n, err)
	}
	return c
}

func TestMigrationsNumbered(t *testing.T) {
	ms := parseMigrations(Schema())
	if err := checkMigrations(ms); err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("migrations = %d; want at least 2", len(ms))
	}
	bad := parseMigrations("-- +migration 1: a\nSELECT 1;\n-- +migration 3: b\nSELECT 1;\n")
	if err := checkMigrations(bad); err == nil {
		t.Fatalf("checkMigrations(1,3) = nil; want an error")
	}
}

func TestOpenTwiceIsIdempotent(t *testing.T) { eachBackend(t, testOpenTwiceIsIdempotent) }

func testOpenTwiceIsIdempotent(t *testing.T, be backend) {
	path := be.Fresh(t)
	s1, err := Open(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("first Open: %v", err)
	}
	newCase(t, s1, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, path)
	v, err := s2.SchemaVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := len(parseMigrations(Schema())); v != want {
		t.Fatalf("SchemaVersion = %d; want %d", v, want)
	}
	var n int
	if err := s2.r.Get(&n, `SELECT COUNT(*) FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if n != v {
		t.Fatalf("schema_migrations rows = %d; want %d (each applied once)", n, v)
	}
	if _, err := s2.OpenCase(context.Background(), "taobao", "o1", "s1"); err != nil {
		t.Fatalf("case lost across reopen: %v", err)
	}
}

func TestUpgradeFromV1(t *testing.T) { eachBackend(t, testUpgradeFromV1) }

func testUpgradeFromV1(t *testing.T, be backend) {
	ctx := context.Background()
	path := be.Fresh(t)
	old, err := open(ctx, path, nil, 1)
	if err != nil {
		t.Fatalf("open v1: %v", err)
	}
	// A v1 database has no plan column and no dead letters.
	if _, err := old.w.Exec(`INSERT INTO cases (platform, order_id, state, created_at, updated_at)
		VALUES ('1688', 'o-old', 'waiting_seller', 1, 1)`); err != nil {
		t.Fatalf("insert v1 row: %v", err)
	}
	if _, err := old.w.Exec(`SELECT plan FROM cases`); err == nil {
		t.Fatalf("v1 database already has cases.plan")
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path)
	if v, _ := s.SchemaVersion(ctx); v != len(parseMigrations(Schema())) {
		t.Fatalf("SchemaVersion after upgrade = %d; want %d", v, len(parseMigrations(Schema())))
	}
	c, err := s.OpenCase(ctx, "1688", "o-old", "")
	if err != nil {
		t.Fatalf("old case after upgrade: %v", err)
	}
	if string(c.Plan) != "{}" || c.ParkedState != "" || c.State != "waiting_seller" {
		t.Fatalf("upgraded case = plan %s parked %q state %q; want {} \"\" waiting_seller", c.Plan, c.ParkedState, c.State)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, _, err := tx.InsertDeadLetter(ctx, DeadLetter{MsgID: "m", Subject: "x", Reason: "permanent"})
		return err
	})
	if err != nil {
		t.Fatalf("dead letter after upgrade: %v", err)
	}
}

// TestOpenCaseIndexesNameTheTerminalStates: SQL cannot refer to
// terminalStates, so the open-case partial indexes spell the states out; the
// queries' filter is built from terminalStates and must match them, or the
// planner would not use the indexes.
func TestOpenCaseIndexesNameTheTerminalStates(t *testing.T) {
	want := "state <> 'succeeded' AND state <> 'closed' AND state <> 'cancelled' AND state <> 'closed_locally'"
	if got := terminalFilter(); got != want {
		t.Fatalf("terminalFilter() gives %q; want %q", got, want)
	}
	// The newest definition of each open-case index is the one in force,
	// in both engines' schemas.
	for _, schema := range []string{refundhub.Schema, refundhub.SchemaPostgres} {
		for _, index := range []string{"cases_one_open ", "cases_one_open_sub_order ", "cases_one_open_1688_order "} {
			def := schema[strings.LastIndex(schema, "CREATE UNIQUE INDEX "+index):]
			def = def[:strings.Index(def, ";")]
			if !strings.HasSuffix(def, want) {
				t.Errorf("the newest %sindex ends %q; want the filter %q", index, def[max(0, len(def)-len(want)-20):], want)
			}
		}
		// The open cases by when they moved (migration 27).
		def := schema[strings.LastIndex(schema, "cases_open_moved ON"):]
		if def = def[:strings.Index(def, ";")]; !strings.HasSuffix(def, want) {
			t.Errorf("cases_open_moved ends %q; want the filter %q", def, want)
		}
	}
}

// The writes every decision makes (case, timeline, steps) open no temporary
// b-tree (an IN list in a partial index's predicate or in a CHECK did, for
// the old and the new row: several times the cost of the write), and the
// open-case lookups still use the partial indexes their filter names.
// SQLite only: it reads SQLite's bytecode and query plans.
func TestCaseWritesNeedNoTemporaryTables(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "db"))
	newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	for _, q := range []string{
		`UPDATE cases SET state = 'closed', updated_at = 1, version = version + 1 WHERE id = 1 AND version = 1`,
		`UPDATE cases SET refund_id = 'r', state = 'x', parked_state = '', request = '{}', plan = '{}', shipment = '{}',
			platform_status = '', last_platform_check_at = 1, next_wake_at = 1, attention_code = '', attention_message = '',
			updated_at = 1, version = version + 1 WHERE id = 1 AND version = 1`,
		`INSERT INTO cases (platform, order_id, sub_order_id, state, created_at, updated_at) VALUES ('taobao', 'o', 's', 'requested', 1, 1)`,
		`INSERT INTO timeline (case_id, at, kind, summary) VALUES (1, 1, 'decision', 'x'), (1, 1, 'step', 'y')`,
		`INSERT INTO step_attempts (case_id, step, idempotency_key, status, started_at) VALUES (1, 'submit', 'k', 'intent', 1)`,
		`UPDATE step_attempts SET status = 'done', finished_at = 2 WHERE id = 1`,
	} {
		var ops []string
		rows, err := s.r.QueryxContext(ctx, "EXPLAIN "+q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			m := map[string]any{}
			if err := rows.MapScan(m); err != nil {
				t.Fatal(err)
			}
			op, _ := m["opcode"].(string)
			ops = append(ops, op)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if len(ops) == 0 {
			t.Fatalf("no program for %.60s", q)
		}
		if i := slices.Index(ops, "OpenEphemeral"); i >= 0 {
			t.Errorf("%.60s… opens a temporary b-tree (op %d of %d)", q, i, len(ops))
		}
	}
	for q, index := range map[string]string{
		`SELECT id FROM cases WHERE platform = 'taobao' AND order_id = 'o1' AND sub_order_id = 's1' AND ` + terminalFilter():    "cases_one_open",
		`SELECT id FROM cases WHERE platform = 'taobao' AND sub_order_id = 's1' AND sub_order_id <> '' AND ` + terminalFilter(): "cases_one_open_sub_order",
	} {
		rows, err := s.r.QueryxContext(ctx, "EXPLAIN QUERY PLAN "+q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			m := map[string]any{}
			if err := rows.MapScan(m); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, fmt.Sprint(m["detail"]))
		}
		_ = rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), index) {
			t.Errorf("plan for %.60s…: %v; want it to use %s", q, plan, index)
		}
	}
}

func TestOneOpenCasePerOrder(t *testing.T) { eachBackend(t, testOneOpenCasePerOrder) }

func testOneOpenCasePerOrder(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	// Another sub-order of the same order is a different case.
	newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s2", State: "requested"})
	// The same order on the other platform too.
	newCase(t, s, NewCase{Platform: "1688", OrderID: "o1", State: "requested"})

	err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.CreateCase(ctx, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
		return err
	})
	if !errors.Is(err, ErrOpenCaseExists) {
		t.Fatalf("second open case: err = %v; want ErrOpenCaseExists", err)
	}
	// Once finished, a new case may open.
	err = s.Update(ctx, func(tx *Tx) error {
		c.State = "cancelled"
		_, err := tx.UpdateCase(ctx, c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c2 := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	got, err := s.OpenCase(ctx, "taobao", "o1", "s1")
	if err != nil || got.ID != c2.ID {
		t.Fatalf("OpenCaseByOrder = %d, %v; want %d", got.ID, err, c2.ID)
	}
	if _, err := s.OpenCase(ctx, "taobao", "nope", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenCase(unknown) err = %v; want ErrNotFound", err)
	}
	// Bad input changes nothing.
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.CreateCase(ctx, NewCase{Platform: "ebay", OrderID: "o9", State: "requested"})
		return err
	})
	if err == nil {
		t.Fatalf("CreateCase(platform ebay) = nil; want a CHECK error")
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.CreateCase(ctx, NewCase{Platform: "1688", OrderID: "o9", State: "requested", Request: json.RawMessage("{nope")})
		return err
	})
	if err == nil {
		t.Fatalf("CreateCase(bad JSON) = nil; want an error")
	}
}

func TestOptimisticVersionConflict(t *testing.T) { eachBackend(t, testOptimisticVersionConflict) }

func testOptimisticVersionConflict(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	c := newCase(t, s, NewCase{Platform: "1688", OrderID: "o1", State: "requested", Request: json.RawMessage(`{"amount":100}`)})
	if c.Version != 1 {
		t.Fatalf("new case version = %d; want 1", c.Version)
	}
	a, b := c, c // two workers read the same version
	wake := time.UnixMilli(1_800_000_000_000).UTC()
	a.State, a.RefundID, a.NextWakeAt, a.Plan = "submitting", "TQ1", wake, json.RawMessage(`{"reasonId":7}`)
	var updated Case
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		updated, err = tx.UpdateCase(ctx, a)
		return err
	}); err != nil {
		t.Fatalf("first update: %v", err)
	}
	if updated.Version != 2 || updated.State != "submitting" || updated.RefundID != "TQ1" || !updated.NextWakeAt.Equal(wake) ||
		string(updated.Plan) != `{"reasonId":7}` || string(updated.Request) != `{"amount":100}` {
		t.Fatalf("updated = %+v; want version 2, submitting, TQ1, wake %v, plan kept", updated, wake)
	}
	b.State = "cancelled"
	err := s.Update(ctx, func(tx *Tx) error { _, err := tx.UpdateCase(ctx, b); return err })
	if !errors.Is(err, ErrVersionConflict) {
		t.Fatalf("stale update err = %v; want ErrVersionConflict", err)
	}
	got, _ := s.GetCase(ctx, c.ID)
	if got.State != "submitting" || got.Version != 2 {
		t.Fatalf("after conflict: state %q version %d; want submitting 2", got.State, got.Version)
	}
	b.ID = 9999
	err = s.Update(ctx, func(tx *Tx) error { _, err := tx.UpdateCase(ctx, b); return err })
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of missing case err = %v; want ErrNotFound", err)
	}
	if byRefund, err := s.CaseByRefundID(ctx, Platform1688, "TQ1"); err != nil || byRefund.ID != c.ID {
		t.Fatalf("CaseByRefundID = %d, %v; want %d", byRefund.ID, err, c.ID)
	}
}

func TestUpdateRollsBackOnError(t *testing.T) { eachBackend(t, testUpdateRollsBackOnError) }

func testUpdateRollsBackOnError(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx *Tx) error {
		if _, err := tx.CreateCase(ctx, NewCase{Platform: "1688", OrderID: "o1", State: "requested"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update err = %v; want boom", err)
	}
	if _, err := s.OpenCase(ctx, "1688", "o1", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("case survived a rolled-back Update: %v", err)
	}
}

func TestIntentProtocol(t *testing.T) { eachBackend(t, testIntentProtocol) }

func testIntentProtocol(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "submitting"})
	other := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o2", SubOrderID: "s2", State: "submitting"})

	begin := func(caseID int64, step, key string) (StepAttempt, bool, error) {
		var a StepAttempt
		var prior bool
		err := s.Update(ctx, func(tx *Tx) error {
			var err error
			a, prior, err = tx.BeginStep(ctx, caseID, step, key, `{"fee":100}`)
			return err
		})
		return a, prior, err
	}

	a, prior, err := begin(c.ID, "submit", "case:1:submit")
	if err != nil || prior || a.Status != StepIntent || a.Begins != 1 {
		t.Fatalf("first BeginStep = %+v prior %v err %v; want new intent", a, prior, err)
	}
	if stored, err := s.OpenIntent(ctx, c.ID); err != nil || !reflect.DeepEqual(stored, a) {
		t.Fatalf("OpenIntent after BeginStep = %+v, %v; want the row BeginStep returned, %+v", stored, err, a)
	}
	// Crash, redelivery: the same key finds the intent, so the caller reconciles first.
	a2, prior, err := begin(c.ID, "submit", "case:1:submit")
	if err != nil || !prior || a2.Status != StepIntent || a2.ID != a.ID || a2.Begins != 2 {
		t.Fatalf("second BeginStep = %+v prior %v err %v; want the prior intent, begins 2", a2, prior, err)
	}
	// The key is unique across cases and steps.
	if _, _, err := begin(other.ID, "submit", "case:1:submit"); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("key reused by another case: err = %v; want ErrKeyConflict", err)
	}
	if _, _, err := begin(c.ID, "cancel", "case:1:submit"); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("key reused by another step: err = %v; want ErrKeyConflict", err)
	}
	if _, _, err := begin(c.ID, "submit", ""); err == nil {
		t.Fatalf("empty key accepted")
	}

	finish := func(key string, r StepResult) error {
		return s.Update(ctx, func(tx *Tx) error { return tx.FinishStep(ctx, key, r) })
	}
	done := StepResult{Status: StepDone, Outcome: `{"refundId":"R1"}`, RequestID: "req-1"}
	if err := finish("case:1:submit", done); err != nil {
		t.Fatalf("FinishStep: %v", err)
	}
	// A redelivered result is a no-op that keeps the first result, and the
	// rest of its transaction commits (on PostgreSQL the check runs on the
	// server, where a failed one would abort the transaction).
	again := done
	again.RequestID = "req-again"
	if err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.FinishStep(ctx, "case:1:submit", again); err != nil {
			return err
		}
		return tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindNote, Summary: "after the redelivered result"})
	}); err != nil {
		t.Fatalf("FinishStep again (redelivered result): %v", err)
	}
	if tl, err := s.Timeline(ctx, c.ID); err != nil || len(tl) == 0 || tl[len(tl)-1].Summary != "after the redelivered result" {
		t.Fatalf("timeline after the redelivered result: %+v, %v; want the note committed with it", tl, err)
	}
	if err := finish("case:1:submit", StepResult{Status: StepFailed}); err == nil {
		t.Fatalf("FinishStep flipping done to failed = nil; want an error")
	}
	if err := finish("nope", done); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FinishStep(unknown key) err = %v; want ErrNotFound", err)
	}
	if err := finish("case:1:submit", StepResult{Status: StepIntent}); err == nil {
		t.Fatalf("FinishStep(status intent) = nil; want an error")
	}
	a3, prior, err := begin(c.ID, "submit", "case:1:submit")
	if err != nil || !prior || a3.Status != StepDone || a3.RequestID != "req-1" || a3.FinishedAt.IsZero() {
		t.Fatalf("BeginStep after done = %+v prior %v err %v; want the done row", a3, prior, err)
	}
	if _, err := s.OpenIntent(ctx, c.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenIntent after done: err = %v; want ErrNotFound", err)
	}

	// A failed side effect and a read.
	if _, _, err := begin(c.ID, "cancel", "case:1:cancel"); err != nil {
		t.Fatal(err)
	}
	if err := finish("case:1:cancel", StepResult{Status: StepFailed, ErrorCode: "4091", ErrorMessage: "illegal state"}); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		err := tx.RecordStep(ctx, c.ID, "query", `{"refundId":"R1"}`, StepResult{Status: StepDone, RequestID: "req-2"})
		if err != nil {
			return err
		}
		err = tx.RecordStep(ctx, c.ID, "query", `{}`, StepResult{Status: StepDone})
		return err
	})
	if err != nil {
		t.Fatalf("RecordStep: %v", err)
	}
	steps, err := s.Steps(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range steps {
		got = append(got, fmt.Sprintf("%s/%s/%s", st.Step, st.Status, st.ErrorCode))
	}
	want := []string{"submit/done/", "cancel/failed/4091", "query/done/", "query/done/"}
	if !slices.Equal(got, want) {
		t.Fatalf("Steps = %v; want %v", got, want)
	}
}

func TestInboxDedupeAcrossReopen(t *testing.T) { eachBackend(t, testInboxDedupeAcrossReopen) }

func testInboxDedupeAcrossReopen(t *testing.T, be backend) {
	ctx := context.Background()
	path := be.Fresh(t)
	s := openTest(t, path)
	rec := func(s *Store, id string) bool {
		t.Helper()
		var fresh bool
		err := s.Update(ctx, func(tx *Tx) error {
			if err := tx.InboxAbsent(ctx, id); err != nil {
				return err
			}
			var err error
			fresh, err = tx.InboxRecord(ctx, InboxEntry{MsgID: id, Stream: "CALLBACKS", StreamSeq: 7, Subject: "cb.1688"})
			return err
		})
		if errors.Is(err, ErrInInbox) {
			return false
		}
		if err != nil {
			t.Fatalf("inbox %s: %v", id, err)
		}
		return fresh
	}
	if !rec(s, "h1") {
		t.Fatalf("first record of h1 not fresh")
	}
	if rec(s, "h1") {
		t.Fatalf("second record of h1 fresh; want duplicate")
	}
	_ = s.Close()
	s2 := openTest(t, path)
	if seen, err := s2.InboxSeen(ctx, "h1"); err != nil || !seen {
		t.Fatalf("InboxSeen(h1) after reopen = %v, %v; want true", seen, err)
	}
	if rec(s2, "h1") {
		t.Fatalf("h1 fresh after reopen; want duplicate")
	}
	// Pruning by age.
	s2.now = func() time.Time { return time.UnixMilli(5_000) }
	if !rec(s2, "h2") {
		t.Fatalf("h2 not fresh")
	}
	n, err := s2.PruneInbox(ctx, time.UnixMilli(10_000))
	if err != nil || n != 1 {
		t.Fatalf("PruneInbox = %d, %v; want 1 (h2 only)", n, err)
	}
	if seen, _ := s2.InboxSeen(ctx, "h1"); !seen {
		t.Fatalf("PruneInbox removed a recent entry")
	}
	err = s2.Update(ctx, func(tx *Tx) error { _, err := tx.InboxRecord(ctx, InboxEntry{}); return err })
	if err == nil {
		t.Fatalf("InboxRecord(empty id) = nil; want an error")
	}
}

func TestTwoStoresConcurrentWriters(t *testing.T) { eachBackend(t, testTwoStoresConcurrentWriters) }

func testTwoStoresConcurrentWriters(t *testing.T, be backend) {
	ctx := context.Background()
	path := be.Fresh(t)
	stores := []*Store{openTest(t, path), openTest(t, path)}
	const perWriter = 40
	const writersPerStore = 3
	var wg sync.WaitGroup
	errs := make(chan error, 2*writersPerStore*perWriter)
	for si, s := range stores {
		for w := range writersPerStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWriter {
					// A read-modify-write: read the counter case, then write it.
					// On PostgreSQL the transactions run side by side: one
					// that lost the race fails with a conflict and is
					// retried, as the worker retries (on SQLite none fails).
					err := retryConflicts(func() error {
						return s.Update(ctx, func(tx *Tx) error {
							c, err := tx.OpenCase(ctx, "1688", "counter", "")
							if errors.Is(err, ErrNotFound) {
								c, err = tx.CreateCase(ctx, NewCase{Platform: "1688", OrderID: "counter", State: "requested"})
							}
							if err != nil {
								return err
							}
							if _, err := tx.UpdateCase(ctx, c); err != nil {
								return err
							}
							_, err = tx.InboxRecord(ctx, InboxEntry{MsgID: fmt.Sprintf("s%d-w%d-%d", si, w, i)})
							return err
						})
					})
					if err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write: %v", err)
	}
	c, err := stores[0].OpenCase(ctx, "1688", "counter", "")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(len(stores) * writersPerStore * perWriter)
	// Created at version 1 by the first writer, then every write bumped it once.
	if c.Version != total+1 {
		t.Fatalf("counter version = %d; want %d (no lost updates)", c.Version, total+1)
	}
	var n int
	if err := stores[1].r.Get(&n, `SELECT COUNT(*) FROM inbox`); err != nil || int64(n) != total {
		t.Fatalf("inbox rows = %d, %v; want %d", n, err, total)
	}
}

func TestQueries(t *testing.T) { eachBackend(t, testQueries) }

func testQueries(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	s.now = func() time.Time { return t0 }
	a := newCase(t, s, NewCase{Platform: "taobao", OrderID: "a", SubOrderID: "1", State: "waiting_seller", NextWakeAt: t0.Add(time.Hour)})
	b := newCase(t, s, NewCase{Platform: "1688", OrderID: "b", State: "waiting_seller", NextWakeAt: t0.Add(time.Minute)})
	d := newCase(t, s, NewCase{Platform: "1688", OrderID: "d", State: "succeeded", NextWakeAt: t0})
	s.now = func() time.Time { return t0.Add(2 * time.Hour) }
	// b was checked recently; a never.
	err := s.Update(ctx, func(tx *Tx) error {
		b.LastPlatformCheckAt = t0.Add(2 * time.Hour)
		_, err := tx.UpdateCase(ctx, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(cs []Case, err error) []int64 {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	if got := ids(s.DueCases(ctx, t0.Add(30*time.Minute), 10)); !slices.Equal(got, []int64{b.ID}) {
		t.Fatalf("DueCases(+30m) = %v; want [%d]", got, b.ID)
	}
	if got := ids(s.DueCases(ctx, t0.Add(2*time.Hour), 10)); !slices.Equal(got, []int64{b.ID, a.ID}) {
		t.Fatalf("DueCases(+2h) = %v; want [%d %d] (terminal %d excluded)", got, b.ID, a.ID, d.ID)
	}
	if got := ids(s.StaleOpenCases(ctx, t0.Add(time.Hour), time.Hour, 10)); !slices.Equal(got, []int64{a.ID}) {
		t.Fatalf("StaleOpenCases = %v; want [%d]", got, a.ID)
	}
	// A case another process holds now is not due, nor stale; once its
	// lease has expired, it is again.
	if _, err := s.ClaimLease(ctx, b.ID, "other", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimLease(ctx, a.ID, "other", time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := ids(s.DueCases(ctx, t0.Add(2*time.Hour), 10)); len(got) != 0 {
		t.Fatalf("DueCases(+2h), both leased = %v; want none", got)
	}
	if got := ids(s.StaleOpenCases(ctx, t0.Add(time.Hour), time.Hour, 10)); len(got) != 0 {
		t.Fatalf("StaleOpenCases, a leased = %v; want none", got)
	}
	if got := ids(s.DueCases(ctx, t0.Add(3*time.Hour), 10)); !slices.Equal(got, []int64{b.ID, a.ID}) {
		t.Fatalf("DueCases(+3h), the leases expired = %v; want [%d %d]", got, b.ID, a.ID)
	}
	for _, id := range []int64{a.ID, b.ID} {
		if err := s.ReleaseLease(ctx, id, "other"); err != nil {
			t.Fatal(err)
		}
	}
	// A case held under one of the given attention codes is left out.
	if got := ids(s.StaleOpenCases(ctx, t0.Add(time.Hour), time.Hour, 10, "worker_ended", "held_too")); !slices.Equal(got, []int64{a.ID}) {
		t.Fatalf("StaleOpenCases, none held = %v; want [%d]", got, a.ID)
	}
	setA := func(state, parked, code string) {
		t.Helper()
		err := s.Update(ctx, func(tx *Tx) error {
			next := a
			next.State, next.ParkedState, next.AttentionCode = state, parked, code
			var err error
			a, err = tx.UpdateCase(ctx, next)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setA("needs_attention", "waiting_seller", "worker_ended")
	if got := ids(s.StaleOpenCases(ctx, t0.Add(time.Hour), time.Hour, 10, "held_too", "worker_ended")); len(got) != 0 {
		t.Fatalf("StaleOpenCases, a held = %v; want none", got)
	}
	if got := ids(s.StaleOpenCases(ctx, t0.Add(time.Hour), time.Hour, 10)); !slices.Equal(got, []int64{a.ID}) {
		t.Fatalf("StaleOpenCases, a held, no code left out = %v; want [%d]", got, a.ID)
	}
	setA("waiting_seller", "", "")
	// A case whose last inputs failed (a platform read that keeps
	// failing) waits for its own timer, at its retry's backoff: the
	// reconciler leaves it to that timer, rather than read it again at
	// every pass and crowd out the other stale cases. A case with a timer
	// ahead and no failure is stale as before.
	setWake := func(failed int, wake time.Time) {
		t.Helper()
		err := s.Update(ctx, func(tx *Tx) error {
			next := a
			next.FailedInputs, next.NextWakeAt = failed, wake
			var err error
			a, err = tx.UpdateCase(ctx, next)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setWake(3, t0.Add(3*time.Hour))
	if got := ids(s.StaleOpenCases(ctx, t0.Add(time.Hour), time.Hour, 10)); len(got) != 0 {
		t.Fatalf("StaleOpenCases, a backing off = %v; want none", got)
	}
	setWake(3, t0.Add(time.Hour))
	if got := ids(s.StaleOpenCases(ctx, t0.Add(time.Hour), time.Hour, 10)); !slices.Equal(got, []int64{a.ID}) {
		t.Fatalf("StaleOpenCases, a's retry due = %v; want [%d]", got, a.ID)
	}
	// A timer further ahead than a retry's longest backoff is not one
	// (the state's own re-check, hours away, with a kept input failing):
	// the reconciler does not wait for it.
	setWake(3, t0.Add(5*time.Hour))
	if got := ids(s.StaleOpenCases(ctx, t0.Add(time.Hour), time.Hour, 10)); !slices.Equal(got, []int64{a.ID}) {
		t.Fatalf("StaleOpenCases, a failing with its timer beyond the backoff = %v; want [%d]", got, a.ID)
	}
	setWake(0, t0.Add(3*time.Hour))
	if got := ids(s.StaleOpenCases(ctx, t0.Add(time.Hour), time.Hour, 10)); !slices.Equal(got, []int64{a.ID}) {
		t.Fatalf("StaleOpenCases, a's timer ahead, no failure = %v; want [%d]", got, a.ID)
	}
	setWake(0, t0.Add(time.Hour))
	if got := ids(s.ListCases(ctx, CaseFilter{Platform: "1688"})); !slices.Equal(got, []int64{b.ID, d.ID}) {
		t.Fatalf("ListCases(1688) = %v", got)
	}
	if got := ids(s.ListCases(ctx, CaseFilter{OpenOnly: true})); !slices.Equal(got, []int64{a.ID, b.ID}) {
		t.Fatalf("ListCases(open) = %v", got)
	}
	if got := ids(s.ListCases(ctx, CaseFilter{States: []string{"succeeded", "closed"}})); !slices.Equal(got, []int64{d.ID}) {
		t.Fatalf("ListCases(states) = %v", got)
	}
	if got := ids(s.ListCases(ctx, CaseFilter{UpdatedBefore: t0.Add(time.Hour), AfterID: a.ID})); !slices.Equal(got, []int64{d.ID}) {
		t.Fatalf("ListCases(updated before, after id) = %v", got)
	}
	counts, err := s.CountByState(ctx)
	if err != nil || counts["waiting_seller"] != 2 || counts["succeeded"] != 1 {
		t.Fatalf("CountByState = %v, %v", counts, err)
	}

	err = s.Update(ctx, func(tx *Tx) error {
		return tx.AppendTimeline(ctx, TimelineEntry{CaseID: a.ID, Kind: KindCallback, Summary: "refund callback", Detail: json.RawMessage(`{"refundId":"R"}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		return tx.AppendTimeline(ctx, TimelineEntry{CaseID: a.ID, Kind: "bogus", Summary: "x"})
	})
	if err == nil {
		t.Fatalf("AppendTimeline(kind bogus) = nil; want a CHECK error")
	}
	err = s.Update(ctx, func(tx *Tx) error {
		return tx.AppendTimeline(ctx, TimelineEntry{CaseID: 4242, Kind: KindNote, Summary: "x"})
	})
	if err == nil {
		t.Fatalf("AppendTimeline(unknown case) = nil; want a foreign key error")
	}
	tl, err := s.Timeline(ctx, a.ID)
	if err != nil || len(tl) != 1 || tl[0].Kind != KindCallback || string(tl[0].Detail) != `{"refundId":"R"}` {
		t.Fatalf("Timeline = %+v, %v", tl, err)
	}
}

func TestDeadLetters(t *testing.T) { eachBackend(t, testDeadLetters) }

func testDeadLetters(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	in := DeadLetter{MsgID: "m1", Subject: "refunds.callback.1688", Headers: map[string][]string{"Nats-Msg-Id": {"m1"}},
		Payload: []byte{0, 1, 2, 0xff}, Reason: "max_deliveries", Error: "platform 5000", Deliveries: 12}
	insert := func(d DeadLetter) (int64, bool) {
		t.Helper()
		var id int64
		var ins bool
		if err := s.Update(ctx, func(tx *Tx) error {
			var err error
			id, ins, err = tx.InsertDeadLetter(ctx, d)
			return err
		}); err != nil {
			t.Fatalf("InsertDeadLetter: %v", err)
		}
		return id, ins
	}
	id, ins := insert(in)
	if !ins {
		t.Fatalf("first insert not inserted")
	}
	if id2, ins := insert(in); ins || id2 != id {
		t.Fatalf("repeated insert = %d, %v; want %d, false", id2, ins, id)
	}
	got, err := s.DeadLetter(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.MsgID != in.MsgID || got.Subject != in.Subject || !bytes.Equal(got.Payload, in.Payload) ||
		got.Headers["Nats-Msg-Id"][0] != "m1" || got.Reason != in.Reason || got.Error != in.Error ||
		got.Deliveries != 12 || got.CreatedAt.IsZero() || !got.RetriedAt.IsZero() {
		t.Fatalf("DeadLetter = %+v; want %+v", got, in)
	}
	retry := func() error {
		return s.Update(ctx, func(tx *Tx) error { return tx.MarkDeadLetterRetried(ctx, id) })
	}
	if err := retry(); err != nil {
		t.Fatalf("MarkDeadLetterRetried: %v", err)
	}
	if err := retry(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second MarkDeadLetterRetried err = %v; want ErrNotFound", err)
	}
	// Dead again after the retry: a new row.
	id3, ins := insert(in)
	if !ins || id3 == id {
		t.Fatalf("insert after retry = %d, %v; want a new row", id3, ins)
	}
	all, err := s.DeadLetters(ctx, DeadLetterFilter{})
	if err != nil || len(all) != 2 {
		t.Fatalf("DeadLetters = %d, %v; want 2", len(all), err)
	}
	pending, err := s.DeadLetters(ctx, DeadLetterFilter{PendingOnly: true})
	if err != nil || len(pending) != 1 || pending[0].ID != id3 {
		t.Fatalf("DeadLetters(pending) = %+v, %v; want [%d]", pending, err, id3)
	}
	if _, err := s.DeadLetter(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DeadLetter(999) err = %v; want ErrNotFound", err)
	}
}

// TestOpenErrors: SQLite only (file paths); TestPostgresErrorsHideThePassword
// covers bad URLs.
func TestOpenErrors(t *testing.T) {
	if _, err := Open(context.Background(), "", nil); err == nil {
		t.Fatalf("Open(\"\") = nil; want an error")
	}
	// A parent that is a regular file cannot be created as a directory.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), filepath.Join(file, "db"), nil); err == nil {
		t.Fatalf("Open(under a file) = nil; want an error")
	}
	// Odd characters in the path are a file name, not DSN parameters.
	odd := filepath.Join(t.TempDir(), "a?b#c", "x.db")
	s := openTest(t, odd)
	if _, err := s.SchemaVersion(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(odd); err != nil {
		t.Fatalf("database not at %q: %v", odd, err)
	}
}

func TestIntentSurvivesReopenAndCheckpoint(t *testing.T) {
	eachBackend(t, testIntentSurvivesReopenAndCheckpoint)
}

func testIntentSurvivesReopenAndCheckpoint(t *testing.T, be backend) {
	ctx := context.Background()
	path := be.Fresh(t)
	s := openTest(t, path)
	c := newCase(t, s, NewCase{Platform: "1688", OrderID: "o1", State: "submitting"})
	if err := s.Update(ctx, func(tx *Tx) error {
		_, _, err := tx.BeginStep(ctx, c.ID, "submit", "case:1:submit:v1", `{"applyPayment":500}`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	_ = s.Close() // the worker dies between the call and the result
	s2 := openTest(t, path)
	it, err := s2.OpenIntent(ctx, c.ID)
	if err != nil || it.IdempotencyKey != "case:1:submit:v1" || it.Status != StepIntent || it.Request != `{"applyPayment":500}` {
		t.Fatalf("OpenIntent after reopen = %+v, %v; want the submit intent", it, err)
	}
}

// TestUpdateSurvivesCallerCancellation: a caller's context cancelled while
// its update runs neither loses the update nor fails the batch; a context
// cancelled before the update runs applies nothing.
func TestUpdateSurvivesCallerCancellation(t *testing.T) {
	eachBackend(t, testUpdateSurvivesCallerCancellation)
}

func testUpdateSurvivesCallerCancellation(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx, cancel := context.WithCancel(context.Background())
	var id int64
	err := s.Update(ctx, func(tx *Tx) error {
		cancel() // e.g. the worker's shutdown deadline fires after the platform answered
		c, err := tx.CreateCase(ctx, NewCase{Platform: "1688", OrderID: "42", State: "waiting_seller"})
		id = c.ID
		return err
	})
	if err != nil {
		t.Fatalf("Update with a context cancelled mid-way: %v; want the result recorded", err)
	}
	if _, err := s.GetCase(context.Background(), id); err != nil {
		t.Fatalf("case written under a cancelled context is missing: %v", err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.CreateCase(ctx, NewCase{Platform: "1688", OrderID: "43", State: "requested"})
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with an already cancelled context = %v; want context.Canceled", err)
	}
	if _, err := s.OpenCase(context.Background(), "1688", "43", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("an update refused for its cancelled context still wrote: %v", err)
	}
}

// TestOneOpenCasePerTaobaoSubOrder: a second open case for a sub-order is
// refused even when it names another order id (sub-order ids are unique on
// the platform); once the first case is finished a new one may open.
func TestOneOpenCasePerTaobaoSubOrder(t *testing.T) { eachBackend(t, testOneOpenCasePerTaobaoSubOrder) }

func testOneOpenCasePerTaobaoSubOrder(t *testing.T, be backend) {
	s := openTest(t, be.Fresh(t))
	ctx := context.Background()
	first := newCase(t, s, NewCase{Platform: "taobao", OrderID: "100", SubOrderID: "555", State: "requested"})
	err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.CreateCase(ctx, NewCase{Platform: "taobao", OrderID: "999", SubOrderID: "555", State: "requested"})
		return err
	})
	if !errors.Is(err, ErrOpenCaseExists) {
		t.Fatalf("second open case for sub-order 555 under another order: %v; want ErrOpenCaseExists", err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		c, err := tx.GetCase(ctx, first.ID)
		if err != nil {
			return err
		}
		c.State = "succeeded"
		_, err = tx.UpdateCase(ctx, c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	newCase(t, s, NewCase{Platform: "taobao", OrderID: "100", SubOrderID: "555", State: "requested"})
}

// Statements stay prepared (the driver's cache) across batches: results are
// the same as the first time, and a statement that fails (here: bad SQL)
// fails every time without poisoning the cache or the batch neighbours.
func TestStatementCacheReuse(t *testing.T) { eachBackend(t, testStatementCacheReuse) }

func testStatementCacheReuse(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	states := []string{"rendering", "submitting", "waiting_seller"}
	for round := range 6 {
		err := s.Update(ctx, func(tx *Tx) error {
			c.State = states[round%len(states)]
			n, err := tx.UpdateCase(ctx, c)
			if err != nil {
				return err
			}
			c = n
			return tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindDecision, Summary: fmt.Sprintf("round %d", round)})
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		bad := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.tx.ExecContext(ctx, `UPDATE no_such_table SET x = 1`)
			return err
		})
		if bad == nil {
			t.Fatalf("round %d: bad SQL succeeded", round)
		}
	}
	got, err := s.GetCase(ctx, c.ID)
	if err != nil || got.State != states[5%3] || got.Version != 7 {
		t.Fatalf("case = %+v, %v; want state %s at version 7", got, err, states[5%3])
	}
	tl, err := s.Timeline(ctx, c.ID)
	if err != nil || len(tl) != 6 || tl[5].Summary != "round 5" {
		t.Fatalf("timeline = %+v, %v", tl, err)
	}
}

// Entries appended in one call keep their order, including past the rows
// one INSERT carries.
func TestAppendTimelineManyInOrder(t *testing.T) { eachBackend(t, testAppendTimelineManyInOrder) }

func testAppendTimelineManyInOrder(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	a := newCase(t, s, NewCase{Platform: "1688", OrderID: "o1", State: "requested"})
	b := newCase(t, s, NewCase{Platform: "1688", OrderID: "o2", State: "requested"})
	var entries []TimelineEntry
	for i := range 3*maxTimelineBatch + 1 {
		id := a.ID
		if i%2 == 1 {
			id = b.ID
		}
		entries = append(entries, TimelineEntry{CaseID: id, Kind: KindDecision, Summary: fmt.Sprintf("e%02d", i),
			Detail: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.AppendTimeline(ctx, entries...) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.AppendTimeline(ctx) }); err != nil {
		t.Fatalf("no entries: %v", err)
	}
	for i, c := range []Case{a, b} {
		tl, err := s.Timeline(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for j := i; j < len(entries); j += 2 {
			want = append(want, fmt.Sprintf("e%02d", j))
		}
		var got []string
		for _, e := range tl {
			got = append(got, e.Summary)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("case %d timeline %v; want %v", c.ID, got, want)
		}
	}
	// One bad entry rolls back the whole call.
	err := s.Update(ctx, func(tx *Tx) error {
		return tx.AppendTimeline(ctx, TimelineEntry{CaseID: a.ID, Kind: KindDecision, Summary: "ok"},
			TimelineEntry{CaseID: a.ID, Kind: KindDecision, Summary: "bad", Detail: json.RawMessage(`{`)})
	})
	if err == nil {
		t.Fatal("invalid detail accepted")
	}
	if tl, _ := s.Timeline(ctx, a.ID); tl[len(tl)-1].Summary == "ok" {
		t.Fatal("a failed AppendTimeline left rows behind")
	}
}

// A text of several statements is never cached (a prepared statement would
// run only the first): run twice, both statements take effect both times.
// SQLite only: it is about mattn/go-sqlite3's statement cache (PostgreSQL
// refuses several statements in one text that has arguments).
func TestStatementCacheSkipsMultiStatementText(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "db"))
	a := newCase(t, s, NewCase{Platform: "1688", OrderID: "o1", State: "requested"})
	const two = `INSERT INTO timeline (case_id, at, kind, summary, detail) VALUES (?, 1, 'decision', 'first', '{}');
		INSERT INTO timeline (case_id, at, kind, summary, detail) VALUES (?, 1, 'decision', 'second', '{}');`
	for range 3 {
		if err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.tx.ExecContext(ctx, two, a.ID, a.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	tl, err := s.Timeline(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(tl) != 6 || tl[5].Summary != "second" {
		t.Fatalf("timeline has %d rows (last %+v); want 6 ending with second", len(tl), tl[len(tl)-1])
	}
}

// Migration 7 rebuilds step_attempts and timeline (new CHECKs): every row,
// id and index survives, and the CHECKs still refuse what they refused.
// SQLite only: on PostgreSQL migration 7 rebuilds nothing.
func TestUpgradeRebuildsStepsAndTimeline(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	old, err := open(ctx, path, nil, 6)
	if err != nil {
		t.Fatalf("open v6: %v", err)
	}
	for _, q := range []string{
		`INSERT INTO cases (id, platform, order_id, state, created_at, updated_at) VALUES (1, '1688', 'o1', 'submitting', 1, 1)`,
		`INSERT INTO step_attempts (id, case_id, step, idempotency_key, status, request, outcome, request_id, error_code,
			error_message, begins, started_at, finished_at, last_attempt_at)
			VALUES (7, 1, 'submit', 'k1', 'intent', '{"a":1}', '', 'rq', 'E1', 'msg', 3, 4000, NULL, 4500),
			(9, 1, 'render', NULL, 'done', '', '{"b":2}', '', '', '', 1, 3000, 3100, NULL)`,
		`INSERT INTO timeline (id, case_id, at, kind, summary, detail) VALUES (5, 1, 10, 'note', 'n', '{}'), (6, 1, 11, 'step', 's', '{"x":1}')`,
	} {
		if _, err := old.w.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s := openTest(t, path)
	intent, err := s.OpenIntent(ctx, 1)
	if err != nil || intent.ID != 7 || intent.IdempotencyKey != "k1" || intent.Begins != 3 || intent.Request != `{"a":1}` ||
		intent.RequestID != "rq" || intent.ErrorCode != "E1" || intent.LastAttemptAt.UnixMilli() != 4500 {
		t.Fatalf("intent after upgrade = %+v, %v", intent, err)
	}
	steps, err := s.Steps(ctx, 1)
	if err != nil || len(steps) != 2 || steps[1].ID != 9 || steps[1].Outcome != `{"b":2}` || steps[1].FinishedAt.UnixMilli() != 3100 {
		t.Fatalf("steps after upgrade = %+v, %v", steps, err)
	}
	tl, err := s.Timeline(ctx, 1)
	if err != nil || len(tl) != 2 || tl[0].ID != 5 || tl[1].Kind != KindStep || string(tl[1].Detail) != `{"x":1}` {
		t.Fatalf("timeline after upgrade = %+v, %v", tl, err)
	}
	var indexes []string
	if err := s.r.SelectContext(ctx, &indexes, `SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name IN ('step_attempts', 'timeline') AND sql IS NOT NULL ORDER BY name`); err != nil {
		t.Fatal(err)
	}
	if want := []string{"step_attempts_case", "step_attempts_error_times", "step_attempts_intent", "timeline_case"}; !slices.Equal(indexes, want) { // step_attempts_error_times: migration 20
		t.Fatalf("indexes = %v; want %v", indexes, want)
	}
	for _, q := range []string{
		`INSERT INTO timeline (case_id, at, kind, summary) VALUES (1, 1, 'gossip', 'x')`,
		`UPDATE step_attempts SET status = 'maybe' WHERE id = 7`,
		`INSERT INTO timeline (case_id, at, kind, summary) VALUES (99, 1, 'note', 'no such case')`,
	} {
		if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.tx.ExecContext(ctx, q); return err }); err == nil {
			t.Errorf("accepted after upgrade: %s", q)
		}
	}
}

// TestAttemptTimes: an intent records when an attempt under its key last
// began (BeginStep) or ended without a result (MarkAttempt), keeping its
// first start; finished steps are left alone. Migration 5 dates the intents
// open at the upgrade from the upgrade (an older build may have re-sent them
// without a record); finished older rows read their start.
func TestAttemptTimes(t *testing.T) { eachBackend(t, testAttemptTimes) }

func testAttemptTimes(t *testing.T, be backend) {
	ctx := context.Background()
	path := be.Fresh(t)
	old, err := open(ctx, path, nil, 4)
	if err != nil {
		t.Fatalf("open v4: %v", err)
	}
	// Case 1: the first row (no explicit id, which would leave PostgreSQL's
	// identity behind it).
	if _, err := old.w.Exec(`INSERT INTO cases (platform, order_id, state, created_at, updated_at)
		VALUES ('1688', 'o-old', 'submitting', 1, 1)`); err != nil {
		t.Fatal(err)
	}
	if _, err := old.w.Exec(`INSERT INTO step_attempts (case_id, step, idempotency_key, status, started_at, finished_at)
		VALUES (1, 'submit', 'old-done', 'done', 4000, 4500), (1, 'submit', 'old-open', 'intent', 5000, NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	upgraded := time.Now()
	s := openTest(t, path)
	a, err := s.OpenIntent(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !a.StartedAt.Equal(time.UnixMilli(5000).UTC()) || a.LastAttemptAt.Before(upgraded.Add(-2*time.Second)) || a.LastAttemptAt.After(time.Now().Add(time.Second)) {
		t.Fatalf("intent open at the upgrade: started %v last attempt %v; want started 5000 ms, last attempt at the upgrade (%v)", a.StartedAt, a.LastAttemptAt, upgraded)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		d, err := tx.StepByKey(ctx, "old-done")
		if err == nil && !d.LastAttemptAt.Equal(time.UnixMilli(4000).UTC()) {
			t.Errorf("finished pre-migration step: last attempt %v; want its start", d.LastAttemptAt)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	t0 := time.Date(2026, 5, 20, 8, 0, 0, 0, time.UTC)
	clock := t0
	s.now = func() time.Time { return clock }
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "submitting"})
	step := func(fn func(tx *Tx) error) StepAttempt {
		t.Helper()
		var a StepAttempt
		if err := s.Update(ctx, func(tx *Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			var err error
			a, err = tx.StepByKey(ctx, "case:1:submit")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return a
	}
	begin := func(tx *Tx) error { _, _, err := tx.BeginStep(ctx, c.ID, "submit", "case:1:submit", `{}`); return err }
	mark := func(tx *Tx) error { return tx.MarkAttempt(ctx, "case:1:submit", "http_503", "http status 503", false) }
	if a := step(begin); !a.StartedAt.Equal(t0) || !a.LastAttemptAt.Equal(t0) {
		t.Fatalf("first begin: started %v last %v; want both %v", a.StartedAt, a.LastAttemptAt, t0)
	}
	clock = t0.Add(10 * time.Second) // the call timed out
	if a := step(mark); !a.StartedAt.Equal(t0) || !a.LastAttemptAt.Equal(clock) || a.Status != StepIntent ||
		a.ErrorCode != "http_503" || a.ErrorMessage != "http status 503" {
		t.Fatalf("after MarkAttempt: %+v; want an intent started %v, last %v, its error http_503 kept", a, t0, clock)
	}
	clock = t0.Add(90 * time.Second) // resumed
	if a := step(begin); !a.StartedAt.Equal(t0) || !a.LastAttemptAt.Equal(clock) || a.Begins != 2 || a.ErrorCode != "" || a.ErrorMessage != "" {
		t.Fatalf("resumed: %+v; want started %v, last %v, begins 2, the first attempt's error cleared", a, t0, clock)
	}
	// The resend is refused, then another one too: counted, and kept
	// across the begin in between.
	refused := func(tx *Tx) error { return tx.MarkAttempt(ctx, "case:1:submit", "4091", "illegal state", true) }
	if a := step(refused); a.Refusals != 1 || a.ErrorCode != "4091" {
		t.Fatalf("a refused resend: %+v; want 1 refusal, its error 4091", a)
	}
	if a := step(begin); a.Refusals != 1 || a.Begins != 3 {
		t.Fatalf("begun again: %+v; want begins 3, the refusal still counted", a)
	}
	if a := step(refused); a.Refusals != 2 {
		t.Fatalf("refused again: %+v; want 2 refusals", a)
	}
	// An attempt without an answer ends the run of refusals.
	if a := step(mark); a.Refusals != 0 || a.ErrorCode != "http_503" {
		t.Fatalf("then a 503: %+v; want the refusals in a row back to 0", a)
	}
	if a := step(refused); a.Refusals != 1 {
		t.Fatalf("refused after the 503: %+v; want 1 refusal", a)
	}
	done := t0.Add(91 * time.Second)
	clock = done
	step(func(tx *Tx) error { return tx.FinishStep(ctx, "case:1:submit", StepResult{Status: StepDone}) })
	clock = t0.Add(2 * time.Hour)
	if a := step(mark); !a.LastAttemptAt.Equal(t0.Add(90*time.Second)) || a.ErrorCode != "" {
		t.Errorf("MarkAttempt on a finished step: last %v, error %q; want it left as the result set it", a.LastAttemptAt, a.ErrorCode)
	}
	if a := step(begin); !a.LastAttemptAt.Equal(t0.Add(90*time.Second)) || a.Status != StepDone {
		t.Errorf("BeginStep on a finished step: %+v; want it left as it was", a)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.MarkAttempt(ctx, "no-such-key", "", "", false) }); !errors.Is(err, ErrNotFound) {
		t.Errorf("MarkAttempt of an unknown key: %v; want ErrNotFound", err)
	}
}

// TestTimelineTail: the newest n entries, oldest first; all when fewer.
func TestTimelineTail(t *testing.T) { eachBackend(t, testTimelineTail) }

func testTimelineTail(t *testing.T, be backend) {
	ctx := context.Background()
	s := openTest(t, be.Fresh(t))
	c := newCase(t, s, NewCase{Platform: "1688", OrderID: "o1", State: "requested"})
	var entries []TimelineEntry
	for i := range 10 {
		entries = append(entries, TimelineEntry{CaseID: c.ID, Kind: KindNote, Summary: fmt.Sprintf("e%d", i)})
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.AppendTimeline(ctx, entries...) }); err != nil {
		t.Fatal(err)
	}
	summaries := func(n int) string {
		t.Helper()
		tl, err := s.TimelineTail(ctx, c.ID, n)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range tl {
			out = append(out, e.Summary)
		}
		return strings.Join(out, ",")
	}
	if got := summaries(3); got != "e7,e8,e9" {
		t.Errorf("tail 3 = %s; want e7,e8,e9", got)
	}
	full, _ := s.Timeline(ctx, c.ID)
	if got := summaries(100); len(full) < 10 || !strings.HasSuffix(got, "e8,e9") || strings.Count(got, ",") != len(full)-1 {
		t.Errorf("tail 100 = %s; want the whole timeline (%d entries)", got, len(full))
	}
	if got := summaries(0); got != "" {
		t.Errorf("tail 0 = %q; want nothing", got)
	}
}

// TestUpgradeMarksSecond1688CasesOfAnOrder: before migration 8 a 1688
// request with a sub-order id and a corrected one without it opened two
// cases for one order. The upgrade merges nothing: the later case is marked
// as the earlier one's duplicate (and reported), lookups by order find the
// first, and no further open case can be created for the order.
func TestUpgradeMarksSecond1688CasesOfAnOrder(t *testing.T) {
	eachBackend(t, testUpgradeMarksSecond1688CasesOfAnOrder)
}

func testUpgradeMarksSecond1688CasesOfAnOrder(t *testing.T, be backend) {
	ctx := context.Background()
	path := be.Fresh(t)
	old, err := open(ctx, path, nil, 7)
	if err != nil {
		t.Fatalf("open v7: %v", err)
	}
	for _, row := range []string{
		`('1688', '900', '42', 'waiting_seller')`, // opened with a sub-order id
		`('1688', '900', '', 'submitting')`,       // the corrected request: a second create
		`('1688', '901', '', 'waiting_seller')`,   // another order
		`('1688', '900', '', 'closed')`,           // finished: no conflict
	} {
		if _, err := old.w.Exec(`INSERT INTO cases (platform, order_id, sub_order_id, state, created_at, updated_at) VALUES ` + row[:len(row)-1] + `, 1, 1)`); err != nil {
			t.Fatalf("insert v7 row %s: %v", row, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path)
	dups, err := s.DuplicateOpenCases(ctx)
	if err != nil || len(dups) != 1 || dups[0].ID != 2 || dups[0].DuplicateOf != 1 || dups[0].State != "submitting" {
		t.Fatalf("duplicate open cases after the upgrade: %+v, %v; want case 2, duplicate of 1, untouched", dups, err)
	}
	c, err := s.OpenCase(ctx, Platform1688, "900", "")
	if err != nil || c.ID != 1 {
		t.Fatalf("OpenCase(1688 order 900) = %d, %v; want the first case, 1", c.ID, err)
	}
	if c, err := s.OpenCase(ctx, Platform1688, "901", "7"); err != nil || c.ID != 3 {
		t.Fatalf("OpenCase(1688 order 901, any sub-order) = %d, %v; want 3", c.ID, err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.CreateCase(ctx, NewCase{Platform: Platform1688, OrderID: "900", State: "requested"})
		return err
	})
	if !errors.Is(err, ErrOpenCaseExists) {
		t.Fatalf("a third open case for 1688 order 900: %v; want ErrOpenCaseExists", err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		_, err := tx.CreateCase(ctx, NewCase{Platform: Platform1688, OrderID: "902", SubOrderID: "5", State: "requested"})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "a 1688 case has no sub-order") {
		t.Fatalf("a 1688 case with a sub-order id: %v; want it refused", err)
	}
}

// retryConflicts runs fn until it ends in anything but a version or
// open-case conflict (at most 1000 times).
func retryConflicts(fn func() error) error {
	var err error
	for range 1000 {
		if err = fn(); !errors.Is(err, ErrVersionConflict) && !errors.Is(err, ErrOpenCaseExists) {
			return err
		}
	}
	return err
}

// TestInboxAppliesOnceUnderConcurrency: many updates on two stores (two
// processes) apply the same message at once, each recording it in the
// inbox and writing its effect; exactly one keeps its effect. On
// PostgreSQL the transactions run side by side: the losers wait on the
// winner's inbox row and then see it taken.
func TestInboxAppliesOnceUnderConcurrency(t *testing.T) {
	eachBackend(t, testInboxAppliesOnceUnderConcurrency)
}

func testInboxAppliesOnceUnderConcurrency(t *testing.T, be backend) {
	ctx := context.Background()
	target := be.Fresh(t)
	stores := []*Store{openTest(t, target), openTest(t, target)}
	c := newCase(t, stores[0], NewCase{Platform: "1688", OrderID: "o1", State: "waiting_seller"})
	errDuplicate := errors.New("duplicate")
	var wg sync.WaitGroup
	var applied, duplicates atomic.Int64
	for i := range 16 {
		s := stores[i%2]
		wg.Go(func() {
			err := s.Update(ctx, func(tx *Tx) error {
				if err := tx.AppendTimeline(ctx, TimelineEntry{CaseID: c.ID, Kind: KindCallback, Summary: "applied"}); err != nil {
					return err
				}
				fresh, err := tx.InboxRecord(ctx, InboxEntry{MsgID: "the-message"})
				if err == nil && !fresh {
					return errDuplicate // roll the effect back
				}
				return err
			})
			switch {
			case err == nil:
				applied.Add(1)
			case errors.Is(err, errDuplicate):
				duplicates.Add(1)
			default:
				t.Errorf("update: %v", err)
			}
		})
	}
	wg.Wait()
	if applied.Load() != 1 || duplicates.Load() != 15 {
		t.Fatalf("applied %d, duplicates %d; want 1 and 15", applied.Load(), duplicates.Load())
	}
	tl, err := stores[1].Timeline(ctx, c.ID)
	if err != nil || len(tl) != 1 {
		t.Fatalf("timeline = %d entries, %v; want the one effect", len(tl), err)
	}
}
