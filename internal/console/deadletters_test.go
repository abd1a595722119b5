package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
)

// dlServer is a console with the dead-letter write handle, on a temp case
// store and an embedded JetStream with the command stream (where retried
// commands go); w seeds the store and reads it back.
type dlServer struct {
	*testServer
	w  *casestore.Store
	js jetstream.JetStream
}

func newDLServer(t *testing.T) *dlServer {
	t.Helper()
	return newDLServerTraced(t, nil)
}

// newDLServerTraced is newDLServer with tracer (nil: tracing off).
func newDLServerTraced(t *testing.T, tracer trace.Tracer) *dlServer {
	t.Helper()
	ctx := context.Background()
	js := eventstest.Start(t).JetStream()
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "refunds.db")
	w, err := casestore.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	ro, err := casestore.OpenReadOnly(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	dl, err := casestore.OpenExisting(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	seedAccounts(t, w)
	srv, err := New(Config{SessionKey: []byte(sessionKey)},
		Deps{Store: ro, DeadLetters: dl, JetStream: js, Ready: func(context.Context) error { return nil }, Logger: slog.New(slog.DiscardHandler),
			Tracer: tracer})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, srv: srv, http: httptest.NewServer(srv.Handler()), path: path}
	t.Cleanup(ts.http.Close)
	return &dlServer{testServer: ts, w: w, js: js}
}

var t0 = time.Date(2026, 5, 20, 8, 0, 0, 0, time.UTC)

