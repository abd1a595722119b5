package casestore

import (
	"context"
	"database/sql"
	"path/filepath"
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
