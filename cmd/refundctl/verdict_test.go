package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/opcommands"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestCommandVerdicts: the command verbs report the verdict the worker
// recorded for the command id (written here through casestore, as the
// worker writes it), with its exit status. The whole path with a real
// worker is cmd/devstack's TestWalkthrough.
func TestCommandVerdicts(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	seedCases(t, st)
	ctx := context.Background()
	record := func(o casestore.CommandOutcome) {
		t.Helper()
		if err := st.Update(ctx, func(tx *casestore.Tx) error { return tx.RecordCommandOutcome(ctx, o) }); err != nil {
			t.Fatal(err)
		}
	}
	record(casestore.CommandOutcome{CommandID: "cmd-applied-1", Verdict: casestore.VerdictApplied, CaseID: 1, Code: "cancel", Reason: "cancel the refund"})
	record(casestore.CommandOutcome{CommandID: "cmd-open-1", Verdict: casestore.VerdictRejected, CaseID: 1, Code: "case_open",
		Reason: "the case is already open with another request: cancel it first, or let it finish"})
	record(casestore.CommandOutcome{CommandID: "cmd-parked-1", Verdict: casestore.VerdictApplied, CaseID: 2, Code: "requested", Reason: "read the refund form"})
	record(casestore.CommandOutcome{CommandID: "cmd-dead-1", Verdict: casestore.VerdictRejected, Code: "unknown_case",
		Reason: "no case appeared within 2m0s of the command", DeadLetterID: 7})

	tests := []struct {
		name, id   string
		code       int
		out, errIn string
	}{
		{"applied", "cmd-applied-1", 0, "cmd-applied-1\napplied: case 1 is waiting_seller; follow it with: refundctl wait --command cmd-applied-1", ""},
		// Applied, and the case stopped: why, and what to do instead of
		// following it.
		{"applied, stopped", "cmd-parked-1", 0, "cmd-parked-1\napplied: case 2 is needs_attention (seller_refused: seller refused: used item); to do: " +
			runbookAdvice("seller_refused", 2, "taobao", "") + "\n", ""},
		{"rejected", "cmd-open-1", 4, "cmd-open-1\n", "rejected (case_open) on case 1 (waiting_seller): the case is already open with another request: cancel it first, or let it finish; refundctl cancel 1, or follow it with refundctl show 1"},
		{"dead letter", "cmd-dead-1", 4, "cmd-dead-1\n", "rejected (unknown_case): no case appeared within 2m0s of the command; no case matches"},
		// No verdict: where the command is, as JetStream sees it (it
		// said "the worker has not decided it yet (is it running?)"
		// whatever the worker was doing; opcommands' whereabouts test
		// has a worker holding it).
		{"pending, no worker ever", "cmd-pending-1", 5, "cmd-pending-1\n", "pending: sent; no worker takes commands: no worker consumer on stream COMMANDS takes " +
			"commands.taobao.cancel.taobao_101 (has a worker ever run against this NATS?); follow it with: refundctl wait --command cmd-pending-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.run("cancel", "--platform", "taobao", "--sub-order", "101", "--id", tt.id, "--wait", "300ms")
			if r.code() != tt.code || !strings.HasPrefix(r.stdout, tt.out) || !strings.Contains(r.line(), tt.errIn) {
				t.Errorf("cancel --id %s: exit %d, stdout %q, error %q; want exit %d, stdout %q, error with %q",
					tt.id, r.code(), r.stdout, r.line(), tt.code, tt.out, tt.errIn)
			}
		})
	}

	// The worker's consumer, and no worker asking for commands.
	if _, err := e.js.CreateOrUpdateConsumer(ctx, events.DefaultCommandStreamName, jetstream.ConsumerConfig{Durable: "worker",
		FilterSubject: events.SubjectCommands + ".>", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if r := e.run("cancel", "--platform", "taobao", "--sub-order", "101", "--id", "cmd-pending-2", "--wait", "300ms"); r.code() != 5 ||
		!strings.Contains(r.line(), "pending: sent; waiting in JetStream: no worker is asking for commands now "+
			"(every worker's slots are taken, or none runs: is the worker running?); it is decided once a worker takes it; "+
			"follow it with: refundctl wait --command cmd-pending-2") {
		t.Errorf("cancel with no worker asking: exit %d, %q; want exit 5, the command waiting in JetStream", r.code(), r.line())
	}
	// Followed by its id alone, as the advice says: wait and show find it
	// in the stream and say where it is (they said "no verdict from the
	// worker yet").
	for _, args := range [][]string{{"wait", "--command", "cmd-pending-2", "--deadline", "300ms"}, {"show", "--command", "cmd-pending-2"}} {
		if r := e.run(args...); r.code() != 1 ||
			!strings.Contains(r.line(), "no case for command cmd-pending-2 yet: sent; waiting in JetStream: no worker is asking for commands now") {
			t.Errorf("%s: exit %d, %q; want exit 1, the command waiting in JetStream", strings.Join(args, " "), r.code(), r.line())
		}
	}
	// Through the console: its last look asks where (?where=1).
	consoleURL := startConsole(e)
	for _, args := range [][]string{{"wait", "--command", "cmd-pending-2", "--deadline", "300ms"}, {"show", "--command", "cmd-pending-2"}} {
		if r := e.remoteRun(consoleURL, consoleOperatorToken, args...); r.code() != 1 ||
			!strings.Contains(r.line(), "no case for command cmd-pending-2 yet: sent; waiting in JetStream: no worker is asking for commands now") {
			t.Errorf("%s through the console: exit %d, %q; want exit 1, the command waiting in JetStream", strings.Join(args, " "), r.code(), r.line())
		}
	}
	if r := e.run("show", "--command", "cmd-never-sent-1"); r.code() != 1 || r.line() != "refundctl: no case for command cmd-never-sent-1 (no verdict from the worker yet)" {
		t.Errorf("show --command of a command never sent: exit %d, %q; want exit 1, the plain pending", r.code(), r.line())
	}

	// Applied, and the case has ended meanwhile (a cancel, a refund the
	// seller then refunded): there is nothing to follow; it said "follow
	// it with: refundctl wait --command … --state STATE".
	record(casestore.CommandOutcome{CommandID: "cmd-ended-1", Verdict: casestore.VerdictApplied, CaseID: 3, Code: "cancel", Reason: "cancel the refund"})
	if r := e.run("cancel", "3", "--id", "cmd-ended-1", "--wait", "300ms"); r.code() != 0 ||
		!strings.Contains(r.stdout, "applied: case 3 is succeeded; it has ended: refundctl show 3 shows how") || strings.Contains(r.stdout, "--state STATE") {
		t.Errorf("cancel 3 --id cmd-ended-1: exit %d, stdout %q; want applied, saying the case has ended and where to see how", r.code(), r.stdout)
	}

	// 1688 has neither cancel nor message: the refusal says where to do
	// it and what the case does then, once (it said "cancel on the
	// platform; do it on the platform itself").
	record(casestore.CommandOutcome{CommandID: "cmd-1688-cancel", Verdict: casestore.VerdictRejected, CaseID: 2, Code: refundflow.CodeNotSupported,
		Reason: "1688's API has no cancel: withdraw the refund on 1688 itself"})
	record(casestore.CommandOutcome{CommandID: "cmd-1688-message", Verdict: casestore.VerdictRejected, CaseID: 2, Code: refundflow.CodeNotSupported,
		Reason: "1688's API has no message: write to the seller on 1688 itself"})
	for _, tc := range []struct {
		verb, id, want string
	}{
		{"cancel", "cmd-1688-cancel", "1688's API has no cancel: withdraw the refund on 1688 itself; case 2 follows the platform and ends closed once 1688 shows the refund closed (refundctl wait 2 --state closed)"},
		{"message", "cmd-1688-message", "1688's API has no message: write to the seller on 1688 itself; case 2 goes on following the refund"},
	} {
		args := []string{tc.verb, "2", "--id", tc.id, "--wait", "300ms"}
		if tc.verb == "message" {
			args = append(args, "--text", "hello")
		}
		if r := e.run(args...); r.code() != 4 || !strings.Contains(r.line(), tc.want) {
			t.Errorf("%s on a 1688 case: exit %d, %q; want exit 4 and %q", tc.verb, r.code(), r.line(), tc.want)
		}
	}

	// A 1688 case stopped before its refund: a message refused there
	// leaves it as it was (it said "case 4 goes on following the
	// refund" of a case with none).
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		c, err := tx.CreateCase(ctx, casestore.NewCase{Platform: "1688", OrderID: "400", State: "requested"})
		if err != nil {
			return err
		}
		c.State, c.ParkedState, c.AttentionCode, c.AttentionMessage = "needs_attention", "uploading_vouchers", refundflow.AttnVoucherUnreadable, "voucher \"a.png\": gone"
		if _, err := tx.UpdateCase(ctx, c); err != nil {
			return err
		}
		return tx.RecordCommandOutcome(ctx, casestore.CommandOutcome{CommandID: "cmd-1688-message-2", Verdict: casestore.VerdictRejected, CaseID: c.ID,
			Code: refundflow.CodeNotSupported, Reason: "1688's API has no message: write to the seller on 1688 itself"})
	}); err != nil {
		t.Fatal(err)
	}
	if r := e.run("message", "4", "--id", "cmd-1688-message-2", "--text", "hello", "--wait", "300ms"); r.code() != 4 ||
		!strings.Contains(r.line(), "write to the seller on 1688 itself; case 4 is as it was: refundctl show 4") || strings.Contains(r.line(), "following the refund") {
		t.Errorf("message on a 1688 case stopped before its refund: exit %d, %q; want exit 4, the case as it was", r.code(), r.line())
	}

	// A command the worker keeps in the store for its case (here waiting
	// for a side effect to be confirmed) is pending with where it waits,
	// not "is it running?".
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		return tx.Defer(ctx, casestore.DeferredInput{CaseID: 1, MsgID: "cmd-kept-1", Source: casestore.SourceCommands, Payload: []byte(`{}`),
			NotBefore: until, Reason: "intent_unsettled: a side effect may have reached the platform: query first"})
	}); err != nil {
		t.Fatal(err)
	}
	kept := e.run("cancel", "--platform", "taobao", "--sub-order", "101", "--id", "cmd-kept-1", "--wait", "300ms")
	if want := "pending: kept by the worker for case 1 until 2030-01-02 03:04:05 UTC (intent_unsettled: a side effect may have reached the platform: query first); " +
		"it is decided then; follow it with: refundctl wait --command cmd-kept-1"; kept.code() != 5 || !strings.Contains(kept.line(), want) {
		t.Errorf("a command the worker keeps: exit %d, %q; want exit 5 and %q", kept.code(), kept.line(), want)
	}
	// wait --command on it says where it waits when it gives up (it said
	// only "no verdict from the worker yet"); so does the console's way.
	if r := e.run("wait", "--command", "cmd-kept-1", "--deadline", "300ms"); r.code() != 1 ||
		!strings.Contains(r.line(), "no case for command cmd-kept-1 yet: kept by the worker for case 1 until 2030-01-02 03:04:05 UTC") {
		t.Errorf("wait --command on a kept command: exit %d, %q; want it to time out saying where the command is kept", r.code(), r.line())
	}
	// Kept until a time long past and not taken up: the worker is in
	// question again.
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		return tx.Defer(ctx, casestore.DeferredInput{CaseID: 1, MsgID: "cmd-kept-2", Source: casestore.SourceCommands, Payload: []byte(`{}`),
			NotBefore: time.Now().Add(-time.Hour), Reason: "behind_earlier_input: an earlier input of the case waits"})
	}); err != nil {
		t.Fatal(err)
	}
	overdue := e.run("cancel", "--platform", "taobao", "--sub-order", "101", "--id", "cmd-kept-2", "--wait", "300ms")
	if overdue.code() != 5 || !strings.Contains(overdue.line(), "and not taken up since: is the worker running?") {
		t.Errorf("a kept command long overdue: exit %d, %q; want exit 5 asking whether the worker runs", overdue.code(), overdue.line())
	}

	// A command naming a sub-order without a case: the worker tries it
	// again for a while (the request opening the case may be on its
	// way), then rejects it. Pending says so (it said "is it running?").
	noCase := "no case for taobao sub-order 999999999 yet: the worker tries the command again for a while (WORKER_UNKNOWN_CASE_WAIT) " +
		"in case the request that opens the case is on its way, then rejects it (unknown_case)"
	if r := e.run("cancel", "--platform", "taobao", "--sub-order", "999999999", "--wait", "300ms"); r.code() != 5 ||
		!strings.Contains(r.line(), noCase) || strings.Contains(r.line(), "is it running") {
		t.Errorf("cancel for a sub-order without a case: exit %d, %q; want exit 5 and %q", r.code(), r.line(), noCase)
	}
	var pend commandResult
	decodeJSON(t, e.run("cancel", "--platform", "1688", "--order", "999999999", "--wait", "300ms", "--json").stdout, &pend)
	if v := pend.Verdict; v == nil || v.Verdict != "pending" || v.Code != opcommands.CodeNoCaseYet || !strings.HasPrefix(v.Reason, "no case for 1688 order 999999999 yet") {
		t.Errorf("--json cancel for a 1688 order without a case: verdict %+v; want pending, code %s, naming the order", v, opcommands.CodeNoCaseYet)
	}

	var res commandResult
	r := e.run("cancel", "--platform", "taobao", "--sub-order", "101", "--id", "cmd-open-1", "--json")
	decodeJSON(t, r.stdout, &res)
	if r.code() != 4 || res.Verdict == nil || res.Verdict.Verdict != "rejected" || res.Verdict.CaseID != 1 ||
		res.Verdict.State != "waiting_seller" || res.Verdict.Code != "case_open" || res.Verdict.Next == "" {
		t.Errorf("--json: exit %d, verdict %+v; want exit 4, rejected case_open on case 1 (waiting_seller) with advice", r.code(), res.Verdict)
	}

	// wait --command: a duplicate finds its case; a rejection is a refusal.
	record(casestore.CommandOutcome{CommandID: "cmd-dup-1", Verdict: casestore.VerdictRejected, CaseID: 1, Code: "duplicate", Reason: "the same request again"})
	if out := e.mustRun("wait", "--command", "cmd-dup-1").stdout; !strings.HasPrefix(out, "case 1 is waiting_seller") {
		t.Errorf("wait --command of a duplicate = %q; want case 1", out)
	}
	e.wantErr(4, "command cmd-open-1 was rejected (case_open)", "wait", "--command", "cmd-open-1")

	// The same through the console (REFUNDHUB_URL): a rejection is a
	// refusal there too, not the case it was refused on; a command the
	// worker has not decided has no case yet. (Through the console both
	// printed case 1 and exited 0.)
	console := consoleURL // (started above)
	remote := func(args ...string) result { return e.remoteRun(console, consoleOperatorToken, args...) }
	if r := remote("wait", "--command", "cmd-dup-1"); r.err != nil || !strings.HasPrefix(r.stdout, "case 1 is waiting_seller") {
		t.Errorf("remote wait --command of a duplicate: exit %d %q (%s); want case 1", r.code(), r.stdout, r.line())
	}
	if r := remote("wait", "--command", "cmd-applied-1", "--state", "waiting_seller"); r.err != nil || !strings.HasPrefix(r.stdout, "case 1 is waiting_seller") {
		t.Errorf("remote wait --command of an applied command: exit %d %q (%s); want case 1", r.code(), r.stdout, r.line())
	}
	for _, args := range [][]string{{"wait", "--command", "cmd-open-1"}, {"show", "--command", "cmd-open-1"}} {
		if r := remote(args...); r.code() != 4 || !strings.Contains(r.line(), "command cmd-open-1 was rejected (case_open)") {
			t.Errorf("remote %s: exit %d %q (%s); want exit 4, the rejection", strings.Join(args, " "), r.code(), r.stdout, r.line())
		}
	}
	if r := remote("wait", "--command", "cmd-dead-1", "--deadline", "1s"); r.code() != 4 || !strings.Contains(r.line(), "command cmd-dead-1 was rejected (unknown_case)") {
		t.Errorf("remote wait --command of a dead letter: exit %d (%s); want exit 4 at once, the rejection", r.code(), r.line())
	}
	if r := remote("show", "--command", "cmd-never-1"); r.err == nil || !strings.Contains(r.line(), "no case for command cmd-never-1") {
		t.Errorf("remote show --command of a command without a verdict: exit %d (%s); want no case yet", r.code(), r.line())
	}
	// Waited for longer than the console waits (here 1 s), the pending
	// verdict keeps what the console said of it.
	if r := remote("cancel", "--platform", "taobao", "--sub-order", "999999999", "--wait", "1500ms"); r.code() != 5 ||
		!strings.Contains(r.line(), noCase) {
		t.Errorf("remote cancel for a sub-order without a case: exit %d, %q; want exit 5 and %q", r.code(), r.line(), noCase)
	}

	// Without a readable store nothing is sent unless --no-wait.
	e.vars["DB_PATH"] = e.dbPath + ".missing"
	before := e.streamCount("COMMANDS")
	e.wantErr(1, "--no-wait publishes without it", "cancel", "--platform", "taobao", "--sub-order", "101")
	e.wantErr(2, "--wait 0s: must be positive", "cancel", "--platform", "taobao", "--sub-order", "101", "--wait", "0s")
	if n := e.streamCount("COMMANDS"); n != before {
		t.Errorf("COMMANDS grew from %d to %d; want nothing published", before, n)
	}
}

