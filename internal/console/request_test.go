package console

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
)

var (
	inputTag = regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	idAttr   = regexp.MustCompile(`\bid="([^"]+)"`)
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
	m := regexp.MustCompile(`^/requests/new\?command=(cmd-[0-9a-f]{24})$`).FindStringSubmatch(loc)
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
	if p := ts.do("GET", loc, "cookie:"+op.Value, nil); !strings.Contains(p.body, `id="verdict"`) || !strings.Contains(p.body, "pending") {
		t.Errorf("the page after the request does not show it pending:\n%s", p.body)
	}
	recordOutcome(t, ts.path, casestore.CommandOutcome{CommandID: c.ID, Verdict: casestore.VerdictRejected, Code: "case_open", Reason: "case 1 is open"})
	if p := ts.do("GET", loc, "cookie:"+op.Value, nil); !strings.Contains(p.body, "rejected") || !strings.Contains(p.body, "case 1 is open") {
		t.Errorf("the page does not show the rejected verdict and its reason:\n%s", p.body)
	}
}
