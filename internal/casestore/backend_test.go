package casestore

import (
	"os"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore/casestoretest"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestMain stops the PostgreSQL cluster the tests started, if any.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backend is one kind of store the tests run against. Tests that hold for
// both run over them with eachBackend; the few that are about one engine
// (SQLite's bytecode, WAL and files; PostgreSQL's read-only sessions) say
// so beside them.
type backend = casestoretest.Backend

// eachBackend runs fn as a subtest per backend.
func eachBackend(t *testing.T, fn func(t *testing.T, be backend)) { casestoretest.Each(t, fn) }
