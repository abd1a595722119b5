package console

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// TestTheConsoleSaysTheDatabaseDoesNotAnswer: with its PostgreSQL store
// down, the console answered every page and API call "500 internal error",
// which reads like a bug of the console. It now answers 503
// store_unavailable, saying the database does not answer and that nothing
// changed, with Retry-After, as JSON on the API and as a page for people;
// once the database is back, the same requests answer again.
func TestTheConsoleSaysTheDatabaseDoesNotAnswer(t *testing.T) {
	pg := pgtest.Start(t, pgtest.Options{Durable: true}) // the accounts survive the crash
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
	srv, err := New(Config{SessionKey: []byte(sessionKey), VerdictWait: 200 * time.Millisecond},
		Deps{Store: st, Ready: func(context.Context) error { return nil }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: srv}
	ts.http = httptest.NewServer(srv.Handler())
	t.Cleanup(ts.http.Close)
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
