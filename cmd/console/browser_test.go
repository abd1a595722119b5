package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/testenv"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/console"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// fileRequest publishes a Taobao request for sub-order 1034499579120189+sub
// as operator, as refundctl does, and returns its case once the worker
// has it in state want (within wait).
func fileRequest(t *testing.T, s *stack, st *casestore.Store, sub, operator string, req refundflow.Request,
	want refundflow.State, wait time.Duration) casestore.Case {
	t.Helper()
	id, err := opcommands.NewID()
	if err != nil {
		t.Fatal(err)
	}
	c := refundflow.Command{ID: id, Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao,
		OrderID: "3296711100591134" + sub[:3], SubOrderID: "1034499579120189" + sub,
		Request: &req, Operator: operator, IssuedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := c.Validate(); err != nil {
		t.Fatalf("request command: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := opcommands.Publish(ctx, s.js, c); err != nil {
		t.Fatalf("publish request: %v", err)
	}
	var k casestore.Case
	eventstest.WaitFor(t, wait, "case of "+id+" in "+string(want), func() bool {
		k, err = st.CaseOpenedBy(context.Background(), id)
		return err == nil && k.State == string(want)
	})
	return k
}

// parkTaobaoRequest files a Taobao request with a reason the form does
// not offer (999999) and returns its case once the worker parked it
// (reason_not_offered).
func parkTaobaoRequest(t *testing.T, s *stack, st *casestore.Store, sub string) casestore.Case {
	t.Helper()
	k := fileRequest(t, s, st, sub, "browser-test", refundflow.Request{GoodsStatus: "1", ReasonID: 999999, Description: "browser test"},
		refundflow.StateNeedsAttention, 30*time.Second)
	if k.AttentionCode != refundflow.AttnReasonNotOffered {
		t.Fatalf("case %d parked with %q; want %s", k.ID, k.AttentionCode, refundflow.AttnReasonNotOffered)
	}
	return k
}

// TestBrowser drives the console in Debian's chromium against the product
// in-process: two Taobao requests parked with reason_not_offered; a viewer
// logs in, sees a case without the resolve form and is refused (403) when
// posting it anyway; an operator logs in, sees the overview, opens a case
// with its attention, advice and why-here line, has a form posted without
// its CSRF token refused; with case B open, closes it from a second tab
// and sees the first tab show closed_locally and the longer timeline
// without a reload (the event stream); then closes case A with a note and
// sees the verdict and closed_locally. From a third parked case, the
// operator follows "Request again" to the request form filled in with the
// case's request, looks up the reasons the platform offers, picks one, and
// the same case is submitted.
// The operator files a 1688 return
// request through the request form (a bad one first, refused beside the
// form), lands on its case with the verdict, and watches the open page
// move to waiting_return_shipment without a reload as the sandbox's seller
// agrees; then reports the shipment through the ship form (a bad waybill
// first, refused beside the form), sees the verdict, and the open page
// shows the case succeed without a reload. Every page and API route refuses requests
// without credentials, and no configured secret appears in any answer.
// Screenshots of the overview and the case pages are logged; with
// REFUNDHUB_SCREENSHOT_DIR set, the finished case at 1280×800 is also
// written there (docs/images/console-case.png).
func TestBrowser(t *testing.T) {
	chromium := testenv.Installed(t, "chromium", "apt-get install chromium")
	s := startStack(t)
	st, err := casestore.OpenReadOnly(context.Background(), s.dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	caseA := parkTaobaoRequest(t, s, st, "901")
	caseB := parkTaobaoRequest(t, s, st, "902")
	caseC := parkTaobaoRequest(t, s, st, "903")
	base, logs := startConsole(t, s.upstreamEnv(consoleEnv(s.natsURL, s.dbPath)))

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800))...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	ctx, cancelT := context.WithTimeout(ctx, 150*time.Second)
	defer cancelT()

	var bodies []string // every page the browser saw, for the secrets check
	browse := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatalf("%s: read the page: %v", what, err)
		}
		bodies = append(bodies, html)
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	exists := func(sel string) bool {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
		if err != nil {
			t.Fatalf("count %s: %v", sel, err)
		}
		return n > 0
	}
	screenshot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(t.ArtifactDir(), name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}
	login := func(name, password string) {
		t.Helper()
		browse("log in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("#name")),
			chromedp.SendKeys(chromedp.ID("#name"), name), chromedp.SendKeys(chromedp.ID("#password"), password),
			chromedp.Submit(chromedp.ID("#password")), chromedp.WaitVisible(chromedp.CSS("nav")))
	}
	logout := func() {
		t.Helper()
		browse("log out", chromedp.Click(chromedp.CSS("header form button")), chromedp.WaitVisible(chromedp.ID("#name")))
	}
	casePath := func(c casestore.Case) string { return fmt.Sprintf("%s/cases/%d", base, c.ID) }

	// A viewer reads a parked case but gets no form, and a post is refused.
	login(viewerName, viewerPassword)
	browse("viewer opens case B", chromedp.Navigate(casePath(caseB)), chromedp.WaitVisible(chromedp.ID("#why")))
	if exists("#resolve") || !exists("#read-only") {
		t.Errorf("viewer's page of case %d: resolve form %v, read-only note %v; want no form and the note", caseB.ID, exists("#resolve"), exists("#read-only"))
	}
	csrf, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`input[name="csrf"]`)))
	if err != nil {
		t.Fatalf("viewer's CSRF token: %v", err)
	}
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	cookies := res.Cookies
	if err != nil || len(cookies) != 1 {
		t.Fatalf("viewer's cookies = %v, %v; want the session", cookies, err)
	}
	if !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict {
		t.Errorf("session cookie HttpOnly=%v SameSite=%v; want HttpOnly, Strict", cookies[0].HTTPOnly, cookies[0].SameSite)
	}
	r := post(t, casePath(caseB)+"/resolve", cookies[0].Name+"="+cookies[0].Value,
		url.Values{"csrf": {csrf}, "action": {"close"}, "note": {"a viewer tries"}})
	if r.status != http.StatusForbidden || !strings.Contains(r.body, console.CodeForbidden) {
		t.Errorf("viewer's resolve post = %d; want 403 forbidden:\n%s", r.status, r.body)
	}
	bodies = append(bodies, r.body)
	logout()

	// The operator: overview, the attention list, the case.
	login(operatorName, operatorPassword)
	browse("overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("#open-cases")))
	if got := text("#attention"); !strings.Contains(got, refundflow.AttnReasonNotOffered+"\t3") {
		t.Errorf("overview attention table = %q; want reason_not_offered with 3 cases", got)
	}
	screenshot("overview.png")
	browse("attention list", chromedp.Click(chromedp.CSS(`#attention a`)), chromedp.WaitVisible(chromedp.ID("#cases")))
	if got := text("#cases"); !strings.Contains(got, fmt.Sprint(caseA.ID)) || !strings.Contains(got, fmt.Sprint(caseB.ID)) {
		t.Errorf("cases filtered by reason_not_offered = %q; want cases %d and %d", got, caseA.ID, caseB.ID)
	}
	browse("case A", chromedp.Navigate(casePath(caseA)), chromedp.WaitVisible(chromedp.ID("#resolve")))
	if got := text("#attention"); !strings.Contains(got, refundflow.AttnReasonNotOffered) {
		t.Errorf("case page attention = %q; want %s", got, refundflow.AttnReasonNotOffered)
	}
	if got := text("#advice"); !strings.Contains(got, "re-request with a reason the form offers") {
		t.Errorf("case page advice = %q; want the runbook's way out", got)
	}
	if got := text("#why"); !strings.Contains(got, "Stopped at") || !strings.Contains(got, "reason_not_offered") {
		t.Errorf("why line = %q; want where and why it stopped", got)
	}
	screenshot("case.png")

	// The form without its CSRF token is refused.
	browse("post without CSRF", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`document.querySelector('#resolve input[name="csrf"]').remove() === undefined`)(ctx, tg)
		return err
	}),
		chromedp.Click(chromedp.CSS(`#resolve input[value="close"]`)),
		chromedp.SendKeys(chromedp.ID("#note"), "no token"), chromedp.Submit(chromedp.ID("#note")),
		chromedp.WaitVisible(chromedp.CSS(`p.error`)))
	if got := text("p.error"); !strings.Contains(got, "403") || !strings.Contains(got, console.CodeForbidden) {
		t.Errorf("post without CSRF token: page says %q; want 403 forbidden", got)
	}
	if k, _ := st.GetCase(context.Background(), caseA.ID); k.State != string(refundflow.StateNeedsAttention) {
		t.Errorf("after the refused post case %d is %s; want it unchanged", caseA.ID, k.State)
	}

	// Live: case B open in this tab is closed from another tab; this tab
	// shows the new state, timeline and a note without a reload (Poll
	// fails on a navigation, and the window keeps a mark set before).
	browse("operator opens case B", chromedp.Navigate(casePath(caseB)), chromedp.WaitVisible(chromedp.ID("#resolve")))
	rows := func() int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#timeline tbody tr').length`))
		if err != nil {
			t.Fatalf("count timeline rows: %v", err)
		}
		return n
	}
	rowsBefore := rows()
	// The reader opened the stored request's fold: it stays open.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded = true; document.querySelector('#request-json-fold').open = true`)); err != nil {
		t.Fatalf("mark the window: %v", err)
	}
	other, cancelOther := chromedp.NewContext(ctx)
	defer cancelOther()
	if err := chromedp.Do(other, chromedp.Navigate(casePath(caseB)), chromedp.WaitVisible(chromedp.ID("#resolve")),
		chromedp.Click(chromedp.CSS(`#resolve input[value="close"]`)),
		chromedp.SendKeys(chromedp.ID("#note"), "closed in another tab"), chromedp.Submit(chromedp.ID("#note")),
		chromedp.WaitVisible(chromedp.ID("#verdict"))); err != nil {
		t.Fatalf("close case B in another tab: %v", err)
	}
	status, err := chromedp.Run(ctx, chromedp.Poll[string](`window.notReloaded === true &&
		document.querySelector('#state').textContent === 'closed_locally' &&
		!document.querySelector('#live-status').hidden && document.querySelector('#live-status').textContent`,
		chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatalf("case B's open page did not show closed_locally without a reload within 20s (state %q): %v", text("#state"), err)
	}
	if !strings.Contains(status, string(refundflow.StateClosedLocally)) {
		t.Errorf("live note = %q; want it to name the new state", status)
	}
	if n := rows(); n <= rowsBefore {
		t.Errorf("timeline of the open page: %d rows after the close; want more than %d", n, rowsBefore)
	}
	if exists("#resolve") || exists("#attention") {
		t.Errorf("the open page of closed case %d still shows the resolve form (%v) or attention (%v)", caseB.ID, exists("#resolve"), exists("#attention"))
	}
	if open, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#request-json-fold').open`)); err != nil || !open {
		t.Errorf("the stored request's fold the reader opened is closed after the live update (%v)", err)
	}
	screenshot("case-live.png")
	browse("read case B after the live update", chromedp.WaitVisible(chromedp.ID("#live-status")))

	// Close with a note: the verdict, and the case closed_locally.
	note := "the seller refunded by bank transfer"
	browse("resolve close", chromedp.Navigate(casePath(caseA)), chromedp.WaitVisible(chromedp.ID("#resolve")),
		chromedp.Click(chromedp.CSS(`#resolve input[value="close"]`)),
		chromedp.SendKeys(chromedp.ID("#note"), note), chromedp.Submit(chromedp.ID("#note")),
		chromedp.WaitVisible(chromedp.ID("#verdict")))
	if got := text("#verdict"); !strings.Contains(got, casestore.VerdictApplied) {
		t.Errorf("verdict = %q; want applied", got)
	}
	if got := text("#state"); got != string(refundflow.StateClosedLocally) {
		t.Errorf("state after close = %q; want closed_locally", got)
	}
	if exists("#resolve") {
		t.Errorf("a closed case still offers the resolve form")
	}

	// Request again: case C stopped before anything reached the platform;
	// its page links to the request form filled in with its request, which
	// filed with a reason the form offers starts case C again (the same
	// case, not a new one) and its refund is submitted.
	browse("case C", chromedp.Navigate(casePath(caseC)), chromedp.WaitVisible(chromedp.ID("#request-again")),
		chromedp.Click(chromedp.ID("#request-again-link")), chromedp.WaitVisible(chromedp.ID("#again")))
	if got, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("#request-reason-id"))); err != nil || got != "999999" {
		t.Errorf("request form for case %d: reason id %q (%v); want the case's 999999", caseC.ID, got, err)
	}
	// The reasons the platform offers, looked up from the form; one is
	// picked from the list.
	browse("look up the reasons", chromedp.Click(chromedp.ID("#lookup")), chromedp.WaitVisible(chromedp.ID("#reasons-table")))
	if got := text("#reasons-table"); !strings.Contains(got, "1004") || strings.Contains(got, "999999") {
		t.Errorf("reasons offered for case %d's sub-order: %q; want 1004 among them, and not 999999", caseC.ID, got)
	}
	browse("use reason 1004", chromedp.Click(chromedp.CSS(`button.use-reason[data-reason="1004"]`)),
		chromedp.WaitNotPresent(chromedp.ID("#reasons-table")), chromedp.WaitVisible(chromedp.ID("#request")))
	if got, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("#request-reason-id"))); err != nil || got != "1004" {
		t.Errorf("after picking reason 1004 the form's reason id is %q (%v)", got, err)
	}
	if got, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("#request-sub-order"))); err != nil || got != caseC.SubOrderID {
		t.Errorf("after picking a reason the form's sub-order is %q (%v); want case %d's %s", got, err, caseC.ID, caseC.SubOrderID)
	}
	browse("request again", chromedp.Submit(chromedp.ID("#request-order")), chromedp.WaitVisible(chromedp.ID("#verdict")))
	if got := text("#verdict"); !strings.Contains(got, casestore.VerdictApplied) {
		t.Errorf("request again: verdict %q; want applied", got)
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.Contains(loc, casePath(caseC)+"?") {
		t.Errorf("after request again the browser is at %s (%v); want case %d's page", loc, err, caseC.ID)
	}
	eventstest.WaitFor(t, 30*time.Second, fmt.Sprintf("case %d submitted with reason 1004", caseC.ID), func() bool {
		k, err := st.GetCase(context.Background(), caseC.ID)
		return err == nil && k.RefundID != "" && strings.Contains(string(k.Request), `"reasonId":1004`)
	})

	// Request: the 1688 return request (refundctl request's example) is
	// filed through the form; a bad one first is refused beside the form,
	// naming the field, and publishes nothing.
	order := "3305075341149134262"
	fillRequest := func(goodsStatus string, then ...chromedp.Action[chromedp.Void]) []chromedp.Action[chromedp.Void] {
		return append([]chromedp.Action[chromedp.Void]{
			chromedp.Navigate(base + "/"), chromedp.Click(chromedp.CSS(`nav a[href="/requests/new"]`)), chromedp.WaitVisible(chromedp.ID("#request")),
			chromedp.SetValue(chromedp.ID("#request-platform"), "1688"), chromedp.SendKeys(chromedp.ID("#request-order"), order),
			chromedp.SetValue(chromedp.ID("#request-type"), "return"), chromedp.SendKeys(chromedp.ID("#request-goods-status"), goodsStatus),
			chromedp.SetValue(chromedp.ID("#request-reason"), "七天无理由退货"), chromedp.SendKeys(chromedp.ID("#request-amount"), "9500"),
			chromedp.SendKeys(chromedp.ID("#request-description"), "browser test: no longer needed"),
		}, then...)
	}
	browse("request with a bad goods status", fillRequest("received", chromedp.Submit(chromedp.ID("#request-order")),
		chromedp.WaitVisible(chromedp.CSS(`#request p.error`)))...)
	if got := text("#request p.error"); !strings.Contains(got, "Goods status") {
		t.Errorf("request with goods status %q: the form says %q; want the Goods status rule", "received", got)
	}
	if _, err := st.OpenCase(context.Background(), casestore.Platform1688, order, ""); err == nil {
		t.Errorf("after the refused request form order %s has a case; want none", order)
	}
	browse("request", fillRequest("aftersaleBuyerReceived", chromedp.Submit(chromedp.ID("#request-order")),
		chromedp.WaitVisible(chromedp.ID("#verdict")))...)
	if got := text("#verdict"); !strings.Contains(got, casestore.VerdictApplied) {
		t.Fatalf("request verdict = %q; want applied", got)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	caseR, err := st.CaseOpenedBy(context.Background(), u.Query().Get("command"))
	if err != nil || u.Path != fmt.Sprintf("/cases/%d", caseR.ID) || caseR.OrderID != order {
		t.Fatalf("after the request form the browser is at %s (case %+v, %v); want the case the request opened", loc, caseR, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatalf("mark the window: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.notReloaded === true &&
		document.querySelector('#state').textContent === 'waiting_return_shipment' && document.querySelector('#ship') !== null`,
		chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		k, _ := st.GetCase(context.Background(), caseR.ID)
		t.Fatalf("case R's open page did not show waiting_return_shipment and the ship form without a reload within 45s (page %q, store %s %s): %v",
			text("#state"), k.State, k.AttentionCode, err)
	}

	// Ship: the 1688 return request waits for the return shipment; a bad
	// waybill is refused beside the form, naming it; the real one is
	// applied, and the open page follows the case to succeeded.
	browse("case R", chromedp.Navigate(casePath(caseR)), chromedp.WaitVisible(chromedp.ID("#ship")))
	if exists("#resolve") || exists("#modify") {
		t.Errorf("case %d waiting for the return shipment offers resolve (%v) or modify (%v)", caseR.ID, exists("#resolve"), exists("#modify"))
	}
	browse("ship with a bad waybill", chromedp.SendKeys(chromedp.ID("#ship-company"), "YTO"),
		chromedp.SendKeys(chromedp.ID("#ship-waybill"), " YT1"), chromedp.Submit(chromedp.ID("#ship-waybill")),
		chromedp.WaitVisible(chromedp.CSS(`#ship p.error`)))
	if got := text("#ship p.error"); !strings.Contains(got, "Waybill: 1 to 64 printable characters") {
		t.Errorf("ship with a waybill starting with a space: the form says %q; want the Waybill rule", got)
	}
	if k, _ := st.GetCase(context.Background(), caseR.ID); k.State != string(refundflow.StateWaitingReturnShipment) {
		t.Errorf("after the refused ship form case %d is %s; want it unchanged", caseR.ID, k.State)
	}
	browse("ship", chromedp.Navigate(casePath(caseR)), chromedp.WaitVisible(chromedp.ID("#ship")),
		chromedp.SendKeys(chromedp.ID("#ship-company"), "YTO"), chromedp.SendKeys(chromedp.ID("#ship-waybill"), "YT1234567890"),
		chromedp.Submit(chromedp.ID("#ship-waybill")), chromedp.WaitVisible(chromedp.ID("#verdict")))
	if got := text("#verdict"); !strings.Contains(got, casestore.VerdictApplied) {
		t.Errorf("ship verdict = %q; want applied", got)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded = true`)); err != nil {
		t.Fatalf("mark the window: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.notReloaded === true &&
		document.querySelector('#state').textContent === 'succeeded'`, chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		k, _ := st.GetCase(context.Background(), caseR.ID)
		t.Fatalf("case R's open page did not show succeeded without a reload within 45s (page %q, store %s): %v", text("#state"), k.State, err)
	}
	if exists("#ship") || exists("#cancel") {
		t.Errorf("the open page of succeeded case %d still offers ship (%v) or cancel (%v)", caseR.ID, exists("#ship"), exists("#cancel"))
	}
	if tl := text("#timeline"); !strings.Contains(tl, "report_shipment") || !strings.Contains(tl, "by olga") {
		t.Errorf("timeline of case %d = %q; want the shipment recorded by olga (the logged-in operator)", caseR.ID, tl)
	}
	screenshot("case-shipped.png")
	saveViewportScreenshot(ctx, t, "console-case.png") // the README's image, when asked for

	// Without credentials every page and API route answers 401 or sends
	// the browser to the login page.
	for _, path := range []string{"/", "/cases", fmt.Sprintf("/cases/%d", caseA.ID), "/api/v1/cases",
		fmt.Sprintf("/api/v1/cases/%d", caseA.ID), "/api/v1/dead-letters", "/readyz", "/metrics", "/nothing-here"} {
		a := get(t, base+path, "")
		if a.status != http.StatusUnauthorized && a.status != http.StatusSeeOther {
			t.Errorf("GET %s without credentials = %d; want 401 or 303", path, a.status)
		}
		bodies = append(bodies, a.body)
	}
	if r := post(t, casePath(caseB)+"/resolve", "", url.Values{"action": {"retry"}}); r.status != http.StatusUnauthorized {
		t.Errorf("resolve post without credentials = %d; want 401", r.status)
	}
	for _, path := range []string{"/api/v1/cases", fmt.Sprintf("/api/v1/cases/%d", caseA.ID), "/api/v1/dead-letters", "/metrics"} {
		bodies = append(bodies, get(t, base+path, operatorToken).body)
	}

	// No configured secret in any answer or log line.
	secrets := append(testSecrets(), stackSecret)
	for _, b := range append(bodies, logs.String()) {
		for _, secret := range secrets {
			if strings.Contains(b, secret) {
				t.Errorf("an answer or the log holds a configured secret (%.10s…)", secret)
			}
		}
	}
}

// post sends a form with a Cookie header, without following redirects.
func post(t *testing.T, u, cookie string, form url.Values) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return answer{resp.StatusCode, b.String()}
}
