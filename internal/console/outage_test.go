package console

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestTheConsoleSaysTheDatabaseDoesNotAnswer: with its PostgreSQL store
// down, the console answered every page and API call "500 internal error",
// which reads like a bug of the console. It now answers 503
// store_unavailable, saying the database does not answer and that nothing
// changed, with Retry-After, as JSON on the API and as a page for people;
// once the database is back, the same requests answer again.
func TestTheConsoleSaysTheDatabaseDoesNotAnswer(t *testing.T) {
	pg, ts := consoleOnPostgres(t, nil, 200*time.Millisecond)
	cookie := "cookie:" + ts.login(operatorName).Value
	if r := ts.do(http.MethodGet, "/api/v1/cases", operatorToken, nil); r.status != http.StatusOK {
		t.Fatalf("cases with the database up: %d %s", r.status, r.body)
	}

	pg.Crash(t)
	api := ts.do(http.MethodGet, "/api/v1/cases", operatorToken, nil)
	if api.status != http.StatusServiceUnavailable || !strings.Contains(api.body, `"code":"store_unavailable"`) ||
		!strings.Contains(api.body, "does not answer") || api.header.Get("Retry-After") == "" {
		t.Errorf("API with the database down: %d %q (Retry-After %q); want 503 store_unavailable saying it does not answer, with Retry-After",
			api.status, api.body, api.header.Get("Retry-After"))
	}
	page := ts.do(http.MethodGet, "/cases", cookie, nil)
	if page.status != http.StatusServiceUnavailable || !strings.Contains(page.body, "does not answer") ||
		!strings.Contains(page.body, "nothing was changed") {
		t.Errorf("page with the database down: %d; want 503 saying the database does not answer and nothing changed:\n%s", page.status, page.body)
	}

	pg.Restart(t)
	if r := ts.do(http.MethodGet, "/api/v1/cases", operatorToken, nil); r.status != http.StatusOK {
		t.Errorf("cases with the database back: %d %s", r.status, r.body)
	}
}

// TestTheConsoleAnswersAtOnceWhenTheDatabaseEndedItsSessions: the
// database ends every session (a restart, an administrator, a pooler)
// while the console's connections sit idle. Each page or API call within
// the next second met one of them and answered 503 "the database does not
// answer", once per pooled connection, with the database up. They now
// answer at once.
func TestTheConsoleAnswersAtOnceWhenTheDatabaseEndedItsSessions(t *testing.T) {
	pg, ts := consoleOnPostgres(t, nil, 200*time.Millisecond)
	cookie := "cookie:" + ts.login(operatorName).Value
	// Several calls at once, twice: the pool keeps several connections,
	// each reused within the last second.
	for range 2 {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if r := ts.do(http.MethodGet, "/api/v1/cases", operatorToken, nil); r.status != http.StatusOK {
					t.Errorf("cases before the sessions ended: %d %s", r.status, r.body)
				}
			})
		}
		wg.Wait()
	}
	if n := pg.EndSessions(t); n == 0 {
		t.Fatal("no session of the console's to end")
	}
	for i := range 3 {
		if r := ts.do(http.MethodGet, "/api/v1/cases", operatorToken, nil); r.status != http.StatusOK {
			t.Errorf("API call %d after the database ended its sessions: %d %s; want 200", i+1, r.status, r.body)
		}
		if r := ts.do(http.MethodGet, "/cases", cookie, nil); r.status != http.StatusOK {
			t.Errorf("page %d after the database ended its sessions: %d; want 200", i+1, r.status)
		}
	}
}

