package console

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore/accountstest"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/runbook"
)

// Test credentials: the accounts vera (viewer) and otto (operator), each
// with a password and an API token, kept in the case store as hashes.
const (
	viewerName       = "vera"
	operatorName     = "otto"
	viewerPassword   = "vera-password-9d1c7e"
	operatorPassword = "otto-password-4b8a2f"
	viewerToken      = "viewer-token-7f3a9c1e5b"
	operatorToken    = "operator-token-2d8e6b4f0a"
	sessionKey       = "session-key-0123456789abcdef0123456789abcdef"
)

// passwordsOf are the test accounts' passwords, by name.
var passwordsOf = map[string]string{viewerName: viewerPassword, operatorName: operatorPassword}

// secrets are every credential the tests configure: no answer may hold
// one, nor a hash of one.
func secrets() []string {
	return []string{viewerToken, operatorToken, viewerPassword, operatorPassword, sessionKey,
		casestore.HashToken(viewerToken), casestore.HashToken(operatorToken)}
}

// seedAccounts adds vera and otto, with their passwords and API tokens.
func seedAccounts(t testing.TB, w *casestore.Store) {
	t.Helper()
	accountstest.Add(t, w,
		accountstest.Account{Name: viewerName, Password: viewerPassword, Token: viewerToken, Role: casestore.RoleViewer},
		accountstest.Account{Name: operatorName, Password: operatorPassword, Token: operatorToken, Role: casestore.RoleOperator})
}

// writer opens the test's case store for writing, as refundctl does,
// beside the console's read-only connection.
func (ts *testServer) writer() *casestore.Store {
	ts.t.Helper()
	w, err := casestore.OpenExisting(context.Background(), ts.path, nil)
	if err != nil {
		ts.t.Fatalf("OpenExisting: %v", err)
	}
	ts.t.Cleanup(func() { w.Close() })
	return w
}

// testServer is a console on a temp case store: the worker's file, seeded
// through a writing store, read by the console through a read-only one.
type testServer struct {
	t     *testing.T
	srv   *Server
	http  *httptest.Server
	cases []casestore.Case
	path  string // the case store's file
}

// seedCase is one case to create, and where to move it. A case with an
// attention stops at parked (rendering when empty).
type seedCase struct {
	platform, order, sub, state, attention string
	parked, refund                         string
	request                                string // the request as filed (JSON); default {"reasonId":999999}
	plan, shipment                         string // the case's plan and return shipment (JSON); default none
}

func newTestServer(t *testing.T, seeds ...seedCase) *testServer {
	t.Helper()
	return newTestServerOn(t, nil, seeds...)
}

