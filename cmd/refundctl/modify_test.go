package main

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/refundhub/refundhub/internal/casestore"
	"github.com/refundhub/refundhub/internal/events"
	"github.com/refundhub/refundhub/internal/refundflow"
)

// TestModifyPublishes: modify names the case by id, takes the platform and
// the order from the store, and publishes a modify_refund carrying only
// the changes given (--amount max is 0, the most the form allows).
func TestModifyPublishes(t *testing.T) {
	e := newEnv(t)
	seedCases(t, e.openStore()) // case 1: taobao 100/101; case 2: 1688 200
	amount := func(n int64) *int64 { return &n }
	text := func(s string) *string { return &s }
	tests := []struct {
		name string
		args []string
		want refundflow.Modification
	}{
		{"amount", []string{"--amount", "5000"}, refundflow.Modification{Amount: amount(5000)}},
		{"amount max", []string{"--amount", "max"}, refundflow.Modification{Amount: amount(0)}},
		{"reason and description", []string{"--reason", "不想要了", "--description", "half"},
			refundflow.Modification{Reason: "不想要了", Description: text("half")}},
		{"empty description", []string{"--description", ""}, refundflow.Modification{Description: text("")}},
		{"reason id and vouchers", []string{"--reason-id", "1004", "--voucher", "https://img.example/1.jpg", "--voucher", "https://img.example/2.jpg"},
			refundflow.Modification{ReasonID: 1004, Vouchers: []string{"https://img.example/1.jpg", "https://img.example/2.jpg"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var res commandResult
			decodeJSON(t, e.mustRun(append([]string{"modify", "1", "--no-wait", "--json"}, tt.args...)...).stdout, &res)
			c := res.Command
			if res.Subject != "commands.taobao.modify_refund.case_1" || c.Kind != refundflow.InputModify || c.CaseID != 1 ||
				c.Platform != refundflow.PlatformTaobao {
				t.Errorf("modify 1 %v: published %+v on %s; want modify_refund for taobao case 1", tt.args, c, res.Subject)
			}
			if c.Modify == nil || !reflect.DeepEqual(*c.Modify, tt.want) {
				t.Errorf("modify 1 %v: modification %+v; want %+v", tt.args, c.Modify, tt.want)
			}
			m := e.lastMsg(events.DefaultCommandStreamName, res.Subject)
			if _, err := refundflow.DecodeCommand(m.Data); err != nil {
				t.Errorf("stored payload does not decode: %v\n%s", err, m.Data)
			}
		})
	}
	// 1688: sent as it is, for the worker's verdict (not_supported, with
	// what the platform allows instead).
	var res commandResult
	decodeJSON(t, e.mustRun("modify", "2", "--amount", "5000", "--no-wait", "--json").stdout, &res)
	if res.Subject != "commands.1688.modify_refund.case_2" || res.Command.CaseID != 2 {
		t.Errorf("modify 2 (1688): published %+v on %s; want it sent for case 2", res.Command, res.Subject)
	}
}

// TestModifyErrors: bad input is exit 2 naming the flags, and nothing is
// published; an unknown case is exit 1.
func TestModifyErrors(t *testing.T) {
	e := newEnv(t)
	seedCases(t, e.openStore())
	tests := []struct {
		name string
		code int
		want string
		args []string
	}{
		{"no change", 2, "nothing to change: give --reason-id or --reason, --amount, --description or --voucher", []string{"modify", "1"}},
		{"no change, id only", 2, "nothing to change", []string{"modify", "1", "--id", "modify-000001"}},
		{"no case", 2, `accepts 1 arg(s), received 0`, []string{"modify", "--amount", "1"}},
		{"case not a number", 2, `CASE "x": want a case id`, []string{"modify", "x", "--amount", "1"}},
		{"both reasons", 2, "none of the others can be", []string{"modify", "1", "--reason-id", "1", "--reason", "r"}},
		{"reason id zero", 2, "--reason-id 0: must be positive", []string{"modify", "1", "--reason-id", "0"}},
		{"empty reason", 2, "--reason: must not be empty", []string{"modify", "1", "--reason", ""}},
		{"bad amount", 2, `--amount "12.5": want fen`, []string{"modify", "1", "--amount", "12.5"}},
		{"long description", 2, "--description: at most", []string{"modify", "1", "--description", strings.Repeat("长", 1000)}},
		{"empty voucher", 2, "--voucher: empty or too long reference", []string{"modify", "1", "--voucher", ""}},
		{"bad id", 2, "--id: 8 to 64 characters", []string{"modify", "1", "--amount", "1", "--id", "short"}},
		{"unknown case", 1, "case 99: no such case", []string{"modify", "99", "--amount", "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.wantErr(tt.code, tt.want, tt.args...)
			if m := jsonFieldName.FindString(r.line()); m != "" {
				t.Errorf("refundctl %s: error %q names the JSON field %q; want flags only", strings.Join(tt.args, " "), r.line(), m)
			}
		})
	}
	if n := e.streamCount(events.DefaultCommandStreamName); n != 0 {
		t.Errorf("COMMANDS holds %d messages after bad input; want 0", n)
	}
}

// TestModifyVerdicts: a modify's verdict comes with advice fitting a
// modification: how to follow it, and the ways out when it does not fit.
func TestModifyVerdicts(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	seedCases(t, st)
	ctx := context.Background()
	for _, o := range []casestore.CommandOutcome{
		{CommandID: "mod-applied-1", Verdict: casestore.VerdictApplied, CaseID: 1, Code: "modify", Reason: "read the refund form for the modification"},
		{CommandID: "mod-notnow-1", Verdict: casestore.VerdictRejected, CaseID: 1, Code: refundflow.CodeNotNow,
			Reason: "only a refund the seller refused can be modified; case 1 is waiting_seller"},
		{CommandID: "mod-stopped-1", Verdict: casestore.VerdictRejected, CaseID: 2, Code: refundflow.CodeNotNow,
			Reason: "only a refund the seller refused can be modified"},
		{CommandID: "mod-parked-1", Verdict: casestore.VerdictApplied, CaseID: 2, Code: "modify", Reason: "read the refund form for the modification"},
		{CommandID: "mod-dup-1", Verdict: casestore.VerdictRejected, CaseID: 1, Code: refundflow.CodeDuplicate, Reason: "the same modification is under way"},
		{CommandID: "mod-1688-1", Verdict: casestore.VerdictRejected, CaseID: 2, Code: refundflow.CodeNotSupported,
			Reason: "1688 offers no way to modify a refund through its API"},
		{CommandID: "mod-adopted-1", Verdict: casestore.VerdictRejected, CaseID: 1, Code: refundflow.CodeNotSupported,
			Reason: "case 1 follows refund R1, which it did not file but adopted: … modify it on the platform's site"},
	} {
		if err := st.Update(ctx, func(tx *casestore.Tx) error { return tx.RecordCommandOutcome(ctx, o) }); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		id, caseID string
		code       int
		want       []string
	}{
		{"mod-applied-1", "1", 0, []string{"applied: case 1 is waiting_seller", "the change was checked against the form read again and sent; the seller decides again: refundctl show 1"}},
		{"mod-notnow-1", "1", 4, []string{"rejected (not_now) on case 1 (waiting_seller): only a refund the seller refused can be modified",
			"refundctl list --attention seller_refused", "refundctl wait 1 --state", "withdraw the refund with refundctl cancel 1 "}},
		{"mod-stopped-1", "2", 4, []string{"rejected (not_now) on case 2 (needs_attention)", "refundctl show 2 says why", "docs/runbook.md"}},
		// Applied, and the case stopped again at once: why and what to
		// do, not how to follow a modification under way.
		{"mod-parked-1", "2", 0, []string{"applied: case 2 is needs_attention (seller_refused: seller refused: used item); to do: wait: a seller may still agree"}},
		{"mod-dup-1", "1", 4, []string{"rejected (duplicate)", "already making this change", "refundctl wait 1 --state"}},
		{"mod-1688-1", "2", 4, []string{"rejected (not_supported) on case 2", "request again", "refundctl resolve 2 --close --note"}},
		// A Taobao refund the case adopted: changed on the platform's
		// site; the case follows it, or the refund is withdrawn.
		{"mod-adopted-1", "1", 4, []string{"rejected (not_supported) on case 1", "follow the case with refundctl show 1, or withdraw the refund with refundctl cancel 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			r := e.run("modify", tt.caseID, "--amount", "5000", "--id", tt.id, "--wait", "2s")
			out := r.stdout + r.line()
			for _, w := range tt.want {
				if r.code() != tt.code || !strings.Contains(out, w) {
					t.Errorf("modify %s --id %s: exit %d, output %q; want exit %d and %q", tt.caseID, tt.id, r.code(), out, tt.code, w)
				}
			}
			if tt.id == "mod-parked-1" && strings.Contains(out, "follow it with") {
				t.Errorf("modify %s --id %s: %q; want no advice to follow a stopped case", tt.caseID, tt.id, out)
			}
			if strings.Contains(out, "do it on the platform itself") {
				t.Errorf("modify %s --id %s: %q advises the platform; want the ways out refundctl offers", tt.caseID, tt.id, out)
			}
		})
	}
}

// TestModifyHelp: modify's help says when it applies, what happens and the
// alternatives.
func TestModifyHelp(t *testing.T) {
	e := newEnv(t)
	out := e.mustRun("modify", "--help").stdout
	for _, w := range []string{"seller_refused", "reads the refund form again", "--amount max", "refundctl cancel",
		"refundctl resolve N --close --note", "1688 cannot modify", "not_supported"} {
		if !strings.Contains(out, w) {
			t.Errorf("modify --help lacks %q:\n%s", w, out)
		}
	}
}