// seed stores dead letters and returns their ids.
func (s *dlServer) seed(dls ...casestore.DeadLetter) []int64 {
	s.t.Helper()
	ctx := context.Background()
	var ids []int64
	err := s.w.Update(ctx, func(tx *casestore.Tx) error {
		for _, d := range dls {
			id, _, err := tx.InsertDeadLetter(ctx, d)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return ids
}

func (s *dlServer) letter(id int64) casestore.DeadLetter {
	s.t.Helper()
	d, err := s.w.DeadLetter(context.Background(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

// published is how many messages the command stream holds.
func (s *dlServer) published() uint64 { return commandsStored(s.t, s.js) }

func deadCmd(n int, caseID int64, reason events.DeadReason, errText string, at time.Time) casestore.DeadLetter {
	id := fmt.Sprintf("cmd-%024d", n)
	return casestore.DeadLetter{MsgID: id, Subject: "commands.taobao.cancel", CreatedAt: at, Reason: string(reason), Error: errText,
		Headers:    map[string][]string{"Cmd-Kind": {"cancel"}},
		Payload:    []byte(fmt.Sprintf(`{"id":%q,"kind":"cancel","platform":"taobao","caseId":%d}`, id, caseID)),
		Deliveries: 5}
}

const busy = `retry after 30s: refund.apply: platform error code 4001 "busy"`

// TestDeadLetterPages: the grouped page shows each reason and platform
// code with its count, first and last seen and cases; a letter's page
// shows its payload (indented JSON, escaped text, base64), headers and
// history; operators get the forms, viewers none; a bad filter is 400 and
// a bad id 404.
func TestDeadLetterPages(t *testing.T) {
	s := newDLServer(t)
	ids := s.seed(deadCmd(1, 7, events.DeadMaxDeliveries, busy, t0),
		deadCmd(2, 9, events.DeadMaxDeliveries, busy, t0.Add(time.Hour)),
		deadCmd(3, 7, events.DeadPermanentError, "case 7 closed", t0.Add(2*time.Hour)),
		casestore.DeadLetter{MsgID: "cb-bin", Subject: "callbacks.1688.ORDER_CREATE", Payload: []byte{0xff, 0xfe, 'x'},
			Reason: string(events.DeadUndecodable), Error: "not an envelope", CreatedAt: t0},
		casestore.DeadLetter{MsgID: "cb-html", Subject: "callbacks.1688.ORDER_CREATE", Payload: []byte(`<script>alert(1)</script>`),
			Reason: string(events.DeadUndecodable), Error: "not an envelope", CreatedAt: t0})
	op, viewer := s.login(operatorName), s.login(viewerName)

	page := s.do("GET", "/dead-letters", "cookie:"+viewer.Value, nil)
	if page.status != 200 {
		t.Fatalf("GET /dead-letters = %d %s", page.status, page.body)
	}
	row := regexp.MustCompile(`(?s)<tr class="dl-group" data-reason="max_deliveries" data-code="4001">(.*?)</tr>`).FindStringSubmatch(page.body)
	if row == nil {
		t.Fatalf("no max_deliveries/4001 group on the page:\n%s", page.body)
	}
	for _, want := range []string{`<td class="dl-count">2</td>`, "2026-05-20 08:00:00 UTC", "2026-05-20 09:00:00 UTC",
		`<a href="/cases/7">7</a>`, `<a href="/cases/9">9</a>`, fmt.Sprintf(`<a href="/dead-letters/%d">`, ids[0])} {
		if !strings.Contains(row[1], want) {
			t.Errorf("group max_deliveries/4001 lacks %q:\n%s", want, row[1])
		}
	}
	if !strings.Contains(page.body, `data-reason="undecodable" data-code=""`) || !strings.Contains(page.body, `data-reason="permanent_error" data-code=""`) {
		t.Errorf("page lacks the undecodable or permanent_error group:\n%s", page.body)
	}
	if strings.Contains(page.body, `action="/dead-letters/bulk"`) {
		t.Error("a viewer's page offers bulk forms")
	}
	if opPage := s.do("GET", "/dead-letters", "cookie:"+op.Value, nil); !strings.Contains(opPage.body, `action="/dead-letters/bulk"`) {
		t.Error("an operator's page offers no bulk form")
	}
	filtered := s.do("GET", "/dead-letters?code=4001&reason=max_deliveries", "cookie:"+viewer.Value, nil)
	if n := strings.Count(filtered.body, `class="dl-group"`); n != 1 {
		t.Errorf("filtered by code 4001: %d groups; want 1", n)
	}

	one := s.do("GET", fmt.Sprintf("/dead-letters/%d", ids[0]), "cookie:"+op.Value, nil)
	for _, want := range []string{"{\n  &#34;id&#34;: &#34;cmd-", "Cmd-Kind", "4001", "dead after 5 deliveries", `id="retry"`, `id="discard"`} {
		if !strings.Contains(one.body, want) {
			t.Errorf("dead letter %d page lacks %q", ids[0], want)
		}
	}
	if strings.Contains(one.body, `name="force"`) {
		t.Error("a max_deliveries letter's retry form has a force box; only permanent failures need one")
	}
	if perm := s.do("GET", fmt.Sprintf("/dead-letters/%d", ids[2]), "cookie:"+op.Value, nil); !strings.Contains(perm.body, `name="force"`) {
		t.Error("a permanent failure's retry form has no force box")
	}
	if bin := s.do("GET", fmt.Sprintf("/dead-letters/%d", ids[3]), "cookie:"+viewer.Value, nil); !strings.Contains(bin.body, "//54") || strings.Contains(bin.body, `id="retry"`) {
		t.Errorf("binary letter page: want base64 //54 and no forms for a viewer:\n%s", bin.body)
	}
	if h := s.do("GET", fmt.Sprintf("/dead-letters/%d", ids[4]), "cookie:"+viewer.Value, nil); strings.Contains(h.body, "<script>alert") ||
		!strings.Contains(h.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("text payload not escaped:\n%s", h.body)
	}

	for _, tc := range []struct {
		path string
		want int
	}{
		{"/dead-letters?state=new", 400},
		{"/dead-letters?reason=nope", 400},
		{"/dead-letters?subject=a..b", 400},
		{"/dead-letters/x", 404},
		{"/dead-letters/0", 404},
		{"/dead-letters/999", 404},
		{"/api/v1/dead-letters/groups?state=new", 400},
		{"/api/v1/dead-letters/x", 404},
		{"/api/v1/dead-letters/999", 404},
	} {
		auth := "cookie:" + viewer.Value
		if strings.HasPrefix(tc.path, "/api/") {
			auth = viewerToken
		}
		if r := s.do("GET", tc.path, auth, nil); r.status != tc.want {
			t.Errorf("GET %s = %d; want %d", tc.path, r.status, tc.want)
		}
	}
	if r := s.do("GET", "/api/v1/dead-letters/x", viewerToken, nil); errorCode(t, r.body) != CodeNotFound {
		t.Errorf("GET /api/v1/dead-letters/x code = %q; want %q", errorCode(t, r.body), CodeNotFound)
	}
}

// TestDeadLetterForms: an operator's retry publishes the message once
// under their name and marks the letter; a second retry, a permanent
// failure without the force box and a discard without a note are refused
// beside the form and change nothing; a viewer's post, or one without the
// CSRF token, is 403 and changes nothing.
func TestDeadLetterForms(t *testing.T) {
	s := newDLServer(t)
	ids := s.seed(deadCmd(1, 7, events.DeadMaxDeliveries, busy, t0), deadCmd(2, 8, events.DeadPermanentError, "bad", t0),
		deadCmd(3, 9, events.DeadUnknownCase, "no case 9", t0))
	op, viewer := s.login(operatorName), s.login(viewerName)
	csrf := s.srv.sessions.csrf(op.Value)
	post := func(path, who string, form url.Values) reply { return s.do("POST", path, who, form) }
	retry := func(id int64) string { return fmt.Sprintf("/dead-letters/%d/retry", id) }
	discard := func(id int64) string { return fmt.Sprintf("/dead-letters/%d/discard", id) }

	// Refused before anything: viewer, no CSRF.
	for _, tc := range []struct {
		who  string
		form url.Values
	}{
		{"cookie:" + viewer.Value, url.Values{"csrf": {s.srv.sessions.csrf(viewer.Value)}}},
		{"cookie:" + op.Value, url.Values{}},
		{"cookie:" + op.Value, url.Values{"csrf": {"wrong"}}},
	} {
		for _, path := range []string{retry(ids[0]), discard(ids[0]) + "?note=x", "/dead-letters/bulk"} {
			form := url.Values{"note": {"x"}, "action": {"retry"}}
			for k, v := range tc.form {
				form[k] = v
			}
			if r := post(path, tc.who, form); r.status != http.StatusForbidden {
				t.Errorf("POST %s as %.14s with %v = %d; want 403", path, tc.who, tc.form, r.status)
			}
		}
	}
	if d := s.letter(ids[0]); !d.RetriedAt.IsZero() || !d.DiscardedAt.IsZero() || s.published() != 0 {
		t.Fatalf("a refused form changed something: %+v, %d published", d, s.published())
	}

	r := post(retry(ids[0]), "cookie:"+op.Value, url.Values{"csrf": {csrf}})
	if r.status != http.StatusSeeOther || r.header.Get("Location") != fmt.Sprintf("/dead-letters/%d?done=retried", ids[0]) {
		t.Fatalf("retry = %d %s; want 303 to the letter", r.status, r.header.Get("Location"))
	}
	if d := s.letter(ids[0]); d.RetriedAt.IsZero() || s.published() != 1 {
		t.Fatalf("after retry: retried %v, %d published; want marked and 1", d.RetriedAt, s.published())
	}
	stream, _ := s.js.Stream(context.Background(), events.DefaultCommandStreamName)
	m, err := stream.GetMsg(context.Background(), 1)
	if err != nil || m.Header.Get(events.HeaderRetryBy) != "otto" {
		t.Errorf("retried message: %v, %s = %q; want otto", err, events.HeaderRetryBy, m.Header.Get(events.HeaderRetryBy))
	}
	if page := s.do("GET", fmt.Sprintf("/dead-letters/%d?done=retried", ids[0]), "cookie:"+op.Value, nil); !strings.Contains(page.body, "retried: republished") ||
		strings.Contains(page.body, `id="retry"`) {
		t.Errorf("a retried letter's page: want its history and no forms")
	}

	for _, tc := range []struct {
		path   string
		form   url.Values
		status int
		says   string
	}{
		{retry(ids[0]), url.Values{}, 409, "already retried"},
		{discard(ids[0]), url.Values{"note": {"late"}}, 409, "nothing to discard"},
		{retry(ids[1]), url.Values{}, 409, "retry with the force box"},
		{discard(ids[2]), url.Values{"note": {"   "}}, 400, "note: a note saying why is required"},
		{discard(ids[2]), url.Values{"note": {strings.Repeat("n", 501)}}, 400, "note: 501 characters"},
	} {
		tc.form.Set("csrf", csrf)
		r := post(tc.path, "cookie:"+op.Value, tc.form)
		if r.status != tc.status || !strings.Contains(r.body, tc.says) {
			t.Errorf("POST %s %v = %d; want %d saying %q:\n%s", tc.path, tc.form, r.status, tc.status, tc.says, r.body)
		}
	}
	if d1, d2 := s.letter(ids[1]), s.letter(ids[2]); !d1.RetriedAt.IsZero() || !d2.DiscardedAt.IsZero() || s.published() != 1 {
		t.Errorf("refusals changed something: %+v %+v, %d published", d1, d2, s.published())
	}

	if r := post(retry(ids[1]), "cookie:"+op.Value, url.Values{"csrf": {csrf}, "force": {"on"}}); r.status != http.StatusSeeOther || s.published() != 2 {
		t.Errorf("forced retry of a permanent failure = %d, %d published; want 303 and 2", r.status, s.published())
	}
	if r := post(discard(ids[2]), "cookie:"+op.Value, url.Values{"csrf": {csrf}, "note": {"case 9 never existed"}}); r.status != http.StatusSeeOther {
		t.Errorf("discard = %d %s", r.status, r.body)
	}
	if d := s.letter(ids[2]); d.DiscardedBy != "otto" || d.DiscardNote != "case 9 never existed" {
		t.Errorf("discarded letter = by %q note %q; want otto and the note", d.DiscardedBy, d.DiscardNote)
	}
	if page := s.do("GET", fmt.Sprintf("/dead-letters/%d", ids[2]), "cookie:"+viewer.Value, nil); !strings.Contains(page.body, "discarded by otto: case 9 never existed") {
		t.Errorf("discarded letter's history lacks who and why:\n%s", page.body)
	}
}

var bulkIDs = regexp.MustCompile(`name="ids" value="([0-9,]*)"`)

// TestDeadLetterBulk: a bulk retry first shows how many and which letters
// it will touch; the confirming post acts on exactly those (a letter that
// arrived since is left alone, one settled since is refused) and shows
// each verdict.
func TestDeadLetterBulk(t *testing.T) {
	s := newDLServer(t)
	ids := s.seed(deadCmd(1, 7, events.DeadMaxDeliveries, busy, t0), deadCmd(2, 8, events.DeadMaxDeliveries, busy, t0),
		deadCmd(3, 9, events.DeadMaxDeliveries, busy, t0), deadCmd(4, 9, events.DeadMaxDeliveries, "other", t0))
	op := s.login(operatorName)
	csrf := s.srv.sessions.csrf(op.Value)
	form := url.Values{"csrf": {csrf}, "action": {"retry"}, "reason": {"max_deliveries"}, "code": {"4001"}}

	confirm := s.do("POST", "/dead-letters/bulk", "cookie:"+op.Value, form)
	if confirm.status != 200 || !strings.Contains(confirm.body, "exactly 3 dead letter(s)") {
		t.Fatalf("bulk confirmation = %d; want 200 saying exactly 3:\n%s", confirm.status, confirm.body)
	}
	m := bulkIDs.FindStringSubmatch(confirm.body)
	if want := fmt.Sprintf("%d,%d,%d", ids[0], ids[1], ids[2]); m == nil || m[1] != want {
		t.Fatalf("confirmed ids = %v; want %s", m, want)
	}
	if s.published() != 0 {
		t.Fatal("the confirmation published something")
	}
	// Meanwhile: another letter joins the group, one of the three is discarded.
	late := s.seed(deadCmd(5, 10, events.DeadMaxDeliveries, busy, t0.Add(time.Hour)))[0]
	if err := s.w.Update(context.Background(), func(tx *casestore.Tx) error {
		return tx.DiscardDeadLetter(context.Background(), ids[1], "vera", "handled by hand")
	}); err != nil {
		t.Fatal(err)
	}
	act := url.Values{"csrf": {csrf}, "action": {"retry"}, "reason": {"max_deliveries"}, "code": {"4001"}, "ids": {m[1]}, "confirm": {"1"}}
	done := s.do("POST", "/dead-letters/bulk", "cookie:"+op.Value, act)
	for id, outcome := range map[int64]string{ids[0]: "retried", ids[1]: "refused", ids[2]: "retried"} {
		if want := fmt.Sprintf(`data-id="%d" data-outcome="%s"`, id, outcome); !strings.Contains(done.body, want) {
			t.Errorf("verdicts lack %s:\n%s", want, done.body)
		}
	}
	if strings.Contains(done.body, fmt.Sprintf(`data-id="%d"`, late)) || !s.letter(late).RetriedAt.IsZero() {
		t.Errorf("dead letter %d, which arrived after the confirmation, was acted on", late)
	}
	if n := s.published(); n != 2 {
		t.Errorf("%d messages published; want 2", n)
	}
	if d := s.letter(ids[1]); d.DiscardedBy != "vera" || !d.RetriedAt.IsZero() {
		t.Errorf("the letter settled in between was changed: %+v", d)
	}

	// A bulk discard needs a note when it acts; bad ids are refused.
	for _, tc := range []struct {
		form url.Values
		says string
	}{
		{url.Values{"action": {"discard"}, "ids": {fmt.Sprint(ids[3])}, "confirm": {"1"}}, "note:"},
		{url.Values{"action": {"discard"}, "ids": {"1,x"}, "confirm": {"1"}, "note": {"n"}}, "ids:"},
		{url.Values{"action": {"explode"}}, "action:"},
	} {
		tc.form.Set("csrf", csrf)
		if r := s.do("POST", "/dead-letters/bulk", "cookie:"+op.Value, tc.form); r.status != 400 || !strings.Contains(r.body, tc.says) {
			t.Errorf("bulk %v = %d; want 400 naming %q", tc.form, r.status, tc.says)
		}
	}
	if d := s.letter(ids[3]); !d.DiscardedAt.IsZero() {
		t.Errorf("a refused bulk discard discarded %d", ids[3])
	}
}

// apiPost posts a JSON body with a bearer token.
func (s *dlServer) apiPost(path, token, body string) reply {
	s.t.Helper()
	req, err := http.NewRequest("POST", s.http.URL+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// TestDeadLetterAPI: the groups and one letter as JSON; retry, discard and
// bulk for operators' tokens, with their refusals under stable codes, each
// changing nothing; a bulk action whose expect count is off is 409.
func TestDeadLetterAPI(t *testing.T) {
	s := newDLServer(t)
	ids := s.seed(deadCmd(1, 7, events.DeadMaxDeliveries, busy, t0), deadCmd(2, 8, events.DeadMaxDeliveries, busy, t0.Add(time.Minute)),
		deadCmd(3, 9, events.DeadPermanentError, "bad", t0))

	var groups groupsJSON
	r := s.do("GET", "/api/v1/dead-letters/groups?reason=max_deliveries", viewerToken, nil)
	if err := json.Unmarshal([]byte(r.body), &groups); err != nil || r.status != 200 {
		t.Fatalf("GET groups = %d %s", r.status, r.body)
	}
	if len(groups.Groups) != 1 || groups.Total != 2 || groups.Groups[0].Code != "4001" || len(groups.Groups[0].Cases) != 2 ||
		!groups.Groups[0].LastSeen.Equal(t0.Add(time.Minute)) {
		t.Errorf("groups = %+v; want one 4001 group of 2 letters on cases 7 and 8", groups)
	}
	var one deadLetterDetail
	r = s.do("GET", fmt.Sprintf("/api/v1/dead-letters/%d", ids[0]), viewerToken, nil)
	if err := json.Unmarshal([]byte(r.body), &one); err != nil || one.Payload == nil || !one.PayloadJSON || one.Case != 7 || one.State != "pending" {
		t.Errorf("GET letter = %d %s", r.status, r.body)
	}

	for _, tc := range []struct {
		path, token, body string
		status            int
		code              string
	}{
		{fmt.Sprintf("/api/v1/dead-letters/%d/retry", ids[0]), viewerToken, "", 403, CodeForbidden},
		{"/api/v1/dead-letters/x/retry", operatorToken, "", 404, CodeNotFound},
		{"/api/v1/dead-letters/999/retry", operatorToken, "", 404, CodeNotFound},
		{fmt.Sprintf("/api/v1/dead-letters/%d/retry", ids[2]), operatorToken, "", 409, CodePermanentFailure},
		{fmt.Sprintf("/api/v1/dead-letters/%d/retry", ids[0]), operatorToken, `{"forse":true}`, 400, CodeInvalidArgument},
		{fmt.Sprintf("/api/v1/dead-letters/%d/discard", ids[0]), operatorToken, `{}`, 400, CodeInvalidArgument},
		{"/api/v1/dead-letters/bulk", operatorToken, `{"action":"retry","filter":{"code":"4001"}}`, 400, CodeInvalidArgument},
		{"/api/v1/dead-letters/bulk", operatorToken, `{"action":"retry","filter":{"code":"4001"},"expect":3}`, 409, CodeCountChanged},
		{"/api/v1/dead-letters/bulk", operatorToken, `{"action":"discard","filter":{"code":"4001"},"expect":2}`, 400, CodeInvalidArgument},
		{"/api/v1/dead-letters/bulk", operatorToken, `{"action":"retry","filter":{"reason":"nope"},"expect":2}`, 400, CodeInvalidArgument},
		{"/api/v1/dead-letters/bulk", viewerToken, `{"action":"retry","filter":{"code":"4001"},"expect":2}`, 403, CodeForbidden},
	} {
		r := s.apiPost(tc.path, tc.token, tc.body)
		if r.status != tc.status || errorCode(t, r.body) != tc.code {
			t.Errorf("POST %s %s = %d %s; want %d %s", tc.path, tc.body, r.status, r.body, tc.status, tc.code)
		}
	}
	for _, id := range ids {
		if d := s.letter(id); !d.RetriedAt.IsZero() || !d.DiscardedAt.IsZero() {
			t.Errorf("dead letter %d changed by a refused request: %+v", id, d)
		}
	}
	if s.published() != 0 {
		t.Fatalf("refused requests published %d messages", s.published())
	}

	r = s.apiPost(fmt.Sprintf("/api/v1/dead-letters/%d/retry", ids[2]), operatorToken, `{"force":true}`)
	if r.status != 200 || !strings.Contains(r.body, `"state":"retried"`) || s.published() != 1 {
		t.Errorf("forced retry = %d %s, %d published", r.status, r.body, s.published())
	}
	r = s.apiPost(fmt.Sprintf("/api/v1/dead-letters/%d/retry", ids[2]), operatorToken, `{"force":true}`)
	if r.status != 409 || errorCode(t, r.body) != CodeDeadLetterRetried || s.published() != 1 {
		t.Errorf("second retry = %d %s; want 409 %s and nothing published", r.status, r.body, CodeDeadLetterRetried)
	}

	var bulk bulkJSON
	r = s.apiPost("/api/v1/dead-letters/bulk", operatorToken, `{"action":"discard","filter":{"code":"4001"},"expect":2,"note":"platform incident 42"}`)
	if err := json.Unmarshal([]byte(r.body), &bulk); err != nil || r.status != 200 || bulk.Count != 2 || len(bulk.Verdicts) != 2 ||
		bulk.Verdicts[0].Outcome != "discarded" || bulk.Verdicts[1].Outcome != "discarded" {
		t.Fatalf("bulk discard = %d %s", r.status, r.body)
	}
	for _, id := range ids[:2] {
		if d := s.letter(id); d.DiscardedBy != "otto" || d.DiscardNote != "platform incident 42" {
			t.Errorf("dead letter %d after bulk discard: by %q note %q", id, d.DiscardedBy, d.DiscardNote)
		}
	}
}

// TestDeadLetterRetryStartsATrace: a retry through the console is an
// operator's command with a trace of its own: one "retry dead letters"
// span per retry (one letter, or a bulk selection), a root span unless an
// API caller sent a traceparent, whose context every message it
// republishes carries (the trace each died in kept as Rh-Traceparent). A
// refused retry's span says so in its status.
func TestDeadLetterRetryStartsATrace(t *testing.T) {
	exp, tracer := inMemoryTracer(t)
	s := newDLServerTraced(t, tracer)
	traced := func(n int, caseID int64, reason events.DeadReason) casestore.DeadLetter {
		d := deadCmd(n, caseID, reason, busy, t0)
		d.Headers[events.HeaderTraceParent] = []string{first}
		return d
	}
	ids := s.seed(traced(1, 7, events.DeadMaxDeliveries), traced(2, 8, events.DeadMaxDeliveries), traced(3, 9, events.DeadMaxDeliveries),
		traced(4, 10, events.DeadPermanentError))
	stream, err := s.js.Stream(context.Background(), events.DefaultCommandStreamName)
	if err != nil {
		t.Fatal(err)
	}
	// lastSpan is the newest retry span; carried, the traceparents of the
	// messages from stream sequence seq on.
	lastSpan := func() tracetest.SpanStub {
		spans := exp.GetSpans()
		for i := len(spans) - 1; i >= 0; i-- {
			if spans[i].Name == "retry dead letters" {
				return spans[i]
			}
		}
		t.Fatalf("no retry dead letters span")
		return tracetest.SpanStub{}
	}
	carried := func(from uint64) (tps []string) {
		for seq := from; seq <= s.published(); seq++ {
			m, err := stream.GetMsg(context.Background(), seq)
			if err != nil {
				t.Fatal(err)
			}
			tps = append(tps, m.Header.Get(events.HeaderTraceParent))
			if got := m.Header.Get(events.HeaderRetryTraceParent); got != first {
				t.Errorf("message %d: %s %q; want the trace it died in", seq, events.HeaderRetryTraceParent, got)
			}
		}
		return tps
	}
	tp0 := func(sp tracetest.SpanStub) string {
		return "00-" + sp.SpanContext.TraceID().String() + "-" + sp.SpanContext.SpanID().String() + "-01"
	}

	// One letter, no caller trace: a root span, carried by the message.
	if r := s.apiPost(fmt.Sprintf("/api/v1/dead-letters/%d/retry", ids[0]), operatorToken, ""); r.status != 200 {
		t.Fatalf("retry = %d %s", r.status, r.body)
	}
	sp := lastSpan()
	if sp.Parent.IsValid() || sp.Status.Code == codes.Error || attrOf(sp, "retried") != "1" || attrOf(sp, "dead_letters") != fmt.Sprintf("[%d]", ids[0]) {
		t.Errorf("retry span: parent %v, status %v, attributes %v; want a root span, 1 retried, of letter %d", sp.Parent.SpanID(), sp.Status, sp.Attributes, ids[0])
	}
	if got := carried(1); len(got) != 1 || got[0] != tp0(sp) {
		t.Errorf("retried message traceparent %q; want the retry span's %s", got, tp0(sp))
	}

	// A bulk retry under an API caller's trace: one span, its child.
	req, err := http.NewRequest("POST", s.http.URL+"/api/v1/dead-letters/bulk",
		strings.NewReader(`{"action":"retry","filter":{"reason":"max_deliveries","code":"4001"},"expect":2}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("bulk retry = %d", resp.StatusCode)
	}
	sp = lastSpan()
	if sp.SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || sp.Parent.SpanID().String() != "b7ad6b7169203331" ||
		attrOf(sp, "retried") != "2" {
		t.Errorf("bulk retry span: trace %s parent %s, attributes %v; want the caller's trace, 2 retried", sp.SpanContext.TraceID(), sp.Parent.SpanID(), sp.Attributes)
	}
	if got := carried(2); len(got) != 2 || got[0] != tp0(sp) || got[1] != tp0(sp) {
		t.Errorf("bulk retried messages traceparents %q; want the bulk span's %s on both", got, tp0(sp))
	}

	// Refused (a permanent failure without force): the span says so.
	if r := s.apiPost(fmt.Sprintf("/api/v1/dead-letters/%d/retry", ids[3]), operatorToken, ""); r.status != 409 {
		t.Fatalf("retry of a permanent failure = %d %s; want 409", r.status, r.body)
	}
	if sp = lastSpan(); sp.Status.Code != codes.Error || attrOf(sp, "retried") != "0" {
		t.Errorf("refused retry span: status %v, attributes %v; want an error status, 0 retried", sp.Status, sp.Attributes)
	}
}

// first is the trace a stored message came in, in the trace tests.
const first = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// inMemoryTracer is a tracer whose spans go to the returned exporter,
// synchronously.
func inMemoryTracer(t *testing.T) (*tracetest.InMemoryExporter, trace.Tracer) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return exp, tp.Tracer("console")
}

// attrOf is a span attribute's value as text, "" when absent.
func attrOf(sp tracetest.SpanStub, key string) string {
	for _, a := range sp.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}
