package casestore

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"log/slog"

	"github.com/refundhub/refundhub"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// columns returns "table.column" for every column of the store's tables.
func columns(t *testing.T, s *Store) []string {
	t.Helper()
	q := `SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'`
	if s.r.pg {
		q = `SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = current_schema()`
	}
	var out []string
	if err := s.r.Select(&out, q); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// indexes returns the names of the indexes a migration created (not those
// the engine makes for a PRIMARY KEY or UNIQUE column).
func indexes(t *testing.T, s *Store) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL`
	if s.r.pg {
		q = `SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = current_schema() AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)`
	}
	var out []string
	if err := s.r.Select(&out, q); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestSchemasEndAlike: schema.sql and schema_postgres.sql have the same
// numbered migrations and end in the same tables, columns and named
// indexes, so a store's schema version means the same on both engines.
func TestSchemasEndAlike(t *testing.T) {
	lite, pg := parseMigrations(refundhub.Schema), parseMigrations(refundhub.SchemaPostgres)
	if err := checkMigrations(pg); err != nil {
		t.Fatalf("schema_postgres.sql: %v", err)
	}
	if len(lite) != len(pg) {
		t.Fatalf("schema.sql has %d migrations, schema_postgres.sql %d; want the same", len(lite), len(pg))
	}
	for i := range lite {
		if lite[i].name != pg[i].name {
			t.Errorf("migration %d: %q on SQLite, %q on PostgreSQL; want one name", i+1, lite[i].name, pg[i].name)
		}
	}
	var cols, idx [2][]string
	for i, be := range casestoretest.Backends() {
		s := openTest(t, be.Fresh(t))
		cols[i], idx[i] = columns(t, s), indexes(t, s)
	}
	if !slices.Equal(cols[0], cols[1]) {
		t.Errorf("columns differ:\nsqlite only:   %v\npostgres only: %v", missingFrom(cols[0], cols[1]), missingFrom(cols[1], cols[0]))
	}
	if len(idx[0]) == 0 || !slices.Equal(idx[0], idx[1]) {
		t.Errorf("indexes differ:\nsqlite only:   %v\npostgres only: %v", missingFrom(idx[0], idx[1]), missingFrom(idx[1], idx[0]))
	}
}

// missingFrom is what a has and b lacks.
func missingFrom(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestPostgresMigratesOnceWhenWorkersStartTogether: several stores opened
// at once on a new database all succeed, and each migration ran once.
func TestPostgresMigratesOnceWhenWorkersStartTogether(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	const workers = 6
	stores := make([]*Store, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() { stores[i], errs[i] = Open(ctx, dbURL, nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d of %d started together: %v", i+1, workers, err)
		}
		t.Cleanup(func() { _ = stores[i].Close() })
	}
	var versions []int
	if err := stores[0].r.Select(&versions, `SELECT version FROM schema_migrations ORDER BY version`); err != nil {
		t.Fatal(err)
	}
	if len(versions) != BuildSchemaVersion() || versions[len(versions)-1] != BuildSchemaVersion() {
		t.Fatalf("schema_migrations = %v; want 1 to %d, once each", versions, BuildSchemaVersion())
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"data/refunds.db": "data/refunds.db",
		"postgres://refunds:s3cret@db.example:5432/refunds?sslmode=require": "postgres://refunds:xxxxx@db.example:5432/refunds?sslmode=require",
		"postgresql://refunds@db/refunds":                                   "postgresql://refunds@db/refunds",
		"postgres://db/refunds?password=s3cret&sslmode=disable":             "postgres://db/refunds?password=xxxxx&sslmode=disable",
		"postgres://u:s3cret@db:bad port/x":                                 "postgres://(unparsable URL)",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestPostgresErrorsHideThePassword: a URL whose password is wrong, or that
// names no database, fails to open with an error that names the store
// without its password.
func TestPostgresErrorsHideThePassword(t *testing.T) {
	ctx := context.Background()
	good := pgtest.NewDatabase(t)
	u, err := url.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	wrongPassword := *u
	wrongPassword.User = url.UserPassword(u.User.Username(), "not-"+password)
	noDatabase := *u
	noDatabase.Path = "/no_such_database"
	for _, target := range []string{wrongPassword.String(), noDatabase.String(), strings.Replace(good, "sslmode=disable", "sslmode=bogus", 1)} {
		for name, open := range map[string]func(context.Context, string, *testing.T) error{
			"Open": func(ctx context.Context, s string, t *testing.T) error {
				st, err := Open(ctx, s, nil)
				if err == nil {
					st.Close()
				}
				return err
			},
			"OpenReadOnly": func(ctx context.Context, s string, t *testing.T) error {
				st, err := OpenReadOnly(ctx, s, nil)
				if err == nil {
					st.Close()
				}
				return err
			},
		} {
			err := open(ctx, target, t)
			if err == nil {
				t.Errorf("%s(%s) = nil; want an error", name, Redact(target))
				continue
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("%s(%s) error shows the password: %v", name, Redact(target), err)
			}
		}
	}
}

// TestPostgresReadOnly is TestOpenOlderFileWithoutMigrating and
// TestOpenNewerFile on PostgreSQL, where "read-only" is the session's
// default_transaction_read_only rather than a file mode: an older schema is
// refused (naming the store without its password) and left as it was; an
// uninitialised database is version 0; a newer one opens, reads, refuses
// Update with ErrReadOnly and refuses a write that bypasses Update.
func TestPostgresReadOnly(t *testing.T) {
	ctx := context.Background()
	build := BuildSchemaVersion()

	empty := pgtest.NewDatabase(t)
	_, err := OpenReadOnly(ctx, empty, nil)
	var se *SchemaError
	if !errors.As(err, &se) || se.File != 0 {
		t.Fatalf("OpenReadOnly on an empty database: %v; want a SchemaError with version 0", err)
	}

	older := pgtest.NewDatabase(t)
	old, err := OpenAtVersion(ctx, older, nil, build-1)
	if err != nil {
		t.Fatal(err)
	}
	_ = old.Close()
	for name, open := range map[string]func(context.Context, string, *slog.Logger) (*Store, error){"OpenReadOnly": OpenReadOnly, "OpenExisting": OpenExisting} {
		_, err := open(ctx, older, nil)
		if !errors.As(err, &se) || se.File != build-1 || se.Build != build {
			t.Fatalf("%s on a v%d database: %v; want a SchemaError naming %d and %d", name, build-1, err, build-1, build)
		}
		if u, _ := url.Parse(older); strings.Contains(err.Error(), func() string { p, _ := u.User.Password(); return p }()) {
			t.Errorf("%s error shows the password: %v", name, err)
		}
	}
	again, err := OpenAtVersion(ctx, older, nil, build-1) // migrates nothing: already there
	if err != nil {
		t.Fatal(err)
	}
	if v, err := again.SchemaVersion(ctx); err != nil || v != build-1 {
		t.Fatalf("schema version after refused opens = %d, %v; want %d (nothing migrated)", v, err, build-1)
	}
	_ = again.Close()

	target := pgtest.NewDatabase(t)
	s := openTest(t, target)
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	newer := append(parseMigrations(refundhub.SchemaPostgres), migration{version: build + 1, name: "a newer build",
		sql: `ALTER TABLE cases ADD COLUMN from_the_future TEXT NOT NULL DEFAULT '';`})
	if err := s.migrate(ctx, newer, 0); err != nil {
		t.Fatalf("newer migration: %v", err)
	}
	ro, err := OpenReadOnly(ctx, target, nil)
	if err != nil {
		t.Fatalf("OpenReadOnly on a v%d database: %v", build+1, err)
	}
	defer func() {
		if err := ro.Close(); err != nil {
			t.Errorf("Close read-only: %v", err)
		}
	}()
	if got, err := ro.GetCase(ctx, c.ID); err != nil || got.OrderID != "o1" {
		t.Errorf("GetCase read-only = %+v, %v; want the case", got, err)
	}
	if err := ro.Update(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Update on a read-only store = %v; want ErrReadOnly", err)
	}
	if _, err := ro.w.ExecContext(ctx, `DELETE FROM cases`); err == nil {
		t.Errorf("a write bypassing Update succeeded on a read-only store")
	}
	if _, err := s.GetCase(ctx, c.ID); err != nil {
		t.Errorf("case gone after the read-only store's refused write: %v", err)
	}
	rw, err := OpenExisting(ctx, target, nil)
	if err != nil {
		t.Fatalf("OpenExisting on a v%d database: %v", build+1, err)
	}
	defer rw.Close()
	if err := rw.Update(ctx, func(tx *Tx) error { _, err := tx.InboxRecord(ctx, InboxEntry{MsgID: "m"}); return err }); err != nil {
		t.Fatalf("Update through OpenExisting: %v", err)
	}
}
