package console

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// sseEvent is one event of a text/event-stream.
type sseEvent struct {
	name, id, data string
}

// stream is an open GET /api/v1/events, its events read into a channel.
type stream struct {
	t      *testing.T
	events chan sseEvent
	done   chan struct{} // closed when the server ends the stream
	cancel context.CancelFunc
}

// openStream opens path with the header h and reads its events until it
// ends; the test's end closes it.
func (ts *testServer) openStream(path string, h http.Header) *stream {
	ts.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.http.URL+path, nil)
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		ts.t.Fatalf("GET %s = %d %s; want 200 text/event-stream", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{t: ts.t, events: make(chan sseEvent, 100), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	ts.t.Cleanup(cancel)
	return s
}

// next returns the next event, failing the test after 5 s without one.
func (s *stream) next(what string) (sseEvent, caseEventJSON) {
	s.t.Helper()
	select {
	case ev := <-s.events:
		var d caseEventJSON
		if ev.name != "case" || json.Unmarshal([]byte(ev.data), &d) != nil {
			s.t.Fatalf("%s: event %+v; want a case event with JSON data", what, ev)
		}
		return ev, d
	case <-s.done:
		s.t.Fatalf("%s: the stream ended", what)
	case <-time.After(5 * time.Second):
		s.t.Fatalf("%s: no event within 5s", what)
	}
	return sseEvent{}, caseEventJSON{}
}

// none checks that no event is queued.
func (s *stream) none(what string) {
	s.t.Helper()
	select {
	case ev := <-s.events:
		s.t.Errorf("%s: got event %+v; want none", what, ev)
	default:
	}
}

// TestEvents: a stream of one case sees a change the worker commits to it,
// and not another case's; a stream of every case sees both; reconnecting
// with Last-Event-ID resumes there (the last change comes again, with its
// version); a session opens the stream as a bearer token does; bad
// arguments are 400; CloseStreams ends open streams.
func TestEvents(t *testing.T) {
	ts := newTestServer(t,
		seedCase{order: "100", sub: "101", state: "needs_attention", attention: refundflow.AttnReasonNotOffered},
		seedCase{order: "200", sub: "201", state: "submitted"})
	a, b := ts.cases[0], ts.cases[1]
	ctx := context.Background()
	worker, err := casestore.Open(ctx, ts.path, nil)
	if err != nil {
		t.Fatalf("casestore.Open: %v", err)
	}
	defer worker.Close()
	move := func(k *casestore.Case, state, attention string) {
		t.Helper()
		if err := worker.Update(ctx, func(tx *casestore.Tx) error {
			k.State, k.AttentionCode = state, attention
			var err error
			*k, err = tx.UpdateCase(ctx, *k)
			return err
		}); err != nil {
			t.Fatalf("update case %d: %v", k.ID, err)
		}
	}
	bearer := http.Header{"Authorization": {"Bearer " + viewerToken}}
	one := ts.openStream("/api/v1/events?case="+itoa(a.ID), bearer)
	all := ts.openStream("/api/v1/events", bearer)
	cookie := ts.login(viewerName)
	bySession := ts.openStream("/api/v1/events?case="+itoa(a.ID), http.Header{"Cookie": {cookie.String()}})

	move(&b, string(refundflow.StateNeedsAttention), refundflow.AttnReasonNotOffered) // not case a
	move(&a, string(refundflow.StateClosedLocally), "")
	want := caseEventJSON{ID: a.ID, State: string(refundflow.StateClosedLocally), Version: a.Version, UpdatedAt: a.UpdatedAt}
	ev, got := one.next("stream of case a")
	if got != want {
		t.Errorf("stream of case %d: event data %+v; want %+v", a.ID, got, want)
	}
	if ev.id != itoa(a.UpdatedAt.UnixMilli()) {
		t.Errorf("event id %q; want the cursor %d", ev.id, a.UpdatedAt.UnixMilli())
	}
	one.none("stream of case a after its change")
	if _, got := bySession.next("stream opened with a session"); got != want {
		t.Errorf("stream opened with a session: %+v; want %+v", got, want)
	}
	_, first := all.next("stream of every case, first")
	_, second := all.next("stream of every case, second")
	// (In update order, or by id when both fell in one millisecond.)
	if got := map[int64]bool{first.ID: true, second.ID: true}; !got[a.ID] || !got[b.ID] {
		t.Errorf("stream of every case: cases %d and %d; want %d and %d", first.ID, second.ID, a.ID, b.ID)
	}

	// Resume after the last event: that change again (at least once), then news.
	again := ts.openStream("/api/v1/events?case="+itoa(a.ID), http.Header{"Authorization": {"Bearer " + viewerToken}, "Last-Event-Id": {ev.id}})
	if _, got := again.next("resumed stream"); got.Version != a.Version {
		t.Errorf("resumed stream: version %d; want %d again", got.Version, a.Version)
	}
	move(&a, string(refundflow.StateClosedLocally), "")
	if _, got := again.next("resumed stream, news"); got.Version != a.Version {
		t.Errorf("resumed stream after another change: version %d; want %d", got.Version, a.Version)
	}

	for _, path := range []string{"/api/v1/events?case=x", "/api/v1/events?case=0", "/api/v1/events?cursor=-3"} {
		if r := ts.do("GET", path, viewerToken, nil); r.status != http.StatusBadRequest || errorCode(t, r.body) != CodeInvalidArgument {
			t.Errorf("GET %s = %d %s; want 400 invalid_argument", path, r.status, r.body)
		}
	}

	ts.srv.CloseStreams()
	for name, s := range map[string]*stream{"one": one, "all": all, "session": bySession, "resumed": again} {
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Errorf("stream %s still open 5s after CloseStreams", name)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestLiveCasePage: the case page loads its live script from the binary,
// under a CSP that allows it and the stream (and no inline script), and
// names the case, version and cursor the script follows from.
func TestLiveCasePage(t *testing.T) {
	ts := newTestServer(t, seedCase{order: "100", sub: "101", state: "needs_attention", attention: refundflow.AttnReasonNotOffered})
	k := ts.cases[0]
	cookie := "cookie:" + ts.login(operatorName).Value
	r := ts.do("GET", "/cases/"+itoa(k.ID), cookie, nil)
	csp := r.header.Get("Content-Security-Policy")
	directives := map[string]bool{}
	for _, d := range strings.Split(csp, ";") {
		directives[strings.TrimSpace(d)] = true
	}
	for _, want := range []string{"script-src 'self'", "connect-src 'self'"} {
		if !directives[want] {
			t.Errorf("case page CSP %q; want the directive %s (exactly: no inline script)", csp, want)
		}
	}
	for _, want := range []string{`<script src="/static/case.js" defer></script>`, `data-case="` + itoa(k.ID) + `"`,
		`data-version="` + itoa(k.Version) + `"`, `data-cursor="` + itoa(k.UpdatedAt.UnixMilli()) + `"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("case page lacks %s", want)
		}
	}
	js := ts.do("GET", "/static/case.js", cookie, nil)
	if js.status != http.StatusOK || !strings.Contains(js.header.Get("Content-Type"), "javascript") || !strings.Contains(js.body, "/api/v1/events?case=") {
		t.Errorf("GET /static/case.js = %d %s; want 200, the script", js.status, js.header.Get("Content-Type"))
	}
}

// TestAChangeCommittedBehindItsStampIsStillSent: a transaction stamps
// updated_at when it starts. On PostgreSQL several writers, on several
// hosts, commit side by side, so one that started first can commit after
// another's later stamp was sent: the stream moved its cursor past it and
// never sent that change (the case page kept showing the case as it was
// until it changed again). The follower now reads again the last
// changeSettle behind its cursor and sends what it has not sent, by
// version. Here the late commit is written into the store's file as
// PostgreSQL would leave it: a newer version under an older stamp.
func TestAChangeCommittedBehindItsStampIsStillSent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "refunds.db")
	st, err := casestore.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var ids []int64
	for _, order := range []string{"o1", "o2"} {
		if err := st.Update(ctx, func(tx *casestore.Tx) error {
			c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: order, SubOrderID: order + "-1", State: "requested"})
			ids = append(ids, c.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// commit writes version of case id stamped at ms, as a transaction that
	// committed then would leave it.
	commit := func(id, version, ms int64) {
		if _, err := db.ExecContext(ctx, `UPDATE cases SET version = ?, updated_at = ? WHERE id = ?`, version, ms, id); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UnixMilli()
	for _, tc := range []struct {
		name   string
		caseID int64
	}{{"one case's stream", ids[0]}, {"every case's stream", 0}} {
		f := &changeFollower{store: st, caseID: tc.caseID, ms: now, sent: map[int64]sentChange{}}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		commit(ids[0], 10, now+1000)
		if got, err := f.poll(req); err != nil || len(got) != 1 || got[0].Version != 10 {
			t.Fatalf("%s: first poll %+v, %v; want case %d version 10", tc.name, got, err, ids[0])
		}
		commit(ids[0], 11, now+900) // started before version 10's transaction, committed after it
		if tc.caseID == 0 {
			commit(ids[1], 10, now+800)
		}
		got, err := f.poll(req)
		if err != nil {
			t.Fatal(err)
		}
		var versions []string
		for _, c := range got {
			versions = append(versions, strconv.FormatInt(c.ID, 10)+"@"+strconv.FormatInt(c.Version, 10))
		}
		want := []string{strconv.FormatInt(ids[0], 10) + "@11"}
		if tc.caseID == 0 {
			want = []string{strconv.FormatInt(ids[1], 10) + "@10", strconv.FormatInt(ids[0], 10) + "@11"}
		}
		if strings.Join(versions, " ") != strings.Join(want, " ") {
			t.Errorf("%s: poll after commits behind the cursor = %v; want %v", tc.name, versions, want)
		}
		if got, err := f.poll(req); err != nil || len(got) != 0 {
			t.Errorf("%s: a third poll = %+v, %v; want nothing (all sent)", tc.name, got, err)
		}
		commit(ids[0], 1, now) // the next case stream starts again
		commit(ids[1], 1, now)
		now += 10_000
	}
}
