package main

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
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
	for i, want := range []string{"commands.taobao.cancel permanent_error 1 no case 7 not found", "callbacks.1688.ORDER_CREATE max_deliveries 5 no platform unreachable"} {
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

	// A dry run publishes nothing and marks nothing.
	r := e.mustRun("dead-letters", "retry", "1", "--dry-run")
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
	decodeJSON(t, e.mustRun("dead-letters", "retry", "1", "--json").stdout, &res)
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

	e.wantErr(1, "dead letter 1 was already retried at", "dead-letters", "retry", "1")
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