// newTestServerOn is newTestServer with js to publish commands on.
func newTestServerOn(t *testing.T, js jetstream.JetStream, seeds ...seedCase) *testServer {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "refunds.db")
	w, err := casestore.Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("casestore.Open: %v", err)
	}
	ts := &testServer{t: t, path: path}
	seedAccounts(t, w)
	for i, sd := range seeds {
		err := w.Update(ctx, func(tx *casestore.Tx) error {
			plat := casestore.PlatformTaobao
			if sd.platform == "1688" {
				plat = casestore.Platform1688
			}
			req := cmp.Or(sd.request, `{"reasonId":999999}`)
			c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: plat, OrderID: sd.order, SubOrderID: sd.sub,
				State: string(refundflow.StateRequested), Request: json.RawMessage(req), OpenedBy: fmt.Sprintf("cmd-seed-%04d", i)})
			if err != nil {
				return err
			}
			c.State, c.RefundID = sd.state, sd.refund
			if sd.plan != "" {
				c.Plan = json.RawMessage(sd.plan)
			}
			if sd.shipment != "" {
				c.Shipment = json.RawMessage(sd.shipment)
			}
			if sd.attention != "" {
				c.ParkedState, c.AttentionCode, c.AttentionMessage = string(refundflow.StateRendering), sd.attention, "reason 999999 is not on the form"
				if sd.parked != "" {
					c.ParkedState = sd.parked
				}
			}
			if c, err = tx.UpdateCase(ctx, c); err != nil {
				return err
			}
			ts.cases = append(ts.cases, c)
			return tx.AppendTimeline(ctx, casestore.TimelineEntry{CaseID: c.ID, Kind: casestore.KindDecision, Summary: "seeded for the test"})
		})
		if err != nil {
			t.Fatalf("seed %+v: %v", sd, err)
		}
	}
	w.Close()
	st, err := casestore.OpenReadOnly(ctx, path, nil)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	ts.srv, err = New(Config{SessionKey: []byte(sessionKey), VerdictWait: 200 * time.Millisecond, PublishWait: 2 * time.Second,
		EventsInterval: 20 * time.Millisecond},
		Deps{Store: st, JetStream: js, Ready: func(context.Context) error { return nil }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.http = httptest.NewServer(ts.srv.Handler())
	t.Cleanup(ts.http.Close)
	return ts
}

// reply is one answer, read whole.
type reply struct {
	status int
	header http.Header
	body   string
}

// do sends a request without following redirects. auth is a bearer token
// or a session cookie value ("cookie:" prefix), or "".
func (ts *testServer) do(method, path, auth string, form url.Values) reply {
	ts.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, ts.http.URL+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch {
	case strings.HasPrefix(auth, "cookie:"):
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: strings.TrimPrefix(auth, "cookie:")})
	case auth != "":
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	for _, secret := range secrets() {
		if strings.Contains(r.body, secret) {
			ts.t.Errorf("%s %s: the body holds a configured secret (%.12s…)", method, path, secret)
		}
	}
	return r
}

