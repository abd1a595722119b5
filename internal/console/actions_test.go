package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// commandsStored is how many commands the COMMANDS stream holds.
func commandsStored(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), events.DefaultCommandStreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// lastCommand is the last command stored on subject.
func lastCommand(t *testing.T, js jetstream.JetStream, subject string) refundflow.Command {
	t.Helper()
	st, err := js.Stream(context.Background(), events.DefaultCommandStreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		t.Fatalf("no command on %s: %v", subject, err)
	}
	var c refundflow.Command
	if err := json.Unmarshal(m.Data, &c); err != nil {
		t.Fatalf("command on %s: %v", subject, err)
	}
	if got := m.Header.Get(events.HeaderCommandIssuer); got != c.Operator {
		t.Errorf("command on %s: issuer header %q; want the operator %q", subject, got, c.Operator)
	}
	return c
}

var commandInLocation = regexp.MustCompile(`\?command=(cmd-[0-9a-f]{24})&seq=[0-9]+&stream=COMMANDS$`)

// TestActions: each form of the case page, sent by an operator with the
// session's CSRF token, publishes its command for the case under the
// operator's name and shows the case with the verdict; a viewer, or a form
// without the CSRF token, is refused (403); a bad value publishes nothing
// and is shown beside its form, naming the form's field.
func TestActions(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	if err := events.EnsureWorkStreams(context.Background(), js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOn(t, js,
		seedCase{order: "200", sub: "201", state: string(refundflow.StateWaitingReturnShipment), refund: "R201"},
		seedCase{order: "300", sub: "301", state: string(refundflow.StateNeedsAttention), attention: refundflow.AttnSellerRefused,
			parked: string(refundflow.StateWaitingSeller), refund: "R301"},
		seedCase{platform: "1688", order: "400", state: string(refundflow.StateCancelled)},
		seedCase{order: "500", sub: "501", state: string(refundflow.StateNeedsAttention), attention: refundflow.CodeWorkerEnded,
			parked: string(refundflow.StateWaitingReturnShipment), refund: "R501"},
		seedCase{order: "600", sub: "601", state: string(refundflow.StateNeedsAttention), attention: refundflow.CodeResendsFailed,
			parked: string(refundflow.StateModifying), refund: "R601"},
		seedCase{order: "700", sub: "701", state: string(refundflow.StateNeedsAttention), attention: refundflow.CodeResendsFailed,
			parked: string(refundflow.StateReturnSubmitting), refund: "R701"},
		seedCase{platform: "1688", order: "800", state: string(refundflow.StateNeedsAttention), attention: refundflow.CodeUnverifiable,
			parked: string(refundflow.StateSubmitting)},
		seedCase{order: "900", sub: "901", state: string(refundflow.StateNeedsAttention), attention: refundflow.CodeUnverifiable,
			parked: string(refundflow.StateReturnSubmitting), refund: "R901"},
		seedCase{platform: "1688", order: "1000", state: string(refundflow.StateWaitingSeller), refund: "A1000"},
		seedCase{platform: "1688", order: "1100", state: string(refundflow.StateNeedsAttention), attention: refundflow.AttnRefundMissing,
			parked: string(refundflow.StateWaitingSeller), refund: "A1100"},
		seedCase{order: "1200", sub: "1201", state: string(refundflow.StateNeedsAttention), attention: refundflow.CodeUnverifiable,
			parked: string(refundflow.StateSubmitting), plan: `{"reasonId":1004,"fee":100,"priorListed":true,"callbackRefund":"R1300",` +
				`"orderElsewhere":{"subOrderId":"1201","caseOrder":"1200","platformOrder":"1300","refundId":"R1300"}}`},
		seedCase{order: "1400", sub: "1401", state: string(refundflow.StateNeedsAttention), attention: refundflow.AttnRefundExists,
			parked: string(refundflow.StateSubmitting), plan: `{"reasonId":1004,"fee":100,"priorListed":true,"priorRefunds":["R1400","R1401"],` +
				`"priorOpen":["R1401"],"refusedForOpen":true}`},
		seedCase{order: "1500", sub: "1501", state: string(refundflow.StateNeedsAttention), attention: refundflow.AttnSellerRefused,
			parked: string(refundflow.StateWaitingSeller), refund: "R1500", plan: `{"adopted":"R1500"}`},
		seedCase{order: "1600", sub: "1601", state: string(refundflow.StateNeedsAttention), attention: refundflow.AttnSellerRefused,
			parked: string(refundflow.StateWaitingSeller), refund: "R1601", plan: `{"adopted":"R1601","adoptedUnconfirmed":true,` +
				`"orderElsewhere":{"subOrderId":"1601","caseOrder":"1600","platformOrder":"1700","refundId":"R1601"}}`},
		seedCase{order: "1800", sub: "1801", state: string(refundflow.StateWaitingSeller), refund: "R1901"},
		seedCase{order: "1900", sub: "1901", state: string(refundflow.StateNeedsAttention), attention: refundflow.AttnRefundExists,
			parked: string(refundflow.StateSubmitting), plan: `{"priorListed":true,"priorRefunds":["R1901","R1902"],` +
				`"priorOpen":["R1901","R1902"],"refusedForOpen":true}`},
		seedCase{order: "2000", sub: "2001", state: string(refundflow.StateNeedsAttention), attention: refundflow.AttnNothingRefundable,
			parked: string(refundflow.StateRendering)},
		seedCase{order: "2100", sub: "2101", state: string(refundflow.StateNeedsAttention), attention: refundflow.AttnNothingRefundable,
			parked: string(refundflow.StateModifyRendering), refund: "R2101"},
	)
	returning, refused, closed, held := ts.cases[0], ts.cases[1], ts.cases[2], ts.cases[3]
	modifyRefused, returnRefused, unverifiable, unverifiedReturn := ts.cases[4], ts.cases[5], ts.cases[6], ts.cases[7]
	alibabaRefund, alibabaMissing, elsewhere := ts.cases[8], ts.cases[9], ts.cases[10]
	blocked, adopted, adoptedElsewhere := ts.cases[11], ts.cases[12], ts.cases[13]
	blockedByFollowed, nothingLeft, nothingToModify := ts.cases[15], ts.cases[16], ts.cases[17]
	op, viewer := ts.login(operatorName), ts.login(viewerName)
	csrf := ts.srv.sessions.csrf(op.Value)
	path := func(k casestore.Case) string { return fmt.Sprintf("/cases/%d", k.ID) }

	// Each form is offered where it may apply, to operators only.
	for _, tc := range []struct {
		k            casestore.Case
		offered, not []string
	}{
		{returning, []string{"ship", "cancel", "message"}, []string{"modify", "resolve"}},
		{refused, []string{"modify", "resolve", "resolve-retry", "resolve-close", "cancel", "message"}, []string{"ship", "resolve-adopt"}},
		{closed, nil, []string{"ship", "cancel", "message", "modify", "resolve"}},
		// Held because worker processes ended on it: the worker refuses
		// anything but resolve, so nothing else is offered.
		{held, []string{"resolve", "resolve-retry", "resolve-close"}, []string{"ship", "cancel", "message", "modify"}},
		// Stopped on an open side effect the platform kept refusing: the
		// worker refuses other commands until it is settled, but for the
		// correction that replaces the refused modification or return
		// (the runbook's advice).
		{modifyRefused, []string{"resolve", "modify"}, []string{"ship", "cancel", "message"}},
		{returnRefused, []string{"resolve", "ship"}, []string{"modify", "cancel", "message"}},
		// Unverifiable: the intent may be settled already (unverified),
		// and a cancel then goes through.
		// The refund found in the platform's back office may be adopted.
		{unverifiable, []string{"resolve", "cancel", "resolve-adopt"}, []string{"ship", "message", "modify"}},
		// A return submission that may be on the platform: no second one.
		{unverifiedReturn, []string{"resolve", "cancel", "message"}, []string{"ship", "modify", "resolve-adopt"}},
		// A refund on 1688: its API has no cancel, and the worker refuses
		// one; the page says where to withdraw it instead of a form that
		// ends in a refusal.
		{alibabaRefund, []string{"cancel-elsewhere"}, []string{"cancel", "message", "modify", "ship", "resolve"}},
		// Gone from 1688: there is nothing to withdraw, and the case does
		// not follow it to closed; resolve is the way out.
		{alibabaMissing, []string{"resolve"}, []string{"cancel", "cancel-elsewhere", "message", "modify", "ship"}},
		// A submission filed under another order than the case's: the
		// worker refuses a retry and a cancel (the platform cannot tell
		// whether it took effect, and never will): closing is the way.
		{elsewhere, []string{"resolve", "resolve-close", "resolve-adopt"}, []string{"resolve-retry", "cancel", "message", "modify", "ship"}},
		// Stopped for an open refund it did not file: the buyer's may be
		// adopted; the refund the form listed open is filled in.
		{blocked, []string{"resolve", "resolve-retry", "resolve-adopt", "adopt-refund", "resolve-close", "request"}, []string{"ship", "message", "modify"}},
		// An adopted refund the seller refused: not modified from here
		// (the worker refuses), and nothing more to adopt.
		{adopted, []string{"resolve", "resolve-retry", "cancel", "message"}, []string{"modify", "resolve-adopt"}},
		// Filed under another order, then its refund adopted: followed by
		// the refund's id, it takes a retry and a cancel again.
		{adoptedElsewhere, []string{"resolve", "resolve-retry", "cancel", "message"}, []string{"modify", "resolve-adopt"}},
		{blockedByFollowed, []string{"resolve", "resolve-adopt", "adopt-refund"}, []string{"ship", "message", "modify"}},
		// The form allows no amount: no corrected request or
		// modification can be sent (the runbook says so); a cancel, a
		// retry or a close are the ways out.
		{nothingLeft, []string{"resolve", "resolve-retry", "resolve-close", "cancel"}, []string{"request-again", "modify", "ship"}},
		{nothingToModify, []string{"resolve", "resolve-retry", "resolve-close", "cancel", "message"}, []string{"request-again", "modify", "ship"}},
	} {
		page := ts.do("GET", path(tc.k), "cookie:"+op.Value, nil)
		for _, f := range tc.offered {
			if !strings.Contains(page.body, `id="`+f+`"`) {
				t.Errorf("case %d (%s): operator's page has no %s form", tc.k.ID, tc.k.State, f)
			}
		}
		for _, f := range tc.not {
			if strings.Contains(page.body, `id="`+f+`"`) {
				t.Errorf("case %d (%s): page offers the %s form; want none", tc.k.ID, tc.k.State, f)
			}
		}
		if tc.k.ID == blocked.ID && (!strings.Contains(page.body, `name="refund" size="30" list="open-refunds" value="R1401"`) ||
			!strings.Contains(page.body, "listed open when the form was read: R1401;")) {
			t.Errorf("case %d (refund_exists): the adopt field is not filled in with the open refund R1401, saying so", tc.k.ID)
		}
		// Listed open, one of them followed by another case: that one
		// is not offered (the worker refuses it).
		if tc.k.ID == blockedByFollowed.ID && (!strings.Contains(page.body, `list="open-refunds" value="R1902"`) || strings.Contains(page.body, `<option value="R1901">`)) {
			t.Errorf("case %d (refund_exists, R1901 followed by case %d): the adopt field offers %q; want R1902 alone", tc.k.ID, ts.cases[14].ID,
				regexp.MustCompile(`Refund to adopt[^<]*`).FindString(page.body))
		}
		// Filed under another order: the refund the callback named there
		// is the one the attention text names; the field was empty.
		if tc.k.ID == elsewhere.ID && (!strings.Contains(page.body, `name="refund" size="30" list="open-refunds" value="R1300"`) ||
			!strings.Contains(page.body, "named by a callback, on the order the platform files the sub-order under: R1300;")) {
			t.Errorf("case %d (sub-order filed under another order): the adopt field is not filled in with refund R1300, saying where from", tc.k.ID)
		}
		if tc.k.ID == alibabaRefund.ID && !strings.Contains(page.body, "withdraw refund A1000 on 1688 itself") {
			t.Errorf("case %d (1688 refund): the page does not say where to withdraw it", tc.k.ID)
		}
		vpage := ts.do("GET", path(tc.k), "cookie:"+viewer.Value, nil)
		if strings.Contains(vpage.body, `method="post" action="/cases/`) {
			t.Errorf("case %d: viewer's page offers an action form", tc.k.ID)
		}
	}

	amount := int64(5000)
	desc := "half: the other item arrived fine"
	for _, tc := range []struct {
		form  string
		k     casestore.Case
		with  url.Values
		check func(refundflow.Command) bool
	}{
		{"ship", returning, url.Values{"company": {"SF"}, "waybill": {"SF1234567890"}, "phone": {"13800000000"}},
			func(c refundflow.Command) bool {
				return c.Shipment != nil && *c.Shipment == refundflow.Shipment{Company: "SF", Waybill: "SF1234567890", Phone: "13800000000"}
			}},
		{"cancel", returning, url.Values{}, func(c refundflow.Command) bool { return c.Kind == refundflow.InputCancel }},
		{"message", refused, url.Values{"text": {"please look at the photos again"}},
			func(c refundflow.Command) bool { return c.Message == "please look at the photos again" }},
		{"modify", refused, url.Values{"reason_id": {"1004"}, "amount": {"5000"}, "description": {desc}},
			func(c refundflow.Command) bool {
				m := c.Modify
				return m != nil && m.ReasonID == 1004 && m.Amount != nil && *m.Amount == amount && m.Description != nil && *m.Description == desc
			}},
		{"modify", refused, url.Values{"vouchers": {"https://img.example/box.jpg\r\n\n  https://img.example/label.jpg \n"}},
			func(c refundflow.Command) bool {
				m := c.Modify
				return m != nil && slices.Equal(m.Vouchers, []string{"https://img.example/box.jpg", "https://img.example/label.jpg"}) &&
					m.Amount == nil && m.Description == nil && m.ReasonID == 0 && m.Reason == ""
			}},
		{"resolve", blocked, url.Values{"action": {"adopt"}, "refund": {" R1401 "}, "note": {"the buyer filed it"}},
			func(c refundflow.Command) bool {
				r := c.Resolve
				return r != nil && r.Action == refundflow.ResolveAdopt && r.Refund == "R1401" && r.Note == "the buyer filed it"
			}},
		// The refund field stays filled in when another way is chosen.
		{"resolve", blocked, url.Values{"action": {"retry"}, "refund": {"R1401"}},
			func(c refundflow.Command) bool {
				return c.Resolve != nil && c.Resolve.Action == refundflow.ResolveRetry && c.Resolve.Refund == ""
			}},
		{"modify", refused, url.Values{"reason": {"质量问题"}, "amount": {"max"}},
			func(c refundflow.Command) bool {
				m := c.Modify
				return m != nil && m.Reason == "质量问题" && m.ReasonID == 0 && m.Amount != nil && *m.Amount == 0 && m.Description == nil
			}},
	} {
		name := fmt.Sprintf("%s %v", tc.form, tc.with)
		action := path(tc.k) + "/" + tc.form
		before := commandsStored(t, js)
		for who, auth := range map[string]url.Values{"viewer with its CSRF token": withCSRF(tc.with, ts.srv.sessions.csrf(viewer.Value)),
			"operator without a CSRF token": tc.with} {
			cookie := op.Value
			if strings.HasPrefix(who, "viewer") {
				cookie = viewer.Value
			}
			if r := ts.do("POST", action, "cookie:"+cookie, auth); r.status != http.StatusForbidden || !strings.Contains(r.body, CodeForbidden) {
				t.Errorf("%s by %s = %d; want 403 forbidden", name, who, r.status)
			}
		}
		if n := commandsStored(t, js); n != before {
			t.Errorf("%s refused: %d commands stored; want %d (nothing published)", name, n, before)
		}
		r := ts.do("POST", action, "cookie:"+op.Value, withCSRF(tc.with, csrf))
		m := commandInLocation.FindStringSubmatch(r.header.Get("Location"))
		if r.status != http.StatusSeeOther || m == nil {
			t.Errorf("%s by the operator = %d, Location %q; want 303 to the case with ?command=", name, r.status, r.header.Get("Location"))
			continue
		}
		kind := actions[tc.form].kind
		c := lastCommand(t, js, events.CommandSubject(string(tc.k.Platform), string(kind), fmt.Sprintf("case:%d", tc.k.ID)))
		if c.ID != m[1] || c.Kind != kind || c.CaseID != tc.k.ID || c.Operator != "otto" || !tc.check(c) {
			t.Errorf("%s published %+v; want command %s, %s on case %d by otto with the form's values", name, c, m[1], kind, tc.k.ID)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s published an invalid command: %v", name, err)
		}
		// No verdict yet: the page says where JetStream has the command
		// (no worker consumer here); it said only "not decided yet".
		if page := ts.do("GET", r.header.Get("Location"), "cookie:"+op.Value, nil); !strings.Contains(page.body, "pending") ||
			!strings.Contains(page.body, "sent; no worker takes commands: no worker consumer on stream COMMANDS") {
			t.Errorf("%s: the page before the verdict does not say where JetStream has the command:\n%s", name, page.body)
		}
		// The worker's verdict, refused here, is what the page then shows.
		recordOutcome(t, ts.path, casestore.CommandOutcome{CommandID: c.ID, Verdict: casestore.VerdictRejected, CaseID: tc.k.ID,
			Code: "not_now", Reason: "a reason from the worker"})
		page := ts.do("GET", r.header.Get("Location"), "cookie:"+op.Value, nil)
		if !strings.Contains(page.body, `id="verdict"`) || !strings.Contains(page.body, "rejected") || !strings.Contains(page.body, "a reason from the worker") {
			t.Errorf("%s: the page after it does not show the rejected verdict and its reason:\n%s", name, page.body)
		}
	}

	// Bad values: nothing is published; the error names the form's field,
	// beside that form.
	for _, tc := range []struct {
		form string
		k    casestore.Case
		with url.Values
		want []string
	}{
		{"ship", returning, url.Values{"company": {"SF"}, "waybill": {""}}, []string{"Waybill: 1 to 64 printable characters"}},
		{"ship", returning, url.Values{"company": {" SF"}, "waybill": {"W1"}, "description": {strings.Repeat("x", 201)}},
			[]string{"Carrier: ", "Description: at most 200"}},
		{"message", refused, url.Values{"text": {""}}, []string{"Message: 1 to"}},
		{"modify", refused, url.Values{}, []string{"nothing to change"}},
		{"modify", refused, url.Values{"amount": {"lots"}}, []string{"Amount: fen"}},
		{"modify", refused, url.Values{"reason_id": {"1004"}, "reason": {"质量问题"}}, []string{"Reason text: give"}},
		{"modify", refused, url.Values{"description": {strings.Repeat("长", 501)}}, []string{"Description: at most 500"}},
		{"modify", refused, url.Values{"vouchers": {strings.Repeat("https://img.example/a.jpg\n", 6)}}, []string{"Vouchers: at most 5"}},
		{"modify", refused, url.Values{"vouchers": {"https://img.example/" + strings.Repeat("a", 1024)}}, []string{"Vouchers: empty or too long"}},
		{"resolve", refused, url.Values{"action": {"close"}}, []string{"Note: required"}},
		{"resolve", blocked, url.Values{"action": {"adopt"}, "refund": {"R 1401"}}, []string{`Refund to adopt: &#34;R 1401&#34;: letters, digits`}},
		{"resolve", blocked, url.Values{"action": {"adopt"}}, []string{"Refund to adopt: required to adopt"}},
	} {
		name := fmt.Sprintf("%s %v", tc.form, tc.with)
		before := commandsStored(t, js)
		r := ts.do("POST", path(tc.k)+"/"+tc.form, "cookie:"+op.Value, withCSRF(tc.with, csrf))
		if n := commandsStored(t, js); n != before {
			t.Errorf("%s: %d commands stored; want %d (nothing published)", name, n, before)
		}
		_, form, _ := strings.Cut(r.body, `id="`+tc.form+`"`)
		form, _, _ = strings.Cut(form, "</form>")
		if r.status != http.StatusBadRequest || !strings.Contains(form, `role="alert"`) {
			t.Errorf("%s = %d; want 400 with the error in the %s form:\n%s", name, r.status, tc.form, r.body)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(form, w) {
				t.Errorf("%s: the form's error does not say %q:\n%s", name, w, form)
			}
		}
		for _, field := range []string{"waybill:", "company:", "reasonId", "amount:", "message:"} {
			if strings.Contains(form, field) {
				t.Errorf("%s: the form's error names the JSON field %q:\n%s", name, field, form)
			}
		}
	}
}

// withCSRF is form with the CSRF token csrf.
func withCSRF(form url.Values, csrf string) url.Values {
	out := url.Values{"csrf": {csrf}}
	for k, v := range form {
		out[k] = v
	}
	return out
}

// recordOutcome records a command's verdict as the worker would, in the
// store file at path.
func recordOutcome(t *testing.T, path string, o casestore.CommandOutcome) {
	t.Helper()
	ctx := context.Background()
	w, err := casestore.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Update(ctx, func(tx *casestore.Tx) error { return tx.RecordCommandOutcome(ctx, o) }); err != nil {
		t.Fatal(err)
	}
}
