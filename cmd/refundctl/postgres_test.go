package main

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestMain stops the PostgreSQL cluster TestStoreOnPostgres started.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestStoreOnPostgres: with DB_URL set, refundctl reads the worker's
// PostgreSQL store (DB_PATH, set too, names no store and is not read); a
// URL it cannot open is an error naming the store without its password,
// which nothing refundctl prints ever shows.
func TestStoreOnPostgres(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dbURL := pgtest.NewDatabase(t)
	st, err := casestore.Open(ctx, dbURL, nil) // the worker creates the tables
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		_, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "1688", OrderID: "pg-order-77", State: "requested"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := u.User.Password()
	noPassword := func(r result, args ...string) {
		t.Helper()
		for _, s := range []string{r.stdout, r.stderr, r.line()} {
			if strings.Contains(s, password) {
				t.Fatalf("refundctl %v shows the database password: %s", args, s)
			}
		}
	}

	e.vars["DB_URL"] = dbURL
	r := e.run("list")
	noPassword(r, "list")
	if r.err != nil || !strings.Contains(r.stdout, "pg-order-77") {
		t.Fatalf("refundctl list with DB_URL: %v\n%s; want the PostgreSQL store's case", r.err, r.stdout)
	}

	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "not-"+password)
	e.vars["DB_URL"] = wrong.String()
	r = e.run("list")
	noPassword(r, "list")
	if r.err == nil || !strings.Contains(r.line(), "postgres://postgres:xxxxx@") {
		t.Fatalf("refundctl list with a wrong password: %q; want an error naming the store redacted", r.line())
	}

	e.vars["DB_URL"] = "mysql://u:" + password + "@db/x"
	r = e.run("list")
	noPassword(r, "list")
	if r.err == nil || !strings.Contains(r.line(), "DB_URL must be a postgres://") {
		t.Fatalf("refundctl list with a mysql URL: %q; want DB_URL refused", r.line())
	}
}
