package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// seedDeadLetters stores a dead command (id 1) and a dead callback (id 2).
func seedDeadLetters(t *testing.T, st *casestore.Store) {
	t.Helper()
	ctx := context.Background()
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		if _, _, err := tx.InsertDeadLetter(ctx, casestore.DeadLetter{
			MsgID: "cmd-000000000000000000000001", Subject: "commands.taobao.cancel",
			Headers: map[string][]string{"Nats-Msg-Id": {"cmd-000000000000000000000001"}, "Cmd-Kind": {"cancel"},
				"Cmd-Operator": {"alice"}, events.HeaderDeadReason: {string(events.DeadPermanentError)}},
			Payload: []byte(`{"id":"cmd-000000000000000000000001","kind":"cancel","platform":"taobao","caseId":7,"issuedAt":"2026-05-20T07:40:00Z"}`),
			Reason:  string(events.DeadPermanentError), Error: "case 7 not found", Deliveries: 1,
		}); err != nil {
			return err
		}
		_, _, err := tx.InsertDeadLetter(ctx, casestore.DeadLetter{
			MsgID: "0123456789abcdef0123456789abcdef", Subject: "callbacks.1688.ORDER_CREATE",
			Headers: map[string][]string{"Cb-Platform": {"1688"}, "Cb-Type": {"ORDER_CREATE"}},
			Payload: []byte{0xff, 0xfe, 'x'}, Reason: string(events.DeadMaxDeliveries), Error: "platform unreachable", Deliveries: 5,
		})
		return err
	})
	if err != nil {
		t.Fatalf("seed dead letters: %v", err)
	}
}

