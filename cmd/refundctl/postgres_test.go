package main

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
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

// TestACommandSentAsTheDatabaseGoesIsPending: the database goes away while
// refundctl waits for the worker's verdict on a command it has published.
// refundctl exited 1, "reading its verdict: …", which reads as a command
// that failed, to be sent again (under a new id: twice). It now ends as
// pending (exit 5), saying the command was sent and not to send it again.
func TestACommandSentAsTheDatabaseGoesIsPending(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pg := pgtest.Start(t, pgtest.Options{Durable: true}) // crashed and restarted
	dbURL := pg.NewDatabase(t)
	st, err := casestore.Open(ctx, dbURL, nil) // the worker creates the tables; no worker runs: no verdict comes
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	down := false
	t.Cleanup(func() {
		if down {
			pg.Restart(t) // for the database's cleanup
		}
	})
	e.vars["DB_URL"] = dbURL
	commands, err := e.js.Stream(ctx, events.DefaultCommandStreamName)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		info, err := commands.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	before := stored()
	done := make(chan result, 1)
	go func() {
		done <- e.run("request", "--platform", "taobao", "--order", "100", "--sub-order", "101", "--goods-status", "1",
			"--reason-id", "1004", "--amount", "max", "--wait", "3s")
	}()
	eventstest.WaitFor(t, 10*time.Second, "the command stored", func() bool { return stored() > before })
	pg.Crash(t)
	down = true
	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("refundctl did not return")
	}
	if exitCode(r.err) != exitPending || !strings.Contains(r.stdout+r.line(), "do not send it again") {
		t.Errorf("refundctl request with the database gone during the wait: exit %d, %q, stdout %q; want exit %d (pending), saying it was sent",
			exitCode(r.err), r.line(), r.stdout, exitPending)
	}
}
