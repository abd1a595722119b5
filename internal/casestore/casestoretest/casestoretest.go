// Package casestoretest runs tests over both case stores: one table of
// backends, so that casestore's tests and those of the packages above it
// (refundflow's engine) run the same body on SQLite and on PostgreSQL
// instead of copies of it.
package casestoretest

import (
	"path/filepath"
	"testing"

	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// Backend is one kind of case store.
type Backend struct {
	Name string
	// Fresh returns where a new, empty store of this kind lives, for
	// casestore's open functions: a file path under t.TempDir(), or the
	// URL of a new database on the test binary's PostgreSQL cluster (the
	// package's TestMain must stop it: os.Exit(pgtest.Main(m))).
	Fresh func(t testing.TB) string
}

// Backends returns both stores: SQLite, then PostgreSQL.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", Fresh: func(t testing.TB) string { return filepath.Join(t.TempDir(), "refunds.db") }},
		{Name: "postgres", Fresh: func(t testing.TB) string { return pgtest.NewDatabase(t) }},
	}
}

// Each runs fn as a subtest per backend, named for it. Without PostgreSQL
// installed its subtest skips with one line (fails under REFUNDHUB_CI).
func Each(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}
