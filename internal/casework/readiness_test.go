package casework

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// TestReadyz: /readyz says ready only while the process consumes, its NATS
// connection is up and its database answers; any one missing is a 503.
func TestReadyz(t *testing.T) {
	ns := eventstest.Start(t)
	nc := ns.Conn(events.ConnectOptions("readyz-test")...)
	store, err := casestore.Open(context.Background(), filepath.Join(t.TempDir(), "refunds.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	r := &readiness{conn: nc, store: store}
	srv := httptest.NewServer(handleReady(r, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)

	expect := func(when string, wantStatus int, wantBody string) {
		t.Helper()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatalf("%s: GET /readyz: %v", when, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus || string(body) != wantBody {
			t.Errorf("%s: GET /readyz = %d %s; want %d %s", when, resp.StatusCode, body, wantStatus, wantBody)
		}
	}
	const ready, notReady = `{"status":"ready"}`, `{"status":"not ready"}`

	expect("before consuming", http.StatusServiceUnavailable, notReady)
	r.consuming.Store(true)
	expect("consuming", http.StatusOK, ready)

	ns.Stop()
	eventstest.WaitFor(t, 10*time.Second, "the client to notice the outage", func() bool { return !nc.IsConnected() })
	expect("NATS down", http.StatusServiceUnavailable, notReady)
	ns.Restart()
	eventstest.WaitFor(t, 30*time.Second, "reconnect", nc.IsConnected)
	expect("NATS back", http.StatusOK, ready)

	r.consuming.Store(false)
	expect("stopping", http.StatusServiceUnavailable, notReady)
	r.consuming.Store(true)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	expect("database closed", http.StatusServiceUnavailable, notReady)
}