// login posts the test account name's name and password to the login
// page and returns the session cookie.
func (ts *testServer) login(name string) *http.Cookie {
	ts.t.Helper()
	form := url.Values{"name": {name}, "password": {passwordsOf[name]}}
	req, _ := http.NewRequest(http.MethodPost, ts.http.URL+"/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		ts.t.Fatalf("POST /login = %d; want 303", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	ts.t.Fatal("POST /login set no session cookie")
	return nil
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Error.Code
}

// TestEveryRouteNeedsCredentials: without a token or session, every route
// but /healthz and the login page answers 401 (API, /readyz, /metrics,
// forms) or redirects to the login page (page reads), unknown routes too;
// a wrong token is 401 everywhere. Every route the server registers is
// tried too, with no credentials, a wrong token and sessions signed for an
// unknown account or a role the account does not have.
func TestEveryRouteNeedsCredentials(t *testing.T) {
	ts := newTestServer(t, seedCase{order: "100", sub: "101", state: "needs_attention", attention: refundflow.AttnReasonNotOffered})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", http.StatusSeeOther},
		{"GET", "/cases", http.StatusSeeOther},
		{"GET", "/cases/1", http.StatusSeeOther},
		{"GET", "/no-such-page", http.StatusSeeOther},
		{"POST", "/cases/1/resolve", http.StatusUnauthorized},
		{"POST", "/logout", http.StatusUnauthorized},
		{"GET", "/api/v1/cases", http.StatusUnauthorized},
		{"GET", "/api/v1/cases/1", http.StatusUnauthorized},
		{"GET", "/api/v1/dead-letters", http.StatusUnauthorized},
		{"GET", "/api/v1/events", http.StatusUnauthorized},
		{"GET", "/api/v1/nothing", http.StatusUnauthorized},
		{"GET", "/readyz", http.StatusUnauthorized},
		{"GET", "/metrics", http.StatusUnauthorized},
	} {
		r := ts.do(tc.method, tc.path, "", url.Values{})
		if r.status != tc.want {
			t.Errorf("%s %s without credentials = %d; want %d", tc.method, tc.path, r.status, tc.want)
		}
		if tc.want == http.StatusSeeOther && r.header.Get("Location") != "/login" {
			t.Errorf("%s %s redirects to %q; want /login", tc.method, tc.path, r.header.Get("Location"))
		}
		if r := ts.do(tc.method, tc.path, "wrong-token", url.Values{}); r.status != http.StatusUnauthorized {
			t.Errorf("%s %s with a wrong token = %d; want 401", tc.method, tc.path, r.status)
		} else if strings.HasPrefix(tc.path, "/api/") && errorCode(t, r.body) != CodeUnauthorized {
			t.Errorf("%s %s with a wrong token: code %s; want %s", tc.method, tc.path, errorCode(t, r.body), CodeUnauthorized)
		}
	}
	// Every route the console registers, whoever added it: without
	// credentials, with a wrong token, with a session whose signature holds
	// but whose role is not the account's, it is refused.
	forged := ts.srv.sessions.issue(Account{Name: viewerName, Role: RoleOperator}, time.Now()).Value
	unknown := ts.srv.sessions.issue(Account{Name: "nobody", Role: RoleViewer}, time.Now()).Value
	for _, rt := range ts.srv.echo.Routes() {
		if public[rt.Path] || rt.Method == "echo_route_any" {
			continue
		}
		path := strings.NewReplacer(":id", "1", "*", "x").Replace(rt.Path)
		for _, auth := range []string{"", "wrong-token", "cookie:" + forged, "cookie:" + unknown} {
			r := ts.do(rt.Method, path, auth, url.Values{})
			if r.status != http.StatusUnauthorized && r.status != http.StatusSeeOther {
				t.Errorf("%s %s (route %s) with credentials %.12q = %d; want 401 or 303", rt.Method, path, rt.Path, auth, r.status)
			}
		}
	}
	for _, path := range []string{"/healthz", "/login"} {
		if r := ts.do("GET", path, "", nil); r.status != http.StatusOK {
			t.Errorf("GET %s without credentials = %d; want 200", path, r.status)
		}
	}
	if r := ts.do("GET", "/metrics", viewerToken, nil); r.status != 200 || !strings.Contains(r.body, "console_requests_total") {
		t.Errorf("GET /metrics with a token = %d, without console_requests_total", r.status)
	}
	if r := ts.do("GET", "/metrics", viewerToken, nil); strings.Contains(r.body, `route="/no-such-page"`) {
		t.Errorf("/metrics labels an unmatched path by itself:\n%s", r.body)
	}
}

// TestAPICases: filters, free text and cursor pagination of GET
// /api/v1/cases, and its errors.
func TestAPICases(t *testing.T) {
	ts := newTestServer(t,
		seedCase{order: "100", sub: "101", state: "needs_attention", attention: refundflow.AttnReasonNotOffered},
		seedCase{order: "200", sub: "201", state: "waiting_seller"},
		seedCase{order: "300", sub: "301", state: "succeeded"},
		seedCase{platform: "1688", order: "400", state: "waiting_seller"},
		seedCase{order: "500", sub: "501", state: "needs_attention", attention: refundflow.AttnSellerRefused},
	)
	ids := func(path string) ([]int64, string) {
		t.Helper()
		r := ts.do("GET", path, viewerToken, nil)
		if r.status != 200 {
			t.Fatalf("GET %s = %d %s", path, r.status, r.body)
		}
		var out casesJSON
		if err := json.Unmarshal([]byte(r.body), &out); err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, c := range out.Cases {
			got = append(got, c.ID)
		}
		return got, out.NextCursor
	}
	id := func(i int) int64 { return ts.cases[i].ID }
	for _, tc := range []struct {
		query string
		want  []int64
	}{
		{"", []int64{id(0), id(1), id(2), id(3), id(4)}},
		{"state=waiting_seller", []int64{id(1), id(3)}},
		{"platform=1688", []int64{id(3)}},
		{"attention=any", []int64{id(0), id(4)}},
		{"attention=seller_refused", []int64{id(4)}},
		{"q=301", []int64{id(2)}},
		{"q=400", []int64{id(3)}},
		{"q=cmd-seed-0001", []int64{id(1)}},
		{"q=nothing-like-it", nil},
	} {
		got, _ := ids("/api/v1/cases?sort=id&order=asc&" + tc.query)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("GET /api/v1/cases?%s = %v; want %v", tc.query, got, tc.want)
		}
	}
	// Cursor pagination: pages of two, in id order, nothing twice.
	var all []int64
	path := "/api/v1/cases?sort=id&order=asc&limit=2"
	for pages := 0; ; pages++ {
		got, next := ids(path)
		all = append(all, got...)
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		path = "/api/v1/cases?sort=id&order=asc&limit=2&cursor=" + next
	}
	if fmt.Sprint(all) != fmt.Sprint([]int64{id(0), id(1), id(2), id(3), id(4)}) {
		t.Errorf("pages of two = %v; want every case once", all)
	}
	for _, bad := range []string{"platform=amazon", "state=lost", "attention=bored", "limit=0", "limit=5000", "cursor=x"} {
		r := ts.do("GET", "/api/v1/cases?"+bad, viewerToken, nil)
		if r.status != http.StatusBadRequest || errorCode(t, r.body) != CodeInvalidArgument {
			t.Errorf("GET /api/v1/cases?%s = %d %s; want 400 invalid_argument", bad, r.status, r.body)
		}
	}
}