// TestACommandSentAsTheDatabaseGoesIsNotReportedUnsent: the database goes
// away while the console waits for the worker's verdict on a command it has
// already published. The console answered 503 store_unavailable, "nothing
// was changed: try again", and an operator who did would have sent the
// command twice (a second message to the seller, a second request). Now
// the API answers 202 pending, saying the command was sent; a form goes on
// to its verdict's page, whose 503 says the command was sent and not to
// send it again; and a form posted while the database is away is told it
// may not have been saved, not that nothing changed.
func TestACommandSentAsTheDatabaseGoesIsNotReportedUnsent(t *testing.T) {
	js := eventstest.Start(t).JetStream()
	if err := events.EnsureWorkStreams(context.Background(), js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	// No worker: the verdict never comes, and the wait is long enough for
	// the database to go away during it.
	pg, ts := consoleOnPostgres(t, js, time.Minute)
	session := ts.login(operatorName).Value
	cookie, csrf := "cookie:"+session, ts.srv.sessions.csrf(session)
	down := false
	t.Cleanup(func() { // the database back for its cleanup, however the test ended
		if down {
			pg.Restart(t)
		}
	})

	// sentThenDown runs post, takes the database away once the command is
	// stored, and returns post's answer.
	sentThenDown := func(post func() reply) reply {
		stored := commandsStored(t, js)
		answer := make(chan reply, 1)
		go func() { answer <- post() }()
		eventstest.WaitFor(t, 10*time.Second, "the command stored", func() bool { return commandsStored(t, js) > stored })
		pg.Crash(t)
		down = true
		select {
		case r := <-answer:
			return r
		case <-time.After(2 * time.Minute): // post failed the test in its goroutine
			t.Fatal("no answer to the command's request")
			return reply{}
		}
	}

	api := sentThenDown(func() reply {
		return ts.postJSON("/api/v1/commands", operatorToken, `{"id":"down-request-0001","kind":"request_refund","platform":"taobao",`+
			`"orderId":"100","subOrderId":"101","request":{"goodsStatus":"1","reasonId":1004}}`)
	})
	if a := decodeAnswer(t, api); api.status != http.StatusAccepted || a.Verdict.Verdict != "pending" ||
		!strings.Contains(a.Verdict.Reason, "do not send it again") || a.Poll != "/api/v1/commands/down-request-0001" {
		t.Errorf("API command with the database gone during the wait = %d %s; want 202 pending, saying it was sent, with the poll path", api.status, api.body)
	}

	pg.Restart(t)
	down = false
	form := withCSRF(url.Values{"platform": {"taobao"}, "order": {"200"}, "sub_order": {"201"}, "goods_status": {"1"},
		"reason_id": {"1004"}}, csrf)
	page := sentThenDown(func() reply { return ts.do(http.MethodPost, "/requests", cookie, form) })
	loc := page.header.Get("Location")
	if page.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/requests/new?command=") {
		t.Fatalf("request form with the database gone during the wait = %d (Location %q); want 303 to the verdict's page:\n%s", page.status, loc, page.body)
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(loc, "/requests/new?command="), "&")
	verdict := ts.do(http.MethodGet, loc, cookie, nil)
	if verdict.status != http.StatusServiceUnavailable || !strings.Contains(verdict.body, "command "+id+" was sent") ||
		!strings.Contains(verdict.body, "do not send it again") || strings.Contains(verdict.body, "nothing was changed") {
		t.Errorf("the verdict's page with the database away = %d; want 503 saying command %s was sent, not to send it again:\n%s", verdict.status, id, verdict.body)
	}

	stored := commandsStored(t, js)
	again := ts.do(http.MethodPost, "/requests", cookie, form)
	if again.status != http.StatusServiceUnavailable || !strings.Contains(again.body, "may not have been saved") ||
		strings.Contains(again.body, "nothing was changed") || commandsStored(t, js) != stored {
		t.Errorf("a form posted with the database away = %d (%d commands stored, %d before); want 503 saying it may not have been saved, nothing published:\n%s",
			again.status, commandsStored(t, js), stored, again.body)
	}
}

// consoleOnPostgres serves a console on a database of a cluster of its own,
// which the test may crash (durable: the accounts survive it), publishing
// on js (nil: none) and waiting up to verdictWait for verdicts.
func consoleOnPostgres(t *testing.T, js jetstream.JetStream, verdictWait time.Duration) (*pgtest.Cluster, *testServer) {
	t.Helper()
	pg := pgtest.Start(t, pgtest.Options{Durable: true})
	dbURL := pg.NewDatabase(t)
	ctx := context.Background()
	w, err := casestore.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	seedAccounts(t, w)
	w.Close()
	st, err := casestore.OpenReadOnly(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := New(Config{SessionKey: []byte(sessionKey), VerdictWait: verdictWait},
		Deps{Store: st, JetStream: js, Ready: func(context.Context) error { return nil }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: srv}
	ts.http = httptest.NewServer(srv.Handler())
	t.Cleanup(ts.http.Close)
	return pg, ts
}
