package casestore_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest/history"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// sqliteWithHistory returns a SQLite store's path holding n cases'
// history, written through the store's API and closed.
func sqliteWithHistory(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "refunds.db")
	st, err := casestore.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	history.Write(t, st, n)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// rawCounts counts every table but schema_migrations with driver and dsn,
// independently of MigrateStore; a database with no tables yields none.
func rawCounts(t *testing.T, driver, dsn string) map[string]int64 {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'`
	if driver == "pgx" {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'`
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	out := map[string]int64{}
	for _, n := range names {
		var c int64
		if err := db.QueryRow(`SELECT COUNT(*) FROM ` + n).Scan(&c); err != nil {
			t.Fatal(err)
		}
		out[n] = c
	}
	return out
}

// pgTables is how many tables the database at dbURL has.
func pgTables(t *testing.T, dbURL string) int {
	t.Helper()
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMigrateStore: a SQLite store with a history moves to an empty
// PostgreSQL database with every table's count equal, rows equal as the
// store reads them (a case with its steps and timeline, a dead letter's
// bytes, an account that still logs in), and new rows numbered after the
// copied ones. A dry run before writes nothing; a second run into the now
// full target is refused and changes nothing.
func TestMigrateStore(t *testing.T) {
	ctx := context.Background()
	src := sqliteWithHistory(t, 240)
	dst := pgtest.NewDatabase(t)
	want := rawCounts(t, "sqlite3", src)

	dry, err := casestore.MigrateStore(ctx, src, dst, casestore.MigrateOptions{DryRun: true})
	if err != nil {
		t.Fatalf("MigrateStore dry run: %v", err)
	}
	if n := pgTables(t, dst); n != 0 {
		t.Fatalf("after a dry run the target has %d tables; want 0 (nothing written)", n)
	}
	if len(dry.Tables) != len(want) {
		t.Fatalf("dry run reports %d tables; the source has %d", len(dry.Tables), len(want))
	}
	for _, tb := range dry.Tables {
		if tb.Source != want[tb.Table] || tb.Target != 0 {
			t.Errorf("dry run %s: source %d target %d; want %d and 0", tb.Table, tb.Source, tb.Target, want[tb.Table])
		}
	}

	rep, err := casestore.MigrateStore(ctx, src, dst, casestore.MigrateOptions{})
	if err != nil {
		t.Fatalf("MigrateStore: %v", err)
	}
	if !rep.Match() || rep.SchemaVersion != casestore.BuildSchemaVersion() {
		t.Fatalf("report %+v: want every count matching at schema %d", rep, casestore.BuildSchemaVersion())
	}
	got := rawCounts(t, "pgx", dst)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("row counts: PostgreSQL %v; SQLite %v", got, want)
	}
	for table, n := range want {
		if n == 0 {
			t.Errorf("table %s: the history wrote no row; every table should be exercised", table)
		}
	}

	from, err := casestore.OpenReadOnly(ctx, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	to, err := casestore.OpenReadOnly(ctx, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()
	refused := 0 // intents whose resends were refused: their count travels too
	for _, id := range []int64{1, 3, 4, 5, 11, 120, 240} {
		c1, err1 := from.GetCase(ctx, id)
		c2, err2 := to.GetCase(ctx, id)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(c1, c2) {
			t.Errorf("case %d: SQLite %+v (%v); PostgreSQL %+v (%v)", id, c1, err1, c2, err2)
		}
		tl1, _ := from.Timeline(ctx, id)
		tl2, err := to.Timeline(ctx, id)
		if err != nil || len(tl1) == 0 || !reflect.DeepEqual(tl1, tl2) {
			t.Errorf("case %d timeline: SQLite %+v; PostgreSQL %+v (%v)", id, tl1, tl2, err)
		}
		s1, _ := from.Steps(ctx, id)
		s2, err := to.Steps(ctx, id)
		if err != nil || !reflect.DeepEqual(s1, s2) {
			t.Errorf("case %d steps: SQLite %+v; PostgreSQL %+v (%v)", id, s1, s2, err)
		}
		for _, s := range s2 {
			if s.Refusals > 0 {
				refused++
			}
		}
	}
	if refused == 0 {
		t.Error("no compared step has refused resends; the history should give some")
	}
	d1, err1 := from.DeadLetter(ctx, 1)
	d2, err2 := to.DeadLetter(ctx, 1)
	if err1 != nil || err2 != nil || len(d2.Payload) != 256 || !reflect.DeepEqual(d1, d2) {
		t.Errorf("dead letter 1: SQLite %+v (%v); PostgreSQL %+v (%v)", d1, err1, d2, err2)
	}
	if _, err := casestore.NewPasswords().Login(ctx, to, history.Account, history.Password); err != nil {
		t.Errorf("login as %s on the copy: %v", history.Account, err)
	}

	// A worker of this build opens the copy and writes: ids go on after
	// the copied ones.
	w, err := casestore.Open(ctx, dst, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var next casestore.Case
	if err := w.Update(ctx, func(tx *casestore.Tx) error {
		var err error
		next, err = tx.CreateCase(ctx, casestore.NewCase{Platform: "1688", OrderID: "after-migration", State: "requested"})
		if err != nil {
			return err
		}
		return tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: next.ID, Kind: casestore.KindNote, Summary: "after"})
	}); err != nil {
		t.Fatalf("create a case after the migration: %v", err)
	}
	if next.ID != want["cases"]+1 {
		t.Errorf("new case id %d; want %d, after the %d copied", next.ID, want["cases"]+1, want["cases"])
	}
	for _, tb := range rep.Tables {
		if tb.Table == "cases" && tb.NextID != want["cases"]+1 {
			t.Errorf("report: cases next id %d; want %d", tb.NextID, want["cases"]+1)
		}
	}

	before := rawCounts(t, "pgx", dst)
	_, err = casestore.MigrateStore(ctx, src, dst, casestore.MigrateOptions{})
	if !errors.Is(err, casestore.ErrMigrateRefused) || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("second MigrateStore into the full target: %v; want refused, not empty", err)
	}
	if after := rawCounts(t, "pgx", dst); !reflect.DeepEqual(after, before) {
		t.Errorf("a refused migration changed the target: %v; was %v", after, before)
	}
}

// TestMigrateStoreRefusesLeases: a case whose lease has not expired means
// a worker is running; nothing is written, and the message says how many,
// until when and to stop the workers. Once the lease has expired the store
// migrates.
func TestMigrateStoreRefusesLeases(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "refunds.db")
	st, err := casestore.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var leased casestore.Case
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		leased, err = tx.CreateCase(ctx, casestore.NewCase{Platform: "1688", OrderID: "77", State: "requested", LeaseOwner: "host-a/123", LeaseTTL: time.Hour})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	dst := pgtest.NewDatabase(t)

	_, err = casestore.MigrateStore(ctx, path, dst, casestore.MigrateOptions{})
	until := leased.LeaseUntil.Format(time.RFC3339)
	if !errors.Is(err, casestore.ErrMigrateRefused) {
		t.Fatalf("MigrateStore with a lease held: %v; want refused", err)
	}
	for _, want := range []string{"1 case", until, "host-a/123", "stop the workers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q; want it to say %q", err, want)
		}
	}
	if n := pgTables(t, dst); n != 0 {
		t.Errorf("a refused migration left %d tables in the target; want none", n)
	}

	later := func() time.Time { return leased.LeaseUntil.Add(time.Second) }
	rep, err := casestore.MigrateStore(ctx, path, dst, casestore.MigrateOptions{Now: later})
	if err != nil || !rep.Match() {
		t.Fatalf("MigrateStore once the lease expired: %+v, %v; want it copied", rep, err)
	}
}

