package casestore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestMain stops the PostgreSQL cluster the tests started, if any.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backend is one kind of store the tests run against.
type backend struct {
	name string
	// fresh returns where a new, empty store of this kind lives: a file
	// path under t.TempDir(), or the URL of a new database.
	fresh func(t *testing.T) string
}

// backends are both stores. Tests that hold for both run over them with
// eachBackend; the few that are about one engine (SQLite's bytecode, WAL
// and files; PostgreSQL's read-only sessions) say so beside them.
var backends = []backend{
	{name: "sqlite", fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "refunds.db") }},
	{name: "postgres", fresh: func(t *testing.T) string { return pgtest.NewDatabase(t) }},
}

// eachBackend runs fn as a subtest per backend, named for it.
func eachBackend(t *testing.T, fn func(t *testing.T, be backend)) {
	t.Helper()
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { fn(t, be) })
	}
}