// TestAPICase: one case with its advice, steps and timeline; a missing
// one is not_found.
func TestAPICase(t *testing.T) {
	ts := newTestServer(t, seedCase{order: "100", sub: "101", state: "needs_attention", attention: refundflow.AttnReasonNotOffered},
		seedCase{order: "200", sub: "201", state: "needs_attention", attention: refundflow.AttnSellerRefused, parked: "waiting_seller", refund: "R2"})
	// The runbook's commands name the case (it said "refundctl modify
	// CASE"), on the API and the page.
	refused := ts.cases[1]
	want := fmt.Sprintf("refundctl modify %d --amount", refused.ID)
	var rd caseDetailJSON
	if r := ts.do("GET", fmt.Sprintf("/api/v1/cases/%d", refused.ID), viewerToken, nil); json.Unmarshal([]byte(r.body), &rd) != nil || !strings.Contains(rd.Advice, want) {
		t.Errorf("advice of a refused case = %q; want %q", rd.Advice, want)
	}
	if page := ts.do("GET", fmt.Sprintf("/cases/%d", refused.ID), "cookie:"+ts.login(viewerName).Value, nil); !strings.Contains(page.body, want) {
		t.Errorf("the refused case's page does not say %q", want)
	}
	r := ts.do("GET", fmt.Sprintf("/api/v1/cases/%d", ts.cases[0].ID), viewerToken, nil)
	if r.status != 200 {
		t.Fatalf("GET case = %d %s", r.status, r.body)
	}
	var d caseDetailJSON
	if err := json.Unmarshal([]byte(r.body), &d); err != nil {
		t.Fatal(err)
	}
	if d.Case.AttentionCode != refundflow.AttnReasonNotOffered || d.Advice != runbook.ForCase(runbook.Tailor(advice[refundflow.AttnReasonNotOffered], "taobao", "rendering"), ts.cases[0].ID) ||
		strings.Contains(d.Advice, "modify_rendering") {
		t.Errorf("case attention %q advice %q; want reason_not_offered with its advice", d.Case.AttentionCode, d.Advice)
	}
	if len(d.Timeline) != 1 || d.Timeline[0].Summary != "seeded for the test" {
		t.Errorf("timeline = %+v; want the seeded entry", d.Timeline)
	}
	if !strings.HasPrefix(d.Case.Why, "Stopped at rendering (reason_not_offered)") {
		t.Errorf("why = %q; want it to say where and why the case stopped", d.Case.Why)
	}
	for _, path := range []string{"/api/v1/cases/999", "/api/v1/cases/abc"} {
		if r := ts.do("GET", path, viewerToken, nil); r.status != 404 || errorCode(t, r.body) != CodeNotFound {
			t.Errorf("GET %s = %d %s; want 404 not_found", path, r.status, r.body)
		}
	}
	if r := ts.do("GET", "/api/v1/dead-letters", viewerToken, nil); r.status != 200 || !strings.Contains(r.body, `"deadLetters":[]`) {
		t.Errorf("GET /api/v1/dead-letters = %d %s; want an empty list", r.status, r.body)
	}
}

