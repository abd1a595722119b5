package console

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the raw writer of seedRaw
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casecsv"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// rawCase is a case row written straight into the store's file.
type rawCase struct {
	id                   int64
	platform, order, sub string
	refund, state, attn  string
	openedBy, request    string
	created, updated     time.Time
}

// seedRaw writes cases (and extra SQL statements) into the console's store
// file in one transaction, as the benchmark does: a direct writer on the
// worker's file, which the console reads read-only.
func (ts *testServer) seedRaw(cases []rawCase, extra ...string) {
	ts.t.Helper()
	seedRawFile(ts.t, ts.path, cases, extra...)
}

// seedRawFile writes cases and extra statements into the store at target
// (a SQLite file's path or a PostgreSQL URL, migrated already) in one
// transaction.
func seedRawFile(tb testing.TB, target string, cases []rawCase, extra ...string) {
	tb.Helper()
	driver, dsn, marks := "sqlite3", "file:"+target+"?_busy_timeout=5000&_txlock=immediate", "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
	if casestore.IsURL(target) {
		driver, dsn, marks = "pgx", target, "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	ins, err := tx.Prepare(`INSERT INTO cases (id, platform, order_id, sub_order_id, refund_id, state, attention_code, attention_message,
		opened_by, request, created_at, updated_at, moved_at, duplicate_of) VALUES (` + marks + `)`)
	if err != nil {
		tb.Fatal(err)
	}
	for _, c := range cases {
		if c.request == "" {
			c.request = "{}"
		}
		msg := ""
		if c.attn != "" {
			msg = "the seller refused"
		}
		// duplicate_of = id keeps the one-open-case-per-1688-order index
		// out of the way of synthetic orders.
		if _, err := ins.Exec(c.id, c.platform, c.order, c.sub, c.refund, c.state, c.attn, msg,
			c.openedBy, c.request, c.created.UnixMilli(), c.updated.UnixMilli(), c.updated.UnixMilli(), c.id); err != nil { // (moved when last updated)
			tb.Fatalf("seed case %d: %v", c.id, err)
		}
	}
	for _, q := range extra {
		if _, err := tx.Exec(q); err != nil {
			tb.Fatalf("seed %q: %v", q, err)
		}
	}
	if driver == "pgx" {
		// The ids were given: move the identity past them, so that a
		// case created after the seed gets a free one.
		if _, err := tx.Exec(`SELECT setval(pg_get_serial_sequence('cases', 'id'), (SELECT max(id) FROM cases))`); err != nil {
			tb.Fatalf("seed: %v", err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// listCasesAPI reads one page of GET /api/v1/cases?query.
func (ts *testServer) listCasesAPI(query string) ([]int64, string) {
	ts.t.Helper()
	r := ts.do("GET", "/api/v1/cases?"+query, viewerToken, nil)
	if r.status != http.StatusOK {
		ts.t.Fatalf("GET /api/v1/cases?%s = %d %s", query, r.status, r.body)
	}
	var out casesJSON
	if err := json.Unmarshal([]byte(r.body), &out); err != nil {
		ts.t.Fatal(err)
	}
	var ids []int64
	for _, c := range out.Cases {
		ids = append(ids, c.ID)
	}
	return ids, out.NextCursor
}

// listFixture: twelve cases on known days, states and ids; "now" is the
// real clock (the console's), the times are set back from it.
func listFixture(t *testing.T) (*testServer, time.Time) {
	ts := newTestServer(t)
	now := time.Now().UTC()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 12, 0, 0, 0, time.UTC) }
	var cases []rawCase
	for i := int64(1); i <= 12; i++ {
		c := rawCase{id: i, platform: "taobao", order: fmt.Sprintf("T%04d", 1000+i), sub: fmt.Sprintf("S%04d", 2000+i),
			state: "waiting_seller", openedBy: fmt.Sprintf("cmd-%02d", i), created: day(int(i)), updated: now.Add(-time.Duration(i) * time.Hour)}
		if i%3 == 0 {
			c.platform, c.sub = "1688", ""
		}
		if i%4 == 0 {
			c.state, c.refund = "succeeded", fmt.Sprintf("R%04d", 3000+i)
		}
		if i == 5 || i == 7 {
			c.state, c.attn = "needs_attention", "seller_refused"
		}
		cases = append(cases, c)
	}
	ts.seedRaw(cases, `INSERT INTO command_outcomes (command_id, verdict, case_id, recorded_at) VALUES ('cmd-resolve-9', 'applied', 9, 1)`)
	return ts, now
}

// TestCaseListFilters: each filter of the API keeps exactly its cases.
func TestCaseListFilters(t *testing.T) {
	ts, _ := listFixture(t)
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"platform=1688", []int64{3, 6, 9, 12}},
		{"state=succeeded", []int64{4, 8, 12}},
		{"open=true", []int64{1, 2, 3, 5, 6, 7, 9, 10, 11}},
		{"attention=any", []int64{5, 7}},
		{"attention=seller_refused", []int64{5, 7}},
		{"attention=reason_not_offered", nil},
		{"q=T1003", []int64{3}},                        // exact order id
		{"q=T100", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9}}, // order id prefix
		{"q=S2011", []int64{11}},                       // sub-order id
		{"q=R3008", []int64{8}},                        // refund id
		{"q=cmd-1", []int64{10, 11, 12}},               // opening command id prefix
		{"q=cmd-resolve-9", []int64{9}},                // a command applied to a case
		{"q=nothing", nil},
		{"older_than=150m", []int64{3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"older_than=10h30m", []int64{11, 12}},
		{"opened_from=2026-11-03&opened_to=2026-11-05", []int64{3, 4, 5}},
		{"opened_from=2026-11-11", []int64{11, 12}},
		{"opened_to=2026-11-01", []int64{1}},
		{"platform=taobao&state=succeeded&q=T100", []int64{4, 8}},
	} {
		got, _ := ts.listCasesAPI("sort=id&order=asc&" + tc.query)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("GET /api/v1/cases?%s = %v; want %v", tc.query, got, tc.want)
		}
	}
}

// TestCaseListSortsAndPages: every order, both directions, pages of 5
// through runs of equal keys: each case once, in the order's sequence.
func TestCaseListSortsAndPages(t *testing.T) {
	ts := newTestServer(t)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	states := []string{"waiting_seller", "succeeded", "needs_attention"}
	var cases []rawCase
	for i := int64(1); i <= 37; i++ {
		cases = append(cases, rawCase{id: i, platform: "taobao", order: fmt.Sprint(100 + i), sub: fmt.Sprint(200 + i), state: states[i%3],
			created: base.Add(time.Duration(i%2) * time.Hour), updated: base.Add(time.Duration(i%4) * time.Minute)})
	}
	ts.seedRaw(cases)
	key := func(c rawCase, sort string) string {
		switch sort {
		case "updated":
			return fmt.Sprintf("%d/%03d", c.updated.UnixMilli(), c.id)
		case "created":
			return fmt.Sprintf("%d/%03d", c.created.UnixMilli(), c.id)
		case "state":
			return fmt.Sprintf("%s/%d/%03d", c.state, c.updated.UnixMilli(), c.id)
		}
		return fmt.Sprintf("%03d", c.id)
	}
	for _, sort := range casestore.CaseSorts() {
		for _, order := range []string{"asc", "desc"} {
			want := slices.Clone(cases)
			slices.SortFunc(want, func(a, b rawCase) int {
				if order == "desc" {
					a, b = b, a
				}
				return strings.Compare(key(a, string(sort)), key(b, string(sort)))
			})
			var wantIDs, got []int64
			for _, c := range want {
				wantIDs = append(wantIDs, c.id)
			}
			q := "limit=5&sort=" + string(sort) + "&order=" + order
			cursor := ""
			for pages := 0; ; pages++ {
				ids, next := ts.listCasesAPI(q + cursor)
				got = append(got, ids...)
				if next == "" {
					break
				}
				if pages > 10 {
					t.Fatalf("%s: paging does not end", q)
				}
				cursor = "&cursor=" + url.QueryEscape(next)
			}
			if fmt.Sprint(got) != fmt.Sprint(wantIDs) {
				t.Errorf("%s: pages = %v; want %v", q, got, wantIDs)
			}
		}
	}
	// A cursor of one order is refused under another, naming the cursor.
	_, next := ts.listCasesAPI("limit=5&sort=created")
	r := ts.do("GET", "/api/v1/cases?sort=updated&cursor="+url.QueryEscape(next), viewerToken, nil)
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, `"param":"cursor"`) {
		t.Errorf("a created-order cursor under sort=updated = %d %s; want 400 naming cursor", r.status, r.body)
	}
}

// TestCaseListBadParams: each bad parameter is answered 400
// invalid_argument naming it (API), or beside the filter form with no
// list, and nothing to keep live (page).
func TestCaseListBadParams(t *testing.T) {
	ts, _ := listFixture(t)
	cookie := "cookie:" + ts.login(viewerName).Value
	for _, tc := range []struct{ query, param string }{
		{"platform=amazon", "platform"}, {"state=lost", "state"}, {"attention=bored", "attention"}, {"open=yes", "open"},
		{"q=" + strings.Repeat("9", 65), "q"}, {"q=a%0Ab", "q"}, {"older_than=soon", "older_than"}, {"older_than=-2h", "older_than"},
		{"older_than=0d", "older_than"}, {"opened_from=yesterday", "opened_from"}, {"opened_to=2026-13-01", "opened_to"},
		{"opened_from=2026-11-05&opened_to=2026-11-04", "opened_to"}, {"sort=price", "sort"}, {"order=up", "order"},
		{"cursor=x", "cursor"}, {"cursor=MTIz", "cursor"}, {"limit=0", "limit"}, {"limit=5000", "limit"},
	} {
		for _, path := range []string{"/api/v1/cases?", "/api/v1/cases.csv?"} {
			r := ts.do("GET", path+tc.query, viewerToken, nil)
			var body errorBody
			if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != http.StatusBadRequest ||
				body.Error.Code != CodeInvalidArgument || body.Error.Param != tc.param || !strings.HasPrefix(body.Error.Message, tc.param+": ") {
				t.Errorf("GET %s%s = %d %s; want 400 invalid_argument naming %s", path, tc.query, r.status, r.body, tc.param)
			}
		}
		r := ts.do("GET", "/cases?"+tc.query, cookie, nil)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, `id="filter-error">`+tc.param+": ") ||
			!strings.Contains(r.body, `<form method="get" action="/cases" id="filters">`) || strings.Contains(r.body, `id="cases"`) ||
			strings.Contains(r.body, `id="live-list"`) {
			t.Errorf("GET /cases?%s = %d; want 400, the form with the message naming %s, no list:\n%s", tc.query, r.status, tc.param, r.body)
		}
	}
}

// TestCaseListCSV: the export is every case the filters select (beyond
// one store page), in the list's order, casecsv's header first, values
// with commas, quotes and line breaks quoted, and a complete trailer; the
// page links to it with its filters.
func TestCaseListCSV(t *testing.T) {
	ts := newTestServer(t)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	const n = casestore.MaxListLimit + 25
	var cases []rawCase
	for i := int64(1); i <= n; i++ {
		c := rawCase{id: i, platform: "taobao", order: fmt.Sprint(100000 + i), sub: fmt.Sprint(200000 + i), state: "waiting_seller",
			openedBy: fmt.Sprintf("cmd-%d", i), created: base, updated: base.Add(time.Duration(i) * time.Second)}
		if i%10 == 0 {
			c.state = "succeeded"
		}
		if i == 7 {
			c.request = `{"goodsStatus":"1","reasonId":1004,"amount":900,"description":"broken, \"badly\"\nreturned"}`
		}
		cases = append(cases, c)
	}
	ts.seedRaw(cases)

	r := ts.do("GET", "/api/v1/cases.csv?state=waiting_seller&sort=updated&order=desc&limit=3&cursor=", viewerToken, nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("GET /api/v1/cases.csv = %d %s %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	recs, err := csv.NewReader(strings.NewReader(r.body)).ReadAll()
	if err != nil {
		t.Fatalf("read the export: %v", err)
	}
	if !slices.Equal(recs[0], casecsv.Header()) {
		t.Errorf("header = %q; want %q", recs[0], casecsv.Header())
	}
	col := slices.Index(recs[0], "case-id")
	var got []string
	var row7 []string
	for _, rec := range recs[1:] {
		got = append(got, rec[col])
		if rec[col] == "7" {
			row7 = rec
		}
	}
	var want []string
	for i := int64(n); i >= 1; i-- {
		if i%10 != 0 {
			want = append(want, fmt.Sprint(i))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("export: %d rows from %v; want the %d waiting cases, newest update first", len(got), got[:min(3, len(got))], len(want))
	}
	if d := slices.Index(recs[0], "description"); row7 == nil || row7[d] != "broken, \"badly\"\nreturned" ||
		!strings.Contains(r.body, `"broken, ""badly""`+"\nreturned\"") {
		t.Errorf("case 7's description = %q; want it quoted and read back whole", row7)
	}

	// Through a real client, the trailer arrives after the body.
	req, _ := http.NewRequest("GET", ts.http.URL+"/api/v1/cases.csv?q=10002", nil)
	req.Header.Set("Authorization", "Bearer "+viewerToken)
	resp, err := ts.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	recs, err = csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || len(recs) != 1+10 || resp.Trailer.Get(exportStatusTrailer) != "complete 10 rows" {
		t.Errorf("export of q=10002: %d records, %v, trailer %q; want the header, 10 rows, complete", len(recs), err, resp.Trailer.Get(exportStatusTrailer))
	}

	cookie := "cookie:" + ts.login(viewerName).Value
	page := ts.do("GET", "/cases?state=waiting_seller&sort=created&limit=10", cookie, nil)
	if !strings.Contains(page.body, `href="/cases.csv?sort=created&amp;state=waiting_seller"`) {
		t.Errorf("cases page: no export link with its filters and order:\n%s", page.body)
	}
	if r := ts.do("GET", "/cases.csv?state=succeeded", cookie, nil); r.status != 200 || strings.Count(r.body, "\n") != 1+n/10 {
		t.Errorf("GET /cases.csv?state=succeeded with a session = %d, %d lines; want the header and %d rows", r.status, strings.Count(r.body, "\n"), n/10)
	}
	if r := ts.do("GET", "/api/v1/cases.csv", "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("export without credentials = %d; want 401", r.status)
	}
}