// TestVerdictOnceTheCaseSettles: an applied command's verdict is read once
// its case is out of the steps the command started: the case read again
// after the verdict, not as it was when the verdict came. Until the
// deadline: a case that does not rest by then is reported as it is. A
// flagged case (waiting for evidence, failing) and a message's case are
// reported at once: their wait is not the command's.
func TestVerdictOnceTheCaseSettles(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	ctx := context.Background()
	var k casestore.Case
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		var err error
		k, err = tx.CreateCase(ctx, casestore.NewCase{Platform: "taobao", OrderID: "700", SubOrderID: "701", State: "rendering"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	o := casestore.CommandOutcome{CommandID: "cmd-rests-1", Verdict: casestore.VerdictApplied, CaseID: k.ID, Code: "requested"}
	first := opcommands.Verdict{Verdict: casestore.VerdictApplied, CaseID: k.ID, State: "rendering"}

	// Stopped after the form was read, once the verdict was in hand.
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		k.State, k.ParkedState, k.AttentionCode, k.AttentionMessage = "needs_attention", "rendering", "reason_not_offered", "requested reason not offered"
		_, err := tx.UpdateCase(ctx, k)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	v := describeSettled(ctx, st, refundflow.InputRequestRefund, o, first, time.Now().Add(5*time.Second))
	if v.State != "needs_attention" || v.Attention != "reason_not_offered" || v.ParkedState != "rendering" {
		t.Errorf("verdict of a case that stopped after it = %+v; want needs_attention (reason_not_offered) at rendering", v)
	}
	// What to do is for a request stopped at rendering: not how to modify
	// again (the advice for a modification stopped at modify_rendering).
	req := refundflow.Command{ID: "cmd-rests-1", Kind: refundflow.InputRequestRefund, Platform: refundflow.PlatformTaobao}
	if next := toVerdictJSON(req, v).Next; !strings.Contains(next, "re-request with a reason the form offers") || strings.Contains(next, "modify") {
		t.Errorf("what to do after a request stopped at rendering = %q; want the re-request, not a modification", next)
	}
	// A case that never rests: as it is at the deadline.
	if err := st.Update(ctx, func(tx *casestore.Tx) error {
		k, _ = tx.GetCase(ctx, k.ID)
		k.State, k.ParkedState, k.AttentionCode, k.AttentionMessage = "submitting", "", "", ""
		_, err := tx.UpdateCase(ctx, k)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	first.State = "requested"
	if v := describeSettled(ctx, st, refundflow.InputRequestRefund, o, first, time.Now().Add(350*time.Millisecond)); v.State != "submitting" {
		t.Errorf("verdict of a case still submitting at the deadline = %+v; want submitting, as read last", v)
	}
	// A flag, or a message: reported as it came (read again, it would be
	// the case as it is now: submitting, no flag).
	flagged := opcommands.Verdict{Verdict: casestore.VerdictApplied, CaseID: k.ID, State: "requested", Attention: "waiting_evidence"}
	if got := describeSettled(ctx, st, refundflow.InputRequestRefund, o, flagged, time.Now().Add(2*time.Second)); got != flagged {
		t.Errorf("describeSettled(flagged) = %+v; want it as it was", got)
	}
	if got := describeSettled(ctx, st, refundflow.InputSendMessage, o, first, time.Now().Add(2*time.Second)); got != first {
		t.Errorf("describeSettled(a message's verdict) = %+v; want it as it was", got)
	}
	// Rejected and pending verdicts are not waited on.
	for _, v := range []opcommands.Verdict{{Verdict: casestore.VerdictRejected, CaseID: k.ID, State: "requested"}, {Verdict: opcommands.VerdictPending}} {
		if got := describeSettled(ctx, st, refundflow.InputRequestRefund, o, v, time.Now().Add(5*time.Second)); got != v {
			t.Errorf("describeSettled(%+v) = %+v; want it as it was", v, got)
		}
	}
}

// TestVerdictAdviceDoesNotRepeatTheReason: the advice after a rejection
// adds what to do; it does not say again what the reason said.
func TestVerdictAdviceDoesNotRepeatTheReason(t *testing.T) {
	ship := refundflow.Command{ID: "cmd-finished-1", Kind: refundflow.InputReportShipment, Platform: refundflow.PlatformTaobao}
	v := toVerdictJSON(ship, opcommands.Verdict{Verdict: casestore.VerdictRejected, CaseID: 1, State: "succeeded",
		Code: refundflow.CodeCaseFinished, Reason: "case is finished"})
	if line := verdictLine(v, time.Second); strings.Count(line, "finished") != 2 || !strings.Contains(line, "to refund again, start a new case with refundctl request") {
		t.Errorf("verdict line %q; want the code and the reason to say finished, and the advice only what to do", line)
	}
}

// TestAPolledVerdictKeepsWhatTheConsoleSaidOfIt: through the console,
// refundctl waits longer (10 s) than the console does (5 s) and polls the
// verdict by id, which knows nothing of where the command is: the poll's
// plain pending replaced what the console had said (where JetStream had
// the command), and the operator read "is it running?" again. What the
// console said is kept while the poll says nothing; a database that did
// not answer then is not (the poll read it).
func TestAPolledVerdictKeepsWhatTheConsoleSaidOfIt(t *testing.T) {
	plain := opcommands.Verdict{Verdict: opcommands.VerdictPending}
	for _, tc := range []struct {
		name       string
		said, next opcommands.Verdict
		want       opcommands.Verdict
	}{
		{"where JetStream had it", opcommands.Verdict{Verdict: "pending", Code: opcommands.CodeUndecided, Reason: "sent; a worker took it"}, plain,
			opcommands.Verdict{Verdict: "pending", Code: opcommands.CodeUndecided, Reason: "sent; a worker took it (as the console saw it when it answered)"}},
		{"no case yet", opcommands.Verdict{Verdict: "pending", Code: opcommands.CodeNoCaseYet, Reason: "no case for …"}, plain,
			opcommands.Verdict{Verdict: "pending", Code: opcommands.CodeNoCaseYet, Reason: "no case for …"}},
		{"the database away then", opcommands.Verdict{Verdict: "pending", Reason: opcommands.ReasonUnread}, plain, plain},
		{"decided since", opcommands.Verdict{Verdict: "pending", Code: opcommands.CodeUndecided, Reason: "sent; a worker took it"},
			opcommands.Verdict{Verdict: casestore.VerdictApplied, CaseID: 3}, opcommands.Verdict{Verdict: casestore.VerdictApplied, CaseID: 3}},
	} {
		if got := keepReason(tc.said, tc.next); got != tc.want {
			t.Errorf("%s: keepReason = %+v; want %+v", tc.name, got, tc.want)
		}
	}
}

// TestANotSupportedRefusalSaysTheCaseFollowsItsRefundOnlyWhenItHasOne: a
// command 1688 cannot take (a message) leaves a case as it was; whether
// it "goes on following the refund" depends on its having one on the
// platform, wherever it stands or stopped.
func TestANotSupportedRefusalSaysTheCaseFollowsItsRefundOnlyWhenItHasOne(t *testing.T) {
	msg := refundflow.Command{ID: "cmd-msg-1", Kind: refundflow.InputSendMessage, Platform: refundflow.Platform1688}
	for _, tc := range []struct {
		state, parked string
		follows       bool
	}{
		{"waiting_seller", "", true},
		{"return_submitting", "", true},
		{"needs_attention", "return_submitting", true},
		{"needs_attention", "modify_rendering", true},
		{"cancelling", "", true},
		{"needs_attention", "uploading_vouchers", false},
		{"rendering", "", false},
		{"needs_attention", "submitting", false},
	} {
		next := nextStep(msg, verdictJSON{Verdict: casestore.VerdictRejected, CaseID: 4, Code: refundflow.CodeNotSupported, State: tc.state, ParkedState: tc.parked})
		if got := next == "case 4 goes on following the refund"; got != tc.follows || (!tc.follows && next != "case 4 is as it was: refundctl show 4") {
			t.Errorf("%s (at %q): %q; want following the refund %v", tc.state, tc.parked, next, tc.follows)
		}
	}
}