// TestSessionsAndForms: the login page's session cookie is HttpOnly and
// SameSite=Strict and opens the pages; a tampered cookie does not; a
// viewer gets no form and a 403 when posting one; an operator's form
// without its CSRF token, or with another session's, is refused.
func TestSessionsAndForms(t *testing.T) {
	ts := newTestServer(t, seedCase{order: "100", sub: "101", state: "needs_attention", attention: refundflow.AttnReasonNotOffered})
	for _, form := range []url.Values{
		{"name": {operatorName}, "password": {viewerPassword}},
		{"name": {"nobody"}, "password": {operatorPassword}},
		{"password": {operatorPassword}},
		{"token": {operatorToken}}, // the old form: a token is no password
	} { // fewer than loginBurst: the address may still log in below
		if r := ts.do("POST", "/login", "", form); r.status != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong name or password") {
			t.Errorf("POST /login %v = %d; want 401 and the form again", form, r.status)
		}
	}
	op := ts.login(operatorName)
	if !op.HttpOnly || op.SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie HttpOnly=%v SameSite=%v; want HttpOnly, Strict", op.HttpOnly, op.SameSite)
	}
	casePath := fmt.Sprintf("/cases/%d", ts.cases[0].ID)
	if r := ts.do("GET", "/", "cookie:"+op.Value, nil); r.status != 200 || !strings.Contains(r.body, `href="/cases?attention=reason_not_offered"`) {
		t.Errorf("overview = %d; want a link to the reason_not_offered cases:\n%s", r.status, r.body)
	}
	if r := ts.do("GET", "/cases?attention=any", "cookie:"+op.Value, nil); r.status != 200 || !strings.Contains(r.body, `href="`+casePath+`"`) {
		t.Errorf("cases page = %d; want a link to %s:\n%s", r.status, casePath, r.body)
	}
	if r := ts.do("GET", "/cases?state=lost", "cookie:"+op.Value, nil); r.status != 400 || !strings.Contains(r.body, `id="filter-error">state: &#34;lost&#34; is not a case state`) {
		t.Errorf("cases page with a bad state = %d; want a 400 page saying so beside the filters:\n%s", r.status, r.body)
	}
	page := ts.do("GET", casePath, "cookie:"+op.Value, nil)
	if page.status != 200 || !strings.Contains(page.body, `id="resolve"`) || !strings.Contains(page.body, "What to do:") {
		t.Fatalf("operator's case page = %d; want the resolve form and the advice:\n%s", page.status, page.body)
	}
	if r := ts.do("GET", casePath, "cookie:"+op.Value+"x", nil); r.status != http.StatusSeeOther {
		t.Errorf("GET %s with a tampered cookie = %d; want 303 to the login page", casePath, r.status)
	}
	viewer := ts.login(viewerName)
	vpage := ts.do("GET", casePath, "cookie:"+viewer.Value, nil)
	if strings.Contains(vpage.body, `id="resolve"`) || !strings.Contains(vpage.body, "needs the operator role") {
		t.Errorf("viewer's case page offers the resolve form, or does not say why not")
	}
	form := url.Values{"action": {"close"}, "note": {"refunded by bank transfer"}}
	vform := url.Values{"action": {"close"}, "note": {"x"}, "csrf": {ts.srv.sessions.csrf(viewer.Value)}}
	for _, tc := range []struct {
		name string
		auth string
		form url.Values
	}{
		{"viewer with its CSRF token", "cookie:" + viewer.Value, vform},
		{"operator without a CSRF token", "cookie:" + op.Value, form},
		{"operator with the viewer's CSRF token", "cookie:" + op.Value, vform},
		{"operator's bearer token (no session)", operatorToken, form},
	} {
		r := ts.do("POST", casePath+"/resolve", tc.auth, tc.form)
		if r.status != http.StatusForbidden || !strings.Contains(r.body, CodeForbidden) {
			t.Errorf("resolve by %s = %d; want 403 forbidden:\n%s", tc.name, r.status, r.body)
		}
	}
	// A valid form with an invalid note is shown again with the reason.
	bad := url.Values{"action": {"close"}, "note": {""}, "csrf": {ts.srv.sessions.csrf(op.Value)}}
	if r := ts.do("POST", casePath+"/resolve", "cookie:"+op.Value, bad); r.status != http.StatusBadRequest || !strings.Contains(r.body, "role=\"alert\"") {
		t.Errorf("resolve --close without a note = %d; want 400 with the form's error", r.status)
	}
	// Without NATS the action is unavailable, and says so.
	ok := url.Values{"action": {"close"}, "note": {"done"}, "csrf": {ts.srv.sessions.csrf(op.Value)}}
	if r := ts.do("POST", casePath+"/resolve", "cookie:"+op.Value, ok); r.status != http.StatusServiceUnavailable {
		t.Errorf("resolve without NATS = %d; want 503", r.status)
	}
	if r := ts.do("POST", "/logout", "cookie:"+op.Value, url.Values{"csrf": {ts.srv.sessions.csrf(op.Value)}}); r.status != http.StatusSeeOther {
		t.Errorf("POST /logout = %d; want 303", r.status)
	}
}

