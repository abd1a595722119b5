package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
)

// fileVersion is the schema version recorded in the database at path, read
// through a read-only handle of the test's own.
func fileVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatalf("schema version of %s: %v", path, err)
	}
	return v
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestReadCommandsOnOlderSchemaDoNotMigrate: a database that lacks this
// build's newest migration (a worker of the older version still runs on it)
// is neither migrated nor written by any refundctl command; each says which
// versions it found and what to do.
func TestReadCommandsOnOlderSchemaDoNotMigrate(t *testing.T) {
	e := newEnv(t)
	build := casestore.BuildSchemaVersion()
	old := build - 1
	st, err := casestore.OpenAtVersion(context.Background(), e.dbPath, nil, old)
	if err != nil {
		t.Fatalf("build a v%d database: %v", old, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, e.dbPath)
	want := fmt.Sprintf("case store %s has schema version %d; this build needs %d: start a worker of this version to upgrade the database, or use a refundctl matching it",
		e.dbPath, old, build)
	for _, args := range [][]string{
		{"list"},
		{"show", "1"},
		{"wait", "1", "--deadline", "2s"},
		{"dead-letters", "list"},
		{"dead-letters", "show", "1"},
		{"dead-letters", "retry", "1"},
		{"dead-letters", "discard", "1", "--note", "never migrates"},
	} {
		cmd := strings.Join(args, " ")
		r := e.run(args...)
		if v := fileVersion(t, e.dbPath); v != old {
			t.Fatalf("refundctl %s migrated the database: schema version %d; want %d (unchanged)", cmd, v, old)
		}
		if fileHash(t, e.dbPath) != before {
			t.Errorf("refundctl %s changed the database file", cmd)
		}
		if r.code() != 1 || r.line() != "refundctl: "+want {
			t.Errorf("refundctl %s: exit %d, %q; want exit 1, %q", cmd, r.code(), r.line(), "refundctl: "+want)
		}
	}
}

// TestReadCommandsOnNewerSchemaWarn: a database a newer worker already
// migrated still reads (migrations only add), with one warning line on
// stderr naming both versions.
func TestReadCommandsOnNewerSchemaWarn(t *testing.T) {
	e := newEnv(t)
	seedCases(t, e.openStore())
	build := casestore.BuildSchemaVersion()
	// What a newer build's migration does: add a column, record the version.
	db, err := sql.Open("sqlite3", "file:"+e.dbPath+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE cases ADD COLUMN from_the_future TEXT NOT NULL DEFAULT ''`,
		fmt.Sprintf(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (%d, 'a newer build', 0)`, build+1),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"list"}, {"show", "1"}, {"dead-letters", "list"}, {"dead-letters", "list", "--all"}} {
		r := e.mustRun(args...)
		if args[0] == "list" && !strings.Contains(r.stdout, "waiting_seller") {
			t.Errorf("refundctl list on a newer schema:\n%s", r.stdout)
		}
		wantLine := fmt.Sprintf("refundctl: warning: case store %s has schema version %d, newer than the %d this refundctl knows; upgrade refundctl to see what is new\n",
			e.dbPath, build+1, build)
		if r.stderr != wantLine {
			t.Errorf("refundctl %s stderr = %q; want one warning line %q", strings.Join(args, " "), r.stderr, wantLine)
		}
	}
	if v := fileVersion(t, e.dbPath); v != build+1 {
		t.Errorf("schema version after refundctl = %d; want %d", v, build+1)
	}
}
