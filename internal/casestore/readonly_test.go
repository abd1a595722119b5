package casestore

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/refundhub/refundhub"
)

// fileSum is the SHA-256 of the database file: equal before and after means
// nothing was written to it.
func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// migrationsIn returns the versions recorded in the file, read through a
// read-only handle of the test's own.
func migrationsIn(t *testing.T, path string) []int {
	t.Helper()
	db, err := sqlx.Open("sqlite3", "file:"+path+"?"+readOnlyParams)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var vs []int
	if err := db.Select(&vs, `SELECT version FROM schema_migrations ORDER BY version`); err != nil {
		t.Fatalf("schema_migrations of %s: %v", path, err)
	}
	return vs
}

// The tests of this file are about SQLite files (their bytes left as they
// were, mode=ro URIs, missing and empty files); TestPostgresReadOnly is
// their PostgreSQL counterpart.

// TestOpenOlderFileWithoutMigrating: a file one migration behind this build
// (an older worker still runs on it) is refused by OpenReadOnly and
// OpenExisting with both versions, and stays exactly as it was.
func TestOpenOlderFileWithoutMigrating(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	build := BuildSchemaVersion()
	old, err := open(ctx, path, nil, build-1)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, path)
	for name, openFn := range map[string]func(context.Context, string, *slog.Logger) (*Store, error){
		"OpenReadOnly": OpenReadOnly, "OpenExisting": OpenExisting,
	} {
		s, err := openFn(ctx, path, nil)
		var se *SchemaError
		if !errors.As(err, &se) || !errors.Is(err, ErrSchemaOlder) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("%s on a v%d file: %v; want a SchemaError wrapping ErrSchemaOlder", name, build-1, err)
		}
		if want := (SchemaVersions{File: build - 1, Build: build}); se.SchemaVersions != want || se.Path != path {
			t.Errorf("%s: SchemaError %+v; want path %s, versions %+v", name, se, path, want)
		}
		if fileSum(t, path) != before {
			t.Errorf("%s changed the file", name)
		}
	}
	if vs := migrationsIn(t, path); len(vs) != build-1 || vs[len(vs)-1] != build-1 {
		t.Errorf("schema_migrations = %v; want 1..%d (unchanged)", vs, build-1)
	}
}

// TestOpenMissingFileDoesNotCreateIt: a mistyped path is an error wrapping
// fs.ErrNotExist, and neither the file nor its directory appears.
func TestOpenMissingFileDoesNotCreateIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "typo")
	path := filepath.Join(dir, "refunds.db")
	for name, openFn := range map[string]func(context.Context, string, *slog.Logger) (*Store, error){
		"OpenReadOnly": OpenReadOnly, "OpenExisting": OpenExisting,
	} {
		s, err := openFn(context.Background(), path, nil)
		if !errors.Is(err, fs.ErrNotExist) {
			if s != nil {
				s.Close()
			}
			t.Errorf("%s(%s) = %v; want an error wrapping fs.ErrNotExist", name, path, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s created %s (stat: %v)", name, dir, err)
		}
	}
}

// TestOpenNewerFile: a file a newer build migrated (one more column, one more
// version) opens read-only and for writing; the read-only store reads
// everything this build knows, refuses Update with ErrReadOnly and leaves
// the file as it was.
func TestOpenNewerFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "newer.db")
	build := BuildSchemaVersion()
	s := openTest(t, path)
	c := newCase(t, s, NewCase{Platform: "taobao", OrderID: "o1", SubOrderID: "s1", State: "requested"})
	var dl int64
	if err := s.Update(ctx, func(tx *Tx) error {
		var err error
		dl, _, err = tx.InsertDeadLetter(ctx, DeadLetter{MsgID: "m1", Subject: "commands.taobao.cancel", Reason: "permanent_error"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	newer := append(parseMigrations(refundhub.Schema), migration{version: build + 1, name: "a newer build",
		sql: `ALTER TABLE cases ADD COLUMN from_the_future TEXT NOT NULL DEFAULT '';`})
	if err := s.migrate(ctx, newer, 0); err != nil {
		t.Fatalf("newer migration: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, path)

	ro, err := OpenReadOnly(ctx, path, nil)
	if err != nil {
		t.Fatalf("OpenReadOnly on a v%d file: %v", build+1, err)
	}
	v, err := ro.SchemaVersions(ctx)
	if want := (SchemaVersions{File: build + 1, Build: build}); err != nil || v != want || !v.Newer() || v.Older() {
		t.Errorf("SchemaVersions = %+v, %v; want %+v, newer", v, err, want)
	}
	if got, err := ro.GetCase(ctx, c.ID); err != nil || got.OrderID != "o1" {
		t.Errorf("GetCase(%d) read-only = %+v, %v; want the case", c.ID, got, err)
	}
	if dls, err := ro.DeadLetters(ctx, DeadLetterFilter{}); err != nil || len(dls) != 1 {
		t.Errorf("DeadLetters read-only = %+v, %v; want one", dls, err)
	}
	err = ro.Update(ctx, func(tx *Tx) error { return tx.MarkDeadLetterRetried(ctx, dl) })
	if !errors.Is(err, ErrReadOnly) {
		t.Errorf("Update on a read-only store = %v; want ErrReadOnly", err)
	}
	if _, err := ro.w.ExecContext(ctx, `DELETE FROM dead_letters`); err == nil {
		t.Errorf("a write bypassing Update succeeded on a read-only store")
	}
	if err := ro.Close(); err != nil {
		t.Errorf("Close read-only: %v", err)
	}
	if err := ro.Update(ctx, func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v; want ErrClosed", err)
	}
	if fileSum(t, path) != before {
		t.Errorf("the read-only store changed the file")
	}

	rw, err := OpenExisting(ctx, path, nil)
	if err != nil {
		t.Fatalf("OpenExisting on a v%d file: %v", build+1, err)
	}
	defer rw.Close()
	if err := rw.Update(ctx, func(tx *Tx) error { return tx.MarkDeadLetterRetried(ctx, dl) }); err != nil {
		t.Fatalf("MarkDeadLetterRetried through OpenExisting: %v", err)
	}
	if d, err := rw.DeadLetter(ctx, dl); err != nil || d.RetriedAt.IsZero() {
		t.Errorf("dead letter after retry = %+v, %v; want marked retried", d, err)
	}
	if vs := migrationsIn(t, path); len(vs) != build+1 {
		t.Errorf("schema_migrations = %v; want the newer build's %d rows", vs, build+1)
	}
}

// TestOpenReadOnlyUninitialisedFile: an empty file at the path (touched, or
// another program's) is a schema older than any build, not a store.
func TestOpenReadOnlyUninitialisedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenReadOnly(context.Background(), path, nil)
	var se *SchemaError
	if !errors.As(err, &se) || se.File != 0 {
		if s != nil {
			s.Close()
		}
		t.Fatalf("OpenReadOnly on an empty file: %v; want a SchemaError with version 0", err)
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("OpenReadOnly wrote %d bytes to the empty file", len(b))
	}
}
