package console

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/apiclient"
	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/platform"
	"github.com/refundhub/refundhub/internal/reasons"
	"github.com/refundhub/refundhub/internal/refundflow"
	"github.com/refundhub/refundhub/internal/sandbox"
)

var (
	// pickButton is a reason's Use button: its value and reason id.
	pickButton = regexp.MustCompile(`name="pick" value="([^"]+)" class="use-reason" data-reason="([0-9]+)"`)
	inputTag   = regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	idAttr     = regexp.MustCompile(`\bid="([^"]+)"`)
)

// TestRequestForm: the request page offers an operator a form whose every
// input has a label, and a viewer none; a viewer's post or one without
// the CSRF token is 403; a bad form is shown again with its values and
// errors naming the form's fields, and nothing is published; a good one
// publishes one request_refund under the operator's name with the form's
// values and shows its verdict.
func TestRequestForm(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	if err := events.EnsureWorkStreams(context.Background(), js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOn(t, js, seedCase{order: "200", sub: "201", state: string(refundflow.StateWaitingSeller)})
	op, viewer := ts.login(operatorName), ts.login(viewerName)
	csrf := ts.srv.sessions.csrf(op.Value)

	page := ts.do("GET", "/requests/new", "cookie:"+op.Value, nil)
	if page.status != http.StatusOK || !strings.Contains(page.body, `id="request"`) || !strings.Contains(page.body, `href="/requests/new"`) {
		t.Fatalf("GET /requests/new = %d; want the form and the nav link:\n%s", page.status, page.body)
	}
	for _, tag := range inputTag.FindAllString(page.body, -1) {
		if strings.Contains(tag, `type="hidden"`) {
			continue
		}
		id := idAttr.FindStringSubmatch(tag)
		if id == nil || !strings.Contains(page.body, `<label for="`+id[1]+`"`) {
			t.Errorf("request form: %s has no label", tag)
		}
	}
	if v := ts.do("GET", "/requests/new", "cookie:"+viewer.Value, nil); strings.Contains(v.body, `id="request"`) || !strings.Contains(v.body, `id="read-only"`) {
		t.Errorf("viewer's request page offers the form, or lacks the read-only note")
	}

	good := url.Values{"platform": {"1688"}, "order": {"3305075341149134262"}, "type": {"return"},
		"goods_status": {"aftersaleBuyerReceived"}, "reason": {"七天无理由退货"}, "amount": {"9500"},
		"description": {"no longer needed"}, "vouchers": {"a.jpg\n\nb.jpg\n"}, "order_entries": {"11, 12"}}
	for who, r := range map[string]reply{
		"viewer":        ts.do("POST", "/requests", "cookie:"+viewer.Value, withCSRF(good, ts.srv.sessions.csrf(viewer.Value))),
		"without CSRF":  ts.do("POST", "/requests", "cookie:"+op.Value, good),
		"without login": ts.do("POST", "/requests", "", withCSRF(good, csrf)),
	} {
		if r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
			t.Errorf("request form posted by %s = %d; want 403 (401 without login)", who, r.status)
		}
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want []string
	}{
		{"Taobao without sub-order or goods status", url.Values{"platform": {"taobao"}, "order": {"100"}, "reason_id": {"1004"}},
			[]string{"Sub-order id: required for Taobao", "Goods status"}},
		{"bad amount and type", url.Values{"platform": {"taobao"}, "order": {"100"}, "sub_order": {"101"}, "goods_status": {"1"},
			"reason_id": {"1004"}, "amount": {"lots"}, "type": {"swap"}}, []string{"Amount: fen", "Type: refund or return"}},
		{"max on 1688, a sub-order", url.Values{"platform": {"1688"}, "order": {"100"}, "sub_order": {"101"}, "goods_status": {"aftersaleBuyerReceived"},
			"reason": {"x"}, "amount": {"max"}, "description": {"d"}}, []string{"Amount: ", "Sub-order id: a 1688 case is one per order"}},
		{"no reason", url.Values{"platform": {"taobao"}, "order": {"100"}, "sub_order": {"101"}, "goods_status": {"1"}}, []string{"Reason"}},
	} {
		before := commandsStored(t, js)
		r := ts.do("POST", "/requests", "cookie:"+op.Value, withCSRF(tc.form, csrf))
		if n := commandsStored(t, js); n != before {
			t.Errorf("%s: %d commands stored; want %d (nothing published)", tc.name, n, before)
		}
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, `role="alert"`) || !strings.Contains(r.body, `value="`+tc.form.Get("order")+`"`) {
			t.Errorf("%s = %d; want 400 with the error and the values kept:\n%s", tc.name, r.status, r.body)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(r.body, w) {
				t.Errorf("%s: the page does not say %q", tc.name, w)
			}
		}
		for _, field := range []string{"subOrderId", "goodsStatus", "reasonId", "amount:"} {
			if strings.Contains(r.body, field) {
				t.Errorf("%s: the error names the JSON field %q", tc.name, field)
			}
		}
	}

	r := ts.do("POST", "/requests", "cookie:"+op.Value, withCSRF(good, csrf))
	loc := r.header.Get("Location")
	m := regexp.MustCompile(`^/requests/new\?command=(cmd-[0-9a-f]{24})&seq=[0-9]+&stream=COMMANDS$`).FindStringSubmatch(loc)
	if r.status != http.StatusSeeOther || m == nil {
		t.Fatalf("good request = %d, Location %q; want 303 back to the page with ?command= (no verdict within the wait)", r.status, loc)
	}
	c := lastCommand(t, js, events.CommandSubject("1688", string(refundflow.InputRequestRefund), "1688:3305075341149134262"))
	want := refundflow.Request{ReturnGoods: true, GoodsStatus: "aftersaleBuyerReceived", Reason: "七天无理由退货", Amount: 9500,
		Description: "no longer needed", Vouchers: []string{"a.jpg", "b.jpg"}, OrderEntryIDs: []int64{11, 12}}
	if c.ID != m[1] || c.Operator != "otto" || c.OrderID != "3305075341149134262" || c.Request == nil ||
		c.Request.ReturnGoods != want.ReturnGoods || c.Request.Reason != want.Reason || c.Request.Amount != want.Amount ||
		!slices.Equal(c.Request.Vouchers, want.Vouchers) || !slices.Equal(c.Request.OrderEntryIDs, want.OrderEntryIDs) {
		t.Errorf("published %+v (request %+v); want %s by otto with %+v", c, c.Request, m[1], want)
	}
	// Pending, it says where JetStream has it (here no worker consumer
	// takes commands); it said only "the worker has not decided it yet".
	if p := ts.do("GET", loc, "cookie:"+op.Value, nil); !strings.Contains(p.body, `id="verdict"`) || !strings.Contains(p.body, "pending") ||
		!strings.Contains(p.body, "sent; no worker takes commands: no worker consumer on stream COMMANDS") {
		t.Errorf("the page after the request does not show it pending, and where JetStream has it:\n%s", p.body)
	}
	// A link edited to name another command's message says nothing of
	// either.
	other := ts.do("POST", "/requests", "cookie:"+op.Value, withCSRF(good, csrf))
	seq := regexp.MustCompile(`&seq=([0-9]+)&`).FindStringSubmatch(other.header.Get("Location"))
	if seq == nil {
		t.Fatalf("a second request's Location %q has no seq", other.header.Get("Location"))
	}
	edited := regexp.MustCompile(`&seq=[0-9]+&`).ReplaceAllString(loc, "&seq="+seq[1]+"&")
	if p := ts.do("GET", edited, "cookie:"+op.Value, nil); !strings.Contains(p.body, "pending") || strings.Contains(p.body, "no worker takes commands") {
		t.Errorf("the page of %s, its link naming another command's message (seq %s), says where that one is:\n%s", m[1], seq[1], p.body)
	}
	// Kept by the worker for a case (its message acknowledged, which
	// JetStream would call handled): the page says where it is kept.
	w, err := casestore.OpenExisting(context.Background(), ts.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Update(context.Background(), func(tx *casestore.Tx) error {
		return tx.Defer(context.Background(), casestore.DeferredInput{CaseID: ts.cases[0].ID, MsgID: m[1], Source: casestore.SourceCommands,
			Payload: []byte(`{}`), NotBefore: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Reason: "behind_earlier_input: an earlier input of the case waits"})
	}); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	if p := ts.do("GET", loc, "cookie:"+op.Value, nil); !strings.Contains(p.body, "kept by the worker for case") || strings.Contains(p.body, "no worker takes commands") {
		t.Errorf("the page of a request the worker keeps does not say where it is kept:\n%s", p.body)
	}
	recordOutcome(t, ts.path, casestore.CommandOutcome{CommandID: c.ID, Verdict: casestore.VerdictRejected, Code: "case_open", Reason: "case 1 is open"})
	if p := ts.do("GET", loc, "cookie:"+op.Value, nil); !strings.Contains(p.body, "rejected") || !strings.Contains(p.body, "case 1 is open") {
		t.Errorf("the page does not show the rejected verdict and its reason:\n%s", p.body)
	}
}

