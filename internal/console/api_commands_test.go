package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/events/eventstest"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// postJSON sends body to path with a bearer token and returns the answer.
func (ts *testServer) postJSON(path, token, body string) reply {
	ts.t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.http.URL+path, strings.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func decodeAnswer(t *testing.T, r reply) commandAnswer {
	t.Helper()
	var a commandAnswer
	if err := json.Unmarshal([]byte(r.body), &a); err != nil {
		t.Fatalf("command answer %q: %v", r.body, err)
	}
	return a
}

// actAsWorker records a verdict for every command the COMMANDS stream
// receives, as the worker would once it decided it: applied on the case
// the command names, until the test ends.
func actAsWorker(t *testing.T, js jetstream.JetStream, path string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := js.OrderedConsumer(ctx, events.DefaultCommandStreamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			m, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
			if err != nil {
				continue
			}
			var c refundflow.Command
			if json.Unmarshal(m.Data(), &c) == nil {
				recordOutcome(t, path, casestore.CommandOutcome{CommandID: c.ID, Verdict: casestore.VerdictApplied, CaseID: c.CaseID})
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// TestAPICommands: an operator's command is published under the
// account's name and the server's time, and answered with the worker's
// verdict; the same id and command again stores nothing and gets the same
// answer, a different command under it is 409; a command naming its case
// by id alone is completed from the case; ?wait=0 answers 202 with where
// to poll, and the poll answers the verdict once there is one.
func TestAPICommands(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	if err := events.EnsureWorkStreams(context.Background(), js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOn(t, js,
		seedCase{order: "200", sub: "201", state: string(refundflow.StateWaitingReturnShipment), refund: "R201"},
		seedCase{order: "300", sub: "301", state: string(refundflow.StateNeedsAttention), attention: refundflow.AttnSellerRefused,
			parked: string(refundflow.StateWaitingSeller), refund: "R301"},
	)
	ts.srv.cfg.VerdictWait = 10 * time.Second
	returning, refused := ts.cases[0], ts.cases[1]
	actAsWorker(t, js, ts.path)

	resolve := fmt.Sprintf(`{"id":"api-resolve-0001","kind":"resolve","platform":"taobao","caseId":%d,"resolve":{"action":"close","note":"paid by bank"}}`, refused.ID)
	start := time.Now().UTC().Truncate(time.Millisecond)
	r := ts.postJSON("/api/v1/commands", operatorToken, resolve)
	a := decodeAnswer(t, r)
	if r.status != http.StatusOK || a.ID != "api-resolve-0001" || a.Verdict.Verdict != casestore.VerdictApplied ||
		a.Verdict.CaseID != refused.ID || a.Verdict.State != refused.State || a.Duplicate || a.Subject != events.CommandSubject("taobao", "resolve", fmt.Sprintf("case:%d", refused.ID)) {
		t.Fatalf("POST resolve = %d %s; want 200, applied on case %d, stored on commands.taobao.resolve", r.status, r.body, refused.ID)
	}
	stored := lastCommand(t, js, a.Subject)
	if stored.Operator != "otto" || stored.IssuedAt.Before(start) || stored.Resolve == nil || stored.Resolve.Note != "paid by bank" {
		t.Errorf("stored command %+v; want otto's resolve, issued by the server after %s", stored, start)
	}
	n := commandsStored(t, js)
	again := ts.postJSON("/api/v1/commands", operatorToken, resolve)
	if b := decodeAnswer(t, again); again.status != http.StatusOK || !b.Duplicate || b.Verdict != a.Verdict ||
		!b.Command.IssuedAt.Equal(stored.IssuedAt) || commandsStored(t, js) != n {
		t.Errorf("POST the same command again = %d %s; want 200, duplicate, the first verdict and issuedAt, nothing stored", again.status, again.body)
	}
	other := strings.Replace(resolve, "paid by bank", "something else", 1)
	if r := ts.postJSON("/api/v1/commands", operatorToken, other); r.status != http.StatusConflict || errorCode(t, r.body) != CodeConflict {
		t.Errorf("POST a different command under the same id = %d %s; want 409 conflict", r.status, r.body)
	}
	if got := lastCommand(t, js, a.Subject); got.Resolve.Note != "paid by bank" || commandsStored(t, js) != n {
		t.Errorf("after the conflict the stored resolve says %q (%d stored); want the first, nothing new", got.Resolve.Note, commandsStored(t, js))
	}

	// By case id alone, without waiting: 202, then the poll.
	r = ts.postJSON("/api/v1/commands?wait=0", operatorToken, fmt.Sprintf(`{"kind":"cancel","caseId":%d}`, returning.ID))
	a = decodeAnswer(t, r)
	if r.status != http.StatusAccepted || a.Verdict.Verdict != "pending" || a.Poll != "/api/v1/commands/"+a.ID ||
		a.Command == nil || a.Command.Platform != refundflow.PlatformTaobao || a.Command.SubOrderID != "201" || a.Command.OrderID != "200" {
		t.Fatalf("POST cancel by case id, wait=0 = %d %s; want 202 pending with the poll path and the case's platform and order", r.status, r.body)
	}
	eventstest.WaitFor(t, 10*time.Second, "the polled verdict of "+a.ID, func() bool {
		p := ts.do("GET", a.Poll, operatorToken, nil)
		return p.status == http.StatusOK && decodeAnswer(t, p).Verdict.Verdict == casestore.VerdictApplied
	})
	if p := ts.do("GET", "/api/v1/commands/never-published-1", operatorToken, nil); p.status != http.StatusAccepted {
		t.Errorf("GET an unknown command = %d %s; want 202 pending", p.status, p.body)
	}
	// A command the worker keeps for its case is pending, saying where.
	ctx := context.Background()
	w, err := casestore.OpenExisting(ctx, ts.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := w.Update(ctx, func(tx *casestore.Tx) error {
		return tx.Defer(ctx, casestore.DeferredInput{CaseID: returning.ID, MsgID: "kept-command-1", Source: casestore.SourceCommands,
			Payload: []byte(`{}`), NotBefore: until, Reason: "behind_earlier_input: an earlier input of the case waits"})
	}); err != nil {
		t.Fatal(err)
	}
	p := ts.do("GET", "/api/v1/commands/kept-command-1?where=1", operatorToken, nil) // (where=1: kept is said, JetStream not read)
	if v := decodeAnswer(t, p).Verdict; p.status != http.StatusAccepted || v.Verdict != "pending" || v.CaseID != returning.ID ||
		!strings.Contains(v.Reason, "kept by the worker for case") || !strings.Contains(v.Reason, "2030-01-02 03:04:05 UTC") ||
		!strings.Contains(v.Reason, "behind_earlier_input") {
		t.Errorf("GET a kept command = %d %s; want 202 pending, kept for case %d until then, and why", p.status, p.body, returning.ID)
	}
	page := ts.do("GET", fmt.Sprintf("/cases/%d?command=kept-command-1", returning.ID), "cookie:"+ts.login(operatorName).Value, nil)
	if !strings.Contains(page.body, "kept by the worker for case") || strings.Contains(page.body, "has not decided it yet") {
		t.Errorf("case page with a kept command's verdict: want where it is kept, not \"not decided yet\":\n%s", page.body)
	}
	// Another case's command named on a case page (a link edited by hand)
	// is not shown as this case's verdict.
	foreign := ts.do("GET", fmt.Sprintf("/cases/%d?command=%s", refused.ID, a.ID), "cookie:"+ts.login(operatorName).Value, nil)
	if want := fmt.Sprintf("is for case %d, not this one", returning.ID); !strings.Contains(foreign.body, want) ||
		strings.Contains(foreign.body, "<strong>applied</strong>") {
		t.Errorf("case %d's page with case %d's command: want %q, not its verdict:\n%s", refused.ID, returning.ID, want, foreign.body)
	}
}

// TestACommandJetStreamDoesNotConfirmIsNamed: something takes the
// commands' subject and never confirms (JetStream does not answer in
// time): the command may be stored. The console answers 504 unconfirmed
// naming its id, to be sent again under it; refundctl through the console
// says the same. (It answered 503 "nothing was sent, try again", and a
// second try under a new id could apply it twice.) Where nothing takes
// the subject, nothing was stored: 503 unavailable, as before.
func TestACommandJetStreamDoesNotConfirmIsNamed(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ts := newTestServerOn(t, js, seedCase{order: "200", sub: "201", state: string(refundflow.StateWaitingSeller), refund: "R201"})
	cancel := fmt.Sprintf(`{"id":"unconfirmed-cmd-1","kind":"cancel","caseId":%d}`, ts.cases[0].ID)
	if r := ts.postJSON("/api/v1/commands", operatorToken, cancel); r.status != http.StatusServiceUnavailable ||
		errorCode(t, r.body) != CodeUnavailable || !strings.Contains(r.body, "was not stored") {
		t.Errorf("POST with no stream for commands = %d %s; want 503 unavailable, not stored", r.status, r.body)
	}
	sub, err := ns.Conn().Subscribe("commands.>", func(*nats.Msg) {}) // takes it, never confirms
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := ns.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	r := ts.postJSON("/api/v1/commands", operatorToken, cancel)
	if r.status != http.StatusGatewayTimeout || errorCode(t, r.body) != CodeUnconfirmed ||
		!strings.Contains(r.body, "unconfirmed-cmd-1") || !strings.Contains(r.body, "may have been stored") {
		t.Errorf("POST not confirmed = %d %s; want 504 unconfirmed naming the id", r.status, r.body)
	}
	// A form has no id to send again under: the console follows the
	// command on the case page, saying it may be stored and not to send
	// the form again.
	op := ts.login(operatorName)
	form := url.Values{"csrf": {ts.srv.sessions.csrf(op.Value)}}
	casePath := fmt.Sprintf("/cases/%d", ts.cases[0].ID)
	post := ts.do("POST", casePath+"/cancel", "cookie:"+op.Value, form)
	loc := post.header.Get("Location")
	if post.status != http.StatusSeeOther || !strings.HasPrefix(loc, casePath+"?") || !strings.Contains(loc, "unconfirmed=1") {
		t.Fatalf("cancel form not confirmed = %d, Location %q; want 303 to the case page following the command", post.status, loc)
	}
	page := ts.do("GET", loc, "cookie:"+op.Value, nil)
	if !strings.Contains(page.body, "it may be stored. Do not send the form again") {
		t.Errorf("case page after an unconfirmed form: want it to say the command may be stored and not to send it again:\n%s", page.body)
	}
}

// TestAPICommandsRefused: a viewer is 403; bad JSON, unknown fields, the
// console's own fields, invalid commands, a case that contradicts the
// command or does not exist, and a bad wait are each refused with their
// code and a message naming the field; nothing is published.
func TestAPICommandsRefused(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	if err := events.EnsureWorkStreams(context.Background(), js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOn(t, js, seedCase{order: "200", sub: "201", state: string(refundflow.StateWaitingReturnShipment), refund: "R201"})
	k := ts.cases[0]
	ship := `{"kind":"report_shipment","platform":"taobao","subOrderId":"201","shipment":{"company":"SF","waybill":"SF1"}}`
	for _, tc := range []struct {
		name, path, token, body string
		status                  int
		code, says              string
	}{
		{"viewer", "/api/v1/commands", viewerToken, ship, http.StatusForbidden, CodeForbidden, "operator role"},
		{"not JSON", "/api/v1/commands", operatorToken, `{"kind":`, http.StatusBadRequest, CodeBadJSON, "JSON"},
		{"an array", "/api/v1/commands", operatorToken, `[1]`, http.StatusBadRequest, CodeBadJSON, "JSON object"},
		{"wrong type", "/api/v1/commands", operatorToken, `{"kind":"cancel","platform":"taobao","caseId":"x"}`, http.StatusBadRequest, CodeBadJSON, "caseId"},
		{"unknown field", "/api/v1/commands", operatorToken, `{"kind":"cancel","platform":"taobao","caseID":1}`, http.StatusBadRequest, CodeUnknownField, "caseID: not a field"},
		{"unknown nested field", "/api/v1/commands", operatorToken, strings.Replace(ship, `"waybill"`, `"Waybill"`, 1), http.StatusBadRequest, CodeUnknownField, "shipment.Waybill: not a field"},
		{"operator", "/api/v1/commands", operatorToken, `{"kind":"cancel","platform":"taobao","subOrderId":"201","operator":"mallory"}`, http.StatusBadRequest, CodeUnknownField, "operator: set by the console"},
		{"issuedAt", "/api/v1/commands", operatorToken, `{"kind":"cancel","platform":"taobao","subOrderId":"201","issuedAt":"2026-01-01T00:00:00Z"}`, http.StatusBadRequest, CodeUnknownField, "issuedAt"},
		{"bad waybill", "/api/v1/commands", operatorToken, strings.Replace(ship, `"SF1"`, `" SF1"`, 1), http.StatusBadRequest, CodeInvalidCommand, "waybill: 1 to 64 printable characters"},
		{"bad kind", "/api/v1/commands", operatorToken, `{"kind":"refund_now","platform":"taobao","subOrderId":"201"}`, http.StatusBadRequest, CodeInvalidCommand, `kind \"refund_now\": want request_refund`},
		{"bad id", "/api/v1/commands", operatorToken, `{"id":"x","kind":"cancel","platform":"taobao","subOrderId":"201"}`, http.StatusBadRequest, CodeInvalidCommand, "id: 8 to 64"},
		{"contradicts the case", "/api/v1/commands", operatorToken, fmt.Sprintf(`{"kind":"cancel","platform":"1688","caseId":%d}`, k.ID), http.StatusBadRequest, CodeInvalidCommand, "platform 1688: case"},
		{"unknown case", "/api/v1/commands", operatorToken, `{"kind":"cancel","caseId":999}`, http.StatusNotFound, CodeNotFound, "caseId 999"},
		{"long description", "/api/v1/commands", operatorToken, fmt.Sprintf(`{"kind":"modify_refund","caseId":%d,"modify":{"description":%q}}`, k.ID, strings.Repeat("长", 501)), http.StatusBadRequest, CodeInvalidCommand, "description: at most 500"},
		{"bad wait", "/api/v1/commands?wait=soon", operatorToken, ship, http.StatusBadRequest, CodeInvalidArgument, "wait"},
	} {
		r := ts.postJSON(tc.path, tc.token, tc.body)
		if r.status != tc.status || errorCode(t, r.body) != tc.code || !strings.Contains(r.body, tc.says) {
			t.Errorf("%s: POST %s = %d %s; want %d %s saying %q", tc.name, tc.body, r.status, r.body, tc.status, tc.code, tc.says)
		}
	}
	if r := ts.do("GET", "/api/v1/commands/x", operatorToken, nil); r.status != http.StatusBadRequest || errorCode(t, r.body) != CodeInvalidArgument {
		t.Errorf("GET a malformed command id = %d %s; want 400 invalid_argument", r.status, r.body)
	}
	if n := commandsStored(t, js); n != 0 {
		t.Errorf("%d commands stored after refused posts; want 0", n)
	}
}

// TestACommandNotStoredSaysWhy: a command certainly not stored is answered
// 503 with its cause in the operator's terms: no stream takes commands, or
// JetStream refused it with its own reason. (Every such answer asked
// "NATS unreachable?", whatever the cause.)
func TestACommandNotStoredSaysWhy(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ts := newTestServerOn(t, js, seedCase{order: "300", sub: "301", state: string(refundflow.StateWaitingSeller), refund: "R301"})
	cancel := fmt.Sprintf(`{"id":"unstored-cmd-1","kind":"cancel","caseId":%d}`, ts.cases[0].ID)
	r := ts.postJSON("/api/v1/commands", operatorToken, cancel)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "no JetStream stream takes") || strings.Contains(r.body, "NATS unreachable") {
		t.Errorf("POST with no stream for commands = %d %s; want 503 saying no stream takes it", r.status, r.body)
	}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "TINY", Subjects: []string{"commands.>"}, MaxMsgSize: 16}); err != nil {
		t.Fatal(err)
	}
	r = ts.postJSON("/api/v1/commands", operatorToken, cancel)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "JetStream refused it") || !strings.Contains(r.body, "maximum") {
		t.Errorf("POST refused by the stream = %d %s; want 503 naming JetStream's reason", r.status, r.body)
	}
}

// TestAVerdictPrunedWithTheInboxIsTheCaseItOpened: the worker prunes its
// verdicts with the inbox (WORKER_INBOX_RETENTION), but the case a request
// opened keeps the request's id. GET /api/v1/commands/{id} answered
// "pending: the worker has not decided it yet" for such a request, filed
// months ago; a script (or refundctl's batch through the console) would
// then wait for a verdict that never comes, or file the row again. It is
// applied, on the case it opened, with that case's state.
func TestAVerdictPrunedWithTheInboxIsTheCaseItOpened(t *testing.T) {
	ts := newTestServer(t, seedCase{order: "200", sub: "201", state: string(refundflow.StateNeedsAttention),
		attention: refundflow.AttnSellerRefused, parked: string(refundflow.StateWaitingSeller), refund: "R201"})
	opened := ts.cases[0]
	p := ts.do("GET", "/api/v1/commands/"+opened.OpenedBy, operatorToken, nil)
	v := decodeAnswer(t, p).Verdict
	if p.status != http.StatusOK || v.Verdict != casestore.VerdictApplied || v.CaseID != opened.ID || v.State != opened.State ||
		v.ParkedState != string(refundflow.StateWaitingSeller) || v.Attention != refundflow.AttnSellerRefused {
		t.Errorf("GET the verdict of %s, which opened case %d and whose outcome was pruned = %d %s; want 200 applied on case %d, "+
			"needs_attention (seller_refused) stopped at waiting_seller", opened.OpenedBy, opened.ID, p.status, p.body, opened.ID)
	}
	if p := ts.do("GET", "/api/v1/commands/never-published-1", operatorToken, nil); p.status != http.StatusAccepted {
		t.Errorf("GET an unknown command = %d %s; want 202 pending", p.status, p.body)
	}
}

// TestAPendingCommandSaysWhereJetStreamHasIt: a command the worker gave
// no verdict on within the wait was answered "pending" and nothing else
// (refundctl then asked "is the worker running?" whatever the worker was
// doing). The answer says where JetStream has it: with no worker ever
// bound, that no consumer takes it; with the worker's consumer and no
// worker asking, that it waits there and the worker may not run.
func TestAPendingCommandSaysWhereJetStreamHasIt(t *testing.T) {
	ns := eventstest.Start(t)
	js := ns.JetStream()
	ctx := context.Background()
	if err := events.EnsureWorkStreams(ctx, js, events.DefaultWorkStreamsConfig()); err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOn(t, js, seedCase{order: "200", sub: "201", state: string(refundflow.StateWaitingSeller), refund: "R201"})
	cancel := fmt.Sprintf(`{"kind":"cancel","caseId":%d}`, ts.cases[0].ID)
	r := ts.postJSON("/api/v1/commands?wait=200ms", operatorToken, cancel)
	if v := decodeAnswer(t, r).Verdict; r.status != http.StatusAccepted || v.Verdict != "pending" || v.Code != opcommands.CodeUndecided ||
		!strings.HasPrefix(v.Reason, "sent; no worker takes commands: no worker consumer on stream COMMANDS takes commands.taobao.cancel.") {
		t.Errorf("POST cancel, no worker ever = %d %s; want 202 pending, no consumer taking it", r.status, r.body)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, events.DefaultCommandStreamName, jetstream.ConsumerConfig{Durable: "worker",
		FilterSubject: events.SubjectCommands + ".>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	r = ts.postJSON("/api/v1/commands?wait=200ms", operatorToken, cancel)
	if v := decodeAnswer(t, r).Verdict; r.status != http.StatusAccepted || v.Verdict != "pending" ||
		!strings.Contains(v.Reason, "waiting in JetStream: no worker is asking for commands now") || !strings.Contains(v.Reason, "is the worker running?") {
		t.Errorf("POST cancel, no worker asking = %d %s; want 202 pending, waiting in JetStream", r.status, r.body)
	}
	posted := ts.postJSON("/api/v1/commands?wait=0", operatorToken, cancel)
	if decodeAnswer(t, posted).Verdict.Reason != "" {
		t.Errorf("POST cancel without waiting = %d %s; want pending with no reason: nothing was waited for", posted.status, posted.body)
	}
	// Polled by its id alone (a later wait --command, a batch's row):
	// each poll reads the store; the last, with where=1, is told where
	// JetStream has it (it said only "pending").
	poll := decodeAnswer(t, posted).Poll
	if p := ts.do("GET", poll, operatorToken, nil); decodeAnswer(t, p).Verdict.Reason != "" {
		t.Errorf("GET %s = %d %s; want pending with no reason: where is read only when asked", poll, p.status, p.body)
	}
	p := ts.do("GET", poll+"?where=1", operatorToken, nil)
	if v := decodeAnswer(t, p).Verdict; p.status != http.StatusAccepted || v.Verdict != "pending" || v.Code != opcommands.CodeUndecided ||
		!strings.Contains(v.Reason, "waiting in JetStream: no worker is asking for commands now") {
		t.Errorf("GET %s?where=1 = %d %s; want 202 pending, waiting in JetStream", poll, p.status, p.body)
	}
	if p := ts.do("GET", "/api/v1/commands/never-published-2?where=1", operatorToken, nil); p.status != http.StatusAccepted || decodeAnswer(t, p).Verdict.Reason != "" {
		t.Errorf("GET a command never published, where=1 = %d %s; want 202 pending, nothing said", p.status, p.body)
	}
	// Where its answer said it was stored: that message is read.
	stored := decodeAnswer(t, posted)
	at := fmt.Sprintf("%s?where=1&stream=%s&seq=%d", poll, stored.Stream, stored.Sequence)
	if p := ts.do("GET", at, operatorToken, nil); !strings.Contains(decodeAnswer(t, p).Verdict.Reason, "waiting in JetStream") {
		t.Errorf("GET %s = %d %s; want pending, waiting in JetStream", at, p.status, p.body)
	}
	for _, q := range []string{"?where=yes", "?stream=COMMANDS&seq=1", "?where=1&stream=COMMANDS", "?where=1&seq=1", "?where=1&stream=COMMANDS&seq=0",
		"?where=1&stream=COMMANDS&seq=x"} {
		if p := ts.do("GET", poll+q, operatorToken, nil); p.status != http.StatusBadRequest || errorCode(t, p.body) != CodeInvalidArgument {
			t.Errorf("GET %s%s = %d %s; want 400 invalid_argument", poll, q, p.status, p.body)
		}
	}
}
