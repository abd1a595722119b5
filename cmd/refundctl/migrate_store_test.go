package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/casestore/casestoretest/history"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// migrateFixture is a SQLite store with a history, an empty PostgreSQL
// database, and the environment naming both (no NATS: migrate-store does
// not use it).
type migrateFixture struct {
	t        *testing.T
	src, dst string
	password string // the database's: no output may show it
	vars     map[string]string
}

func newMigrateFixture(t *testing.T, cases int) *migrateFixture {
	t.Helper()
	src := filepath.Join(t.TempDir(), "refunds.db")
	st, err := casestore.Open(context.Background(), src, nil)
	if err != nil {
		t.Fatal(err)
	}
	history.Write(t, st, cases)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	dst := pgtest.NewDatabase(t)
	u, err := url.Parse(dst)
	if err != nil {
		t.Fatal(err)
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		t.Fatalf("the test database's URL has no password; the redaction checks need one")
	}
	return &migrateFixture{t: t, src: src, dst: dst, password: pw,
		vars: map[string]string{"DB_PATH": src, "DB_URL": dst, "USER": "tester"}}
}

// run runs refundctl in-process and fails the test if any output shows the
// database password.
func (f *migrateFixture) run(args ...string) result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	err := run(ctx, args, func(k string) string { return f.vars[k] }, &out, &errb)
	r := result{stdout: out.String(), stderr: errb.String(), err: err}
	for _, s := range []string{r.stdout, r.stderr, r.line()} {
		if strings.Contains(s, f.password) {
			f.t.Fatalf("refundctl %v shows the database password: %s", args, s)
		}
	}
	return r
}

// tables is how many tables the target database has.
func (f *migrateFixture) tables() int {
	f.t.Helper()
	db, err := sql.Open("pgx", f.dst)
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// TestMigrateStoreCommand: --dry-run writes nothing; the documented
// `migrate-store --from sqlite --to postgres` copies DB_PATH into DB_URL
// and prints every table's counts, exit 0; run again it is refused (exit
// 4) naming the rows the target holds; --json gives the counts to scripts.
// No output shows the password.
func TestMigrateStoreCommand(t *testing.T) {
	f := newMigrateFixture(t, 60)

	r := f.run("migrate-store", "--dry-run")
	if r.err != nil || !strings.Contains(r.stdout, "dry run: nothing written") || !strings.Contains(r.stdout, "would copy") {
		t.Fatalf("migrate-store --dry-run: %v\n%s", r.line(), r.stdout)
	}
	if n := f.tables(); n != 0 {
		t.Fatalf("after --dry-run the target has %d tables; want 0", n)
	}

	r = f.run("migrate-store", "--from", "sqlite", "--to", "postgres")
	if r.err != nil {
		t.Fatalf("migrate-store --from sqlite --to postgres: %v\n%s", r.line(), r.stdout)
	}
	for _, want := range []string{"from  " + f.src, "postgres://postgres:xxxxx@", "every count matches"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("migrate-store output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), "cases 60 60 61") {
		t.Errorf("migrate-store output: want the cases line with 60 copied and next id 61:\n%s", r.stdout)
	}

	r = f.run("migrate-store", "--json")
	if r.code() != exitRefused || !strings.Contains(r.line(), "target is not empty (") || !strings.Contains(r.line(), "nothing was written") {
		t.Fatalf("migrate-store into the full target: exit %d %q; want %d, not empty, nothing written", r.code(), r.line(), exitRefused)
	}

	f.vars["DB_URL"] = pgtest.NewDatabase(t)
	r = f.run("migrate-store", "--json")
	var out migrateStoreJSON
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &out) != nil {
		t.Fatalf("migrate-store --json: %v\n%s", r.line(), r.stdout)
	}
	if !out.Match || out.DryRun || len(out.Tables) < 10 || out.Rows == 0 {
		t.Fatalf("migrate-store --json: %+v; want every table matching", out)
	}
	for _, tb := range out.Tables {
		if tb.Source != tb.Target {
			t.Errorf("--json %s: source %d target %d", tb.Table, tb.Source, tb.Target)
		}
	}
}

// TestMigrateStoreCommandRefusesLeases: a lease held in the source is exit
// 4 saying to stop the workers, and the target stays untouched.
func TestMigrateStoreCommandRefusesLeases(t *testing.T) {
	f := newMigrateFixture(t, 3)
	ctx := context.Background()
	st, err := casestore.OpenExisting(ctx, f.src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ClaimLease(ctx, 2, "host-b/42", time.Hour); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r := f.run("migrate-store")
	if r.code() != exitRefused || !strings.Contains(r.line(), "leases on 1 case(s)") || !strings.Contains(r.line(), "stop the workers first") {
		t.Fatalf("migrate-store with a lease held: exit %d %q; want %d saying to stop the workers", r.code(), r.line(), exitRefused)
	}
	if n := f.tables(); n != 0 {
		t.Errorf("a refused migrate-store left %d tables in the target", n)
	}
}

// TestMigrateStoreCommandFlags: a bad flag is exit 2 naming it, before
// anything is opened; a missing source file is exit 1. The password of a
// URL given in the wrong place is never echoed.
func TestMigrateStoreCommandFlags(t *testing.T) {
	f := newMigrateFixture(t, 1)
	secretURL := strings.Replace(f.dst, "postgres://", "postgress://", 1) // a typo'd scheme, password and all
	wrongPassword := strings.Replace(f.dst, ":"+f.password+"@", ":not-"+f.password+"@", 1)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want string
	}{
		{"from a URL", []string{"--from", f.dst}, nil, 2, "--from postgres://postgres:xxxxx@"},
		{"from empty", []string{"--from", ""}, nil, 2, "--from: empty"},
		{"to a file", []string{"--to", "/tmp/refunds.db"}, nil, 2, "--to: want a postgres:// or postgresql:// URL"},
		{"to a mistyped URL", []string{"--to", secretURL}, nil, 2, "--to: want a postgres://"},
		{"to postgres without DB_URL", nil, map[string]string{"DB_URL": ""}, 2, "--to postgres: DB_URL is not set"},
		{"db", []string{"--db", f.src}, nil, 2, "--db: migrate-store names its stores with --from"},
		{"an argument", []string{"now"}, nil, 2, "unknown command"},
		{"unknown flag", []string{"--force"}, nil, 2, "--force"},
		{"wrong password", []string{"--to", wrongPassword}, nil, 1, "postgres://postgres:xxxxx@"},
		{"no source file", []string{"--from", filepath.Join(t.TempDir(), "none.db")}, nil, 1, "no case store at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved := map[string]string{}
			for k, v := range tc.env {
				saved[k] = f.vars[k]
				f.vars[k] = v
			}
			defer func() {
				for k, v := range saved {
					f.vars[k] = v
				}
			}()
			r := f.run(append([]string{"migrate-store"}, tc.args...)...)
			if r.code() != tc.code || !strings.Contains(r.line(), tc.want) {
				t.Errorf("migrate-store %v: exit %d %q; want %d and %q", tc.args, r.code(), r.line(), tc.code, tc.want)
			}
		})
	}
	if n := f.tables(); n != 0 {
		t.Errorf("bad flags left %d tables in the target", n)
	}
}