func TestDeadLettersListAndShow(t *testing.T) {
	e := newEnv(t)
	seedDeadLetters(t, e.openStore())

	r := e.mustRun("dead-letters", "list")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("dead-letters list:\n%s", r.stdout)
	}
	for i, want := range []string{"commands.taobao.cancel permanent_error 1 pending case 7 not found", "callbacks.1688.ORDER_CREATE max_deliveries 5 pending platform unreachable"} {
		if got := strings.Join(strings.Fields(lines[i+1])[3:], " "); got != want {
			t.Errorf("row %d = %q; want %q", i+1, got, want)
		}
	}

	var list []deadLetterJSON
	decodeJSON(t, e.mustRun("dl", "list", "--json").stdout, &list)
	if len(list) != 2 || list[0].ID != 1 || list[0].Reason != "permanent_error" || list[0].Payload != nil || list[1].Deliveries != 5 {
		t.Errorf("dl list --json = %+v", list)
	}

	r = e.mustRun("dead-letters", "show", "1")
	for _, want := range []string{"Dead letter 1", "commands.taobao.cancel", "cmd-000000000000000000000001", "permanent_error",
		"case 7 not found", "Cmd-Operator:", "alice", `"kind":"cancel"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show 1 lacks %q:\n%s", want, r.stdout)
		}
	}
	var one deadLetterJSON
	decodeJSON(t, e.mustRun("dead-letters", "show", "2", "--json").stdout, &one)
	if one.Payload != nil || one.PayloadBase64 != "//54" || one.Headers["Cb-Type"][0] != "ORDER_CREATE" {
		t.Errorf("show 2 --json = %+v; want the binary payload as base64", one)
	}
	decodeJSON(t, e.mustRun("dead-letters", "show", "1", "--json").stdout, &one)
	if one.Payload == nil || !strings.Contains(*one.Payload, `"caseId":7`) {
		t.Errorf("show 1 --json payload = %v", one.Payload)
	}
}

// TestDeadLettersListFiltersByReason: --reason lists exactly the dead
// letters with that code, including rows older workers stored under the
// code's former spelling, and rejects a code that is not one.
func TestDeadLettersListFiltersByReason(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	seedDeadLetters(t, st) // 1 permanent_error, 2 max_deliveries
	ctx := context.Background()
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		for _, d := range []casestore.DeadLetter{
			{MsgID: "cmd-legacy", Subject: "commands.taobao.cancel", Reason: "permanent", Error: "written by an older worker"}, // 3
			{MsgID: "cmd-broken", Subject: "commands.taobao.cancel", Reason: string(events.DeadInvalidCommand)},                // 4
		} {
			if _, _, err := tx.InsertDeadLetter(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	for _, tc := range []struct {
		reason events.DeadReason
		want   []int64
	}{
		{events.DeadPermanentError, []int64{1, 3}},
		{events.DeadMaxDeliveries, []int64{2}},
		{events.DeadInvalidCommand, []int64{4}},
		{events.DeadUnknownCase, nil},
	} {
		var list []deadLetterJSON
		decodeJSON(t, e.mustRun("dead-letters", "list", "--reason", string(tc.reason), "--json").stdout, &list)
		var got []int64
		for _, d := range list {
			got = append(got, d.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("dead-letters list --reason %s: ids %v; want %v", tc.reason, got, tc.want)
		}
	}
	if out := e.mustRun("dl", "list", "--reason", string(events.DeadUnknownCase)).stdout; out != "no dead letters\n" {
		t.Errorf("dl list --reason unknown_case = %q; want \"no dead letters\"", out)
	}
	for _, bad := range []string{"permanent", "PERMANENT_ERROR", ""} {
		r := e.wantErr(2, "--reason", "dead-letters", "list", "--reason", bad)
		for _, valid := range events.DeadReasons() {
			if !strings.Contains(r.line(), string(valid)) {
				t.Errorf("--reason %q: error %q does not name %s", bad, r.line(), valid)
			}
		}
	}
}

func TestDeadLetterRetry(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	seedDeadLetters(t, st)
	got := e.capture("commands.>")

	// A permanent failure needs --force (TestDeadLetterRetryPermanentNeedsForce).
	e.wantErr(4, "--force", "dead-letters", "retry", "1", "--dry-run")

	// A dry run publishes nothing and marks nothing.
	r := e.mustRun("dead-letters", "retry", "1", "--dry-run", "--force")
	if !strings.Contains(r.stdout, "would republish dead letter 1 to commands.taobao.cancel with Nats-Msg-Id cmd-000000000000000000000001-retry-") {
		t.Errorf("dry run = %q", r.stdout)
	}
	if n := e.streamCount(events.DefaultCommandStreamName); n != 0 {
		t.Errorf("dry run stored %d messages", n)
	}

	var res struct {
		ID        int64               `json:"id"`
		Subject   string              `json:"subject"`
		MsgID     string              `json:"msgId"`
		Headers   map[string][]string `json:"headers"`
		DryRun    bool                `json:"dryRun"`
		Stream    string              `json:"stream"`
		Sequence  uint64              `json:"seq"`
		Duplicate bool                `json:"duplicate"`
	}
	decodeJSON(t, e.mustRun("dead-letters", "retry", "1", "--json", "--force").stdout, &res)
	if res.ID != 1 || res.DryRun || res.Stream != events.DefaultCommandStreamName || res.Sequence != 1 || res.Duplicate {
		t.Errorf("retry --json = %+v", res)
	}
	msgs := got.waitN(t, 1)
	m := msgs[0]
	if m.Subject != "commands.taobao.cancel" {
		t.Errorf("subject = %q", m.Subject)
	}
	if id := m.Header.Get(events.HeaderMsgID); !strings.HasPrefix(id, "cmd-000000000000000000000001-retry-") || id != res.MsgID {
		t.Errorf("Nats-Msg-Id = %q (reported %q); want the original id with a retry suffix", id, res.MsgID)
	}
	for k, want := range map[string]string{"Cmd-Kind": "cancel", "Cmd-Operator": "alice", events.HeaderRetryOf: "1",
		events.HeaderRetryOriginalMsgID: "cmd-000000000000000000000001", events.HeaderDeadReason: ""} {
		if v := m.Header.Get(k); v != want {
			t.Errorf("header %s = %q; want %q", k, v, want)
		}
	}
	if !strings.Contains(string(m.Data), `"caseId":7`) {
		t.Errorf("payload = %s", m.Data)
	}
	d, err := st.DeadLetter(context.Background(), 1)
	if err != nil || d.RetriedAt.IsZero() {
		t.Errorf("dead letter 1 after retry: retriedAt %v, err %v; want marked retried", d.RetriedAt, err)
	}
	// Listed as retried; --pending hides it.
	if out := e.mustRun("dead-letters", "list", "--pending").stdout; strings.Contains(out, "commands.taobao.cancel") {
		t.Errorf("list --pending shows the retried dead letter:\n%s", out)
	}

	e.wantErr(4, "dead letter 1 was already retried at", "dead-letters", "retry", "1")
	e.wantErr(4, "dead letter 1 was already retried at", "dead-letters", "retry", "1", "--force")
	e.wantErr(1, "dead letter 9 not found", "dead-letters", "retry", "9")
	e.wantErr(2, `dead letter id "x"`, "dead-letters", "retry", "x")
	e.wantErr(2, `dead letter id "0"`, "dead-letters", "show", "0")
	e.wantErr(2, "unknown shorthand flag", "dead-letters", "show", "-1")
	e.wantErr(1, "dead letter 42 not found", "dead-letters", "show", "42")
	e.wantErr(2, "--limit 0", "dead-letters", "list", "--limit", "0")

	// NATS down: nothing is marked.
	e.vars["NATS_URL"] = "nats://127.0.0.1:1"
	e.wantErr(1, "connect to NATS", "dead-letters", "retry", "2")
	if d, _ := st.DeadLetter(context.Background(), 2); !d.RetriedAt.IsZero() {
		t.Errorf("dead letter 2 marked retried although the publish failed")
	}
	if n := len(got.all()); n != 1 {
		t.Errorf("%d messages published; want 1", n)
	}
}

// seedReasons stores one pending dead letter per reason, in order, and
// returns their ids by reason.
func seedReasons(t *testing.T, st *casestore.Store, reasons ...string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	ids := map[string]int64{}
	err := st.Update(ctx, func(tx *casestore.Tx) error {
		for i, r := range reasons {
			msgID := fmt.Sprintf("cmd-%026d", i+1)
			id, _, err := tx.InsertDeadLetter(ctx, casestore.DeadLetter{MsgID: msgID, Subject: "commands.taobao.cancel",
				Headers: map[string][]string{"Nats-Msg-Id": {msgID}, events.HeaderCommandKind: {"cancel"}},
				Payload: []byte(`{"id":"` + msgID + `"}`), Reason: r, Error: "failed as " + r, Deliveries: 1})
			if err != nil {
				return err
			}
			ids[r] = id
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed dead letters: %v", err)
	}
	return ids
}

// TestDeadLetterRetryPermanentNeedsForce: retrying a permanent failure
// (events.DeadReason.Permanent, older workers' "permanent" included) is
// refused with exit 4, one line naming --force, nothing published and
// nothing marked; --force retries it. The other reasons retry as before.
func TestDeadLetterRetryPermanentNeedsForce(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	reasons := []string{"permanent"} // what older workers wrote for permanent_error
	for _, r := range events.DeadReasons() {
		reasons = append(reasons, string(r))
	}
	ids := seedReasons(t, st, reasons...)
	got := e.capture("commands.>")
	ctx := context.Background()

	published := 0
	for _, reason := range reasons {
		id := strconv.FormatInt(ids[reason], 10)
		permanent := events.StoredDeadReason(reason).Permanent()
		if permanent {
			r := e.wantErr(4, "retry with --force", "dead-letters", "retry", id)
			if want := fmt.Sprintf("dead letter %s is a permanent failure (%s): retried unchanged it fails again", id, events.StoredDeadReason(reason)); !strings.Contains(r.line(), want) {
				t.Errorf("retry %s (%s): %q; want it to say %q", id, reason, r.line(), want)
			}
			e.wantErr(4, "--force", "dead-letters", "retry", id, "--dry-run")
			if d, _ := st.DeadLetter(ctx, ids[reason]); !d.RetriedAt.IsZero() {
				t.Errorf("dead letter %s (%s) marked retried after a refused retry", id, reason)
			}
			if n := len(got.all()); n != published {
				t.Fatalf("a refused retry of %s (%s) published: %d messages; want %d", id, reason, n, published)
			}
			e.mustRun("dead-letters", "retry", id, "--force")
		} else {
			e.mustRun("dead-letters", "retry", id)
		}
		published++
		if d, _ := st.DeadLetter(ctx, ids[reason]); d.RetriedAt.IsZero() {
			t.Errorf("dead letter %s (%s) not marked retried", id, reason)
		}
		msgs := got.waitN(t, published)
		if h := msgs[published-1].Header; h.Get(events.HeaderRetryOf) != id {
			t.Errorf("retry of %s (%s) published with %s = %q", id, reason, events.HeaderRetryOf, h.Get(events.HeaderRetryOf))
		}
	}
	if !strings.Contains(e.mustRun("dead-letters", "retry", "--help").stdout, "invalid_command") {
		t.Error("dead-letters retry --help does not name the permanent reasons")
	}
}

// TestDeadLetterDiscard: discard keeps the row, marked with the operator,
// the time and the note; list hides it unless --all or --discarded; show and
// --json carry the discard. Discarding twice, discarding a retried dead
// letter and retrying a discarded one are refused with exit 4 and change
// nothing.
func TestDeadLetterDiscard(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	ids := seedReasons(t, st, string(events.DeadInvalidCommand), string(events.DeadMaxDeliveries), string(events.DeadUnknownCase))
	bad, flaky, unknown := ids[string(events.DeadInvalidCommand)], ids[string(events.DeadMaxDeliveries)], ids[string(events.DeadUnknownCase)]
	ctx := context.Background()
	got := e.capture("commands.>")
	e.vars["NATS_URL"] = "nats://127.0.0.1:1" // a discard publishes nothing and needs no NATS
	e.vars["REFUNDCTL_OPERATOR"] = "alice"

	before := time.Now().UTC().Truncate(time.Millisecond)
	r := e.mustRun("dead-letters", "discard", "1", "--note", "  a test command sent by mistake  ")
	after := time.Now().UTC()
	if want := "discarded dead letter 1 (invalid_command, commands.taobao.cancel) at "; !strings.HasPrefix(r.stdout, want) ||
		!strings.HasSuffix(r.stdout, " by alice: a test command sent by mistake\n") {
		t.Errorf("discard 1 = %q; want %q… by alice: the note", r.stdout, want)
	}
	d, err := st.DeadLetter(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if d.DiscardedAt.Before(before) || d.DiscardedAt.After(after) || d.DiscardedBy != "alice" || d.DiscardNote != "a test command sent by mistake" || !d.RetriedAt.IsZero() {
		t.Fatalf("dead letter 1 after discard = discarded %v by %q (%q), retried %v; want between %v and %v by alice with the trimmed note",
			d.DiscardedAt, d.DiscardedBy, d.DiscardNote, d.RetriedAt, before, after)
	}
	discarded := d

	// Without REFUNDCTL_OPERATOR the operator is USER; --operator wins over both.
	delete(e.vars, "REFUNDCTL_OPERATOR")
	var one deadLetterJSON
	decodeJSON(t, e.mustRun("dl", "discard", "3", "--note", "case opened by hand", "--json").stdout, &one)
	if one.ID != unknown || one.DiscardedBy != "tester" || one.DiscardNote != "case opened by hand" || one.DiscardedAt == "" {
		t.Errorf("discard 3 --json = %+v; want discarded by tester (USER) with the note", one)
	}

	// list hides the discarded ones; --all and --discarded show them.
	listIDs := func(args ...string) []int64 {
		t.Helper()
		var list []deadLetterJSON
		decodeJSON(t, e.mustRun(append([]string{"dead-letters", "list", "--json"}, args...)...).stdout, &list)
		var out []int64
		for _, d := range list {
			out = append(out, d.ID)
		}
		return out
	}
	for _, tc := range []struct {
		args []string
		want []int64
	}{
		{nil, []int64{flaky}},
		{[]string{"--pending"}, []int64{flaky}},
		{[]string{"--all"}, []int64{bad, flaky, unknown}},
		{[]string{"--discarded"}, []int64{bad, unknown}},
		{[]string{"--discarded", "--reason", "invalid_command"}, []int64{bad}},
	} {
		if got := listIDs(tc.args...); !slices.Equal(got, tc.want) {
			t.Errorf("dead-letters list %v: ids %v; want %v", tc.args, got, tc.want)
		}
	}
	var all []deadLetterJSON
	decodeJSON(t, e.mustRun("dead-letters", "list", "--all", "--json").stdout, &all)
	if all[0].DiscardedBy != "alice" || all[0].DiscardNote != "a test command sent by mistake" || all[0].DiscardedAt != timeJSON(discarded.DiscardedAt) ||
		all[1].DiscardedAt != "" || all[1].DiscardedBy != "" {
		t.Errorf("list --all --json = %+v; want the discard fields on 1 and none on 2", all)
	}
	out := e.mustRun("dead-letters", "list", "--all").stdout
	if !strings.Contains(out, "discarded "+timeHuman(discarded.DiscardedAt)) || !strings.Contains(out, "pending") {
		t.Errorf("list --all does not show the states:\n%s", out)
	}
	if out := e.mustRun("dead-letters", "list").stdout; strings.Contains(out, "invalid_command") || !strings.Contains(out, "max_deliveries") {
		t.Errorf("list shows a discarded dead letter or hides a pending one:\n%s", out)
	}
	show := strings.Join(strings.Fields(e.mustRun("dead-letters", "show", "1").stdout), " ")
	for _, want := range []string{"Discarded: " + timeHuman(discarded.DiscardedAt) + " by alice Note: a test command sent by mistake"} {
		if !strings.Contains(show, want) {
			t.Errorf("show 1 lacks %q:\n%s", want, show)
		}
	}
	decodeJSON(t, e.mustRun("dead-letters", "show", "1", "--json").stdout, &one)
	if one.DiscardedBy != "alice" || one.DiscardNote != "a test command sent by mistake" || one.Payload == nil {
		t.Errorf("show 1 --json = %+v; want the discard fields and the payload", one)
	}

	// Refusals: exit 4, one line, nothing changed.
	e.vars["NATS_URL"] = e.ns.URL()
	e.vars["REFUNDCTL_OPERATOR"] = "bob"
	e.wantErr(4, "dead letter 1 was already discarded at "+timeHuman(discarded.DiscardedAt)+" by alice (a test command sent by mistake); nothing changed",
		"dead-letters", "discard", "1", "--note", "again")
	for _, args := range [][]string{{"dead-letters", "retry", "1"}, {"dead-letters", "retry", "1", "--force"}, {"dead-letters", "retry", "1", "--dry-run", "--force"}} {
		e.wantErr(4, "dead letter 1 was discarded at "+timeHuman(discarded.DiscardedAt)+" by alice (a test command sent by mistake): a discard is final; nothing changed", args...)
	}
	e.mustRun("dead-letters", "retry", "2")
	retried, _ := st.DeadLetter(ctx, flaky)
	e.wantErr(4, "dead letter 2 was retried at "+timeHuman(retried.RetriedAt)+": its message went out, there is nothing to discard; nothing changed",
		"dead-letters", "discard", "2", "--note", "too late")
	if d, _ := st.DeadLetter(ctx, bad); !d.DiscardedAt.Equal(discarded.DiscardedAt) || d.DiscardedBy != "alice" || d.DiscardNote != discarded.DiscardNote || !d.RetriedAt.IsZero() {
		t.Errorf("dead letter 1 after the refusals = %+v; want it as discarded", d)
	}
	if d, _ := st.DeadLetter(ctx, flaky); !d.DiscardedAt.IsZero() || d.DiscardedBy != "" {
		t.Errorf("dead letter 2 after a refused discard = discarded %v by %q; want not discarded", d.DiscardedAt, d.DiscardedBy)
	}
	if msgs := got.waitN(t, 1); len(msgs) != 1 || msgs[0].Header.Get(events.HeaderRetryOf) != "2" {
		t.Errorf("published %d messages; want only the retry of 2", len(msgs))
	}

	// Usage and missing ids.
	e.wantErr(1, "dead letter 9 not found", "dead-letters", "discard", "9", "--note", "x")
	e.wantErr(2, "--note: say why", "dead-letters", "discard", "2")
	e.wantErr(2, "--note: say why", "dead-letters", "discard", "2", "--note", " \t ")
	e.wantErr(2, "--note: 501 characters; want 1 to 500", "dead-letters", "discard", "2", "--note", strings.Repeat("é", 501))
	e.wantErr(2, `dead letter id "x"`, "dead-letters", "discard", "x", "--note", "n")
	e.wantErr(2, "accepts 1 arg", "dead-letters", "discard", "--note", "n")
	e.wantErr(2, "--pending lists dead letters neither retried nor discarded", "dead-letters", "list", "--pending", "--all")
	e.wantErr(2, "--pending lists dead letters neither retried nor discarded", "dead-letters", "list", "--pending", "--discarded")
	e.wantErr(2, "give one", "dead-letters", "list", "--all", "--discarded")
}

// TestAWorkerFailedVerdictSaysToLookAtTheCase: a command the worker failed
// on (worker_failed: a bug of its build) may have changed its case before
// it failed. Its verdict's advice said to retry the dead letter, which
// could send the command twice; it now says to look at the case it names
// first, and to retry (--force) only what the case still needs.
func TestAWorkerFailedVerdictSaysToLookAtTheCase(t *testing.T) {
	cmd := refundflow.Command{ID: "c1", Kind: refundflow.InputCancel, Platform: refundflow.PlatformTaobao, SubOrderID: "9"}
	for _, tc := range []struct {
		caseID int64
		want   string
	}{{7, "refundctl show 7 shows what it did"}, {0, "find its case with refundctl list"}} {
		next := nextStep(cmd, verdictJSON{Verdict: "rejected", Code: string(events.DeadWorkerFailed), DeadLetterID: 3, CaseID: tc.caseID})
		for _, want := range []string{tc.want, "a bug of its build", "refundctl dead-letters show 3", "refundctl dead-letters retry 3 --force) only if the case still needs it"} {
			if !strings.Contains(next, want) {
				t.Errorf("case %d: advice %q; want it to say %q", tc.caseID, next, want)
			}
		}
	}
}

// TestADeliveryLimitVerdictSaysWhyAndToLookAtTheCase: a command no worker
// finished (delivery_limit: the processes ended on it, each time) gets
// advice that says so, where to look for the cause, and, like
// worker_failed, to look at the case before retrying it with --force.
func TestADeliveryLimitVerdictSaysWhyAndToLookAtTheCase(t *testing.T) {
	cmd := refundflow.Command{ID: "c1", Kind: refundflow.InputCancel, Platform: refundflow.PlatformTaobao, SubOrderID: "9"}
	next := nextStep(cmd, verdictJSON{Verdict: "rejected", Code: string(events.DeadDeliveryLimit), DeadLetterID: 4, CaseID: 7})
	for _, want := range []string{"worker processes ended while handling it", "see their logs and exits", "refundctl show 7 shows what it did",
		"a copy a worker still held may apply it yet: its verdict then becomes applied",
		"refundctl dead-letters retry 4 --force) only if the case still needs it", "refundctl dead-letters show 4"} {
		if !strings.Contains(next, want) {
			t.Errorf("advice %q; want it to say %q", next, want)
		}
	}
}

// TestAHeldCaseVerdictSaysHowToResolveIt: a command refused because its
// case is held (worker processes kept ending on it) says where to look and
// the way out, not only "see the case".
func TestAHeldCaseVerdictSaysHowToResolveIt(t *testing.T) {
	cmd := refundflow.Command{ID: "c1", Kind: refundflow.InputCancel, Platform: refundflow.PlatformTaobao, SubOrderID: "9"}
	next := nextStep(cmd, verdictJSON{Verdict: "rejected", Code: refundflow.CodeWorkerEnded, CaseID: 7, State: "needs_attention"})
	for _, want := range []string{"held because worker processes kept ending", "refundctl show 7", "logs say why",
		"refundctl resolve 7 --retry", "send this command again"} {
		if !strings.Contains(next, want) {
			t.Errorf("advice %q; want it to say %q", next, want)
		}
	}
}