// TestCasesPageLinks: the page's column headers sort (the current one
// marked and reversing), its pages chain through next links, and a later
// page links back to the first.
func TestCasesPageLinks(t *testing.T) {
	ts, _ := listFixture(t)
	cookie := "cookie:" + ts.login(viewerName).Value
	r := ts.do("GET", "/cases?sort=created&order=asc&limit=5", cookie, nil)
	for _, want := range []string{
		`aria-sort="ascending"><a href="/cases?sort=created">Created ▲</a>`,
		`aria-sort="none"><a href="/cases?">Updated </a>`,
		`aria-sort="none"><a href="/cases?order=asc&amp;sort=state">State </a>`,
		`rel="next"`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("cases page lacks %s", want)
		}
	}
	seen := 0
	path := "/cases?sort=created&order=asc&limit=5"
	for pages := 0; pages < 5; pages++ {
		r := ts.do("GET", path, cookie, nil)
		seen += strings.Count(r.body, `<tr data-case=`)
		i := strings.Index(r.body, `rel="next"`)
		if i < 0 {
			break
		}
		if pages == 0 && strings.Contains(r.body, `id="first"`) {
			t.Error("the first page links to the first page")
		}
		h := r.body[strings.LastIndex(r.body[:i], `href="`)+6 : i-2]
		path = strings.ReplaceAll(h, "&amp;", "&")
	}
	if seen != 12 {
		t.Errorf("pages of 5 through the next links: %d rows; want 12", seen)
	}
}

