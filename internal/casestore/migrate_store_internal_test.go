package casestore

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestMigrateSourceHoldsTheWriteLock: while MigrateStore reads the SQLite
// source, another connection cannot begin a write (a worker started by
// mistake waits, then fails, rather than writing a row the copy misses);
// readers still read; a dry run takes no lock.
func TestMigrateSourceHoldsTheWriteLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "refunds.db")
	st := openTest(t, path)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.SetMaxOpenConns(1)
	tryWrite := func() error {
		_, err := other.ExecContext(ctx, `UPDATE cases SET version = version WHERE id = 0`)
		return err
	}
	for _, dryRun := range []bool{false, true} {
		src, err := openMigrateSource(ctx, path, dryRun)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.count(ctx, "cases"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := other.QueryRowContext(ctx, `SELECT COUNT(*) FROM cases`).Scan(&n); err != nil {
			t.Errorf("dry run %v: a reader beside the migration: %v; want it to read", dryRun, err)
		}
		err = tryWrite()
		switch {
		case !dryRun && (err == nil || !strings.Contains(err.Error(), "locked")):
			t.Errorf("a write beside the migration's source transaction: %v; want database is locked", err)
		case dryRun && err != nil:
			t.Errorf("a write beside a dry run: %v; want it to go through (a dry run takes no lock)", err)
		}
		src.close()
		if err := tryWrite(); err != nil {
			t.Errorf("dry run %v: a write after the migration ended: %v", dryRun, err)
		}
	}
}

// TestConvertValue: SQLite's column types are affinities, so a value is
// converted to what the PostgreSQL column takes, and one that cannot be is
// an error rather than a guess.
func TestConvertValue(t *testing.T) {
	tests := []struct {
		in     any
		pgType string
		want   any
		ok     bool
	}{
		{nil, "bigint", nil, true},
		{int64(7), "bigint", int64(7), true},
		{float64(7), "bigint", int64(7), true},
		{"7", "bigint", int64(7), true},
		{7.5, "bigint", nil, false},
		{"seven", "bigint", nil, false},
		{"abc", "text", "abc", true},
		{[]byte("abc"), "text", "abc", true},
		{int64(3305075341149134260), "text", "3305075341149134260", true},
		{"\x00\xff", "bytea", []byte("\x00\xff"), true},
		{[]byte{0, 1}, "bytea", []byte{0, 1}, true},
		{int64(1), "bytea", nil, false},
		{"x", "jsonb", nil, false},
	}
	for _, tc := range tests {
		got, err := convertValue(tc.in, tc.pgType)
		if (err == nil) != tc.ok || (tc.ok && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("convertValue(%#v, %s) = %#v, %v; want %#v (ok %v)", tc.in, tc.pgType, got, err, tc.want, tc.ok)
		}
	}
}
