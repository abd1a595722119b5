//go:build unix

package console

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/testenv/pgtest"
)

// benchCases and benchTimeline are the scale the console is judged at
// (issue 16): 100,000 cases, one of them with 1,000 timeline rows.
const (
	benchCases    = 100000
	benchTimeline = 1000
	benchBusyCase = 4242
)

// benchConsole is a console over a store seeded at scale, and the ids the
// query shapes look for.
type benchConsole struct {
	h                  http.Handler
	auth               string
	order, orderPrefix string
	openedBy, refundID string
	cursor             string // a cursor deep into the default order
	now                time.Time
	store              *casestore.Store
}

// newBenchConsole seeds benchCases cases over 180 days as a busy store
// holds them: ids and creation times rise together; the oldest 95% mostly
// finished (81% succeeded, 12% closed, 6% cancelled, 1% stopped with a
// reason), the newest 5% mostly open (40% waiting for the seller, 20% for
// the return, 20% submitting, a quarter of those flagged
// waiting_evidence, 10% stopped); 60% Taobao. Open cases sit among the
// newest: a list that walks an order's index from the oldest end past
// finished cases shows here as it would in production. store is "sqlite" or "postgres"
// (a database on the test binary's throwaway cluster).
func newBenchConsole(b *testing.B, store string) *benchConsole {
	b.Helper()
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "refunds.db")
	if store == "postgres" {
		path = pgtest.NewDatabase(b)
	}
	w, err := casestore.Open(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	w.Close()
	now := time.Now().UTC().Truncate(time.Second)
	rng := rand.New(rand.NewPCG(1, 16))
	cases := make([]rawCase, 0, benchCases)
	span := 180 * 24 * time.Hour
	for i := int64(1); i <= benchCases; i++ {
		// Ids and creation times rise together, as the store assigns them.
		created := now.Add(-span + time.Duration(i)*(span/benchCases) - time.Duration(rng.Int64N(int64(time.Hour))))
		updated := created.Add(time.Duration(rng.Int64N(int64(14 * 24 * time.Hour))))
		if updated.After(now) {
			updated = now
		}
		c := rawCase{id: i, platform: "taobao", order: fmt.Sprintf("%019d", 3100000000000000000+i*7919), created: created, updated: updated}
		if rng.IntN(10) < 4 {
			c.platform = "1688"
		} else {
			c.sub = fmt.Sprintf("%019d", 4200000000000000000+i*104729)
		}
		attn := []string{"seller_refused", "reason_not_offered", "platform_error"}[rng.IntN(3)]
		p := rng.IntN(100)
		switch {
		case i <= benchCases*95/100: // the history: finished, a few stuck
			c.state = map[bool]string{true: "succeeded", false: "closed"}[p < 81]
			switch {
			case p >= 93 && p < 99:
				c.state = "cancelled"
			case p >= 99:
				c.state, c.attn = "needs_attention", attn
			}
		case p < 40:
			c.state = "waiting_seller"
		case p < 60:
			c.state = "waiting_return_shipment"
		case p < 80:
			c.state = "submitting"
			if rng.IntN(4) == 0 {
				c.attn = "waiting_evidence"
			}
		case p < 90:
			c.state, c.attn = "needs_attention", attn
		default:
			c.state = "succeeded"
		}
		if c.state != "submitting" {
			c.refund = fmt.Sprintf("RF%012d", i*31)
		}
		if rng.IntN(10) < 8 {
			c.openedBy = fmt.Sprintf("req-%016x", rng.Uint64())
		}
		cases = append(cases, c)
	}
	busy := cases[benchBusyCase-1]
	var extra []string
	var sb strings.Builder
	sb.WriteString("INSERT INTO timeline (case_id, at, kind, summary, detail) VALUES ")
	for i := range benchTimeline {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "(%d, %d, 'decision', 'step %d of a long case: waiting for the seller, then checked again', '{\"n\":%d}')",
			benchBusyCase, busy.created.UnixMilli()+int64(i)*1000, i, i)
	}
	extra = append(extra, sb.String())
	for i := range 40 {
		extra = append(extra, fmt.Sprintf(`INSERT INTO step_attempts (case_id, step, status, error_code, error_message, request_id, started_at)
			VALUES (%d, 'query', 'failed', 'E%d', 'platform busy', 'req-%d', %d)`, benchBusyCase, i%5, i, busy.created.UnixMilli()+int64(i)))
	}
	start := time.Now()
	seedRawFile(b, path, cases, extra...)
	if store == "postgres" {
		// What autovacuum does after a bulk change: without statistics the
		// planner guesses every filter's selectivity.
		analyze(b, path)
	}
	b.Logf("seeded %d cases and %d timeline rows in %v", benchCases, benchTimeline, time.Since(start).Round(time.Millisecond))

	st, err := casestore.OpenReadOnly(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	w, err = casestore.OpenExisting(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	seedAccounts(b, w)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	srv, err := New(Config{SessionKey: []byte(sessionKey)},
		Deps{Store: st, Ready: func(context.Context) error { return nil }, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	pick := cases[77777-1]
	deep := casestore.CaseFilter{Sort: defaultSort, Desc: defaultDesc}.CursorAfter(casestore.Case{ID: pick.id, UpdatedAt: pick.updated})
	return &benchConsole{h: srv.Handler(), auth: "Bearer " + viewerToken, order: pick.order, orderPrefix: pick.order[:14],
		openedBy: cases[55555-1].openedBy, refundID: cases[33333-1].refund, cursor: deep.String(), now: now, store: st}
}

// serve answers one GET in the handler and returns how long it took, on
// the wall clock and in CPU time of the process (user and system: the
// handler's goroutine, SQLite's calls in it, and any GC work it caused).
// On a machine shared with other busy processes the wall clock's tail is
// mostly time spent waiting for a core; the CPU time is the work itself.
func (bc *benchConsole) serve(b *testing.B, path string) (wall, cpu time.Duration) {
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", bc.auth)
	rec := httptest.NewRecorder()
	cpu0 := processCPU(b)
	start := time.Now()
	bc.h.ServeHTTP(rec, req)
	wall = time.Since(start)
	cpu = processCPU(b) - cpu0
	if rec.Code != http.StatusOK {
		b.Fatalf("GET %s = %d %s", path, rec.Code, rec.Body.String())
	}
	return wall, cpu
}

// poll returns a measure of one poll of an event stream of caseID (0:
// every case) followed from later than the seed's newest update by more
// than the window it reads again (changeSettle).
func (bc *benchConsole) poll(caseID int64) func(b *testing.B) (wall, cpu time.Duration) {
	f := &changeFollower{store: bc.store, caseID: caseID, ms: bc.now.Add(2 * changeSettle).UnixMilli(), sent: map[int64]sentChange{}}
	req := httptest.NewRequest("GET", eventsPath, nil)
	return func(b *testing.B) (wall, cpu time.Duration) {
		cpu0 := processCPU(b)
		start := time.Now()
		got, err := f.poll(req)
		wall = time.Since(start)
		cpu = processCPU(b) - cpu0
		if err != nil || len(got) != 0 {
			b.Fatalf("poll: %d changes, %v; want none", len(got), err)
		}
		return wall, cpu
	}
}

// processCPU is the CPU time the process has used (getrusage).
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCaseList measures the server time of the case list (API and
// page) and the case page at scale, per query shape: p50 and p99 of
// b.N requests each. docs/benchmarks.md has the figures and the command.
func BenchmarkCaseList(b *testing.B) {
	for _, store := range []string{"sqlite", "postgres"} {
		b.Run(store, func(b *testing.B) { benchCaseList(b, newBenchConsole(b, store)) })
	}
}

func benchCaseList(b *testing.B, bc *benchConsole) {
	day := func(d time.Duration) string { return bc.now.Add(-d).Format(dateLayout) }
	shapes := []struct{ name, path string }{
		{"default", "/api/v1/cases"},
		{"state", "/api/v1/cases?state=waiting_seller"},
		{"state_rare_created_asc", "/api/v1/cases?state=needs_attention&sort=created&order=asc"},
		{"state_created", "/api/v1/cases?state=waiting_seller&sort=created"},
		{"state_sort_id", "/api/v1/cases?state=waiting_seller&sort=id"},
		{"state_sort_id_asc", "/api/v1/cases?state=waiting_seller&sort=id&order=asc"},
		{"state_rare_sort_id_asc", "/api/v1/cases?state=needs_attention&sort=id&order=asc"},
		{"platform_state_sort_state", "/api/v1/cases?platform=1688&state=waiting_return_shipment&sort=state"},
		{"platform", "/api/v1/cases?platform=1688"},
		{"attention_any", "/api/v1/cases?attention=any"},
		{"attention_any_sort_created", "/api/v1/cases?attention=any&sort=created&order=asc"},
		{"attention_code_sort_id", "/api/v1/cases?attention=seller_refused&sort=id"},
		{"open_oldest", "/api/v1/cases?open=true&sort=updated&order=asc"},
		{"text_order_exact", "/api/v1/cases?q=" + bc.order},
		{"text_order_prefix", "/api/v1/cases?q=" + bc.orderPrefix},
		{"text_command", "/api/v1/cases?q=" + bc.openedBy},
		{"text_refund", "/api/v1/cases?q=" + bc.refundID},
		{"older_than_30d", "/api/v1/cases?older_than=30d"},
		{"opened_between_sort_created", "/api/v1/cases?opened_from=" + day(60*24*time.Hour) + "&opened_to=" + day(50*24*time.Hour) + "&sort=created"},
		{"opened_between_sort_updated", "/api/v1/cases?opened_from=" + day(60*24*time.Hour) + "&opened_to=" + day(50*24*time.Hour)},
		{"sort_id_asc", "/api/v1/cases?sort=id&order=asc"},
		{"sort_id_desc", "/api/v1/cases?sort=id"},
		{"sort_created_asc", "/api/v1/cases?sort=created&order=asc"},
		{"sort_created_desc", "/api/v1/cases?sort=created"},
		{"sort_updated_asc", "/api/v1/cases?sort=updated&order=asc"},
		{"sort_state_asc", "/api/v1/cases?sort=state&order=asc"},
		{"sort_state_desc", "/api/v1/cases?sort=state&order=desc"},
		{"next_page", "/api/v1/cases?cursor=" + bc.cursor},
		{"page_limit_1000", "/api/v1/cases?limit=1000"},
		{"cases_page_html", "/cases?state=waiting_seller&sort=created"},
		{"overview_html", "/"},
		{"case_page_html_1000_timeline", fmt.Sprintf("/cases/%d", benchBusyCase)},
		{"case_api_1000_timeline", fmt.Sprintf("/api/v1/cases/%d", benchBusyCase)},
	}
	// An event stream's poll (about once a second per open stream) with
	// nothing new: every case and one case, followed from now on.
	type served func(b *testing.B) (wall, cpu time.Duration)
	runs := []struct {
		name  string
		serve served
	}{
		{"events_poll_idle", bc.poll(0)},
		{"events_poll_idle_one_case", bc.poll(benchBusyCase)},
	}
	for _, sh := range shapes {
		runs = append(runs, struct {
			name  string
			serve served
		}{sh.name, func(b *testing.B) (time.Duration, time.Duration) { return bc.serve(b, sh.path) }})
	}
	for _, sh := range runs {
		b.Run(sh.name, func(b *testing.B) {
			walls, cpus := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
			for b.Loop() {
				wall, cpu := sh.serve(b)
				walls, cpus = append(walls, wall), append(cpus, cpu)
			}
			for _, m := range []struct {
				unit string
				ds   []time.Duration
			}{{"ms", walls}, {"cpu-ms", cpus}} {
				slices.Sort(m.ds)
				p50, p99 := m.ds[len(m.ds)/2], m.ds[min(len(m.ds)-1, len(m.ds)*99/100)]
				b.ReportMetric(float64(p50.Microseconds())/1000, "p50-"+m.unit)
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-"+m.unit)
			}
		})
	}
}

// analyze gathers the PostgreSQL planner's statistics of the database at
// url.
func analyze(tb testing.TB, url string) {
	tb.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("ANALYZE"); err != nil {
		tb.Fatal(err)
	}
}