// TestOverview: counts by platform and state linked to their lists, the
// cases needing attention with their reason, the oldest open cases, and
// the last platform errors, newest first; for operators, a link to the
// request form.
func TestOverview(t *testing.T) {
	ts, _ := listFixture(t)
	ts.seedRaw(nil,
		`INSERT INTO step_attempts (case_id, step, status, error_code, error_message, request_id, started_at) VALUES (2, 'submit', 'failed', 'E_OLD', 'older failure', 'req-1', 1000)`,
		`INSERT INTO step_attempts (case_id, step, status, error_code, error_message, request_id, started_at) VALUES (3, 'render', 'failed', 'E_NEW', 'stock changed', 'req-2', 2000)`,
		`INSERT INTO step_attempts (case_id, step, status, started_at) VALUES (4, 'render', 'done', 3000)`,
		// Case 11, the oldest, checked by the worker just now: a write
		// that did not move it. It still waits longest (it was listed
		// last, by its update).
		`UPDATE cases SET updated_at = 4102444800000 WHERE id = 11`)
	cookie := "cookie:" + ts.login(viewerName).Value
	r := ts.do("GET", "/", cookie, nil)
	for _, want := range []string{
		`<a href="/cases?open=true">9 open case(s)</a>`,
		`<a href="/cases?platform=taobao&amp;state=waiting_seller">4</a>`, // 1, 2, 10, 11
		`<a href="/cases?platform=1688&amp;state=waiting_seller">3</a>`,   // 3, 6, 9
		`<a href="/cases?attention=seller_refused">2</a>`,
		`<strong>seller_refused</strong>: the seller refused`,
		`<script src="/static/live.js" defer></script>`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("overview lacks %s", want)
		}
	}
	// Operators find the request form from the overview; viewers cannot file one.
	if strings.Contains(r.body, `id="new-request"`) {
		t.Errorf("viewer's overview links to the request form")
	}
	if op := ts.do("GET", "/", "cookie:"+ts.login(operatorName).Value, nil); !strings.Contains(op.body, `<p id="new-request"><a href="/requests/new">`) {
		t.Errorf("operator's overview has no link to the request form")
	}
	oldest := r.body[strings.Index(r.body, `id="oldest"`):]
	oldest = oldest[:strings.Index(oldest, "</table>")]
	if i11, i10, i1 := strings.Index(oldest, `/cases/11"`), strings.Index(oldest, `/cases/10"`), strings.Index(oldest, `/cases/1"`); i11 < 0 || i11 > i10 || i10 > i1 || strings.Contains(oldest, `/cases/12"`) {
		t.Errorf("oldest open cases: want 11, 10, …, 1 (12 is finished):\n%s", oldest)
	}
	// Its page says when it last moved, not the check's time.
	page := ts.do("GET", "/cases/11", cookie, nil).body
	cell := ""
	if _, rest, ok := strings.Cut(page, `<th scope="row">Last moved</th><td>`); ok {
		cell, _, _ = strings.Cut(rest, "</td>")
	}
	if at, err := time.Parse("2006-01-02 15:04:05 UTC", cell); err != nil || time.Since(at) < 10*time.Hour || time.Since(at) > 12*time.Hour {
		t.Errorf("case 11's page says it last moved at %q; want 11 hours ago (seeded), not the check in 2100", cell)
	}
	errs := r.body[strings.Index(r.body, `id="step-errors"`):]
	if iNew, iOld := strings.Index(errs, "E_NEW stock changed"), strings.Index(errs, "E_OLD"); iNew < 0 || iOld < iNew || strings.Contains(errs[:strings.Index(errs, "</table>")], `/cases/4"`) {
		t.Errorf("last platform errors: want E_NEW then E_OLD, not the step without an error:\n%s", errs)
	}
}