// TestFailedLoginsSlowed: after the burst of failures, an address is
// refused (429) even with the right password, until the bucket refills.
func TestFailedLoginsSlowed(t *testing.T) {
	ts := newTestServer(t)
	for i := range loginBurst {
		if r := ts.do("POST", "/login", "", url.Values{"name": {operatorName}, "password": {fmt.Sprintf("guess-%d-xxxxxxxx", i)}}); r.status != http.StatusUnauthorized {
			t.Fatalf("failed login %d = %d; want 401", i+1, r.status)
		}
	}
	r := ts.do("POST", "/login", "", url.Values{"name": {viewerName}, "password": {viewerPassword}})
	if r.status != http.StatusTooManyRequests || !strings.Contains(r.body, "from this address") {
		t.Errorf("login after %d failures = %d; want 429 naming the address", loginBurst, r.status)
	}
}

// TestFailedLoginsSlowedPerAccount: one account's password guessed from
// many addresses is slowed too: after the account's burst, its login is
// refused (429) from a fresh address even with the right password, while
// another account still logs in from there; an unknown name is slowed
// alike, so the answer does not say which names exist.
func TestFailedLoginsSlowedPerAccount(t *testing.T) {
	ts := newTestServer(t)
	// Each attempt from its own address: the address limiter never
	// fills, only the account's does.
	attempt := func(addr, name, password string) int {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(url.Values{"name": {name}, "password": {password}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = addr + ":40000"
		rec := httptest.NewRecorder()
		ts.srv.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	for _, name := range []string{operatorName, "nobody"} {
		for i := range accountLoginBurst {
			if got := attempt(fmt.Sprintf("10.0.%d.%d", len(name), i+1), name, "wrong-password-xx"); got != http.StatusUnauthorized {
				t.Fatalf("failed login %d for %s = %d; want 401", i+1, name, got)
			}
		}
		want := map[string]string{operatorName: operatorPassword, "nobody": "any-password-xxx"}[name]
		if got := attempt("10.1.0.1", name, want); got != http.StatusTooManyRequests {
			t.Errorf("login for %s after %d failures from other addresses = %d; want 429", name, accountLoginBurst, got)
		}
	}
	if got := attempt("10.1.0.1", viewerName, viewerPassword); got != http.StatusSeeOther {
		t.Errorf("another account's login from the same address = %d; want 303 (logged in)", got)
	}
}

// TestRevocationAndDisablingAtOnce: a token revoked with the console
// running is refused at its next request, and a disabled account's
// session (and its other tokens) at theirs; no restart, no cache.
func TestRevocationAndDisablingAtOnce(t *testing.T) {
	ctx := context.Background()
	ts := newTestServer(t)
	w := ts.writer()
	var second string
	err := w.Update(ctx, func(tx *casestore.Tx) error {
		tok, err := casestore.NewToken()
		if err != nil {
			return err
		}
		second = tok
		_, err = tx.AddToken(ctx, casestore.NewAPIToken{Account: operatorName, Label: "second", Hash: casestore.HashToken(tok), By: "test"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	session := "cookie:" + ts.login(operatorName).Value
	for _, auth := range []string{operatorToken, second} {
		if r := ts.do("GET", "/api/v1/cases", auth, nil); r.status != http.StatusOK {
			t.Fatalf("GET /api/v1/cases with a valid token = %d", r.status)
		}
	}
	toks, err := w.Tokens(ctx, operatorName)
	if err != nil || len(toks) != 2 {
		t.Fatalf("Tokens(otto) = %v, %v", toks, err)
	}
	if err := w.Update(ctx, func(tx *casestore.Tx) error { return tx.RevokeToken(ctx, toks[0].ID, "test", "leaked") }); err != nil {
		t.Fatal(err)
	}
	if r := ts.do("GET", "/api/v1/cases", operatorToken, nil); r.status != http.StatusUnauthorized || errorCode(t, r.body) != CodeUnauthorized {
		t.Errorf("GET /api/v1/cases with a revoked token = %d %s; want 401 unauthorized", r.status, r.body)
	}
	for _, auth := range []string{second, session} {
		path := map[bool]string{true: "/", false: "/api/v1/cases"}[strings.HasPrefix(auth, "cookie:")]
		if r := ts.do("GET", path, auth, nil); r.status != http.StatusOK {
			t.Errorf("GET %s after revoking another token = %d; want 200", path, r.status)
		}
	}
	if err := w.Update(ctx, func(tx *casestore.Tx) error { return tx.DisableAccount(ctx, operatorName, "test", "left") }); err != nil {
		t.Fatal(err)
	}
	if r := ts.do("GET", "/", session, nil); r.status != http.StatusSeeOther || r.header.Get("Location") != "/login" {
		t.Errorf("GET / with a disabled account's session = %d; want 303 to /login", r.status)
	}
	if r := ts.do("GET", "/api/v1/events", session, nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/events with a disabled account's session = %d; want 401", r.status)
	}
	if r := ts.do("GET", "/api/v1/cases", second, nil); r.status != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/cases with a disabled account's token = %d; want 401", r.status)
	}
	if r := ts.do("POST", "/login", "", url.Values{"name": {operatorName}, "password": {operatorPassword}}); r.status != http.StatusUnauthorized {
		t.Errorf("login of a disabled account = %d; want 401", r.status)
	}
	if r := ts.do("GET", "/", "cookie:"+ts.login(viewerName).Value, nil); r.status != http.StatusOK {
		t.Errorf("another account's session = %d; want 200", r.status)
	}
}

// TestAdviceForEveryCode: every attention code the worker can set has
// advice on the case page, and it is the runbook's own "What to do".
func TestAdviceForEveryCode(t *testing.T) {
	book := runbook.Embedded()
	for _, code := range refundflow.AttentionCodes() {
		if advice[code] == "" {
			t.Errorf("no advice for attention code %s (docs/runbook.md has its row)", code)
		}
		if advice[code] != book.Reasons[code].Do {
			t.Errorf("advice for %s = %q; want the runbook's %q", code, advice[code], book.Reasons[code].Do)
		}
	}
}

func TestWhyNext(t *testing.T) {
	now := time.Date(2026, 12, 2, 14, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		c    casestore.Case
		want string
	}{
		{casestore.Case{State: "waiting_seller", NextWakeAt: now.Add(70 * time.Minute)},
			"Waiting for the seller to decide; the worker checks again at 2026-12-02 15:10:00 UTC (in 1h10m0s)."},
		{casestore.Case{State: "needs_attention", ParkedState: "rendering", AttentionCode: "reason_not_offered"},
			"Stopped at rendering (reason_not_offered): nothing moves until an operator acts or the platform's next status does; what to do is below."},
		{casestore.Case{State: "closed_locally"}, "Closed locally by an operator (the platform was not told): the case is finished; a new request opens a new case."},
		{casestore.Case{State: "submitting", NextWakeAt: now.Add(-time.Second)}, "The worker is submitting the refund, guarded by its recorded intent; the worker's check is due now."},
		{casestore.Case{State: "waiting_seller_receive", AttentionCode: "return_waybill_differs", AttentionMessage: "the platform holds return waybill …"},
			"The goods are on their way back; waiting for the seller to confirm receipt; flagged return_waybill_differs, what to do is below."},
		// The command names the case (it said "refundctl ship N").
		{casestore.Case{ID: 12, State: "waiting_return_shipment"},
			"The seller wants the goods back: ship them, then report the waybill (refundctl ship 12 --company C --waybill W)."},
	} {
		if got := whyNext(tc.c, now); got != tc.want {
			t.Errorf("whyNext(%s) = %q; want %q", tc.c.State, got, tc.want)
		}
	}
	for _, st := range refundflow.States() {
		if got := whyNext(casestore.Case{State: string(st)}, now); strings.HasPrefix(got, "In state") {
			t.Errorf("whyNext(%s) = %q: no sentence for this state", st, got)
		}
	}
}

// TestCaseShowsAnIntentsRefusals: a side effect sent again under its key
// and refused shows, in the API and on the case page, how many times it
// was begun and how many of those the platform refused, with the last
// answer: what an operator weighs before resolve --retry.
func TestCaseShowsAnIntentsRefusals(t *testing.T) {
	ts := newTestServer(t, seedCase{order: "100", sub: "101", state: "needs_attention", attention: refundflow.CodeResendsFailed,
		parked: string(refundflow.StateSubmitting)})
	ctx, id := context.Background(), ts.cases[0].ID
	w := ts.writer()
	err := w.Update(ctx, func(tx *casestore.Tx) error {
		for i := range 3 {
			if _, _, err := tx.BeginStep(ctx, id, "submit", "case:1:submit:v1", `{}`); err != nil {
				return err
			}
			if err := tx.MarkAttempt(ctx, "case:1:submit:v1", "4091", "当前状态不允许此操作", i > 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := ts.do("GET", fmt.Sprintf("/api/v1/cases/%d", id), viewerToken, nil)
	var d caseDetailJSON
	if err := json.Unmarshal([]byte(r.body), &d); err != nil || r.status != 200 {
		t.Fatalf("GET case = %d %s (%v)", r.status, r.body, err)
	}
	if len(d.Steps) != 1 || d.Steps[0].Begins != 3 || d.Steps[0].Refusals != 2 || d.Steps[0].ErrorCode != "4091" {
		t.Fatalf("steps %+v; want the intent begun 3 times, refused twice, its last answer 4091", d.Steps)
	}
	page := ts.do("GET", fmt.Sprintf("/cases/%d", id), "cookie:"+ts.login(operatorName).Value, nil)
	if page.status != 200 || !strings.Contains(page.body, "intent (begun 3×, refused 2×)") || !strings.Contains(page.body, "当前状态不允许此操作") {
		t.Errorf("case page = %d; want the intent's sends, refusals and last answer:\n%s", page.status, page.body)
	}
}