// TestRequestAgain: a case stopped before its refund reached the platform
// offers an operator "Request again", a link to the request form filled in
// with the case's request as filed; filed with one field corrected, it
// publishes that request with every other field as it was. A case whose
// refund is on the platform, or whose submission may be, offers none, and
// its form says a request would be refused.
func TestRequestAgain(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	if err := events.EnsureWorkStreams(context.Background(), js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	parked := string(refundflow.StateNeedsAttention)
	ts := newTestServerOn(t, js,
		seedCase{order: "100", sub: "101", state: parked, attention: refundflow.AttnReasonNotOffered,
			request: `{"returnGoods":true,"goodsStatus":"3","reasonId":999999,"amount":0,"description":"尺码 <不合适>","vouchers":["https://img.example/a.jpg"]}`},
		seedCase{order: "200", sub: "201", state: parked, attention: refundflow.AttnSellerRefused, parked: string(refundflow.StateWaitingSeller), refund: "R1",
			plan: `{"reasonId":1004,"reasonDesc":"未按约定时间发货","fee":10000,"priorListed":true}`, shipment: `{"company":"YTO","waybill":"YT1234567890"}`},
		seedCase{platform: "1688", order: "300", state: parked, attention: refundflow.AttnFeeOutOfBounds,
			request: `{"goodsStatus":"refundWaitSellerSend","reason":"七天无理由","amount":9500,"carriage":500,"description":"d","orderEntryIds":[11,12]}`},
		seedCase{order: "400", sub: "401", state: parked, attention: refundflow.CodeUnverifiable, parked: string(refundflow.StateSubmitting)})
	op, viewer := ts.login(operatorName), ts.login(viewerName)
	a, refused, alibaba, unverified := ts.cases[0], ts.cases[1], ts.cases[2], ts.cases[3]
	link := fmt.Sprintf(`href="/requests/new?case=%d"`, a.ID)

	page := func(path, cookie string) string {
		t.Helper()
		r := ts.do("GET", path, "cookie:"+cookie, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s = %d:\n%s", path, r.status, r.body)
		}
		return r.body
	}
	if body := page(fmt.Sprintf("/cases/%d", a.ID), op.Value); !strings.Contains(body, `id="request-again"`) || !strings.Contains(body, link) {
		t.Errorf("case %d (reason_not_offered at rendering) offers no request again to an operator", a.ID)
	}
	// The request as filed reads in words: the Taobao amount 0 is the
	// most the form allows (the page showed "amount": 0).
	body := page(fmt.Sprintf("/cases/%d", a.ID), viewer.Value)
	for _, want := range []string{`<th scope="row">Type</th><td>return goods and refund</td>`, `<td>3 (received)</td>`,
		`<th scope="row">Amount</th><td>the most the refund form allows (max)</td>`, `<td>尺码 &lt;不合适&gt;</td>`, `<td>https://img.example/a.jpg</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("case %d's page shows the request without %q", a.ID, want)
		}
	}
	if body := page(fmt.Sprintf("/cases/%d", alibaba.ID), viewer.Value); !strings.Contains(body, `<th scope="row">Amount</th><td>9500 fen (95.00 yuan)</td>`) ||
		!strings.Contains(body, `<th scope="row">Order entries</th><td>11, 12</td>`) {
		t.Errorf("1688 case %d's page shows the request without its amount in fen and yuan or its order entries", alibaba.ID)
	}
	// What the worker sent, and the return shipment, read in words too.
	if body := page(fmt.Sprintf("/cases/%d", refused.ID), viewer.Value); !strings.Contains(body, `<h3>Chosen from the platform's form</h3>`) ||
		!strings.Contains(body, `<th scope="row">Amount</th><td>10000 fen (100.00 yuan)</td>`) || !strings.Contains(body, `<td>1004 (未按约定时间发货)</td>`) ||
		!strings.Contains(body, `<th scope="row">Waybill</th><td>YT1234567890</td>`) || strings.Contains(body, "priorListed") {
		t.Errorf("case %d's page shows what was sent or the shipment not in words", refused.ID)
	}
	if strings.Contains(body, `id="request-again"`) {
		t.Errorf("case %d offers request again to a viewer", a.ID)
	}
	for _, k := range []casestore.Case{refused, unverified} {
		if body := page(fmt.Sprintf("/cases/%d", k.ID), op.Value); strings.Contains(body, `id="request-again"`) {
			t.Errorf("case %d (%s at %s, refund %q) offers request again", k.ID, k.AttentionCode, k.ParkedState, k.RefundID)
		}
	}

	form := page(fmt.Sprintf("/requests/new?case=%d", a.ID), op.Value)
	for _, want := range []string{`id="again"`, fmt.Sprintf("Filing again for <a href=\"/cases/%d\">case %d</a>, stopped at rendering with reason_not_offered", a.ID, a.ID),
		`<option value="taobao" selected>`, `name="order" size="26" inputmode="numeric" value="100"`, `value="101"`,
		`<option value="return" selected>`, `name="goods_status" size="26" value="3"`, `name="reason_id" size="10" inputmode="numeric" value="999999"`,
		`name="amount" size="12" value="max"`, "尺码 &lt;不合适&gt;</textarea>", "https://img.example/a.jpg</textarea>"} {
		if !strings.Contains(form, want) {
			t.Errorf("request form for case %d lacks %q", a.ID, want)
		}
	}
	form = page(fmt.Sprintf("/requests/new?case=%d", alibaba.ID), op.Value)
	for _, want := range []string{`<option value="1688" selected>`, `value="300"`, `value="refundWaitSellerSend"`, `value="七天无理由"`,
		`name="amount" size="12" value="9500"`, `value="500"`, `value="11, 12"`, "with fee_out_of_bounds"} {
		if !strings.Contains(form, want) {
			t.Errorf("request form for 1688 case %d lacks %q", alibaba.ID, want)
		}
	}
	if form := page(fmt.Sprintf("/requests/new?case=%d", refused.ID), op.Value); !strings.Contains(form, "would be refused while the case is open") {
		t.Errorf("request form for case %d (its refund on the platform) does not say a request would be refused", refused.ID)
	}
	// A case that is over: a request opens a new case, which follows it.
	ended := newTestServer(t, seedCase{order: "900", sub: "901", state: string(refundflow.StateSucceeded)})
	eop := ended.login(operatorName)
	if r := ended.do("GET", fmt.Sprintf("/requests/new?case=%d", ended.cases[0].ID), "cookie:"+eop.Value, nil); !strings.Contains(r.body,
		"a request filed now opens a new case for its order") || strings.Contains(r.body, "would be refused") {
		t.Errorf("request form for a succeeded case: want it to say a request opens a new case:\n%s", r.body)
	}
	for _, bad := range []string{"999", "x", "-1"} {
		if r := ts.do("GET", "/requests/new?case="+bad, "cookie:"+op.Value, nil); r.status != http.StatusNotFound {
			t.Errorf("GET /requests/new?case=%s = %d; want 404", bad, r.status)
		}
	}

	// Looked up from the form filled in for case A: the note on case A
	// stays, through the look-up and a pick; a form changed to name another
	// order drops it.
	lookup, _, _ := sandboxReasons(t)
	ts.srv.reasons = lookup
	csrf := ts.srv.sessions.csrf(op.Value)
	posted := url.Values{"csrf": {csrf}, "case": {fmt.Sprint(a.ID)}, "platform": {"taobao"}, "order": {"100"}, "sub_order": {"101"},
		"type": {"return"}, "goods_status": {"3"}, "reason_id": {"999999"}}
	looked := ts.do("POST", "/requests/reasons", "cookie:"+op.Value, posted)
	if !strings.Contains(looked.body, `id="again"`) || !pickButton.MatchString(looked.body) || !strings.Contains(looked.body, fmt.Sprintf(`name="case" value="%d"`, a.ID)) {
		t.Fatalf("look-up for case %d: want the note, the case field and the reasons kept:\n%s", a.ID, looked.body)
	}
	posted.Set("pick", "4005|return|3")
	if picked := ts.do("POST", "/requests/reasons", "cookie:"+op.Value, posted); !strings.Contains(picked.body, `id="again"`) ||
		!strings.Contains(picked.body, `name="reason_id" size="10" inputmode="numeric" value="4005"`) {
		t.Errorf("after a pick for case %d: want the note kept and reason 4005 in the form", a.ID)
	}
	posted.Set("sub_order", "999")
	if other := ts.do("POST", "/requests/reasons", "cookie:"+op.Value, posted); strings.Contains(other.body, `id="again"`) {
		t.Errorf("a form changed to sub-order 999 still says it files case %d again", a.ID)
	}
	if form := page(fmt.Sprintf("/requests/new?case=%d", unverified.ID), op.Value); !strings.Contains(form, "would be refused while the case is open") ||
		strings.Contains(form, "Filing again for") {
		t.Errorf("request form for case %d (a submission that may be on the platform) does not say a request would be refused", unverified.ID)
	}

	// Filed with the reason corrected: everything else as the case had it.
	values := url.Values{"csrf": {csrf}, "case": {fmt.Sprint(a.ID)}, "platform": {"taobao"}, "order": {"100"}, "sub_order": {"101"},
		"type": {"return"}, "goods_status": {"3"}, "reason_id": {"4005"}, "amount": {"max"}, "description": {"尺码 <不合适>"},
		"vouchers": {"https://img.example/a.jpg"}}
	if r := ts.do("POST", "/requests", "cookie:"+op.Value, values); r.status != http.StatusSeeOther {
		t.Fatalf("POST /requests = %d:\n%s", r.status, r.body)
	}
	got := lastCommand(t, js, events.CommandSubject("taobao", string(refundflow.InputRequestRefund), "taobao:101"))
	want := refundflow.Request{ReturnGoods: true, GoodsStatus: "3", ReasonID: 4005, Description: "尺码 <不合适>", Vouchers: []string{"https://img.example/a.jpg"}}
	if got.Request == nil || !reflect.DeepEqual(*got.Request, want) {
		t.Errorf("filed again: %+v; want %+v", got.Request, want)
	}
}

// TestFormOfFilesTheSameRequest: the form filled in from a case, filed
// unchanged, is the request the case was filed with, on both platforms.
func TestFormOfFilesTheSameRequest(t *testing.T) {
	for _, tc := range []struct {
		platform string
		req      refundflow.Request
	}{
		{"taobao", refundflow.Request{ReturnGoods: true, GoodsStatus: "3", ReasonID: 4005, Description: "尺码不合适", Vouchers: []string{"https://a/1.jpg", "https://a/2.jpg"}}},
		{"taobao", refundflow.Request{GoodsStatus: "1", Reason: "未按时发货", Amount: 5000, Description: "d"}},
		{"1688", refundflow.Request{ReturnGoods: true, GoodsStatus: "aftersaleBuyerReceived", ReasonID: 20025, Amount: 9500, Carriage: 800,
			Description: "七天无理由退货", Vouchers: []string{"box.jpg"}, OrderEntryIDs: []int64{11, 12}}},
	} {
		raw, err := json.Marshal(tc.req)
		if err != nil {
			t.Fatal(err)
		}
		k := casestore.Case{Platform: platform.ID(tc.platform), OrderID: "1", SubOrderID: "2", Request: raw}
		f := formOf(k)
		cmd := refundflow.Command{Platform: refundflow.Platform(tc.platform)}
		if err := fillRequest(f, &cmd); err != nil {
			t.Fatalf("fillRequest(formOf(%+v)) = %v", tc.req, err)
		}
		if !reflect.DeepEqual(*cmd.Request, tc.req) {
			t.Errorf("formOf, then filed: %+v;\nwant the case's %+v", *cmd.Request, tc.req)
		}
	}
}

// TestRequestFormLooksUpReasons: with platform credentials the request
// form's "Look up the reasons" asks the platform (the sandbox over real
// HTTP) for the reasons it offers for the form's order, type and goods
// status, keeps the form as it was, and lists each reason with a link that
// fills the form in with it; bad input is refused beside the form without
// a call; a platform that does not answer is said so. Without credentials
// the form offers no look-up and points to refundctl reasons. Viewers and
// posts without the CSRF token are refused.
func TestRequestFormLooksUpReasons(t *testing.T) {
	lookup, calls, srv := sandboxReasons(t)
	ts := newTestServer(t)
	op, viewer := ts.login(operatorName), ts.login(viewerName)
	csrf := ts.srv.sessions.csrf(op.Value)
	form := url.Values{"csrf": {csrf}, "platform": {"taobao"}, "order": {"3305075341149134260"}, "sub_order": {"3305075341149134261"},
		"type": {"return"}, "goods_status": {"3"}, "amount": {"max"}, "description": {"尺码 & 颜色"}}

	if page := ts.do("GET", "/requests/new", "cookie:"+op.Value, nil); strings.Contains(page.body, `id="lookup"`) ||
		!strings.Contains(page.body, "<code>refundctl reasons</code> lists them") {
		t.Errorf("without platform credentials the request form offers a look-up, or does not point to refundctl reasons")
	}
	if r := ts.do("POST", "/requests/reasons", "cookie:"+op.Value, form); r.status != http.StatusOK || !strings.Contains(r.body, "no platform credentials") {
		t.Errorf("look-up without credentials = %d; want the page saying the console has none:\n%s", r.status, r.body)
	}
	if calls.Load() != 0 {
		t.Fatalf("the platform was called %d times without credentials", calls.Load())
	}

	ts.srv.reasons = lookup
	if page := ts.do("GET", "/requests/new", "cookie:"+op.Value, nil); !strings.Contains(page.body, `id="lookup"`) {
		t.Errorf("with platform credentials the request form offers no look-up")
	}
	for who, r := range map[string]reply{
		"viewer":       ts.do("POST", "/requests/reasons", "cookie:"+viewer.Value, withCSRF(form, ts.srv.sessions.csrf(viewer.Value))),
		"without CSRF": ts.do("POST", "/requests/reasons", "cookie:"+op.Value, url.Values{"platform": {"taobao"}, "sub_order": {"3305075341149134261"}}),
	} {
		if r.status != http.StatusForbidden {
			t.Errorf("look-up posted by %s = %d; want 403", who, r.status)
		}
	}
	if calls.Load() != 0 {
		t.Fatalf("refused look-ups called the platform %d times", calls.Load())
	}

	r := ts.do("POST", "/requests/reasons", "cookie:"+op.Value, form)
	if r.status != http.StatusOK {
		t.Fatalf("look-up = %d:\n%s", r.status, r.body)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("a look-up for one type and goods status made %d platform calls; want 1 (return, 3)", n)
	}
	for _, want := range []string{`id="reasons-table"`, "<td>4005</td>", "尺码/颜色不合适", "the form allows up to",
		`value="3305075341149134261"`, "尺码 &amp; 颜色</textarea>"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("look-up page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "lookup-secret") {
		t.Errorf("the look-up page shows the platform secret")
	}
	pick := pickButton.FindAllStringSubmatch(r.body, -1)
	var pick4005 string
	for _, m := range pick {
		if m[2] == "4005" {
			pick4005 = html.UnescapeString(m[1])
		}
	}
	if pick4005 != "4005|return|3" {
		t.Fatalf("the button to use reason 4005 has value %q (buttons %q); want 4005|return|3", pick4005, pick)
	}
	// Picked after typing more: the form as posted, with that reason in
	// place of the text, and no platform call.
	before := calls.Load()
	edited := url.Values{}
	for k, v := range form {
		edited[k] = v
	}
	edited.Set("reason", "七天无理由")
	edited.Set("description", "line one\r\nline two")
	edited.Set("pick", pick4005)
	filled := ts.do("POST", "/requests/reasons", "cookie:"+op.Value, edited)
	for _, want := range []string{`name="reason_id" size="10" inputmode="numeric" value="4005"`, `name="reason" size="40" value=""`,
		`value="3305075341149134261"`, `<option value="return" selected>`, `name="amount" size="12" value="max"`, ">\nline one\nline two</textarea>"} {
		if !strings.Contains(filled.body, want) {
			t.Errorf("the request form after picking 4005 lacks %q", want)
		}
	}
	if strings.Contains(filled.body, `id="reasons-table"`) || calls.Load() != before {
		t.Errorf("picking a reason looked the reasons up again (%d calls)", calls.Load()-before)
	}

	before = calls.Load()
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"csrf": {csrf}, "platform": {"1688"}, "order": {"3305075341149134262"}, "sub_order": {"1"}}, "Not asked: Sub-order id: 1688 reasons are per order"},
		{url.Values{"csrf": {csrf}, "platform": {"taobao"}, "order": {"1"}}, "Not asked: Sub-order id: required for taobao"},
		{url.Values{"csrf": {csrf}, "platform": {"taobao"}, "sub_order": {"1"}, "goods_status": {"9"}}, `Not asked: Goods status &#34;9&#34;: want one of 1, 2, 3`},
	} {
		if r := ts.do("POST", "/requests/reasons", "cookie:"+op.Value, tc.form); r.status != http.StatusOK || !strings.Contains(r.body, tc.want) {
			t.Errorf("look-up with %v = %d; want %q beside the form:\n%s", tc.form, r.status, tc.want, r.body)
		}
	}
	if n := calls.Load() - before; n != 0 {
		t.Errorf("refused look-ups made %d platform calls", n)
	}
	// 1688: the reasons do not depend on the type, which the form always has.
	r = ts.do("POST", "/requests/reasons", "cookie:"+op.Value, url.Values{"csrf": {csrf}, "platform": {"1688"},
		"order": {"3305075341149134262"}, "type": {"return"}, "goods_status": {"aftersaleBuyerReceived"}})
	if !strings.Contains(r.body, `id="reasons-table"`) || !strings.Contains(r.body, "<td>any</td>") {
		t.Errorf("1688 look-up: no reasons listed:\n%s", r.body)
	}

	srv.Close() // the platform away
	r = ts.do("POST", "/requests/reasons", "cookie:"+op.Value, form)
	if r.status != http.StatusOK || !strings.Contains(r.body, "no reasons read: every look-up failed") {
		t.Errorf("look-up with the platform away = %d; want the page saying no reason was read:\n%s", r.status, r.body)
	}

	// The account's look-ups spent (3 at once, then one a second, as on
	// the API), the form says when to look up again, and asks nothing.
	for {
		if ok, _ := ts.srv.lookups.allow(operatorName); !ok {
			break
		}
	}
	before = calls.Load()
	r = ts.do("POST", "/requests/reasons", "cookie:"+op.Value, form)
	if r.status != http.StatusOK || !strings.Contains(r.body, "too many look-ups from your account; look up again in 1s") || calls.Load() != before {
		t.Errorf("look-up with the account's look-ups spent = %d; want the page saying when to look up again, the platform not asked:\n%s", r.status, r.body)
	}
}

// sandboxReasons is a reasons look-up against the sandbox over real HTTP,
// the count of its platform calls, and its server (closed at the test's
// end, or sooner to take the platform away).
func sandboxReasons(t *testing.T) (func(context.Context, reasons.Query) reasons.Result, *atomic.Int64, *httptest.Server) {
	t.Helper()
	sb, err := sandbox.New(sandbox.Config{AccessKey: "lookup-key-0001", AccessSecret: "lookup-secret-DO-NOT-PRINT", AutoCreate: true, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	calls := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		sb.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	client, err := apiclient.New(apiclient.Config{BaseURL: srv.URL, AccessKey: "lookup-key-0001", AccessSecret: "lookup-secret-DO-NOT-PRINT",
		UserID: "u1", Timeout: 2 * time.Second, RateLimit: 1000, RateBurst: 100})
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context, q reasons.Query) reasons.Result { return reasons.Lookup(ctx, client, q) }, calls, srv
}