// TestOverviewConsumerLag: the overview lists every durable consumer's
// backlog read from JetStream (not ephemeral readers), and says why the
// lag is unknown when NATS does not answer.
func TestOverviewConsumerLag(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	stream := events.DefaultWorkStreamsConfig().CommandStream
	if _, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: "refund-worker", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, events.CommandSubject("taobao", "cancel", ""), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	ts := newTestServerOn(t, js)
	cookie := "cookie:" + ts.login(viewerName).Value
	r := ts.do("GET", "/", cookie, nil)
	lag := r.body[strings.Index(r.body, `id="lag"`):]
	lag = lag[:strings.Index(lag, "</table>")]
	if want := "<tr><td>" + stream + "</td><td>refund-worker</td><td>3</td><td>0</td></tr>"; !strings.Contains(lag, want) || strings.Count(lag, "<tr><td>") != 1 {
		t.Errorf("consumer lag table:\n%s\nwant the one durable consumer: %s", lag, want)
	}
	ns.Stop()
	r = ts.do("GET", "/", cookie, nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, `<p id="lag">Unknown: `) {
		t.Errorf("overview with NATS down = %d; want the page, the lag unknown and why:\n%s", r.status, r.body)
	}
}

// TestCasePageTimelinePages: a case page shows the newest timelinePage
// timeline entries in time order, and Older and Newer links walk the whole
// timeline, each entry on exactly one page (only the newest page's table
// is the one case.js keeps live); the API answers it whole.
func TestCasePageTimelinePages(t *testing.T) {
	ts := newTestServer(t)
	const n = 2*timelinePage + 7
	var extra []string
	for i := 1; i <= n; i++ {
		extra = append(extra, fmt.Sprintf(`INSERT INTO timeline (id, case_id, at, kind, summary) VALUES (%d, 1, %d, 'decision', 'entry %04d')`, i, i, i))
	}
	ts.seedRaw([]rawCase{{id: 1, platform: "taobao", order: "1", sub: "2", state: "waiting_seller", created: time.Now(), updated: time.Now()}}, extra...)
	cookie := "cookie:" + ts.login(viewerName).Value
	link := func(body, id string) string {
		i := strings.Index(body, `id="`+id+`"`)
		if i < 0 {
			return ""
		}
		h := body[strings.LastIndex(body[:i], `href="`)+6 : i-2]
		return strings.ReplaceAll(h, "&amp;", "&")
	}
	entries := func(body string) []string {
		var out []string
		for _, part := range strings.Split(body, "<td>entry ")[1:] {
			out = append(out, part[:4])
		}
		return out
	}
	var seen []string
	path := "/cases/1"
	var sizes []int
	for pages := 0; path != ""; pages++ {
		r := ts.do("GET", path, cookie, nil)
		if r.status != http.StatusOK || pages > 5 {
			t.Fatalf("GET %s = %d (page %d)", path, r.status, pages)
		}
		es := entries(r.body)
		if !slices.IsSorted(es) {
			t.Errorf("%s: entries not in time order: %v", path, es)
		}
		sizes = append(sizes, len(es))
		seen = append(es, seen...)
		if pages > 0 && (link(r.body, "timeline-newer") == "" || strings.Contains(r.body, `id="timeline"`)) {
			t.Errorf("%s: an older page without a Newer link, or with the table the live script replaces", path)
		}
		path = link(r.body, "timeline-older")
	}
	if fmt.Sprint(sizes) != fmt.Sprint([]int{timelinePage, timelinePage, 7}) || len(seen) != n || seen[0] != "0001" || seen[n-1] != fmt.Sprintf("%04d", n) {
		t.Errorf("pages of %v entries, %d in all from %s; want %d, %d and 7: every entry once", sizes, len(seen), seen[0], timelinePage, timelinePage)
	}
	if r := ts.do("GET", "/cases/1?timeline_before=x", cookie, nil); r.status != http.StatusBadRequest || !strings.Contains(r.body, "timeline_before") {
		t.Errorf("GET /cases/1?timeline_before=x = %d; want 400 naming timeline_before", r.status)
	}
	var d caseDetailJSON
	if err := json.Unmarshal([]byte(ts.do("GET", "/api/v1/cases/1", viewerToken, nil).body), &d); err != nil || len(d.Timeline) != n {
		t.Errorf("API case timeline: %d entries, %v; want all %d", len(d.Timeline), err, n)
	}
}

// TestExportFlushesTheRowsBeforeAFailure: when the store fails midway
// through an export, the rows already written still reach the client (the
// CSV writer's buffer is flushed), and the count the X-Export-Status
// trailer reports ("failed after N rows") is those rows, the header apart.
func TestExportFlushesTheRowsBeforeAFailure(t *testing.T) {
	var out bytes.Buffer
	broke := errors.New("store gone")
	n, err := writeExport(&out, func(fn func(casestore.Case) error) error {
		for i := int64(1); i <= 2; i++ {
			if err := fn(casestore.Case{ID: i, Platform: casestore.PlatformTaobao, OrderID: fmt.Sprint(1000 + i), State: "requested"}); err != nil {
				return err
			}
		}
		return broke
	})
	if !errors.Is(err, broke) || n != 2 {
		t.Fatalf("writeExport = %d, %v; want 2 rows and the store's error", n, err)
	}
	recs, rerr := csv.NewReader(&out).ReadAll()
	if rerr != nil || len(recs) != 3 || recs[1][1] != "1001" || recs[2][1] != "1002" {
		t.Errorf("the client got %q (%v); want the header and both rows", recs, rerr)
	}
}