// TestMigrateStoreRefusesOtherSchemas: a source at an older schema version
// (run the worker first) or with a table the target lacks is refused
// before anything is written.
func TestMigrateStoreRefusesOtherSchemas(t *testing.T) {
	ctx := context.Background()
	old := filepath.Join(t.TempDir(), "old.db")
	st, err := casestore.OpenAtVersion(ctx, old, nil, casestore.BuildSchemaVersion()-1)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	dst := pgtest.NewDatabase(t)
	_, err = casestore.MigrateStore(ctx, old, dst, casestore.MigrateOptions{})
	if !errors.Is(err, casestore.ErrMigrateRefused) || !strings.Contains(err.Error(), "run a worker of this version") {
		t.Errorf("MigrateStore from an older schema: %v; want refused, saying to run the worker first", err)
	}
	if n := pgTables(t, dst); n != 0 {
		t.Errorf("a refused migration left %d tables in the target; want none", n)
	}

	extra := sqliteWithHistory(t, 1)
	db, err := sql.Open("sqlite3", extra)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, dryRun := range []bool{true, false} {
		_, err = casestore.MigrateStore(ctx, extra, dst, casestore.MigrateOptions{DryRun: dryRun})
		if !errors.Is(err, casestore.ErrMigrateRefused) || !strings.Contains(err.Error(), "table notes only in the source") {
			t.Errorf("MigrateStore (dry run %v) from a store with an extra table: %v; want refused naming it", dryRun, err)
		}
	}
	if n := pgTables(t, dst); n != 0 {
		t.Errorf("a refused migration left %d tables in the target; want none", n)
	}
}

// BenchmarkMigrateStore copies a store of 5,000 cases' history (about
// 40,000 rows) into a fresh PostgreSQL database per iteration, and reports
// rows per second, the schema's creation included.
func BenchmarkMigrateStore(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "refunds.db")
	st, err := casestore.Open(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	history.Write(b, st, 5000)
	st.Close()
	var rows int64
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		dst := pgtest.NewDatabase(b)
		b.StartTimer()
		rep, err := casestore.MigrateStore(ctx, path, dst, casestore.MigrateOptions{})
		if err != nil || !rep.Match() {
			b.Fatalf("MigrateStore: %+v, %v", rep, err)
		}
		rows += rep.Rows
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
