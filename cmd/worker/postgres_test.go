package main

import (
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/sandbox"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestMain stops the PostgreSQL cluster TestEndToEndOnPostgres started.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestEndToEndOnPostgres is TestEndToEnd's run with DB_URL set: two worker
// processes share one PostgreSQL database (and one consumer), both
// platforms and every flow, callbacks stored three times and pushed out of
// order; every case ends where the sandbox says, with no side effect twice,
// and DB_PATH (set too) is never created.
func TestEndToEndOnPostgres(t *testing.T) {
	s := newStack(t, sandbox.Faults{ReorderPushRate: 0.5, DuplicatePushRate: 0.3}, quickSeller, 3,
		map[string]string{"DB_URL": pgtest.NewDatabase(t)})
	s.start()
	s.start()
	s.runScenarios(60 * time.Second)
	s.noDuplicates()
	if _, err := os.Stat(s.dbPath); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DB_PATH %s: %v; want no SQLite file (DB_URL wins)", s.dbPath, err)
	}
}
